#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TCP throughput between two sandboxes on one weft bridge network, divided by the
//! throughput over a bare veth pair between two namespaces, both measured with iperf3 in
//! the same run, alternating (veth, bridge, bare bridge) several times. Also the ping RTT of each path.
//!
//! The bare pair: two namespaces of the bench's own (`wbt-<pid>-a`, `wbt-<pid>-b`, removed
//! by a guard even on panic), a veth pair between them with 198.19.250.1/30 and .2/30. The
//! weft path: one real `weft agent` (the cluster-tests harness, in its own namespace), a
//! bridge network, two sandboxes made with `weft run -d`, iperf3 run in them with `weft exec`.
//!
//! A third path separates the topology from weft: a plain Linux bridge in a namespace of
//! the bench's own, with the same veth-bridge-veth shape and no nftables ruleset.
//!
//! iperf3 client and server share the machine's CPUs (2 vCPUs on the reference VM).
//!
//! Run with the agent built in release:
//! `cargo build --release -p weft && WEFT_BIN=$PWD/target/release/weft cargo bench -p cluster-tests --bench bridge_throughput`
#![forbid(unsafe_code)]

use anyhow::Context;
use cluster_tests::bench::{Iperf, iperf_client, median, parse_ping_avg};
use cluster_tests::{Agent, AgentOptions, weft_bin};
use std::process::{Command, Stdio};
use weft_os::NetnsDir;

/// Alternating repetitions of (veth, weft bridge, bare bridge).
const REPETITIONS: usize = 5;
/// Seconds of each iperf3 test.
const IPERF_SECONDS: &str = "5";
/// Bound on any one command of the bench (`timeout` kills it), in seconds.
const COMMAND_TIMEOUT: &str = "30";
/// Target from the acceptance list: bridge / veth throughput at least 0.95.
const TARGET_RATIO: f64 = 0.95;
const SUBNET: &str = "198.19.251.0/24";
const NETWORK: &str = "tp";
const VETH_A: &str = "198.19.250.1";
const VETH_B: &str = "198.19.250.2";
const BRIDGE_X: &str = "198.19.250.9";
const BRIDGE_Y: &str = "198.19.250.10";

/// The bare paths, in namespaces of the bench's own (`wbt-<pid>-*`); deleted on drop.
///
/// - veth: `a` (198.19.250.1/30) and `b` (198.19.250.2/30), one veth pair between them;
/// - bare bridge: `x` (198.19.250.9/29) and `y` (198.19.250.10/29), each with a veth into
///   namespace `br` holding a plain Linux bridge, with no nftables ruleset: the same
///   topology as a weft bridge network, without weft.
struct Bare {
    prefix: String,
}

impl Bare {
    fn create() -> anyhow::Result<Bare> {
        // The guard exists before the first namespace does, so a failure below cleans up.
        let bare = Bare {
            prefix: format!("wbt-{}-", std::process::id()),
        };
        let [a, b, x, y, br] = ["a", "b", "x", "y", "br"].map(|n| bare.ns(n));
        for ns in [&a, &b, &x, &y, &br] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n", &a, "link", "add", "wbta", "type", "veth", "peer", "name", "wbtb", "netns", &b,
        ])?;
        ip(&["-n", &br, "link", "add", "wbtbr", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "wbtbr", "up"])?;
        for (ns, dev) in [(&x, "wbtx"), (&y, "wbty")] {
            let port = format!("{dev}p");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", dev, "netns", ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "wbtbr"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
        }
        for (ns, dev, addr) in [
            (&a, "wbta", format!("{VETH_A}/30")),
            (&b, "wbtb", format!("{VETH_B}/30")),
            (&x, "wbtx", format!("{BRIDGE_X}/29")),
            (&y, "wbty", format!("{BRIDGE_Y}/29")),
        ] {
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(bare)
    }

    /// The full name of namespace `n`.
    fn ns(&self, n: &str) -> String {
        format!("{}{n}", self.prefix)
    }

    /// `ip netns exec NS ARGS...` under `timeout`.
    fn exec(&self, ns: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let ns = self.ns(ns);
        let mut full = vec!["timeout", COMMAND_TIMEOUT, "ip", "netns", "exec", &ns];
        full.extend(args);
        run(&full)
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let dir = NetnsDir::new("/run/netns");
        for ns in dir.list(&self.prefix).unwrap_or_default() {
            let _ = weft_os::exec::kill_all_in(&dir.path(&ns));
            let _ = dir.delete(&ns);
        }
    }
}

