//! The overlay data path against failures:
//! - a sandbox pinged every 20 ms from another host while its agent is killed with
//!   `kill -9` and kept down past the suspicion window, then restarted, loses no ping, and
//!   no FDB or neighbour entry is removed on either host at any point: the host's kernel
//!   answers probes without its agent, so its entries stay;
//! - a 10 s partition of gossip and RPC between one host and the rest loses no record and
//!   no ping;
//! - a host cut off the underlay past the window loses its entries, and is reachable again
//!   within a second of being seen alive after the heal, with the same records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, CliOutput, Cluster, ClusterOptions, cli_at, wait_until};
use std::collections::BTreeSet;
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

/// What a `ping -O` run says: transmitted, received, and the line of every ping not
/// answered in time (at 20 ms apart, its sequence number says when).
fn ping_result(out: &CliOutput) -> (u64, u64, Vec<String>) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in {out:?}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let lost = out
        .stdout
        .lines()
        .filter(|l| l.contains("no answer"))
        .map(str::to_owned)
        .collect();
    (numbers[0], numbers[1], lost)
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
    let count = usize::try_from(story.as_millis() / PING_EVERY.as_millis()).unwrap();
    let pinger = pinger(cluster.host(1), "a1", &ip2, count);
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
    // The kill came about 2 s in.
    let (sent, received, lost) = ping_result(&out);
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

/// Pings `ip` from `sandbox` on `agent` every 20 ms for `count` pings, in a thread.
fn pinger(
    agent: &Agent,
    sandbox: &str,
    ip: &str,
    count: usize,
) -> std::thread::JoinHandle<CliOutput> {
    let socket = agent.socket();
    let (sandbox, ip, count) = (sandbox.to_owned(), ip.to_owned(), count.to_string());
    std::thread::spawn(move || {
        let args = [
            "exec", &sandbox, "--", "ping", "-n", "-O", "-i", "0.02", "-W", "1", "-c", &count, &ip,
        ];
        cli_at(&socket, &args)
    })
}

