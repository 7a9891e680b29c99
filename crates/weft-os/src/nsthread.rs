//! Running code inside a network namespace on a dedicated OS thread.
//!
//! `setns(2)` changes the namespace of the calling *thread*. Doing it on a tokio worker would
//! silently move every task that runs there next (rtnetlink#68), so each call here spawns a
//! fresh `std::thread`, enters the namespace, runs the closure and exits: the thread is the
//! guard, and nothing it leaves behind can leak into another task. Sockets and child processes
//! created on that thread keep the namespace after it exits.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};

/// Enters the namespace at `ns` (a `/run/netns/NAME` or `/proc/PID/ns/net` file) on the
/// current thread, or stays where it is when `None`. Only for threads spawned by this module.
fn enter(ns: Option<PathBuf>) -> io::Result<()> {
    let Some(path) = ns else { return Ok(()) };
    let file = File::open(path)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

fn spawn(body: impl FnOnce() + Send + 'static) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("weft-netns".into())
        .spawn(body)
}

/// Runs `f` on a new thread inside the namespace at `ns` (the current namespace when `None`)
/// and blocks until it returns. For synchronous callers (Drop guards, the CLI).
pub fn in_netns_blocking<T, F>(ns: Option<PathBuf>, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = spawn(move || {
        let _ = tx.send(enter(ns).and_then(|()| f()));
    })?;
    let _ = thread.join();
    rx.recv()
        .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Runs `f` on a new thread inside the namespace at `ns` (the current namespace when `None`)
/// without blocking the async runtime.
pub async fn in_netns<T, F>(ns: Option<PathBuf>, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn(move || {
        // The receiver is gone only if the caller was cancelled; the result is dropped then.
        let _ = tx.send(enter(ns).and_then(|()| f()));
    })?;
    rx.await
        .map_err(|_| io::Error::other("namespace thread panicked"))?
}
