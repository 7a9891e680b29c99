//! What a watcher has not taken yet. Events go to a watcher with `try_send`, which respects
//! its mailbox's capacity (actix's `do_send` does not, so a watcher that stopped reading
//! grew memory without limit). When the mailbox is full, changes wait here, folded per
//! key: the first change's previous value with the last one's new value, and a create
//! followed by a delete is nothing. So the outbox holds at most one change per key, a
//! bound set by the table, not by the rate of changes, and a watcher that reads again
//! converges to the current state without a gap (every key's latest value reaches it).

use crate::schema::TableKey;
use crate::view::Change;
use std::collections::BTreeMap;

/// One waiting change, and whether it is part of the watch's initial snapshot.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub change: Change,
    pub snapshot: bool,
}

/// The changes waiting for one watcher, at most one per key.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pending: BTreeMap<TableKey, Pending>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Adds a change; true when it was folded into one already waiting (a coalesced event).
    pub fn push(&mut self, change: Change, snapshot: bool) -> bool {
        let Some(first) = self.pending.remove(&change.key) else {
            self.pending
                .insert(change.key.clone(), Pending { change, snapshot });
            return false;
        };
        let folded = Change {
            key: change.key,
            prev: first.change.prev,
            next: change.next,
        };
        // Back where it started (a create then a delete, or A -> B -> A): nothing to tell.
        if folded.prev != folded.next {
            let snapshot = first.snapshot;
            self.pending.insert(
                folded.key.clone(),
                Pending {
                    change: folded,
                    snapshot,
                },
            );
        }
        true
    }

    /// The next change to deliver, left in place until [`Outbox::delivered`].
    pub fn next(&self) -> Option<&Pending> {
        self.pending.values().next()
    }

    /// Removes the change [`Outbox::next`] returned, once the watcher took it.
    pub fn delivered(&mut self) {
        self.pending.pop_first();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::view::Entry;
    use std::sync::Arc;

    fn key(k: &str) -> TableKey {
        TableKey::new("t", weft_types::NetworkId::cluster(), k).unwrap()
    }

    fn entry(v: u8) -> Option<Entry> {
        Some(Entry {
            owner: Arc::from("n1"),
            value: vec![v].into(),
        })
    }

    fn change(k: &str, prev: Option<u8>, next: Option<u8>) -> Change {
        Change {
            key: key(k),
            prev: prev.and_then(entry),
            next: next.and_then(entry),
        }
    }

    #[test]
    fn a_flood_on_few_keys_stays_one_change_per_key() {
        let mut outbox = Outbox::default();
        let mut coalesced = 0;
        for i in 0..100_000u32 {
            let k = format!("k{}", i % 100);
            let v = u8::try_from(i % 251).unwrap();
            coalesced += usize::from(outbox.push(change(&k, None, Some(v)), false));
        }
        assert_eq!(outbox.len(), 100);
        assert_eq!(coalesced, 100_000 - 100);
    }

    #[test]
    fn folding_keeps_the_first_previous_and_the_last_value() {
        let mut outbox = Outbox::default();
        outbox.push(change("a", Some(1), Some(2)), false);
        outbox.push(change("a", Some(2), Some(3)), false);
        let next = outbox.next().unwrap();
        assert_eq!(next.change.prev, entry(1));
        assert_eq!(next.change.next, entry(3));
        // A create then a delete is nothing; A -> B -> A is nothing.
        outbox.push(change("b", None, Some(1)), true);
        outbox.push(change("b", Some(1), None), false);
        outbox.push(change("c", Some(1), Some(2)), false);
        outbox.push(change("c", Some(2), Some(1)), false);
        assert_eq!(outbox.len(), 1);
        outbox.delivered();
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_snapshot_create_folded_with_live_changes_stays_a_snapshot_create() {
        let mut outbox = Outbox::default();
        outbox.push(change("a", None, Some(1)), true);
        outbox.push(change("a", Some(1), Some(2)), false);
        let next = outbox.next().unwrap();
        assert!(next.snapshot);
        assert_eq!(
            (next.change.prev.clone(), next.change.next.clone()),
            (None, entry(2))
        );
    }
}
