//! The records the controller persists, one per network, endpoint and sandbox.
//!
//! A record carries its own lifecycle mark so that a crash between two steps of an
//! operation leaves something the next start can finish or undo: `Creating` objects are
//! rolled back, `Deleting` ones are deleted again, and an endpoint caught `Joining` or
//! `Leaving` a sandbox is detached.

use crate::{
    DriverName, EndpointId, Hostname, Labels, MacAddr, Name, NetworkId, Options, SandboxId,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Where a network exists: on this host only, or on every host of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Local,
    Global,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Local => "local",
            Scope::Global => "global",
        })
    }
}

/// How far an object got through its creation or deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Intent persisted, side effects may be partly done; rolled back at start.
    Creating,
    /// Complete and visible.
    Ready,
    /// Point of no return passed; deleted again at start.
    Deleting,
}

/// One subnet of a network, with its gateway and the optional sub-range endpoint
/// addresses are picked from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    pub subnet: IpNet,
    pub gateway: IpAddr,
    pub ip_range: Option<IpNet>,
}

/// A network as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: NetworkId,
    pub name: Name,
    pub driver: DriverName,
    pub scope: Scope,
    /// IPv4 subnets first, then IPv6 ones.
    pub subnets: Vec<SubnetConfig>,
    /// True when the subnets were picked from the predefined pools (not given by the user).
    pub auto_subnet: bool,
    pub ipv6: bool,
    pub internal: bool,
    pub attachable: bool,
    pub options: Options,
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub lifecycle: Lifecycle,
}

/// Whether, and to which sandbox, an endpoint is attached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
// Stored with bincode, which cannot read tagged enums: keep serde's default shape.
pub enum Attachment {
    Detached,
    /// Join intent persisted; the driver may have done part of it.
    Joining(SandboxId),
    Joined(SandboxId),
    /// Leave intent persisted; the driver may have undone part of the join.
    Leaving(SandboxId),
}

impl Attachment {
    /// The sandbox this endpoint is (being) attached to, if any.
    pub fn sandbox(&self) -> Option<&SandboxId> {
        match self {
            Attachment::Detached => None,
            Attachment::Joining(s) | Attachment::Joined(s) | Attachment::Leaving(s) => Some(s),
        }
    }
}

/// How a joined endpoint appears inside its sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInterface {
    /// Interface name inside the sandbox: eth0, eth1, ... in join order.
    pub name: String,
    /// Whether the sandbox's default route goes through this endpoint's network.
    pub default_route: bool,
}

/// An endpoint as stored. Addresses carry their subnet's prefix length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub id: EndpointId,
    pub name: Name,
    pub network: NetworkId,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub mac: MacAddr,
    pub aliases: Vec<Name>,
    pub service: Option<Name>,
    pub attachment: Attachment,
    /// Set from the join intent until the endpoint is detached again.
    pub interface: Option<SandboxInterface>,
    /// The sandbox this endpoint was created for (by `weft run`): deleted with it.
    pub owner: Option<SandboxId>,
    pub created_ms: u64,
    pub lifecycle: Lifecycle,
}

/// A sandbox as stored. Its endpoints are found from the endpoints' attachments,
/// never stored twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: SandboxId,
    pub name: Name,
    pub hostname: Option<Hostname>,
    pub created_ms: u64,
    pub lifecycle: Lifecycle,
}

/// A kind of persisted record: its table name and key, and the schema version of its
/// encoding (bumped with a migration when the struct changes incompatibly).
pub trait Record: Serialize + serde::de::DeserializeOwned {
    /// The object kind, e.g. "network"; also the store's key prefix.
    const KIND: &'static str;
    /// The schema version written into every encoded record.
    const SCHEMA: u16;
    /// The record's unique key within its kind.
    fn key(&self) -> String;
}

impl Record for NetworkRecord {
    const KIND: &'static str = "network";
    const SCHEMA: u16 = 1;
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl Record for EndpointRecord {
    const KIND: &'static str = "endpoint";
    const SCHEMA: u16 = 1;
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// A service on local (bridge) networks, kept by its host (global ones are the manager's).
impl Record for crate::ServiceRecord {
    const KIND: &'static str = "service";
    const SCHEMA: u16 = 1;
    fn key(&self) -> String {
        self.name.to_string()
    }
}

impl Record for SandboxRecord {
    const KIND: &'static str = "sandbox";
    const SCHEMA: u16 = 1;
    fn key(&self) -> String {
        self.id.to_string()
    }
}
