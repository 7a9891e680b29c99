//! The predefined pools each address space picks automatic subnets from.
//!
//! Defaults are Docker's: local networks get 172.17.0.0/16 … 172.31.0.0/16, then
//! 192.168.0.0/16 cut into /20s; global (swarm) networks get 10.0.0.0/8 cut into /24s.

use crate::IpamError;
use crate::addr::{host_mask, is_canonical, is_v6, net_start};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The largest prefix length a predefined IPv4 pool may be split into (leaves 2 hosts).
pub const MAX_V4_SPLIT: u8 = 30;
/// The largest prefix length a predefined IPv6 pool may be split into (one /64 per network).
pub const MAX_V6_SPLIT: u8 = 64;

/// A base network cut into consecutive subnets of one size, handed out in address order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PredefinedPool {
    /// The network to cut, with no host bits set.
    pub base: IpNet,
    /// The prefix length of each subnet cut from `base`.
    pub size: u8,
}

impl PredefinedPool {
    /// A validated predefined pool.
    pub fn new(base: IpNet, size: u8) -> Result<Self, IpamError> {
        let pool = PredefinedPool { base, size };
        pool.validate()?;
        Ok(pool)
    }

    /// Checks that `base` is a network address and `size` fits it and the family's limits.
    pub fn validate(&self) -> Result<(), IpamError> {
        let invalid = |reason: String| IpamError::InvalidPredefinedPool {
            base: self.base,
            size: self.size,
            reason,
        };
        if !is_canonical(&self.base) {
            return Err(invalid(format!(
                "host bits are set; did you mean {}",
                self.base.trunc()
            )));
        }
        if self.size < self.base.prefix_len() {
            return Err(invalid(format!(
                "size /{} is larger than the base /{}",
                self.size,
                self.base.prefix_len()
            )));
        }
        let max = if is_v6(&self.base) {
            MAX_V6_SPLIT
        } else {
            MAX_V4_SPLIT
        };
        if self.size == 0 || self.size > max {
            return Err(invalid(format!("size must be between /1 and /{max}")));
        }
        Ok(())
    }

    /// How many subnets the base holds.
    pub fn count(&self) -> u128 {
        // size - prefix <= 64 after validation, so the shift cannot overflow.
        1u128 << (self.size - self.base.prefix_len())
    }

    /// The `index`-th subnet, if `index < count()`.
    pub fn nth(&self, index: u128) -> Option<IpNet> {
        if index >= self.count() {
            return None;
        }
        let start = net_start(&self.base) + index * self.block();
        let addr = crate::addr::from_u128(is_v6(&self.base), start);
        IpNet::new(addr, self.size).ok()
    }

    /// The index of the first subnet that starts after address `last` (may be `count()`).
    pub(crate) fn index_after(&self, last: u128) -> u128 {
        let base = net_start(&self.base);
        if last < base {
            return 0;
        }
        ((last - base) / self.block())
            .saturating_add(1)
            .min(self.count())
    }

    /// Addresses per subnet.
    fn block(&self) -> u128 {
        let subnet = IpNet::new(self.base.network(), self.size).unwrap_or(self.base);
        host_mask(&subnet) + 1
    }

    /// True for an IPv6 base.
    pub fn is_v6(&self) -> bool {
        is_v6(&self.base)
    }
}

/// The predefined pools of both address spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// Pools for local-scope networks, searched in order.
    pub local: Vec<PredefinedPool>,
    /// Pools for global-scope (cluster) networks, searched in order.
    pub global: Vec<PredefinedPool>,
}

impl IpamConfig {
    /// Checks every predefined pool.
    pub fn validate(&self) -> Result<(), IpamError> {
        self.local
            .iter()
            .chain(&self.global)
            .try_for_each(PredefinedPool::validate)
    }
}

/// An IPv4 predefined pool from constant parts; only used for the built-in defaults.
fn v4(a: u8, b: u8, prefix: u8, size: u8) -> PredefinedPool {
    let base = IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, 0, 0), prefix));
    PredefinedPool { base, size }
}

impl Default for IpamConfig {
    /// Docker's defaults (libnetwork `ipamutils`): 31 local pools and 65 536 global ones.
    fn default() -> Self {
        IpamConfig {
            local: vec![
                v4(172, 17, 16, 16),
                v4(172, 18, 16, 16),
                v4(172, 19, 16, 16),
                v4(172, 20, 14, 16),
                v4(172, 24, 14, 16),
                v4(172, 28, 14, 16),
                v4(192, 168, 16, 20),
            ],
            global: vec![v4(10, 0, 8, 24)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(base: &str, size: u8) -> PredefinedPool {
        PredefinedPool {
            base: base.parse().unwrap(),
            size,
        }
    }

    #[test]
    fn default_is_dockers() {
        let config = IpamConfig::default();
        config.validate().unwrap();
        let local: Vec<IpNet> = config
            .local
            .iter()
            .flat_map(|p| (0..p.count()).map(|i| p.nth(i).unwrap()))
            .collect();
        assert_eq!(local.len(), 31);
        assert_eq!(local[0].to_string(), "172.17.0.0/16");
        assert_eq!(local[1].to_string(), "172.18.0.0/16");
        assert_eq!(local[14].to_string(), "172.31.0.0/16");
        assert_eq!(local[15].to_string(), "192.168.0.0/20");
        assert_eq!(local[30].to_string(), "192.168.240.0/20");
        let global = &config.global[0];
        assert_eq!(global.count(), 65536);
        assert_eq!(global.nth(1).unwrap().to_string(), "10.0.1.0/24");
        assert_eq!(global.nth(65535).unwrap().to_string(), "10.255.255.0/24");
        assert_eq!(global.nth(65536), None);
    }

    #[test]
    fn validation_rejects_bad_pools() {
        for (base, size) in [
            ("198.19.0.5/16", 24),
            ("198.19.0.0/16", 8),
            ("198.19.0.0/16", 31),
            ("2001:db8::/48", 80),
            ("0.0.0.0/0", 0),
        ] {
            assert!(
                pool(base, size).validate().is_err(),
                "{base} /{size} accepted"
            );
        }
        pool("198.19.0.0/16", 30).validate().unwrap();
        pool("2001:db8::/32", 64).validate().unwrap();
        pool("198.19.0.0/24", 24).validate().unwrap();
    }

    #[test]
    fn error_suggests_the_network_address() {
        let err = PredefinedPool::new("198.19.3.7/16".parse().unwrap(), 24).unwrap_err();
        assert!(
            err.to_string().contains("did you mean 198.19.0.0/16"),
            "{err}"
        );
    }

    #[test]
    fn index_after_skips_whole_subnets() {
        let p = pool("198.19.0.0/16", 24);
        let at = |s: &str| crate::addr::to_u128(s.parse().unwrap());
        assert_eq!(p.index_after(at("198.18.255.255")), 0);
        assert_eq!(p.index_after(at("198.19.0.0")), 1);
        assert_eq!(p.index_after(at("198.19.3.255")), 4);
        assert_eq!(p.index_after(at("198.20.0.0")), 256);
    }

    #[test]
    fn v6_subnets_are_cut_lazily() {
        let p = pool("2001:db8::/32", 64);
        assert_eq!(p.count(), 1u128 << 32);
        assert_eq!(p.nth(1).unwrap().to_string(), "2001:db8:0:1::/64");
    }
}
