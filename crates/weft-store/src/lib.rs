//! weft's persistence: typed, versioned records (networks, endpoints, sandboxes, …) in an
//! embedded sled database, one per host, with atomic multi-record commits that are
//! flushed to disk before they are acknowledged.
//!
//! Records implement [`weft_types::record::Record`] and are stored under `"{KIND}/{key}"`
//! as an envelope `[version u64][crc32][weft_types::wire encoding]`. Every put bumps the
//! record's version; a [`Txn`] carries an [`Expect`]ation per operation, so an update made
//! from a stale read fails with [`StoreError::Conflict`] and writes nothing. A record that
//! cannot be read is reported as [`StoreError::Corrupt`] naming it, never a panic.
//!
//! What it is not: not a cache, not a change feed (actors own notification), not shared
//! between hosts (cluster state travels by gossip), and not async: every call blocks on
//! disk, so callers run it off their actor or runtime threads.
#![forbid(unsafe_code)]

mod envelope;
mod error;
mod recovery;
mod reserve;
mod store;
mod txn;

pub use error::StoreError;
pub use recovery::StoreHealth;
pub use store::{FORMAT, Store, Versioned};
pub use txn::{Expect, Txn};

#[cfg(test)]
mod tests;
