//! A chitchat `Transport` over tokio UDP that seals every datagram (see [`crate::seal`]).
//!
//! The keyring is shared (`Arc<RwLock<Keyring>>`) so keys rotate while the socket runs.
//! Datagrams that do not open or parse are counted and skipped: `recv` only returns an
//! error when the socket itself is broken, so bad bytes never stop the gossip loop.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use chitchat::ChitchatMessage;
use chitchat::transport::{Socket, Transport};
use ring::rand::{SecureRandom, SystemRandom};
use tracing::debug;
use weft_keys::Keyring;

use crate::seal::{self, Receiver, TransportStats};

/// A keyring shared between the NetworkDb and its socket.
pub type SharedKeyring = Arc<RwLock<Keyring>>;

/// Fault injection (partition tests, benchmarks, the cluster harness): while `cut` is
/// set the socket neither sends nor delivers anything, as if the host were cut off; a
/// loss fraction drops that share of outgoing datagrams at random, as a lossy link would.
#[derive(Debug, Default)]
pub struct Isolation {
    cut: AtomicBool,
    /// Drop an outgoing datagram when a uniform 32-bit sample is below this (0: no loss,
    /// 2^32: all).
    loss_threshold: AtomicU64,
}

const SAMPLE_SPACE: f64 = 4_294_967_296.0;

impl Isolation {
    /// Cuts the node off (true) or heals it (false).
    pub fn set(&self, isolated: bool) {
        self.cut.store(isolated, Ordering::Relaxed);
    }

    /// Whether the node is cut off.
    pub fn get(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// Drops `fraction` (clamped to 0..=1; NaN is 0) of outgoing datagrams from now on.
    pub fn set_loss(&self, fraction: f32) {
        let f = if fraction.is_nan() {
            0.0
        } else {
            f64::from(fraction).clamp(0.0, 1.0)
        };
        // In 0..=2^32 after the clamp, so the cast neither truncates nor wraps.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let threshold = (f * SAMPLE_SPACE).round() as u64;
        self.loss_threshold.store(threshold, Ordering::Relaxed);
    }

    /// The fraction of outgoing datagrams dropped.
    pub fn loss(&self) -> f32 {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let f = (self.loss_threshold.load(Ordering::Relaxed) as f64 / SAMPLE_SPACE) as f32;
        f
    }

    /// Whether any loss is set (so the socket only draws samples when it needs them).
    pub fn lossy(&self) -> bool {
        self.loss_threshold.load(Ordering::Relaxed) > 0
    }

    /// Whether the datagram that drew the uniform `sample` is dropped.
    pub fn drops(&self, sample: u32) -> bool {
        u64::from(sample) < self.loss_threshold.load(Ordering::Relaxed)
    }
}

/// Opens sealed UDP sockets for chitchat.
#[derive(Debug, Clone)]
pub struct SealedTransport {
    keyring: SharedKeyring,
    stats: Arc<TransportStats>,
    isolation: Arc<Isolation>,
}

impl SealedTransport {
    /// A transport sealing under `keyring`, counting into `stats`.
    pub fn new(
        keyring: SharedKeyring,
        stats: Arc<TransportStats>,
        isolation: Arc<Isolation>,
    ) -> Self {
        SealedTransport {
            keyring,
            stats,
            isolation,
        }
    }
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr).await?;
        Ok(Box::new(SealedSocket {
            socket,
            transport: self.clone(),
            rng: SystemRandom::new(),
            next_msg_id: 0,
            receiver: Receiver::default(),
            recv_buf: vec![0u8; 1 << 16].into_boxed_slice(),
        }))
    }
}

struct SealedSocket {
    socket: tokio::net::UdpSocket,
    transport: SealedTransport,
    rng: SystemRandom,
    next_msg_id: u32,
    receiver: Receiver,
    recv_buf: Box<[u8]>,
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::OutOfMemory
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

impl SealedSocket {
    fn seal(&mut self, msg: &ChitchatMessage) -> Result<Vec<Vec<u8>>, seal::SealError> {
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        let ring = self
            .transport
            .keyring
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        seal::seal_message(&ring, msg, self.next_msg_id, &self.rng)
    }

    /// Whether the next outgoing datagram is lost to injected loss.
    fn injected_loss(&self) -> bool {
        let isolation = &self.transport.isolation;
        if !isolation.lossy() {
            return false;
        }
        let mut sample = [0u8; 4];
        // Without randomness, send: injected loss is a test knob, not a security property.
        self.rng.fill(&mut sample).is_ok() && isolation.drops(u32::from_be_bytes(sample))
    }

