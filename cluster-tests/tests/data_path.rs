//! The overlay data path against agent crashes: a sandbox pinged every 20 ms from another
//! host while its agent is killed with `kill -9` and kept down past the suspicion window,
//! then restarted, loses no ping, and no FDB or neighbour entry is removed on either host
//! at any point: the host's kernel answers probes without its agent, so its entries stay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, Cluster, ClusterOptions, cli_at, wait_until};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The suspicion window, the default.
const WINDOW: Duration = Duration::from_secs(60);
/// How long the agent stays down: past the window.
const DOWN: Duration = Duration::from_secs(90);
/// The ping interval.
const PING_EVERY: Duration = Duration::from_millis(20);

/// `ip monitor neigh` and `bridge monitor fdb` in one namespace, writing to a file; both
/// are killed when this is dropped, even when the test fails.
struct Monitors {
    children: Vec<Child>,
    out: tempfile::NamedTempFile,
}

impl Monitors {
    fn start(ns: &str) -> Monitors {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut children = Vec::new();
        for (program, args) in [("ip", ["monitor", "neigh"]), ("bridge", ["monitor", "fdb"])] {
            let file = out.reopen().unwrap();
            let child = Command::new(program)
                .args(["-n", ns])
                .args(args)
                .stdin(Stdio::null())
                .stdout(file)
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            children.push(child);
        }
        Monitors { children, out }
    }

    /// Every deletion seen so far.
    fn deletions(&self) -> Vec<String> {
        std::fs::read_to_string(self.out.path())
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("Deleted"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Monitors {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn overlay_ns(agent: &Agent) -> String {
    let found = agent.overlay_namespaces();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

fn run(agent: &Agent, name: &str) -> String {
    agent.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "ov",
        "--",
        "sleep",
        "900",
    ]);
    agent.ip_of(name, "ov")
}

/// Transmitted and received counts from ping's summary.
fn ping_counts(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in {out}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn status_of(agent: &Agent, node: &str) -> String {
    let nodes = agent.json(&["node", "ls"]);
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == node)
        .map(|n| n["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no node {node} in {nodes}"))
}

#[test]
fn an_agent_killed_past_the_suspicion_window_never_cuts_the_data_path() {
    let mut cluster = Cluster::start(2, ClusterOptions::default()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    cluster.host(1).create_overlay("ov", "198.19.160.0/24");
    let _ip1 = run(cluster.host(1), "a1");
    let ip2 = run(cluster.host(2), "a2");
    wait_until("a1 reaches a2", Duration::from_secs(10), || {
        cluster.host(1).ping("a1", &ip2, 1).then_some(())
    })
    .unwrap();
    let (ns1, ns2) = (overlay_ns(cluster.host(1)), overlay_ns(cluster.host(2)));
    let monitors = [Monitors::start(&ns1), Monitors::start(&ns2)];
    let host2_name = "h2";

    // Pings from a1 to a2 every 20 ms for the whole story: kill, 90 s down, restart.
    let story = DOWN + Duration::from_secs(15);
    let count = (story.as_millis() / PING_EVERY.as_millis()).to_string();
    let socket = cluster.host(1).socket();
    let target = ip2.clone();
    let pinger = std::thread::spawn(move || {
        let args = [
            "exec", "a1", "--", "ping", "-n", "-O", "-i", "0.02", "-W", "1", "-c", &count, &target,
        ];
        cli_at(&socket, &args)
    });
    std::thread::sleep(Duration::from_secs(2));
    cluster.kill9(2).unwrap();
    let killed = Instant::now();
    // Past the window, host 2 is still suspect on host 1, not dead: its host answers.
    std::thread::sleep(WINDOW + Duration::from_secs(10));
    assert_eq!(status_of(cluster.host(1), host2_name), "suspect");
    std::thread::sleep(DOWN.saturating_sub(killed.elapsed()));
    cluster.restart(2).unwrap();
    wait_until("host 2 alive again", Duration::from_secs(20), || {
        (status_of(cluster.host(1), host2_name) == "alive").then_some(())
    })
    .unwrap();
    let restarted = killed.elapsed();
    let out = pinger.join().unwrap();
    let (sent, received) = ping_counts(&out.stdout);
    // `-O` names every ping not answered in time; at 20 ms apart, its sequence number
    // says when (the kill came about 2 s in).
    let lost: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("no answer"))
        .collect();
    let deleted: Vec<Vec<String>> = monitors.iter().map(Monitors::deletions).collect();
    println!(
        "pings: {sent} sent, {received} received; agent down {DOWN:?}, restarted {restarted:?} after the kill; lost: {lost:?}; deletions: {deleted:?}"
    );
    if sent != received || deleted.iter().any(|d| !d.is_empty()) {
        for i in 1..=2 {
            let log = cluster.host(i).log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("DEBUG") && !l.contains("TRACE"))
                .collect();
            println!("host {i} log:\n{}", lines.join("\n"));
        }
    }
    assert!(sent >= 4_000, "{}", out.stderr);
    assert_eq!(sent, received, "lost pings: {lost:?}");
    for (host, deleted) in deleted.iter().enumerate() {
        assert!(
            deleted.is_empty(),
            "host {} removed entries: {deleted:?}",
            host + 1
        );
    }
}
