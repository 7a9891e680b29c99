//! A full data directory (issue 18): creates fail with one clear line and `/ready` says
//! why, removals still go through on the store's space reserve, and once space is freed
//! the same agent process, not restarted, writes again and is ready.
//!
//! Needs root (tmpfs mount, namespaces), `mount`, `umount`, `curl` and `ip`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, AgentOptions, wait_until};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Small enough to fill quickly, large enough for the agent's stores and their reserves.
const TMPFS_SIZE: &str = "24m";
/// The agent's default `--diagnostic-addr`, inside its host namespace.
const DIAGNOSTIC: &str = "http://127.0.0.1:7948";
const NETWORKS: usize = 4;

/// A tmpfs mounted on a directory, unmounted when dropped (also on panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount: this test needs root and mount(8)");
        assert!(
            out.status.success(),
            "mount tmpfs on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the agent may still hold files open when a test panics.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    // Bounded: the tmpfs holds a few hundred chunks.
    for _ in 0..100_000 {
        match file.write(&chunk) {
            Ok(n) if n > 0 => written += n as u64,
            _ => break,
        }
    }
    // The last partial chunk: fill to the byte.
    for _ in 0..chunk.len() {
        if !matches!(file.write(&chunk[..1]), Ok(1)) {
            break;
        }
    }
    written
}

/// `/ready` of the agent's diagnostic server: (HTTP status, body).
fn ready(agent: &Agent) -> (u16, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &agent.host_netns(),
            "curl",
            "-s",
            "-m",
            "10",
        ])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("{DIAGNOSTIC}/ready"))
        .output()
        .expect("run curl in the agent's namespace: this test needs ip(8) and curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn create(agent: &Agent, name: &str, third_octet: usize) -> cluster_tests::CliOutput {
    let subnet = format!("198.19.{third_octet}.0/24");
    agent.cli(&["network", "create", "-d", "null", "--subnet", &subnet, name])
}

fn network_names(agent: &Agent) -> Vec<String> {
    let list = agent.json(&["network", "ls"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_full_data_directory_heals_without_a_restart() {
    let mut agent = Agent::start(AgentOptions::default()).unwrap();
    // Move the agent onto a small filesystem: a fresh data directory on tmpfs.
    agent.stop().unwrap();
    let data = agent.data_dir();
    let _tmpfs = Tmpfs::mount(&data);
    agent.restart().unwrap();
    assert_eq!(ready(&agent).0, 200, "ready before the disk fills");
    for i in 0..NETWORKS {
        assert!(create(&agent, &format!("keep{i}"), 80 + i).success());
    }

    let filler = data.join("filler");
    assert!(fill(&filler) > 0, "the filler wrote nothing");

    // sled may still have room in its current segment: creates succeed until it fills.
    let mut refused = None;
    for i in 0..64 {
        let out = create(&agent, &format!("more{i}"), 100 + i);
        if !out.success() {
            refused = Some(out);
            break;
        }
    }
    let refused = refused.expect("no create failed on a full disk");
    let line = refused.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(
        line.contains("is full") && line.contains("retries by itself"),
        "a clear message: {line}"
    );
    let (status, body) = ready(&agent);
    assert_eq!(status, 503, "not ready on a full disk: {body}");
    assert!(body.contains("is full"), "the reason: {body}");

    for i in 0..NETWORKS {
        let out = agent.cli(&["network", "rm", &format!("keep{i}")]);
        assert!(out.success(), "rm keep{i} on a full disk: {}", out.stderr);
    }
    assert!(
        !network_names(&agent).iter().any(|n| n.starts_with("keep")),
        "removed networks still listed"
    );
    let out = create(&agent, "still-full", 120);
    assert!(!out.success(), "a create spent the removals' reserve");
    assert_eq!(
        ready(&agent).0,
        503,
        "still not ready while the disk is full"
    );

    std::fs::remove_file(&filler).unwrap();
    wait_until("ready after freeing space", Duration::from_secs(15), || {
        (ready(&agent).0 == 200).then_some(())
    })
    .unwrap();
    assert!(agent.is_running(), "the agent was not restarted");
    let out = create(&agent, "after", 121);
    assert!(out.success(), "create after freeing space: {}", out.stderr);
    agent.ok(&["network", "rm", "after"]);
    assert_eq!(ready(&agent).0, 200);
    let stats = agent.json(&["diag", "stats"]);
    let controller = stats["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store"] == "controller")
        .cloned()
        .unwrap_or_default();
    assert_eq!(controller["writable"], true, "{stats}");
    assert!(
        controller["write_failures"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
}
