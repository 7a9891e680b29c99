//! For every named crash point in network, endpoint and sandbox create/delete and in
//! join/leave: the agent aborts there (as `kill -9` would stop it), restarts, and its
//! state is consistent: the interrupted operation either happened entirely or left no
//! trace, no address is lost or handed out twice, and no record is half-present on disk.
//!
//! The binary must be built with `--features crash-points` (scripts/test.sh does); a
//! binary without them fails this test, because the agent does not abort.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, AgentOptions, aborted};
use serde_json::Value;
use std::collections::BTreeSet;
use weft_controller::crash;
use weft_store::Store;
use weft_types::{Attachment, EndpointRecord, Lifecycle, NetworkRecord, SandboxRecord};

/// What the interrupted operation must look like after the restart.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// The operation left no trace (a create crashed before its final commit).
    Undone,
    /// The operation is complete (crashed after its final commit, or a delete/leave
    /// past its point of no return, which the restart finishes).
    Done,
}

struct Case {
    setup: Vec<Vec<&'static str>>,
    op: Vec<&'static str>,
    check: fn(&Agent, Outcome),
}

fn base_setup() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "network",
            "create",
            "-d",
            "null",
            "--subnet",
            "198.19.64.0/24",
            "n",
        ],
        vec!["endpoint", "create", "n", "e"],
        vec!["sandbox", "create", "s"],
    ]
}

fn case_for(point: &str) -> Case {
    let mut setup = base_setup();
    let (op, check): (Vec<&'static str>, fn(&Agent, Outcome)) =
        match point.split('-').next().unwrap_or("") {
            "network" if point.contains("create") => (
                vec![
                    "network",
                    "create",
                    "-d",
                    "null",
                    "--subnet",
                    "198.19.65.0/24",
                    "new",
                ],
                |a, o| {
                    assert_eq!(has(a, &["network", "ls"], "new"), o == Outcome::Done);
                    if o == Outcome::Undone {
                        a.ok(&[
                            "network",
                            "create",
                            "-d",
                            "null",
                            "--subnet",
                            "198.19.65.0/24",
                            "new",
                        ]);
                    }
                },
            ),
            "network" => {
                setup.push(vec![
                    "network",
                    "create",
                    "-d",
                    "null",
                    "--subnet",
                    "198.19.66.0/24",
                    "gone",
                ]);
                (vec!["network", "rm", "gone"], |a, _| {
                    assert!(!has(a, &["network", "ls"], "gone"));
                    a.ok(&[
                        "network",
                        "create",
                        "-d",
                        "null",
                        "--subnet",
                        "198.19.66.0/24",
                        "gone2",
                    ]);
                })
            }
            "endpoint" if point.contains("create") => (
                vec!["endpoint", "create", "--ip", "198.19.64.50", "n", "new"],
                |a, o| {
                    assert_eq!(has(a, &["endpoint", "ls"], "new"), o == Outcome::Done);
                    if o == Outcome::Undone {
                        a.ok(&["endpoint", "create", "--ip", "198.19.64.50", "n", "new"]);
                    }
                },
            ),
            "endpoint" => {
                setup.push(vec![
                    "endpoint",
                    "create",
                    "--ip",
                    "198.19.64.60",
                    "n",
                    "old",
                ]);
                (vec!["endpoint", "rm", "n", "old"], |a, _| {
                    assert!(!has(a, &["endpoint", "ls"], "old"));
                    a.ok(&["endpoint", "create", "--ip", "198.19.64.60", "n", "old2"]);
                })
            }
            "join" => (vec!["endpoint", "join", "n", "e", "s"], |a, o| {
                let joined = sandbox_of(a, "e");
                assert_eq!(joined.as_deref(), (o == Outcome::Done).then_some("s"));
                if o == Outcome::Undone {
                    a.ok(&["endpoint", "join", "n", "e", "s"]);
                }
            }),
            "leave" => {
                setup.push(vec!["endpoint", "join", "n", "e", "s"]);
                (vec!["endpoint", "leave", "n", "e"], |a, _| {
                    assert_eq!(sandbox_of(a, "e"), None);
                    a.ok(&["endpoint", "join", "n", "e", "s"]);
                })
            }
            "sandbox" if point.contains("create") => (vec!["sandbox", "create", "new"], |a, o| {
                assert_eq!(has(a, &["sandbox", "ls"], "new"), o == Outcome::Done);
                if o == Outcome::Undone {
                    a.ok(&["sandbox", "create", "new"]);
                }
            }),
            "sandbox" => {
                setup.push(vec!["sandbox", "create", "old"]);
                (vec!["sandbox", "rm", "old"], |a, _| {
                    assert!(!has(a, &["sandbox", "ls"], "old"))
                })
            }
            other => panic!("no test case for crash point {point} ({other})"),
        };
    Case { setup, op, check }
}

/// Creates that crash before their final commit are undone; everything else is done.
fn expected(point: &str) -> Outcome {
    let is_create = point.contains("create") || point.starts_with("join");
    if is_create && !point.ends_with("-done") {
        Outcome::Undone
    } else {
        Outcome::Done
    }
}

fn has(agent: &Agent, list: &[&str], name: &str) -> bool {
    agent
        .json(list)
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["name"] == name)
}

