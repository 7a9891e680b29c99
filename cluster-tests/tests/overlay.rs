//! The VXLAN overlay across hosts: sandboxes on three hosts reach each other over one
//! overlay network (ICMP, TCP, the largest unfragmented packet and not one byte more), a
//! second overlay network is isolated from the first, peers follow leaves, agent crashes
//! (kept), lost hosts (removed) and returns, an FDB entry removed by hand comes back, and an agent killed with
//! `kill -9` brings its sandboxes' connectivity back without leaks or "file exists".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, Cluster, ClusterOptions, wait_until};
use std::process::Command;
use std::time::Duration;

/// The underlay MTU of the harness's hosts, and the overlay's: 50 bytes of VXLAN less.
const UNDERLAY_MTU: u32 = 1500;
const OVERLAY_MTU: u32 = UNDERLAY_MTU - 50;

fn options() -> ClusterOptions {
    ClusterOptions::default().args([
        "--gossip-interval",
        "100ms",
        "--suspicion-window",
        "3s",
        "--repair-interval",
        "1s",
        "--metrics-addr",
        "127.0.0.1:9464",
    ])
}

/// Creates an overlay network on host 1 and waits until every host has it.
fn overlay(cluster: &Cluster, name: &str, subnet: &str) {
    cluster.host(1).ok(&[
        "network", "create", "-d", "overlay", "--subnet", subnet, name,
    ]);
    for (i, agent) in cluster.hosts() {
        wait_until(
            &format!("host {i} to adopt {name}"),
            Duration::from_secs(10),
            || {
                agent
                    .cli(&["network", "inspect", name])
                    .success()
                    .then_some(())
            },
        )
        .unwrap();
    }
}

fn run(agent: &Agent, name: &str, network: &str) -> String {
    let out = agent.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(out.trim(), name);
    agent.ip_of(name, network)
}

