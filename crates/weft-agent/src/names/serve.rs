//! One sandbox's resolver: a UDP loop and a TCP accept loop on the sockets made in its
//! namespace, answering from the shared names, and forwarding what is not known here to
//! the upstream servers from the agent's own namespace (where the host's resolvers are
//! reachable; the sandbox may have no route out at all).

use super::{SharedNames, Upstream};
use serde::Serialize;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use weft_services::{Action, Outcome, Resolution, Transport, Verdict};
use weft_types::SandboxId;

/// Most forwards in flight per sandbox (Docker's limit); beyond it queries get REFUSED.
const MAX_FORWARDS: usize = 1024;
/// Most TCP clients at once per sandbox.
const MAX_TCP_CLIENTS: usize = 64;
/// How long one upstream server may take (Docker's 4 s).
const PER_SERVER: Duration = Duration::from_secs(4);
/// How long a forwarded query may take in all: clients give up after about 5 s, so a
/// SERVFAIL must reach them before.
const FORWARD_BUDGET: Duration = Duration::from_millis(4500);
/// An idle TCP client is closed after this long.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// A resolver's counters.
#[derive(Debug, Default)]
pub struct DnsCounters {
    queries: AtomicU64,
    local: AtomicU64,
    forwarded: AtomicU64,
    servfail: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
}

/// A snapshot of [`DnsCounters`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct DnsStats {
    /// Datagrams and TCP messages received.
    pub queries: u64,
    /// Answered from this host's names.
    pub local: u64,
    /// Relayed from an upstream server.
    pub forwarded: u64,
    /// Answered SERVFAIL because no upstream server answered.
    pub servfail: u64,
    /// Answered REFUSED: too many forwards in flight, or nowhere to forward to.
    pub refused: u64,
    /// Dropped or answered FORMERR/NOTIMP.
    pub malformed: u64,
}

impl DnsCounters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> DnsStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DnsStats {
            queries: get(&self.queries),
            local: get(&self.local),
            forwarded: get(&self.forwarded),
            servfail: get(&self.servfail),
            refused: get(&self.refused),
            malformed: get(&self.malformed),
        }
    }
}

/// What a resolver needs.
#[derive(Debug, Clone)]
pub(crate) struct ResolverConfig {
    pub sandbox: SandboxId,
    pub names: SharedNames,
    pub upstream: Arc<Upstream>,
    pub counters: Arc<DnsCounters>,
}

/// Serves the sandbox's sockets; the tasks end when aborted.
pub(crate) fn spawn(
    config: ResolverConfig,
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
) -> io::Result<Vec<JoinHandle<()>>> {
    let udp = Arc::new(UdpSocket::from_std(udp)?);
    let tcp = TcpListener::from_std(tcp)?;
    let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
    let udp_task = tokio::spawn(serve_udp(config.clone(), udp, forwards.clone()));
    let tcp_task = tokio::spawn(serve_tcp(config, tcp, forwards));
    Ok(vec![udp_task, tcp_task])
}

/// What the sans-IO core says of `query`, answered from the shared names.
fn decide(config: &ResolverConfig, query: &[u8], transport: Transport) -> Resolution {
    let names = config.names.read().unwrap_or_else(|p| p.into_inner());
    let empty = weft_services::SandboxView::default();
    let view = names.views.get(&config.sandbox).unwrap_or(&empty);
    weft_services::resolve(&names.directory, view, query, transport, &mut rand::rng())
}

/// Counts the resolution; the reply to send now, or `Err` to forward the query.
fn local_reply(counters: &DnsCounters, resolution: Resolution) -> Result<Option<Vec<u8>>, ()> {
    DnsCounters::bump(&counters.queries);
    match resolution.outcome {
        Outcome::Answered | Outcome::Empty | Outcome::Truncated => {
            DnsCounters::bump(&counters.local)
        }
        Outcome::Internal => DnsCounters::bump(&counters.servfail),
        Outcome::Forwarded | Outcome::Failed => {}
        Outcome::Malformed | Outcome::NotImplemented | Outcome::BadVersion | Outcome::Garbage => {
            DnsCounters::bump(&counters.malformed)
        }
    }
    match resolution.action {
        Action::Answer(bytes) => Ok(Some(bytes)),
        Action::Drop => Ok(None),
        Action::Forward => Err(()),
    }
}

async fn serve_udp(config: ResolverConfig, socket: Arc<UdpSocket>, forwards: Arc<Semaphore>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            // ECONNREFUSED and the like from an earlier send: keep serving.
            continue;
        };
        let query = &buf[..n];
        match local_reply(&config.counters, decide(&config, query, Transport::Udp)) {
            Ok(Some(reply)) => {
                let _ = socket.send_to(&reply, client).await;
            }
            Ok(None) => {}
            Err(()) => {
                let query = query.to_vec();
                let reply_to = UdpReply {
                    socket: socket.clone(),
                    client,
                };
                start_forward(&config, &forwards, query, Transport::Udp, reply_to.into());
            }
        }
    }
}

