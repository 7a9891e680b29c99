//! What a server counts: datagrams that cannot be QUIC for it, handshakes that failed and
//! why, connections and requests it refused. Atomics shared between the accept loop, the
//! socket and whoever reports them; [`ServerStats`] is a snapshot.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a handshake did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// The peer ended the handshake with a TLS alert: it did not accept this server's
    /// certificate (a joiner whose token names another CA, or a node of another cluster).
    PeerRejectedTls,
    /// This server ended it with a TLS alert: the peer's certificate is not from the CA, or
    /// it offered no protocol we speak.
    RejectedPeerTls,
    /// No answer within the handshake timeout.
    Timeout,
    /// Anything else (the peer closed it, a transport error that is not TLS).
    Other,
}

/// The live counters of a server.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub datagrams_in: AtomicU64,
    pub junk_datagrams: AtomicU64,
    pub handshakes_started: AtomicU64,
    pub handshakes_completed: AtomicU64,
    pub handshake_peer_rejected_tls: AtomicU64,
    pub handshake_rejected_peer_tls: AtomicU64,
    pub handshake_timeout: AtomicU64,
    pub handshake_other: AtomicU64,
    pub connections_refused: AtomicU64,
    pub requests_too_large: AtomicU64,
    pub requests_timed_out: AtomicU64,
    pub requests_failed: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn handshake_failed(&self, why: HandshakeFailure) {
        bump(match why {
            HandshakeFailure::PeerRejectedTls => &self.handshake_peer_rejected_tls,
            HandshakeFailure::RejectedPeerTls => &self.handshake_rejected_peer_tls,
            HandshakeFailure::Timeout => &self.handshake_timeout,
            HandshakeFailure::Other => &self.handshake_other,
        });
    }

    pub fn snapshot(&self) -> ServerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStats {
            datagrams_in: get(&self.datagrams_in),
            junk_datagrams: get(&self.junk_datagrams),
            handshakes_started: get(&self.handshakes_started),
            handshakes_completed: get(&self.handshakes_completed),
            handshake_peer_rejected_tls: get(&self.handshake_peer_rejected_tls),
            handshake_rejected_peer_tls: get(&self.handshake_rejected_peer_tls),
            handshake_timeout: get(&self.handshake_timeout),
            handshake_other: get(&self.handshake_other),
            connections_refused: get(&self.connections_refused),
            requests_too_large: get(&self.requests_too_large),
            requests_timed_out: get(&self.requests_timed_out),
            requests_failed: get(&self.requests_failed),
        }
    }
}

/// Reads a server's counters; outlives the server (the counts stay as they were).
#[derive(Clone, Debug)]
pub struct StatsHandle(pub(crate) std::sync::Arc<Counters>);

impl StatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> ServerStats {
        self.0.snapshot()
    }
}

/// A snapshot of a server's counters (all since it started).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Every datagram received on the port.
    pub datagrams_in: u64,
    /// Datagrams that cannot be QUIC for this server: empty or too short, a QUIC version it
    /// does not speak, or a short-header packet with a connection id it never issued.
    /// quinn drops them silently; forged packets that look like QUIC v1 are not included.
    pub junk_datagrams: u64,
    /// Connection attempts quinn handed to the server (a valid QUIC v1 Initial).
    pub handshakes_started: u64,
    /// Handshakes that completed (the connection may still be refused after).
    pub handshakes_completed: u64,
    /// The peer aborted the handshake with a TLS alert: it rejected this server's certificate.
    pub handshake_peer_rejected_tls: u64,
    /// This server aborted it with a TLS alert: it rejected the peer's certificate or ALPN.
    pub handshake_rejected_peer_tls: u64,
    /// Handshakes that did not finish within the handshake timeout.
    pub handshake_timeout: u64,
    /// Handshakes that failed otherwise.
    pub handshake_other: u64,
    /// Connections closed after the handshake: RPC without a certificate, or a protocol
    /// this server does not serve.
    pub connections_refused: u64,
    /// Requests over the size cap.
    pub requests_too_large: u64,
    /// Requests not read, answered or written in time.
    pub requests_timed_out: u64,
    /// Requests whose stream failed while it was read.
    pub requests_failed: u64,
}
