//! Reassembly of fragmented gossip messages, sans-IO (time is an input).
//!
//! chitchat fills a delta up to 65 506 bytes, which leaves no room for our 34 bytes of
//! sealing; such a message would be dropped forever and a node catching up on a large
//! state would never converge. The sender splits a message that does not fit into up to
//! [`MAX_FRAGMENTS`] sealed fragments; this buffers them per (sender, message id), bounded
//! in count and time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most fragments one message may be split into.
pub const MAX_FRAGMENTS: u8 = 4;
/// Most messages being reassembled at once; the oldest is evicted beyond.
pub const MAX_PARTIALS: usize = 32;
/// How long fragments of an incomplete message are kept.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(2);

/// A fragment that contradicts earlier fragments of the same message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contradiction;

/// One opened fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    pub msg_id: u32,
    pub index: u8,
    pub count: u8,
    pub chunk: Vec<u8>,
}

#[derive(Debug)]
struct Partial {
    parts: Vec<Option<Vec<u8>>>,
    started: Instant,
}

/// Fragments waiting for their siblings.
#[derive(Debug, Default)]
pub struct Reassembly {
    partials: HashMap<(SocketAddr, u32), Partial>,
    discarded: u64,
}

impl Reassembly {
    /// Adds a fragment; returns the whole payload once every fragment is in, an error
    /// when it contradicts earlier fragments of the same message.
    pub fn insert(
        &mut self,
        from: SocketAddr,
        frag: Fragment,
        now: Instant,
    ) -> Result<Option<Vec<u8>>, Contradiction> {
        self.expire(now);
        let id = (from, frag.msg_id);
        if !self.partials.contains_key(&id) && self.partials.len() >= MAX_PARTIALS {
            self.evict_oldest();
        }
        let partial = self.partials.entry(id).or_insert_with(|| Partial {
            parts: vec![None; usize::from(frag.count)],
            started: now,
        });
        let index = usize::from(frag.index);
        if partial.parts.len() != usize::from(frag.count) || index >= partial.parts.len() {
            self.partials.remove(&id);
            return Err(Contradiction);
        }
        partial.parts[index] = Some(frag.chunk);
        if partial.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let whole = self
            .partials
            .remove(&id)
            .map(|p| p.parts.into_iter().flatten().flatten().collect());
        Ok(whole)
    }

    /// Incomplete messages given up so far (expired or evicted).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    fn expire(&mut self, now: Instant) {
        let before = self.partials.len();
        self.partials
            .retain(|_, p| now.saturating_duration_since(p.started) < REASSEMBLY_TIMEOUT);
        self.discarded += (before - self.partials.len()) as u64;
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .partials
            .iter()
            .min_by_key(|(_, p)| p.started)
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.partials.remove(&id);
            self.discarded += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(msg_id: u32, index: u8, count: u8, chunk: &[u8]) -> Fragment {
        Fragment {
            msg_id,
            index,
            count,
            chunk: chunk.to_vec(),
        }
    }

    fn addr(port: u16) -> SocketAddr {
        ([127, 0, 0, 1], port).into()
    }

    #[test]
    fn reassembles_in_any_order() {
        let mut r = Reassembly::default();
        let t = Instant::now();
        assert_eq!(r.insert(addr(1), frag(7, 1, 2, b"world"), t), Ok(None));
        assert_eq!(
            r.insert(addr(1), frag(7, 0, 2, b"hello "), t),
            Ok(Some(b"hello world".to_vec()))
        );
        assert_eq!(
            r.insert(addr(1), frag(7, 0, 2, b"again"), t),
            Ok(None),
            "a fresh message"
        );
    }

    #[test]
    fn senders_and_ids_do_not_mix() {
        let mut r = Reassembly::default();
        let t = Instant::now();
        assert_eq!(r.insert(addr(1), frag(7, 0, 2, b"a"), t), Ok(None));
        assert_eq!(r.insert(addr(2), frag(7, 1, 2, b"b"), t), Ok(None));
        assert_eq!(r.insert(addr(1), frag(8, 1, 2, b"c"), t), Ok(None));
        assert_eq!(
            r.insert(addr(1), frag(7, 1, 2, b"d"), t),
            Ok(Some(b"ad".to_vec()))
        );
    }

    #[test]
    fn contradictions_are_refused() {
        let mut r = Reassembly::default();
        let t = Instant::now();
        assert_eq!(r.insert(addr(1), frag(7, 0, 2, b"a"), t), Ok(None));
        assert_eq!(
            r.insert(addr(1), frag(7, 1, 3, b"b"), t),
            Err(Contradiction)
        );
        assert_eq!(
            r.insert(addr(1), frag(9, 3, 2, b"b"), t),
            Err(Contradiction)
        );
    }

    #[test]
    fn incomplete_messages_expire_and_are_bounded() {
        let mut r = Reassembly::default();
        let t = Instant::now();
        assert_eq!(r.insert(addr(1), frag(1, 0, 2, b"a"), t), Ok(None));
        let later = t + REASSEMBLY_TIMEOUT;
        assert_eq!(
            r.insert(addr(1), frag(1, 1, 2, b"b"), later),
            Ok(None),
            "first half expired"
        );
        assert_eq!(r.discarded(), 1);
        for id in 0..(MAX_PARTIALS as u32 + 5) {
            let _ = r.insert(addr(2), frag(100 + id, 0, 2, b"x"), later);
        }
        assert!(r.partials.len() <= MAX_PARTIALS);
        assert_eq!(r.discarded(), 1 + 6);
    }
}
