//! The value of a `networks` entry: a global network's definition, keyed by its id.

use super::{SchemaError, Table};
use crate::NetworkRecord;

/// The table value of `record`.
pub fn encode_network(record: &NetworkRecord) -> Vec<u8> {
    // Ids, names, options and labels are validated strings: they always serialise.
    serde_json::to_vec(record).unwrap_or_default()
}

/// Decodes the definition stored under `key`, which must be its id.
pub fn decode_network(key: &str, bytes: &[u8]) -> Result<NetworkRecord, SchemaError> {
    let record: NetworkRecord = super::from_json(Table::Networks, bytes)?;
    if record.id.as_str() != key {
        return Err(SchemaError::WrongKey {
            table: Table::Networks,
            key: key.to_owned(),
            found: record.id.to_string(),
        });
    }
    Ok(record)
}
