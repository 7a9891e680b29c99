//! The errors of weft-rpc.

use std::net::SocketAddr;
use std::time::Duration;

/// An RPC could not be set up or did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("invalid TLS material: {0}")]
    Tls(String),
    #[error("failed to bind the QUIC endpoint on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("{addr} refused the connection: {reason}")]
    Refused { addr: SocketAddr, reason: String },
    #[error("timed out after {after:?} waiting for {addr}")]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request to {addr} failed: {reason}")]
    Stream { addr: SocketAddr, reason: String },
    #[error("{addr} failed the request with error code {code}")]
    Remote { addr: SocketAddr, code: u64 },
    #[error("failed to encode a message: {0}")]
    Encode(String),
    #[error("failed to decode a message: {0}")]
    Decode(String),
}