/// Waits until `sandbox` on `agent` gets an echo reply from `ip`.
fn wait_ping(agent: &Agent, sandbox: &str, ip: &str, within: Duration) {
    wait_until(&format!("{sandbox} to reach {ip}"), within, || {
        agent.ping(sandbox, ip, 1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", agent.log()));
}

/// One ping of `size` payload bytes with DF set; true when answered.
fn ping_df(agent: &Agent, sandbox: &str, ip: &str, size: u32) -> bool {
    agent
        .cli(&[
            "exec",
            sandbox,
            "--",
            "ping",
            "-n",
            "-q",
            "-c1",
            "-W2",
            "-M",
            "do",
            "-s",
            &size.to_string(),
            ip,
        ])
        .success()
}

/// `agent`'s overlay namespace of `network`.
fn overlay_ns(agent: &Agent, network_id: &str) -> String {
    agent
        .overlay_namespaces()
        .into_iter()
        .find(|n| n.ends_with(&network_id[..12]))
        .unwrap_or_else(|| panic!("no overlay namespace for {network_id}"))
}

/// The MACs with a remote VTEP in the FDB of `agent`'s only overlay namespace of `network`.
fn fdb_macs(agent: &Agent, network_id: &str) -> Vec<String> {
    fdb_entries(agent, network_id)
        .into_iter()
        .map(|(mac, _)| mac)
        .collect()
}

/// The FDB of `agent`'s overlay namespace of `network`: (MAC, VTEP) of every remote entry.
fn fdb_entries(agent: &Agent, network_id: &str) -> Vec<(String, String)> {
    let out = Command::new("bridge")
        .args(["-n", &overlay_ns(agent, network_id), "fdb", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("00:00:00:00:00:00"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let dst = words.iter().position(|w| *w == "dst")?;
            Some((words[0].to_owned(), words.get(dst + 1)?.to_string()))
        })
        .collect()
}

/// The addresses with a permanent neighbour entry in `agent`'s overlay namespace of
/// `network`.
fn neighbours(agent: &Agent, network_id: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args([
            "-n",
            &overlay_ns(agent, network_id),
            "neigh",
            "show",
            "nud",
            "permanent",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn mac_of(agent: &Agent, sandbox: &str) -> String {
    let info = agent.json(&["sandbox", "inspect", sandbox]);
    info[0]["endpoints"][0]["mac"]
        .as_str()
        .unwrap()
        .to_lowercase()
}

fn network_id(agent: &Agent, network: &str) -> String {
    agent.json(&["network", "inspect", network])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn sandboxes_on_three_hosts_share_an_overlay_and_nothing_else() {
    let cluster = Cluster::start(3, options()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    overlay(&cluster, "ov1", "198.19.200.0/24");
    let ips: Vec<String> = (1..=3)
        .map(|i| run(cluster.host(i), &format!("a{i}"), "ov1"))
        .collect();

    // Every pair, both protocols.
    for i in 1..=3 {
        cluster
            .host(i)
            .ok(&["exec", &format!("a{i}"), "--", "iperf3", "-s", "-D"]);
    }
    for from in 1..=3 {
        for to in 1..=3 {
            if from == to {
                continue;
            }
            let agent = cluster.host(from);
            let sandbox = format!("a{from}");
            wait_ping(agent, &sandbox, &ips[to - 1], Duration::from_secs(5));
            let tcp = wait_until("tcp", Duration::from_secs(5), || {
                agent
                    .tcp_connects(&sandbox, &ips[to - 1], 5201)
                    .then_some(())
            });
            assert!(tcp.is_ok(), "TCP a{from} -> a{to} ({})", ips[to - 1]);
        }
    }

    // `inspect --verbose` names the network's peers: every host with a sandbox on it.
    let peers = wait_until("3 peers of ov1", Duration::from_secs(5), || {
        let v = cluster
            .host(1)
            .json(&["network", "inspect", "--verbose", "ov1"]);
        let mut ids: Vec<String> = v[0]["peers"]
            .as_array()?
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        (ids.len() == 3).then_some(ids)
    })
    .unwrap();
    assert_eq!(peers, ["h1", "h2", "h3"]);

    // The MTU comes from the underlay: the largest unfragmented packet passes, one byte
    // more is refused.
    // (`ip` rather than /sys: sysfs shows the namespace it was mounted in, not the sandbox.)
    let link = cluster
        .host(1)
        .ok(&["exec", "a1", "--", "ip", "-o", "link", "show", "eth0"]);
    assert!(
        link.contains(&format!(" mtu {OVERLAY_MTU} ")),
        "sandbox eth0: {link}"
    );
    let largest = OVERLAY_MTU - 28;
    assert!(ping_df(cluster.host(1), "a1", &ips[1], largest));
    assert!(!ping_df(cluster.host(1), "a1", &ips[1], largest + 1));

    // A second overlay network on the same hosts: its sandboxes reach each other, not ov1's.
    overlay(&cluster, "ov2", "198.19.201.0/24");
    let ips2: Vec<String> = (1..=3)
        .map(|i| run(cluster.host(i), &format!("b{i}"), "ov2"))
        .collect();
    wait_ping(cluster.host(1), "b1", &ips2[2], Duration::from_secs(5));
    for to in 1..=3 {
        assert!(
            !cluster.host(1).ping("b1", &ips[to - 1], 1),
            "ov2 reached ov1's a{to}"
        );
        assert!(
            !cluster.host(2).ping("a2", &ips2[to - 1], 1),
            "ov1 reached ov2's b{to}"
        );
    }
}

#[test]
fn peers_follow_leaves_crashes_lost_hosts_returns_and_hand_edits() {
    let mut cluster = Cluster::start(3, options()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    overlay(&cluster, "ov1", "198.19.202.0/24");
    let nid = network_id(cluster.host(1), "ov1");
    let ips: Vec<String> = (1..=3)
        .map(|i| run(cluster.host(i), &format!("a{i}"), "ov1"))
        .collect();
    let macs: Vec<String> = (1..=3)
        .map(|i| mac_of(cluster.host(i), &format!("a{i}")))
        .collect();
    wait_ping(cluster.host(1), "a1", &ips[2], Duration::from_secs(5));
    let has = |agent: &Agent, mac: &str| fdb_macs(agent, &nid).iter().any(|m| m == mac);
    let knows = |agent: &Agent, ip: &str| neighbours(agent, &nid).iter().any(|n| n == ip);
    assert!(has(cluster.host(1), &macs[1]) && has(cluster.host(1), &macs[2]));
    assert!(knows(cluster.host(1), &ips[1]) && knows(cluster.host(1), &ips[2]));

    // An FDB entry deleted by hand is restored by the repair (every second here).
    let ns1 = cluster
        .host(1)
        .overlay_namespaces()
        .into_iter()
        .find(|n| n.ends_with(&nid[..12]))
        .unwrap();
    let vx = fdb_device(&ns1);
    let status = Command::new("bridge")
        .args(["-n", &ns1, "fdb", "del", &macs[2], "dev", &vx, "self"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!has(cluster.host(1), &macs[2]));
    wait_until(
        "the repair to restore the entry",
        Duration::from_secs(5),
        || has(cluster.host(1), &macs[2]).then_some(()),
    )
    .unwrap();

    // Operators see it: the repair and the routed events are counted in the metrics.
    let metrics = metrics(&cluster, 1);
    assert!(
        counter(&metrics, "weft_driver_repairs_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        counter(&metrics, "weft_driver_events_total{outcome=\"delivered\"}") >= 2.0,
        "{metrics}"
    );

    // A sandbox that goes away disappears from the other hosts' tables.
    cluster.host(2).ok(&["sandbox", "rm", "-f", "a2"]);
    wait_until("host 1 to drop a2", Duration::from_secs(5), || {
        (!has(cluster.host(1), &macs[1]) && !knows(cluster.host(1), &ips[1])).then_some(())
    })
    .unwrap();
    assert!(has(cluster.host(1), &macs[2]), "a3 stays");

    // A killed agent whose host runs on: its peers stay past the window (3 s here), since
    // its host answers probes; its sandbox stays reachable.
    cluster.kill9(3).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        has(cluster.host(1), &macs[2]) && knows(cluster.host(1), &ips[2]),
        "kept while its host answers"
    );
    assert!(cluster.host(1).ping("a1", &ips[2], 1));
    cluster.restart(3).unwrap();
    // A lost host (off the underlay): its peers go once it is dead, and come back when it
    // returns; its sandbox is reachable again.
    cluster.cut(3).unwrap();
    wait_until(
        "host 1 to drop lost host 3's peer",
        Duration::from_secs(15),
        || (!has(cluster.host(1), &macs[2]) && !knows(cluster.host(1), &ips[2])).then_some(()),
    )
    .unwrap();
    cluster.heal(3).unwrap();
    wait_until(
        "host 1 to restore host 3's peer",
        Duration::from_secs(15),
        || (has(cluster.host(1), &macs[2]) && knows(cluster.host(1), &ips[2])).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\nhost 1:\n{}", cluster.host(1).log()));
    wait_ping(cluster.host(1), "a1", &ips[2], Duration::from_secs(5));
}

/// The links of the agent's namespace: name, MAC and flags. Not the operational state: a
/// bridge reports UNKNOWN or UP depending on when its ports last changed.
fn links_of(agent: &Agent) -> Vec<String> {
    let out = agent.host_ip(&["-br", "link"]).unwrap();
    out.lines()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let kept: Vec<&str> = words
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1)
                .map(|(_, w)| *w)
                .collect();
            kept.join(" ")
        })
        .collect()
}

#[test]
fn a_killed_agent_brings_its_overlay_back_without_leaks() {
    let mut cluster = Cluster::start(2, options()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    overlay(&cluster, "ov1", "198.19.203.0/24");
    let ip1 = run(cluster.host(1), "a1", "ov1");
    let ip2 = run(cluster.host(2), "a2", "ov1");
    wait_ping(cluster.host(2), "a2", &ip1, Duration::from_secs(5));
    let namespaces = (
        cluster.host(2).namespaces(),
        cluster.host(2).overlay_namespaces(),
    );
    let links = links_of(cluster.host(2));

    for _ in 0..2 {
        cluster.kill9(2).unwrap();
        cluster.restart(2).unwrap();
        wait_ping(cluster.host(2), "a2", &ip1, Duration::from_secs(10));
        wait_ping(cluster.host(1), "a1", &ip2, Duration::from_secs(10));
        let log = cluster.host(2).log();
        assert!(!log.to_lowercase().contains("file exists"), "{log}");
        assert_eq!(
            (
                cluster.host(2).namespaces(),
                cluster.host(2).overlay_namespaces()
            ),
            namespaces
        );
        assert_eq!(links_of(cluster.host(2)), links);
    }

    // Leaving the last endpoint removes the overlay namespace; nothing is left.
    cluster.host(2).ok(&["sandbox", "rm", "-f", "a2"]);
    assert!(cluster.host(2).overlay_namespaces().is_empty());
    assert!(cluster.host(2).namespaces().is_empty());
}

/// Issue 13 item 8: a host whose underlay address changes (the agent crashes and is
/// restarted with the new one, the old one gone) keeps its overlays. The other hosts hold
/// the records of its earlier run, naming the old VTEP, until the new run's replace them:
/// they must follow the new address, and the host must not tunnel its own sandboxes.
#[test]
fn a_host_whose_address_changes_keeps_its_overlays() {
    let mut cluster = Cluster::start(3, options()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    overlay(&cluster, "ov1", "198.19.204.0/24");
    let ip1 = run(cluster.host(1), "a1", "ov1");
    let ip2 = run(cluster.host(2), "a2", "ov1");
    let ip2b = run(cluster.host(2), "b2", "ov1");
    let ip3 = run(cluster.host(3), "a3", "ov1");
    wait_ping(cluster.host(1), "a1", &ip2, Duration::from_secs(10));
    let id = network_id(cluster.host(1), "ov1");
    let (old, new) = (cluster.addr(2), "198.18.0.102".to_owned());

    // A crash rather than a leave: the other hosts keep the records of its earlier run
    // (with the old address) and hand them to the new one.
    cluster.kill9(2).unwrap();
    let topology = cluster.topology();
    // The old one first: deleting a primary address takes the secondaries of its subnet.
    topology
        .host_ip(2, &["addr", "del", &format!("{old}/24"), "dev", "eth0"])
        .unwrap();
    topology
        .host_ip(2, &["addr", "add", &format!("{new}/24"), "dev", "eth0"])
        .unwrap();
    let agent = cluster.host_mut(2);
    agent.set_flag("--listen-addr", &format!("{new}:7946"));
    agent.set_flag("--advertise-addr", &new);
    cluster.restart(2).unwrap();

    let within = Duration::from_secs(15);
    wait_ping(cluster.host(1), "a1", &ip2, within);
    wait_ping(cluster.host(3), "a3", &ip2b, within);
    wait_ping(cluster.host(2), "a2", &ip1, within);
    wait_ping(cluster.host(2), "b2", &ip3, within);
    wait_ping(cluster.host(2), "a2", &ip2b, within);
    let (mac2, mac2b) = (mac_of(cluster.host(2), "a2"), mac_of(cluster.host(2), "b2"));
    for i in [1, 3] {
        let fdb = fdb_entries(cluster.host(i), &id);
        for mac in [&mac2, &mac2b] {
            assert!(
                fdb.contains(&(mac.clone(), new.clone())),
                "host {i} does not tunnel {mac} to {new}: {fdb:?}"
            );
        }
        assert!(
            fdb.iter().all(|(_, dst)| *dst != old),
            "host {i} still tunnels to {old}: {fdb:?}"
        );
    }
    let own = fdb_entries(cluster.host(2), &id);
    assert!(
        own.iter().all(|(mac, _)| *mac != mac2 && *mac != mac2b),
        "host 2 tunnels its own sandboxes: {own:?}"
    );
}

/// The vxlan device of an overlay namespace.
fn fdb_device(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-br", "link", "show", "type", "vxlan"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .unwrap()
}

/// Host `i`'s Prometheus metrics, fetched inside its namespace from `--metrics-addr`.
fn metrics(cluster: &Cluster, i: usize) -> String {
    let script = "exec 3<>/dev/tcp/127.0.0.1/9464 && \
                  printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3";
    let out = cluster.topology().exec(i, "bash", &["-c", script]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample named exactly `name` (with its labels), 0 when absent.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}
