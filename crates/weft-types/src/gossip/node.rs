//! The value of a `nodes` entry: what a node publishes about itself under its name.

use super::{SchemaError, Table};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What a node publishes about itself. JSON, so that older and newer nodes read each
/// other's records (unknown fields are ignored, missing optional ones are `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's name (its key in the table).
    pub name: String,
    /// `manager` or `worker`.
    pub role: String,
    /// The weft version it runs.
    pub version: String,
    /// Where its data path (VXLAN) listens, for node discovery.
    #[serde(default)]
    pub data_addr: Option<IpAddr>,
}

impl NodeRecord {
    /// The table value.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and an address always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes the value stored under `key`, which must be the record's own name.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<NodeRecord, SchemaError> {
        let record: NodeRecord = super::from_json(Table::Nodes, bytes)?;
        if record.name != key {
            return Err(SchemaError::WrongKey {
                table: Table::Nodes,
                key: key.to_owned(),
                found: record.name,
            });
        }
        if let Some(addr) = record.data_addr
            && (addr.is_unspecified() || addr.is_multicast())
        {
            return Err(SchemaError::Malformed {
                table: Table::Nodes,
                reason: format!("data-path address {addr} is not a unicast address"),
            });
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeRecord {
        NodeRecord {
            name: "host-1".into(),
            role: "worker".into(),
            version: "0.1.0".into(),
            data_addr: Some("198.18.0.1".parse().unwrap()),
        }
    }

    #[test]
    fn round_trips_and_reads_records_without_a_data_address() {
        assert_eq!(
            NodeRecord::decode("host-1", &sample().encode()).unwrap(),
            sample()
        );
        let old = br#"{"name":"host-1","role":"manager","version":"0.0.9","extra":1}"#;
        assert_eq!(NodeRecord::decode("host-1", old).unwrap().data_addr, None);
    }

    #[test]
    fn refuses_garbage_foreign_keys_and_unusable_addresses() {
        assert!(NodeRecord::decode("host-1", b"{").is_err());
        let e = NodeRecord::decode("host-2", &sample().encode()).unwrap_err();
        assert!(matches!(e, SchemaError::WrongKey { .. }), "{e}");
        let bad = NodeRecord {
            data_addr: Some("0.0.0.0".parse().unwrap()),
            ..sample()
        };
        assert!(NodeRecord::decode("host-1", &bad.encode()).is_err());
    }
}
