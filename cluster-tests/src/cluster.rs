//! Multi-host topologies: an underlay bridge in its own namespace, N host namespaces wired to
//! it by veths, and, for a [`Cluster`], one `weft agent` per host.
//!
//! For a cluster with prefix `c<pid>x<n>-` (unique per cluster on the machine):
//!
//! | namespace       | holds                                                              |
//! |-----------------|--------------------------------------------------------------------|
//! | `<prefix>ul`    | bridge `ul0` (up); per host a veth end `h<i>`, enslaved to `ul0`   |
//! | `<prefix>h<i>`  | `eth0` = `198.18.0.<i>/24` (the peer of `h<i>`), `lo`; the agent    |
//! | `<prefix>h<i>-*`| namespaces host i's agent creates (its `--netns-prefix`)            |
//!
//! Faults:
//! - [`Topology::cut`] / [`Topology::heal`] set the underlay-side veth `h<i>` down / up. A link
//!   fault is chosen over an nftables drop because it is outside everything the host (and so
//!   the agent, which manages nftables in its host namespace) can see or change, it models a
//!   pulled cable (packets vanish, no `EPERM` from a local drop rule), and it stays
//!   independent of [`Topology::drop_percent`], which does use nftables: the two can be
//!   combined and cleared separately.
//! - [`Topology::drop_percent`] loads a `netdev` table in the host's namespace with an ingress
//!   and an egress chain on `eth0`, each dropping `numgen random mod 100 < pct`. `netdev` on
//!   `eth0` (rather than `inet` output/input) loses packets silently as a lossy wire does:
//!   a drop in an IP output hook fails the sender's `sendto` with `EPERM`, one at device
//!   egress does not; ARP is lost too, and loopback traffic (the agent's own diagnostics)
//!   is untouched.
//!
//! Everything is torn down on drop, also during a panic: agents are killed, then every
//! process left in a namespace with the prefix, then the namespaces. Namespaces of test
//! processes that died without unwinding (SIGKILL) are swept by the next
//! [`Topology::create`] on the machine.

use crate::{Agent, AgentOptions, wait_until};
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// The UDP port every agent's gossip listens on (on its own host address).
pub const GOSSIP_PORT: u16 = 7946;

/// The bridge in the underlay namespace.
pub const UNDERLAY_BRIDGE: &str = "ul0";

/// The host's interface to the underlay.
pub const HOST_IF: &str = "eth0";

/// The nftables table [`Topology::drop_percent`] loads in a host's namespace.
pub const LOSS_TABLE: &str = "weft_harness_loss";

/// How long links may take to come up after they are created or healed.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long host 1 may take to hand out its worker token once its API answers.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The UDP port of every agent's RPC service (join protocol, allocator on managers).
pub const RPC_PORT: u16 = 7947;

/// The underlay address of [`Topology::outside`], a machine that is no host of the cluster.
pub const OUTSIDE_ADDR: &str = "198.18.0.250";

/// Hosts are numbered 1..=MAX_HOSTS: their addresses are 198.18.0.<i>/24.
const MAX_HOSTS: usize = 254;

/// The underlay address of host `i` (1-based), without prefix length.
pub fn host_addr(i: usize) -> String {
    format!("198.18.0.{i}")
}

/// The underlay namespaces and links of N hosts, without agents; deleted on drop.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    hosts: usize,
}

