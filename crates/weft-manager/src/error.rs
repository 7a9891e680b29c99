//! The errors of the allocator ([`AllocError`], a refused command) and of its persistence
//! ([`ManagerError`]), and their mapping to the errors users see.

use crate::Vni;
use ipnet::IpNet;
use std::net::IpAddr;
use weft_ipam::IpamError;
use weft_store::StoreError;
use weft_types::{ErrorKind, Name, NetworkId};

/// Why the allocator refused a command. A refused command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The allocator configuration is unusable.
    #[error("invalid allocator configuration: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },
    /// A network with this id already exists.
    #[error("network {id} already exists")]
    NetworkExists {
        /// The id asked for.
        id: NetworkId,
    },
    /// Another network already has this name.
    #[error("network name {name} is already used by network {id}")]
    NameTaken {
        /// The name asked for.
        name: Name,
        /// The network holding it.
        id: NetworkId,
    },
    /// No network has this id.
    #[error("network {id} not found")]
    UnknownNetwork {
        /// The id given.
        id: NetworkId,
    },
    /// The endpoint has no address on the network.
    #[error("endpoint {endpoint:?} has no address on network {network}")]
    UnknownEndpoint {
        /// The network.
        network: NetworkId,
        /// The endpoint key given.
        endpoint: String,
    },
    /// The service has no virtual IP on the network.
    #[error("service {service} has no virtual ip on network {network}")]
    UnknownVip {
        /// The network.
        network: NetworkId,
        /// The service given.
        service: Name,
    },
    /// An endpoint key must not be empty.
    #[error("endpoint key must not be empty")]
    EmptyEndpoint,
    /// The endpoint already holds other addresses than the one asked for.
    #[error(
        "endpoint {endpoint:?} already has addresses {held:?} on network {network}, not {asked}"
    )]
    EndpointHasOtherAddress {
        /// The network.
        network: NetworkId,
        /// The endpoint key.
        endpoint: String,
        /// The addresses it holds.
        held: Vec<IpNet>,
        /// The address asked for.
        asked: IpAddr,
    },
    /// The address asked for lies in none of the network's subnets.
    #[error("address {ip} is in none of the subnets of network {network}")]
    AddressNotInNetwork {
        /// The network.
        network: NetworkId,
        /// The address asked for.
        ip: IpAddr,
    },
    /// A subnet request is malformed (gateway or range without subnet, gateway outside it).
    #[error("invalid subnet request: {reason}")]
    InvalidSubnet {
        /// What is wrong with it.
        reason: String,
    },
    /// The VNI asked for is used by another network.
    #[error("vni {vni} is already used by another network")]
    VniTaken {
        /// The VNI asked for.
        vni: Vni,
    },
    /// A VNI was given for a network with no IPv4 subnet to carry it.
    #[error("vni {vni} given for a network without an ipv4 subnet")]
    VniWithoutIpv4 {
        /// The VNI given.
        vni: Vni,
    },
    /// Every VNI of the automatic range is in use.
    #[error("no free vni between {first} and {last}; delete networks or give a vni")]
    VnisExhausted {
        /// First VNI of the range.
        first: Vni,
        /// Last VNI of the range.
        last: Vni,
    },
    /// Another service already has this name, with another mode or other networks.
    #[error("service {name} already exists")]
    ServiceExists {
        /// The name asked for.
        name: Name,
    },
    /// No service has this name.
    #[error("service {name} not found")]
    UnknownService {
        /// The name given.
        name: Name,
    },
    /// A service was asked for without a network.
    #[error("service {name} needs at least one network")]
    ServiceWithoutNetwork {
        /// The service.
        name: Name,
    },
    /// A service was asked for with the same network twice.
    #[error("network {network} is given twice for service {name}")]
    ServiceNetworkTwice {
        /// The service.
        name: Name,
        /// The network given twice.
        network: NetworkId,
    },
    /// A network cannot be deleted while services are defined on it: their virtual IPs
    /// come from its subnets and nodes still resolve their names there.
    #[error(
        "network {network} has service(s) {}: remove them first",
        join(services)
    )]
    NetworkHasServices {
        /// The network's name.
        network: Name,
        /// The services defined on it, sorted.
        services: Vec<Name>,
    },
    /// A service's virtual IP is released by deleting the service, never on its own:
    /// the service's definition would name an address handed out again.
    #[error(
        "the virtual ip of service {service} on network {network} is released by deleting the service"
    )]
    VipOfService {
        /// The network.
        network: NetworkId,
        /// The service.
        service: Name,
    },
    /// IPAM refused while doing `op`.
    #[error("failed to {op}: {source}")]
    Ipam {
        /// What was being done, e.g. "allocate a subnet".
        op: &'static str,
        /// The IPAM error.
        source: IpamError,
    },
}

