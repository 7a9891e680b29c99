//! Address spaces and pool ids: the names under which pools are requested and found.

use crate::IpamError;
use crate::addr::{from_u128, is_canonical, is_v6, net_start};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An independent set of pools: overlap is checked only within one space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressSpace {
    /// Pools of networks that exist on this host only (libnetwork's `LocalDefault`).
    Local,
    /// Pools of cluster-wide networks, allocated by a manager (libnetwork's `GlobalDefault`).
    Global,
}

impl AddressSpace {
    /// The lower-case name used in pool ids and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressSpace::Local => "local",
            AddressSpace::Global => "global",
        }
    }
}

impl fmt::Display for AddressSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AddressSpace {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(AddressSpace::Local),
            "global" => Ok(AddressSpace::Global),
            other => Err(IpamError::InvalidAddressSpace(other.to_owned())),
        }
    }
}

impl From<weft_types::Scope> for AddressSpace {
    fn from(scope: weft_types::Scope) -> Self {
        match scope {
            weft_types::Scope::Local => AddressSpace::Local,
            weft_types::Scope::Global => AddressSpace::Global,
        }
    }
}

/// Names an allocated pool: `space/subnet[/range]`, e.g. `local/198.19.0.0/24/198.19.0.128/25`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct PoolId {
    /// The address space the pool was allocated in.
    pub space: AddressSpace,
    /// The pool's subnet.
    pub subnet: IpNet,
    /// The sub-range that `AddressRequest::Any` picks from, if one was requested.
    pub range: Option<IpNet>,
}

impl PoolId {
    /// The gateway a network on this pool gets by default: the subnet's first host address.
    pub fn default_gateway(&self) -> IpAddr {
        let v6 = is_v6(&self.subnet);
        let first = net_start(&self.subnet).saturating_add(1);
        let limit = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        from_u128(v6, first.min(limit))
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.space, self.subnet)?;
        if let Some(range) = self.range {
            write!(f, "/{range}")?;
        }
        Ok(())
    }
}

impl FromStr for PoolId {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| IpamError::InvalidPoolId {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let (space, subnet, range) = match parts.as_slice() {
            [space, addr, len] => (space, parse_net(addr, len), None),
            [space, addr, len, raddr, rlen] => {
                (space, parse_net(addr, len), Some(parse_net(raddr, rlen)))
            }
            _ => return Err(bad("expected space/subnet or space/subnet/range")),
        };
        let space: AddressSpace = space.parse()?;
        let subnet = subnet.ok_or_else(|| bad("subnet is not a network address in cidr form"))?;
        let range = range
            .map(|r| r.ok_or_else(|| bad("range is not a network address in cidr form")))
            .transpose()?;
        if range.is_some_and(|r| !subnet.contains(&r)) {
            return Err(bad("range does not lie inside the subnet"));
        }
        Ok(PoolId {
            space,
            subnet,
            range,
        })
    }
}

/// Parses `addr/len` as a network with no host bits set.
fn parse_net(addr: &str, len: &str) -> Option<IpNet> {
    let net: IpNet = format!("{addr}/{len}").parse().ok()?;
    is_canonical(&net).then_some(net)
}

impl From<PoolId> for String {
    fn from(id: PoolId) -> Self {
        id.to_string()
    }
}

impl TryFrom<String> for PoolId {
    type Error = IpamError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_id_round_trips_through_text() {
        for text in [
            "local/198.19.0.0/24",
            "global/198.19.0.0/24/198.19.0.128/25",
            "local/2001:db8::/64",
            "global/2001:db8::/64/2001:db8::/80",
        ] {
            let id: PoolId = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn pool_id_round_trips_through_serde() {
        let id: PoolId = "global/198.19.0.0/24/198.19.0.128/25".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"global/198.19.0.0/24/198.19.0.128/25\"");
        assert_eq!(serde_json::from_str::<PoolId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<PoolId>("\"nowhere/198.19.0.0/24\"").is_err());
    }

    #[test]
    fn malformed_pool_ids_are_rejected() {
        for text in [
            "",
            "local",
            "local/198.19.0.0",
            "remote/198.19.0.0/24",
            "local/198.19.0.5/24",
            "local/198.19.0.0/24/198.19.1.0/25",
            "local/198.19.0.0/24/198.19.0.0",
            "local/198.19.0.0/24/x/y/z",
        ] {
            assert!(text.parse::<PoolId>().is_err(), "{text} parsed");
        }
    }

    #[test]
    fn address_space_names() {
        assert_eq!(
            "local".parse::<AddressSpace>().unwrap(),
            AddressSpace::Local
        );
        assert_eq!(AddressSpace::Global.to_string(), "global");
        assert!("Local".parse::<AddressSpace>().is_err());
        assert_eq!(
            AddressSpace::from(weft_types::Scope::Global),
            AddressSpace::Global
        );
    }

    #[test]
    fn default_gateway_is_first_host() {
        let id: PoolId = "local/198.19.4.0/22/198.19.6.0/24".parse().unwrap();
        assert_eq!(
            id.default_gateway(),
            "198.19.4.1".parse::<IpAddr>().unwrap()
        );
        let id: PoolId = "local/2001:db8:1::/64".parse().unwrap();
        assert_eq!(
            id.default_gateway(),
            "2001:db8:1::1".parse::<IpAddr>().unwrap()
        );
    }
}
