//! Helpers shared by the rule tests: a test config in 198.19.0.0/16 and 2001:db8::/32.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use ipnet::IpNet;
use std::net::IpAddr;
use weft_ipam::{
    AddressRequest, AddressSpace, Ipam, IpamConfig, IpamError, PoolId, PoolRequest, PredefinedPool,
};

pub const LOCAL: AddressSpace = AddressSpace::Local;
pub const GLOBAL: AddressSpace = AddressSpace::Global;
pub const SERIAL: AddressRequest = AddressRequest::Any { serial: true };
pub const LOWEST: AddressRequest = AddressRequest::Any { serial: false };

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn pid(s: &str) -> PoolId {
    s.parse().unwrap()
}

pub fn pre(base: &str, size: u8) -> PredefinedPool {
    PredefinedPool::new(net(base), size).unwrap()
}

/// Local: 198.19.0.0/22 in /24s, then 198.19.8.0/21 in /22s (like 172.x/16s then 192.168/20s).
/// Global: 198.19.128.0/17 in /24s. IPv6: one /48 in /64s per space.
pub fn config() -> IpamConfig {
    IpamConfig {
        local: vec![
            pre("198.19.0.0/22", 24),
            pre("198.19.8.0/21", 22),
            pre("2001:db8:1::/48", 64),
        ],
        global: vec![pre("198.19.128.0/17", 24), pre("2001:db8:2::/48", 64)],
    }
}

pub fn ipam() -> Ipam {
    Ipam::new(config()).unwrap()
}

pub fn auto(ipam: &mut Ipam, space: AddressSpace) -> Result<String, IpamError> {
    ipam.request_pool(&PoolRequest::auto(space, false))
        .map(|id| id.subnet.to_string())
}

pub fn explicit(ipam: &mut Ipam, space: AddressSpace, pool: &str) -> Result<PoolId, IpamError> {
    ipam.request_pool(&PoolRequest::explicit(space, net(pool)))
}

pub fn with_range(ipam: &mut Ipam, pool: &str, range: &str) -> Result<PoolId, IpamError> {
    ipam.request_pool(&PoolRequest::explicit(LOCAL, net(pool)).with_sub_pool(net(range)))
}

pub fn any(ipam: &mut Ipam, id: &PoolId, req: AddressRequest) -> String {
    ipam.request_address(id, req).unwrap().to_string()
}
