//! The server: accepts connections, checks who the peer is, serves one request per stream.

use crate::socket::{Classifier, CountingSocket, QUIC_V1};
use crate::stats::{Counters, HandshakeFailure, StatsHandle, bump};
use crate::tls::{TlsMaterial, negotiated_alpn, peer_node_id, server_config, tls_error};
use crate::{ALPN_JOIN, ALPN_RPC, MAX_MESSAGE, RpcError, code};
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Connection, ConnectionError, Endpoint, Incoming, RecvStream, SendStream};
use quinn_proto::HashedConnectionIdGenerator;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;
use weft_keys::{NodeId, NodeIdentity};

/// Who sent an authenticated request: the node id from its certificate and its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerId {
    /// The node id, from the SAN of the certificate the CA signed.
    pub node_id: NodeId,
    /// The peer's UDP address.
    pub addr: SocketAddr,
}

type Reply = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;
/// Serves authenticated requests: the peer and the request bytes in, the response out.
pub type RpcHandler = Arc<dyn Fn(PeerId, Vec<u8>) -> Reply + Send + Sync>;
/// Serves join requests (no certificate): the peer address and the request bytes in.
pub type JoinHandler = Arc<dyn Fn(SocketAddr, Vec<u8>) -> Reply + Send + Sync>;

/// An [`RpcHandler`] from an async closure.
pub fn rpc_handler<F, Fut>(f: F) -> RpcHandler
where
    F: Fn(PeerId, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<u8>> + Send + 'static,
{
    Arc::new(move |peer, request| Box::pin(f(peer, request)))
}

/// A [`JoinHandler`] from an async closure.
pub fn join_handler<F, Fut>(f: F) -> JoinHandler
where
    F: Fn(SocketAddr, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<u8>> + Send + 'static,
{
    Arc::new(move |addr, request| Box::pin(f(addr, request)))
}

/// Limits of a server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Cap on a request and on a response, in bytes.
    pub max_message: usize,
    /// Bound on the TLS handshake.
    pub handshake_timeout: Duration,
    /// Bound on reading a request, on the handler, and on writing the response (each).
    pub exchange_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_message: MAX_MESSAGE,
            handshake_timeout: Duration::from_secs(5),
            exchange_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

struct Context {
    options: ServerOptions,
    rpc: RpcHandler,
    join: Option<JoinHandler>,
    counters: Arc<Counters>,
}

/// A running server; dropping it stops accepting and closes its connections.
pub struct RpcServer {
    endpoint: Endpoint,
    task: tokio::task::JoinHandle<()>,
    stats: StatsHandle,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish()
    }
}

impl RpcServer {
    /// Serves authenticated requests on `addr` with default limits and no join protocol.
    pub fn bind<F, Fut>(
        addr: SocketAddr,
        identity: &NodeIdentity,
        handler: F,
    ) -> Result<Self, RpcError>
    where
        F: Fn(PeerId, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<u8>> + Send + 'static,
    {
        let material = TlsMaterial::from_identity(identity)?;
        Self::bind_with(
            addr,
            &material,
            ServerOptions::default(),
            rpc_handler(handler),
            None,
        )
    }

    /// Serves authenticated requests and, when `join` is given, join requests on `addr`.
    pub fn bind_with(
        addr: SocketAddr,
        material: &TlsMaterial,
        options: ServerOptions,
        rpc: RpcHandler,
        join: Option<JoinHandler>,
    ) -> Result<Self, RpcError> {
        let tls = server_config(material, join.is_some())?;
        let crypto = QuicServerConfig::try_from(tls).map_err(tls_error)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(options.idle_timeout).map_err(tls_error)?,
        ));
        config.transport_config(Arc::new(transport));
        let counters = Arc::new(Counters::default());
        let endpoint = endpoint(addr, config, counters.clone())
            .map_err(|source| RpcError::Bind { addr, source })?;
        let context = Arc::new(Context {
            options,
            rpc,
            join,
            counters: counters.clone(),
        });
        let task = tokio::spawn(accept_loop(endpoint.clone(), context));
        Ok(Self {
            endpoint,
            task,
            stats: StatsHandle(counters),
        })
    }

    /// The server's counters, readable after it is gone.
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Stops accepting, closes connections and waits (at most one second) for the peers to
    /// be told.
    pub async fn shutdown(self) {
        self.task.abort();
        self.endpoint.close(code::SHUTDOWN, b"shutdown");
        let _ = timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.task.abort();
        self.endpoint.close(code::SHUTDOWN, b"shutdown");
    }
}

/// A server endpoint on a counting socket. Connection ids come from a keyed generator the
/// socket's classifier shares, so it can tell a packet of ours from junk; only QUIC v1 is
/// offered (the classifier counts other versions as junk).
fn endpoint(
    addr: SocketAddr,
    config: quinn::ServerConfig,
    counters: Arc<Counters>,
) -> std::io::Result<Endpoint> {
    let key: u64 = rand::random();
    let mut endpoint_config = quinn::EndpointConfig::default();
    endpoint_config
        .cid_generator(move || Box::new(HashedConnectionIdGenerator::from_key(key)))
        .supported_versions(vec![QUIC_V1]);
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let socket = runtime.wrap_udp_socket(std::net::UdpSocket::bind(addr)?)?;
    let socket = CountingSocket::new(socket, Classifier::new(key), counters);
    Endpoint::new_with_abstract_socket(endpoint_config, Some(config), Arc::new(socket), runtime)
}

async fn accept_loop(endpoint: Endpoint, context: Arc<Context>) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve_connection(incoming, context.clone()));
    }
}

enum Kind {
    Rpc(PeerId),
    Join(JoinHandler),
}

