//! Member states as users see them, derived sans-IO from chitchat's failure detector.
//!
//! chitchat only knows live and dead. We add time: a dead node is `Suspect` for the
//! suspicion window (its entries are kept, suspended) and `Dead` after it (its entries
//! are deleted). A node that published the leaving marker is `Left` at once. The clock
//! is an input (`now`), so tests drive it.
//!
//! Silence alone does not tell a crashed agent from a lost host, and a crashed agent's
//! sandboxes still run. So the window counts from the last sign of life of either the
//! agent (gossip) or its host (an answer to a probe the kernel gives without the agent,
//! fed in by the caller): a node whose host keeps answering stays `Suspect`, its entries
//! kept, for as long as it answers.

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
    /// Silent for less than the suspicion window, counted from the last sign of life of
    /// the agent or its host: its entries are kept.
    Suspect,
    /// Silent, and its host too, for longer than the window: its entries are deleted.
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
    /// Records one observation of a generation and returns its liveness. `host_seen` is
    /// when its host last answered a probe: silence counts from the later of that and the
    /// first observation of silence.
    pub fn observe(
        &mut self,
        id: &ChitchatId,
        alive: bool,
        host_seen: Option<Instant>,
        now: Instant,
    ) -> Liveness {
        if alive {
            self.dead_since.remove(id);
            return Liveness::Alive;
        }
        let since = self.dead_since.entry(id.clone()).or_insert(now);
        if let Some(seen) = host_seen {
            *since = (*since).max(seen.min(now));
        }
        Liveness::DeadFor(now.saturating_duration_since(*since))
    }

    /// Forgets generations chitchat no longer holds.
    pub fn retain(&mut self, keep: impl Fn(&ChitchatId) -> bool) {
        self.dead_since.retain(|id, _| keep(id));
    }
}

/// A member whose status changed between two views of the membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    pub node_id: String,
    pub generation: u64,
    /// `None` for a member not seen before.
    pub from: Option<MemberStatus>,
    pub to: MemberStatus,
}

impl StatusChange {
    /// Why an operator sees this change, in words.
    pub fn reason(&self) -> &'static str {
        match (self.from, self.to) {
            (None, MemberStatus::Alive) => "joined",
            (Some(MemberStatus::Alive), MemberStatus::Suspect) | (None, MemberStatus::Suspect) => {
                "its gossip went silent: its entries are kept for the suspicion window, and for as long as its host answers probes"
            }
            (_, MemberStatus::Dead) => {
                "silent for longer than the suspicion window: its entries are removed"
            }
            (_, MemberStatus::Left) => "it left the cluster: its entries are removed",
            (Some(_), MemberStatus::Alive) => "heard again: its entries are back",
            (Some(_), MemberStatus::Suspect) => "silent again",
        }
    }
}

/// The status changes from `old` to `new` (one member per node id), for logging; this
/// node itself, and members whose status did not change, are left out.
pub fn status_changes(old: &[Member], new: &[Member], self_id: &str) -> Vec<StatusChange> {
    new.iter()
        .filter(|m| m.node_id != self_id)
        .filter_map(|m| {
            let before = old.iter().find(|o| o.node_id == m.node_id);
            let from = before.map(|o| o.status);
            let same = before.is_some_and(|o| o.status == m.status && o.generation == m.generation);
            (!same).then(|| StatusChange {
                node_id: m.node_id.clone(),
                generation: m.generation,
                from,
                to: m.status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    fn member(id: &str, generation: u64, status: MemberStatus) -> Member {
        Member {
            node_id: id.to_owned(),
            generation,
            addr: SocketAddr::from(([127, 0, 0, 1], 7946)),
            status,
            entries: 0,
            key_ids: Vec::new(),
            primary_key: None,
        }
    }

    #[test]
    fn status_changes_name_each_member_that_moved() {
        use MemberStatus::*;
        let old = [
            member("me", 1, Alive),
            member("a", 1, Alive),
            member("b", 1, Suspect),
        ];
        let new = [
            member("me", 1, Suspect),
            member("a", 1, Suspect),
            member("b", 1, Dead),
            member("c", 1, Alive),
        ];
        let got = status_changes(&old, &new, "me");
        let short: Vec<_> = got
            .iter()
            .map(|c| (c.node_id.as_str(), c.from, c.to))
            .collect();
        assert_eq!(
            short,
            [
                ("a", Some(Alive), Suspect),
                ("b", Some(Suspect), Dead),
                ("c", None, Alive)
            ]
        );
        assert!(got[1].reason().contains("removed"));
        assert_eq!(got[2].reason(), "joined");
        // Nothing moved: nothing to say. A restart under a new generation is said.
        assert!(status_changes(&new, &new, "me").is_empty());
        let restarted = [member("a", 2, Alive)];
        let again = status_changes(&new, &restarted, "me");
        assert_eq!(again[0].reason(), "heard again: its entries are back");
    }

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
        assert_eq!(tracker.observe(&id, true, None, t0), Liveness::Alive);
        assert_eq!(
            tracker.observe(&id, false, None, t0),
            Liveness::DeadFor(Duration::ZERO)
        );
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(
            tracker.observe(&id, false, None, t1),
            Liveness::DeadFor(Duration::from_secs(3))
        );
        assert_eq!(tracker.observe(&id, true, None, t1), Liveness::Alive);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            tracker.observe(&id, false, None, t2),
            Liveness::DeadFor(Duration::ZERO)
        );
        tracker.retain(|_| false);
        assert_eq!(
            tracker.observe(&id, false, None, t2 + Duration::from_secs(5)),
            Liveness::DeadFor(Duration::ZERO)
        );
    }

    #[test]
    fn a_host_that_answers_holds_the_window_open_and_its_silence_starts_it() {
        let id = ChitchatId::new("a", 1, ([127, 0, 0, 1], 1).into());
        let w = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut tracker = LivenessTracker::default();
        let status = |l| member_status(l, false, w);
        // The agent is silent for far longer than the window; its host answered a moment
        // ago every time: suspect, never dead.
        for minute in 1..=10 {
            let now = t0 + Duration::from_secs(60 * minute);
            let seen = Some(now - Duration::from_millis(250));
            let l = tracker.observe(&id, false, seen, now);
            assert_eq!(status(l), MemberStatus::Suspect, "minute {minute}");
        }
        // The host stops answering: the window starts from its last answer.
        let last = t0 + Duration::from_secs(600) - Duration::from_millis(250);
        let before = tracker.observe(&id, false, Some(last), last + w - Duration::from_secs(1));
        assert_eq!(status(before), MemberStatus::Suspect);
        let after = tracker.observe(&id, false, Some(last), last + w);
        assert_eq!(status(after), MemberStatus::Dead);
        // An answer older than the silence changes nothing.
        let id2 = ChitchatId::new("b", 1, ([127, 0, 0, 1], 2).into());
        tracker.observe(&id2, false, None, t0);
        let l = tracker.observe(&id2, false, Some(t0 - w), t0 + w);
        assert_eq!(status(l), MemberStatus::Dead);
    }
}
