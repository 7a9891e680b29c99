//! [`RealKernel`]: the traits of [`crate::ops`] on Linux.
//!
//! One rtnetlink socket per namespace, opened inside it on first use and kept (CONVENTIONS rule
//! 8). A cached socket is keyed by the namespace's inode as well as its name, so a namespace
//! deleted and re-created behind our back is noticed and gets a fresh socket.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ipnet::IpNet;
use nftables::schema::Nftables;

use crate::error::{Error, NetlinkError, Result};
use crate::exec::{self, Process};
use crate::link::Nl;
use crate::model::{
    BridgeSpec, CommandSpec, FdbEntry, LinkInfo, MacAddr, Neighbour, NftTable, Route, VethSpec,
    VxlanSpec,
};
use crate::names::{IfName, NsName, NsRef, SysctlKey};
use crate::netlink::NetlinkHandle;
use crate::netns::{self, NetnsDir};
use crate::nft;
use crate::ops::{AddrOps, ExecOps, FirewallOps, LinkOps, NeighOps, NetnsOps, SysctlOps};
use crate::sysctl;

/// Where the real kernel keeps things.
#[derive(Clone, Debug)]
pub struct RealKernelConfig {
    /// Directory of named namespaces (`/run/netns`).
    pub netns_dir: PathBuf,
    /// The `nft` binary.
    pub nft: PathBuf,
}

impl Default for RealKernelConfig {
    fn default() -> Self {
        Self {
            netns_dir: netns::DEFAULT_NETNS_DIR.into(),
            nft: nft::DEFAULT_NFT.into(),
        }
    }
}

type HandleCache = HashMap<NsName, (u64, Arc<NetlinkHandle>)>;

/// The Linux kernel, through rtnetlink, `/proc/sys`, `nft` and mounts under the netns directory.
#[derive(Debug)]
pub struct RealKernel {
    dir: NetnsDir,
    nft: PathBuf,
    host: Arc<NetlinkHandle>,
    /// The namespace the process started in, to move links back to it.
    host_ns: File,
    handles: Mutex<HandleCache>,
    /// The runtime that drives every netlink connection (the one `new` was called in).
    runtime: tokio::runtime::Handle,
}

impl RealKernel {
    /// A kernel with the default configuration. Call inside the long-lived tokio runtime that
    /// will drive its netlink connections, from a thread in the host namespace (any thread of
    /// ours: none ever `setns`es except our own short-lived ones).
    pub fn new() -> Result<Self> {
        Self::with_config(RealKernelConfig::default())
    }

    /// A kernel with `config`.
    pub fn with_config(config: RealKernelConfig) -> Result<Self> {
        let err = |source| Error::OpenNetlink {
            ns: NsRef::Host,
            source,
        };
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|e| err(io::Error::other(e)))?;
        Ok(Self {
            dir: NetnsDir::new(config.netns_dir),
            nft: config.nft,
            host: Arc::new(NetlinkHandle::host_on(&runtime).map_err(err)?),
            host_ns: File::open("/proc/self/ns/net").map_err(err)?,
            handles: Mutex::new(HashMap::new()),
            runtime,
        })
    }

    /// The namespace directory.
    pub fn netns_dir(&self) -> &NetnsDir {
        &self.dir
    }

    /// The path to enter for `ns`: `None` for the host, an error if a named one is missing.
    fn ns_path(&self, ns: &NsRef) -> Result<Option<PathBuf>> {
        match ns {
            NsRef::Host => Ok(None),
            NsRef::Named(name) if self.dir.exists(name) => Ok(Some(self.dir.path(name))),
            NsRef::Named(name) => Err(Error::NetnsNotFound { name: name.clone() }),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HandleCache> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The netlink handle for `ns`, opening a socket inside it on first use.
    async fn handle(&self, ns: &NsRef) -> Result<Arc<NetlinkHandle>> {
        let NsRef::Named(name) = ns else {
            return Ok(self.host.clone());
        };
        let path = self.dir.path(name);
        let Some(inode) = netns::netns_inode(&path) else {
            return Err(Error::NetnsNotFound { name: name.clone() });
        };
        if let Some((ino, h)) = self.cache().get(name)
            && *ino == inode
        {
            return Ok(h.clone());
        }
        let handle = NetlinkHandle::open_in_on(path, &self.runtime)
            .await
            .map_err(|source| Error::OpenNetlink {
                ns: ns.clone(),
                source,
            })?;
        let handle = Arc::new(handle);
        self.cache().insert(name.clone(), (inode, handle.clone()));
        Ok(handle)
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T> + Send + 'static,
        on_panic: impl FnOnce(io::Error) -> Error,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| on_panic(io::Error::other(e)))?
    }

    /// For a request made in `ns` that creates the `kind` device `name` (or its peer) in
    /// `target`: both namespaces' netlink handles, and `target` open, to stay open for the
    /// whole request (the kernel resolves IFLA_NET_NS_FD while handling it).
    async fn across<'a>(
        &self,
        ns: &'a NsRef,
        target: &'a NsRef,
        kind: &'static str,
        name: &IfName,
    ) -> Result<Across<'a>> {
        let (here, there) = (self.handle(ns).await?, self.handle(target).await?);
        let fd = self.target_fd(target).map_err(|e| Error::CreateLink {
            kind,
            name: name.clone(),
            ns: ns.clone(),
            source: NetlinkError::from_io(&format!("failed to open the {target}"), &e),
        })?;
        Ok(Across {
            here: (here, ns),
            there: (there, target),
            fd,
        })
    }

    fn target_fd(&self, target: &NsRef) -> io::Result<File> {
        match target {
            NsRef::Host => self.host_ns.try_clone(),
            NsRef::Named(name) => File::open(self.dir.path(name)),
        }
    }
}

