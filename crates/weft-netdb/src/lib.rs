//! weft-netdb: NetworkDB, the gossip-replicated tables of runtime network state.
//!
//! Tables keyed by (table, network id, key) live in each node's chitchat key-value state
//! ([`schema`]), gossiped over a UDP transport that seals every datagram with
//! ChaCha20-Poly1305 under a rotatable keyring ([`seal`], [`transport`]). Each node turns
//! the gossip state into a materialised view and create/update/delete events with pure
//! functions ([`view`], [`membership`]); the [`NetworkDb`] actor serves the local API and
//! watches. It is not a log: chitchat is eventually consistent, best-effort dissemination.
//! Not here: diagnostics HTTP, Prometheus export, persistence (NetworkDB is rebuilt from
//! peers and re-asserted by its owners after a restart).
#![forbid(unsafe_code)]

pub mod config;
pub mod db;
pub mod error;
pub mod frag;
pub mod hosts;
pub mod membership;
pub mod schema;
pub mod seal;
pub mod transport;
pub mod view;

pub use config::{NetDbConfig, generation_now};
pub use db::NetworkDb;
pub use db::messages::*;
pub use error::NetDbError;
pub use membership::{Member, MemberStatus};
pub use schema::{MAX_VALUE_LEN, TableKey, TableName};
pub use seal::{DropReason, TransportCounters, TransportStats};
pub use view::{Entry, Value};