/// Where a forwarded query's answer goes.
enum ReplyTo {
    Udp(UdpReply),
    Tcp(tokio::sync::oneshot::Sender<Vec<u8>>),
}

struct UdpReply {
    socket: Arc<UdpSocket>,
    client: SocketAddr,
}

impl From<UdpReply> for ReplyTo {
    fn from(r: UdpReply) -> Self {
        ReplyTo::Udp(r)
    }
}

impl ReplyTo {
    async fn send(self, reply: Vec<u8>) {
        match self {
            ReplyTo::Udp(r) => {
                let _ = r.socket.send_to(&reply, r.client).await;
            }
            ReplyTo::Tcp(tx) => {
                let _ = tx.send(reply);
            }
        }
    }
}

/// Forwards `query` on a task of its own, or answers REFUSED when too many are in flight.
fn start_forward(
    config: &ResolverConfig,
    forwards: &Arc<Semaphore>,
    query: Vec<u8>,
    transport: Transport,
    reply_to: ReplyTo,
) {
    let counters = config.counters.clone();
    let Ok(permit) = forwards.clone().try_acquire_owned() else {
        DnsCounters::bump(&counters.refused);
        if let Some(reply) = weft_services::refused(&query) {
            tokio::spawn(reply_to.send(reply));
        }
        return;
    };
    let servers = config.upstream.servers.clone();
    tokio::spawn(async move {
        let _permit = permit;
        match forward(&servers, &query, transport).await {
            Some(reply) => {
                DnsCounters::bump(&counters.forwarded);
                reply_to.send(reply).await;
            }
            None => {
                DnsCounters::bump(&counters.servfail);
                if let Some(reply) = weft_services::servfail(&query) {
                    reply_to.send(reply).await;
                }
            }
        }
    });
}

/// Asks each server in turn; the first reply worth relaying, or `None`.
async fn forward(servers: &[IpAddr], query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let deadline = Instant::now() + FORWARD_BUDGET;
    for server in servers {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let server = SocketAddr::new(*server, 53);
        let asked: Asked<'_> = match transport {
            Transport::Udp => ask_udp(server, query),
            Transport::Tcp => Box::pin(ask_tcp(server, query)),
        };
        let Ok(Ok(reply)) = tokio::time::timeout(left.min(PER_SERVER), asked).await else {
            continue;
        };
        match weft_services::judge_reply(query, &reply) {
            Verdict::Relay(reply) => return Some(reply),
            Verdict::TryNext(skip) => {
                tracing::debug!(%server, ?skip, "upstream reply not relayed: next server");
            }
        }
    }
    None
}

type Asked<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Vec<u8>>> + Send + 'a>>;

fn ask_udp(server: SocketAddr, query: &[u8]) -> Asked<'_> {
    Box::pin(async move {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(io::Error::other)?;
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(server).await?;
        socket.send(query).await?;
        let mut buf = vec![0u8; 65_535];
        // Datagrams that are not the answer (wrong id) are judged by the core: one read.
        let n = socket.recv(&mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    })
}

async fn ask_tcp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    write_message(&mut stream, query).await?;
    read_message(&mut stream).await
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(io::Error::other)?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

async fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0u8; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

async fn serve_tcp(config: ResolverConfig, listener: TcpListener, forwards: Arc<Semaphore>) {
    let clients = Arc::new(Semaphore::new(MAX_TCP_CLIENTS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Over the cap, the newest client is closed at once.
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            continue;
        };
        let (config, forwards) = (config.clone(), forwards.clone());
        tokio::spawn(async move {
            let _permit = permit;
            serve_tcp_client(config, stream, forwards).await;
        });
    }
}

/// Answers one TCP client's queries in order until it closes or idles.
async fn serve_tcp_client(config: ResolverConfig, mut stream: TcpStream, forwards: Arc<Semaphore>) {
    loop {
        let Ok(Ok(query)) = tokio::time::timeout(TCP_IDLE, read_message(&mut stream)).await else {
            return;
        };
        let reply = match local_reply(&config.counters, decide(&config, &query, Transport::Tcp)) {
            Ok(Some(reply)) => reply,
            // A malformed stream cannot be resynchronised: close it.
            Ok(None) => return,
            Err(()) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                start_forward(&config, &forwards, query, Transport::Tcp, ReplyTo::Tcp(tx));
                match rx.await {
                    Ok(reply) => reply,
                    Err(_) => return,
                }
            }
        };
        if write_message(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}
