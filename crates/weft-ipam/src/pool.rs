//! One allocated pool: its subnet, optional sub-range and the addresses handed out of it.
//!
//! Addresses are kept as offsets from the subnet's network address in a [`RangeSet`]. The
//! reserved addresses (IPv4 network and broadcast, IPv6 subnet-router anycast `::0`) are never
//! stored: they lie outside the window of host offsets `[first, last]` that may be allocated.

use crate::addr::{from_u128, host_mask, is_v6, net_end, net_start, to_u128};
use crate::ranges::RangeSet;
use crate::snapshot::{AddrRange, PoolSnapshot};
use crate::{IpamError, PoolId};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What a pool looks like from outside: its bounds and how full it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    /// The pool's id.
    pub id: PoolId,
    /// The pool's subnet.
    pub subnet: IpNet,
    /// The sub-range `Any` requests pick from, if any.
    pub range: Option<IpNet>,
    /// The default gateway: the subnet's first host address.
    pub gateway: IpAddr,
    /// Addresses allocated anywhere in the subnet (inside or outside the sub-range).
    pub allocated: u128,
    /// Addresses of the subnet that can ever be allocated (reserved ones excluded).
    pub capacity: u128,
    /// Addresses an `Any` request can still get (free ones in the sub-range, or the subnet).
    pub available: u128,
}

/// The allocation state of one pool.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    id: PoolId,
    v6: bool,
    /// Integer value of the subnet's network address.
    base: u128,
    /// Offsets of the first and last allocatable host of the subnet.
    first: u128,
    last: u128,
    /// Offsets bounding what `Any` picks from: the sub-range clipped to `[first, last]`.
    lo: u128,
    hi: u128,
    allocated: RangeSet,
    /// Offset where the next serial search starts: just after the last address handed out.
    next: u128,
}

/// The allocatable host offsets `[first, last]` of a subnet.
pub(crate) fn host_window(subnet: &IpNet) -> (u128, u128) {
    let mask = host_mask(subnet);
    if is_v6(subnet) {
        (1, mask)
    } else {
        (1, mask.saturating_sub(1))
    }
}

/// The offsets `Any` may pick from in `subnet`, given its optional `range`; may be empty.
pub(crate) fn any_window(subnet: &IpNet, range: Option<&IpNet>) -> (u128, u128) {
    let (first, last) = host_window(subnet);
    match range {
        None => (first, last),
        Some(r) => {
            let base = net_start(subnet);
            let lo = (net_start(r) - base).max(first);
            let hi = (net_end(r) - base).min(last);
            (lo, hi)
        }
    }
}

impl Pool {
    /// A pool with nothing allocated. The id must have been validated by the caller.
    pub(crate) fn new(id: PoolId) -> Self {
        let (first, last) = host_window(&id.subnet);
        let (lo, hi) = any_window(&id.subnet, id.range.as_ref());
        Pool {
            id,
            v6: is_v6(&id.subnet),
            base: net_start(&id.subnet),
            first,
            last,
            lo,
            hi,
            allocated: RangeSet::default(),
            next: lo,
        }
    }

    /// The pool's id.
    pub(crate) fn id(&self) -> &PoolId {
        &self.id
    }

    /// The offset of `ip`, checked to be an allocatable address of the subnet.
    fn offset_of(&self, ip: IpAddr) -> Result<u128, IpamError> {
        if ip.is_ipv6() != self.v6 || !self.id.subnet.contains(&ip) {
            return Err(IpamError::IpOutOfRange { ip, pool: self.id });
        }
        let offset = to_u128(ip) - self.base;
        let reserved = match offset {
            0 if self.v6 => Some("subnet-router anycast address"),
            0 => Some("network address"),
            o if o > self.last => Some("broadcast address"),
            _ => None,
        };
        match reserved {
            Some(what) => Err(IpamError::IpReserved {
                ip,
                pool: self.id,
                what,
            }),
            None => Ok(offset),
        }
    }

    /// Allocates `ip`, which may lie anywhere in the subnet, even outside the sub-range.
    pub(crate) fn allocate_specific(&mut self, ip: IpAddr) -> Result<IpAddr, IpamError> {
        let offset = self.offset_of(ip)?;
        if !self.allocated.insert(offset) {
            return Err(IpamError::IpAlreadyAllocated { ip, pool: self.id });
        }
        self.advance(offset);
        Ok(ip)
    }

