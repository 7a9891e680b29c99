//! Lazy, round-robin search through the predefined pools of one family.
//!
//! The pools are seen as one sequence of candidate subnets, indexed from 0. Nothing is
//! materialised: a candidate is computed from its index, and a candidate blocked by an
//! allocated pool makes the search jump to the first candidate past that pool, so a search
//! costs at most one step per blocking pool, not one per candidate (10.0.0.0/8 in /24s is
//! 65 536 candidates).

use crate::config::PredefinedPool;
use ipnet::IpNet;

/// The predefined pools of one family in one address space.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates {
    pools: Vec<PredefinedPool>,
    /// `offsets[i]` is the global index of the first subnet of `pools[i]`.
    offsets: Vec<u128>,
    total: u128,
}

impl Candidates {
    /// The pools of `all` whose family is `v6`, in configured order.
    pub(crate) fn new(all: &[PredefinedPool], v6: bool) -> Self {
        let mut candidates = Candidates::default();
        for pool in all.iter().filter(|p| p.is_v6() == v6) {
            candidates.offsets.push(candidates.total);
            candidates.pools.push(*pool);
            candidates.total = candidates.total.saturating_add(pool.count());
        }
        candidates
    }

    /// The global index of `net` when it is one of the candidates.
    pub(crate) fn index_of(&self, net: &IpNet) -> Option<u128> {
        self.pools
            .iter()
            .zip(&self.offsets)
            .find_map(|(pool, offset)| {
                let index = pool
                    .index_after(crate::addr::to_u128(net.network()))
                    .checked_sub(1)?;
                (pool.nth(index) == Some(*net)).then_some(offset + index)
            })
    }

    /// The first candidate at or after global index `start`, wrapping once around, that
    /// `blocker` accepts. `blocker` returns `None` for a usable subnet, or the last address
    /// (as an integer) of whatever blocks it. Returns the candidate's global index.
    pub(crate) fn find(
        &self,
        start: u128,
        mut blocker: impl FnMut(&IpNet) -> Option<u128>,
    ) -> Option<(u128, IpNet)> {
        if self.pools.is_empty() {
            return None;
        }
        let start = if start >= self.total { 0 } else { start };
        let first = self.offsets.partition_point(|&o| o <= start) - 1;
        let skip = start - self.offsets[first];
        let n = self.pools.len();
        // Visit the tail of the first pool, every other pool, then the head of the first.
        for step in 0..=n {
            let i = (first + step) % n;
            let pool = &self.pools[i];
            let (from, to) = match step {
                0 => (skip, pool.count()),
                s if s == n => (0, skip),
                _ => (0, pool.count()),
            };
            if let Some((local, net)) = scan(pool, from, to, &mut blocker) {
                return Some((self.offsets[i] + local, net));
            }
        }
        None
    }
}

/// The first candidate of `pool` in `[from, to)` that `blocker` accepts.
fn scan(
    pool: &PredefinedPool,
    from: u128,
    to: u128,
    blocker: &mut impl FnMut(&IpNet) -> Option<u128>,
) -> Option<(u128, IpNet)> {
    let mut index = from;
    while index < to {
        let net = pool.nth(index)?;
        match blocker(&net) {
            None => return Some((index, net)),
            // The blocker overlaps `net`, so it ends at or after its start: progress is certain.
            Some(last) => index = pool.index_after(last).max(index + 1),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{net_end, net_start};

    fn pools() -> Vec<PredefinedPool> {
        vec![
            PredefinedPool {
                base: "198.19.0.0/22".parse().unwrap(),
                size: 24,
            },
            PredefinedPool {
                base: "2001:db8::/48".parse().unwrap(),
                size: 64,
            },
            PredefinedPool {
                base: "198.19.16.0/20".parse().unwrap(),
                size: 20,
            },
        ]
    }

    fn blocked_by(taken: &[&str]) -> impl FnMut(&IpNet) -> Option<u128> {
        let taken: Vec<IpNet> = taken.iter().map(|s| s.parse().unwrap()).collect();
        move |net: &IpNet| {
            taken
                .iter()
                .find(|t| net_start(t) <= net_end(net) && net_start(net) <= net_end(t))
                .map(net_end)
        }
    }

    #[test]
    fn families_are_separate() {
        let c = Candidates::new(&pools(), false);
        assert_eq!(c.total, 5);
        let c6 = Candidates::new(&pools(), true);
        assert_eq!(c6.total, 1 << 16);
        let (_, net) = c6.find(0, blocked_by(&[])).unwrap();
        assert_eq!(net.to_string(), "2001:db8::/64");
    }

    #[test]
    fn search_starts_at_cursor_and_wraps() {
        let c = Candidates::new(&pools(), false);
        let (i, net) = c.find(3, blocked_by(&[])).unwrap();
        assert_eq!((i, net.to_string().as_str()), (3, "198.19.3.0/24"));
        let (i, net) = c.find(4, blocked_by(&["198.19.16.0/20"])).unwrap();
        assert_eq!((i, net.to_string().as_str()), (0, "198.19.0.0/24"));
        let (i, _) = c.find(99, blocked_by(&[])).unwrap();
        assert_eq!(i, 0);
    }

    #[test]
    fn large_blockers_are_skipped_in_one_step() {
        let c = Candidates::new(&pools(), false);
        let mut calls = 0;
        let mut inner = blocked_by(&["198.19.0.0/23", "198.19.3.0/24"]);
        let found = c.find(0, |n: &IpNet| {
            calls += 1;
            inner(n)
        });
        assert_eq!(found.unwrap().1.to_string(), "198.19.2.0/24");
        assert_eq!(calls, 2);
    }

    #[test]
    fn everything_blocked_is_none() {
        let c = Candidates::new(&pools(), false);
        assert!(c.find(2, blocked_by(&["198.19.0.0/16"])).is_none());
        assert!(
            Candidates::new(&[], false)
                .find(0, blocked_by(&[]))
                .is_none()
        );
    }
}