impl Topology {
    /// Builds the underlay namespace with its bridge and `n` host namespaces wired to it,
    /// and waits until every link is up.
    pub fn create(n: usize) -> anyhow::Result<Topology> {
        anyhow::ensure!(
            (1..=MAX_HOSTS).contains(&n),
            "a topology has 1 to {MAX_HOSTS} hosts, not {n}"
        );
        sweep_stale();
        // The guard exists before anything is created: a failure half-way tears down the rest.
        let topology = Topology {
            prefix: unique_prefix(),
            hosts: n,
        };
        let ul = topology.underlay_netns();
        create_netns(&ul)?;
        ip_in(&ul, &["link", "set", "lo", "up"])?;
        ip_in(&ul, &["link", "add", UNDERLAY_BRIDGE, "type", "bridge"])?;
        ip_in(&ul, &["link", "set", UNDERLAY_BRIDGE, "up"])?;
        for i in 1..=n {
            let host = topology.host_netns(i);
            let port = underlay_port(i);
            create_netns(&host)?;
            // Both ends are made where they live: nothing touches the machine's own namespace.
            ip_in(
                &ul,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", HOST_IF, "netns", &host,
                ],
            )?;
            ip_in(
                &ul,
                &["link", "set", &port, "master", UNDERLAY_BRIDGE, "up"],
            )?;
            ip_in(&host, &["link", "set", "lo", "up"])?;
            let cidr = format!("{}/24", host_addr(i));
            ip_in(&host, &["addr", "add", &cidr, "dev", HOST_IF])?;
            ip_in(&host, &["link", "set", HOST_IF, "up"])?;
        }
        for i in 1..=n {
            topology.wait_link_up(i)?;
        }
        Ok(topology)
    }

    /// The prefix of every namespace of this topology (`c<pid>x<n>-`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of hosts.
    pub fn len(&self) -> usize {
        self.hosts
    }

    /// Never true: a topology has at least one host.
    pub fn is_empty(&self) -> bool {
        self.hosts == 0
    }

    /// The underlay address of host `i`: `198.18.0.<i>`.
    pub fn addr(&self, i: usize) -> String {
        host_addr(i)
    }

    /// The namespace holding the underlay bridge.
    pub fn underlay_netns(&self) -> String {
        format!("{}ul", self.prefix)
    }

    /// The namespace of host `i`.
    pub fn host_netns(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// The `--netns-prefix` of host `i`'s agent: `<host namespace>-`.
    pub fn agent_netns_prefix(&self, i: usize) -> String {
        format!("{}-", self.host_netns(i))
    }

    /// Starts an agent on host `i` with the usual test flags (198.19 pools, node name
    /// `h<i>`, gossip on its underlay address, 100 ms gossip rounds) and `extra`. For tests
    /// that start nodes one by one (joins, refusals); [`Cluster`] starts a whole cluster.
    pub fn start_agent(&self, i: usize, extra: &[&str]) -> anyhow::Result<Agent> {
        self.check(i)?;
        let addr = self.addr(i);
        let mut args: Vec<String> = [
            "--local-addr-pool",
            "198.19.0.0/17",
            "--default-addr-pool",
            "198.19.128.0/17",
            "--node-name",
            &format!("h{i}"),
            "--listen-addr",
            &format!("{addr}:{GOSSIP_PORT}"),
            "--advertise-addr",
            &addr,
            "--gossip-interval",
            "100ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let options = AgentOptions {
            args,
            env: Vec::new(),
        };
        Agent::start_in(&self.host_netns(i), &self.agent_netns_prefix(i), options)
    }

    fn check(&self, i: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=self.hosts).contains(&i),
            "no host {i}: the hosts are 1..={}",
            self.hosts
        );
        Ok(())
    }

    /// Runs `ip -n <host i> ARGS`, returning stdout.
    pub fn host_ip(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        self.check(i)?;
        ip_in(&self.host_netns(i), args)
    }

    /// A namespace on the underlay at [`OUTSIDE_ADDR`] that runs no agent: it stands for
    /// the world outside the cluster (a server sandboxes reach through their host, a
    /// client of published ports). Made on first use; torn down with the topology.
    pub fn outside(&self) -> anyhow::Result<String> {
        let ns = format!("{}out", self.prefix);
        if weft_os::NetnsDir::default().root().join(&ns).exists() {
            return Ok(ns);
        }
        create_netns(&ns)?;
        let ul = self.underlay_netns();
        ip_in(
            &ul,
            &[
                "link", "add", "out", "type", "veth", "peer", "name", HOST_IF, "netns", &ns,
            ],
        )?;
        ip_in(
            &ul,
            &["link", "set", "out", "master", UNDERLAY_BRIDGE, "up"],
        )?;
        ip_in(&ns, &["link", "set", "lo", "up"])?;
        ip_in(
            &ns,
            &["addr", "add", &format!("{OUTSIDE_ADDR}/24"), "dev", HOST_IF],
        )?;
        ip_in(&ns, &["link", "set", HOST_IF, "up"])?;
        Ok(ns)
    }

    /// Runs `ip -n <underlay> ARGS`, returning stdout.
    pub fn underlay_ip(&self, args: &[&str]) -> anyhow::Result<String> {
        ip_in(&self.underlay_netns(), args)
    }

    /// Runs `program ARGS` inside host `i`'s namespace (entered with setns only, no private
    /// mount namespace) and returns its output, whatever its exit status.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        self.check(i)?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let ns = weft_os::NetnsDir::default().root().join(self.host_netns(i));
        let child = weft_os::exec::spawn_in_netns_blocking(Some(ns), cmd)
            .with_context(|| format!("spawn {program} in host {i}"))?;
        child
            .wait_with_output()
            .with_context(|| format!("wait for {program} in host {i}"))
    }

    /// True when at least one of `count` ICMP echoes from host `from` to `addr` (0.2 s
    /// apart) is answered within a second of the last. Bounded: about 0.2 * count + 1 s.
    pub fn ping(&self, from: usize, addr: &str, count: u32) -> anyhow::Result<bool> {
        let count = count.max(1).to_string();
        let out = self.exec(
            from,
            "ping",
            &["-n", "-q", "-c", &count, "-i", "0.2", "-W", "1", addr],
        )?;
        // 1 is "no reply"; anything else (2: an error such as a bad address) is a failure.
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => anyhow::bail!(
                "ping from host {from} to {addr}: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }

    /// Waits (bounded) until host `from` gets an answer from host `to`.
    pub fn wait_reachable(&self, from: usize, to: usize, timeout: Duration) -> anyhow::Result<()> {
        let addr = host_addr(to);
        let mut last_err = None;
        let waited = wait_until(
            &format!("host {from} to reach host {to} ({addr})"),
            timeout,
            || match self.ping(from, &addr, 1) {
                Ok(true) => Some(()),
                Ok(false) => None,
                Err(e) => {
                    last_err = Some(e);
                    None
                }
            },
        );
        match (waited, last_err) {
            (Ok(()), _) => Ok(()),
            (Err(e), Some(last)) => Err(e.context(format!("last ping error: {last:#}"))),
            (Err(e), None) => Err(e),
        }
    }

    /// Takes host `i` off the underlay: its underlay-side veth goes down (the host keeps its
    /// address; its `eth0` loses carrier, as with a pulled cable).
    pub fn cut(&self, i: usize) -> anyhow::Result<()> {
        self.check(i)?;
        self.underlay_ip(&["link", "set", &underlay_port(i), "down"])
            .with_context(|| format!("cut host {i}"))?;
        Ok(())
    }

    /// Puts host `i` back on the underlay and waits until its link is up again.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        self.check(i)?;
        self.underlay_ip(&["link", "set", &underlay_port(i), "up"])
            .with_context(|| format!("heal host {i}"))?;
        self.wait_link_up(i)
    }

    /// Drops `pct` percent (0..=100) of host `i`'s underlay packets, in and out, chosen at
    /// random per packet (`numgen random mod 100 < pct`); replaces an earlier rate. 0 is
    /// [`Topology::clear_drop`]; 100 drops every packet.
    pub fn drop_percent(&self, i: usize, pct: u8) -> anyhow::Result<()> {
        self.check(i)?;
        anyhow::ensure!(pct <= 100, "drop percentage {pct} is above 100");
        self.load_nft(i, &loss_ruleset(Some(pct)))
            .with_context(|| format!("drop {pct}% on host {i}"))
    }

    /// Stops the packet loss on host `i`; without loss, nothing happens.
    pub fn clear_drop(&self, i: usize) -> anyhow::Result<()> {
        self.check(i)?;
        self.load_nft(i, &loss_ruleset(None))
            .with_context(|| format!("clear drop on host {i}"))
    }

    /// Loads a ruleset with `ip netns exec <host> nft -f -` (atomically: all or nothing).
    fn load_nft(&self, i: usize, ruleset: &str) -> anyhow::Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.host_netns(i), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run nft")?;
        {
            let mut stdin = child.stdin.take().context("nft stdin")?;
            stdin
                .write_all(ruleset.as_bytes())
                .context("write ruleset to nft")?;
        }
        let out = child.wait_with_output().context("wait for nft")?;
        anyhow::ensure!(
            out.status.success(),
            "nft -f in host {i}: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Waits until host `i`'s veth is up at both ends (carrier included).
    fn wait_link_up(&self, i: usize) -> anyhow::Result<()> {
        let host = self.host_netns(i);
        let ul = self.underlay_netns();
        let port = underlay_port(i);
        wait_until(
            &format!("host {i}'s underlay link up"),
            LINK_TIMEOUT,
            || (link_up(&host, HOST_IF) && link_up(&ul, &port)).then_some(()),
        )
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Err(e) = teardown(&self.prefix) {
            eprintln!("cluster-tests: tearing down {}: {e:#}", self.prefix);
        }
    }
}

/// How to start a [`Cluster`]'s agents.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra agent flags, given to every host after the harness's own
    /// (e.g. `--suspicion-window 3s --gossip-interval 100ms`).
    pub args: Vec<String>,
    /// Extra environment variables for every agent.
    pub env: Vec<(String, String)>,
}

