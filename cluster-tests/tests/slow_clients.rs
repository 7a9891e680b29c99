//! The local API against clients that hold connections open: 500 clients that send half a
//! request head and stop. Connections past the cap are closed at once, the others when
//! their head has not arrived within the timeout; the agent's memory stays flat, and it
//! answers normally afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, wait_until};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Clients in the flood; the agent serves 256 at once.
const CLIENTS: usize = 500;
/// The agent's timeout for a request head is 10 s.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Whether the server closed `stream` (a read returns end of file or an error), waiting
/// at most `wait`.
fn closed_by_server(mut stream: &UnixStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn slow_clients_are_capped_and_timed_out_and_memory_stays_flat() {
    let agent = Agent::start(Default::default()).unwrap();
    let pid = agent.pid().unwrap();
    agent.ok(&["network", "ls"]);
    let idle = rss_kib(pid);
    let started = Instant::now();
    let streams: Vec<UnixStream> = (0..CLIENTS)
        .map(|_| {
            let mut s = UnixStream::connect(agent.socket()).unwrap();
            // Half a head: the request line and one header, never the blank line.
            let _ = s.write_all(b"GET /v1/version HTTP/1.1\r\nHost: weft\r\n");
            s
        })
        .collect();
    // Past the cap, connections are closed at once.
    let refused = streams
        .iter()
        .filter(|s| closed_by_server(s, Duration::from_millis(20)))
        .count();
    assert!(
        refused >= CLIENTS - 256,
        "only {refused} of {CLIENTS} connections were refused at the cap"
    );
    let during = rss_kib(pid);
    // The rest are closed once their head is late.
    let deadline = HEAD_TIMEOUT + Duration::from_secs(5);
    for s in &streams {
        let left = deadline.saturating_sub(started.elapsed());
        assert!(
            closed_by_server(s, left.max(Duration::from_millis(1))),
            "a slow client is still connected {:?} after it connected",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() >= HEAD_TIMEOUT - Duration::from_secs(1),
        "slow clients were closed before the head timeout: {:?}",
        started.elapsed()
    );
    drop(streams);
    wait_until("the agent to answer again", Duration::from_secs(5), || {
        agent.cli(&["network", "ls"]).success().then_some(())
    })
    .unwrap();
    let after = rss_kib(pid);
    println!("agent RSS: idle {idle} KiB, during the flood {during} KiB, after {after} KiB");
    assert!(
        during.saturating_sub(idle) < 20 * 1024,
        "RSS grew from {idle} to {during} KiB"
    );
}
