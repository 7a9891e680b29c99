//! The kernel side of a sandbox's embedded DNS: its listening sockets, made inside the
//! sandbox's namespace and served by the agent from the host's, and the per-namespace
//! `/etc/netns/NAME/` files (`resolv.conf`) that processes started in the sandbox see in
//! place of the host's, as `ip netns exec` arranges them.

use crate::nsthread;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

/// Docker's resolver address: a loopback address, so it needs no interface of its own.
pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Where the per-namespace `/etc` overrides live.
pub const NETNS_ETC: &str = "/etc/netns";

/// UDP and TCP sockets on `127.0.0.11:53` inside the namespace at `netns`, non-blocking.
pub async fn bind_resolver(netns: PathBuf) -> io::Result<(UdpSocket, TcpListener)> {
    nsthread::in_netns(Some(netns), || {
        let addr = SocketAddr::from((RESOLVER_ADDR, 53));
        let udp = UdpSocket::bind(addr)?;
        udp.set_nonblocking(true)?;
        let tcp = TcpListener::bind(addr)?;
        tcp.set_nonblocking(true)?;
        Ok((udp, tcp))
    })
    .await
}

/// The `/etc/netns/NAME` directory of the namespace bound at `netns` (`/run/netns/NAME`).
pub fn etc_dir(netns: &Path) -> Option<PathBuf> {
    let name = netns.file_name()?;
    (netns.parent() == Some(Path::new("/run/netns"))).then(|| Path::new(NETNS_ETC).join(name))
}

/// Writes `/etc/netns/NAME/resolv.conf` for the namespace at `netns` (atomically: a
/// process starting meanwhile sees the old file or the new one).
pub fn write_resolv_conf(netns: &Path, content: &str) -> io::Result<()> {
    let dir = etc_dir(netns)
        .ok_or_else(|| io::Error::other(format!("{} is not a named namespace", netns.display())))?;
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(".resolv.conf.tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, dir.join("resolv.conf"))
}

/// Removes the namespace's `/etc/netns/NAME` directory; an absent one is success.
pub fn remove_etc(netns: &Path) -> io::Result<()> {
    let Some(dir) = etc_dir(netns) else {
        return Ok(());
    };
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_namespaces_have_an_etc_dir() {
        assert_eq!(
            etc_dir(Path::new("/run/netns/weft-sb-1")),
            Some(PathBuf::from("/etc/netns/weft-sb-1"))
        );
        assert_eq!(etc_dir(Path::new("/proc/1/ns/net")), None);
    }
}
