//! The local data path as a user sees it through `weft run` and `weft exec`: sandboxes on
//! one bridge network reach each other (ICMP and TCP), a sandbox on two networks reaches
//! both, different networks are isolated, an internal network has no way out, a sandbox
//! on the host driver sees the host's interfaces, and removing everything leaves no
//! namespace, link or nftables table behind. The agent runs in its own namespace, which
//! is the "host" here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, AgentOptions, wait_until};
use std::time::Duration;

/// Links the agent owns in its host namespace (bridges and veths).
fn weft_links(agent: &Agent) -> Vec<String> {
    let out = agent.host_ip(&["-br", "link", "show"]).unwrap();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .filter(|n| ["wb-", "wv-", "wp-"].iter().any(|p| n.starts_with(p)))
        .collect()
}

#[test]
fn bridge_networks_connect_isolate_and_clean_up() {
    let agent = Agent::start(AgentOptions::default()).unwrap();
    agent
        .host_ip(&["link", "add", "hostonly0", "type", "bridge"])
        .unwrap();
    agent.ok(&["network", "create", "--subnet", "198.19.10.0/24", "a"]);
    agent.ok(&["network", "create", "--subnet", "198.19.11.0/24", "b"]);
    agent.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "198.19.12.0/24",
        "i",
    ]);
    agent.ok(&["network", "create", "-d", "host", "h"]);
    agent.run_idle("s1", &["a"]);
    agent.run_idle("s2", &["a"]);
    agent.run_idle("s3", &["a", "b"]);
    agent.run_idle("s4", &["b"]);
    agent.run_idle("s5", &["i"]);
    agent.run_idle("s6", &["h"]);
    let (s1, s2, s4) = (
        agent.ip_of("s1", "a"),
        agent.ip_of("s2", "a"),
        agent.ip_of("s4", "b"),
    );
    assert_eq!((s1.as_str(), s2.as_str()), ("198.19.10.2", "198.19.10.3"));

    // Same network: ICMP and TCP.
    assert!(agent.ping("s1", &s2, 2), "s1 -> s2 on one bridge");
    agent.iperf_server("s2");
    wait_until("TCP from s1 to s2", Duration::from_secs(10), || {
        agent.tcp_connects("s1", &s2, 5201).then_some(())
    })
    .unwrap();

    // Two networks: reaches both, as eth0 and eth1 in join order.
    assert!(
        agent.ping("s3", &s1, 2) && agent.ping("s3", &s4, 2),
        "s3 reaches a and b"
    );
    let links = agent.ok(&["exec", "s3", "--", "ip", "-br", "link"]);
    assert!(links.contains("eth0") && links.contains("eth1"), "{links}");
    let routes = agent.ok(&["exec", "s3", "--", "ip", "route"]);
    assert!(
        routes.contains("default via 198.19.10.1 dev eth0"),
        "first network joined is the default: {routes}"
    );

    // Different networks: isolated, for ICMP and TCP.
    agent.iperf_server("s4");
    assert!(!agent.ping("s1", &s4, 1), "s1 (a) must not reach s4 (b)");
    assert!(
        !agent.tcp_connects("s1", &s4, 5201),
        "s1 (a) must not open TCP to s4 (b)"
    );
    assert!(
        agent.tcp_connects("s3", &s4, 5201),
        "the server on s4 does answer"
    );

    // Internal: its own gateway only, no default route, nothing beyond.
    let routes = agent.ok(&["exec", "s5", "--", "ip", "route"]);
    assert!(
        !routes.contains("default"),
        "internal network has a default route: {routes}"
    );
    assert!(agent.ping("s5", "198.19.12.1", 2), "own gateway");
    assert!(
        !agent.ping("s5", "198.19.10.1", 1),
        "gateway of another network"
    );
    assert!(!agent.ping("s5", &s1, 1));

    // Host driver: the host's interfaces, which no other sandbox sees.
    assert!(
        agent
            .ok(&["exec", "s6", "--", "ip", "-br", "link"])
            .contains("hostonly0")
    );
    assert!(
        !agent
            .ok(&["exec", "s1", "--", "ip", "-br", "link"])
            .contains("hostonly0")
    );

    // Everything the agent made is listed before, and nothing after removal.
    assert_eq!(agent.namespaces().len(), 6);
    let links = weft_links(&agent);
    assert_eq!(
        links.iter().filter(|l| l.starts_with("wb-")).count(),
        3,
        "{links:?}"
    );
    assert_eq!(
        links.iter().filter(|l| l.starts_with("wv-")).count(),
        6,
        "{links:?}"
    );
    assert!(
        agent
            .host_nft(&["list", "tables"])
            .unwrap()
            .contains("weft-bridge")
    );
    agent.ok(&["sandbox", "rm", "-f", "s1", "s2", "s3", "s4", "s5", "s6"]);
    agent.ok(&["network", "rm", "a", "b", "i", "h"]);
    assert!(agent.namespaces().is_empty(), "{:?}", agent.namespaces());
    assert!(weft_links(&agent).is_empty(), "{:?}", weft_links(&agent));
    assert!(
        !agent
            .host_nft(&["list", "tables"])
            .unwrap()
            .contains("weft"),
        "nft table left behind"
    );
    assert_eq!(agent.json(&["endpoint", "ls"]), serde_json::json!([]));
}

#[test]
fn a_single_agent_with_no_cluster_flags_runs_overlay_sandboxes() {
    // No --advertise-addr: a single-node cluster on 127.0.0.1, as `weft agent` alone.
    let agent = Agent::start(AgentOptions::default()).unwrap();
    agent.create_overlay("ov", "198.19.90.0/24");
    agent.run_idle("a", &["ov"]);
    agent.run_idle("b", &["ov"]);
    let b = agent.ip_of("b", "ov");
    assert!(agent.ping("a", &b, 2), "a cannot reach b on the overlay");
    let link = agent.ok(&["exec", "a", "--", "ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains(" mtu 1450 "), "{link}");
    agent.ok(&["sandbox", "rm", "-f", "a", "b"]);
    agent.ok(&["network", "rm", "ov"]);
}
