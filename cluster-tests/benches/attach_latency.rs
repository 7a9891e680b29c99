#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Attach latency of `weft run -d` on a bridge network, as a user sees it: the whole CLI
//! command (process start, create sandbox, create endpoint, join, inspect, start of a
//! detached `sleep` in the sandbox) timed from spawn to exit 0. One real `weft agent` (the
//! cluster-tests harness, in its own namespace), one bridge network on a /22.
//!
//! Baseline in the same run: after every measured attach (outside its timing) one
//! `weft version`, i.e. process start plus one API round trip. The ratio attach p50 /
//! version p50 is the machine-independent figure.
//!
//! Then a breakdown: the same API calls `weft run` makes, over one keep-alive connection
//! (hyper, like the api_latency bench), each timed, and the spawn of `sleep` inside the
//! sandbox's namespace through `weft_os::exec::spawn_in_netns_blocking` (what the CLI calls).
//!
//! Last, the kernel side of join: the bridge driver's netlink steps replayed one by one with
//! `weft_os::RealKernel` in namespaces of the bench's own (`wal-<pid>-*`, removed by a guard),
//! each timed; and, through the `ip` binary, a veth pair created with its peer directly in
//! the target namespace against one created in place and then moved there.
//!
//! Sandboxes are removed in batches with `weft sandbox rm -f`, outside every timing.
//!
//! Run with the agent built in release:
//! `cargo build --release -p weft && WEFT_BIN=$PWD/target/release/weft cargo bench -p cluster-tests --bench attach_latency`
#![forbid(unsafe_code)]

use anyhow::Context;
use cluster_tests::bench::{ApiConnection as Conn, ms, percentiles as stats};
use cluster_tests::{Agent, AgentOptions, weft_bin};
use hyper::Method;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use weft_os::{
    AddrOps, BridgeSpec, IfName, LinkOps, MacAddr, NetnsDir, NetnsOps, NsName, NsRef, RealKernel,
    Route, VethSpec,
};

const WARMUP_RUNS: usize = 10;
const MEASURED_RUNS: usize = 100;
/// Sandboxes are removed after this many runs (outside the timing).
const BATCH: usize = 10;
/// Room for 1,021 endpoints, more than the bench ever holds at once.
const SUBNET: &str = "198.19.4.0/22";
const NETWORK: &str = "net";
/// A CLI call or API call that takes longer than this aborts the bench instead of hanging it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Target from the acceptance list: attach p50 under 30 ms.
const TARGET_P50: Duration = Duration::from_millis(30);