/// What a request made in one namespace needs to create a device in another: both
/// namespaces' handles, and the target open as a descriptor.
struct Across<'a> {
    here: (Arc<NetlinkHandle>, &'a NsRef),
    there: (Arc<NetlinkHandle>, &'a NsRef),
    fd: File,
}

impl Across<'_> {
    /// Netlink in the requester's namespace, and in the target.
    fn nl(&self) -> (Nl<'_>, Nl<'_>) {
        fn nl<'b>((h, ns): &'b (Arc<NetlinkHandle>, &NsRef)) -> Nl<'b> {
            Nl { h: h.handle(), ns }
        }
        (nl(&self.here), nl(&self.there))
    }
}

macro_rules! nl {
    ($self:ident, $ns:ident) => {
        Nl {
            h: $self.handle($ns).await?.handle(),
            ns: $ns,
        }
    };
}

#[async_trait]
impl NetnsOps for RealKernel {
    async fn create_netns(&self, name: &NsName) -> Result<()> {
        let (dir, n) = (self.dir.clone(), name.clone());
        let on_panic = |source| Error::CreateNetns {
            name: name.clone(),
            source,
        };
        Self::blocking(move || dir.create(&n), on_panic).await?;
        tracing::debug!(netns = %name, "network namespace created");
        let ns = NsRef::named(name);
        let h = self.handle(&ns).await?;
        let lo = IfName::new("lo")?;
        Nl {
            h: h.handle(),
            ns: &ns,
        }
        .set_up(&lo, true)
        .await
    }

    async fn delete_netns(&self, name: &NsName) -> Result<()> {
        self.cache().remove(name);
        let (dir, n) = (self.dir.clone(), name.clone());
        let on_panic = |source| Error::DeleteNetns {
            name: name.clone(),
            source,
        };
        Self::blocking(move || dir.delete(&n), on_panic).await?;
        tracing::debug!(netns = %name, "network namespace deleted");
        Ok(())
    }

    async fn netns_exists(&self, name: &NsName) -> Result<bool> {
        Ok(self.dir.exists(name))
    }

    async fn list_netns(&self, prefix: &str) -> Result<Vec<NsName>> {
        self.dir.list(prefix)
    }

    fn netns_path(&self, name: &NsName) -> PathBuf {
        self.dir.path(name)
    }
}

#[async_trait]
impl LinkOps for RealKernel {
    async fn create_veth(&self, ns: &NsRef, spec: &VethSpec) -> Result<()> {
        let Some(peer_ns) = spec.peer_ns.as_ref().filter(|p| *p != ns) else {
            return nl!(self, ns).create_veth(spec).await;
        };
        let across = self.across(ns, peer_ns, "veth", &spec.name).await?;
        let (here, there) = across.nl();
        here.create_veth_across(spec, &there, &across.fd).await
    }

    async fn create_bridge(&self, ns: &NsRef, spec: &BridgeSpec) -> Result<()> {
        nl!(self, ns).create_bridge(spec).await
    }

    async fn create_vxlan(&self, ns: &NsRef, spec: &VxlanSpec) -> Result<()> {
        let Some(target) = spec.netns.as_ref().filter(|t| *t != ns) else {
            return nl!(self, ns).create_vxlan(spec, None).await;
        };
        let across = self.across(ns, target, "vxlan", &spec.name).await?;
        let (here, there) = across.nl();
        here.create_vxlan(spec, Some((&there, &across.fd))).await
    }

    async fn set_link_up(&self, ns: &NsRef, name: &IfName) -> Result<()> {
        nl!(self, ns).set_up(name, true).await
    }

