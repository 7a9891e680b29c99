//! The serial allocator handing out VXLAN network identifiers ([`Vni`], from weft-types).
//!
//! As libnetwork's overlay manager does (reference §3.1), VNIs are handed out serially from
//! 4096, skipping those in use; past the last one the search wraps to the first, so a
//! released VNI is not reused at once. VNIs given by the user may lie anywhere in 1..2^24
//! and do not move the cursor.

use crate::AllocError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub use weft_types::vni::{MAX_VNI, Vni};

/// The first VNI handed out automatically (libnetwork's `vxlanIDStart`).
pub const FIRST_AUTO_VNI: u32 = 4096;

/// The range automatic VNIs are picked from, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VniRange {
    /// The first VNI handed out.
    pub first: Vni,
    /// The last VNI handed out before the search wraps.
    pub last: Vni,
}

impl Default for VniRange {
    /// 4096 to 2^24 - 1, as libnetwork.
    fn default() -> Self {
        VniRange {
            first: const { Vni::of(FIRST_AUTO_VNI) },
            last: const { Vni::of(MAX_VNI) },
        }
    }
}

/// The VNIs in use and where the serial search resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vnis {
    range: VniRange,
    used: BTreeSet<Vni>,
    /// The next VNI the serial search tries first.
    next: u32,
}

impl Vnis {
    /// An empty allocator over `range` (already validated: `first <= last`).
    pub(crate) fn new(range: VniRange) -> Self {
        Vnis {
            range,
            used: BTreeSet::new(),
            next: range.first.get(),
        }
    }

    /// Marks a VNI given by the user as used; refused if it is taken.
    pub(crate) fn take(&mut self, vni: Vni) -> Result<(), AllocError> {
        if !self.used.insert(vni) {
            return Err(AllocError::VniTaken { vni });
        }
        Ok(())
    }

    /// The next free VNI of the range at or after the cursor, wrapping once.
    pub(crate) fn allocate(&mut self) -> Result<Vni, AllocError> {
        let (first, last) = (self.range.first.get(), self.range.last.get());
        let start = Vni::new(self.next.clamp(first, last)).unwrap_or(self.range.first);
        let found = self
            .free_in(start, self.range.last)
            .or_else(|| self.free_in(self.range.first, start));
        let vni = found.ok_or(AllocError::VnisExhausted {
            first: self.range.first,
            last: self.range.last,
        })?;
        self.used.insert(vni);
        self.next = if vni.get() >= last {
            first
        } else {
            vni.get() + 1
        };
        Ok(vni)
    }

    /// The lowest free VNI in `from..=to`. Walks the used VNIs from `from`, so it costs
    /// one step per used VNI in the way, not one per candidate.
    fn free_in(&self, from: Vni, to: Vni) -> Option<Vni> {
        let mut candidate = from.get();
        for used in self.used.range(from..=to) {
            if used.get() != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        Vni::new(candidate).ok().filter(|vni| *vni <= to)
    }

    /// Frees a VNI; freeing one not in use is a no-op.
    pub(crate) fn release(&mut self, vni: Vni) {
        self.used.remove(&vni);
    }

    /// The VNIs in use, sorted.
    pub(crate) fn used(&self) -> Vec<Vni> {
        self.used.iter().copied().collect()
    }

    /// Where the serial search resumes.
    pub(crate) fn cursor(&self) -> u32 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: u32, last: u32) -> VniRange {
        VniRange {
            first: Vni::new(first).unwrap(),
            last: Vni::new(last).unwrap(),
        }
    }

    #[test]
    fn vni_bounds() {
        assert!(Vni::new(0).is_err());
        assert!(Vni::new(1 << 24).is_err());
        assert_eq!(Vni::new(MAX_VNI).unwrap().get(), MAX_VNI);
    }

    #[test]
    fn serial_from_4096_skipping_used() {
        let mut v = Vnis::new(VniRange::default());
        v.take(Vni::new(4097).unwrap()).unwrap();
        assert_eq!(v.allocate().unwrap().get(), 4096);
        assert_eq!(v.allocate().unwrap().get(), 4098);
    }

    #[test]
    fn released_is_not_reused_at_once_and_search_wraps() {
        let mut v = Vnis::new(range(10, 12));
        let a = v.allocate().unwrap();
        assert_eq!(a.get(), 10);
        v.release(a);
        assert_eq!(v.allocate().unwrap().get(), 11);
        assert_eq!(v.allocate().unwrap().get(), 12);
        assert_eq!(v.allocate().unwrap().get(), 10);
        assert!(matches!(
            v.allocate(),
            Err(AllocError::VnisExhausted { .. })
        ));
    }

    #[test]
    fn wraps_before_2_pow_24() {
        let mut v = Vnis::new(range(MAX_VNI - 1, MAX_VNI));
        assert_eq!(v.allocate().unwrap().get(), MAX_VNI - 1);
        assert_eq!(v.allocate().unwrap().get(), MAX_VNI);
        v.release(Vni::new(MAX_VNI - 1).unwrap());
        assert_eq!(v.allocate().unwrap().get(), MAX_VNI - 1);
    }

    #[test]
    fn taken_vni_is_refused() {
        let mut v = Vnis::new(VniRange::default());
        v.take(Vni::new(5).unwrap()).unwrap();
        assert_eq!(
            v.take(Vni::new(5).unwrap()),
            Err(AllocError::VniTaken {
                vni: Vni::new(5).unwrap()
            })
        );
    }
}
