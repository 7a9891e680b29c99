#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The overlay across hosts, on the multi-host harness (hosts are namespaces on one
//! machine, joined by veths to one underlay bridge):
//!
//! 1. attach-to-reachable: from `weft run -d` on host A to the first echo reply a sandbox on
//!    host B gets from the new sandbox, p50/p99 over 50 runs, at 3 and at 10 hosts. The
//!    probe starts pinging (every 5 ms, 50 ms reply wait) before the run starts, so the time
//!    includes the agent's join, the gossip of the peer entry and its programming on B.
//! 2. TCP throughput sandbox to sandbox over the overlay divided by host namespace to host
//!    namespace over the bare underlay, iperf3, alternating, same run; and the ping RTT ratio.
//!    A third path separates the cost of VXLAN itself from weft's layout: a hand-made vxlan
//!    device in each host namespace (VNI 99, port 4790, static FDB and neighbour entries),
//!    without the sandbox veth and the overlay namespace's bridge.
//!
//! `cargo build --release -p weft && WEFT_BIN=$PWD/target/release/weft cargo bench -p cluster-tests --bench overlay`
//!
//! Agents run with the default gossip interval (200 ms) unless `WEFT_BENCH_GOSSIP_INTERVAL`
//! says otherwise; `WEFT_BENCH_ATTACH_ONLY=1` measures attach-to-reachable only.
#![forbid(unsafe_code)]

use cluster_tests::bench::{iperf_client, median, ms, parse_ping_avg, percentiles};
use cluster_tests::{Agent, Cluster, ClusterOptions, wait_until};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const RUNS: usize = 50;
const REPETITIONS: usize = 5;
const IPERF_SECONDS: &str = "5";
/// Targets from the acceptance list.
/// Issue 13's attach targets: first reply p50 at 3 hosts, p99 at 3 and at 10 hosts.
const TARGET_ATTACH_P50: Duration = Duration::from_millis(50);
const TARGET_ATTACH_P99_3: Duration = Duration::from_millis(100);
const TARGET_ATTACH_P99_10: Duration = Duration::from_millis(150);
const TARGET_RATIO: f64 = 0.9;

fn cluster(n: usize) -> Cluster {
    let mut options = ClusterOptions::default();
    if let Ok(interval) = std::env::var("WEFT_BENCH_GOSSIP_INTERVAL") {
        options = options.args(["--gossip-interval".to_owned(), interval]);
    }
    let cluster = Cluster::start(n, options).unwrap();
    cluster.wait_all_alive(Duration::from_secs(60)).unwrap();
    cluster
}

fn overlay(cluster: &Cluster, subnet: &str) {
    cluster.host(1).ok(&[
        "network", "create", "-d", "overlay", "--subnet", subnet, "ov",
    ]);
    for (i, agent) in cluster.hosts() {
        wait_until(&format!("host {i} adopts"), Duration::from_secs(20), || {
            agent
                .cli(&["network", "inspect", "ov"])
                .success()
                .then_some(())
        })
        .unwrap();
    }
}

fn run(agent: &Agent, name: &str, ip: Option<&str>) {
    let mut args = vec!["run", "-d", "--name", name, "--network", "ov"];
    if let Some(ip) = ip {
        args.extend(["--ip", ip]);
    }
    args.extend(["--", "sleep", "600"]);
    agent.ok(&args);
}

/// Attach-to-reachable samples: sandboxes made on host 2 (A), probed from host 3 (B); for
/// each, the time from the run's start to the first reply and to the run's return.
fn attach_to_reachable(n: usize) -> Vec<(Duration, Duration)> {
    let cluster = cluster(n);
    overlay(&cluster, "198.19.210.0/24");
    let (a, b) = (cluster.host(2), cluster.host(3));
    run(b, "probe", None);
    // ARP retried every 10 ms (weft sets 20) on the probing side, so that the probe's own
    // resolution does not quantise the result; the kernel does not go below 10 ms.
    b.ok(&[
        "exec",
        "probe",
        "--",
        "bash",
        "-c",
        "for f in /proc/sys/net/ipv4/neigh/*/retrans_time_ms; do echo 10 > $f; done",
    ]);
    let mut samples = Vec::with_capacity(RUNS);
    for r in 0..RUNS {
        let ip = format!("198.19.210.{}", 100 + r);
        let name = format!("x{r}");
        // An echo request about every 12 ms (a 10 ms wait for each, and the next ping's
        // start) until the first reply, whose time is stamped inside the sandbox (the wall
        // clock, as `start` below: how long `weft exec` takes to report the end is not the
        // path's). A loop of `ping -c1 -W0.05` probed every 55 ms in effect, with its phase
        // fixed by the 100 ms head start below; `ping -i 0.01` backs off without replies.
        let script = format!("until ping -n -q -c1 -W0.01 {ip} >/dev/null; do :; done; date +%s%N");
        let sample = std::thread::scope(|s| {
            let probe = s.spawn(|| {
                b.cli(&[
                    "exec", "probe", "--", "timeout", "10", "bash", "-c", &script,
                ])
            });
            // The probe is pinging (and failing) before the run starts.
            std::thread::sleep(Duration::from_millis(100));
            let start = SystemTime::now();
            run(a, &name, Some(&ip));
            let returned = start.elapsed().unwrap_or_default();
            let out = probe.join().unwrap();
            assert!(
                out.success(),
                "run {r}: {ip} never answered: {}",
                out.stderr
            );
            let replied: u64 = out.stdout.trim().parse().expect("the probe's stamp");
            let replied = UNIX_EPOCH + Duration::from_nanos(replied);
            (replied.duration_since(start).unwrap_or_default(), returned)
        });
        samples.push(sample);
        a.ok(&["sandbox", "rm", "-f", &name]);
    }
    samples
}

