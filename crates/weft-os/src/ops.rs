//! The traits the layers above program the kernel through. [`crate::RealKernel`] implements
//! them on Linux; [`crate::FakeKernel`] implements them in memory for tests without root. Both
//! follow the same rules: every create/add/replace is idempotent, every delete of something
//! absent succeeds, and the namespace is always explicit ([`NsRef`]).
//!
//! Drivers take an `Arc<dyn Kernel>` (or a narrower trait) in their constructor.

use std::net::IpAddr;
use std::path::PathBuf;

use async_trait::async_trait;
use ipnet::IpNet;
use nftables::schema::Nftables;

use crate::error::Result;
use crate::exec::Process;
use crate::model::{
    BridgeSpec, CommandSpec, FdbEntry, LinkInfo, MacAddr, Neighbour, NftTable, Route, VethSpec,
    VxlanSpec,
};
use crate::names::{IfName, NsName, NsRef, SysctlKey};

/// Named network namespaces.
#[async_trait]
pub trait NetnsOps: Send + Sync {
    /// Creates the namespace with `lo` up; an existing one is success.
    async fn create_netns(&self, name: &NsName) -> Result<()>;
    /// Deletes the namespace (and with it every link inside); an absent one is success.
    async fn delete_netns(&self, name: &NsName) -> Result<()>;
    /// Whether the namespace exists.
    async fn netns_exists(&self, name: &NsName) -> Result<bool>;
    /// Namespaces whose name starts with `prefix`, sorted.
    async fn list_netns(&self, prefix: &str) -> Result<Vec<NsName>>;
    /// The file a process can `setns` to (e.g. to hand to a container runtime).
    fn netns_path(&self, name: &NsName) -> PathBuf;
}

/// Network devices.
#[async_trait]
pub trait LinkOps: Send + Sync {
    /// Creates a veth pair: `spec.name` in `ns`, `spec.peer` in `spec.peer_ns` (`ns` when
    /// `None`), both in one request. An existing veth called `spec.name` is adopted and its
    /// MTU/MAC corrected. With a `peer_ns` other than `ns`, it is adopted only if its peer is
    /// the veth `spec.peer` in `peer_ns` (whose MTU/MAC are corrected too); one whose peer is
    /// elsewhere (left by a crash, or by a create-then-move) is deleted and re-created.
    async fn create_veth(&self, ns: &NsRef, spec: &VethSpec) -> Result<()>;
    /// Creates a bridge (down); an existing bridge is adopted and its MTU/MAC corrected.
    async fn create_bridge(&self, ns: &NsRef, spec: &BridgeSpec) -> Result<()>;
    /// Creates a vxlan device (down); an existing one with the same VNI, port, local address,
    /// underlay, learning and proxy settings is adopted, one that differs is re-created.
    async fn create_vxlan(&self, ns: &NsRef, spec: &VxlanSpec) -> Result<()>;
    /// Sets the link administratively up.
    async fn set_link_up(&self, ns: &NsRef, name: &IfName) -> Result<()>;
    /// Sets the link administratively down.
    async fn set_link_down(&self, ns: &NsRef, name: &IfName) -> Result<()>;
    /// Sets the MTU.
    async fn set_mtu(&self, ns: &NsRef, name: &IfName, mtu: u32) -> Result<()>;
    /// Sets the hardware address.
    async fn set_mac(&self, ns: &NsRef, name: &IfName, mac: MacAddr) -> Result<()>;
    /// Enslaves the link to the bridge `master`, or releases it when `None`.
    async fn set_master(&self, ns: &NsRef, name: &IfName, master: Option<&IfName>) -> Result<()>;
    /// Marks a bridge port isolated (or not): an isolated port exchanges frames with the
    /// bridge itself and with ports that are not isolated, never with another isolated one.
    async fn set_port_isolated(&self, ns: &NsRef, name: &IfName, isolated: bool) -> Result<()>;
    /// Moves the link from `ns` into `target`, renamed to `new_name` when given (in the same
    /// step). It arrives down. Success if it is already in `target` under the final name.
    async fn move_link(
        &self,
        ns: &NsRef,
        name: &IfName,
        target: &NsRef,
        new_name: Option<&IfName>,
    ) -> Result<()>;
    /// Deletes the link (a veth takes its peer along); an absent one is success.
    async fn delete_link(&self, ns: &NsRef, name: &IfName) -> Result<()>;
    /// The link called `name`, if any.
    async fn get_link(&self, ns: &NsRef, name: &IfName) -> Result<Option<LinkInfo>>;
    /// Links whose name starts with `prefix`, sorted by name.
    async fn list_links(&self, ns: &NsRef, prefix: &str) -> Result<Vec<LinkInfo>>;
}

