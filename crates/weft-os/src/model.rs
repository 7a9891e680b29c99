//! Plain values describing kernel objects: what to create (specs) and what was read back
//! (infos). Shared by the real kernel and the fake so that both speak the same language.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use nftables::types::NfFamily;
pub use weft_types::MacAddr;

use crate::error::{Error, Result};
use crate::names::{IfName, NsRef, Vni};

/// IANA-assigned VXLAN UDP port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;

/// A veth pair. Both ends are created in the namespace given to `create_veth`, unless
/// `peer_ns` names another one: then the peer is created directly there, under its final
/// name, in the same request (no move, so no wait for the kernel's RCU grace periods).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethSpec {
    /// Name of the first end.
    pub name: IfName,
    /// Name of the peer end (in `peer_ns` when set).
    pub peer: IfName,
    /// MTU of both ends; the kernel default when `None`.
    pub mtu: Option<u32>,
    /// MAC of the first end; random when `None`.
    pub mac: Option<MacAddr>,
    /// MAC of the peer end; random when `None`.
    pub peer_mac: Option<MacAddr>,
    /// Namespace of the peer end; the first end's when `None`.
    pub peer_ns: Option<NsRef>,
}

impl VethSpec {
    /// A pair with kernel defaults for MTU and MACs, both ends in the same namespace.
    pub fn new(name: IfName, peer: IfName) -> Self {
        Self {
            name,
            peer,
            mtu: None,
            mac: None,
            peer_mac: None,
            peer_ns: None,
        }
    }

    /// The same pair with its peer created in `ns`.
    pub fn peer_in(mut self, ns: NsRef) -> Self {
        self.peer_ns = Some(ns);
        self
    }
}

/// A Linux bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Device name.
    pub name: IfName,
    /// MTU; the kernel default when `None`.
    pub mtu: Option<u32>,
    /// MAC; random when `None`.
    pub mac: Option<MacAddr>,
}

impl BridgeSpec {
    /// A bridge with kernel defaults.
    pub fn new(name: IfName) -> Self {
        Self {
            name,
            mtu: None,
            mac: None,
        }
    }
}

/// A VXLAN device as libnetwork's overlay driver makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Device name.
    pub name: IfName,
    /// Network identifier.
    pub vni: Vni,
    /// Destination UDP port.
    pub port: u16,
    /// Local tunnel endpoint address.
    pub local: Option<Ipv4Addr>,
    /// Underlay device, looked up in the namespace the vxlan is created in.
    pub underlay: Option<IfName>,
    /// Learn remote MACs from received packets (off: the control plane programs the FDB).
    pub learning: bool,
    /// Answer ARP from the neighbour table (proxy ARP on the vxlan device).
    pub proxy: bool,
    /// MTU; the kernel default (underlay MTU minus 50) when `None`.
    pub mtu: Option<u32>,
    /// MAC; random when `None`.
    pub mac: Option<MacAddr>,
    /// The namespace the device is made in, when not the one it is asked for in. Its UDP
    /// socket stays in the one it is asked for in (the underlay's): the same as making it
    /// there and moving it, without the move, which waits for an RCU grace period (19 ms
    /// on this VM's kernel).
    pub netns: Option<NsRef>,
}

impl VxlanSpec {
    /// Overlay defaults: port 4789, learning off, proxy on.
    pub fn new(name: IfName, vni: Vni) -> Self {
        Self {
            name,
            vni,
            port: VXLAN_PORT,
            local: None,
            underlay: None,
            learning: false,
            proxy: true,
            mtu: None,
            mac: None,
            netns: None,
        }
    }
}

/// VXLAN attributes read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanInfo {
    /// Network identifier.
    pub vni: u32,
    /// Destination UDP port.
    pub port: u16,
    /// Local tunnel endpoint address.
    pub local: Option<Ipv4Addr>,
    /// Underlay device index in the namespace the vxlan was created in.
    pub underlay_index: Option<u32>,
    /// Whether MAC learning is on.
    pub learning: bool,
    /// Whether proxy ARP is on.
    pub proxy: bool,
}

/// The kind of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// One end of a veth pair.
    Veth,
    /// A Linux bridge.
    Bridge,
    /// A VXLAN device.
    Vxlan(VxlanInfo),
    /// The loopback device.
    Loopback,
    /// Anything else, with the kernel's kind string (empty for physical devices).
    Other(String),
}

impl LinkKind {
    /// Short name as `ip -d link` prints it.
    pub fn name(&self) -> &str {
        match self {
            Self::Veth => "veth",
            Self::Bridge => "bridge",
            Self::Vxlan(_) => "vxlan",
            Self::Loopback => "loopback",
            Self::Other(s) => s,
        }
    }
}

