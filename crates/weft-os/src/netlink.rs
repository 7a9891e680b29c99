//! rtnetlink handles bound to a namespace.
//!
//! A netlink socket talks to the namespace of the thread that created it, for its whole life.
//! So the socket for a named namespace is created on a short-lived thread that `setns`'d there
//! (see [`crate::nsthread`]), handed back as a file descriptor, and driven by a connection task
//! on the ordinary tokio runtime (netavark's `open_netlink_sockets`).

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::PathBuf;

use netlink_sys::{Socket, TokioSocket, protocols::NETLINK_ROUTE};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::nsthread;

/// An rtnetlink handle whose socket lives in one namespace. Dropping it stops its connection.
#[derive(Debug)]
pub struct NetlinkHandle {
    handle: rtnetlink::Handle,
    connection: JoinHandle<()>,
}

impl NetlinkHandle {
    /// A handle in the caller's namespace (the host namespace for the agent), driven by the
    /// current tokio runtime.
    pub fn host() -> io::Result<Self> {
        Self::host_on(&current_runtime()?)
    }

    /// A handle in the caller's namespace, driven by `rt`.
    pub fn host_on(rt: &Handle) -> io::Result<Self> {
        let _entered = rt.enter();
        let (conn, handle, _) = rtnetlink::new_connection()?;
        Ok(Self {
            handle,
            connection: rt.spawn(conn),
        })
    }

    /// A handle in the namespace at `ns_path` (e.g. `/run/netns/NAME`), driven by the current
    /// tokio runtime.
    pub async fn open_in(ns_path: PathBuf) -> io::Result<Self> {
        Self::open_in_on(ns_path, &current_runtime()?).await
    }

    /// A handle in the namespace at `ns_path`, driven by `rt`: the socket is registered with
    /// that runtime's reactor and its connection task runs there, so it outlives the caller's
    /// runtime (an actix arbiter, say) as long as `rt` runs.
    pub async fn open_in_on(ns_path: PathBuf, rt: &Handle) -> io::Result<Self> {
        let socket = nsthread::in_netns(Some(ns_path), || {
            let socket = Socket::new(NETLINK_ROUTE)?;
            socket.set_non_blocking(true)?;
            Ok(socket)
        })
        .await?;
        let fd = socket.into_raw_fd();
        let _entered = rt.enter();
        // SAFETY: `fd` was just released by `into_raw_fd` from a netlink socket we own, so it is
        // open, of the right type, and nothing else will close it. `from_raw_fd` registers it
        // with the reactor of `rt`, entered above.
        let socket = unsafe { TokioSocket::from_raw_fd(fd) };
        let (conn, handle, _) = rtnetlink::from_socket(socket);
        Ok(Self {
            handle,
            connection: rt.spawn(conn),
        })
    }

    /// The rtnetlink handle, for requests not wrapped by this crate.
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

impl Drop for NetlinkHandle {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn current_runtime() -> io::Result<Handle> {
    Handle::try_current().map_err(io::Error::other)
}
