//! A bridge network's configuration, parsed once from its record: the bridge name, the
//! subnets with their gateways, whether it is internal, and the MTU. Everything the kernel
//! steps and the ruleset need, so that they never look at raw options.

use ipnet::IpNet;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use weft_os::IfName;
use weft_types::{NetworkId, NetworkRecord, Options, SubnetConfig};

use super::names;
use crate::NetworkRequest;

/// The MTU of a network without the `mtu` option, as Docker's bridge driver uses.
pub const DEFAULT_MTU: u32 = 1500;
/// The MTUs the `mtu` option accepts (68 is IPv4's minimum, RFC 791).
pub const MTU_RANGE: RangeInclusive<u32> = 68..=65535;
/// The option setting the MTU of the bridge and of every veth on it.
pub const MTU_OPTION: &str = "mtu";
/// The option that, set to `false`, stops the network's sandboxes from reaching each other
/// (each still reaches the host and, unless internal, the outside): Docker's `enable_icc`.
pub const ICC_OPTION: &str = "icc";

/// Why a bridge network's definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `--opt encrypted` asks for something only the overlay driver does.
    #[error("the bridge driver does not support encrypted networks (use the overlay driver)")]
    Encrypted,
    /// An option the bridge driver does not know.
    #[error("unknown option {key:?} for the bridge driver (supported: mtu, icc)")]
    UnknownOption { key: String },
    /// `icc` is not a boolean.
    #[error("invalid icc {value:?}: expected true or false")]
    InvalidIcc { value: String },
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
    /// Whether its sandboxes may reach each other (inter-container communication).
    pub icc: bool,
}

impl BridgeNet {
    /// Parses and checks `network`'s options and subnets.
    pub fn from_record(network: &NetworkRecord) -> Result<Self, ConfigError> {
        let (mtu, icc) = parse_options(&network.options)?;
        for s in &network.subnets {
            check_gateway(s.subnet, s.gateway)?;
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
            icc,
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

/// Checks what is known of a bridge network before its subnets are allocated: the options,
/// and the gateways asked for inside their subnets.
pub fn check_request(request: &NetworkRequest) -> Result<(), ConfigError> {
    parse_options(&request.options)?;
    for s in &request.subnets {
        if let (Some(subnet), Some(gateway)) = (s.subnet, s.gateway) {
            check_gateway(subnet, gateway)?;
        }
    }
    Ok(())
}

/// A gateway outside its own subnet could not be reached from the bridge.
fn check_gateway(subnet: IpNet, gateway: IpAddr) -> Result<(), ConfigError> {
    match subnet.contains(&gateway) {
        true => Ok(()),
        false => Err(ConfigError::GatewayOutsideSubnet { gateway, subnet }),
    }
}

/// Checks the options and returns the MTU and whether sandboxes reach each other.
fn parse_options(options: &Options) -> Result<(u32, bool), ConfigError> {
    let (mut mtu, mut icc) = (DEFAULT_MTU, true);
    for (key, value) in options.iter() {
        match key {
            ICC_OPTION => {
                icc = value.parse().map_err(|_| ConfigError::InvalidIcc {
                    value: value.to_owned(),
                })?
            }
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
    Ok((mtu, icc))
}

/// An `mtu` option's value, if it is an integer in [`MTU_RANGE`] (the overlay driver
/// reads the same option).
pub(crate) fn parse_mtu(value: &str) -> Option<u32> {
    value.parse::<u32>().ok().filter(|m| MTU_RANGE.contains(m))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{Driver, DriverError, NetworkRequest};
    use weft_types::api::SubnetRequest;

    fn request(options: &[&str], subnets: Vec<SubnetRequest>) -> NetworkRequest {
        NetworkRequest {
            name: "b".parse().unwrap(),
            driver: weft_types::DriverName::bridge(),
            subnets,
            ipv6: false,
            internal: false,
            options: Options::from_pairs(options.iter().copied()).unwrap(),
            labels: Default::default(),
        }
    }

    #[test]
    fn a_request_is_checked_before_its_subnets_are_allocated() {
        let k = std::sync::Arc::new(weft_os::FakeKernel::new());
        let d = crate::BridgeDriver::new(k.clone());
        // No subnet yet (IPAM picks it): options are all there is to check.
        assert!(d.validate(&request(&["mtu=1400"], vec![])).is_ok());
        let auto = SubnetRequest::default();
        assert!(d.validate(&request(&[], vec![auto])).is_ok());
        for (options, want) in [
            (&["mtu=65536"][..], "invalid mtu \"65536\""),
            (&["encrypted"], "does not support encrypted"),
            (&["com.example.x=1"], "unknown option \"com.example.x\""),
        ] {
            let err = d.validate(&request(options, vec![])).unwrap_err();
            assert!(matches!(err, DriverError::InvalidParameter { .. }), "{err}");
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        let outside = SubnetRequest {
            subnet: Some("198.19.3.0/24".parse().unwrap()),
            gateway: Some("198.19.4.1".parse().unwrap()),
            ip_range: None,
        };
        let err = d.validate(&request(&[], vec![outside])).unwrap_err();
        assert!(err.to_string().contains("not inside subnet"), "{err}");
        assert!(k.calls().is_empty(), "validation touched the kernel");
    }
}
