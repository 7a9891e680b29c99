//! The crash-point test with the bridge driver: for each crash point in network
//! create/delete and join/leave, the agent aborts there with two running sandboxes on a
//! bridge network; after a restart those survivors still reach each other, the
//! interrupted operation happened entirely or not at all (and works when joined), and
//! the kernel holds exactly what the store describes: one bridge per bridge network, one
//! veth per joined endpoint, one namespace per sandbox, no leaked link or namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, AgentOptions, aborted, wait_until};
use std::time::Duration;
use weft_controller::crash;

fn weft_links(agent: &Agent, prefix: &str) -> usize {
    let out = agent.host_ip(&["-br", "link", "show"]).unwrap();
    out.lines().filter(|l| l.starts_with(prefix)).count()
}

fn names(agent: &Agent, list: &[&str]) -> Vec<String> {
    let v = agent.json(list);
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The kernel matches the store: bridges, veths, namespaces, nft table.
fn check_kernel(agent: &Agent, point: &str) {
    let networks = agent.json(&["network", "ls"]);
    let bridges = networks
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["driver"] == "bridge")
        .count();
    let joined = agent
        .json(&["endpoint", "ls"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["sandbox"].is_null())
        .count();
    assert_eq!(weft_links(agent, "wb-"), bridges, "{point}: bridges");
    assert_eq!(weft_links(agent, "wv-"), joined, "{point}: host-side veths");
    assert_eq!(
        weft_links(agent, "wp-"),
        0,
        "{point}: a veth peer was left in the host"
    );
    assert_eq!(
        agent.namespaces().len(),
        names(agent, &["sandbox", "ls"]).len(),
        "{point}: namespaces"
    );
    let tables = agent.host_nft(&["list", "tables"]).unwrap();
    assert_eq!(
        tables.contains("weft-bridge"),
        bridges > 0,
        "{point}: nft table: {tables}"
    );
}

fn setup(agent: &Agent, point: &str) -> Vec<&'static str> {
    agent.ok(&["network", "create", "--subnet", "198.19.20.0/24", "n"]);
    for p in ["p1", "p2"] {
        agent.ok(&[
            "run",
            "-d",
            "--name",
            p,
            "--network",
            "n",
            "--",
            "sleep",
            "600",
        ]);
    }
    match point.split('-').next().unwrap_or_default() {
        "network" if point.contains("create") => {
            vec!["network", "create", "--subnet", "198.19.21.0/24", "new"]
        }
        "network" => {
            agent.ok(&["network", "create", "--subnet", "198.19.22.0/24", "gone"]);
            vec!["network", "rm", "gone"]
        }
        kind => {
            agent.ok(&["endpoint", "create", "n", "e"]);
            agent.ok(&["sandbox", "create", "s"]);
            if kind == "leave" {
                agent.ok(&["endpoint", "join", "n", "e", "s"]);
                vec!["endpoint", "leave", "n", "e"]
            } else {
                vec!["endpoint", "join", "n", "e", "s"]
            }
        }
    }
}

fn check_outcome(agent: &Agent, point: &str) {
    let done = point.ends_with("-done") || point.contains("delete") || point.starts_with("leave");
    let networks = names(agent, &["network", "ls"]);
    if point.starts_with("network-create") {
        assert_eq!(
            networks.contains(&"new".to_owned()),
            done,
            "{point}: {networks:?}"
        );
    } else if point.starts_with("network-delete") {
        assert!(
            !networks.contains(&"gone".to_owned()),
            "{point}: {networks:?}"
        );
    } else {
        let eps = agent.json(&["endpoint", "ls", "n"]);
        let e = eps
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "e")
            .unwrap()
            .clone();
        let joined = !e["sandbox"].is_null();
        assert_eq!(joined, point.starts_with("join") && done, "{point}: {e}");
        if joined {
            let p1 = agent.ip_of("p1", "n");
            assert!(
                agent.ping("s", &p1, 2),
                "{point}: the joined sandbox is reachable"
            );
        }
    }
}

fn run_case(point: &str) {
    let mut agent = Agent::start(AgentOptions::default()).unwrap();
    let op = setup(&agent, point);
    let p2 = agent.ip_of("p2", "n");
    assert!(
        agent.ping("p1", &p2, 2),
        "{point}: survivors before the crash"
    );
    agent.stop().unwrap();
    agent.spawn(&[(crash::CRASH_AT_ENV, point)]).unwrap();
    agent.wait_ready().unwrap();
    assert!(
        !agent.cli(&op).success(),
        "{point}: the operation did not hit its crash point"
    );
    let status = agent.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(aborted(&status), "{point}: {status}: {}", agent.log());

    agent.restart().unwrap();
    wait_until("survivors reachable", Duration::from_secs(10), || {
        agent.ping("p1", &p2, 1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{point}: {e}"));
    check_outcome(&agent, point);
    check_kernel(&agent, point);
    assert!(
        !agent.log().contains("File exists"),
        "{point}: {}",
        agent.log()
    );

    // Removing everything leaves nothing behind.
    let sandboxes = names(&agent, &["sandbox", "ls"]);
    let mut rm = vec!["sandbox", "rm", "-f"];
    rm.extend(sandboxes.iter().map(String::as_str));
    agent.ok(&rm);
    let networks = names(&agent, &["network", "ls"]);
    let mut rm = vec!["network", "rm", "-f"];
    rm.extend(networks.iter().map(String::as_str));
    agent.ok(&rm);
    check_kernel(&agent, point);
    assert_eq!(weft_links(&agent, "w"), 0, "{point}");
    agent.stop().unwrap();
}

#[test]
fn bridge_crash_points_keep_survivors_reachable_and_leak_nothing() {
    let points: Vec<&str> = crash::ALL
        .iter()
        .copied()
        .filter(|p| p.starts_with("network-") || p.starts_with("join-") || p.starts_with("leave-"))
        .collect();
    assert_eq!(points.len(), 13, "{points:?}");
    for point in points {
        eprintln!("bridge crash point {point}");
        run_case(point);
    }
}
