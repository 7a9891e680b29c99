//! Services: a name that stands for a set of backends (endpoints created with `--service`)
//! on one or more networks. In `vip` mode the name resolves to one virtual IP per network
//! and connections to it are spread over the active backends; in `dnsrr` mode the name
//! resolves to the backends themselves.

use crate::{Name, NetworkId};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::str::FromStr;

/// How a service's name is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    /// One virtual IP per network, load-balanced over the backends (Docker's default).
    #[default]
    Vip,
    /// DNS round robin: every active backend's address.
    Dnsrr,
}

impl FromStr for ServiceMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vip" => Ok(ServiceMode::Vip),
            "dnsrr" => Ok(ServiceMode::Dnsrr),
            other => Err(crate::Error::invalid(format!(
                "unknown service mode {other:?}: use vip or dnsrr"
            ))),
        }
    }
}

impl std::fmt::Display for ServiceMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceMode::Vip => "vip",
            ServiceMode::Dnsrr => "dnsrr",
        })
    }
}

/// A service on one of its networks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceNetwork {
    pub network: NetworkId,
    /// The virtual IP on this network (`vip` mode), from the network's subnet.
    pub vip: Option<IpAddr>,
}

/// A service's definition, as the manager allocates it and every node learns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The cluster-unique name.
    pub name: Name,
    pub mode: ServiceMode,
    /// At least one network, each at most once.
    pub networks: Vec<ServiceNetwork>,
}

impl ServiceRecord {
    /// The virtual IP on `network`, if the service has one there.
    pub fn vip_on(&self, network: &NetworkId) -> Option<IpAddr> {
        self.networks
            .iter()
            .find(|n| &n.network == network)
            .and_then(|n| n.vip)
    }

    /// Whether the service is defined on `network`.
    pub fn is_on(&self, network: &NetworkId) -> bool {
        self.networks.iter().any(|n| &n.network == network)
    }
}
