//! The way out of an overlay (Docker's docker_gwbridge), on real agents:
//! - a sandbox on an overlay fetches a page from a server outside the cluster (a namespace
//!   on the underlay that is no host), through its own host, on every host;
//! - a sandbox on `--internal` overlays only has no route out, and cannot;
//! - the gateway network does not connect sandboxes: two sandboxes of one host on different
//!   overlays cannot reach each other through it;
//! - a sandbox also on a local bridge network goes out through that one, and still reaches
//!   its overlay peers and answers names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::cluster::OUTSIDE_ADDR;
use cluster_tests::dns::dig_short;
use cluster_tests::{Agent, Cluster, ClusterOptions, wait_until};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An HTTP server in the outside namespace, killed on drop (also when the test fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves a page that says `outside` on OUTSIDE_ADDR:8080, in namespace `ns`; its request
/// log (with each client's address) goes to `root/log`.
fn serve_outside(ns: &str, root: &std::path::Path) -> Server {
    std::fs::write(root.join("index.html"), "outside").unwrap();
    let log = std::fs::File::create(root.join("log")).unwrap();
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args([
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            OUTSIDE_ADDR,
        ])
        .arg("--directory")
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Server(child)
}

/// What `sandbox` gets from the outside server (curl's output, or `FAILED`).
fn fetch(agent: &Agent, sandbox: &str) -> String {
    let url = format!("http://{OUTSIDE_ADDR}:8080/");
    let out = agent.cli(&["exec", sandbox, "--", "curl", "-s", "--max-time", "3", &url]);
    match out.success() {
        true => out.stdout.trim().to_owned(),
        false => "FAILED".to_owned(),
    }
}

#[test]
fn overlay_sandboxes_reach_the_outside_through_their_host_and_internal_ones_cannot() {
    let cluster = Cluster::start(2, ClusterOptions::default()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    let outside = cluster.topology().outside().unwrap();
    let root = tempfile::tempdir().unwrap();
    let _server = serve_outside(&outside, root.path());
    h1.create_overlay("ov", "198.19.170.0/24");
    h1.create_overlay("ov2", "198.19.172.0/24");
    h1.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--internal",
        "--subnet",
        "198.19.171.0/24",
        "ovi",
    ]);
    h1.run_idle("a1", &["ov"]);
    h2.run_idle("a2", &["ov"]);
    wait_until(
        "the outside server answers",
        Duration::from_secs(10),
        || (fetch(h1, "a1") == "outside").then_some(()),
    )
    .unwrap();
    // Through host 2 as well: every host is a way out for its own sandboxes. The server
    // sees each host's address, never a sandbox's (masquerade).
    assert_eq!(fetch(h2, "a2"), "outside");
    let log = std::fs::read_to_string(root.path().join("log")).unwrap();
    let clients: std::collections::BTreeSet<&str> = log
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        clients,
        ["198.18.0.1", "198.18.0.2"].into_iter().collect(),
        "{log}"
    );
    let route = h1.ok(&["exec", "a1", "--", "ip", "route", "show", "default"]);
    let gw = h1.json(&["network", "inspect", "weft_gwbridge"]);
    let gateway = gw[0]["subnets"][0]["gateway"].as_str().unwrap().to_owned();
    assert!(route.contains(&format!("default via {gateway}")), "{route}");
    // The overlay still carries what it carried: the peer across hosts, by name.
    let ip2 = h2.ip_of("a2", "ov");
    assert!(h1.ping("a1", &ip2, 2));
    assert_eq!(dig_short(h1, "a1", &["a2"]), vec![ip2.clone()]);

    // Internal overlay only: no default route, nothing reaches the outside.
    h1.run_idle("i1", &["ovi"]);
    let routes = h1.ok(&["exec", "i1", "--", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert_eq!(fetch(h1, "i1"), "FAILED");

    // The gateway network connects no sandboxes: b1 (on ov2) cannot reach a1 through it.
    h1.run_idle("b1", &["ov2"]);
    assert_eq!(fetch(h1, "b1"), "outside");
    let a1_gw = h1.ip_of("a1", "weft_gwbridge");
    let b1_gw = h1.ip_of("b1", "weft_gwbridge");
    assert!(h1.ping("a1", &gateway, 1), "a1 reaches its gateway");
    assert!(
        !h1.ping("b1", &a1_gw, 1),
        "b1 reached a1 over the gateway network"
    );
    assert!(
        !h1.ping("a1", &b1_gw, 1),
        "a1 reached b1 over the gateway network"
    );

    // On a local bridge network too: that network is the way out, no gateway endpoint.
    h1.ok(&["network", "create", "--subnet", "198.19.60.0/24", "br"]);
    h1.run_idle("c1", &["br", "ov"]);
    let info = h1.json(&["sandbox", "inspect", "c1"]);
    let networks: Vec<&str> = info[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["network"].as_str().unwrap())
        .collect();
    assert_eq!(networks, ["br", "ov"], "{info}");
    assert_eq!(fetch(h1, "c1"), "outside");
    assert!(h1.ping("c1", &ip2, 2));

    // Off its last overlay, a sandbox loses its gateway endpoint.
    let ep = h1
        .json(&["endpoint", "ls", "ov"])
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["sandbox"] == "a1")
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .unwrap();
    h1.ok(&["endpoint", "leave", "ov", &ep]);
    let info = h1.json(&["sandbox", "inspect", "a1"]);
    assert_eq!(info[0]["endpoints"].as_array().unwrap().len(), 0, "{info}");
    assert_eq!(fetch(h1, "a1"), "FAILED");
}
