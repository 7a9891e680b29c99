//! The cluster certificate authority and node certificates.
//!
//! A cluster has one CA (ECDSA P-256, made by the first manager with `--init`). It signs one
//! certificate per node whose only subject alternative name is the node id (a DNS name), with
//! the server and client extended key usages, so the same certificate serves both ends of
//! mutual TLS. The CA is named by its fingerprint (SHA-256 of its DER), which join tokens carry.
//!
//! This module makes and stores certificates; it does not speak TLS (that is weft-rpc).
//! Private keys are written 0600 and never appear in `Debug` output or errors.

use crate::keyfile::{exposed_mode, write_atomic};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use zeroize::Zeroizing;

/// File names inside a CA directory.
pub const CA_CERT_FILE: &str = "cluster-ca.crt";
/// The CA private key file (mode 0600).
pub const CA_KEY_FILE: &str = "cluster-ca.key";
/// File names inside a node identity directory.
pub const NODE_KEY_FILE: &str = "node.key";
/// The node certificate file.
pub const NODE_CERT_FILE: &str = "node.crt";
/// The CA certificate a node trusts.
pub const NODE_CA_FILE: &str = "ca.crt";

/// Certificates, keys or their files could not be made, read or checked.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("invalid node id {id:?}: {reason}")]
    InvalidNodeId { id: String, reason: &'static str },
    #[error("failed to generate {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("failed to sign the certificate of node {node}: {source}")]
    Sign { node: String, source: rcgen::Error },
    #[error("invalid certificate signing request: {source}")]
    Csr { source: rcgen::Error },
    #[error("invalid certificate: {reason}")]
    Certificate { reason: String },
    #[error("invalid private key: {reason}")]
    Key { reason: String },
    #[error("invalid CA fingerprint: {reason}")]
    Fingerprint { reason: &'static str },
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has mode {mode:o}: others can read it; chmod 600 it")]
    Exposed { path: PathBuf, mode: u32 },
}

fn cert_error(reason: impl fmt::Display) -> CaError {
    CaError::Certificate {
        reason: reason.to_string(),
    }
}

/// A node id: a DNS name (lower-case letters, digits, `-`, dot-separated labels of 1-63
/// characters, at most 253 in all). It is the only SAN of the node certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// Validates `id` as a node id.
    pub fn new(id: &str) -> Result<Self, CaError> {
        let bad = |reason| CaError::InvalidNodeId {
            id: id.chars().take(64).collect(),
            reason,
        };
        if id.is_empty() || id.len() > 253 {
            return Err(bad("length must be 1 to 253 characters"));
        }
        for label in id.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(bad("each dot-separated label must have 1 to 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a label may not start or end with '-'"));
            }
            let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            if !label.chars().all(allowed) {
                return Err(bad(
                    "only lower-case letters, digits, '-' and '.' are allowed",
                ));
            }
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NodeId {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// The SHA-256 of the CA certificate's DER: how tokens and joiners name the cluster CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CaFingerprint(pub [u8; 32]);

impl CaFingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

impl fmt::Display for CaFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for CaFingerprint {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(CaError::Fingerprint {
                reason: "expected 64 hex digits",
            });
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| CaError::Fingerprint { reason: "not hex" })?;
        Ok(Self(out))
    }
}

/// The DER of the first certificate in a PEM text.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, CaError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(cert_error)?;
    if parsed.label != "CERTIFICATE" {
        return Err(cert_error(format!("PEM label {:?}", parsed.label)));
    }
    Ok(parsed.contents)
}

/// The node id in a certificate: its first DNS subject alternative name, validated.
pub fn node_id_from_cert_der(der: &[u8]) -> Result<NodeId, CaError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(cert_error)?;
    let san = cert
        .subject_alternative_name()
        .map_err(cert_error)?
        .ok_or_else(|| cert_error("no subject alternative name"))?;
    let name = san
        .value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::DNSName(name) => Some(*name),
            _ => None,
        })
        .ok_or_else(|| cert_error("no DNS subject alternative name"))?;
    NodeId::new(name)
}

/// Checks that `cert_der` was signed by the CA certificate `ca_der` (signature only; the
/// TLS stack checks validity periods and usages).
pub fn verify_signed_by(cert_der: &[u8], ca_der: &[u8]) -> Result<(), CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(cert_error)?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(cert_error)?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| cert_error("not signed by the cluster CA"))
}

fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        CaError::Key {
            reason: "the system random generator failed".to_owned(),
        }
    })?;
    bytes[0] &= 0x7f; // a positive INTEGER
    Ok(SerialNumber::from_slice(&bytes))
}

/// A signed node certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCert {
    /// DER encoding.
    pub cert_der: Vec<u8>,
    /// PEM encoding.
    pub cert_pem: String,
}

/// The cluster certificate authority: its certificate and signing key.
pub struct ClusterCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: Zeroizing<String>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("fingerprint", &self.fingerprint().to_string())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ClusterCa {
    /// A new CA named after the cluster (the certificate's common name).
    pub fn generate(cluster_name: &str) -> Result<Self, CaError> {
        let generate = |what| move |source| CaError::Generate { what, source };
        let key = KeyPair::generate().map_err(generate("the CA key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(generate("the CA"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(
            DnType::CommonName,
            format!("weft cluster CA {cluster_name}"),
        );
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(generate("the CA"))?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Writes `cluster-ca.crt` (0644) and `cluster-ca.key` (0600) into `dir`, atomically.
    pub fn to_files(&self, dir: &Path) -> Result<(), CaError> {
        write_file(&dir.join(CA_CERT_FILE), self.cert_pem.as_bytes(), 0o644)?;
        write_file(&dir.join(CA_KEY_FILE), self.key_pem.as_bytes(), 0o600)
    }

    /// Reads a CA written by [`ClusterCa::to_files`]; an exposed key file is refused.
    pub fn from_files(dir: &Path) -> Result<Self, CaError> {
        let cert_pem = read_file(&dir.join(CA_CERT_FILE), false)?;
        let key_path = dir.join(CA_KEY_FILE);
        let key_pem = Zeroizing::new(read_file(&key_path, true)?);
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Key {
            reason: format!("{}: {e}", key_path.display()),
        })?;
        let cert_der = pem_to_der(&cert_pem)?;
        check_key_matches(&cert_der, &key)?;
        let issuer =
            Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key).map_err(cert_error)?;
        Ok(Self {
            cert_pem,
            cert_der,
            key_pem,
            issuer,
        })
    }

    /// SHA-256 of the CA certificate DER.
    pub fn fingerprint(&self) -> CaFingerprint {
        CaFingerprint::of_der(&self.cert_der)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Signs a certificate for `node` over `public_key`: SAN = the node id, EKU server and
    /// client authentication.
    pub fn sign_node(
        &self,
        node: &NodeId,
        public_key: &impl PublicKeyData,
    ) -> Result<NodeCert, CaError> {
        let sign = |source| CaError::Sign {
            node: node.to_string(),
            source,
        };
        let mut params = CertificateParams::new(vec![node.to_string()]).map_err(sign)?;
        params
            .distinguished_name
            .push(DnType::CommonName, node.as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(public_key, &self.issuer).map_err(sign)?;
        Ok(NodeCert {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
        })
    }

    /// Signs a certificate for `node` over the key of a DER certificate signing request (the
    /// request's signature is checked; what it asks for besides the key is ignored).
    pub fn sign_csr(&self, node: &NodeId, csr_der: &[u8]) -> Result<NodeCert, CaError> {
        let csr = CertificateSigningRequestParams::from_der(&csr_der.into())
            .map_err(|source| CaError::Csr { source })?;
        self.sign_node(node, &csr.public_key)
    }

    /// A fresh key and a certificate for `node`: the identity of a node this CA's holder
    /// sets up itself (the `--init` node).
    pub fn issue_identity(&self, node: &NodeId) -> Result<NodeIdentity, CaError> {
        let key = NodeKey::generate()?;
        let cert = self.sign_node(node, &key.key)?;
        key.into_identity(&cert.cert_pem, &self.cert_pem)
    }
}

fn check_key_matches(cert_der: &[u8], key: &KeyPair) -> Result<(), CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(cert_error)?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(CaError::Key {
            reason: "the key does not belong to the certificate".to_owned(),
        });
    }
    Ok(())
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    write_atomic(path, contents, mode).map_err(|source| CaError::Write {
        path: path.to_owned(),
        source,
    })
}