impl ClusterOptions {
    /// Adds agent flags for every host.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds environment variables for every agent.
    pub fn env<'a>(mut self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
        self
    }
}

/// N hosts on one underlay, one `weft agent` each: host 1 makes the cluster (`--init`,
/// a manager) and the others join it with the worker token. Dropping it kills every agent
/// and deletes every namespace, also during a panic.
#[derive(Debug)]
pub struct Cluster {
    /// Host i is `agents[i - 1]`. Dropped before `topology` (declaration order).
    agents: Vec<Agent>,
    topology: Topology,
}

impl Cluster {
    /// Builds the topology and starts host 1's agent with `--init`, then hosts 2..=n, which
    /// join through host 1's RPC port (`198.18.0.1:7947`) with its worker token. Each start
    /// waits until that agent's API answers (a joining agent answers once it is admitted);
    /// nothing here waits for membership to converge.
    pub fn start(n: usize, options: ClusterOptions) -> anyhow::Result<Cluster> {
        let topology = Topology::create(n)?;
        // Declared after `topology`, so dropped before it if a start fails.
        let mut agents = Vec::with_capacity(n);
        let first = start_host(&topology, 1, None, &options)?;
        let token = wait_until("host 1's worker token", TOKEN_TIMEOUT, || {
            let out = first.cli(&["cluster", "token", "worker"]);
            out.success().then(|| out.stdout.trim().to_owned())
        })
        .with_context(|| format!("host 1's agent log:\n{}", first.log()))?;
        agents.push(first);
        for i in 2..=n {
            agents.push(start_host(&topology, i, Some(&token), &options)?);
        }
        Ok(Cluster { agents, topology })
    }

