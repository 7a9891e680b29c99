//! An overlay network's definition, parsed once from its record: the VNI (from libnetwork's
//! `vxlanid_list` option, which weft's manager sets), the one IPv4 subnet with its gateway,
//! and the names of the bridge and vxlan device. The kernel steps never look at raw options.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};
use weft_os::IfName;
use weft_types::{NetworkId, NetworkRecord, Options, VXLANID_OPTION, Vni, VniError};

use super::names;
use crate::NetworkRequest;

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
        let mtu = parse_options(&network.options)?;
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

/// Checks what is known of a network before a manager allocates for it: every option (a
/// VNI list, if the user gave one, must parse), no IPv6, one IPv4 subnet (the manager picks
/// it when none is asked for), a gateway inside its subnet, and one VNI per subnet.
pub fn check_request(request: &NetworkRequest) -> Result<(), ConfigError> {
    parse_options(&request.options)?;
    let mut asked = request.subnets.iter().filter_map(|s| s.subnet);
    if let Some(v6) = asked.find(|n| n.addr().is_ipv6()) {
        return Err(ConfigError::Ipv6Unsupported {
            subnet: v6.to_string(),
        });
    }
    if request.ipv6 {
        return Err(ConfigError::Ipv6Unsupported {
            subnet: "none given".into(),
        });
    }
    let subnets = request.ipv4_subnets();
    if subnets > 1 {
        return Err(ConfigError::TooManyIpv4Subnets { count: subnets });
    }
    for s in &request.subnets {
        if let (Some(IpNet::V4(subnet)), Some(gateway)) = (s.subnet, s.gateway) {
            check_gateway(subnet, gateway)?;
        }
    }
    if let Some(list) = request.options.get(VXLANID_OPTION) {
        let vnis = parse_vni_list(list)?.len();
        if vnis != subnets {
            return Err(ConfigError::VniCount { vnis, subnets });
        }
    }
    Ok(())
}

