//! Watching a sandbox's load balancer change: `nft monitor elements` in its namespace
//! reports every element the kernel commits, as it commits it.

use anyhow::Context;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// True when `text` holds `ip` as a whole address, not as part of a longer one.
pub fn holds(text: &str, ip: &str) -> bool {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
    text.match_indices(ip).any(|(at, _)| {
        !part(text[..at].chars().next_back()) && !part(text[at + ip.len()..].chars().next())
    })
}

/// `nft monitor elements` in one namespace: every element event, stamped when read. nft
/// prints each event as it comes, so the stamp is when the change took effect, within a
/// context switch, whatever the table's size. Killed when dropped.
#[derive(Debug)]
pub struct ElementMonitor {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl ElementMonitor {
    /// Starts watching the namespace at `netns` (a path, e.g. /run/netns/NAME).
    pub fn start(netns: &str) -> anyhow::Result<ElementMonitor> {
        let mut cmd = Command::new("nft");
        cmd.args(["monitor", "elements"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = weft_os::exec::spawn_in_netns_blocking(Some(PathBuf::from(netns)), cmd)
            .context("spawn nft monitor")?;
        let stdout = child.stdout.take().context("nft monitor's stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        // nft subscribes before it prints anything: give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        Ok(ElementMonitor { child, lines })
    }

    /// Forgets the events so far.
    pub fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// When `ip` was added to (`present`) or deleted from `vip`'s slots in the map
    /// `backends` of `ip weft-lb`; an error after `within`.
    pub fn wait_backend(
        &self,
        vip: Ipv4Addr,
        ip: &str,
        present: bool,
        within: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + within;
        let verb = if present {
            "add element"
        } else {
            "delete element"
        };
        let vip = vip.to_string();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = self.lines.recv_timeout(left).with_context(|| {
                format!("no {verb} of {ip} for {vip} in the load balancer within {within:?}")
            })?;
            if line.starts_with(verb)
                && line.contains(" backends ")
                && holds(&line, &vip)
                && holds(&line, ip)
            {
                return Ok(at);
            }
        }
    }
}

impl Drop for ElementMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