    /// Receives one datagram; `Ok(None)` when it was dropped or is an incomplete fragment.
    async fn recv_one(&mut self) -> anyhow::Result<Option<(SocketAddr, ChitchatMessage)>> {
        let (len, from) = match self.socket.recv_from(&mut self.recv_buf).await {
            Ok(got) => got,
            Err(err) if is_transient(&err) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if self.transport.isolation.get() {
            return Ok(None);
        }
        let ring = self
            .transport
            .keyring
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let stats = &self.transport.stats;
        match self
            .receiver
            .receive(&ring, stats, from, &self.recv_buf[..len], Instant::now())
        {
            Ok(msg) => Ok(msg.map(|m| (from, m))),
            Err(reason) => {
                debug!(%from, len, ?reason, "dropped gossip datagram");
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl Socket for SealedSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        if self.transport.isolation.get() {
            return Ok(());
        }
        let stats = self.transport.stats.clone();
        let frames = match self.seal(&msg) {
            Ok(frames) => frames,
            Err(err) => {
                stats.send_failed(Some(err));
                debug!(%to, ?err, "gossip message not sealed");
                return Ok(());
            }
        };
        if frames.len() > 1 {
            stats.fragments(true, frames.len());
        }
        for frame in frames {
            if self.injected_loss() {
                stats.injected_loss();
                continue;
            }
            match self.socket.send_to(&frame, to).await {
                Ok(n) => stats.sent(n),
                // UDP is best effort: a failed send is a lost datagram, not a broken socket.
                Err(err) => {
                    stats.send_failed(None);
                    debug!(%to, %err, "gossip datagram not sent");
                }
            }
        }
        Ok(())
    }

    /// Cancel-safe: the only await point is `recv_from`, which is; a message's fragments
    /// are sent in one `send` call, but the await between them may be cancelled (a lost
    /// fragment, as on the wire).
    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            if let Some(got) = self.recv_one().await? {
                return Ok(got);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_knob_drops_that_fraction_of_samples() {
        let iso = Isolation::default();
        assert!(!iso.lossy());
        assert!(!iso.drops(0));
        iso.set_loss(1.0);
        assert!(iso.lossy() && iso.drops(0) && iso.drops(u32::MAX));
        iso.set_loss(0.25);
        assert!((iso.loss() - 0.25).abs() < 1e-6);
        assert!(iso.drops(u32::MAX / 4 - 1));
        assert!(!iso.drops(u32::MAX / 4 + 1));
        // An even spread of samples: exactly a quarter dropped.
        let dropped = (0u32..4096).filter(|i| iso.drops(i << 20)).count();
        assert_eq!(dropped, 1024);
        for bad in [-1.0, f32::NAN] {
            iso.set_loss(bad);
            assert!(!iso.lossy());
        }
        iso.set_loss(7.0);
        assert!((iso.loss() - 1.0).abs() < f32::EPSILON);
    }

    #[test]
    fn loss_knob_on_a_real_socket_drops_about_that_fraction() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ring = Keyring::new(weft_keys::SymmetricKey::new(weft_keys::KeyId(1), [9; 32]));
            let stats = Arc::new(TransportStats::default());
            let isolation = Arc::new(Isolation::default());
            let transport = SealedTransport::new(
                Arc::new(RwLock::new(ring)),
                stats.clone(),
                isolation.clone(),
            );
            let mut socket = transport.open(([127, 0, 0, 1], 0).into()).await.unwrap();
            let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let to = sink.local_addr().unwrap();
            let msg = || ChitchatMessage::BadCluster;
            isolation.set_loss(0.2);
            for _ in 0..2000 {
                socket.send(to, msg()).await.unwrap();
            }
            let c = stats.snapshot();
            assert_eq!(c.datagrams_out + c.dropped_injected, 2000);
            // 400 expected; 5 standard deviations (about 18 each) either side.
            assert!((310..=490).contains(&c.dropped_injected), "{c:?}");
            isolation.set_loss(0.0);
            socket.send(to, msg()).await.unwrap();
            let after = stats.snapshot();
            assert_eq!(after.dropped_injected, c.dropped_injected);
            assert_eq!(after.datagrams_out, c.datagrams_out + 1);
        });
    }
}
