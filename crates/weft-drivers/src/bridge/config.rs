//! A bridge network's configuration, parsed once from its record: the bridge name, the
//! subnets with their gateways, whether it is internal, and the MTU. Everything the kernel
//! steps and the ruleset need, so that they never look at raw options.

use ipnet::IpNet;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use weft_os::IfName;
use weft_types::{NetworkId, NetworkRecord, SubnetConfig};

use super::names;

/// The MTU of a network without the `mtu` option, as Docker's bridge driver uses.
pub const DEFAULT_MTU: u32 = 1500;
/// The MTUs the `mtu` option accepts (68 is IPv4's minimum, RFC 791).
pub const MTU_RANGE: RangeInclusive<u32> = 68..=65535;
/// The option setting the MTU of the bridge and of every veth on it.
pub const MTU_OPTION: &str = "mtu";

/// Why a bridge network's definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `--opt encrypted` asks for something only the overlay driver does.
    #[error("the bridge driver does not support encrypted networks (use the overlay driver)")]
    Encrypted,
    /// An option the bridge driver does not know.
    #[error("unknown option {key:?} for the bridge driver (supported: mtu)")]
    UnknownOption { key: String },
    /// `mtu` is not an integer in range.
    #[error("invalid mtu {value:?}: expected an integer from 68 to 65535")]
    InvalidMtu { value: String },
    /// A gateway outside its own subnet could not be reached from the bridge.
    #[error("gateway {gateway} is not inside subnet {subnet}")]
    GatewayOutsideSubnet { gateway: IpAddr, subnet: IpNet },
    /// The derived bridge name was refused (a malformed network id).
    #[error("cannot name the bridge of network {id}: {message}")]
    Name { id: String, message: String },
}

/// One bridge network, ready for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNet {
    /// The network's id.
    pub id: NetworkId,
    /// Its bridge device, `wb-<10 hex>`.
    pub bridge: IfName,
    /// Its subnets (IPv4 first), each with its gateway.
    pub subnets: Vec<SubnetConfig>,
    /// Internal networks get no route off the bridge and no masquerade.
    pub internal: bool,
    /// MTU of the bridge and of every veth on it.
    pub mtu: u32,
}

impl BridgeNet {
    /// Parses and checks `network`'s options and subnets.
    pub fn from_record(network: &NetworkRecord) -> Result<Self, ConfigError> {
        let mtu = parse_options(network)?;
        for s in &network.subnets {
            if !s.subnet.contains(&s.gateway) {
                return Err(ConfigError::GatewayOutsideSubnet {
                    gateway: s.gateway,
                    subnet: s.subnet,
                });
            }
        }
        let bridge = names::bridge(&network.id).map_err(|e| ConfigError::Name {
            id: network.id.to_string(),
            message: e.to_string(),
        })?;
        Ok(BridgeNet {
            id: network.id.clone(),
            bridge,
            subnets: network.subnets.clone(),
            internal: network.internal,
            mtu,
        })
    }

    /// The addresses the bridge holds: each gateway with its subnet's prefix length.
    pub fn gateway_addrs(&self) -> Vec<IpNet> {
        self.subnets
            .iter()
            .filter_map(|s| IpNet::new(s.gateway, s.subnet.prefix_len()).ok())
            .collect()
    }

    /// The gateway of the subnet holding `addr`, else of the first subnet of its family.
    pub fn gateway_for(&self, addr: IpAddr) -> Option<IpAddr> {
        let same_family = |s: &&SubnetConfig| s.gateway.is_ipv4() == addr.is_ipv4();
        self.subnets
            .iter()
            .find(|s| s.subnet.contains(&addr))
            .or_else(|| self.subnets.iter().find(same_family))
            .map(|s| s.gateway)
    }
}

/// Checks the options and returns the MTU.
fn parse_options(network: &NetworkRecord) -> Result<u32, ConfigError> {
    let mut mtu = DEFAULT_MTU;
    for (key, value) in network.options.iter() {
        match key {
            MTU_OPTION => {
                mtu = parse_mtu(value).ok_or_else(|| ConfigError::InvalidMtu {
                    value: value.to_owned(),
                })?
            }
            "encrypted" => return Err(ConfigError::Encrypted),
            _ => {
                return Err(ConfigError::UnknownOption {
                    key: key.to_owned(),
                });
            }
        }
    }
    Ok(mtu)
}

/// An `mtu` option's value, if it is an integer in [`MTU_RANGE`] (the overlay driver
/// reads the same option).
pub(crate) fn parse_mtu(value: &str) -> Option<u32> {
    value.parse::<u32>().ok().filter(|m| MTU_RANGE.contains(m))
}
