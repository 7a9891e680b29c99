//! The materialised view of all tables and the diff that turns gossip state into events.
//!
//! Pure functions (CONVENTIONS 5, 12): chitchat node states are parsed into
//! [`NodeContent`], one generation per node id is chosen, the entries of members whose
//! status shows them are merged into a [`View`], and two views are diffed into
//! [`Change`]s. chitchat raises no event on delete; diffing views derives creates, updates
//! and deletes alike, whatever caused them (a tombstone, a reset, a leave, a death).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chitchat::ChitchatId;

use crate::membership::{Liveness, Member, MemberStatus, member_status};
use crate::schema::{self, KEYS_KEY, LEAVING_KEY, READY_KEY, TableKey};
use weft_keys::KeyId;

/// A table value.
pub type Value = Arc<[u8]>;

/// One visible entry: its owner and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The node id that wrote it.
    pub owner: Arc<str>,
    /// Its value.
    pub value: Value,
}

/// Every visible entry of every table.
pub type View = BTreeMap<TableKey, Entry>;

/// What one generation of one node published, parsed from its chitchat key-values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeContent {
    /// Its table entries.
    pub entries: BTreeMap<TableKey, Value>,
    /// It published `m:ready`.
    pub ready: bool,
    /// It published `m:leaving`.
    pub leaving: bool,
    /// Its published key ids and primary.
    pub keys: Option<(Vec<KeyId>, KeyId)>,
    /// Entry keys or values that did not parse (skipped).
    pub malformed: usize,
}

/// Parses the live (not tombstoned) key-values of one node state.
pub fn parse_node<'a>(kvs: impl Iterator<Item = (&'a str, &'a str)>) -> NodeContent {
    let mut content = NodeContent::default();
    for (key, value) in kvs {
        match key {
            READY_KEY => content.ready = true,
            LEAVING_KEY => content.leaving = true,
            KEYS_KEY => content.keys = schema::decode_key_ids(value),
            _ => match (TableKey::from_gossip_key(key), schema::decode_value(value)) {
                (Some(k), Some(v)) => {
                    content.entries.insert(k, v.into());
                }
                (Some(_), None) => content.malformed += 1,
                (None, _) if key.starts_with("e:") => content.malformed += 1,
                (None, _) => {}
            },
        }
    }
    content
}

/// One generation of one node as the view function sees it.
#[derive(Clone, Copy, Debug)]
pub struct NodeInput<'a> {
    pub id: &'a ChitchatId,
    pub liveness: Liveness,
    pub content: &'a NodeContent,
}

/// Picks one generation per node id: the newest ready one, else the newest.
///
/// A restarted node comes back with a larger generation; until its new state is ready
/// (all the entries it starts with have arrived), the old generation stands in for it,
/// suspended, so a restart inside the window causes no delete-then-create flicker.
pub fn effective_generations<'a>(nodes: &[NodeInput<'a>]) -> Vec<NodeInput<'a>> {
    let mut by_node: BTreeMap<&str, NodeInput<'a>> = BTreeMap::new();
    for node in nodes {
        let slot = by_node.entry(&node.id.node_id).or_insert(*node);
        if better(node, slot) {
            *slot = *node;
        }
    }
    by_node.into_values().collect()
}

fn better(candidate: &NodeInput<'_>, current: &NodeInput<'_>) -> bool {
    let rank = |n: &NodeInput<'_>| (n.content.ready, n.id.generation_id);
    rank(candidate) > rank(current)
}

/// Builds the view and the member list from every known generation of every node.
///
/// Entries of `Alive` and `Suspect` members are visible. If two nodes own the same key
/// (concurrent creates), the smallest node id wins everywhere; the other is shadowed and
/// shows again if the winner deletes it.
pub fn materialise(nodes: &[NodeInput<'_>], window: Duration) -> (View, Vec<Member>) {
    let mut view = View::new();
    let mut members = Vec::new();
    for node in effective_generations(nodes) {
        let status = member_status(node.liveness, node.content.leaving, window);
        members.push(member(&node, status));
        if !status.entries_visible() {
            continue;
        }
        for (key, value) in &node.content.entries {
            // Nodes come in ascending node id order: the first owner of a key wins.
            view.entry(key.clone()).or_insert_with(|| Entry {
                owner: node.id.node_id.clone(),
                value: value.clone(),
            });
        }
    }
    (view, members)
}

fn member(node: &NodeInput<'_>, status: MemberStatus) -> Member {
    let (key_ids, primary_key) = match &node.content.keys {
        Some((ids, primary)) => (ids.clone(), Some(*primary)),
        None => (Vec::new(), None),
    };
    Member {
        node_id: node.id.node_id.to_string(),
        generation: node.id.generation_id,
        addr: node.id.gossip_advertise_addr,
        status,
        entries: node.content.entries.len(),
        key_ids,
        primary_key,
    }
}

/// One difference between two views: create (no prev), delete (no next) or update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: TableKey,
    pub prev: Option<Entry>,
    pub next: Option<Entry>,
}

/// The changes that turn `old` into `new`, in key order; equal entries give none.
pub fn diff(old: &View, new: &View) -> Vec<Change> {
    use std::cmp::Ordering;
    let mut changes = Vec::new();
    let mut olds = old.iter().peekable();
    let mut news = new.iter().peekable();
    loop {
        let step = match (olds.peek(), news.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ko, _)), Some((kn, _))) => ko.cmp(kn),
        };
        let (o, n) = match step {
            Ordering::Less => (olds.next(), None),
            Ordering::Greater => (None, news.next()),
            Ordering::Equal => (olds.next(), news.next()),
        };
        let key = match (o, n) {
            (Some((k, _)), _) | (None, Some((k, _))) => k,
            (None, None) => break,
        };
        let prev = o.map(|(_, e)| e);
        let next = n.map(|(_, e)| e);
        if prev != next {
            changes.push(Change {
                key: key.clone(),
                prev: prev.cloned(),
                next: next.cloned(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests;
