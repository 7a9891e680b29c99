//! The embedded DNS as a user meets it: `dig` and `getent` inside sandboxes made with
//! `weft run`, against 127.0.0.11. Names of sandboxes on other hosts (overlay) and on the
//! same host (bridge), aliases per network, `NAME.NETWORK`, case, AAAA/MX/PTR, forwarding
//! to upstream servers with SERVFAIL when none answers, truncation over UDP with the whole
//! answer over TCP, and garbage that never disturbs the resolver.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::dns::{Behaviour, FakeUpstream, dig, dig_short};
use cluster_tests::{Agent, AgentOptions, Cluster, ClusterOptions, wait_until};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn run(agent: &Agent, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend(extra);
    args.extend(["--", "sleep", "600"]);
    assert_eq!(agent.ok(&args).trim(), name);
}

/// The addresses `dig +short` prints for `name`, sorted.
fn short(agent: &Agent, sandbox: &str, name: &str) -> Vec<String> {
    dig_short(agent, sandbox, &[name])
}

/// One address, as [`short`] returns it.
fn one(ip: &str) -> Vec<String> {
    vec![ip.to_owned()]
}

/// The status word of dig's header line (NOERROR, SERVFAIL, ...).
fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("none")
}

/// The number of answers dig's header line reports.
fn answer_count(out: &str) -> usize {
    out.split("ANSWER: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX)
}

#[test]
fn names_of_sandboxes_on_other_hosts_resolve_by_name_alias_and_network() {
    let cluster = Cluster::start(2, ClusterOptions::default()).unwrap();
    cluster.wait_all_alive(Duration::from_secs(30)).unwrap();
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    h1.create_overlay("ov", "198.19.140.0/24");
    run(h2, "web1", &["--network", "ov", "--alias", "front"]);
    run(h1, "client", &["--network", "ov"]);
    let web1 = h2.ip_of("web1", "ov");
    wait_until("web1 resolves on host 1", Duration::from_secs(10), || {
        (short(h1, "client", "web1") == one(&web1)).then_some(())
    })
    .unwrap();
    for name in ["WEB1", "Web1.ov", "web1.OV.", "front", "front.ov"] {
        assert_eq!(short(h1, "client", name), one(&web1), "{name}");
    }
    // Processes in the sandbox use the embedded DNS through their resolv.conf.
    let hosts = h1.ok(&["exec", "client", "--", "getent", "hosts", "web1"]);
    assert!(hosts.contains(&web1), "{hosts}");
    let conf = h1.ok(&["exec", "client", "--", "cat", "/etc/resolv.conf"]);
    assert!(
        conf.contains("nameserver 127.0.0.11") && conf.contains("ndots:0"),
        "{conf}"
    );
    // An IPv4-only name: AAAA and MX are empty answers, not forwarded.
    for qtype in ["AAAA", "MX"] {
        let out = dig(h1, "client", &[qtype, "web1"]);
        assert_eq!(
            (status(&out), answer_count(&out)),
            ("NOERROR", 0),
            "{qtype}: {out}"
        );
    }
    let ptr = dig(h1, "client", &["+short", "-x", &web1]);
    assert_eq!(ptr.trim(), "web1.ov.");
    // The record as gossip carries it, decoded, with its owner.
    let table = h1.json(&["diag", "table", "endpoint_table", "ov"]);
    let entry = table
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["owner"] == "h2")
        .unwrap_or_else(|| panic!("no entry of h2: {table}"));
    let value: serde_json::Value = serde_json::from_str(entry["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["sandbox"], "web1", "{value}");
    assert_eq!(value["aliases"][0], "front", "{value}");
    // Gone with its sandbox: forwarded then, and the upstream here never answers.
    h2.ok(&["sandbox", "rm", "-f", "web1"]);
    wait_until(
        "web1 is forgotten on host 1",
        Duration::from_secs(10),
        || short(h1, "client", "web1").is_empty().then_some(()),
    )
    .unwrap();
}

#[test]
fn names_on_bridge_networks_answer_only_on_their_network() {
    let agent = Agent::start(AgentOptions::default()).unwrap();
    agent.ok(&["network", "create", "--subnet", "198.19.20.0/24", "a"]);
    agent.ok(&["network", "create", "--subnet", "198.19.21.0/24", "b"]);
    run(&agent, "s1", &["--network", "a", "--alias", "x"]);
    run(&agent, "s2", &["--network", "a"]);
    run(&agent, "s3", &["--network", "b"]);
    run(&agent, "s4", &["--network", "a", "--network", "b"]);
    let s1 = agent.ip_of("s1", "a");
    let s3 = agent.ip_of("s3", "b");
    assert_eq!(short(&agent, "s2", "s1"), one(&s1));
    assert_eq!(short(&agent, "s2", "x"), one(&s1));
    assert_eq!(short(&agent, "s4", "s3"), one(&s3));
    assert_eq!(short(&agent, "s4", "x.a"), one(&s1));
    // s3 is on b only: a's names are not its names (forwarded, and nothing answers).
    let out = dig(&agent, "s3", &["x"]);
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    // A sandbox that leaves a network stops answering there; its resolver goes with it.
    agent.ok(&["sandbox", "rm", "-f", "s1"]);
    let out = dig(&agent, "s2", &["x"]);
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    let stats = agent.json(&["diag", "stats"]);
    assert_eq!(
        stats["names"]["resolvers"].as_object().unwrap().len(),
        3,
        "{stats}"
    );
}

#[test]
fn forwarding_tries_the_next_server_and_answers_servfail_when_none_answers() {
    let (bad, good) = (
        Ipv4Addr::new(198, 18, 0, 201),
        Ipv4Addr::new(198, 18, 0, 202),
    );
    let options =
        ClusterOptions::default().args(["--dns", "198.18.0.201", "--dns", "198.18.0.202"]);
    let cluster = Cluster::start(1, options).unwrap();
    let underlay = cluster.topology().underlay_netns();
    for ip in [bad, good] {
        cluster
            .topology()
            .underlay_ip(&["addr", "add", &format!("{ip}/24"), "dev", "ul0"])
            .unwrap();
    }
    let servfail = FakeUpstream::start(&underlay, bad, Behaviour::ServFail).unwrap();
    let answer = Ipv4Addr::new(198, 18, 7, 7);
    let good_server = FakeUpstream::start(&underlay, good, Behaviour::Answer(answer)).unwrap();
    let h1 = cluster.host(1);
    h1.ok(&["network", "create", "--subnet", "198.19.30.0/24", "n"]);
    run(h1, "c", &["--network", "n"]);
    assert_eq!(short(h1, "c", "outside.example"), ["198.18.7.7"]);
    assert_eq!((servfail.queries(), good_server.queries()), (1, 1));
    // A sandbox on an --internal network only never forwards (CVE-2024-29018).
    h1.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "198.19.31.0/24",
        "inner",
    ]);
    run(h1, "ci", &["--network", "inner"]);
    let out = dig(h1, "ci", &["outside.example"]);
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    assert_eq!((servfail.queries(), good_server.queries()), (1, 1));
    // Now the first server never answers and nothing listens on the second.
    drop(good_server);
    drop(servfail);
    let _silent = FakeUpstream::start(&underlay, bad, Behaviour::Silent).unwrap();
    let started = Instant::now();
    let out = dig(h1, "c", &["outside.example"]);
    let took = started.elapsed();
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    assert!(took <= Duration::from_secs(5), "SERVFAIL after {took:?}");
    let stats = h1.json(&["diag", "stats"]);
    let c_id = h1.json(&["sandbox", "inspect", "c"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let counters = &stats["names"]["resolvers"][&c_id];
    assert_eq!(counters["forwarded"], 1, "{stats}");
    assert_eq!(counters["servfail"], 1, "{stats}");
    // The same counters, summed, in Prometheus form.
    let metrics = cluster
        .topology()
        .exec(1, "curl", &["-s", "127.0.0.1:7948/metrics"])
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains("weft_dns_answers_total{outcome=\"forwarded\"} 1"),
        "{text}"
    );
}

#[test]
fn forty_aliases_are_truncated_over_udp_and_whole_over_tcp() {
    let agent = Agent::start(AgentOptions::default()).unwrap();
    agent.ok(&["network", "create", "--subnet", "198.19.40.0/24", "n"]);
    for i in 0..40 {
        run(
            &agent,
            &format!("m{i}"),
            &["--network", "n", "--alias", "many"],
        );
    }
    run(&agent, "c", &["--network", "n"]);
    let udp = dig(&agent, "c", &["+noedns", "+ignore", "many"]);
    assert!(udp.contains(" tc"), "no TC flag: {udp}");
    assert!(answer_count(&udp) < 40, "{udp}");
    let tcp = dig(&agent, "c", &["+tcp", "many"]);
    assert_eq!(answer_count(&tcp), 40, "{tcp}");
    // dig retries a truncated answer over TCP by itself.
    assert_eq!(short(&agent, "c", "many").len(), 40);
}

#[test]
fn garbage_never_disturbs_the_resolver() {
    let agent = Agent::start(AgentOptions::default()).unwrap();
    agent.ok(&["network", "create", "--subnet", "198.19.50.0/24", "n"]);
    run(&agent, "alpha", &["--network", "n"]);
    run(&agent, "c", &["--network", "n"]);
    let netns = agent.json(&["sandbox", "inspect", "c"])[0]["netns"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = std::thread::spawn(move || send_garbage(&netns, 10_000))
        .join()
        .unwrap();
    assert_eq!(sent, 10_000);
    // ("alpha", not "a": dig reads a lone "a" as the query type.)
    let alpha = agent.ip_of("alpha", "n");
    assert_eq!(short(&agent, "c", "alpha"), one(&alpha));
    let tcp = dig(&agent, "c", &["+short", "+tcp", "alpha"]);
    assert_eq!(tcp.trim(), alpha);
    let stats = agent.json(&["diag", "stats"]);
    let counters = stats["names"]["resolvers"]
        .as_object()
        .unwrap()
        .values()
        .find(|c| c["malformed"].as_u64().unwrap_or(0) > 0)
        .cloned();
    assert!(counters.is_some(), "no malformed query counted: {stats}");
}

/// Sends `count` random or truncated queries to 127.0.0.11:53 from inside `netns`, over
/// UDP, and a tenth as many over TCP; returns how many went out.
fn send_garbage(netns: &str, count: usize) -> usize {
    use std::io::Write;
    use std::os::fd::AsFd;
    let ns = std::fs::File::open(netns).unwrap();
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // A valid query for "a", then cut and flipped versions of it and random bytes.
    let valid: Vec<u8> = vec![
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut sent = 0;
    for i in 0..count {
        let r = next();
        let datagram: Vec<u8> = match i % 3 {
            0 => valid[..(r as usize % valid.len())].to_vec(),
            1 => {
                let mut d = valid.clone();
                let at = r as usize % d.len();
                d[at] ^= (r >> 8) as u8 | 1;
                d
            }
            _ => (0..(r % 600) as usize).map(|_| next() as u8).collect(),
        };
        if socket.send_to(&datagram, "127.0.0.11:53").is_ok() {
            sent += 1;
        }
        if i % 10 == 0
            && let Ok(mut tcp) = std::net::TcpStream::connect("127.0.0.11:53")
        {
            let _ = tcp.write_all(&datagram);
        }
    }
    sent
}