fn overlay_iperf(agent: &Agent, server_ip: &str) -> f64 {
    iperf_client(|| {
        let out = agent.cli(&[
            "exec",
            "c",
            "--",
            "timeout",
            "30",
            "iperf3",
            "-c",
            server_ip,
            "-t",
            IPERF_SECONDS,
            "-J",
        ]);
        Ok((out.success(), out.stdout))
    })
    .unwrap()
    .gbps
}

const BARE_VXLAN_1: &str = "198.19.212.1";
const BARE_VXLAN_2: &str = "198.19.212.2";

/// A vxlan device `bvx` in host 1 and host 2 (no bridge, no veth), each with the other's
/// MAC and address as static entries, as weft programs its overlay.
fn bare_vxlan(cluster: &Cluster) -> anyhow::Result<()> {
    let topo = cluster.topology();
    let mac = |i: usize| format!("02:42:c6:13:d4:0{i}");
    for (i, ip, other) in [(1, BARE_VXLAN_1, 2), (2, BARE_VXLAN_2, 1)] {
        let local = topo.addr(i);
        topo.host_ip(
            i,
            &[
                "link",
                "add",
                "bvx",
                "address",
                &mac(i),
                "type",
                "vxlan",
                "id",
                "99",
                "dstport",
                "4790",
                "local",
                &local,
                "nolearning",
            ],
        )?;
        topo.host_ip(i, &["link", "set", "bvx", "mtu", "1450", "up"])?;
        topo.host_ip(i, &["addr", "add", &format!("{ip}/24"), "dev", "bvx"])?;
        let peer_ip = if i == 1 { BARE_VXLAN_2 } else { BARE_VXLAN_1 };
        topo.host_ip(
            i,
            &[
                "neigh",
                "replace",
                peer_ip,
                "lladdr",
                &mac(other),
                "dev",
                "bvx",
                "nud",
                "permanent",
            ],
        )?;
        let status = std::process::Command::new("bridge")
            .args([
                "-n",
                &topo.host_netns(i),
                "fdb",
                "append",
                &mac(other),
                "dev",
                "bvx",
                "dst",
                &topo.addr(other),
                "self",
                "permanent",
            ])
            .status()?;
        anyhow::ensure!(status.success(), "bridge fdb on host {i}");
    }
    Ok(())
}

/// iperf3 from host 1's namespace to a server in host 2's namespace at `ip`.
fn host_iperf(cluster: &Cluster, ip: &str) -> anyhow::Result<f64> {
    let topo = cluster.topology();
    let started = topo.exec(2, "iperf3", &["-s", "-1", "-D"])?;
    anyhow::ensure!(started.status.success(), "iperf3 server on host 2");
    Ok(iperf_client(|| {
        let out = topo.exec(
            1,
            "timeout",
            &["30", "iperf3", "-c", ip, "-t", IPERF_SECONDS, "-J"],
        )?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    })?
    .gbps)
}

