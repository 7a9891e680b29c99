//! A fake upstream DNS server for tests of the embedded DNS's forwarding: a UDP socket in
//! a namespace of the test's own, answering every query the same way, counting them.
//! Replies are written by hand (a header copied from the query, one A record): the point
//! is to be a different implementation from the one under test.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How the fake server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// NOERROR with one A record of this address for the question's name.
    Answer(Ipv4Addr),
    /// SERVFAIL, no records.
    ServFail,
    /// Never answers.
    Silent,
}

/// A running fake upstream; stops when dropped.
#[derive(Debug)]
pub struct FakeUpstream {
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    /// Serves `addr` (port 53) inside namespace `netns` (a name under /run/netns).
    pub fn start(netns: &str, addr: Ipv4Addr, behaviour: Behaviour) -> anyhow::Result<Self> {
        let ns = std::fs::File::open(format!("/run/netns/{netns}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let bound = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
                .and_then(|()| UdpSocket::bind(SocketAddr::from((addr, 53))));
            let socket = match bound {
                Ok(socket) => {
                    let _ = tx.send(Ok(()));
                    socket
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
            serve(&socket, behaviour, &q, &s);
        });
        rx.recv_timeout(Duration::from_secs(5))??;
        Ok(FakeUpstream {
            queries,
            stop,
            thread: Some(thread),
        })
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(socket: &UdpSocket, behaviour: Behaviour, queries: &AtomicUsize, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        if let Some(reply) = reply(&buf[..n], behaviour) {
            let _ = socket.send_to(&reply, from);
        }
    }
}

/// The reply to one query: its header and question, then the answer.
pub fn reply(query: &[u8], behaviour: Behaviour) -> Option<Vec<u8>> {
    let question_end = question_end(query)?;
    let mut out = query[..question_end].to_vec();
    out[2] = 0x80 | (query[2] & 0x01); // QR, RD copied
    out[3] = 0x80; // RA, NOERROR
    out[6..12].fill(0); // no answers, authorities or additionals yet
    match behaviour {
        Behaviour::Silent => return None,
        Behaviour::ServFail => out[3] |= 2,
        Behaviour::Answer(ip) => {
            out[7] = 1;
            // The question's name by pointer, type A, class IN, TTL 60, 4 bytes.
            out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            out.extend_from_slice(&ip.octets());
        }
    }
    Some(out)
}

/// Where the (single) question ends: after its name, type and class.
fn question_end(query: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        at += len;
    }
    (at + 4 <= query.len()).then_some(at + 4)
}

/// `dig @127.0.0.11` inside `sandbox` (one try, 6 s) with `args`: its stdout.
pub fn dig(agent: &crate::Agent, sandbox: &str, args: &[&str]) -> String {
    let mut full = vec![
        "exec",
        sandbox,
        "--",
        "dig",
        "@127.0.0.11",
        "+time=6",
        "+tries=1",
    ];
    full.extend(args);
    agent.cli(&full).stdout
}

/// The lines `dig +short` prints for `args` inside `sandbox`, sorted.
pub fn dig_short(agent: &crate::Agent, sandbox: &str, args: &[&str]) -> Vec<String> {
    let mut full = vec!["+short"];
    full.extend(args);
    let mut lines: Vec<String> = dig(agent, sandbox, &full)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}
