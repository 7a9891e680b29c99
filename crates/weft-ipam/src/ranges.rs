//! A set of `u128` ordinals stored as maximal runs of consecutive members.
//!
//! This replaces libnetwork's run-length bitmap (`bitseq`): memory grows with the number of
//! runs, not with the size of the pool, so a /64 (or larger) IPv6 pool costs nothing until
//! addresses are handed out, and serially allocated addresses collapse into one run.
//! Invariant: runs are disjoint, non-adjacent (always coalesced) and non-empty, so the
//! representation of a given set is unique and two sets compare equal exactly when they
//! hold the same members.

use std::collections::BTreeMap;

/// Ordinals kept as `start -> end` (inclusive) runs, plus their total count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    runs: BTreeMap<u128, u128>,
    count: u128,
}

impl RangeSet {
    /// Number of members.
    pub(crate) fn len(&self) -> u128 {
        self.count
    }

    /// The run holding `x`, if any.
    fn run_containing(&self, x: u128) -> Option<(u128, u128)> {
        let (&start, &end) = self.runs.range(..=x).next_back()?;
        (end >= x).then_some((start, end))
    }

    /// True when `x` is a member.
    pub(crate) fn contains(&self, x: u128) -> bool {
        self.run_containing(x).is_some()
    }

    /// Adds `x`; false when it was already a member.
    pub(crate) fn insert(&mut self, x: u128) -> bool {
        let mut start = x;
        let mut end = x;
        if let Some((&s, &e)) = self.runs.range(..=x).next_back() {
            if e >= x {
                return false;
            }
            // e < x, so e + 1 cannot overflow.
            if e + 1 == x {
                start = s;
            }
        }
        if let Some(next) = x.checked_add(1)
            && let Some(e) = self.runs.remove(&next)
        {
            end = e;
        }
        self.runs.insert(start, end);
        self.count += 1;
        true
    }

    /// Removes `x`; false when it was not a member.
    pub(crate) fn remove(&mut self, x: u128) -> bool {
        let Some((start, end)) = self.run_containing(x) else {
            return false;
        };
        if start < x {
            self.runs.insert(start, x - 1);
        } else {
            self.runs.remove(&start);
        }
        if x < end {
            self.runs.insert(x + 1, end);
        }
        self.count -= 1;
        true
    }

    /// The lowest non-member in `[lo, hi]`.
    pub(crate) fn first_free_in(&self, lo: u128, hi: u128) -> Option<u128> {
        if lo > hi {
            return None;
        }
        // Runs are coalesced, so the ordinal right after the run holding `lo` is free.
        let candidate = match self.run_containing(lo) {
            Some((_, end)) => end.checked_add(1)?,
            None => lo,
        };
        (candidate <= hi).then_some(candidate)
    }

    /// Number of members in `[lo, hi]`.
    pub(crate) fn count_in(&self, lo: u128, hi: u128) -> u128 {
        if lo > hi {
            return 0;
        }
        let mut total = 0;
        // Runs are disjoint and sorted, so walking back from `hi` their ends decrease too.
        for (&start, &end) in self.runs.range(..=hi).rev() {
            if end < lo {
                break;
            }
            total += end.min(hi) - start.max(lo) + 1;
        }
        total
    }

    /// The runs as inclusive `(start, end)` pairs, in increasing order.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.runs.iter().map(|(&s, &e)| (s, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[u128]) -> RangeSet {
        let mut s = RangeSet::default();
        for &m in members {
            assert!(s.insert(m));
        }
        s
    }

    #[test]
    fn inserts_coalesce_into_one_run() {
        let s = set(&[3, 1, 2, 5, 4]);
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(1, 5)]);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn insert_twice_is_refused() {
        let mut s = set(&[7]);
        assert!(!s.insert(7));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn remove_splits_runs() {
        let mut s = set(&[1, 2, 3, 4, 5]);
        assert!(s.remove(3));
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(1, 2), (4, 5)]);
        assert!(s.remove(1));
        assert!(s.remove(5));
        assert_eq!(s.runs().collect::<Vec<_>>(), vec![(2, 2), (4, 4)]);
        assert!(!s.remove(3));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn representation_is_canonical() {
        let mut a = set(&[1, 2, 3]);
        a.remove(2);
        a.insert(2);
        assert_eq!(a, set(&[3, 2, 1]));
    }

    #[test]
    fn first_free_skips_runs() {
        let s = set(&[1, 2, 3, 6]);
        assert_eq!(s.first_free_in(1, 10), Some(4));
        assert_eq!(s.first_free_in(0, 10), Some(0));
        assert_eq!(s.first_free_in(6, 10), Some(7));
        assert_eq!(s.first_free_in(1, 3), None);
        assert_eq!(s.first_free_in(5, 4), None);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut s = set(&[u128::MAX, u128::MAX - 1, 0]);
        assert_eq!(s.first_free_in(u128::MAX - 1, u128::MAX), None);
        assert!(s.contains(u128::MAX));
        assert!(s.remove(u128::MAX));
        assert_eq!(s.first_free_in(u128::MAX - 1, u128::MAX), Some(u128::MAX));
    }

    #[test]
    fn count_in_clips_runs() {
        let s = set(&[1, 2, 3, 4, 8, 9, 20]);
        assert_eq!(s.count_in(0, 100), 7);
        assert_eq!(s.count_in(3, 8), 3);
        assert_eq!(s.count_in(5, 7), 0);
        assert_eq!(s.count_in(9, 9), 1);
    }
}
