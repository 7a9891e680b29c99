//! The errors NetworkDb operations return.

use weft_keys::KeyringError;

use crate::schema::TableKey;

/// Why a NetworkDb operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetDbError {
    /// A table name outside `[a-z0-9_-]{1,64}`.
    #[error("invalid table name {name:?}: expected 1 to 64 of a-z, 0-9, '_' or '-'")]
    InvalidTable { name: String },
    /// An entry key that is empty, too long or holds control characters.
    #[error("invalid entry key {key:?}: expected 1 to {max} bytes without control characters")]
    InvalidKey { key: String, max: usize },
    /// A node id that is empty, too long or holds ':' or whitespace.
    #[error("invalid node id {id:?}: expected 1 to 64 printable characters without ':'")]
    InvalidNodeId { id: String },
    /// The value exceeds the size budget.
    #[error("value for {key} is {len} bytes, above the budget of {max} bytes")]
    ValueTooLarge {
        key: TableKey,
        len: usize,
        max: usize,
    },
    /// Create of a key that already exists (owned by anyone).
    #[error("failed to create {key}: it already exists (owner {owner})")]
    AlreadyExists { key: TableKey, owner: String },
    /// Update or delete of a key that does not exist.
    #[error("failed to {op} {key}: no such entry")]
    NotFound { op: &'static str, key: TableKey },
    /// Update or delete of a key another node owns.
    #[error("failed to {op} {key}: it is owned by node {owner}")]
    NotOwner {
        op: &'static str,
        key: TableKey,
        owner: String,
    },
    /// The node has left or is leaving the cluster.
    #[error("failed to {op}: this node has left the cluster")]
    Left { op: &'static str },
    /// A keyring change was refused.
    #[error("keyring change refused")]
    Keyring(#[from] KeyringError),
    /// The gossip socket or server could not start.
    #[error("failed to start gossip on {addr}: {reason}")]
    Start {
        addr: std::net::SocketAddr,
        reason: String,
    },
}
