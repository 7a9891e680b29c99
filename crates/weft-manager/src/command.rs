//! The allocator's inputs ([`Command`]), outputs ([`Outcome`]) and configuration.
//!
//! Commands carry every choice the allocator cannot make deterministically itself (ids,
//! names): the same commands in the same order always give the same state and outcomes.
//! They are stored as they are, so their shape is part of the store format; the enums keep
//! serde's default (externally tagged) representation, which bincode can read.

use crate::{Vni, VniRange};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use weft_ipam::PredefinedPool;
use weft_types::api::SubnetRequest;
use weft_types::{
    DriverName, Labels, Name, NetworkId, Options, ServiceMode, ServiceRecord, SubnetConfig,
};

/// One request to the cluster allocator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates a global network: unique id and name, subnets (automatic when none is
    /// given), one VNI per IPv4 subnet.
    CreateNetwork {
        /// The new network's id, chosen by the caller.
        id: NetworkId,
        /// Its cluster-unique name.
        name: Name,
        /// The subnets asked for; empty means one automatic IPv4 subnet.
        subnets: Vec<SubnetRequest>,
        /// The VNI of the first IPv4 subnet, when the user gives one; the others are
        /// allocated.
        vni: Option<Vni>,
        /// What the allocator does not choose, kept with the definition.
        meta: NetworkMeta,
    },
    /// Deletes a network and releases its subnets, VNIs, addresses and VIPs.
    DeleteNetwork {
        /// The network.
        id: NetworkId,
    },
    /// Gives an endpoint its addresses on a network (one per address family of the
    /// network); asking again for the same endpoint gives the same addresses.
    AllocateAddress {
        /// The network.
        network: NetworkId,
        /// The endpoint's key, unique within the network (e.g. its endpoint id).
        endpoint: String,
        /// A specific address, in one of the network's subnets.
        ip: Option<IpAddr>,
    },
    /// Releases an endpoint's addresses.
    ReleaseAddress {
        /// The network.
        network: NetworkId,
        /// The endpoint's key.
        endpoint: String,
    },
    /// Gives a service its virtual IPs on a network; idempotent per service.
    AllocateVip {
        /// The network.
        network: NetworkId,
        /// The service.
        service: Name,
    },
    /// Releases a service's virtual IPs.
    ReleaseVip {
        /// The network.
        network: NetworkId,
        /// The service.
        service: Name,
    },
    /// Defines a service on existing networks, with one virtual IP per network in `vip`
    /// mode; defining it again with the same mode and networks gives the same record.
    CreateService {
        /// Its cluster-unique name.
        name: Name,
        /// How its name is answered.
        mode: ServiceMode,
        /// At least one network, each once, in the order the record lists them.
        networks: Vec<NetworkId>,
    },
    /// Forgets a service and releases its virtual IPs.
    DeleteService {
        /// The service.
        name: Name,
    },
}

/// What a command allocated or released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The network was created with this definition.
    NetworkCreated(NetworkDef),
    /// The network was deleted; this was its definition.
    NetworkDeleted(NetworkDef),
    /// The endpoint holds these addresses.
    AddressAllocated(Grant),
    /// The endpoint's addresses were released.
    AddressReleased(Grant),
    /// The service holds these virtual IPs.
    VipAllocated(Grant),
    /// The service's virtual IPs were released.
    VipReleased(Grant),
    /// The service is defined (now, or already was with the same mode and networks).
    ServiceCreated(ServiceRecord),
    /// The service was deleted; this was its definition.
    ServiceDeleted(ServiceRecord),
}

/// A global network as every node must know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDef {
    /// The network's id.
    pub id: NetworkId,
    /// Its cluster-unique name.
    pub name: Name,
    /// IPv4 subnets first, then IPv6 ones, each in the order asked for.
    pub subnets: Vec<GlobalSubnet>,
    /// True when the subnets were picked from the default pools.
    pub auto_subnet: bool,
    /// Driver, flags, options and labels, as asked for.
    pub meta: NetworkMeta,
}

/// The parts of a global network's definition the allocator carries but does not choose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkMeta {
    /// The driver realising it on every node (`overlay`).
    pub driver: DriverName,
    /// Whether it has an IPv6 subnet.
    pub ipv6: bool,
    /// Whether it is cut off from the outside.
    pub internal: bool,
    /// Whether standalone sandboxes may join it.
    pub attachable: bool,
    /// Driver options, as given.
    pub options: Options,
    /// Labels, as given.
    pub labels: Labels,
    /// Creation time, milliseconds since the epoch (chosen by the caller, like the id).
    pub created_ms: u64,
}

/// One subnet of a global network and its VXLAN segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalSubnet {
    /// Subnet, gateway (reserved) and optional range.
    pub config: SubnetConfig,
    /// The VNI of an IPv4 subnet; IPv6 subnets have none (reference §3.1).
    pub vni: Option<Vni>,
}

/// Addresses held by an endpoint or a service on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The network.
    pub network: NetworkId,
    /// One address per family of the network, IPv4 first, with its subnet's prefix length.
    pub addresses: Vec<IpNet>,
}

/// Where the allocator picks automatic subnets and VNIs from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorConfig {
    /// The default address pools of global networks, searched in order.
    pub pools: Vec<PredefinedPool>,
    /// The automatic VNI range.
    pub vnis: VniRange,
}

impl Default for AllocatorConfig {
    /// 10.0.0.0/8 in /24s and VNIs from 4096, as Docker swarm.
    fn default() -> Self {
        AllocatorConfig {
            pools: vec![PredefinedPool {
                base: IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8)),
                size: 24,
            }],
            vnis: VniRange::default(),
        }
    }
}
