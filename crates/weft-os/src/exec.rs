//! Running a command inside a namespace: the child is spawned from a thread that entered the
//! namespace, so it starts there (as `ip netns exec` does, but without a mount namespace).

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::model::{CommandSpec, StdioMode};
use crate::nsthread;

fn stdio(mode: StdioMode) -> Stdio {
    match mode {
        StdioMode::Inherit => Stdio::inherit(),
        StdioMode::Null => Stdio::null(),
        StdioMode::Piped => Stdio::piped(),
    }
}

/// The `std::process::Command` described by `spec`.
pub fn command(spec: &CommandSpec) -> Command {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdio(spec.stdin))
        .stdout(stdio(spec.stdout))
        .stderr(stdio(spec.stderr));
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    if spec.own_process_group {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd
}

/// Spawns `cmd` inside the namespace at `ns` (the current one when `None`). Blocking; for
/// synchronous callers such as the CLI.
pub fn spawn_in_netns_blocking(ns: Option<PathBuf>, mut cmd: Command) -> io::Result<Child> {
    bind_netns_etc(ns.as_deref(), &mut cmd)?;
    nsthread::in_netns_blocking(ns, move || cmd.spawn())
}

/// Spawns `cmd` inside the namespace at `ns` (the current one when `None`).
pub async fn spawn_in_netns(ns: Option<PathBuf>, mut cmd: Command) -> io::Result<Child> {
    bind_netns_etc(ns.as_deref(), &mut cmd)?;
    nsthread::in_netns(ns, move || cmd.spawn()).await
}

/// When the namespace has a `/etc/netns/NAME/resolv.conf` (the embedded DNS's), the child
/// sees it as `/etc/resolv.conf`, in a mount namespace of its own, as `ip netns exec` does.
fn bind_netns_etc(ns: Option<&std::path::Path>, cmd: &mut Command) -> io::Result<()> {
    use nix::mount::{MsFlags, mount};
    use std::os::unix::process::CommandExt;
    let Some(file) = ns
        .and_then(crate::resolver::etc_dir)
        .map(|dir| dir.join("resolv.conf"))
        .filter(|f| f.is_file())
    else {
        return Ok(());
    };
    let source = std::ffi::CString::new(file.into_os_string().into_encoded_bytes())
        .map_err(io::Error::other)?;
    let hook = move || -> io::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
        // Slave: the host's later mounts still reach the child, its own never leak back.
        let root = c"/";
        mount(
            None::<&std::ffi::CStr>,
            root,
            None::<&std::ffi::CStr>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&std::ffi::CStr>,
        )?;
        mount(
            Some(source.as_c_str()),
            c"/etc/resolv.conf",
            None::<&std::ffi::CStr>,
            MsFlags::MS_BIND,
            None::<&std::ffi::CStr>,
        )?;
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec and only makes the unshare and
    // mount system calls on memory prepared before the fork: no allocation, no locks.
    unsafe {
        cmd.pre_exec(hook);
    }
    Ok(())
}

/// Kills every process whose network namespace is the one bound at `ns_path`, then
/// waits (at most 5 s) until none is left. Our own process is never killed.
pub fn kill_all_in(ns_path: &std::path::Path) -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let target = std::fs::metadata(ns_path)?;
    let key = (target.dev(), target.ino());
    let me = std::process::id();
    let in_ns = || -> io::Result<Vec<i32>> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Processes may exit while we look: a vanished one is simply not counted.
            let Ok(meta) = std::fs::metadata(entry.path().join("ns/net")) else {
                continue;
            };
            if (meta.dev(), meta.ino()) == key && pid != me {
                pids.push(i32::try_from(pid).map_err(io::Error::other)?);
            }
        }
        Ok(pids)
    };
    let victims = in_ns()?;
    if victims.is_empty() {
        // The common case (nothing was started in the sandbox): one scan is enough.
        return Ok(0);
    }
    for pid in &victims {
        // ESRCH (already gone) is fine.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !in_ns()?.is_empty() {
        if std::time::Instant::now() >= deadline {
            return Err(io::Error::other(
                "processes still running 5 s after SIGKILL",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(victims.len())
}

/// The exit code of a finished process: its status, or 128 + signal as shells report it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// A process started in a namespace: a real child, or a stand-in from the fake kernel.
#[derive(Debug)]
pub struct Process {
    pid: u32,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Real(Child),
    Fake(i32),
}

impl Process {
    /// Wraps a real child.
    pub fn from_child(child: Child) -> Self {
        Self {
            pid: child.id(),
            inner: Inner::Real(child),
        }
    }

    /// A stand-in that "exits" with `exit_code` (for the fake kernel).
    pub fn fake(pid: u32, exit_code: i32) -> Self {
        Self {
            pid,
            inner: Inner::Fake(exit_code),
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The real child, e.g. to take its piped stdio.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        match &mut self.inner {
            Inner::Real(c) => Some(c),
            Inner::Fake(_) => None,
        }
    }

    /// Consumes the handle, returning the real child.
    pub fn into_child(self) -> Option<Child> {
        match self.inner {
            Inner::Real(c) => Some(c),
            Inner::Fake(_) => None,
        }
    }

    /// Waits for the exit on a thread of its own and hands the exit code to `on_exit`: for
    /// detached processes, which may outlive the agent. A thread, not `spawn_blocking`,
    /// because a runtime waits for its blocking tasks when it shuts down, and the agent
    /// must stop while its sandboxes' processes run on.
    pub fn reap_in_background(self, on_exit: impl FnOnce(crate::Result<i32>) + Send + 'static) {
        let pid = self.pid;
        let err = move |source| crate::Error::WaitCommand { pid, source };
        match self.inner {
            Inner::Fake(code) => on_exit(Ok(code)),
            Inner::Real(mut child) => {
                let reaper = std::thread::Builder::new()
                    .name(format!("reap-{pid}"))
                    .spawn(move || on_exit(child.wait().map(exit_code).map_err(err)));
                if let Err(e) = reaper {
                    // Without a thread the child is reaped when the agent exits.
                    tracing::warn!(pid, error = %e, "cannot start a thread to reap a process");
                }
            }
        }
    }

    /// Waits for the process to exit and returns its exit code (see [`exit_code`]).
    pub async fn wait(self) -> crate::Result<i32> {
        let pid = self.pid;
        let err = |source| crate::Error::WaitCommand { pid, source };
        match self.inner {
            Inner::Fake(code) => Ok(code),
            Inner::Real(mut child) => tokio::task::spawn_blocking(move || child.wait())
                .await
                .map_err(|e| err(io::Error::other(e)))?
                .map(exit_code)
                .map_err(err),
        }
    }
}
