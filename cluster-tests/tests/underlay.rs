#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The multi-host underlay on its own, without agents: every host reaches every other,
//! a cut host and a host dropping all its packets are unreachable until healed, and
//! nothing with the topology's prefix is left afterwards, also when a test panics.

use cluster_tests::{Topology, assert_clean};
use std::time::Duration;

const REACH: Duration = Duration::from_secs(10);

/// Probes sent before a host counts as unreachable (any answer counts as reachable).
const PROBES: u32 = 3;

fn assert_all_reachable(topo: &Topology) {
    for from in 1..=topo.len() {
        for to in 1..=topo.len() {
            if from != to {
                topo.wait_reachable(from, to, REACH).unwrap();
            }
        }
    }
}

/// Host `lost` neither answers nor reaches anyone; the other hosts still reach each other.
fn assert_isolated(topo: &Topology, lost: usize) {
    for other in (1..=topo.len()).filter(|&h| h != lost) {
        assert!(
            !topo.ping(other, &topo.addr(lost), PROBES).unwrap(),
            "host {other} still reaches host {lost}"
        );
        assert!(
            !topo.ping(lost, &topo.addr(other), PROBES).unwrap(),
            "host {lost} still reaches host {other}"
        );
        for to in (1..=topo.len()).filter(|&h| h != lost && h != other) {
            topo.wait_reachable(other, to, REACH).unwrap();
        }
    }
}

#[test]
fn hosts_reach_each_other_until_cut_or_dropping_and_nothing_is_left() {
    let topo = Topology::create(3).unwrap();
    let prefix = topo.prefix().to_owned();
    assert_eq!(topo.addr(2), "198.18.0.2");
    assert!(
        topo.host_ip(1, &["-o", "addr", "show", "dev", "eth0"])
            .unwrap()
            .contains("198.18.0.1/24")
    );
    assert_all_reachable(&topo);

    topo.cut(2).unwrap();
    assert_isolated(&topo, 2);
    topo.heal(2).unwrap();
    assert_all_reachable(&topo);

    topo.drop_percent(3, 100).unwrap();
    assert_isolated(&topo, 3);
    topo.clear_drop(3).unwrap();
    assert_all_reachable(&topo);
    // Clearing twice, and a host without loss, are no-ops.
    topo.clear_drop(3).unwrap();
    topo.clear_drop(1).unwrap();
    assert!(topo.drop_percent(1, 101).is_err());
    assert!(topo.cut(4).is_err());

    drop(topo);
    assert_clean(&prefix);
}

#[test]
fn a_panicking_test_leaves_no_namespace_or_process() {
    let mut prefix = String::new();
    let mut pid = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let topo = Topology::create(2).unwrap();
        prefix = topo.prefix().to_owned();
        // A process living in a host namespace, as an agent would.
        let out = topo
            .exec(
                1,
                "sh",
                &["-c", "sleep 600 </dev/null >/dev/null 2>&1 & echo $!"],
            )
            .unwrap();
        assert!(out.status.success());
        pid = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        panic!("test failure with a topology and a process in it");
    }));
    assert!(result.is_err());
    assert!(!prefix.is_empty() && !pid.is_empty());
    assert_clean(&prefix);
    // Killed: gone, or at most a zombie waiting for its reaper.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
    assert!(
        stat.is_empty() || state.starts_with('Z'),
        "sleep {pid} survived the teardown: {stat}"
    );
}
