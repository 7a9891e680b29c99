//! The materialised view of all tables, kept up to date change by change.
//!
//! Pure code (CONVENTIONS 5, 12): chitchat node states are parsed into [`NodeContent`]
//! (in full, or by applying the keys whose version moved, [`NodeContent::apply`]), one
//! generation per node id is chosen, and the entries of members whose status shows them
//! make the [`View`]. chitchat raises no event on delete, so a [`Batch`] derives creates,
//! updates and deletes alike from what it was told changed: an entry of a shown node, or
//! which nodes are shown. Its cost follows the changes, not the size of the tables: a
//! write of one entry on a node holding 20,000 cost 100 ms when the view was rebuilt and
//! diffed on every change.

use std::collections::{BTreeMap, BTreeSet};
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
    /// Entry keys whose key or value did not parse (skipped).
    pub malformed: BTreeSet<String>,
}

/// A change of one node's entry: the new value, or `None` when it is gone.
pub type EntryChange = (TableKey, Option<Value>);

impl NodeContent {
    /// Applies the new state of one gossip key (`None`: deleted) and returns the change
    /// of the entry it holds, if any. Applying every live key-value to a default content
    /// gives what [`parse_node`] gives.
    pub fn apply(&mut self, key: &str, value: Option<&str>) -> Option<EntryChange> {
        match key {
            READY_KEY => self.ready = value.is_some(),
            LEAVING_KEY => self.leaving = value.is_some(),
            KEYS_KEY => self.keys = value.and_then(schema::decode_key_ids),
            _ => {
                let parsed = TableKey::from_gossip_key(key);
                if parsed.is_none() && !key.starts_with(schema::ENTRY_PREFIX) {
                    return None;
                }
                let good = match (value, &parsed) {
                    (Some(v), Some(_)) => schema::decode_value(v).map(Value::from),
                    _ => None,
                };
                if value.is_some() && good.is_none() {
                    self.malformed.insert(key.to_owned());
                } else {
                    self.malformed.remove(key);
                }
                let table_key = parsed?;
                let before = match &good {
                    Some(v) => self.entries.insert(table_key.clone(), v.clone()),
                    None => self.entries.remove(&table_key),
                };
                return (before != good).then_some((table_key, good));
            }
        }
        None
    }
}

/// Parses the live (not tombstoned) key-values of one node state.
pub fn parse_node<'a>(kvs: impl Iterator<Item = (&'a str, &'a str)>) -> NodeContent {
    let mut content = NodeContent::default();
    for (key, value) in kvs {
        content.apply(key, Some(value));
    }
    content
}

/// The entry changes that turn `old`'s entries into `new`'s, in key order.
pub fn entry_changes(old: &NodeContent, new: &NodeContent) -> Vec<EntryChange> {
    let mut changes = Vec::new();
    for key in old.entries.keys() {
        if !new.entries.contains_key(key) {
            changes.push((key.clone(), None));
        }
    }
    for (key, value) in &new.entries {
        if old.entries.get(key) != Some(value) {
            changes.push((key.clone(), Some(value.clone())));
        }
    }
    changes.sort_by(|a, b| a.0.cmp(&b.0));
    changes
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

/// The member list from every known generation of every node, and the generation whose
/// entries are shown for each node id that has one: `Alive` and `Suspect` members.
pub fn membership(
    nodes: &[NodeInput<'_>],
    window: Duration,
) -> (Vec<Member>, BTreeMap<Arc<str>, ChitchatId>) {
    let mut members = Vec::new();
    let mut shown = BTreeMap::new();
    for node in effective_generations(nodes) {
        let status = member_status(node.liveness, node.content.leaving, window);
        members.push(member(&node, status));
        if status.entries_visible() {
            shown.insert(node.id.node_id.clone(), node.id.clone());
        }
    }
    (members, shown)
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

/// The view, and the entries it hides: if two shown nodes own the same key (concurrent
/// creates), the smallest node id wins everywhere; the others wait here and show again
/// when the winner's entry goes.
#[derive(Debug, Default)]
pub struct Tables {
    view: View,
    /// Per key, the losing owners' entries in node id order; never an empty list, and
    /// only for keys the view holds.
    shadowed: BTreeMap<TableKey, Vec<Entry>>,
}

impl Tables {
    /// The visible entries.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Starts a set of changes whose effect on the view is reported by [`Batch::finish`].
    pub fn batch(&mut self) -> Batch<'_> {
        Batch {
            tables: self,
            before: BTreeMap::new(),
        }
    }

    fn put(&mut self, key: &TableKey, owner: &Arc<str>, value: Option<&Value>) {
        let entry = value.map(|v| Entry {
            owner: owner.clone(),
            value: v.clone(),
        });
        let Some(current) = self.view.get_mut(key) else {
            if let Some(entry) = entry {
                self.view.insert(key.clone(), entry);
            }
            return;
        };
        if current.owner == *owner {
            match entry {
                Some(entry) => *current = entry,
                None => match self.shadowed.remove(key) {
                    Some(mut losers) => {
                        *current = losers.remove(0);
                        if !losers.is_empty() {
                            self.shadowed.insert(key.clone(), losers);
                        }
                    }
                    None => {
                        self.view.remove(key);
                    }
                },
            }
            return;
        }
        let losers = self.shadowed.entry(key.clone()).or_default();
        let at = losers.binary_search_by(|e| e.owner.cmp(owner));
        match (entry, at) {
            (Some(entry), _) if entry.owner < current.owner => {
                let beaten = std::mem::replace(current, entry);
                let at = losers.binary_search_by(|e| e.owner.cmp(&beaten.owner));
                if let Err(i) = at {
                    losers.insert(i, beaten);
                }
            }
            (Some(entry), Ok(i)) => losers[i] = entry,
            (Some(entry), Err(i)) => losers.insert(i, entry),
            (None, Ok(i)) => {
                losers.remove(i);
            }
            (None, Err(_)) => {}
        }
        if losers.is_empty() {
            self.shadowed.remove(key);
        }
    }
}

/// Changes to [`Tables`] that report, when finished, how the view moved: one [`Change`]
/// per key whose visible entry differs from before the batch, in key order.
#[derive(Debug)]
pub struct Batch<'t> {
    tables: &'t mut Tables,
    /// The visible entry of every key touched, as it was before the batch.
    before: BTreeMap<TableKey, Option<Entry>>,
}

impl Batch<'_> {
    /// Sets (`Some`) or removes (`None`) `owner`'s entry for `key`.
    pub fn put(&mut self, key: &TableKey, owner: &Arc<str>, value: Option<&Value>) {
        if !self.before.contains_key(key) {
            let was = self.tables.view.get(key).cloned();
            self.before.insert(key.clone(), was);
        }
        self.tables.put(key, owner, value);
    }

    /// Shows every entry of a node's generation.
    pub fn show(&mut self, owner: &Arc<str>, content: &NodeContent) {
        for (key, value) in &content.entries {
            self.put(key, owner, Some(value));
        }
    }

    /// Hides every entry of a node's generation (as shown, i.e. with `content` current).
    pub fn hide(&mut self, owner: &Arc<str>, content: &NodeContent) {
        for key in content.entries.keys() {
            self.put(key, owner, None);
        }
    }

    /// The changes of the view, in key order; keys back where they were give none.
    pub fn finish(self) -> Vec<Change> {
        let view = &self.tables.view;
        self.before
            .into_iter()
            .filter_map(|(key, prev)| {
                let next = view.get(&key).cloned();
                (prev != next).then_some(Change { key, prev, next })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
