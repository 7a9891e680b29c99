//! weft-rpc: node-to-node request/response over QUIC with mutual TLS.
//!
//! Transport only: bytes in, bytes out (plus [`encode`]/[`decode`] helpers for bincode with a
//! size cap). One bidirectional stream per request; both sides read with a size cap; every
//! wait is bounded. Two application protocols share one endpoint (UDP 7947 by default):
//!
//! - `weft-rpc/1`: mutual TLS with the cluster CA. The server hands the handler the peer's
//!   node id, taken from its certificate's SAN. A peer without a valid certificate gets
//!   nothing: its connection is closed before any stream is read.
//! - `weft-join/1`: for nodes that have no certificate yet. The client pins the cluster CA by
//!   the fingerprint its join token carries (the server sends the CA certificate in its
//!   chain), then sends whatever the caller wants (the token secret, a CSR); what comes back
//!   is the caller's business.
//!
//! TLS is rustls with the ring provider selected explicitly, so no process-wide provider is
//! needed. The server counts what it refuses ([`ServerStats`]: junk datagrams, failed
//! handshakes by cause, refused connections and requests); [`FailureLimiter`] is a sans-IO
//! per-source limit for callers that refuse attempts (the join handler's wrong secrets).
//! This crate knows nothing of managers, tokens or allocation.
#![forbid(unsafe_code)]

mod client;
mod codec;
mod error;
mod limit;
mod server;
mod socket;
mod stats;
mod tls;

#[cfg(test)]
mod tests;

pub use client::{JoinClient, RpcClient};
pub use codec::{decode, encode};
pub use error::RpcError;
pub use limit::{FailureLimiter, LimitConfig};
pub use server::{
    JoinHandler, PeerId, RpcHandler, RpcServer, ServerOptions, join_handler, rpc_handler,
};
pub use stats::{ServerStats, StatsHandle};
pub use tls::TlsMaterial;

/// ALPN of authenticated requests.
pub const ALPN_RPC: &[u8] = b"weft-rpc/1";
/// ALPN of join requests (no client certificate).
pub const ALPN_JOIN: &[u8] = b"weft-join/1";
/// Default cap on a request or a response, in bytes.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// The server name a join client asks for; not checked (the pinned CA is what is trusted).
pub const JOIN_SERVER_NAME: &str = "weft-join";

/// Stream and connection error codes sent to the peer.
pub(crate) mod code {
    use quinn::VarInt;
    /// The message exceeded the receiver's cap.
    pub const TOO_LARGE: VarInt = VarInt::from_u32(1);
    /// The receiver gave up waiting.
    pub const TIMEOUT: VarInt = VarInt::from_u32(2);
    /// RPC without a client certificate, or an unknown protocol.
    pub const REFUSED: VarInt = VarInt::from_u32(3);
    /// The server is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(4);
}
