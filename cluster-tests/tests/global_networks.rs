//! Global networks end to end: an overlay network created on a worker goes to the manager
//! over RPC, reaches every node with the same id, subnet and VNI, and is stored there;
//! endpoint addresses come from the manager, distinct across hosts even when asked for at
//! once; the manager's allocations survive its `kill -9`; without a manager, listing keeps
//! working and creating fails with an error that says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, Cluster, ClusterOptions, wait_until};
use std::collections::BTreeSet;
use std::time::Duration;

const VXLANID: &str = "com.docker.network.driver.overlay.vxlanid_list";

fn options() -> ClusterOptions {
    ClusterOptions::default().args(["--gossip-interval", "100ms", "--suspicion-window", "3s"])
}

/// (id, subnet, vni) of a network as a host reports it, once it has it.
fn definition(agent: &Agent, network: &str) -> Option<(String, String, String)> {
    let out = agent.cli(&["network", "inspect", network, "--format", "json"]);
    if !out.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    let v = &v[0];
    Some((
        v["id"].as_str()?.to_owned(),
        v["subnets"][0]["subnet"].as_str()?.to_owned(),
        v["options"][VXLANID].as_str()?.to_owned(),
    ))
}

fn endpoint_ip(agent: &Agent, network: &str, name: &str) -> String {
    let v = agent.json(&["endpoint", "create", network, name]);
    v["ipv4"].as_str().unwrap().to_owned()
}

#[test]
fn overlay_networks_are_allocated_by_the_manager_and_survive_it() {
    let mut cluster = Cluster::start(3, options()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();

    // Created on a worker: the manager allocates, every node stores the same definition.
    let created = cluster
        .host(2)
        .json(&["network", "create", "-d", "overlay", "ov1"]);
    assert_eq!(created["scope"], "global");
    let expected = definition(cluster.host(2), "ov1").unwrap();
    assert!(
        expected.1.starts_with("198.19.1"),
        "subnet from --default-addr-pool 198.19.128.0/17: {expected:?}"
    );
    assert_eq!(expected.2, "4096", "the first automatic VNI");
    for (i, agent) in cluster.hosts() {
        let seen = wait_until(
            &format!("host {i} to adopt ov1"),
            Duration::from_secs(10),
            || definition(agent, "ov1"),
        )
        .unwrap();
        assert_eq!(seen, expected, "host {i}");
    }
    // Options the driver refuses are refused before the manager allocates anything: the
    // name stays free and no definition appears anywhere.
    for bad in [
        vec!["--subnet", "198.19.205.0/24", "--subnet", "198.19.206.0/24"],
        vec!["--encrypted"],
        vec!["-o", &format!("{VXLANID}=99999999")],
    ] {
        let mut args = vec!["network", "create", "-d", "overlay"];
        args.extend(bad.iter().copied());
        args.push("bad1");
        let out = cluster.host(3).cli(&args);
        assert_eq!(out.code(), Some(1), "{bad:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{bad:?}: {}", out.stderr);
    }
    for (i, agent) in cluster.hosts() {
        assert!(definition(agent, "bad1").is_none(), "host {i}");
    }

    // The name is the cluster's: taken on every node.
    let again = cluster
        .host(3)
        .cli(&["network", "create", "-d", "overlay", "ov1"]);
    assert_eq!(again.code(), Some(1));
    assert!(again.stderr.contains("ov1"), "{}", again.stderr);

    // 200 endpoints, created at once from the three hosts, get 200 distinct addresses.
    let ips: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..12)
            .map(|w| {
                let agent = cluster.host(w % 3 + 1);
                s.spawn(move || {
                    let per = if w < 8 { 17 } else { 16 };
                    (0..per)
                        .map(|j| endpoint_ip(agent, "ov1", &format!("e{w}-{j}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(ips.len(), 200);
    let distinct: BTreeSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), 200, "addresses handed out twice");

    // kill -9 of the manager: after a restart every allocation is still held (asking for
    // one by address is refused) and the next one is new.
    cluster.kill9(1).unwrap();
    cluster.restart(1).unwrap();
    let taken = ips[0].split('/').next().unwrap().to_owned();
    let refused = wait_until(
        "the manager to answer again",
        Duration::from_secs(20),
        || {
            let out = cluster
                .host(3)
                .cli(&["endpoint", "create", "ov1", "dup", "--ip", &taken]);
            (!out.stderr.contains("no manager reachable")).then_some(out)
        },
    )
    .unwrap();
    assert_eq!(refused.code(), Some(1), "{}", refused.stdout);
    assert!(
        refused.stderr.contains(&taken),
        "a held address is refused by name: {}",
        refused.stderr
    );
    let next = endpoint_ip(cluster.host(3), "ov1", "after-restart");
    assert!(!distinct.contains(&next), "{next} was handed out before");

    // The manager stopped: workers still list the network and its endpoints; creating a
    // network or an endpoint on it fails and says that no manager answers.
    cluster.stop(1).unwrap();
    for i in [2, 3] {
        let agent = cluster.host(i);
        assert_eq!(definition(agent, "ov1"), Some(expected.clone()), "host {i}");
        let listed = agent.json(&["endpoint", "ls", "ov1"]);
        assert!(listed.as_array().unwrap().len() >= 66, "host {i}: {listed}");
        let out = agent.cli(&["network", "create", "-d", "overlay", "ov2"]);
        assert_eq!(out.code(), Some(1), "host {i}");
        assert!(
            out.stderr.contains("no manager reachable") && out.stderr.lines().count() == 1,
            "host {i}: {}",
            out.stderr
        );
        let out = agent.cli(&["endpoint", "create", "ov1", "late"]);
        assert_eq!(out.code(), Some(1), "host {i}");
        assert!(
            out.stderr.contains("no manager reachable"),
            "host {i}: {}",
            out.stderr
        );
        // Local networks do not need a manager.
        agent.ok(&["network", "create", "-d", "bridge", "local1"]);
    }
}

#[test]
fn a_global_network_is_deleted_everywhere_once_no_endpoint_uses_it() {
    let mut cluster = Cluster::start(3, options()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    cluster
        .host(3)
        .ok(&["network", "create", "-d", "overlay", "ov1"]);
    for (i, agent) in cluster.hosts() {
        wait_until(&format!("host {i} adopts"), Duration::from_secs(10), || {
            definition(agent, "ov1")
        })
        .unwrap();
    }
    cluster.host(2).ok(&["endpoint", "create", "ov1", "e1"]);
    // Host 2's endpoint holds an address at the manager: host 3 may not delete it.
    let out = cluster.host(3).cli(&["network", "rm", "ov1"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("endpoint"), "{}", out.stderr);
    assert!(definition(cluster.host(3), "ov1").is_some());
    cluster.host(2).ok(&["endpoint", "rm", "ov1", "e1"]);
    // Host 2 is down while the network is deleted: it catches up when it is back.
    cluster.stop(2).unwrap();
    cluster.host(3).ok(&["network", "rm", "ov1"]);
    for i in [1, 3] {
        let agent = cluster.host(i);
        wait_until(
            &format!("host {i} forgets"),
            Duration::from_secs(10),
            || definition(agent, "ov1").is_none().then_some(()),
        )
        .unwrap();
    }
    cluster.restart(2).unwrap();
    wait_until("host 2 catches up", Duration::from_secs(15), || {
        definition(cluster.host(2), "ov1").is_none().then_some(())
    })
    .unwrap();
    // The name is free again.
    cluster
        .host(1)
        .ok(&["network", "create", "-d", "overlay", "ov1"]);
}