/// Checks every option, so that a typo is an error instead of an ignored setting; the
/// MTU the `mtu` option sets, if any. The VNI list is parsed with the subnets.
fn parse_options(options: &Options) -> Result<Option<u32>, ConfigError> {
    let mut mtu = None;
    for (key, value) in options.iter() {
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
    check_gateway(*subnet, *gateway).map(|gw| (*subnet, gw))
}

/// The gateway, if it is an IPv4 address inside `subnet` (the bridge's address).
fn check_gateway(subnet: Ipv4Net, gateway: IpAddr) -> Result<Ipv4Addr, ConfigError> {
    match gateway {
        IpAddr::V4(gw) if subnet.contains(&gw) => Ok(gw),
        _ => Err(ConfigError::BadGateway { gateway, subnet }),
    }
}

/// The VNI list, which must hold exactly one VNI (one IPv4 subnet).
fn parse_vni(option: Option<&str>) -> Result<Vni, ConfigError> {
    let vnis = parse_vni_list(option.ok_or(ConfigError::MissingVni)?)?;
    match vnis.as_slice() {
        [vni] => Ok(*vni),
        _ => Err(ConfigError::VniCount {
            vnis: vnis.len(),
            subnets: 1,
        }),
    }
}

/// The VNIs of a [`VXLANID_OPTION`] value, parsed as the manager parses them.
fn parse_vni_list(list: &str) -> Result<Vec<Vni>, ConfigError> {
    Vni::parse_list(list).map_err(|e| ConfigError::InvalidVni {
        value: match e {
            VniError::OutOfRange { vni } => vni.to_string(),
            VniError::NotANumber { text } => text,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{Driver, DriverError, NetworkRequest};
    use weft_types::api::SubnetRequest;
    use weft_types::{DriverName, Options};

    /// What a user asks for before the manager picks an id, a subnet or a VNI.
    fn request(options: &[&str], subnets: &[(&str, Option<&str>)]) -> NetworkRequest {
        NetworkRequest {
            name: "ov".parse().unwrap(),
            driver: DriverName::overlay(),
            subnets: subnets
                .iter()
                .map(|(subnet, gateway)| SubnetRequest {
                    subnet: Some(subnet.parse().unwrap()),
                    gateway: gateway.map(|g| g.parse().unwrap()),
                    ip_range: None,
                })
                .collect(),
            ipv6: false,
            internal: false,
            options: Options::from_pairs(options.iter().copied()).unwrap(),
            labels: Default::default(),
        }
    }

    fn refused(request: &NetworkRequest) -> String {
        check_request(request).unwrap_err().to_string()
    }

    #[test]
    fn a_request_without_subnet_or_vni_is_complete_enough() {
        // The manager picks both: no placeholder is needed to check the rest.
        assert_eq!(check_request(&request(&[], &[])), Ok(()));
        let vni = format!("{VXLANID_OPTION}=5000");
        let one = [("198.19.20.0/24", Some("198.19.20.1"))];
        assert_eq!(check_request(&request(&[&vni, "mtu=1400"], &one)), Ok(()));
        assert_eq!(check_request(&request(&[&vni], &[])), Ok(()));
    }

    #[test]
    fn a_request_is_refused_with_what_is_wrong_before_allocation() {
        let vni = |v: &str| format!("{VXLANID_OPTION}={v}");
        let one = [("198.19.20.0/24", None)];
        let two = [("198.19.20.0/24", None), ("198.19.21.0/24", None)];
        for (options, subnets, want) in [
            (vec![vni("0")], &one[..], "invalid vni \"0\""),
            (vec![vni("16777216")], &one, "invalid vni \"16777216\""),
            (vec![vni("abc")], &one, "invalid vni \"abc\""),
            (vec![vni("")], &[], "invalid vni \"\""),
            (
                vec![vni("4097,4098")],
                &one,
                "lists 2 vnis for 1 ipv4 subnet(s)",
            ),
            // No subnet asked for: the manager picks one, so one VNI.
            (
                vec![vni("4097,4098")],
                &[],
                "lists 2 vnis for 1 ipv4 subnet(s)",
            ),
            (vec![], &two, "one ipv4 subnet per network, got 2"),
            (
                vec![vni("4097,4098")],
                &two,
                "one ipv4 subnet per network, got 2",
            ),
            (vec!["encrypted".into()], &[], "does not support encrypted"),
            (vec!["mtu=67".into()], &[], "invalid mtu \"67\""),
            (vec!["colour=blue".into()], &[], "unknown option \"colour\""),
            (
                vec!["vxlanid_list=5000".into()],
                &[],
                "did you mean com.docker.network.driver.overlay.vxlanid_list",
            ),
        ] {
            let options: Vec<&str> = options.iter().map(String::as_str).collect();
            let got = refused(&request(&options, subnets));
            assert!(
                got.contains(want),
                "{options:?} {subnets:?}: want {want:?} in {got}"
            );
        }
        let mut v6 = request(&[], &[]);
        v6.ipv6 = true;
        assert!(refused(&v6).contains("does not support ipv6"));
        let v6 = request(&[], &[("198.19.20.0/24", None), ("2001:db8::/64", None)]);
        assert!(refused(&v6).contains("does not support ipv6 yet (subnet 2001:db8::/64)"));
        let outside = request(&[], &[("198.19.20.0/24", Some("198.19.99.1"))]);
        assert!(refused(&outside).contains("not an ipv4 address inside"));
    }

    #[test]
    fn the_driver_refuses_through_validate_as_an_invalid_parameter() {
        let k = std::sync::Arc::new(weft_os::FakeKernel::new());
        let d = crate::OverlayDriver::new(
            k.clone(),
            crate::OverlayConfig::new("t-", "this-node", std::net::Ipv4Addr::new(192, 0, 2, 1)),
        );
        let err = d.validate(&request(&["encrypted"], &[])).unwrap_err();
        assert!(matches!(err, DriverError::InvalidParameter { .. }), "{err}");
        assert!(d.validate(&request(&[], &[])).is_ok());
        // Checking touches no kernel.
        assert!(k.calls().is_empty());
    }

    #[test]
    fn an_adopted_definition_goes_through_the_same_check() {
        let record = NetworkRecord {
            id: NetworkId::cluster(),
            name: "ov".parse().unwrap(),
            driver: DriverName::overlay(),
            scope: weft_types::Scope::Global,
            subnets: vec![weft_types::SubnetConfig {
                subnet: "198.19.20.0/24".parse().unwrap(),
                gateway: "198.19.20.1".parse().unwrap(),
                ip_range: None,
            }],
            auto_subnet: false,
            ipv6: false,
            internal: false,
            attachable: true,
            options: Options::from_pairs([format!("{VXLANID_OPTION}=4096").as_str()]).unwrap(),
            labels: Default::default(),
            created_ms: 0,
            lifecycle: weft_types::Lifecycle::Ready,
        };
        assert_eq!(check_request(&NetworkRequest::from_record(&record)), Ok(()));
        let mut two = record.clone();
        two.options =
            Options::from_pairs([format!("{VXLANID_OPTION}=4096,4097").as_str()]).unwrap();
        assert!(refused(&NetworkRequest::from_record(&two)).contains("lists 2 vnis"));
    }
}