impl AllocError {
    /// The user-visible class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AllocError::NetworkExists { .. }
            | AllocError::NameTaken { .. }
            | AllocError::VniTaken { .. }
            | AllocError::EndpointHasOtherAddress { .. }
            | AllocError::ServiceExists { .. } => ErrorKind::AlreadyExists,
            AllocError::UnknownNetwork { .. }
            | AllocError::UnknownEndpoint { .. }
            | AllocError::UnknownVip { .. }
            | AllocError::UnknownService { .. } => ErrorKind::NotFound,
            AllocError::NetworkHasServices { .. } | AllocError::VipOfService { .. } => {
                ErrorKind::Forbidden
            }
            AllocError::VnisExhausted { .. } => ErrorKind::Exhausted,
            AllocError::Ipam { source, .. } => source.kind(),
            AllocError::InvalidConfig { .. }
            | AllocError::EmptyEndpoint
            | AllocError::AddressNotInNetwork { .. }
            | AllocError::InvalidSubnet { .. }
            | AllocError::VniWithoutIpv4 { .. }
            | AllocError::ServiceWithoutNetwork { .. }
            | AllocError::ServiceNetworkTwice { .. } => ErrorKind::InvalidParameter,
        }
    }

    /// Wraps an IPAM error with the operation it failed.
    pub(crate) fn ipam(op: &'static str) -> impl FnOnce(IpamError) -> AllocError {
        move |source| AllocError::Ipam { op, source }
    }
}

/// `names` separated by commas, for messages.
fn join(names: &[Name]) -> String {
    let names: Vec<&str> = names.iter().map(Name::as_str).collect();
    names.join(", ")
}

impl From<AllocError> for weft_types::Error {
    fn from(e: AllocError) -> Self {
        weft_types::Error::new(e.kind(), e.to_string())
    }
}

/// What can go wrong running the persisted allocator.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The allocator refused the command; nothing was stored.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The store failed; the command was not applied.
    #[error("allocator store: {0}")]
    Store(#[from] StoreError),
    /// A stored command no longer applies: the log or the code changed under it.
    #[error("failed to replay allocator command {seq}: {source}")]
    Replay {
        /// Sequence number of the command.
        seq: u64,
        /// Why it was refused.
        source: AllocError,
    },
    /// The stored commands are not numbered 1, 2, 3, … in order.
    #[error("allocator log is out of order: expected command {expected}, found {found}")]
    LogOrder {
        /// The sequence number expected.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// The allocator was opened with another configuration than the one it was created with.
    #[error(
        "allocator configuration differs from the one stored at cluster creation; the default address pools and vni range cannot change"
    )]
    ConfigChanged,
}

impl ManagerError {
    /// The user-visible class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ManagerError::Alloc(e) => e.kind(),
            ManagerError::ConfigChanged => ErrorKind::InvalidParameter,
            ManagerError::Store(_)
            | ManagerError::Replay { .. }
            | ManagerError::LogOrder { .. } => ErrorKind::Internal,
        }
    }
}

impl From<ManagerError> for weft_types::Error {
    fn from(e: ManagerError) -> Self {
        weft_types::Error::new(e.kind(), e.to_string())
    }
}