/// Every entry of `table` on network `ov` as `agent` sees it: (key, owner).
fn records(agent: &Agent, table: &str) -> BTreeSet<(String, String)> {
    agent
        .json(&["diag", "table", table, "ov"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap_or_default().to_owned(),
                e["owner"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Drops gossip (UDP 7946) and RPC (UDP 7947) in and out of `agent`'s host; `false` heals.
fn partition(agent: &Agent, on: bool) {
    let table = "weft_test_partition";
    let mut script = format!("table inet {table}\ndelete table inet {table}\n");
    if on {
        script.push_str(&format!(
            "table inet {table} {{\n\
             \tchain input {{ type filter hook input priority -10; policy accept; udp dport {{ 7946, 7947 }} drop; udp sport {{ 7946, 7947 }} drop; }}\n\
             \tchain output {{ type filter hook output priority -10; policy accept; udp dport {{ 7946, 7947 }} drop; udp sport {{ 7946, 7947 }} drop; }}\n\
             }}\n"
        ));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    agent
        .host_nft(&["-f", &file.path().display().to_string()])
        .unwrap();
}

#[test]
fn a_ten_second_gossip_partition_loses_no_record_and_no_ping() {
    let cluster = Cluster::start(3, ClusterOptions::default()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    cluster.host(1).create_overlay("ov", "198.19.161.0/24");
    let ips: Vec<String> = (1..=3)
        .map(|i| run(cluster.host(i), &format!("a{i}")))
        .collect();
    for ip in &ips[1..] {
        wait_until("a1 reaches the others", Duration::from_secs(10), || {
            cluster.host(1).ping("a1", ip, 1).then_some(())
        })
        .unwrap();
    }
    wait_until("every host holds 3 peers", Duration::from_secs(10), || {
        (1..=3)
            .all(|i| records(cluster.host(i), "overlay_peer_table").len() == 3)
            .then_some(())
    })
    .unwrap();
    let before: Vec<_> = (1..=3)
        .map(|i| records(cluster.host(i), "overlay_peer_table"))
        .collect();
    let monitor = Monitors::start(&overlay_ns(cluster.host(1)));
    // 16 s of pings from a1 to a2 and a3; the partition in the middle.
    let pings: Vec<_> = ips[1..]
        .iter()
        .map(|ip| pinger(cluster.host(1), "a1", ip, 800))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    partition(cluster.host(1), true);
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        status_of(cluster.host(1), "h2"),
        "suspect",
        "the partition holds"
    );
    partition(cluster.host(1), false);
    for ping in pings {
        let out = ping.join().unwrap();
        let (sent, received, lost) = ping_result(&out);
        assert!(sent >= 700, "{}", out.stderr);
        assert_eq!(sent, received, "lost pings: {lost:?}");
    }
    wait_until(
        "every host sees every other alive",
        Duration::from_secs(20),
        || {
            (1..=3)
                .all(|i| {
                    ["h1", "h2", "h3"]
                        .iter()
                        .all(|n| status_of(cluster.host(i), n) == "alive")
                })
                .then_some(())
        },
    )
    .unwrap();
    for i in 1..=3 {
        assert_eq!(
            records(cluster.host(i), "overlay_peer_table"),
            before[i - 1],
            "host {i}"
        );
    }
    assert_eq!(monitor.deletions(), Vec::<String>::new());
}

#[test]
fn a_host_cut_past_the_window_comes_back_within_a_second_of_being_alive() {
    let cluster = Cluster::start(2, ClusterOptions::default()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    cluster.host(1).create_overlay("ov", "198.19.162.0/24");
    let _ip1 = run(cluster.host(1), "a1");
    let ip2 = run(cluster.host(2), "a2");
    wait_until("a1 reaches a2", Duration::from_secs(10), || {
        cluster.host(1).ping("a1", &ip2, 1).then_some(())
    })
    .unwrap();
    let before = records(cluster.host(1), "overlay_peer_table");
    assert_eq!(before.len(), 2, "{before:?}");
    cluster.cut(2).unwrap();
    let cut = Instant::now();
    // Gone after the window: host 2's agent and host are both silent.
    wait_until(
        "host 2's entries gone from host 1",
        WINDOW + Duration::from_secs(20),
        || (records(cluster.host(1), "overlay_peer_table").len() == 1).then_some(()),
    )
    .unwrap();
    let gone = cut.elapsed();
    assert!(gone >= WINDOW, "not before the window: {gone:?}");
    assert_eq!(status_of(cluster.host(1), "h2"), "dead");
    std::thread::sleep(DOWN.saturating_sub(cut.elapsed()));
    // a1 retries ARP every 10 ms instead of every second, so that the resolution of its
    // neighbour (answered by host 1's vxlan proxy once the entries are back) does not
    // quantise the result; it pings a2 every 20 ms, with a timestamp per reply.
    cluster.host(1).ok(&[
        "exec",
        "a1",
        "--",
        "sh",
        "-c",
        "for f in /proc/sys/net/ipv4/neigh/*/retrans_time_ms; do echo 10 > $f; done",
    ]);
    let socket = cluster.host(1).socket();
    let target = ip2.clone();
    let pings = std::thread::spawn(move || {
        let args = [
            "exec", "a1", "--", "ping", "-n", "-D", "-i", "0.02", "-W", "1", "-c", "600", &target,
        ];
        cli_at(&socket, &args)
    });
    cluster.heal(2).unwrap();
    let alive = wait_until("host 2 alive on host 1", Duration::from_secs(30), || {
        (status_of(cluster.host(1), "h2") == "alive").then(std::time::SystemTime::now)
    })
    .unwrap();
    let out = pings.join().unwrap();
    // The first reply: "[EPOCH.MICROS] 64 bytes from ...".
    let first = out
        .stdout
        .lines()
        .find(|l| l.contains("bytes from"))
        .and_then(|l| l.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("a2 never answered: {}", out.stdout));
    let alive_s = alive
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let after_alive = Duration::from_secs_f64((first - alive_s).max(0.0));
    println!(
        "entries gone {gone:?} after the cut; a2 answered {:.3} s after host 2 was seen alive",
        first - alive_s
    );
    assert!(after_alive <= Duration::from_secs(1), "{after_alive:?}");
    assert_eq!(records(cluster.host(1), "overlay_peer_table"), before);
}