fn read_file(path: &Path, private: bool) -> Result<String, CaError> {
    let read = |source| CaError::Read {
        path: path.to_owned(),
        source,
    };
    if private && let Some(mode) = exposed_mode(path).map_err(read)? {
        return Err(CaError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

/// A node's new private key, before it has a certificate (the joining side).
pub struct NodeKey {
    key: KeyPair,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    /// A new ECDSA P-256 key.
    pub fn generate() -> Result<Self, CaError> {
        let key = KeyPair::generate().map_err(|source| CaError::Generate {
            what: "a node key",
            source,
        })?;
        Ok(Self { key })
    }

    /// A DER certificate signing request for `node`, proving possession of the key.
    pub fn csr_der(&self, node: &NodeId) -> Result<Vec<u8>, CaError> {
        let params = CertificateParams::new(vec![node.to_string()])
            .map_err(|source| CaError::Csr { source })?;
        let csr = params
            .serialize_request(&self.key)
            .map_err(|source| CaError::Csr { source })?;
        Ok(csr.der().to_vec())
    }

    /// The identity made of this key, the certificate signed for it and the CA certificate.
    /// Refused when the certificate is not for this key or not signed by that CA.
    pub fn into_identity(self, cert_pem: &str, ca_pem: &str) -> Result<NodeIdentity, CaError> {
        NodeIdentity::from_pem(
            Zeroizing::new(self.key.serialize_pem()),
            cert_pem.to_owned(),
            ca_pem.to_owned(),
        )
    }
}

/// What a node needs for mutual TLS: its key, its certificate and the cluster CA certificate.
pub struct NodeIdentity {
    node_id: NodeId,
    key_pem: Zeroizing<String>,
    cert_pem: String,
    ca_pem: String,
    cert_der: Vec<u8>,
    ca_der: Vec<u8>,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node_id", &self.node_id.as_str())
            .field("ca", &self.ca_fingerprint().to_string())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl NodeIdentity {
    /// Builds an identity from PEM texts, checking that the key belongs to the certificate,
    /// that the CA signed it and that it names a valid node id.
    pub fn from_pem(
        key_pem: Zeroizing<String>,
        cert_pem: String,
        ca_pem: String,
    ) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Key {
            reason: e.to_string(),
        })?;
        let cert_der = pem_to_der(&cert_pem)?;
        let ca_der = pem_to_der(&ca_pem)?;
        check_key_matches(&cert_der, &key)?;
        verify_signed_by(&cert_der, &ca_der)?;
        let node_id = node_id_from_cert_der(&cert_der)?;
        Ok(Self {
            node_id,
            key_pem,
            cert_pem,
            ca_pem,
            cert_der,
            ca_der,
        })
    }

    /// Writes `node.key` (0600), `node.crt` and `ca.crt` (0644) into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<(), CaError> {
        write_file(&dir.join(NODE_KEY_FILE), self.key_pem.as_bytes(), 0o600)?;
        write_file(&dir.join(NODE_CERT_FILE), self.cert_pem.as_bytes(), 0o644)?;
        write_file(&dir.join(NODE_CA_FILE), self.ca_pem.as_bytes(), 0o644)
    }

    /// Reads an identity written by [`NodeIdentity::save`]; an exposed key file is refused.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let key_pem = Zeroizing::new(read_file(&dir.join(NODE_KEY_FILE), true)?);
        let cert_pem = read_file(&dir.join(NODE_CERT_FILE), false)?;
        let ca_pem = read_file(&dir.join(NODE_CA_FILE), false)?;
        Self::from_pem(key_pem, cert_pem, ca_pem)
    }

    /// The node id from the certificate.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The node certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The node certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The fingerprint of the CA this node trusts.
    pub fn ca_fingerprint(&self) -> CaFingerprint {
        CaFingerprint::of_der(&self.ca_der)
    }

    /// The private key as PKCS#8 DER (for the TLS stack); zeroized on drop.
    pub fn key_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CaError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(|e| CaError::Key {
            reason: e.to_string(),
        })?;
        Ok(Zeroizing::new(key.serialize_der()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn node(id: &str) -> NodeId {
        NodeId::new(id).unwrap()
    }

    #[test]
    fn node_ids_are_validated() {
        for ok in ["a", "node-1", "n1.dc1", &"a".repeat(63)] {
            assert!(NodeId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a..b",
            "a b",
            "a_b",
            &"a".repeat(64),
            "é",
        ] {
            assert!(NodeId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn node_cert_names_the_node_and_is_signed_by_the_ca() {
        let ca = ClusterCa::generate("test").unwrap();
        let id = ca.issue_identity(&node("node-a")).unwrap();
        assert_eq!(id.node_id(), &node("node-a"));
        assert_eq!(
            node_id_from_cert_der(id.cert_der()).unwrap(),
            node("node-a")
        );
        verify_signed_by(id.cert_der(), ca.cert_der()).unwrap();
        assert_eq!(id.ca_fingerprint(), ca.fingerprint());
        let (_, cert) = x509_parser::parse_x509_certificate(id.cert_der()).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert!(ca_cert.is_ca());
    }

    #[test]
    fn another_ca_does_not_verify() {
        let ca = ClusterCa::generate("one").unwrap();
        let other = ClusterCa::generate("two").unwrap();
        let id = other.issue_identity(&node("node-b")).unwrap();
        assert!(verify_signed_by(id.cert_der(), ca.cert_der()).is_err());
        assert_ne!(ca.fingerprint(), other.fingerprint());
        // An identity mixing a certificate with a CA that did not sign it is refused.
        let mixed = NodeIdentity::from_pem(
            Zeroizing::new(id.key_pem.to_string()),
            id.cert_pem().to_owned(),
            ca.cert_pem().to_owned(),
        );
        assert!(mixed.is_err());
    }

    #[test]
    fn csr_flow_and_key_mismatch() {
        let ca = ClusterCa::generate("test").unwrap();
        let key = NodeKey::generate().unwrap();
        let csr = key.csr_der(&node("joiner")).unwrap();
        let cert = ca.sign_csr(&node("joiner"), &csr).unwrap();
        let other_key = NodeKey::generate().unwrap();
        assert!(
            other_key
                .into_identity(&cert.cert_pem, ca.cert_pem())
                .is_err()
        );
        let id = key.into_identity(&cert.cert_pem, ca.cert_pem()).unwrap();
        assert_eq!(id.node_id().as_str(), "joiner");
        let mut bad = csr.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(ca.sign_csr(&node("joiner"), &bad).is_err());
        assert!(ca.sign_csr(&node("joiner"), b"garbage").is_err());
    }

    #[test]
    fn ca_files_round_trip_and_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("test").unwrap();
        ca.to_files(dir.path()).unwrap();
        let key_path = dir.path().join(CA_KEY_FILE);
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = ClusterCa::from_files(dir.path()).unwrap();
        assert_eq!(back.fingerprint(), ca.fingerprint());
        // The reloaded CA still signs certificates the original CA certificate verifies.
        let id = back.issue_identity(&node("node-c")).unwrap();
        verify_signed_by(id.cert_der(), ca.cert_der()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            ClusterCa::from_files(dir.path()),
            Err(CaError::Exposed { .. })
        ));
    }

    #[test]
    fn identity_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::generate("test").unwrap();
        let id = ca.issue_identity(&node("node-d")).unwrap();
        id.save(dir.path()).unwrap();
        let key_path = dir.path().join(NODE_KEY_FILE);
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = NodeIdentity::load(dir.path()).unwrap();
        assert_eq!(back.node_id(), id.node_id());
        assert_eq!(back.cert_der(), id.cert_der());
        assert_eq!(*back.key_pkcs8_der().unwrap(), *id.key_pkcs8_der().unwrap());
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            NodeIdentity::load(dir.path()),
            Err(CaError::Exposed { .. })
        ));
    }

    #[test]
    fn debug_never_shows_keys() {
        let ca = ClusterCa::generate("test").unwrap();
        let id = ca.issue_identity(&node("node-e")).unwrap();
        let key = NodeKey::generate().unwrap();
        for text in [format!("{ca:?}"), format!("{id:?}"), format!("{key:?}")] {
            assert!(text.contains("redacted"), "{text}");
            assert!(!text.contains("PRIVATE"), "{text}");
        }
        let key_body: String = id.key_pem.lines().nth(1).unwrap().to_owned();
        assert!(!format!("{id:?}").contains(&key_body));
        assert!(!format!("{ca:?}").contains(ca.key_pem.lines().nth(1).unwrap()));
    }

    #[test]
    fn fingerprint_parses_and_refuses() {
        let ca = ClusterCa::generate("test").unwrap();
        let text = ca.fingerprint().to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<CaFingerprint>().unwrap(), ca.fingerprint());
        assert!("abc".parse::<CaFingerprint>().is_err());
        assert!("zz".repeat(32).parse::<CaFingerprint>().is_err());
    }
}