    /// Waits (bounded by `timeout` per host) until every host lists every host as alive.
    pub fn wait_all_alive(&self, timeout: Duration) -> anyhow::Result<()> {
        let n = self.agents.len();
        for (i, agent) in self.hosts() {
            wait_until(&format!("host {i} to see {n} alive nodes"), timeout, || {
                let out = agent.cli(&["node", "ls", "--format", "json"]);
                let nodes: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
                let alive = nodes
                    .as_array()?
                    .iter()
                    .filter(|n| n["status"] == "alive")
                    .count();
                (alive == n).then_some(())
            })?;
        }
        Ok(())
    }

    /// The agent of host `i` (1-based). Panics when there is no host `i`.
    pub fn host(&self, i: usize) -> &Agent {
        let n = self.agents.len();
        i.checked_sub(1)
            .and_then(|k| self.agents.get(k))
            .unwrap_or_else(|| panic!("no host {i}: the hosts are 1..={n}"))
    }

    /// The agent of host `i` (1-based), to restart or signal it. Panics when there is no host `i`.
    pub fn host_mut(&mut self, i: usize) -> &mut Agent {
        let n = self.agents.len();
        i.checked_sub(1)
            .and_then(|k| self.agents.get_mut(k))
            .unwrap_or_else(|| panic!("no host {i}: the hosts are 1..={n}"))
    }

