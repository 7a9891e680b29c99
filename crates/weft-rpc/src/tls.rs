//! rustls configurations (ring provider, TLS 1.3 only) and the CA-pinning verifier of joins.

use crate::{ALPN_JOIN, ALPN_RPC, RpcError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use weft_keys::{CaFingerprint, NodeId, NodeIdentity};
use zeroize::Zeroizing;

/// The DER pieces a node presents and trusts: its certificate, its key, the cluster CA.
pub struct TlsMaterial {
    /// The node certificate.
    pub cert_der: Vec<u8>,
    /// The node key, PKCS#8.
    pub key_der: Zeroizing<Vec<u8>>,
    /// The CA certificate: trusted, and sent after the node certificate.
    pub ca_der: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca", &CaFingerprint::of_der(&self.ca_der).to_string())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl TlsMaterial {
    /// The material of a node identity.
    pub fn from_identity(identity: &NodeIdentity) -> Result<Self, RpcError> {
        Ok(Self {
            cert_der: identity.cert_der().to_vec(),
            key_der: identity
                .key_pkcs8_der()
                .map_err(|e| RpcError::Tls(e.to_string()))?,
            ca_der: identity.ca_der().to_vec(),
        })
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![
            CertificateDer::from(self.cert_der.clone()),
            CertificateDer::from(self.ca_der.clone()),
        ]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.to_vec()))
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, RpcError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_der.clone()))
            .map_err(tls_error)?;
        Ok(Arc::new(roots))
    }
}

pub(crate) fn tls_error(e: impl std::fmt::Display) -> RpcError {
    RpcError::Tls(e.to_string())
}

/// The one crypto provider: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server side: the RPC ALPN (client certificates checked against the CA; a connection that
/// offers none is closed by the server after the handshake) and, if `join`, the join ALPN.
pub(crate) fn server_config(
    material: &TlsMaterial,
    join: bool,
) -> Result<rustls::ServerConfig, RpcError> {
    let provider = provider();
    // Certificates are optional at the TLS layer only so that joiners can connect; any
    // certificate presented must chain to the CA, and RPC without one is refused.
    let verifier = WebPkiClientVerifier::builder_with_provider(material.roots()?, provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(tls_error)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.chain(), material.key())
        .map_err(tls_error)?;
    config.alpn_protocols = vec![ALPN_RPC.to_vec()];
    if join {
        config.alpn_protocols.push(ALPN_JOIN.to_vec());
    }
    Ok(config)
}

/// Client side of RPC: trusts the CA, presents the node certificate.
pub(crate) fn client_config(material: &TlsMaterial) -> Result<rustls::ClientConfig, RpcError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_root_certificates(material.roots()?)
        .with_client_auth_cert(
            vec![CertificateDer::from(material.cert_der.clone())],
            material.key(),
        )
        .map_err(tls_error)?;
    config.alpn_protocols = vec![ALPN_RPC.to_vec()];
    Ok(config)
}

/// Client side of a join: no client certificate; the server must show the pinned CA.
pub(crate) fn join_client_config(
    fingerprint: CaFingerprint,
) -> Result<rustls::ClientConfig, RpcError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCaVerifier {
        fingerprint,
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_JOIN.to_vec()];
    Ok(config)
}

/// Accepts a server whose chain carries a CA certificate with the pinned fingerprint and
/// whose end-entity certificate that CA signed. The server name is not checked: a joiner does
/// not know the seed's node id, and any node of the cluster (any holder of a certificate from
/// the pinned CA) may serve joins.
#[derive(Debug)]
struct PinnedCaVerifier {
    fingerprint: CaFingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| CaFingerprint::of_der(c) == self.fingerprint)
            .ok_or(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            &[],
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The node id of a connection's peer, from the certificate rustls verified; `None` when the
/// peer presented none (or it names no valid node id).
pub(crate) fn peer_node_id(conn: &quinn::Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    weft_keys::ca::node_id_from_cert_der(chain.first()?).ok()
}

/// The ALPN a connection negotiated.
pub(crate) fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    let data = conn.handshake_data()?;
    let data = data
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?;
    data.protocol
}