async fn serve_connection(incoming: Incoming, context: Arc<Context>) {
    let addr = incoming.remote_address();
    let counters = &context.counters;
    bump(&counters.handshakes_started);
    let conn = match timeout(context.options.handshake_timeout, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => {
            handshake_failed(counters, addr, &error);
            return;
        }
        Err(_) => {
            counters.handshake_failed(HandshakeFailure::Timeout);
            tracing::debug!(%addr, "rpc handshake timed out");
            return;
        }
    };
    bump(&counters.handshakes_completed);
    let Some(kind) = classify(&conn, &context, addr) else {
        bump(&counters.connections_refused);
        tracing::info!(%addr, "rpc connection refused: no certificate or unknown protocol");
        conn.close(code::REFUSED, b"refused");
        return;
    };
    while let Ok((send, recv)) = conn.accept_bi().await {
        let kind = match &kind {
            Kind::Rpc(peer) => Kind::Rpc(peer.clone()),
            Kind::Join(handler) => Kind::Join(handler.clone()),
        };
        tokio::spawn(serve_stream(send, recv, kind, context.clone(), addr));
    }
}

/// Counts and logs a failed handshake. TLS failures are worth an operator's attention: the
/// peer holds a token or a certificate for another cluster, or dialled the wrong address.
fn handshake_failed(counters: &Counters, addr: SocketAddr, error: &ConnectionError) {
    let why = handshake_failure(error);
    counters.handshake_failed(why);
    match why {
        HandshakeFailure::PeerRejectedTls => tracing::warn!(
            %addr,
            alert = %tls_alert(error),
            "the peer rejected this node's certificate during the rpc handshake: it trusts another CA (a join token for another cluster, or a wrong address)"
        ),
        HandshakeFailure::RejectedPeerTls => tracing::info!(
            %addr,
            alert = %tls_alert(error),
            "rejected a peer during the rpc handshake: its certificate is not from the cluster CA, or it speaks no weft protocol"
        ),
        HandshakeFailure::Timeout | HandshakeFailure::Other => {
            tracing::debug!(%addr, %error, "rpc handshake failed")
        }
    }
}

/// TLS alerts travel in QUIC as CRYPTO_ERROR, codes 0x100 + alert (RFC 9001 §4.8).
fn crypto_alert(code: quinn::TransportErrorCode) -> Option<u8> {
    u64::from(code)
        .checked_sub(0x100)
        .and_then(|alert| u8::try_from(alert).ok())
}

fn handshake_failure(error: &ConnectionError) -> HandshakeFailure {
    match error {
        ConnectionError::ConnectionClosed(close) if crypto_alert(close.error_code).is_some() => {
            HandshakeFailure::PeerRejectedTls
        }
        ConnectionError::TransportError(e) if crypto_alert(e.code).is_some() => {
            HandshakeFailure::RejectedPeerTls
        }
        ConnectionError::TimedOut => HandshakeFailure::Timeout,
        _ => HandshakeFailure::Other,
    }
}

/// The name of the TLS alert that ended a handshake, for logs.
fn tls_alert(error: &ConnectionError) -> String {
    let code = match error {
        ConnectionError::ConnectionClosed(close) => close.error_code,
        ConnectionError::TransportError(e) => e.code,
        _ => return "none".to_owned(),
    };
    crypto_alert(code).map_or_else(
        || "none".to_owned(),
        |alert| format!("{:?}", rustls::AlertDescription::from(alert)),
    )
}

fn classify(conn: &Connection, context: &Context, addr: SocketAddr) -> Option<Kind> {
    match negotiated_alpn(conn)?.as_slice() {
        alpn if alpn == ALPN_RPC => Some(Kind::Rpc(PeerId {
            node_id: peer_node_id(conn)?,
            addr,
        })),
        alpn if alpn == ALPN_JOIN => context.join.clone().map(Kind::Join),
        _ => None,
    }
}

async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    kind: Kind,
    context: Arc<Context>,
    addr: SocketAddr,
) {
    let options = &context.options;
    let request = match timeout(
        options.exchange_timeout,
        recv.read_to_end(options.max_message),
    )
    .await
    {
        Ok(Ok(request)) => request,
        Ok(Err(quinn::ReadToEndError::TooLong)) => {
            bump(&context.counters.requests_too_large);
            tracing::debug!(%addr, limit = options.max_message, "rpc request too large");
            let _ = recv.stop(code::TOO_LARGE);
            let _ = send.reset(code::TOO_LARGE);
            return;
        }
        Ok(Err(error)) => {
            bump(&context.counters.requests_failed);
            tracing::debug!(%addr, %error, "failed to read an rpc request");
            return;
        }
        Err(_) => {
            bump(&context.counters.requests_timed_out);
            let _ = recv.stop(code::TIMEOUT);
            let _ = send.reset(code::TIMEOUT);
            return;
        }
    };
    let reply = match kind {
        Kind::Rpc(peer) => (context.rpc)(peer, request),
        Kind::Join(handler) => handler(addr, request),
    };
    let Ok(response) = timeout(options.exchange_timeout, reply).await else {
        bump(&context.counters.requests_timed_out);
        tracing::warn!(%addr, "rpc handler timed out");
        let _ = send.reset(code::TIMEOUT);
        return;
    };
    if response.len() > options.max_message {
        tracing::warn!(%addr, len = response.len(), "rpc response too large");
        let _ = send.reset(code::TOO_LARGE);
        return;
    }
    match timeout(options.exchange_timeout, send.write_all(&response)).await {
        Ok(Ok(())) => {
            let _ = send.finish();
        }
        Ok(Err(error)) => tracing::debug!(%addr, %error, "failed to write an rpc response"),
        Err(_) => {
            let _ = send.reset(code::TIMEOUT);
        }
    }
}
