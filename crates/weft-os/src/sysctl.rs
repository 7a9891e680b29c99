//! sysctls of a namespace, through `/proc/sys` opened on a thread inside it (files under
//! `/proc/sys/net` belong to the network namespace of the thread that opens them).

use std::io;
use std::path::PathBuf;

use crate::names::SysctlKey;
use crate::nsthread;

/// Writes `value` to `key` in the namespace at `ns` (the current one when `None`).
pub async fn set(ns: Option<PathBuf>, key: &SysctlKey, value: &str) -> io::Result<()> {
    let path = key.proc_path();
    let value = value.to_owned();
    nsthread::in_netns(ns, move || std::fs::write(path, value)).await
}

/// Reads `key` in the namespace at `ns`, without the trailing newline.
pub async fn get(ns: Option<PathBuf>, key: &SysctlKey) -> io::Result<String> {
    let path = key.proc_path();
    nsthread::in_netns(ns, move || {
        std::fs::read_to_string(path).map(|s| s.trim_end().to_owned())
    })
    .await
}