    async fn set_link_down(&self, ns: &NsRef, name: &IfName) -> Result<()> {
        nl!(self, ns).set_up(name, false).await
    }

    async fn set_mtu(&self, ns: &NsRef, name: &IfName, mtu: u32) -> Result<()> {
        nl!(self, ns).set_mtu(name, mtu).await
    }

    async fn set_mac(&self, ns: &NsRef, name: &IfName, mac: MacAddr) -> Result<()> {
        nl!(self, ns).set_mac(name, mac).await
    }

    async fn set_master(&self, ns: &NsRef, name: &IfName, master: Option<&IfName>) -> Result<()> {
        nl!(self, ns).set_master(name, master).await
    }

    async fn set_port_isolated(&self, ns: &NsRef, name: &IfName, isolated: bool) -> Result<()> {
        nl!(self, ns).set_port_isolated(name, isolated).await
    }

    async fn move_link(
        &self,
        ns: &NsRef,
        name: &IfName,
        target: &NsRef,
        new_name: Option<&IfName>,
    ) -> Result<()> {
        let src_handle = self.handle(ns).await?;
        let src = Nl {
            h: src_handle.handle(),
            ns,
        };
        let final_name = new_name.unwrap_or(name);
        if src.get(name).await?.is_none() {
            // Already moved (a retry after a crash), or gone.
            return match self.get_link(target, final_name).await? {
                Some(_) => Ok(()),
                None => Err(Error::LinkNotFound {
                    name: name.clone(),
                    ns: ns.clone(),
                }),
            };
        }
        if ns == target {
            return match new_name {
                Some(new_name) if new_name != name => src.set_name(name, new_name).await,
                _ => Ok(()),
            };
        }
        self.ns_path(target)?;
        let err = |source| Error::MoveLink {
            name: name.clone(),
            ns: ns.clone(),
            target: target.clone(),
            source,
        };
        let fd = self.target_fd(target).map_err(err)?;
        src.move_to(name, &fd, new_name).await.map_err(err)
    }

    async fn delete_link(&self, ns: &NsRef, name: &IfName) -> Result<()> {
        nl!(self, ns).delete(name).await
    }

    async fn get_link(&self, ns: &NsRef, name: &IfName) -> Result<Option<LinkInfo>> {
        nl!(self, ns).get(name).await
    }

    async fn list_links(&self, ns: &NsRef, prefix: &str) -> Result<Vec<LinkInfo>> {
        nl!(self, ns).list(prefix).await
    }
}

#[async_trait]
impl AddrOps for RealKernel {
    async fn add_address(&self, ns: &NsRef, dev: &IfName, addr: IpNet) -> Result<()> {
        nl!(self, ns).add_address(dev, addr).await
    }

    async fn delete_address(&self, ns: &NsRef, dev: &IfName, addr: IpNet) -> Result<()> {
        nl!(self, ns).delete_address(dev, addr).await
    }

    async fn list_addresses(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<IpNet>> {
        nl!(self, ns).list_addresses(dev).await
    }

    async fn replace_route(&self, ns: &NsRef, route: &Route) -> Result<()> {
        nl!(self, ns).replace_route(route).await
    }

    async fn delete_route(&self, ns: &NsRef, route: &Route) -> Result<()> {
        nl!(self, ns).delete_route(route).await
    }

    async fn list_routes(&self, ns: &NsRef) -> Result<Vec<Route>> {
        nl!(self, ns).list_routes().await
    }
}

#[async_trait]
impl NeighOps for RealKernel {
    async fn replace_neighbour(&self, ns: &NsRef, n: &Neighbour) -> Result<()> {
        nl!(self, ns).replace_neighbour(n).await
    }

    async fn delete_neighbour(&self, ns: &NsRef, dev: &IfName, ip: IpAddr) -> Result<()> {
        nl!(self, ns).delete_neighbour(dev, ip).await
    }

