//! One agent process and the CLI pointed at it.

use crate::{wait_until, weft_bin};
use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long an agent may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start an agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Extra agent flags.
    pub args: Vec<String>,
    /// Extra environment variables for the agent only.
    pub env: Vec<(String, String)>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        // Test addresses stay inside 198.19.0.0/16 (benchmarking range).
        AgentOptions {
            args: vec![
                "--local-addr-pool".into(),
                "198.19.0.0/17".into(),
                "--default-addr-pool".into(),
                "198.19.128.0/17".into(),
                "--node-name".into(),
                "test-node".into(),
            ],
            env: Vec::new(),
        }
    }
}

/// The result of one CLI call.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// A `weft agent` with its own directory; stopped (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Agent {
    dir: tempfile::TempDir,
    options: AgentOptions,
    child: Option<Child>,
    starts: usize,
    /// Unique per agent: /run/netns is shared by every agent on the machine.
    netns_prefix: String,
    /// The namespace the agent runs in.
    host_netns: String,
}

impl Agent {
    /// Starts an agent and waits until its API answers.
    pub fn start(options: AgentOptions) -> anyhow::Result<Agent> {
        let dir = tempfile::Builder::new()
            .prefix("weft-test-")
            .tempdir()
            .context("temp dir")?;
        let netns_prefix = unique_prefix();
        let host_netns = format!("{netns_prefix}host");
        let mut agent = Agent {
            dir,
            options,
            child: None,
            starts: 0,
            netns_prefix,
            host_netns,
        };
        agent.create_host_netns()?;
        agent.spawn(&[])?;
        agent.wait_ready()?;
        Ok(agent)
    }

    /// Starts an agent inside `host_netns`, a namespace the caller created and owns (it
    /// is neither created nor deleted here), with `--netns-prefix netns_prefix`, and waits
    /// until its API answers. `options.args` are the agent's complete extra flags: none of
    /// [`AgentOptions::default`]'s are added. On drop the agent is killed and the
    /// namespaces under `netns_prefix` deleted; `host_netns` must not start with it.
    pub fn start_in(
        host_netns: &str,
        netns_prefix: &str,
        options: AgentOptions,
    ) -> anyhow::Result<Agent> {
        anyhow::ensure!(
            !host_netns.starts_with(netns_prefix),
            "host namespace {host_netns} would be deleted with the agent's prefix {netns_prefix}"
        );
        let dir = tempfile::Builder::new()
            .prefix("weft-test-")
            .tempdir()
            .context("temp dir")?;
        let mut agent = Agent {
            dir,
            options,
            child: None,
            starts: 0,
            netns_prefix: netns_prefix.to_owned(),
            host_netns: host_netns.to_owned(),
        };
        agent.spawn(&[])?;
        agent.wait_ready()?;
        Ok(agent)
    }

    /// The namespace the agent runs in: its "host". Everything the agent does to its
    /// host (bridges, nftables, sysctls) stays inside it, off the real host.
    pub fn host_netns(&self) -> String {
        self.host_netns.clone()
    }

