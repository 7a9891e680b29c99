//! Member states as users see them, derived sans-IO from chitchat's failure detector.
//!
//! chitchat only knows live and dead. We add time: a dead node is `Suspect` for the
//! suspicion window (its entries are kept, suspended) and `Dead` after it (its entries
//! are deleted). A node that published the leaving marker is `Left` at once. The clock
//! is an input (`now`), so tests drive it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chitchat::ChitchatId;
use serde::{Deserialize, Serialize};
use weft_keys::KeyId;

/// How a member is seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// The failure detector hears its heartbeats.
    Alive,
    /// Silent for less than the suspicion window: its entries are kept.
    Suspect,
    /// Silent for longer than the window: its entries are deleted.
    Dead,
    /// It left gracefully: its entries are deleted.
    Left,
}

impl MemberStatus {
    /// Whether this member's entries are part of the tables.
    pub fn entries_visible(self) -> bool {
        matches!(self, MemberStatus::Alive | MemberStatus::Suspect)
    }
}

/// What the failure detector says of one generation, with how long it has been silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Heard recently.
    Alive,
    /// Not heard from for this long (as far as this node has tracked it).
    DeadFor(Duration),
}

/// The status of a member given its liveness, its leaving marker and the window.
pub fn member_status(liveness: Liveness, leaving: bool, window: Duration) -> MemberStatus {
    match (leaving, liveness) {
        (true, _) => MemberStatus::Left,
        (false, Liveness::Alive) => MemberStatus::Alive,
        (false, Liveness::DeadFor(d)) if d < window => MemberStatus::Suspect,
        (false, Liveness::DeadFor(_)) => MemberStatus::Dead,
    }
}

/// One member (the effective generation of one node id) for listings and diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: String,
    pub generation: u64,
    pub addr: SocketAddr,
    pub status: MemberStatus,
    /// Entries it owns (visible or suspended).
    pub entries: usize,
    /// The gossip key ids it holds, as it published them.
    pub key_ids: Vec<KeyId>,
    /// Its primary gossip key id, as it published it.
    pub primary_key: Option<KeyId>,
}

/// Remembers since when each generation has been silent.
#[derive(Debug, Default)]
pub struct LivenessTracker {
    dead_since: HashMap<ChitchatId, Instant>,
}

impl LivenessTracker {
    /// Records one observation of a generation and returns its liveness.
    pub fn observe(&mut self, id: &ChitchatId, alive: bool, now: Instant) -> Liveness {
        if alive {
            self.dead_since.remove(id);
            return Liveness::Alive;
        }
        let since = *self.dead_since.entry(id.clone()).or_insert(now);
        Liveness::DeadFor(now.saturating_duration_since(since))
    }

    /// Forgets generations chitchat no longer holds.
    pub fn retain(&mut self, keep: impl Fn(&ChitchatId) -> bool) {
        self.dead_since.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    #[test]
    fn status_table() {
        let cases = [
            (Liveness::Alive, false, MemberStatus::Alive),
            (Liveness::Alive, true, MemberStatus::Left),
            (
                Liveness::DeadFor(Duration::ZERO),
                false,
                MemberStatus::Suspect,
            ),
            (
                Liveness::DeadFor(W - Duration::from_millis(1)),
                false,
                MemberStatus::Suspect,
            ),
            (Liveness::DeadFor(W), false, MemberStatus::Dead),
            (Liveness::DeadFor(W * 9), false, MemberStatus::Dead),
            (Liveness::DeadFor(Duration::ZERO), true, MemberStatus::Left),
        ];
        for (liveness, leaving, want) in cases {
            assert_eq!(
                member_status(liveness, leaving, W),
                want,
                "{liveness:?} {leaving}"
            );
        }
        assert!(MemberStatus::Suspect.entries_visible());
        assert!(!MemberStatus::Dead.entries_visible());
        assert!(!MemberStatus::Left.entries_visible());
    }

    #[test]
    fn tracker_measures_silence_and_resets_on_return() {
        let id = ChitchatId::new("a", 1, ([127, 0, 0, 1], 1).into());
        let t0 = Instant::now();
        let mut tracker = LivenessTracker::default();
        assert_eq!(tracker.observe(&id, true, t0), Liveness::Alive);
        assert_eq!(
            tracker.observe(&id, false, t0),
            Liveness::DeadFor(Duration::ZERO)
        );
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(
            tracker.observe(&id, false, t1),
            Liveness::DeadFor(Duration::from_secs(3))
        );
        assert_eq!(tracker.observe(&id, true, t1), Liveness::Alive);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            tracker.observe(&id, false, t2),
            Liveness::DeadFor(Duration::ZERO)
        );
        tracker.retain(|_| false);
        assert_eq!(
            tracker.observe(&id, false, t2 + Duration::from_secs(5)),
            Liveness::DeadFor(Duration::ZERO)
        );
    }
}
