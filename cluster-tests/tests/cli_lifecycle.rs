//! The local model from the CLI, as an operator uses it, with `kill -9` of the agent
//! between every step: after each restart every listing is what it was, and the next
//! address handed out is not one already in use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, AgentOptions};
use serde_json::Value;

/// Kills the agent, restarts it, and checks nothing it lists changed.
fn crash_and_compare(agent: &mut Agent) {
    let before = agent.listings();
    agent.kill9().unwrap();
    agent.restart().unwrap();
    assert_eq!(
        agent.listings(),
        before,
        "listings changed across kill -9 and restart"
    );
}

fn ips(agent: &Agent, network: &str) -> Vec<String> {
    let eps = agent.json(&["endpoint", "ls", network]);
    eps.as_array()
        .unwrap()
        .iter()
        .map(|e| e["ipv4"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn networks_endpoints_sandboxes_survive_kill9_between_steps() {
    let mut agent = Agent::start(AgentOptions::default()).unwrap();

    agent.ok(&[
        "network",
        "create",
        "-d",
        "null",
        "--subnet",
        "198.19.64.0/24",
        "explicit",
    ]);
    crash_and_compare(&mut agent);
    agent.ok(&["network", "create", "-d", "null", "auto"]);
    let auto = agent.json(&["network", "inspect", "auto"]);
    assert_eq!(
        auto[0]["subnets"][0]["subnet"], "198.19.0.0/24",
        "first free predefined pool"
    );
    assert_eq!(auto[0]["subnets"][0]["gateway"], "198.19.0.1");
    crash_and_compare(&mut agent);

    for name in ["e1", "e2", "e3"] {
        agent.ok(&["endpoint", "create", "explicit", name]);
        crash_and_compare(&mut agent);
    }
    assert_eq!(
        ips(&agent, "explicit"),
        ["198.19.64.2/24", "198.19.64.3/24", "198.19.64.4/24"]
    );

    agent.ok(&["sandbox", "create", "--hostname", "box", "s1"]);
    agent.ok(&["endpoint", "join", "explicit", "e1", "s1"]);
    crash_and_compare(&mut agent);
    let sb = agent.json(&["sandbox", "inspect", "s1"]);
    assert_eq!(sb[0]["endpoints"][0]["endpoint"], "e1");

    let refused = agent.cli(&["network", "rm", "explicit"]);
    assert_eq!(refused.code(), Some(1));
    assert!(refused.stderr.contains("endpoint"), "{}", refused.stderr);
    crash_and_compare(&mut agent);

    // Addresses stay taken across restarts: the next one is new.
    agent.ok(&["endpoint", "rm", "explicit", "e2"]);
    crash_and_compare(&mut agent);
    agent.ok(&["endpoint", "create", "explicit", "e4"]);
    let now = ips(&agent, "explicit");
    let mut unique = now.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        now.len(),
        "an address was handed out twice: {now:?}"
    );
    assert!(
        !now.contains(&"198.19.64.1/24".to_owned()),
        "the gateway was handed out"
    );

    agent.ok(&["endpoint", "leave", "explicit", "e1"]);
    crash_and_compare(&mut agent);
    agent.ok(&["sandbox", "rm", "s1"]);
    for ep in ["e1", "e3", "e4"] {
        agent.ok(&["endpoint", "rm", "explicit", ep]);
    }
    agent.ok(&["network", "rm", "explicit", "auto"]);
    // Within an agent's life, automatic pools resume after the last one handed out, so
    // the subnet just released is not reused at once.
    let again = agent.json(&["network", "create", "-d", "null", "again"]);
    assert_eq!(again["subnets"][0]["subnet"], "198.19.1.0/24");
    agent.ok(&["network", "rm", "again"]);
    crash_and_compare(&mut agent);
    let all = agent.listings();
    for kind in ["networks", "endpoints", "sandboxes"] {
        assert_eq!(all[kind], Value::Array(vec![]), "{kind} left behind");
    }
    // Every subnet is free again.
    agent.ok(&[
        "network",
        "create",
        "-d",
        "null",
        "--subnet",
        "198.19.64.0/24",
        "explicit",
    ]);
    agent.ok(&[
        "network",
        "create",
        "-d",
        "null",
        "--subnet",
        "198.19.1.0/24",
        "one",
    ]);
    agent.stop().unwrap();
}