    /// Allocates a free address of the sub-range: the next after the cursor when `serial`
    /// (wrapping), else the lowest.
    pub(crate) fn allocate_any(&mut self, serial: bool) -> Result<IpAddr, IpamError> {
        let start = if serial && (self.lo..=self.hi).contains(&self.next) {
            self.next
        } else {
            self.lo
        };
        let offset = self
            .allocated
            .first_free_in(start, self.hi)
            .or_else(|| {
                self.allocated
                    .first_free_in(self.lo, start.saturating_sub(1))
            })
            .ok_or(IpamError::NoAvailableIps { pool: self.id })?;
        self.allocated.insert(offset);
        self.advance(offset);
        Ok(self.addr(offset))
    }

    /// Moves the serial cursor past `offset`, the address just handed out.
    fn advance(&mut self, offset: u128) {
        self.next = offset.saturating_add(1);
    }

    /// Frees `ip`.
    pub(crate) fn release(&mut self, ip: IpAddr) -> Result<(), IpamError> {
        let offset = self.offset_of(ip)?;
        if !self.allocated.remove(offset) {
            return Err(IpamError::NotAllocated { ip, pool: self.id });
        }
        Ok(())
    }

    /// True when `ip` is allocated; errors as for a release when it cannot be.
    pub(crate) fn is_allocated(&self, ip: IpAddr) -> Result<bool, IpamError> {
        Ok(self.allocated.contains(self.offset_of(ip)?))
    }

    /// The address at `offset`.
    fn addr(&self, offset: u128) -> IpAddr {
        from_u128(self.v6, self.base + offset)
    }

    /// Bounds and fill level.
    pub(crate) fn info(&self) -> PoolInfo {
        let free_in_window = (self.hi - self.lo + 1) - self.allocated.count_in(self.lo, self.hi);
        PoolInfo {
            id: self.id,
            subnet: self.id.subnet,
            range: self.id.range,
            gateway: self.id.default_gateway(),
            allocated: self.allocated.len(),
            capacity: self.last - self.first + 1,
            available: free_in_window,
        }
    }

    /// The allocated addresses as sorted runs.
    pub(crate) fn snapshot(&self) -> PoolSnapshot {
        let allocated = self
            .allocated
            .runs()
            .map(|(s, e)| AddrRange {
                first: self.addr(s),
                last: self.addr(e),
            })
            .collect();
        PoolSnapshot {
            id: self.id,
            allocated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(id: &str) -> Pool {
        Pool::new(id.parse().unwrap())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn windows_exclude_reserved_addresses() {
        assert_eq!(host_window(&"198.19.0.0/24".parse().unwrap()), (1, 254));
        assert_eq!(host_window(&"198.19.0.0/30".parse().unwrap()), (1, 2));
        assert_eq!(host_window(&"2001:db8::/120".parse().unwrap()), (1, 255));
        let subnet = "198.19.0.0/24".parse().unwrap();
        let range = "198.19.0.128/25".parse().unwrap();
        assert_eq!(any_window(&subnet, Some(&range)), (128, 254));
    }

    #[test]
    fn serial_wraps_to_the_start_of_the_range() {
        let mut p = pool("local/198.19.0.0/29/198.19.0.4/30");
        assert_eq!(p.allocate_any(true).unwrap(), ip("198.19.0.4"));
        assert_eq!(p.allocate_any(true).unwrap(), ip("198.19.0.5"));
        assert_eq!(p.allocate_any(true).unwrap(), ip("198.19.0.6"));
        p.release(ip("198.19.0.4")).unwrap();
        assert_eq!(p.allocate_any(true).unwrap(), ip("198.19.0.4"));
        assert!(matches!(
            p.allocate_any(true),
            Err(IpamError::NoAvailableIps { .. })
        ));
    }

    #[test]
    fn info_counts_window_and_subnet() {
        let mut p = pool("local/198.19.0.0/24/198.19.0.128/25");
        p.allocate_specific(ip("198.19.0.1")).unwrap();
        p.allocate_any(false).unwrap();
        let info = p.info();
        assert_eq!(
            (info.allocated, info.capacity, info.available),
            (2, 254, 126)
        );
    }
}
