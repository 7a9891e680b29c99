//! The agent's memory under a flood of table changes follows the keys, not the rate.
//!
//! A NetworkDB node of the test's own (in host 2's namespace, with the cluster's gossip
//! keyring) rewrites 100 overlay peer entries 1,000 times: 100,000 changes, of which
//! chitchat delivers the latest version per key per gossip round to host 1's agent. On the
//! way, NetworkDB folds per key what its watcher has not read, the watcher waits for the
//! driver-event router, and the router folds per key for a busy network driver. The test
//! asserts the bound on the agent's RSS and that the kernel ends with the last value of
//! every entry; whether anything was folded depends on how fast the driver was (the
//! in-process test in weft-netdb's tables.rs stalls a watcher outright).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Cluster, ClusterOptions, wait_until};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};
use weft_netdb::{CreateEntry, NetDbConfig, NetworkDb, TableKey, UpdateEntry};
use weft_types::gossip::{PeerRecord, Table};
use weft_types::{MacAddr, NetworkId};

const KEYS: u32 = 100;
const ROUNDS: u32 = 1_000;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Entry `k` in round `round`: its VTEP flips between two hosts every round, so every
/// change is one the driver must program.
fn peer(k: u32, round: u32) -> PeerRecord {
    let [_, _, hi, lo] = k.to_be_bytes();
    PeerRecord {
        ip: format!("198.19.160.{}/20", 10 + k).parse().unwrap(),
        mac: MacAddr([0x02, 0x42, 0xc6, 0x13, hi, lo]),
        vtep: Ipv4Addr::new(198, 18, 0, 100 + (round % 2) as u8),
    }
}

