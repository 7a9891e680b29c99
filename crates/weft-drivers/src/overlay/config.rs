//! An overlay network's definition, parsed once from its record: the VNI (from libnetwork's
//! `vxlanid_list` option, which weft's manager sets), the one IPv4 subnet with its gateway,
//! and the names of the bridge and vxlan device. The kernel steps never look at raw options.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};
use weft_os::IfName;
use weft_types::{NetworkId, NetworkRecord, VXLANID_OPTION, Vni};

use super::names;

/// The option asking for an encrypted data path, which this driver does not do yet.
pub const ENCRYPTED_OPTION: &str = "encrypted";
/// The option setting the MTU of the network's bridge, vxlan and veths (the bridge
/// driver's name for it), instead of the underlay's MTU less the VXLAN overhead.
pub const MTU_OPTION: &str = crate::bridge::config::MTU_OPTION;

/// Why an overlay network's definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The manager did not assign a VNI.
    #[error("option {VXLANID_OPTION} is missing: an overlay network needs a vni")]
    MissingVni,
    /// A VNI is not an integer in range.
    #[error("invalid vni {value:?} in option {VXLANID_OPTION}: a vxlanid must be 1..16777215")]
    InvalidVni { value: String },
    /// An option the overlay driver does not know: refused, not silently ignored.
    #[error("unknown option {key:?} for the overlay driver (supported: {MTU_OPTION}, {VXLANID_OPTION}){hint}", hint = vni_hint(key))]
    UnknownOption { key: String },
    /// `mtu` is not an integer in range.
    #[error("invalid mtu {value:?}: expected an integer from 68 to 65535")]
    InvalidMtu { value: String },
    /// The VNI list does not give one VNI per IPv4 subnet.
    #[error(
        "option {VXLANID_OPTION} lists {vnis} vnis for {subnets} ipv4 subnet(s): expected one per subnet"
    )]
    VniCount { vnis: usize, subnets: usize },
    /// No IPv4 subnet to put on the bridge.
    #[error("an overlay network needs an ipv4 subnet")]
    NoIpv4Subnet,
    /// One vxlan per network carries exactly one subnet.
    #[error("the overlay driver supports one ipv4 subnet per network, got {count}")]
    TooManyIpv4Subnets { count: usize },
    /// IPv6 on overlay networks is not implemented.
    #[error("the overlay driver does not support ipv6 yet (subnet {subnet})")]
    Ipv6Unsupported { subnet: String },
    /// Encryption of the data path is not implemented.
    #[error("the overlay driver does not support encrypted networks yet")]
    Encrypted,
    /// The gateway cannot be the bridge's address.
    #[error("gateway {gateway} is not an ipv4 address inside subnet {subnet}")]
    BadGateway { gateway: IpAddr, subnet: Ipv4Net },
    /// The derived device names were refused (a malformed network id).
    #[error("cannot name the devices of network {id}: {message}")]
    Name { id: String, message: String },
}

/// One overlay network, ready for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayNet {
    /// The network's id.
    pub id: NetworkId,
    /// Its VXLAN network identifier.
    pub vni: Vni,
    /// Its IPv4 subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address, and the sandboxes' default gateway.
    pub gateway: Ipv4Addr,
    /// Its bridge, `ov-<vni>-<nid>`.
    pub bridge: IfName,
    /// Its vxlan device, `vx-<vni>-<nid>`.
    pub vxlan: IfName,
    /// The MTU the `mtu` option sets; else it comes from the underlay.
    pub mtu: Option<u32>,
}

impl OverlayNet {
    /// Parses and checks `network`'s options and subnets.
    pub fn from_record(network: &NetworkRecord) -> Result<Self, ConfigError> {
        let mtu = parse_options(network)?;
        let (subnet, gateway) = ipv4_subnet(network)?;
        let vni = parse_vni(network.options.get(VXLANID_OPTION))?;
        let name_err = |e: weft_os::Error| ConfigError::Name {
            id: network.id.to_string(),
            message: e.to_string(),
        };
        Ok(OverlayNet {
            id: network.id.clone(),
            vni,
            subnet,
            gateway,
            bridge: names::bridge(vni, &network.id).map_err(name_err)?,
            vxlan: names::vxlan(vni, &network.id).map_err(name_err)?,
            mtu,
        })
    }

    /// The bridge's address: the gateway with the subnet's prefix length.
    pub fn gateway_addr(&self) -> IpNet {
        Ipv4Net::new(self.gateway, self.subnet.prefix_len())
            .map(IpNet::V4)
            .unwrap_or(IpNet::V4(self.subnet))
    }
}

/// Checks every option, so that a typo is an error instead of an ignored setting; the
/// MTU the `mtu` option sets, if any. The VNI list is parsed with the subnets.
fn parse_options(network: &NetworkRecord) -> Result<Option<u32>, ConfigError> {
    let mut mtu = None;
    for (key, value) in network.options.iter() {
        match key {
            VXLANID_OPTION => {}
            MTU_OPTION => {
                mtu = Some(crate::bridge::config::parse_mtu(value).ok_or_else(|| {
                    ConfigError::InvalidMtu {
                        value: value.to_owned(),
                    }
                })?)
            }
            ENCRYPTED_OPTION => return Err(ConfigError::Encrypted),
            _ => {
                return Err(ConfigError::UnknownOption {
                    key: key.to_owned(),
                });
            }
        }
    }
    Ok(mtu)
}

/// Docker users write the VNI option's last part alone; name the whole key for them.
fn vni_hint(key: &str) -> String {
    match VXLANID_OPTION.ends_with(key) {
        true => format!(": did you mean {VXLANID_OPTION}?"),
        false => String::new(),
    }
}

/// The one IPv4 subnet and its gateway; IPv6 is refused.
fn ipv4_subnet(network: &NetworkRecord) -> Result<(Ipv4Net, Ipv4Addr), ConfigError> {
    if let Some(v6) = network.subnets.iter().find(|s| s.subnet.addr().is_ipv6()) {
        return Err(ConfigError::Ipv6Unsupported {
            subnet: v6.subnet.to_string(),
        });
    }
    if network.ipv6 {
        return Err(ConfigError::Ipv6Unsupported {
            subnet: "none given".into(),
        });
    }
    let v4: Vec<_> = network
        .subnets
        .iter()
        .filter_map(|s| match s.subnet {
            IpNet::V4(net) => Some((net, s.gateway)),
            IpNet::V6(_) => None,
        })
        .collect();
    let [(subnet, gateway)] = v4.as_slice() else {
        return Err(match v4.len() {
            0 => ConfigError::NoIpv4Subnet,
            count => ConfigError::TooManyIpv4Subnets { count },
        });
    };
    match gateway {
        IpAddr::V4(gw) if subnet.contains(gw) => Ok((*subnet, *gw)),
        _ => Err(ConfigError::BadGateway {
            gateway: *gateway,
            subnet: *subnet,
        }),
    }
}

/// The VNI list, which must hold exactly one VNI (one IPv4 subnet).
fn parse_vni(option: Option<&str>) -> Result<Vni, ConfigError> {
    let list = option.ok_or(ConfigError::MissingVni)?;
    let vnis = list
        .split(',')
        .map(|v| {
            let v = v.trim();
            v.parse::<Vni>().map_err(|_| ConfigError::InvalidVni {
                value: v.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match vnis.as_slice() {
        [vni] => Ok(*vni),
        _ => Err(ConfigError::VniCount {
            vnis: vnis.len(),
            subnets: 1,
        }),
    }
}