fn sandbox_of(agent: &Agent, endpoint: &str) -> Option<String> {
    let eps = agent.json(&["endpoint", "ls"]);
    let ep = eps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == endpoint)
        .unwrap()
        .clone();
    ep["sandbox"].as_str().map(str::to_owned)
}

/// No address twice, no gateway handed out, and new allocations avoid every used one.
fn check_addresses(agent: &Agent) {
    let networks = agent.json(&["network", "ls"]);
    let gateways: BTreeSet<String> = networks
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| {
            n["subnets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["gateway"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut seen = BTreeSet::new();
    for i in 0..5 {
        agent.ok(&["endpoint", "create", "n", &format!("probe{i}")]);
    }
    for e in agent.json(&["endpoint", "ls"]).as_array().unwrap() {
        let Value::String(ip) = &e["ipv4"] else {
            continue;
        };
        let addr = ip.split('/').next().unwrap().to_owned();
        assert!(
            !gateways.contains(&addr),
            "gateway {addr} handed out to {}",
            e["name"]
        );
        assert!(seen.insert(addr.clone()), "{addr} handed out twice");
    }
}

/// Every stored record is complete and refers to objects that exist.
fn check_store(agent: &Agent) {
    let store = Store::open(&agent.data_dir().join("store")).unwrap();
    let networks: Vec<NetworkRecord> = store.list().unwrap().into_iter().map(|v| v.value).collect();
    let endpoints: Vec<EndpointRecord> =
        store.list().unwrap().into_iter().map(|v| v.value).collect();
    let sandboxes: Vec<SandboxRecord> =
        store.list().unwrap().into_iter().map(|v| v.value).collect();
    assert!(
        networks.iter().all(|n| n.lifecycle == Lifecycle::Ready),
        "{networks:?}"
    );
    assert!(
        sandboxes.iter().all(|s| s.lifecycle == Lifecycle::Ready),
        "{sandboxes:?}"
    );
    // Exactly one namespace per sandbox: none leaked, none missing.
    let mut wanted: Vec<String> = sandboxes
        .iter()
        .map(|s| format!("{}sb-{}", agent.netns_prefix(), s.id.short()))
        .collect();
    wanted.sort();
    let mut present = agent.namespaces();
    present.sort();
    assert_eq!(
        present, wanted,
        "namespaces on disk differ from the stored sandboxes"
    );
    for e in &endpoints {
        assert_eq!(e.lifecycle, Lifecycle::Ready, "{e:?}");
        assert!(
            networks.iter().any(|n| n.id == e.network),
            "endpoint of a missing network: {e:?}"
        );
        match &e.attachment {
            Attachment::Detached => {}
            Attachment::Joined(s) => assert!(sandboxes.iter().any(|sb| &sb.id == s), "{e:?}"),
            other => panic!("endpoint left {other:?}: {e:?}"),
        }
    }
}

fn run_case(point: &str) {
    let case = case_for(point);
    let mut agent = Agent::start(AgentOptions::default()).unwrap();
    for step in &case.setup {
        agent.ok(step);
    }
    agent.stop().unwrap();
    agent.spawn(&[(crash::CRASH_AT_ENV, point)]).unwrap();
    agent.wait_ready().unwrap();
    let out = agent.cli(&case.op);
    assert!(
        !out.success(),
        "{point}: the operation succeeded, so the agent did not abort; build with --features crash-points"
    );
    let status = agent.wait_exit(std::time::Duration::from_secs(10)).unwrap();
    assert!(
        aborted(&status),
        "{point}: agent ended with {status}, not at the crash point: {}",
        agent.log()
    );
    assert!(agent.log().contains(point), "{point}: {}", agent.log());

    agent.restart().unwrap();
    (case.check)(&agent, expected(point));
    check_addresses(&agent);
    let before = agent.listings();
    agent.stop().unwrap();
    check_store(&agent);
    agent.restart().unwrap();
    assert_eq!(
        agent.listings(),
        before,
        "{point}: a second restart changed the state"
    );
    agent.stop().unwrap();
}

#[test]
fn every_crash_point_recovers_to_a_consistent_state() {
    assert!(crash::ALL.len() >= 20, "crash points: {:?}", crash::ALL);
    for point in crash::ALL {
        eprintln!("crash point {point}");
        run_case(point);
    }
}

/// A panic inside an operation (a bug, not a crash) takes the controller's state with it:
/// the agent must exit with a clear line rather than live on answering "busy", and the
/// restart recovers as after a crash.
#[test]
fn a_panicking_operation_ends_the_agent_and_the_restart_recovers() {
    let mut agent = Agent::start(AgentOptions::default()).unwrap();
    agent.stop().unwrap();
    agent
        .spawn(&[(crash::PANIC_AT_ENV, crash::NETWORK_CREATE_INTENT)])
        .unwrap();
    agent.wait_ready().unwrap();
    let args = [
        "network",
        "create",
        "-d",
        "null",
        "--subnet",
        "198.19.90.0/24",
        "p",
    ];
    assert!(
        !agent.cli(&args).success(),
        "the injected panic did not happen"
    );
    let status = agent.wait_exit(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(
        status.code(),
        Some(weft_controller::PANIC_EXIT_CODE),
        "{status}: {}",
        agent.log()
    );
    assert!(
        agent.log().contains("a controller operation panicked"),
        "{}",
        agent.log()
    );
    agent.restart().unwrap();
    let networks = agent.json(&["network", "ls"]);
    assert!(
        networks
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["name"] != "p"),
        "the half-made network survived: {networks}"
    );
    agent.ok(&args);
    agent.stop().unwrap();
}

/// The manager answered with an endpoint's address and the agent died before storing it:
/// the intent stored before the request lets the restart release the address, so the
/// network can still be removed (the manager refuses while it holds an address of it).
#[test]
fn a_crash_between_the_managers_answer_and_the_save_leaks_no_address() {
    let mut agent = Agent::start(AgentOptions::default()).unwrap();
    let network = [
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "198.19.96.0/24",
        "ov",
    ];
    agent.ok(&network);
    agent.stop().unwrap();
    agent
        .spawn(&[(crash::CRASH_AT_ENV, crash::ENDPOINT_CREATE_ALLOCATED)])
        .unwrap();
    agent.wait_ready().unwrap();
    assert!(
        !agent.cli(&["endpoint", "create", "ov", "e"]).success(),
        "the crash point was not reached"
    );
    let status = agent.wait_exit(std::time::Duration::from_secs(10)).unwrap();
    assert!(aborted(&status), "{status}: {}", agent.log());
    agent.restart().unwrap();
    assert!(!has(&agent, &["endpoint", "ls"], "e"));
    agent.ok(&["network", "rm", "ov"]);
    // Nothing of it is left at the manager either: the same subnet can be had again.
    agent.ok(&network);
    agent.stop().unwrap();
}

/// A worker dies between the manager's answer and its own save and never comes back (its
/// disk is lost): the address its lost intent would have released stays allocated, and the
/// manager refuses `network rm`. `weft network rm --force` on the manager is the way out:
/// it releases what no live node holds, and refuses while an endpoint joined on a live
/// node still uses the network.
#[test]
fn a_forced_delete_on_a_manager_releases_what_a_lost_node_left() {
    use cluster_tests::{Cluster, ClusterOptions, wait_until};
    use std::time::Duration;
    let options =
        ClusterOptions::default().args(["--gossip-interval", "100ms", "--suspicion-window", "3s"]);
    let mut cluster = Cluster::start(3, options).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    let create = |name| {
        [
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "198.19.97.0/24",
            name,
        ]
    };
    cluster.host(1).ok(&create("ov"));
    for i in [2, 3] {
        wait_until(&format!("host {i} adopts"), Duration::from_secs(10), || {
            cluster
                .host(i)
                .cli(&["network", "inspect", "ov"])
                .success()
                .then_some(())
        })
        .unwrap();
    }
    // Host 3 holds a joined endpoint: it publishes its peer entry.
    cluster.host(3).ok(&["sandbox", "create", "s3"]);
    cluster.host(3).ok(&["endpoint", "create", "ov", "e3"]);
    cluster.host(3).ok(&["endpoint", "join", "ov", "e3", "s3"]);
    // Host 2 dies at the crash point, holding an address only its lost record knew of.
    let worker = cluster.host_mut(2);
    worker.stop().unwrap();
    worker
        .spawn(&[(crash::CRASH_AT_ENV, crash::ENDPOINT_CREATE_ALLOCATED)])
        .unwrap();
    worker.wait_ready().unwrap();
    assert!(!worker.cli(&["endpoint", "create", "ov", "e2"]).success());
    let status = worker.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(aborted(&status), "{status}: {}", worker.log());
    let manager = cluster.host(1);
    let refused = manager.cli(&["network", "rm", "ov"]);
    assert!(!refused.success());
    assert!(
        refused.stderr.contains("--force on a manager"),
        "{}",
        refused.stderr
    );
    let live = manager.cli(&["network", "rm", "--force", "ov"]);
    assert!(!live.success());
    assert!(
        live.stderr.contains("1 endpoint(s) joined on live nodes"),
        "{}",
        live.stderr
    );
    // A worker's --force removes its own endpoints, not another node's allocations: only
    // a manager sees which endpoints live nodes hold.
    let worker = cluster.host(3).cli(&["network", "rm", "--force", "ov"]);
    assert!(!worker.success());
    assert!(
        worker.stderr.contains("in the cluster"),
        "{}",
        worker.stderr
    );
    manager.ok(&["network", "rm", "--force", "ov"]);
    wait_until("host 3 forgets ov", Duration::from_secs(10), || {
        (!cluster.host(3).cli(&["network", "inspect", "ov"]).success()).then_some(())
    })
    .unwrap();
    // Every address of it is free again at the manager: the same subnet can be had.
    manager.ok(&create("ov2"));
}

/// An overlay's join done, the agent gone before the sandbox got its way out (the gateway
/// endpoint comes after the join): the restarted agent gives it, from what is stored.
#[test]
fn a_crash_between_an_overlay_join_and_its_way_out_is_settled_at_start() {
    let mut agent = Agent::start(AgentOptions::default()).unwrap();
    let overlay = [
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "198.19.67.0/24",
        "ov",
    ];
    agent.ok(&overlay);
    agent.ok(&["endpoint", "create", "ov", "e"]);
    agent.ok(&["sandbox", "create", "s"]);
    agent.stop().unwrap();
    agent
        .spawn(&[(crash::CRASH_AT_ENV, crash::JOIN_DONE)])
        .unwrap();
    agent.wait_ready().unwrap();
    assert!(!agent.cli(&["endpoint", "join", "ov", "e", "s"]).success());
    let status = agent.wait_exit(std::time::Duration::from_secs(10)).unwrap();
    assert!(aborted(&status), "{status}: {}", agent.log());
    agent.restart().unwrap();
    assert_eq!(sandbox_of(&agent, "e").as_deref(), Some("s"));
    let info = agent.json(&["sandbox", "inspect", "s"]);
    let mut networks: Vec<&str> = info[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["network"].as_str().unwrap())
        .collect();
    networks.sort_unstable();
    assert_eq!(networks, ["ov", "weft_gwbridge"], "{info}");
    let route = agent.ok(&["exec", "s", "--", "ip", "route", "show", "default"]);
    assert!(route.contains("default via"), "{route}");
    agent.stop().unwrap();
    check_store(&agent);
}