fn main() -> anyhow::Result<()> {
    let mut report = Vec::new();
    for n in [3, 10] {
        let samples = attach_to_reachable(n);
        let replies: Vec<Duration> = samples.iter().map(|s| s.0).collect();
        let returns: Vec<Duration> = samples.iter().map(|s| s.1).collect();
        report.push(Attach {
            hosts: n,
            reply: percentiles(&replies),
            returned: percentiles(&returns),
        });
    }
    if std::env::var("WEFT_BENCH_ATTACH_ONLY").is_ok_and(|v| v == "1") {
        print_attach(&report);
        return Ok(());
    }

    // Throughput and RTT: host 1 to host 2, overlay sandboxes vs the host namespaces.
    let cluster = cluster(2);
    overlay(&cluster, "198.19.211.0/24");
    let (h1, h2) = (cluster.host(1), cluster.host(2));
    run(h1, "c", None);
    run(h2, "s", None);
    let server_ip = h2.ip_of("s", "ov");
    let topo = cluster.topology();
    bare_vxlan(&cluster)?;
    let mut overlay_gbps = Vec::new();
    let mut underlay_gbps = Vec::new();
    let mut vxlan_gbps = Vec::new();
    for _ in 0..REPETITIONS {
        vxlan_gbps.push(host_iperf(&cluster, BARE_VXLAN_2)?);
        underlay_gbps.push(host_iperf(&cluster, &topo.addr(2))?);
        h2.ok(&["exec", "s", "--", "iperf3", "-s", "-1", "-D"]);
        overlay_gbps.push(overlay_iperf(h1, &server_ip));
    }
    let ping = ["-n", "-q", "-c", "50", "-i", "0.01", "-W1"];
    let mut underlay_rtt = Vec::new();
    let mut overlay_rtt = Vec::new();
    for _ in 0..REPETITIONS {
        let mut args = ping.to_vec();
        let addr = topo.addr(2);
        args.push(&addr);
        let out = topo.exec(1, "ping", &args)?;
        underlay_rtt.push(parse_ping_avg(&String::from_utf8_lossy(&out.stdout))?);
        let mut args = vec!["exec", "c", "--", "ping"];
        args.extend(ping);
        args.push(&server_ip);
        let out = h1.cli(&args);
        anyhow::ensure!(out.success(), "overlay ping: {}", out.stderr);
        overlay_rtt.push(parse_ping_avg(&out.stdout)?);
    }

    print_attach(&report);
    let (og, ug, vg) = (
        median(&overlay_gbps),
        median(&underlay_gbps),
        median(&vxlan_gbps),
    );
    let (or, ur) = (median(&overlay_rtt), median(&underlay_rtt));
    println!(
        "\n## throughput and RTT, host 1 to host 2 ({REPETITIONS} alternating repetitions, medians)\n"
    );
    println!("| path | Gbit/s | rtt avg |");
    println!("|---|---:|---:|");
    println!("| bare underlay (host namespaces) | {ug:.2} | {ur:.3} ms |");
    println!("| hand-made vxlan between the host namespaces | {vg:.2} | - |");
    println!("| weft overlay (sandboxes) | {og:.2} | {or:.3} ms |");
    let ratio = og / ug;
    let verdict = if ratio >= TARGET_RATIO {
        "met"
    } else {
        "missed"
    };
    println!(
        "\nthroughput ratio overlay / underlay = {ratio:.3} (target >= {TARGET_RATIO}: {verdict})"
    );
    println!("rtt ratio overlay / underlay = {:.2}", or / ur);
    println!(
        "hand-made vxlan / underlay = {:.3}; weft overlay / hand-made vxlan = {:.3}",
        vg / ug,
        og / vg
    );
    println!("samples: overlay {overlay_gbps:.2?} underlay {underlay_gbps:.2?}");
    Ok(())
}

/// The attach-to-reachable table: hosts, p50, p99, max, verdict.
fn print_attach(report: &[Attach]) {
    println!("## attach-to-reachable ({RUNS} runs per cluster size)\n");
    println!(
        "| hosts | run -d returned, p50 / p99 | first reply, p50 / p99 / max | targets (p50 ≤ {}; p99 ≤ {} at 3, ≤ {} at 10) |",
        ms(TARGET_ATTACH_P50),
        ms(TARGET_ATTACH_P99_3),
        ms(TARGET_ATTACH_P99_10)
    );
    println!("|---:|---:|---:|---|");
    for a in report {
        let p99_target = if a.hosts <= 3 {
            TARGET_ATTACH_P99_3
        } else {
            TARGET_ATTACH_P99_10
        };
        let p50_met = a.hosts > 3 || a.reply.0 <= TARGET_ATTACH_P50;
        let verdict = match (p50_met, a.reply.1 <= p99_target) {
            (true, true) => "met",
            (false, true) => "p50 missed",
            (true, false) => "p99 missed",
            (false, false) => "missed",
        };
        println!(
            "| {} | {} / {} | {} / {} / {} | {verdict} |",
            a.hosts,
            ms(a.returned.0),
            ms(a.returned.1),
            ms(a.reply.0),
            ms(a.reply.1),
            ms(a.reply.2)
        );
    }
}

/// One cluster size's attach figures: (p50, p99, max) of the first reply and of the run's
/// return.
struct Attach {
    hosts: usize,
    reply: (Duration, Duration, Duration),
    returned: (Duration, Duration, Duration),
}