    fn create_host_netns(&self) -> anyhow::Result<()> {
        let name = weft_os::NsName::new(self.host_netns()).context("host namespace name")?;
        weft_os::NetnsDir::new("/run/netns")
            .create(&name)
            .context("create host namespace")?;
        self.host_ip(&["link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Runs `ip -n <host namespace> ARGS`, returning stdout.
    pub fn host_ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("ip")
            .arg("-n")
            .arg(self.host_netns())
            .args(args)
            .output()
            .context("run ip")?;
        anyhow::ensure!(
            out.status.success(),
            "ip -n {} {args:?}: {}",
            self.host_netns(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `nft ARGS` inside the agent's host namespace, returning stdout.
    pub fn host_nft(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.host_netns(), "nft"])
            .args(args)
            .output()
            .context("run nft")?;
        anyhow::ensure!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The prefix of every namespace this agent creates.
    pub fn netns_prefix(&self) -> &str {
        &self.netns_prefix
    }

    /// This agent's sandbox namespaces that exist now.
    pub fn namespaces(&self) -> Vec<String> {
        let dir = weft_os::NetnsDir::new("/run/netns");
        dir.list(&format!("{}sb-", self.netns_prefix))
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// This agent's overlay network namespaces (`<prefix>ov-*`) that exist now.
    pub fn overlay_namespaces(&self) -> Vec<String> {
        let dir = weft_os::NetnsDir::new("/run/netns");
        dir.list(&format!("{}ov-", self.netns_prefix))
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    /// The agent's log of its latest start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }

    fn log_path(&self, start: usize) -> PathBuf {
        self.dir.path().join(format!("agent-{start}.log"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process (with `env` added) without waiting for it.
    pub fn spawn(&mut self, env: &[(&str, &str)]) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "agent already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).context("agent log")?;
        let mut cmd = Command::new(weft_bin());
        cmd.arg("agent")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--api-socket")
            .arg(self.socket())
            .arg("--netns-prefix")
            .arg(&self.netns_prefix)
            .args(&self.options.args)
            .env("WEFT_LOG_LEVEL", "info")
            // Names the embedded DNS does not know go to an address of the test's own
            // underlay where nothing answers, never to this machine's resolvers; a test
            // that needs an upstream gives --dns.
            .env("WEFT_DNS", "198.18.0.254")
            .env_remove("WEFT_CRASH_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let host = weft_os::NetnsDir::new("/run/netns")
            .root()
            .join(self.host_netns());
        let child =
            weft_os::exec::spawn_in_netns_blocking(Some(host), cmd).context("spawn weft agent")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the API answers, failing early if the process exits.
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        let socket = self.socket();
        let ready = wait_until("agent API", START_TIMEOUT, || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Some(Err(status));
            }
            std::os::unix::net::UnixStream::connect(&socket)
                .ok()
                .map(|_| Ok(()))
        })?;
        ready.map_err(|status| {
            anyhow::anyhow!("agent exited with {status} while starting: {}", self.log())
        })
    }

    /// Sets `flag`'s value for the next start (replacing the one given, else adding it):
    /// a restart with other flags, as an operator reconfiguring a node does.
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        let args = &mut self.options.args;
        match args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < args.len() => args[i + 1] = value.to_owned(),
            _ => args.extend([flag.to_owned(), value.to_owned()]),
        }
    }

    /// Starts again after a stop or crash, and waits until it answers.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.spawn(&[])?;
        self.wait_ready()
    }

    /// `kill -9`, then reaps the process.
    pub fn kill9(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGKILL)?;
        self.wait_exit(Duration::from_secs(10))
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait_exit(Duration::from_secs(20))
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.pid().context("agent not running")?;
        let pid = i32::try_from(pid).context("pid out of range")?;
        kill(Pid::from_raw(pid), signal).with_context(|| format!("kill {signal} {pid}"))
    }

    /// Waits for the process to exit on its own and reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("agent not running")?;
        let status = wait_until("agent exit", timeout, || child.try_wait().ok().flatten())?;
        self.child = None;
        Ok(status)
    }

    /// True when the process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Runs `weft ARGS...` against this agent.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        cli_at(&self.socket(), args)
    }

    /// Runs a command that must succeed and parses its `--format json` output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.extend(["--format", "json"]);
        let out = self.cli(&full);
        assert!(out.success(), "weft {args:?} failed: {}", out.stderr);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("weft {args:?}: bad JSON ({e}): {}", out.stdout))
    }

    /// Runs a command that must succeed, returning its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.success(),
            "weft {args:?} failed ({:?}): {}",
            out.code(),
            out.stderr
        );
        out.stdout
    }

    /// Creates overlay network `name` on `subnet`; its id.
    pub fn create_overlay(&self, name: &str, subnet: &str) -> String {
        let args = [
            "network", "create", "-d", "overlay", "--subnet", subnet, name,
        ];
        self.ok(&args).trim().to_owned()
    }

    /// `weft run -d --name NAME --network N... -- sleep 600`: a sandbox that idles on
    /// `networks` for the length of a test.
    pub fn run_idle(&self, name: &str, networks: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name];
        for n in networks {
            args.extend(["--network", n]);
        }
        args.extend(["--", "sleep", "600"]);
        assert_eq!(self.ok(&args).trim(), name);
    }

    /// The address (without prefix) of `sandbox` on `network`.
    pub fn ip_of(&self, sandbox: &str, network: &str) -> String {
        let info = self.json(&["sandbox", "inspect", sandbox]);
        let endpoints = info[0]["endpoints"].as_array().cloned().unwrap_or_default();
        let ep = endpoints
            .iter()
            .find(|e| e["network"] == network)
            .unwrap_or_else(|| panic!("sandbox {sandbox} is not on network {network}: {info}"));
        let ip = ep["ipv4"].as_str().unwrap_or_default();
        ip.split('/').next().unwrap_or_default().to_owned()
    }

    /// True when one ICMP echo from `sandbox` to `ip` is answered within `wait_s` seconds.
    pub fn ping(&self, sandbox: &str, ip: &str, wait_s: u32) -> bool {
        self.cli(&[
            "exec",
            sandbox,
            "--",
            "ping",
            "-n",
            "-q",
            "-c1",
            &format!("-W{wait_s}"),
            ip,
        ])
        .success()
    }

    /// True when a TCP connection from `sandbox` to `ip:port` opens within 2 seconds.
    pub fn tcp_connects(&self, sandbox: &str, ip: &str, port: u16) -> bool {
        let script = format!("exec 3<>/dev/tcp/{ip}/{port}");
        self.cli(&["exec", sandbox, "--", "timeout", "2", "bash", "-c", &script])
            .success()
    }

    /// Starts an iperf3 server (port 5201) in the background inside `sandbox`.
    pub fn iperf_server(&self, sandbox: &str) {
        self.ok(&["exec", sandbox, "--", "iperf3", "-s", "-D"]);
    }

    /// Everything the agent lists, for before/after comparisons.
    pub fn listings(&self) -> serde_json::Value {
        serde_json::json!({
            "networks": self.json(&["network", "ls"]),
            "endpoints": self.json(&["endpoint", "ls"]),
            "sandboxes": self.json(&["sandbox", "ls"]),
        })
    }
}

/// True when the process died of SIGABRT (a crash point).
pub fn aborted(status: &ExitStatus) -> bool {
    status.signal() == Some(Signal::SIGABRT as i32)
}

pub fn cli_at(socket: &Path, args: &[&str]) -> CliOutput {
    let out = Command::new(weft_bin())
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => CliOutput {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Err(e) => panic!("cannot run weft {args:?}: {e}"),
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Sandboxes outlive their agent by design; a test's must not outlive the test.
        let dir = weft_os::NetnsDir::new("/run/netns");
        for ns in dir.list(&self.netns_prefix).unwrap_or_default() {
            let _ = weft_os::exec::kill_all_in(&dir.path(&ns));
            let _ = dir.delete(&ns);
        }
    }
}

/// `t<pid>x<n>-`: unique among the agents of every test process on the machine.
fn unique_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t{}x{n}-", std::process::id())
}