    /// Every host with its number.
    pub fn hosts(&self) -> impl Iterator<Item = (usize, &Agent)> {
        self.agents.iter().enumerate().map(|(k, a)| (k + 1, a))
    }

    /// The number of hosts.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Never true: a cluster has at least one host.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The underlay address of host `i`: `198.18.0.<i>`.
    pub fn addr(&self, i: usize) -> String {
        host_addr(i)
    }

    /// The namespaces and links, for fault injection and probes.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The prefix of every namespace of this cluster.
    pub fn prefix(&self) -> &str {
        self.topology.prefix()
    }

    /// `kill -9` of host `i`'s agent, then reaps it.
    pub fn kill9(&mut self, i: usize) -> anyhow::Result<ExitStatus> {
        self.checked_mut(i)?
            .kill9()
            .with_context(|| format!("kill -9 host {i}"))
    }

    /// SIGTERM to host `i`'s agent (a graceful leave), then waits for it to exit.
    pub fn stop(&mut self, i: usize) -> anyhow::Result<ExitStatus> {
        self.checked_mut(i)?
            .stop()
            .with_context(|| format!("stop host {i}"))
    }

    /// Starts host `i`'s agent again, with the same flags, and waits until its API answers.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let agent = self.checked_mut(i)?;
        agent
            .restart()
            .with_context(|| format!("restart host {i}: {}", agent.log()))
    }

    /// See [`Topology::cut`].
    pub fn cut(&self, i: usize) -> anyhow::Result<()> {
        self.topology.cut(i)
    }

    /// See [`Topology::heal`].
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        self.topology.heal(i)
    }

    /// See [`Topology::drop_percent`].
    pub fn drop_percent(&self, i: usize, pct: u8) -> anyhow::Result<()> {
        self.topology.drop_percent(i, pct)
    }

    /// See [`Topology::clear_drop`].
    pub fn clear_drop(&self, i: usize) -> anyhow::Result<()> {
        self.topology.clear_drop(i)
    }

    fn checked_mut(&mut self, i: usize) -> anyhow::Result<&mut Agent> {
        let n = self.agents.len();
        i.checked_sub(1)
            .and_then(|k| self.agents.get_mut(k))
            .with_context(|| format!("no host {i}: the hosts are 1..={n}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Agents first (SIGKILL, reaped, their sandbox namespaces deleted); the topology's
        // own drop then kills anything left in its namespaces and deletes them.
        self.agents.clear();
    }
}

/// The flags of host `i`'s agent: address pools, node name, cluster flags, then `extra`.
fn host_args(i: usize, token: Option<&str>, extra: &[String]) -> Vec<String> {
    let addr = host_addr(i);
    let mut args: Vec<String> = vec![
        // Test addresses stay inside 198.19.0.0/16 (benchmarking range). Every host has
        // the same pools: local networks are per host, global ones are the cluster's.
        "--local-addr-pool".into(),
        "198.19.0.0/17".into(),
        "--default-addr-pool".into(),
        "198.19.128.0/17".into(),
        "--node-name".into(),
        format!("h{i}"),
        "--listen-addr".into(),
        format!("{addr}:{GOSSIP_PORT}"),
        "--advertise-addr".into(),
        addr,
    ];
    match token {
        Some(token) => {
            args.push("--join".into());
            args.push(format!("{}:{RPC_PORT}", host_addr(1)));
            args.push("--token".into());
            args.push(token.to_owned());
        }
        None => args.push("--init".into()),
    }
    args.extend(extra.iter().cloned());
    args
}

fn start_host(
    topology: &Topology,
    i: usize,
    token: Option<&str>,
    options: &ClusterOptions,
) -> anyhow::Result<Agent> {
    let agent_options = AgentOptions {
        args: host_args(i, token, &options.args),
        env: options.env.clone(),
    };
    Agent::start_in(
        &topology.host_netns(i),
        &topology.agent_netns_prefix(i),
        agent_options,
    )
    .with_context(|| format!("start the agent of host {i}"))
}

/// The nftables script for host packet loss: `Some(pct)` (re)loads the table, `None` or
/// `Some(0)` removes it. Declaring the table first makes the delete succeed when it is
/// absent. nft rejects `< 100` (out of the range of `mod 100`), so 100% drops everything.
fn loss_ruleset(pct: Option<u8>) -> String {
    let mut script = format!("table netdev {LOSS_TABLE}\ndelete table netdev {LOSS_TABLE}\n");
    let rule = match pct {
        None | Some(0) => None,
        Some(p) if p >= 100 => Some("counter drop".to_owned()),
        Some(p) => Some(format!("numgen random mod 100 < {p} counter drop")),
    };
    if let Some(rule) = rule {
        script.push_str(&format!(
            "table netdev {LOSS_TABLE} {{\n\
             \tchain loss_in {{\n\
             \t\ttype filter hook ingress device \"{HOST_IF}\" priority -500; policy accept;\n\
             \t\t{rule}\n\
             \t}}\n\
             \tchain loss_out {{\n\
             \t\ttype filter hook egress device \"{HOST_IF}\" priority -500; policy accept;\n\
             \t\t{rule}\n\
             \t}}\n\
             }}\n"
        ));
    }
    script
}

/// The underlay-side veth of host `i`, in the underlay namespace.
fn underlay_port(i: usize) -> String {
    format!("h{i}")
}

/// `c<pid>x<n>-`: unique among the clusters of every test process on the machine.
fn unique_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("c{}x{n}-", std::process::id())
}