    async fn list_neighbours(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<Neighbour>> {
        nl!(self, ns).list_neighbours(dev).await
    }

    async fn replace_fdb(&self, ns: &NsRef, entry: &FdbEntry) -> Result<()> {
        nl!(self, ns).replace_fdb(entry).await
    }

    async fn delete_fdb(&self, ns: &NsRef, dev: &IfName, mac: MacAddr) -> Result<()> {
        nl!(self, ns).delete_fdb(dev, mac).await
    }

    async fn list_fdb(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<FdbEntry>> {
        nl!(self, ns).list_fdb(dev).await
    }
}

#[async_trait]
impl SysctlOps for RealKernel {
    async fn set_sysctl(&self, ns: &NsRef, key: &SysctlKey, value: &str) -> Result<()> {
        let path = self.ns_path(ns)?;
        sysctl::set(path, key, value)
            .await
            .map_err(|source| Error::SetSysctl {
                key: key.to_string(),
                value: value.to_owned(),
                ns: ns.clone(),
                source,
            })
    }

    async fn get_sysctl(&self, ns: &NsRef, key: &SysctlKey) -> Result<String> {
        let path = self.ns_path(ns)?;
        sysctl::get(path, key)
            .await
            .map_err(|source| Error::GetSysctl {
                key: key.to_string(),
                ns: ns.clone(),
                source,
            })
    }
}

#[async_trait]
impl FirewallOps for RealKernel {
    async fn apply_ruleset(&self, ns: &NsRef, ruleset: &Nftables<'_>) -> Result<()> {
        let path = self.ns_path(ns)?;
        let run_err = |source| Error::RunNft {
            ns: ns.clone(),
            source,
        };
        nft::apply(path, self.nft.clone(), ruleset)
            .await
            .map_err(run_err)?
            .map_err(|source| Error::ApplyRuleset {
                ns: ns.clone(),
                source,
            })
    }

    async fn apply_script(&self, ns: &NsRef, script: &str) -> Result<()> {
        let path = self.ns_path(ns)?;
        nft::apply_script(path, self.nft.clone(), script.to_owned())
            .await
            .map_err(|source| Error::RunNft {
                ns: ns.clone(),
                source,
            })?
            .map_err(|source| Error::ApplyRuleset {
                ns: ns.clone(),
                source,
            })
    }

    async fn delete_table(&self, ns: &NsRef, table: &NftTable) -> Result<()> {
        if !self.list_tables(ns).await?.contains(table) {
            return Ok(());
        }
        let path = self.ns_path(ns)?;
        let doc = nft::delete_table_doc(table);
        let result = nft::apply(path, self.nft.clone(), &doc)
            .await
            .map_err(|source| Error::RunNft {
                ns: ns.clone(),
                source,
            })?;
        match result {
            Ok(()) => Ok(()),
            // Deleted concurrently between the listing and the delete: still success.
            Err(_) if !self.list_tables(ns).await?.contains(table) => Ok(()),
            Err(source) => Err(Error::DeleteTable {
                table: format!("{} {}", family_name(table), table.name),
                ns: ns.clone(),
                source,
            }),
        }
    }

    async fn list_tables(&self, ns: &NsRef) -> Result<Vec<NftTable>> {
        let path = self.ns_path(ns)?;
        nft::list_tables(path, self.nft.clone())
            .await
            .map_err(|source| Error::RunNft {
                ns: ns.clone(),
                source,
            })?
            .map_err(|source| Error::ListTables {
                ns: ns.clone(),
                source,
            })
    }

    async fn forget_udp_flows(&self, ns: &NsRef, to: IpAddr, via: IpAddr) -> Result<()> {
        let path = self.ns_path(ns)?;
        let mut cmd = std::process::Command::new("conntrack");
        cmd.args(["-D", "-p", "udp", "--orig-dst", &to.to_string()])
            .args(["--reply-src", &via.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let spawn_err = |source| Error::SpawnCommand {
            program: "conntrack".into(),
            ns: ns.clone(),
            source,
        };
        let child = exec::spawn_in_netns(path, cmd).await.map_err(spawn_err)?;
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(|e| spawn_err(std::io::Error::other(e)))?
            .map_err(spawn_err)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // conntrack exits 1 when no entry matched: nothing to forget is success.
        match out.status.code() {
            Some(0) => Ok(()),
            Some(1) if stderr.contains("0 flow entries") => Ok(()),
            code => Err(Error::Conntrack {
                ns: ns.clone(),
                status: code.unwrap_or(-1),
                stderr: stderr.trim().to_owned(),
            }),
        }
    }
}

fn family_name(table: &NftTable) -> String {
    serde_json::to_value(table.family)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", table.family))
}

#[async_trait]
impl ExecOps for RealKernel {
    async fn kill_all(&self, ns: &NsName) -> Result<usize> {
        let path = self.dir.path(ns);
        if !self.dir.exists(ns) {
            return Ok(0);
        }
        let name = ns.clone();
        tokio::task::spawn_blocking(move || exec::kill_all_in(&path))
            .await
            .map_err(|e| Error::KillProcesses {
                name: name.clone(),
                source: io::Error::other(e),
            })?
            .map_err(|source| Error::KillProcesses { name, source })
    }

    async fn spawn(&self, ns: &NsRef, cmd: &CommandSpec) -> Result<Process> {
        let path = self.ns_path(ns)?;
        exec::spawn_in_netns(path, exec::command(cmd))
            .await
            .map(Process::from_child)
            .map_err(|source| Error::SpawnCommand {
                program: cmd.program.to_string_lossy().into_owned(),
                ns: ns.clone(),
                source,
            })
    }
}