/// Runs `weft --host ... ARGS` to completion (killed after `CALL_TIMEOUT`); returns the
/// time from spawn to exit. The command must succeed.
fn timed_cli(socket: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let mut cmd = Command::new(weft_bin());
    cmd.arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("spawn weft {args:?}"))?;
    let pid = child.id();
    // A watchdog instead of polling, so the measured wait is a plain blocking wait.
    let (done, timed_out) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if timed_out.recv_timeout(CALL_TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().context("wait for weft")?;
    let elapsed = start.elapsed();
    let _ = done.send(());
    let _ = watchdog.join();
    anyhow::ensure!(
        out.status.success(),
        "weft {args:?} failed ({}) after {elapsed:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(elapsed)
}

/// `weft run -d --name NAME --network net -- sleep 600`, timed.
fn attach(socket: &Path, name: &str) -> anyhow::Result<Duration> {
    timed_cli(
        socket,
        &[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            NETWORK,
            "--",
            "sleep",
            "600",
        ],
    )
}

/// Removes `names` (and their endpoints and processes), outside any timing.
fn remove(agent: &Agent, names: &mut Vec<String>) {
    if names.is_empty() {
        return;
    }
    let mut args = vec!["sandbox", "rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    agent.ok(&args);
    names.clear();
}

/// The steps of one attach as `weft run -d` makes them, as labelled in the report.
const STEPS: [&str; 6] = [
    "POST /v1/sandboxes (create sandbox)",
    "POST /v1/networks/net/endpoints (create endpoint)",
    "POST .../endpoints/ID/join (join)",
    "GET /v1/sandboxes/ID (inspect)",
    "spawn `sleep` in the sandbox's netns",
    "GET /v1/version (transport floor)",
];

/// One attach made step by step, as `weft run -d` does it, each step timed. Returns the
/// step times and the detached child (reaped after its sandbox is removed).
async fn attach_steps(conn: &mut Conn, name: &str) -> anyhow::Result<([Duration; 6], Child)> {
    let mut t = [Duration::ZERO; 6];
    let (d, sandbox) = conn
        .call(
            Method::POST,
            "/v1/sandboxes",
            &format!(r#"{{"name":"{name}"}}"#),
        )
        .await?;
    t[0] = d;
    let id = sandbox["id"].as_str().context("sandbox id")?.to_owned();
    let (d, endpoint) = conn
        .call(
            Method::POST,
            &format!("/v1/networks/{NETWORK}/endpoints"),
            &format!(r#"{{"name":"{name}","owner":"{id}"}}"#),
        )
        .await?;
    t[1] = d;
    let ep = endpoint["id"].as_str().context("endpoint id")?.to_owned();
    let (d, _) = conn
        .call(
            Method::POST,
            &format!("/v1/networks/{NETWORK}/endpoints/{ep}/join"),
            &format!(r#"{{"sandbox":"{id}"}}"#),
        )
        .await?;
    t[2] = d;
    let (d, info) = conn
        .call(Method::GET, &format!("/v1/sandboxes/{id}"), "")
        .await?;
    t[3] = d;
    let netns = PathBuf::from(info["netns"].as_str().context("sandbox netns")?);
    let mut cmd = Command::new("sleep");
    cmd.arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let child = weft_os::exec::spawn_in_netns_blocking(Some(netns), cmd).context("spawn sleep")?;
    t[4] = start.elapsed();
    let (d, _) = conn.call(Method::GET, "/v1/version", "").await?;
    t[5] = d;
    Ok((t, child))
}

/// The CLI phase: warm-up, then measured `weft run -d`, each followed by a `weft version`.
fn cli_phase(agent: &Agent) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let socket = agent.socket();
    let mut pending = Vec::new();
    let (mut attaches, mut versions) = (Vec::new(), Vec::new());
    for n in 0..WARMUP_RUNS + MEASURED_RUNS {
        let name = format!("b{n}");
        let t = attach(&socket, &name).with_context(|| format!("run {n}"))?;
        pending.push(name);
        let v = timed_cli(&socket, &["version"])?;
        if n >= WARMUP_RUNS {
            attaches.push(t);
            versions.push(v);
        }
        if pending.len() >= BATCH {
            remove(agent, &mut pending);
        }
    }
    remove(agent, &mut pending);
    Ok((attaches, versions))
}

/// The breakdown phase: the same steps over one keep-alive connection.
fn steps_phase(agent: &Agent) -> anyhow::Result<[Vec<Duration>; 6]> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async {
        let mut conn = Conn::open(&agent.socket()).await?;
        let mut steps: [Vec<Duration>; 6] = Default::default();
        let mut pending = Vec::new();
        let mut children = Vec::new();
        for n in 0..WARMUP_RUNS + MEASURED_RUNS {
            let name = format!("p{n}");
            let (t, child) = attach_steps(&mut conn, &name)
                .await
                .with_context(|| format!("step run {n}"))?;
            pending.push(name);
            children.push(child);
            if n >= WARMUP_RUNS {
                for (samples, d) in steps.iter_mut().zip(t) {
                    samples.push(d);
                }
            }
            if pending.len() >= BATCH {
                remove(agent, &mut pending);
                // `rm -f` killed them; reap so no zombie is left.
                for mut c in children.drain(..) {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        remove(agent, &mut pending);
        for mut c in children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(steps)
    })
}

fn report(attaches: &[Duration], versions: &[Duration], steps: &[Vec<Duration>; 6]) {
    let (a50, a99, amax) = stats(attaches);
    let (v50, v99, vmax) = stats(versions);
    println!("| command (CLI process, timed spawn to exit) | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    println!(
        "| **`weft run -d ... -- sleep 600`** | **{}** | **{}** | **{}** |",
        ms(a50),
        ms(a99),
        ms(amax)
    );
    println!(
        "| `weft version` (baseline) | {} | {} | {} |",
        ms(v50),
        ms(v99),
        ms(vmax)
    );
    println!();
    println!(
        "attach p50 / version p50 = {:.2}",
        a50.as_secs_f64() / v50.as_secs_f64()
    );
    let verdict = if a50 < TARGET_P50 { "met" } else { "NOT met" };
    println!("target attach p50 < {}: {verdict}", ms(TARGET_P50));
    println!();
    println!("Breakdown (same steps over one keep-alive connection, {MEASURED_RUNS} runs):");
    println!();
    println!("| step | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    let mut sum = Duration::ZERO;
    for (i, (name, samples)) in STEPS.iter().zip(steps).enumerate() {
        let (p50, p99, max) = stats(samples);
        if i < 5 {
            sum += p50;
        }
        println!("| {name} | {} | {} | {} |", ms(p50), ms(p99), ms(max));
    }
    println!(
        "| sum of the p50s of the five attach steps | {} | | |",
        ms(sum)
    );
}

/// The bridge driver's join steps (weft-drivers bridge/setup.rs `attach_steps` and
/// `configure_inside`), in order, then the `ip` comparison, as labelled in the report.
const KERNEL_STEPS: [&str; 13] = [
    "create sandbox netns (lo up)",
    "create veth pair (host side)",
    "set master (bridge)",
    "set host end up",
    "move peer into the sandbox netns, renamed eth0",
    "set MAC (eth0)",
    "set MTU (eth0)",
    "add address (eth0)",
    "set eth0 up",
    "replace default route",
    "`ip link add A type veth peer name B`",
    "`ip link set B netns S`",
    "`ip link add C type veth peer name eth1 netns S`",
];

/// Namespaces `wal-<pid>-*` of this bench; all deleted on drop, even on panic.
struct Namespaces {
    prefix: String,
}

impl Namespaces {
    fn new() -> Namespaces {
        Namespaces {
            prefix: format!("wal-{}-", std::process::id()),
        }
    }

    fn name(&self, suffix: &str) -> NsName {
        NsName::new(format!("{}{suffix}", self.prefix)).expect("namespace name")
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let dir = NetnsDir::new("/run/netns");
        for ns in dir.list(&self.prefix).unwrap_or_default() {
            let _ = weft_os::exec::kill_all_in(&dir.path(&ns));
            let _ = dir.delete(&ns);
        }
    }
}

/// Runs `ip ARGS` (bounded by `timeout`), timed; it must succeed.
fn timed_ip(args: &[&str]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = Command::new("timeout")
        .arg("10")
        .arg("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run ip")?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(elapsed)
}

/// Times `fut`, bounded by `CALL_TIMEOUT`.
async fn timed<F: std::future::Future<Output = weft_os::Result<()>>>(
    what: &str,
    fut: F,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .with_context(|| format!("{what}: no answer within {CALL_TIMEOUT:?}"))?
        .with_context(|| what.to_owned())?;
    Ok(start.elapsed())
}

/// One replay of join's kernel steps into a fresh sandbox namespace `s<n>`, then the `ip`
/// comparison into the same namespace.
async fn kernel_steps(
    k: &RealKernel,
    nss: &Namespaces,
    host: &NsRef,
    bridge: &IfName,
    n: usize,
) -> anyhow::Result<[Duration; 13]> {
    let mut t = [Duration::ZERO; 13];
    let sb_name = nss.name(&format!("s{n}"));
    let sb = NsRef::named(&sb_name);
    let (hv, pv) = (
        IfName::new(format!("wv{n}"))?,
        IfName::new(format!("wp{n}"))?,
    );
    let eth0 = IfName::new("eth0")?;
    let low = u8::try_from(n % 250 + 2)?;
    let mac = MacAddr([0x02, 0x42, 198, 19, 8, low]);
    t[0] = timed("create netns", k.create_netns(&sb_name)).await?;
    let spec = VethSpec {
        mtu: Some(1500),
        peer_mac: Some(mac),
        ..VethSpec::new(hv.clone(), pv.clone())
    };
    t[1] = timed("create veth", k.create_veth(host, &spec)).await?;
    t[2] = timed("set master", k.set_master(host, &hv, Some(bridge))).await?;
    t[3] = timed("host end up", k.set_link_up(host, &hv)).await?;
    t[4] = timed("move", k.move_link(host, &pv, &sb, Some(&eth0))).await?;
    t[5] = timed("set mac", k.set_mac(&sb, &eth0, mac)).await?;
    t[6] = timed("set mtu", k.set_mtu(&sb, &eth0, 1500)).await?;
    let addr = format!("198.19.8.{low}/22").parse()?;
    t[7] = timed("add address", k.add_address(&sb, &eth0, addr)).await?;
    t[8] = timed("eth0 up", k.set_link_up(&sb, &eth0)).await?;
    let route = Route {
        dev: Some(eth0.clone()),
        ..Route::default_via("198.19.8.1".parse()?)
    };
    t[9] = timed("default route", k.replace_route(&sb, &route)).await?;
    let (h, s) = (nss.name("h").to_string(), sb_name.to_string());
    let (a, b, c) = (format!("wa{n}"), format!("wb{n}"), format!("wc{n}"));
    t[10] = timed_ip(&[
        "-n", &h, "link", "add", &a, "type", "veth", "peer", "name", &b,
    ])?;
    t[11] = timed_ip(&["-n", &h, "link", "set", &b, "netns", &s])?;
    t[12] = timed_ip(&[
        "-n", &h, "link", "add", &c, "type", "veth", "peer", "name", "eth1", "netns", &s,
    ])?;
    Ok(t)
}

/// The kernel phase: warm-up, then measured replays; sandbox namespaces deleted in batches.
fn kernel_phase() -> anyhow::Result<[Vec<Duration>; 13]> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let nss = Namespaces::new();
    runtime.block_on(async {
        // The bench runs in the real host's namespace: only named namespaces are touched.
        let k = RealKernel::new()?;
        let host_name = nss.name("h");
        k.create_netns(&host_name).await?;
        let host = NsRef::named(&host_name);
        let bridge = IfName::new("wbr0")?;
        k.create_bridge(&host, &BridgeSpec::new(bridge.clone()))
            .await?;
        k.set_link_up(&host, &bridge).await?;
        let mut steps: [Vec<Duration>; 13] = Default::default();
        let mut pending = Vec::new();
        for n in 0..WARMUP_RUNS + MEASURED_RUNS {
            let t = kernel_steps(&k, &nss, &host, &bridge, n)
                .await
                .with_context(|| format!("kernel run {n}"))?;
            pending.push(nss.name(&format!("s{n}")));
            if n >= WARMUP_RUNS {
                for (samples, d) in steps.iter_mut().zip(t) {
                    samples.push(d);
                }
            }
            if pending.len() >= BATCH {
                // Deleting a namespace takes its veths (and their host ends) along.
                for ns in pending.drain(..) {
                    k.delete_netns(&ns).await?;
                }
            }
        }
        for ns in pending.drain(..) {
            k.delete_netns(&ns).await?;
        }
        Ok(steps)
    })
}

fn report_kernel(steps: &[Vec<Duration>; 13]) {
    println!();
    println!(
        "Kernel side of join, replayed with weft-os RealKernel in the bench's own namespaces ({MEASURED_RUNS} runs):"
    );
    println!();
    println!("| step | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    let mut join = Duration::ZERO;
    for (i, (name, samples)) in KERNEL_STEPS.iter().zip(steps).enumerate() {
        let (p50, p99, max) = stats(samples);
        if (1..10).contains(&i) {
            join += p50;
        }
        println!("| {name} | {} | {} | {} |", ms(p50), ms(p99), ms(max));
        if i == 9 {
            println!(
                "| sum of the p50s of join's nine netlink steps | {} | | |",
                ms(join)
            );
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "agent {}; {WARMUP_RUNS} warm-up + {MEASURED_RUNS} measured runs per phase; bridge network {SUBNET}; {cpus} CPUs\n",
        weft_bin().display()
    );
    let agent = Agent::start(AgentOptions::default())?;
    agent.ok(&["network", "create", "--subnet", SUBNET, NETWORK]);
    let (attaches, versions) = cli_phase(&agent).inspect_err(|_| {
        eprintln!("agent log:\n{}", agent.log());
    })?;
    let steps = steps_phase(&agent).inspect_err(|_| {
        eprintln!("agent log:\n{}", agent.log());
    })?;
    agent.ok(&["network", "rm", NETWORK]);
    drop(agent);
    let kernel = kernel_phase()?;
    report(&attaches, &versions, &steps);
    report_kernel(&kernel);
    Ok(())
}