/// The test process that created a namespace named by [`unique_prefix`], if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, rest) = name.strip_prefix('c')?.split_once('x')?;
    let (n, _) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Tears down the namespaces of clusters whose test process is gone without unwinding.
fn sweep_stale() {
    let dir = weft_os::NetnsDir::default();
    let mut dead: Vec<String> = Vec::new();
    for ns in dir.list("c").unwrap_or_default() {
        if let Some(pid) = owner_pid(ns.as_str())
            && !Path::new(&format!("/proc/{pid}")).exists()
            && let Some((prefix, _)) = ns.as_str().split_once('-')
        {
            let prefix = format!("{prefix}-");
            if !dead.contains(&prefix) {
                dead.push(prefix);
            }
        }
    }
    for prefix in dead {
        if let Err(e) = teardown(&prefix) {
            eprintln!("cluster-tests: sweeping stale {prefix}: {e:#}");
        }
    }
}

/// Kills every process in a namespace whose name starts with `prefix` (as `ip netns pids`
/// finds them: by namespace identity), then deletes those namespaces. Tries everything and
/// reports the first failure.
pub fn teardown(prefix: &str) -> anyhow::Result<()> {
    let dir = weft_os::NetnsDir::default();
    let names = dir
        .list(prefix)
        .with_context(|| format!("list namespaces {prefix}*"))?;
    let mut first_err: Option<anyhow::Error> = None;
    for ns in &names {
        if let Err(e) = weft_os::exec::kill_all_in(&dir.path(ns)) {
            first_err
                .get_or_insert(anyhow::Error::new(e).context(format!("kill processes in {ns}")));
        }
    }
    for ns in &names {
        if let Err(e) = dir.delete(ns) {
            first_err.get_or_insert(anyhow::Error::new(e).context(format!("delete {ns}")));
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Panics when a namespace whose name starts with `prefix` still exists.
pub fn assert_clean(prefix: &str) {
    let left = weft_os::NetnsDir::default()
        .list(prefix)
        .unwrap_or_else(|e| panic!("list namespaces {prefix}*: {e}"));
    assert!(
        left.is_empty(),
        "namespaces left behind with prefix {prefix}: {left:?}"
    );
}

fn create_netns(name: &str) -> anyhow::Result<()> {
    let ns = weft_os::NsName::new(name).context("namespace name")?;
    weft_os::NetnsDir::default()
        .create(&ns)
        .with_context(|| format!("create namespace {name}"))
}

/// Runs `ip -n NS ARGS`, returning stdout.
fn ip_in(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run ip")?;
    anyhow::ensure!(
        out.status.success(),
        "ip -n {ns} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when `dev` in `ns` is up with carrier (`LOWER_UP`).
fn link_up(ns: &str, dev: &str) -> bool {
    ip_in(ns, &["-o", "link", "show", "dev", dev])
        .is_ok_and(|line| line.contains(",LOWER_UP") || line.contains("<LOWER_UP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_only_cluster_names() {
        assert_eq!(owner_pid("c123x0-ul"), Some(123));
        assert_eq!(owner_pid("c123x17-h2-sb-abc"), Some(123));
        assert_eq!(owner_pid("c123x-ul"), None);
        assert_eq!(owner_pid("cx0-ul"), None);
        assert_eq!(owner_pid("c12ax0-ul"), None);
        assert_eq!(owner_pid("c123x0"), None);
        assert_eq!(owner_pid("t123x0-host"), None);
        assert_eq!(owner_pid("cni-1234"), None);
    }

    #[test]
    fn host_1_makes_the_cluster_and_the_others_join_with_the_token() {
        let first = host_args(1, None, &[]);
        assert!(first.iter().any(|a| a == "--init"));
        assert!(!first.iter().any(|a| a == "--join" || a == "--token"));
        assert!(
            first
                .windows(2)
                .any(|w| w == ["--listen-addr", "198.18.0.1:7946"])
        );
        let third = host_args(
            3,
            Some("weft-W-x"),
            &["--gossip-interval".into(), "100ms".into()],
        );
        for pair in [
            ["--node-name", "h3"],
            ["--listen-addr", "198.18.0.3:7946"],
            ["--advertise-addr", "198.18.0.3"],
            ["--join", "198.18.0.1:7947"],
            ["--token", "weft-W-x"],
        ] {
            assert!(third.windows(2).any(|w| w == pair), "{pair:?} in {third:?}");
        }
        assert!(!third.iter().any(|a| a == "--init"));
        assert_eq!(third[third.len() - 2..], ["--gossip-interval", "100ms"]);
    }

    #[test]
    fn loss_ruleset_replaces_or_removes_the_table() {
        let on = loss_ruleset(Some(30));
        assert!(on.starts_with("table netdev weft_harness_loss\ndelete table"));
        assert_eq!(
            on.matches("numgen random mod 100 < 30 counter drop")
                .count(),
            2
        );
        assert!(on.contains("hook ingress device \"eth0\""));
        assert!(on.contains("hook egress device \"eth0\""));
        let all = loss_ruleset(Some(100));
        assert_eq!(all.matches("\t\tcounter drop\n").count(), 2);
        assert!(!all.contains("numgen"));
        assert!(!loss_ruleset(None).contains("chain"));
        assert!(!loss_ruleset(Some(0)).contains("chain"));
    }
}