/// Addresses and routes.
#[async_trait]
pub trait AddrOps: Send + Sync {
    /// Adds an address to `dev`; one already there is success.
    async fn add_address(&self, ns: &NsRef, dev: &IfName, addr: IpNet) -> Result<()>;
    /// Removes an address from `dev`; an absent one is success.
    async fn delete_address(&self, ns: &NsRef, dev: &IfName, addr: IpNet) -> Result<()>;
    /// Global-scope addresses of `dev`.
    async fn list_addresses(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<IpNet>>;
    /// Adds or replaces a route in the main table.
    async fn replace_route(&self, ns: &NsRef, route: &Route) -> Result<()>;
    /// Deletes a route; an absent one is success.
    async fn delete_route(&self, ns: &NsRef, route: &Route) -> Result<()>;
    /// Main-table routes not made by the kernel. The real kernel fills in the device of
    /// gateway routes; the fake reports routes as they were given.
    async fn list_routes(&self, ns: &NsRef) -> Result<Vec<Route>>;
}

/// Neighbour (ARP/ND) and bridge FDB entries.
#[async_trait]
pub trait NeighOps: Send + Sync {
    /// Adds or replaces a permanent neighbour entry.
    async fn replace_neighbour(&self, ns: &NsRef, n: &Neighbour) -> Result<()>;
    /// Deletes the neighbour entry for `ip` on `dev`; an absent one is success.
    async fn delete_neighbour(&self, ns: &NsRef, dev: &IfName, ip: IpAddr) -> Result<()>;
    /// Permanent neighbour entries on `dev`.
    async fn list_neighbours(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<Neighbour>>;
    /// Adds or replaces the FDB entry `mac -> dst` (self, permanent), also over a learned one.
    async fn replace_fdb(&self, ns: &NsRef, entry: &FdbEntry) -> Result<()>;
    /// Deletes the FDB entries for `mac` on `dev`; none is success.
    async fn delete_fdb(&self, ns: &NsRef, dev: &IfName, mac: MacAddr) -> Result<()>;
    /// FDB entries of `dev` that point at a remote tunnel endpoint.
    async fn list_fdb(&self, ns: &NsRef, dev: &IfName) -> Result<Vec<FdbEntry>>;
}

/// sysctls of a namespace (`net.*` keys are per namespace).
#[async_trait]
pub trait SysctlOps: Send + Sync {
    /// Writes `value` to `key`.
    async fn set_sysctl(&self, ns: &NsRef, key: &SysctlKey, value: &str) -> Result<()>;
    /// Reads `key`, without the trailing newline.
    async fn get_sysctl(&self, ns: &NsRef, key: &SysctlKey) -> Result<String>;
}

/// nftables rulesets.
#[async_trait]
pub trait FirewallOps: Send + Sync {
    /// Applies the document in one transaction: all of it or nothing.
    async fn apply_ruleset(&self, ns: &NsRef, ruleset: &Nftables<'_>) -> Result<()>;
    /// Applies a script in nft's own syntax (what `nft -f` reads) in one transaction: all
    /// of it or nothing. For what the JSON form cannot say, or says slower.
    async fn apply_script(&self, ns: &NsRef, script: &str) -> Result<()>;
    /// Deletes a table and everything in it; an absent one is success.
    async fn delete_table(&self, ns: &NsRef, table: &NftTable) -> Result<()>;
    /// Tables in the namespace.
    async fn list_tables(&self, ns: &NsRef) -> Result<Vec<NftTable>>;
    /// Deletes the conntrack entries of UDP flows to `to` that were translated to `via`
    /// (a backend a virtual IP no longer leads to), so that their next datagram is
    /// balanced again; none is success.
    async fn forget_udp_flows(&self, ns: &NsRef, to: IpAddr, via: IpAddr) -> Result<()>;
}

/// Processes inside a namespace.
#[async_trait]
pub trait ExecOps: Send + Sync {
    /// Starts `cmd` inside `ns`.
    async fn spawn(&self, ns: &NsRef, cmd: &CommandSpec) -> Result<Process>;

    /// Kills (SIGKILL) every process whose network namespace is `ns` and waits, for a
    /// bounded time, until they are gone; returns how many were killed. Absent = 0.
    async fn kill_all(&self, ns: &NsName) -> Result<usize>;
}

/// Everything the drivers and the controller need from the kernel.
pub trait Kernel:
    NetnsOps + LinkOps + AddrOps + NeighOps + SysctlOps + FirewallOps + ExecOps + std::fmt::Debug
{
}

impl<T> Kernel for T where
    T: NetnsOps
        + LinkOps
        + AddrOps
        + NeighOps
        + SysctlOps
        + FirewallOps
        + ExecOps
        + std::fmt::Debug
{
}

/// What weft owns in the kernel, found by name prefix (for reconciliation at start).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Namespaces with the prefix.
    pub namespaces: Vec<NsName>,
    /// Links with the prefix, per namespace scanned (host first).
    pub links: Vec<(NsRef, Vec<LinkInfo>)>,
}

impl Inventory {
    /// Whether nothing with the prefix was found.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.links.iter().all(|(_, l)| l.is_empty())
    }
}

/// Lists namespaces named `ns_prefix*`, and links named `link_prefix*` in the host namespace
/// and in each of those namespaces.
pub async fn inventory(
    kernel: &dyn Kernel,
    ns_prefix: &str,
    link_prefix: &str,
) -> Result<Inventory> {
    let namespaces = kernel.list_netns(ns_prefix).await?;
    let mut links = vec![(
        NsRef::Host,
        kernel.list_links(&NsRef::Host, link_prefix).await?,
    )];
    for ns in &namespaces {
        let ns = NsRef::named(ns);
        let found = kernel.list_links(&ns, link_prefix).await?;
        links.push((ns, found));
    }
    Ok(Inventory { namespaces, links })
}
