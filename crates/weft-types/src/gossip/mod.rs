//! The gossip schema: every NetworkDB table weft writes, where its entries live (the
//! reserved cluster network, or each network), and the codec of its values. Writers and
//! readers in every crate name tables and decode values through this module only, so a new
//! table is a variant of [`Table`] and a codec here, not an edit in each crate.

mod names;
mod network;
mod node;
mod peer;
mod service;

pub use names::{MAX_ALIASES, NAME_SCHEMA, NameError, NameRecord};
pub use network::{decode_network, encode_network};
pub use node::NodeRecord;
pub use peer::{PEER_SCHEMA, PeerError, PeerRecord};
pub use service::{decode_service, encode_service};

use crate::NetworkId;

/// Where a table's entries are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableScope {
    /// In the reserved cluster network ([`NetworkId::cluster`]): every node holds them.
    Cluster,
    /// Per network: the entries of network N describe N.
    Network,
}

/// A table of weft's gossip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Node name -> [`NodeRecord`]: who is in the cluster, its role and data-path address.
    Nodes,
    /// Network id -> its definition (JSON [`crate::NetworkRecord`]), written by managers.
    Networks,
    /// Endpoint id -> [`PeerRecord`]: where an overlay endpoint lives, written by its host.
    OverlayPeers,
    /// Endpoint id -> [`NameRecord`]: the names a joined endpoint answers to in DNS, written
    /// by its host (libnetwork's name for its service records).
    Endpoints,
    /// Service name -> its definition (JSON [`crate::ServiceRecord`]), written by managers.
    Services,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 5] = [
        Table::Nodes,
        Table::Networks,
        Table::OverlayPeers,
        Table::Endpoints,
        Table::Services,
    ];

    /// The table's name on the wire (libnetwork's for the overlay's peers).
    pub const fn name(self) -> &'static str {
        match self {
            Table::Nodes => "nodes",
            Table::Networks => "networks",
            Table::OverlayPeers => "overlay_peer_table",
            Table::Endpoints => "endpoint_table",
            Table::Services => "services",
        }
    }

    /// Where the table's entries are kept.
    pub const fn scope(self) -> TableScope {
        match self {
            Table::Nodes | Table::Networks | Table::Services => TableScope::Cluster,
            Table::OverlayPeers | Table::Endpoints => TableScope::Network,
        }
    }

    /// The network to watch the table in: the cluster network for cluster tables, every
    /// network (`None`) for per-network ones.
    pub fn watched_network(self) -> Option<NetworkId> {
        match self.scope() {
            TableScope::Cluster => Some(NetworkId::cluster()),
            TableScope::Network => None,
        }
    }

    /// The table named `name`, if weft has one.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a table value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The bytes are not a value of the table.
    #[error("malformed {table} value: {reason}")]
    Malformed { table: Table, reason: String },
    /// A well-formed value stored under a key that is not its own.
    #[error("{table} value for {found} stored under key {key}")]
    WrongKey {
        table: Table,
        key: String,
        found: String,
    },
}

/// Decodes a JSON table value of `table`.
fn from_json<T: serde::de::DeserializeOwned>(table: Table, bytes: &[u8]) -> Result<T, SchemaError> {
    serde_json::from_slice(bytes).map_err(|e| SchemaError::Malformed {
        table,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for table in Table::ALL {
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
        let mut names: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Table::ALL.len());
        assert_eq!(Table::from_name("endpoint"), None);
    }

    #[test]
    fn cluster_tables_are_watched_in_the_cluster_network() {
        assert_eq!(Table::Nodes.watched_network(), Some(NetworkId::cluster()));
        assert_eq!(Table::OverlayPeers.watched_network(), None);
    }
}