/// Runs the flood from a thread inside `netns`, where its UDP socket then lives.
fn flood(
    netns: String,
    listen: SocketAddr,
    seed: SocketAddr,
    keyring: std::path::PathBuf,
    network: NetworkId,
) {
    let ns = std::fs::File::open(format!("/run/netns/{netns}")).unwrap();
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let system = actix::System::new();
    system.block_on(async move {
        let keyring = weft_keys::keyfile::read_keyring(&keyring).unwrap();
        let mut config = NetDbConfig::new("flood", listen, keyring);
        config.seeds = vec![seed.to_string()];
        config.gossip_interval = Duration::from_millis(10);
        let db = NetworkDb::start(config).await.unwrap();
        let key = |k: u32| {
            TableKey::new(
                Table::OverlayPeers.name(),
                network.clone(),
                &format!("flood-{k}"),
            )
            .unwrap()
        };
        for k in 0..KEYS {
            let value = peer(k, 0).encode().unwrap();
            db.send(CreateEntry { key: key(k), value })
                .await
                .unwrap()
                .unwrap();
        }
        for round in 1..ROUNDS {
            for k in 0..KEYS {
                let value = peer(k, round).encode().unwrap();
                db.send(UpdateEntry { key: key(k), value })
                    .await
                    .unwrap()
                    .unwrap();
            }
            // One gossip round per step, so that each step reaches the agent as changes.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Stay until the agent has the last round, then leave (entries are kept by
        // weft only while their owner is a member: stay a member).
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
}

/// Two hosts with an overlay joined on host 1, then host 2's agent stopped so that its
/// namespace can hold the flood's NetworkDB node: host 1 is the agent under test.
fn flooded_cluster(options: ClusterOptions) -> (Cluster, NetworkId) {
    let mut cluster = Cluster::start(2, options.args(["--suspicion-window", "30s"])).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    let agent = cluster.host(1);
    agent.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "198.19.160.0/20",
        "ov",
    ]);
    agent.ok(&["sandbox", "create", "s1"]);
    agent.ok(&["endpoint", "create", "ov", "e1"]);
    agent.ok(&["endpoint", "join", "ov", "e1", "s1"]);
    let network: NetworkId = agent.json(&["network", "inspect", "ov"])[0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    cluster.stop(2).unwrap();
    (cluster, network)
}

/// Runs the flood into host 1's agent, sampling its RSS, which must stay within 20 MB of
/// its idle RSS.
fn run_flood(cluster: &Cluster, network: &NetworkId) {
    let agent = cluster.host(1);
    let pid = agent.pid().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(pid);
    let listen: SocketAddr = format!("{}:7946", cluster.addr(2)).parse().unwrap();
    let seed: SocketAddr = format!("{}:7946", cluster.addr(1)).parse().unwrap();
    let (netns, keyring) = (
        cluster.topology().host_netns(2),
        agent.data_dir().join("gossip.keyring"),
    );
    let started = Instant::now();
    let writer = {
        let network = network.clone();
        std::thread::spawn(move || flood(netns, listen, seed, keyring, network))
    };
    let mut peak = idle;
    while !writer.is_finished() && started.elapsed() < Duration::from_secs(120) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    writer.join().unwrap();
    println!(
        "agent RSS idle {idle} KiB, peak {peak} KiB during {} changes in {:?}",
        KEYS * ROUNDS,
        started.elapsed()
    );
    assert!(
        peak < idle + 20 * 1024,
        "the agent's RSS grew from {idle} to {peak} KiB"
    );
}

/// Waits until every flood entry reached host 1's kernel with its last VTEP.
fn wait_for_last_round(cluster: &Cluster, timeout: Duration) {
    let last = Ipv4Addr::new(198, 18, 0, 100 + ((ROUNDS - 1) % 2) as u8);
    let ns = cluster
        .host(1)
        .overlay_namespaces()
        .into_iter()
        .next()
        .unwrap();
    wait_until("the kernel holds the last round", timeout, || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "bridge", "fdb", "show"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let current = (0..KEYS)
            .filter(|k| {
                let mac = peer(*k, 0).mac.to_string();
                text.lines()
                    .any(|l| l.starts_with(&mac) && l.contains(&format!("dst {last} ")))
            })
            .count();
        (current == KEYS as usize).then_some(())
    })
    .unwrap();
}

#[test]
fn a_flood_the_driver_cannot_keep_up_with_costs_memory_per_key_not_per_change() {
    let (cluster, network) = flooded_cluster(ClusterOptions::default());
    run_flood(&cluster, &network);
    let stats = cluster.host(1).json(&["diag", "stats"]);
    println!(
        "netdb coalesced {}, watcher {}, driver events {}",
        stats["events_coalesced"], stats["watcher"], stats["driver_events"]
    );
    // It says what happened: the changes that reached the watcher (chitchat already sends
    // only the latest version of a key per round) and any folding on the way.
    let seen = stats["watcher"]["notified"].as_u64().unwrap_or(0);
    assert!(
        seen > u64::from(KEYS),
        "the watcher saw only {seen} changes: {stats}"
    );
    assert!(stats["events_coalesced"].is_u64() && stats["driver_events"]["coalesced"].is_u64());
    // And it converges: every flood entry reached the kernel with its last VTEP.
    wait_for_last_round(&cluster, Duration::from_secs(60));
}

#[test]
fn a_watcher_that_never_reads_holds_one_change_per_key_and_converges_after() {
    let stall = tempfile::NamedTempFile::new().unwrap();
    let env = format!("watcher:{}", stall.path().display());
    let options = ClusterOptions::default().env([("WEFT_STALL_AT", env.as_str())]);
    let (cluster, network) = flooded_cluster(options);
    // The file exists from here on: the agent's cluster watcher reads nothing.
    run_flood(&cluster, &network);
    let agent = cluster.host(1);
    let stalled = agent.json(&["diag", "stats"]);
    println!(
        "while stalled: waiting {}, coalesced {}, watcher {}",
        stalled["events_waiting"], stalled["events_coalesced"], stalled["watcher"]
    );
    // What happened is visible: changes wait for the watcher, at most one per key (the
    // flood's 100 plus a few of the cluster's own), and later ones were folded into them.
    let waiting = stalled["events_waiting"].as_u64().unwrap();
    assert!(
        (1..=u64::from(KEYS) + 20).contains(&waiting),
        "{waiting} changes wait for the stalled watcher: {stalled}"
    );
    assert!(
        stalled["events_coalesced"].as_u64().unwrap() > u64::from(KEYS),
        "nothing was folded: {stalled}"
    );
    assert!(
        agent.log().contains("cluster watcher stalled by a test"),
        "the stall did not take effect"
    );
    drop(stall);
    wait_for_last_round(&cluster, Duration::from_secs(60));
    let after = agent.json(&["diag", "stats"]);
    assert_eq!(after["events_waiting"], 0, "{after}");
}
