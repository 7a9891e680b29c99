//! A chitchat `Transport` over tokio UDP that seals every datagram (see [`crate::seal`]).
//!
//! The keyring is shared (`Arc<RwLock<Keyring>>`) so keys rotate while the socket runs.
//! Datagrams that do not open or parse are counted and skipped: `recv` only returns an
//! error when the socket itself is broken, so bad bytes never stop the gossip loop.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use chitchat::ChitchatMessage;
use chitchat::transport::{Socket, Transport};
use ring::rand::SystemRandom;
use tracing::debug;
use weft_keys::Keyring;

use crate::seal::{self, Receiver, TransportStats};

/// A keyring shared between the NetworkDb and its socket.
pub type SharedKeyring = Arc<RwLock<Keyring>>;

/// Fault injection: while set, the socket neither sends nor delivers anything, as if
/// the host were cut off (used by partition tests and the cluster harness).
#[derive(Debug, Default)]
pub struct Isolation(AtomicBool);

impl Isolation {
    /// Cuts the node off (true) or heals it (false).
    pub fn set(&self, isolated: bool) {
        self.0.store(isolated, Ordering::Relaxed);
    }

    /// Whether the node is cut off.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
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
