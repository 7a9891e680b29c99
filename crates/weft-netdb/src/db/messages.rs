//! The messages the NetworkDb actor answers, and the events it sends to watchers.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::{Message, Recipient};
use serde::{Deserialize, Serialize};
use weft_keys::{KeyId, Keyring, SymmetricKey};
use weft_types::NetworkId;

use crate::error::NetDbError;
use crate::membership::Member;
use crate::schema::{TableKey, TableName};
use crate::seal::TransportCounters;
use crate::view::{Entry, Value};

/// Creates an entry owned by this node; fails if the key exists (owned by anyone).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), NetDbError>")]
pub struct CreateEntry {
    pub key: TableKey,
    pub value: Vec<u8>,
}

/// Replaces the value of an entry this node owns; fails if absent or owned elsewhere.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), NetDbError>")]
pub struct UpdateEntry {
    pub key: TableKey,
    pub value: Vec<u8>,
}

/// Deletes an entry this node owns; fails if absent or owned elsewhere.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), NetDbError>")]
pub struct DeleteEntry {
    pub key: TableKey,
}

/// Reads one visible entry.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Option<Entry>")]
pub struct GetEntry {
    pub key: TableKey,
}

/// Lists the visible entries of one table of one network, in key order.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<(TableKey, Entry)>")]
pub struct WalkTable {
    pub table: TableName,
    pub network: NetworkId,
}

/// Identifies a watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchId(pub u64);

/// Watches a table (of one network, or all): a snapshot as synthetic creates, then live
/// events, with no gap and no duplicate.
#[derive(Message)]
#[rtype(result = "WatchId")]
pub struct Watch {
    pub table: TableName,
    pub network: Option<NetworkId>,
    pub recipient: Recipient<TableEvent>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("table", &self.table)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

/// Ends a watch.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub id: WatchId,
}

/// Create, update or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Create,
    Update,
    Delete,
}

/// One change of one entry, sent to a watcher: `(key, prev, value)`.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct TableEvent {
    /// The watch this event belongs to.
    pub watch: WatchId,
    pub key: TableKey,
    /// Owner of `value`, or of `prev` for a delete.
    pub owner: Arc<str>,
    /// None for a create.
    pub prev: Option<Value>,
    /// None for a delete.
    pub value: Option<Value>,
    /// True for the synthetic creates of the initial snapshot.
    pub snapshot: bool,
}

impl TableEvent {
    /// Which kind of change this is.
    pub fn kind(&self) -> EventKind {
        match (&self.prev, &self.value) {
            (None, _) => EventKind::Create,
            (Some(_), Some(_)) => EventKind::Update,
            (Some(_), None) => EventKind::Delete,
        }
    }
}

/// Asks for a serialisable snapshot of the NetworkDb's state.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "NetDbState")]
pub struct Observe;

/// Entry counts of one table of one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    pub table: String,
    pub network: NetworkId,
    pub entries: usize,
    /// How many of them this node owns.
    pub owned: usize,
}

/// What [`Observe`] returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetDbState {
    pub node_id: String,
    pub generation: u64,
    pub addr: SocketAddr,
    pub leaving: bool,
    pub isolated: bool,
    /// One per node id, including this node.
    pub members: Vec<Member>,
    pub tables: Vec<TableStats>,
    pub transport: TransportCounters,
    pub key_ids: Vec<KeyId>,
    pub primary_key: KeyId,
    pub watchers: usize,
    /// Entry keys or values from peers that did not parse.
    pub malformed_entries: usize,
    /// Events sent to watchers so far.
    pub events_sent: u64,
    /// Events folded into one still waiting for a watcher whose mailbox was full (that
    /// watcher gets the key's latest change instead of every step).
    pub events_coalesced: u64,
    /// Changes waiting for watchers whose mailboxes are full, at most one per key.
    pub events_waiting: usize,
}

impl NetDbState {
    /// The ids of the members seen alive, this node included.
    pub fn alive_members(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|m| m.status == crate::MemberStatus::Alive)
            .map(|m| m.node_id.as_str())
    }

    /// The status of member `node`, if it is one.
    pub fn status_of(&self, node: &str) -> Option<crate::MemberStatus> {
        self.members
            .iter()
            .find(|m| m.node_id == node)
            .map(|m| m.status)
    }
}

/// Installs a gossip key for opening.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), NetDbError>")]
pub struct AddKey {
    pub key: SymmetricKey,
}

/// Starts sealing with an installed key.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<(), NetDbError>")]
pub struct SetPrimaryKey {
    pub id: KeyId,
}

/// Removes a key that is not primary.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<(), NetDbError>")]
pub struct RemoveKey {
    pub id: KeyId,
}

/// Replaces the whole keyring at once (a KeyManager catching a node up).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), NetDbError>")]
pub struct RotateKeys {
    pub keyring: Keyring,
}

/// Leaves gracefully (SIGTERM): publishes the leaving marker, pushes it to every live
/// peer, gossips for `leave_linger`, then stops. Every node deletes our entries at once.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Leave;

/// Stops at once without a word, as a crash would (fault injection and tests).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Abort;

/// Cuts this node off the network (true) or heals it (fault injection and tests).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SetIsolated(pub bool);

/// Drops this fraction (0..=1) of every outgoing gossip datagram at random from now on, as
/// a lossy link would; 0 heals (fault injection, tests and benchmarks).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SetLoss(pub f32);

/// The host of node `node_id` answered a probe just now: a sign of life that the kernel
/// gives without the agent. A silent node whose host answers stays suspect, its entries
/// kept, and the suspicion window counts from its host's last answer (see
/// [`crate::membership`]). Sent by whoever probes hosts (the agent).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct HostAnswered {
    pub node_id: String,
}

/// Follows the member list: a receiver that holds the latest one (one per node id) and
/// wakes on every change.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "tokio::sync::watch::Receiver<Vec<crate::Member>>")]
pub struct WatchMembers;

/// Everything this node owns is published (after a start with
/// [`crate::NetDbConfig::defer_ready`]): publishes `m:ready`, after every entry so far, so
/// peers switch from the previous generation to this one in one step. Idempotent.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct MarkReady;
