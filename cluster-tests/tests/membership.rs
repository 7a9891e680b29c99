//! Cluster membership across real hosts (one agent per host namespace on a shared
//! underlay): five agents join through one seed and every one lists five alive nodes; a
//! killed agent is seen dead everywhere within the configured detection time and alive
//! again after a restart; a host cut off for 10 s comes back with every entry it owns
//! still present on every node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, Cluster, ClusterOptions, wait_until};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn options(suspicion: &str) -> ClusterOptions {
    ClusterOptions {
        args: [
            "--gossip-interval",
            "100ms",
            "--suspicion-window",
            suspicion,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env: Vec::new(),
    }
}

/// node id -> status, as `agent` lists them.
fn statuses(agent: &Agent) -> BTreeMap<String, String> {
    let out = agent.cli(&["node", "ls", "--format", "json"]);
    if !out.success() {
        return BTreeMap::new();
    }
    let nodes: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    nodes
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    (
                        n["id"].as_str().unwrap_or_default().to_owned(),
                        n["status"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until every host in `on` sees `node` with `status`.
fn wait_status(cluster: &Cluster, on: &[usize], node: &str, status: &str, timeout: Duration) {
    for &i in on {
        let host = cluster.host(i);
        wait_until(&format!("h{i} sees {node} {status}"), timeout, || {
            (statuses(host).get(node).map(String::as_str) == Some(status)).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: h{i} lists {:?}", statuses(host)));
    }
}

fn all_alive(cluster: &Cluster, n: usize, timeout: Duration) {
    for i in 1..=n {
        let host = cluster.host(i);
        wait_until(&format!("h{i} lists {n} alive nodes"), timeout, || {
            let s = statuses(host);
            (s.len() == n && s.values().all(|v| v == "alive")).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", statuses(host)));
    }
}

#[test]
fn five_nodes_join_through_one_seed_and_track_a_killed_agent_and_a_lost_host() {
    let mut cluster = Cluster::start(5, options("2s")).unwrap();
    all_alive(&cluster, 5, Duration::from_secs(20));
    let roles = cluster.host(3).json(&["node", "ls"]);
    let managers: Vec<_> = roles
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["role"] == "manager")
        .collect();
    assert_eq!(managers.len(), 1, "the seed started the cluster: {roles}");
    assert_eq!(managers[0]["id"], "h1");

    // A killed agent whose host runs on stays suspect past the window (2 s here), its
    // entries kept: its host answers probes.
    cluster.kill9(4).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    for i in [1, 2, 3, 5] {
        assert_eq!(
            statuses(cluster.host(i)).get("h4").map(String::as_str),
            Some("suspect")
        );
        let table = cluster.host(i).json(&["diag", "table", "nodes", "cluster"]);
        assert!(
            table.as_array().unwrap().iter().any(|e| e["owner"] == "h4"),
            "h{i} dropped the killed agent's entry: {table}"
        );
    }
    // Its host lost too (off the underlay): dead after the window, entries deleted.
    let cut_at = Instant::now();
    cluster.cut(4).unwrap();
    wait_status(
        &cluster,
        &[1, 2, 3, 5],
        "h4",
        "dead",
        Duration::from_secs(15),
    );
    eprintln!("host lost to dead everywhere: {:?}", cut_at.elapsed());
    let table = cluster.host(1).json(&["diag", "table", "nodes", "cluster"]);
    assert!(
        table.as_array().unwrap().iter().all(|e| e["owner"] != "h4"),
        "a dead node's entries are deleted: {table}"
    );

    cluster.heal(4).unwrap();
    cluster.restart(4).unwrap();
    all_alive(&cluster, 5, Duration::from_secs(20));
    let nodes = cluster.host(2).json(&["node", "ls"]);
    assert_eq!(
        nodes.as_array().unwrap().len(),
        5,
        "the old generation is forgotten: {nodes}"
    );
}

#[test]
fn a_ten_second_partition_heals_without_losing_entries() {
    let cluster = Cluster::start(5, options("30s")).unwrap();
    all_alive(&cluster, 5, Duration::from_secs(20));
    let before: Vec<serde_json::Value> = (1..=5)
        .map(|i| cluster.host(i).json(&["diag", "table", "nodes", "cluster"]))
        .collect();
    assert!(
        before.iter().all(|t| t.as_array().unwrap().len() == 5),
        "{before:?}"
    );

    cluster.cut(5).unwrap();
    let cut_at = Instant::now();
    wait_status(
        &cluster,
        &[1, 2, 3, 4],
        "h5",
        "suspect",
        Duration::from_secs(10),
    );
    // Suspected, not dead: its entries stay everywhere during the partition.
    for i in 1..=4 {
        let t = cluster.host(i).json(&["diag", "table", "nodes", "cluster"]);
        assert!(
            t.as_array().unwrap().iter().any(|e| e["owner"] == "h5"),
            "h{i} dropped h5's entry: {t}"
        );
    }
    // The partition itself lasts 10 s: this wait is the fault, not a poll.
    let remaining = Duration::from_secs(10).saturating_sub(cut_at.elapsed());
    std::thread::sleep(remaining);
    cluster.heal(5).unwrap();
    all_alive(&cluster, 5, Duration::from_secs(20));
    for (i, expected) in (1..=5).zip(&before) {
        let t = cluster.host(i).json(&["diag", "table", "nodes", "cluster"]);
        assert_eq!(
            &t, expected,
            "h{i}'s view of the nodes table changed across the partition"
        );
    }
}

#[test]
fn a_node_that_stops_gracefully_is_left_everywhere_at_once() {
    let mut cluster = Cluster::start(3, options("30s")).unwrap();
    all_alive(&cluster, 3, Duration::from_secs(20));
    cluster.stop(3).unwrap();
    // Well inside the 30 s window: a graceful leave is not a failure.
    wait_status(&cluster, &[1, 2], "h3", "left", Duration::from_secs(5));
    for i in 1..=2 {
        let t = cluster.host(i).json(&["diag", "table", "nodes", "cluster"]);
        assert!(
            t.as_array().unwrap().iter().all(|e| e["owner"] != "h3"),
            "h{i} kept h3's entry: {t}"
        );
    }
}
