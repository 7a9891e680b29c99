//! The server's UDP socket: quinn's own, wrapped to count every datagram and the junk among
//! them. quinn drops datagrams that are not QUIC without a trace (a `trace!` at most), so the
//! wrapper looks at each one first with the checks quinn's first step makes (RFC 9000 §17):
//! the header form, the version of a long header, the connection id of a short one. It never
//! changes or withholds a datagram.

use crate::stats::{Counters, bump};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, ConnectionId, UdpPoller};
use quinn_proto::{ConnectionIdGenerator, HashedConnectionIdGenerator};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// The only QUIC version weft speaks (RFC 9000); quinn is told so too.
pub(crate) const QUIC_V1: u32 = 1;
/// The length of the connection ids the server issues (quinn's hashed generator).
const CID_LEN: usize = 8;

/// Tells datagrams that may be QUIC for this server from junk.
pub(crate) struct Classifier {
    /// The same key as the endpoint's connection id generator: an id it issued validates.
    cids: HashedConnectionIdGenerator,
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier").finish_non_exhaustive()
    }
}

impl Classifier {
    /// A classifier for an endpoint whose connection ids come from
    /// `HashedConnectionIdGenerator::from_key(key)`.
    pub fn new(key: u64) -> Self {
        Self {
            cids: HashedConnectionIdGenerator::from_key(key),
        }
    }

    /// True when `datagram` cannot be a QUIC packet for this server.
    pub fn is_junk(&self, datagram: &[u8]) -> bool {
        let Some(&first) = datagram.first() else {
            return true;
        };
        if first & 0x80 != 0 {
            // Long header: form bit, then a 4-byte version (RFC 9000 §17.2).
            return datagram
                .get(1..5)
                .is_none_or(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]) != QUIC_V1);
        }
        // Short header: the destination connection id follows the first byte (§17.3).
        match datagram.get(1..1 + CID_LEN) {
            Some(cid) => self.cids.validate(&ConnectionId::new(cid)).is_err(),
            None => true,
        }
    }
}

/// quinn's socket, counting what it receives.
pub(crate) struct CountingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    classifier: Classifier,
    counters: Arc<Counters>,
}

impl fmt::Debug for CountingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl CountingSocket {
    pub fn new(
        inner: Arc<dyn AsyncUdpSocket>,
        classifier: Classifier,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            inner,
            classifier,
            counters,
        }
    }

    fn count(&self, buf: &[u8], meta: &RecvMeta) {
        let received = &buf[..meta.len.min(buf.len())];
        if received.is_empty() {
            // An empty datagram is one too (`chunks` yields nothing for it).
            return self.count_one(received, meta);
        }
        // With GRO one buffer holds several datagrams, `stride` bytes apart.
        for datagram in received.chunks(meta.stride.max(1)) {
            self.count_one(datagram, meta);
        }
    }

    fn count_one(&self, datagram: &[u8], meta: &RecvMeta) {
        bump(&self.counters.datagrams_in);
        if self.classifier.is_junk(datagram) {
            bump(&self.counters.junk_datagrams);
            tracing::debug!(from = %meta.addr, len = datagram.len(), "junk datagram on the rpc port");
        }
    }
}

impl AsyncUdpSocket for CountingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(self.inner.poll_recv(cx, bufs, meta))?;
        for (buf, meta) in bufs.iter().zip(meta.iter()).take(n) {
            self.count(buf, meta);
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_and_quic_v1_are_told_apart() {
        let classifier = Classifier::new(42);
        assert!(classifier.is_junk(b""));
        assert!(classifier.is_junk(b"hello, is this the rpc port?"));
        // Long header, version 1: may be an Initial.
        let mut initial = vec![0xc0, 0, 0, 0, 1];
        initial.resize(1200, 0);
        assert!(!classifier.is_junk(&initial));
        // Long header, another version (or too short to hold one).
        assert!(classifier.is_junk(&[0xc0, 0xff, 0, 0, 0x1d, 0, 0]));
        assert!(classifier.is_junk(&[0xc0, 0, 0]));
        // Short header: only with a connection id this endpoint issued.
        let mut generator = HashedConnectionIdGenerator::from_key(42);
        let cid = generator.generate_cid();
        let mut short = vec![0x40];
        short.extend_from_slice(&cid);
        short.extend_from_slice(&[0; 20]);
        assert!(!classifier.is_junk(&short));
        assert!(Classifier::new(43).is_junk(&short), "another endpoint's id");
        assert!(classifier.is_junk(&short[..5]));
    }
}