/// Runs a command with stdin closed, capturing its output (success not required).
fn run(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let (program, rest) = args.split_first().context("empty command")?;
    Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {args:?}"))
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["timeout", COMMAND_TIMEOUT, "ip"];
    full.extend(args);
    let out = run(&full)?;
    anyhow::ensure!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

const PING: [&str; 8] = ["ping", "-n", "-q", "-c", "20", "-i", "0.01", "-W1"];

/// iperf3 from namespace `client` to the server `ip` in namespace `server` (both bare).
fn bare_iperf(bare: &Bare, client: &str, server: &str, ip: &str) -> anyhow::Result<Iperf> {
    let started = bare.exec(server, &["iperf3", "-s", "-1", "-D"])?;
    anyhow::ensure!(started.status.success(), "iperf3 server in {server}");
    iperf_client(|| {
        let out = bare.exec(client, &["iperf3", "-c", ip, "-t", IPERF_SECONDS, "-J"])?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    })
}

/// Ping from namespace `client` to `ip` (bare), after warming the neighbour entries.
fn bare_ping(bare: &Bare, client: &str, ip: &str) -> anyhow::Result<f64> {
    bare.exec(client, &["ping", "-n", "-q", "-c", "2", "-i", "0.01", ip])?;
    let mut args = PING.to_vec();
    args.push(ip);
    let out = bare.exec(client, &args)?;
    anyhow::ensure!(out.status.success(), "ping from {client} to {ip} failed");
    parse_ping_avg(&String::from_utf8_lossy(&out.stdout))
}

fn bridge_iperf(agent: &Agent, server_ip: &str) -> anyhow::Result<Iperf> {
    agent.ok(&["exec", "s", "--", "iperf3", "-s", "-1", "-D"]);
    iperf_client(|| {
        let out = agent.cli(&[
            "exec",
            "c",
            "--",
            "timeout",
            COMMAND_TIMEOUT,
            "iperf3",
            "-c",
            server_ip,
            "-t",
            IPERF_SECONDS,
            "-J",
        ]);
        Ok((out.success(), out.stdout))
    })
}

fn bridge_ping(agent: &Agent, server_ip: &str) -> anyhow::Result<f64> {
    agent.cli(&[
        "exec", "c", "--", "ping", "-n", "-q", "-c", "2", "-i", "0.01", server_ip,
    ]);
    let mut args = vec!["exec", "c", "--", "timeout", COMMAND_TIMEOUT];
    args.extend(PING);
    args.push(server_ip);
    let out = agent.cli(&args);
    anyhow::ensure!(
        out.success(),
        "ping between sandboxes failed: {}",
        out.stderr
    );
    parse_ping_avg(&out.stdout)
}

fn main() -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let iperf_version = run(&["iperf3", "--version"])?;
    let iperf_version = String::from_utf8_lossy(&iperf_version.stdout);
    println!(
        "agent {}; {REPETITIONS} x (veth, weft bridge, bare bridge), iperf3 -t {IPERF_SECONDS} ({}); {cpus} CPUs shared by client and server\n",
        weft_bin().display(),
        iperf_version.lines().next().unwrap_or("?").trim()
    );
    let bare = Bare::create()?;
    let agent = Agent::start(AgentOptions::default())?;
    agent.ok(&["network", "create", "--subnet", SUBNET, NETWORK]);
    for name in ["s", "c"] {
        agent.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            NETWORK,
            "--",
            "sleep",
            "600",
        ]);
    }
    let server_ip = agent.ip_of("s", NETWORK);

    // Per path: (label, iperf3 results, ping rtt averages).
    let mut paths: [(&str, Vec<Iperf>, Vec<f64>); 3] = [
        ("bare veth", Vec::new(), Vec::new()),
        ("weft bridge", Vec::new(), Vec::new()),
        ("bare bridge (no weft)", Vec::new(), Vec::new()),
    ];
    for rep in 0..REPETITIONS {
        let ctx = |path: &str| format!("{path}, repetition {rep}");
        paths[0]
            .1
            .push(bare_iperf(&bare, "a", "b", VETH_B).with_context(|| ctx("veth"))?);
        paths[1]
            .1
            .push(bridge_iperf(&agent, &server_ip).with_context(|| ctx("weft bridge"))?);
        paths[2]
            .1
            .push(bare_iperf(&bare, "x", "y", BRIDGE_Y).with_context(|| ctx("bare bridge"))?);
        paths[0].2.push(bare_ping(&bare, "a", VETH_B)?);
        paths[1].2.push(bridge_ping(&agent, &server_ip)?);
        paths[2].2.push(bare_ping(&bare, "x", BRIDGE_Y)?);
    }
    drop(agent);
    drop(bare);

    println!("| run | path | Gbit/s | retransmits | CPU client % | CPU server % | ping rtt avg |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for rep in 0..REPETITIONS {
        for (path, results, rtts) in &paths {
            let r = results[rep];
            println!(
                "| {} | {path} | {:.2} | {} | {:.0} | {:.0} | {:.3} ms |",
                rep + 1,
                r.gbps,
                r.retransmits,
                r.cpu_client,
                r.cpu_server,
                rtts[rep]
            );
        }
    }
    let medians: Vec<(f64, f64)> = paths
        .iter()
        .map(|(_, results, rtts)| {
            let gbps: Vec<f64> = results.iter().map(|r| r.gbps).collect();
            (median(&gbps), median(rtts))
        })
        .collect();
    println!();
    println!("| path | median Gbit/s | / bare veth | median rtt avg | / bare veth |");
    println!("|---|---:|---:|---:|---:|");
    for ((path, _, _), (g, r)) in paths.iter().zip(&medians) {
        println!(
            "| {path} | {g:.2} | {:.3} | {r:.3} ms | {:.2} |",
            g / medians[0].0,
            r / medians[0].1
        );
    }
    let ratio = medians[1].0 / medians[0].0;
    println!();
    println!("throughput ratio weft bridge / bare veth (of medians) = {ratio:.3}");
    println!(
        "throughput ratio weft bridge / bare bridge (of medians) = {:.3}",
        medians[1].0 / medians[2].0
    );
    println!(
        "rtt ratio weft bridge / bare veth (of medians) = {:.2}",
        medians[1].1 / medians[0].1
    );
    let verdict = if ratio >= TARGET_RATIO {
        "met"
    } else {
        "NOT met"
    };
    println!("target throughput ratio >= {TARGET_RATIO}: {verdict}");
    Ok(())
}
