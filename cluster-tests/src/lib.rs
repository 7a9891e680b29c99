//! The test harness for weft as users run it: real `weft agent` processes, each with its
//! own data directory and API socket, driven through the real CLI. [`Cluster`] puts N of
//! them on N hosts (network namespaces) joined by an underlay bridge.
//!
//! Everything a test starts is owned by a guard that stops it on drop, so a failing or
//! panicking test leaves no process behind. Waits are bounded polls, never bare sleeps.
#![forbid(unsafe_code)]

mod agent;
pub mod bench;
pub mod cluster;
pub mod dns;
pub mod nft;

pub use agent::{Agent, AgentOptions, CliOutput, aborted, cli_at};
pub use cluster::{Cluster, ClusterOptions, Topology, assert_clean};

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `weft` binary under test: `WEFT_BIN`, else the one cargo built next to the test.
pub fn weft_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WEFT_BIN") {
        return PathBuf::from(bin);
    }
    // Test executables live in target/<profile>/deps; the binary in target/<profile>.
    let exe = std::env::current_exe().unwrap_or_default();
    let candidate = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("weft"))
        .unwrap_or_default();
    assert!(
        candidate.is_file(),
        "weft binary not found at {}: run `cargo build -p weft --features crash-points` or set WEFT_BIN",
        candidate.display()
    );
    candidate
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
