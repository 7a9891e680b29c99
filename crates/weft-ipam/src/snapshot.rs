//! A comparable picture of the whole allocator: every pool and the addresses handed out.
//!
//! It leaves out the serial and predefined-pool cursors on purpose: those are hints about
//! the future, not allocations, and a rebuilt allocator is expected to equal the original
//! in what it has handed out.

use crate::PoolId;
use crate::addr::{from_u128, to_u128};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Every allocated pool, sorted by id, with its allocated addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamSnapshot {
    /// The pools, sorted by id (local before global, then by subnet).
    pub pools: Vec<PoolSnapshot>,
}

/// One pool and its allocated addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    /// The pool's id.
    pub id: PoolId,
    /// Allocated addresses as maximal runs, in increasing order.
    pub allocated: Vec<AddrRange>,
}

impl PoolSnapshot {
    /// Every allocated address, in increasing order.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.allocated.iter().flat_map(AddrRange::iter)
    }

    /// How many addresses are allocated.
    pub fn allocated_count(&self) -> u128 {
        self.allocated.iter().map(AddrRange::len).sum()
    }
}

/// Consecutive addresses from `first` to `last`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrRange {
    /// The lowest address.
    pub first: IpAddr,
    /// The highest address.
    pub last: IpAddr,
}

impl AddrRange {
    /// Number of addresses (0 if `last` is below `first` or the families differ).
    pub fn len(&self) -> u128 {
        if self.first.is_ipv6() != self.last.is_ipv6() {
            return 0;
        }
        let (a, b) = (to_u128(self.first), to_u128(self.last));
        if b < a { 0 } else { b - a + 1 }
    }

    /// True when the range holds no address.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The addresses, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + use<> {
        let v6 = self.first.is_ipv6();
        let (a, b) = (to_u128(self.first), to_u128(self.last));
        let end = if self.is_empty() { None } else { Some(b) };
        end.into_iter()
            .flat_map(move |b| (a..=b).map(move |x| from_u128(v6, x)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_to_addresses() {
        let r = AddrRange {
            first: "198.19.0.254".parse().unwrap(),
            last: "198.19.1.1".parse().unwrap(),
        };
        let all: Vec<String> = r.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            all,
            ["198.19.0.254", "198.19.0.255", "198.19.1.0", "198.19.1.1"]
        );
        assert_eq!(r.len(), 4);
        let backwards = AddrRange {
            first: r.last,
            last: r.first,
        };
        assert!(backwards.is_empty());
        assert_eq!(backwards.iter().count(), 0);
    }
}