/// A link as read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Device name.
    pub name: IfName,
    /// Interface index in its namespace.
    pub index: u32,
    /// Kind and kind-specific attributes.
    pub kind: LinkKind,
    /// MTU.
    pub mtu: u32,
    /// Hardware address, when the device has an Ethernet one.
    pub mac: Option<MacAddr>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Name of the controller (bridge) it is enslaved to.
    pub master: Option<IfName>,
}

/// A route in the main table. The destination `0.0.0.0/0` (or `::/0`) is the default route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination prefix.
    pub destination: IpNet,
    /// Next hop; `None` for a directly connected prefix.
    pub gateway: Option<IpAddr>,
    /// Output device; `None` lets the kernel resolve it from the gateway.
    pub dev: Option<IfName>,
}

impl Route {
    /// The IPv4 or IPv6 default route via `gateway`.
    pub fn default_via(gateway: IpAddr) -> Self {
        let destination = match gateway {
            IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
            IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
        };
        Self {
            destination,
            gateway: Some(gateway),
            dev: None,
        }
    }

    /// A route to `destination` out of `dev` without a gateway (scope link).
    pub fn via_dev(destination: IpNet, dev: IfName) -> Self {
        Self {
            destination: destination.trunc(),
            gateway: None,
            dev: Some(dev),
        }
    }

    /// Checks that the route is complete and its families agree.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason| Error::InvalidRoute {
            route: self.to_string(),
            reason,
        };
        if self.gateway.is_none() && self.dev.is_none() {
            return Err(bad("needs a gateway or a device"));
        }
        if let Some(gw) = self.gateway
            && gw.is_ipv4() != matches!(self.destination, IpNet::V4(_))
        {
            return Err(bad("gateway and destination families differ"));
        }
        Ok(())
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        Ok(())
    }
}

/// A permanent neighbour (ARP/ND) entry: `ip` resolves to `mac` on `dev`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// Device holding the entry.
    pub dev: IfName,
    /// Protocol address.
    pub ip: IpAddr,
    /// Hardware address.
    pub mac: MacAddr,
}

/// A bridge FDB entry on a vxlan device: frames for `mac` are tunnelled to the VTEP `dst`
/// (`bridge fdb replace MAC dev DEV dst DST self permanent`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FdbEntry {
    /// The vxlan device.
    pub dev: IfName,
    /// Destination MAC.
    pub mac: MacAddr,
    /// Remote tunnel endpoint.
    pub dst: IpAddr,
}

/// An nftables table, identified by family and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NftTable {
    /// Address family (`ip`, `ip6`, `inet`, ...).
    pub family: NfFamily,
    /// Table name.
    pub name: String,
}

/// Where a spawned command's standard stream goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StdioMode {
    /// Shared with the caller.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe readable through the returned child.
    Piped,
}

/// A command to run inside a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program, resolved through `PATH` when relative.
    pub program: OsString,
    /// Arguments after the program.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Standard input.
    pub stdin: StdioMode,
    /// Standard output.
    pub stdout: StdioMode,
    /// Standard error.
    pub stderr: StdioMode,
    /// Working directory; the agent's when `None`.
    pub cwd: Option<std::path::PathBuf>,
    /// In a process group of its own, so that signals meant for the agent's group (a
    /// terminal's Ctrl-C) do not reach it.
    pub own_process_group: bool,
}

impl CommandSpec {
    /// `program args...` with inherited stdio.
    pub fn new<P, I, A>(program: P, args: I) -> Self
    where
        P: Into<OsString>,
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            stdin: StdioMode::Inherit,
            stdout: StdioMode::Inherit,
            stderr: StdioMode::Inherit,
            cwd: None,
            own_process_group: false,
        }
    }

    /// Sets all three standard streams to `mode`.
    pub fn stdio(mut self, mode: StdioMode) -> Self {
        self.stdin = mode;
        self.stdout = mode;
        self.stderr = mode;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_matches_gateway_family() {
        let r = Route::default_via("198.18.0.1".parse().unwrap());
        assert_eq!(r.destination.to_string(), "0.0.0.0/0");
        assert!(r.validate().is_ok());
        let r6 = Route::default_via("2001:db8::1".parse().unwrap());
        assert_eq!(r6.destination.to_string(), "::/0");
    }

    #[test]
    fn incomplete_or_mixed_routes_are_rejected() {
        let mut r = Route::default_via("198.18.0.1".parse().unwrap());
        r.gateway = None;
        assert!(r.validate().is_err());
        r.gateway = Some("2001:db8::1".parse().unwrap());
        assert!(r.validate().is_err());
    }

    #[test]
    fn via_dev_truncates_host_bits() {
        let r = Route::via_dev(
            "198.18.5.7/24".parse().unwrap(),
            IfName::new("eth0").unwrap(),
        );
        assert_eq!(r.to_string(), "198.18.5.0/24 dev eth0");
    }
}
