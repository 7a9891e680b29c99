//! Gossip key formats: every string this crate writes into chitchat's key-value state,
//! and the typed values they are read back as (CONVENTIONS 12).
//!
//! A node's chitchat state holds:
//! - `e:{table}:{network id}:{key}` = base64(value): a table entry owned by that node.
//!   The table name has no ':' and the network id is 64 hex digits, so the key after the
//!   third ':' may hold anything, ':' included, and parsing is unambiguous (unlike
//!   libnetwork's `/`-joined paths).
//! - `m:ready` = "1": written after the entries a node starts with; a new generation
//!   replaces an older one of the same node only once it is ready.
//! - `m:leaving` = "1": the node leaves gracefully; its entries are gone at once.
//! - `m:keys` = "{id},{id},..;{primary id}": the gossip key ids the node holds, so the
//!   layer that rotates keys can see when the cluster has converged.

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use weft_keys::KeyId;
use weft_types::NetworkId;

use crate::error::NetDbError;

/// Largest value, in bytes before encoding. A gossip datagram is at most 64 KiB and a
/// single key-value that does not fit in one is silently never sent by chitchat.
pub const MAX_VALUE_LEN: usize = 4096;
/// Largest entry key in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest table name in bytes.
pub const MAX_TABLE_LEN: usize = 64;

/// Prefix of the gossip keys that hold table entries.
pub const ENTRY_PREFIX: &str = "e:";
/// Marker: the node's initial entries are all published.
pub const READY_KEY: &str = "m:ready";
/// Marker: the node is leaving gracefully.
pub const LEAVING_KEY: &str = "m:leaving";
/// The gossip key ids the node holds and its primary.
pub const KEYS_KEY: &str = "m:keys";
/// Value of the marker keys.
pub const MARKER_VALUE: &str = "1";

/// A table name: 1 to 64 of `a-z`, `0-9`, `_`, `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TableName(String);

impl TableName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TableName {
    type Err = NetDbError;
    fn from_str(s: &str) -> Result<Self, NetDbError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_TABLE_LEN
            && s.bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if !ok {
            return Err(NetDbError::InvalidTable { name: s.to_owned() });
        }
        Ok(TableName(s.to_owned()))
    }
}

impl TryFrom<String> for TableName {
    type Error = NetDbError;
    fn try_from(s: String) -> Result<Self, NetDbError> {
        s.parse()
    }
}

impl From<TableName> for String {
    fn from(t: TableName) -> String {
        t.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks an entry key: 1 to [`MAX_KEY_LEN`] bytes, no control characters.
pub fn validate_key(key: &str) -> Result<(), NetDbError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(NetDbError::InvalidKey {
            key: key.to_owned(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// The address of an entry: (table, network id, key).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct TableKey {
    /// The table.
    pub table: TableName,
    /// The network the entry belongs to.
    pub network: NetworkId,
    /// The key within (table, network).
    pub key: String,
}

impl TableKey {
    /// A validated table key.
    pub fn new(table: &str, network: NetworkId, key: &str) -> Result<Self, NetDbError> {
        validate_key(key)?;
        Ok(TableKey {
            table: table.parse()?,
            network,
            key: key.to_owned(),
        })
    }

    /// The chitchat key this entry is stored under.
    pub fn gossip_key(&self) -> String {
        format!("{ENTRY_PREFIX}{}:{}:{}", self.table, self.network, self.key)
    }

    /// Parses a chitchat entry key; `None` if it is not one or is malformed.
    pub fn from_gossip_key(gossip_key: &str) -> Option<TableKey> {
        let rest = gossip_key.strip_prefix(ENTRY_PREFIX)?;
        let (table, rest) = rest.split_once(':')?;
        let (network, key) = rest.split_once(':')?;
        TableKey::new(table, network.parse().ok()?, key).ok()
    }

    /// True when this key is in `table` and, if given, in `network`.
    pub fn matches(&self, table: &TableName, network: Option<&NetworkId>) -> bool {
        &self.table == table && network.is_none_or(|n| n == &self.network)
    }
}

impl fmt::Display for TableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.table, self.network.short(), self.key)
    }
}

/// Encodes a value for chitchat, checking the size budget.
pub fn encode_value(key: &TableKey, value: &[u8]) -> Result<String, NetDbError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(NetDbError::ValueTooLarge {
            key: key.clone(),
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(BASE64_STANDARD.encode(value))
}

/// Decodes a value read from chitchat; `None` if malformed or above the budget.
pub fn decode_value(text: &str) -> Option<Vec<u8>> {
    if text.len() > MAX_VALUE_LEN.div_ceil(3) * 4 {
        return None;
    }
    BASE64_STANDARD.decode(text).ok()
}

/// Encodes the key ids a node holds and its primary for `m:keys`.
pub fn encode_key_ids(ids: &[KeyId], primary: KeyId) -> String {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    format!("{};{primary}", ids.join(","))
}

/// Parses `m:keys`; `None` if malformed.
pub fn decode_key_ids(text: &str) -> Option<(Vec<KeyId>, KeyId)> {
    let (ids, primary) = text.split_once(';')?;
    let ids = if ids.is_empty() {
        Vec::new()
    } else {
        ids.split(',')
            .map(|s| s.parse().ok().map(KeyId))
            .collect::<Option<Vec<_>>>()?
    };
    Some((ids, KeyId(primary.parse().ok()?)))
}

/// Checks a node id: 1 to 64 printable characters, no ':' and no whitespace.
pub fn validate_node_id(id: &str) -> Result<(), NetDbError> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_graphic() && c != ':');
    if !ok {
        return Err(NetDbError::InvalidNodeId { id: id.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nid() -> NetworkId {
        NetworkId::random()
    }

    #[test]
    fn entry_keys_roundtrip_even_with_colons_in_the_key() {
        let key = TableKey::new("overlay_peer_table", nid(), "ep:1:x/y").unwrap();
        let text = key.gossip_key();
        assert!(text.starts_with("e:overlay_peer_table:"));
        assert_eq!(TableKey::from_gossip_key(&text), Some(key));
    }

    #[test]
    fn malformed_gossip_keys_are_not_entries() {
        let n = nid();
        for bad in [
            "m:ready".to_owned(),
            "e:".to_owned(),
            "e:table".to_owned(),
            format!("e:Bad:{n}:k"),
            format!("e:t:{}:k", &n.as_str()[1..]),
            format!("e:t:{n}:"),
            format!("x:t:{n}:k"),
        ] {
            assert_eq!(TableKey::from_gossip_key(&bad), None, "{bad}");
        }
    }

    #[test]
    fn table_names_and_keys_are_validated() {
        assert!("ok_table-1".parse::<TableName>().is_ok());
        for bad in ["", "Upper", "has:colon", "sp ace", &"x".repeat(65)] {
            assert!(bad.parse::<TableName>().is_err(), "{bad}");
        }
        assert!(validate_key("").is_err());
        assert!(validate_key("a\nb").is_err());
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn value_budget_is_enforced_with_a_clear_error() {
        let key = TableKey::new("t", nid(), "k").unwrap();
        assert!(encode_value(&key, &[0; MAX_VALUE_LEN]).is_ok());
        let err = encode_value(&key, &[0; MAX_VALUE_LEN + 1]).unwrap_err();
        assert!(
            err.to_string().contains("above the budget of 4096 bytes"),
            "{err}"
        );
        let text = encode_value(&key, b"\x00\xffvalue").unwrap();
        assert_eq!(decode_value(&text).unwrap(), b"\x00\xffvalue");
        assert_eq!(decode_value("not base64!"), None);
    }

    #[test]
    fn key_ids_roundtrip() {
        let text = encode_key_ids(&[KeyId(1), KeyId(2)], KeyId(2));
        assert_eq!(text, "1,2;2");
        assert_eq!(
            decode_key_ids(&text),
            Some((vec![KeyId(1), KeyId(2)], KeyId(2)))
        );
        assert_eq!(decode_key_ids("1,x;2"), None);
        assert_eq!(decode_key_ids("12"), None);
    }

    #[test]
    fn node_ids_are_validated() {
        assert!(validate_node_id("host-1.example").is_ok());
        for bad in ["", "a:b", "a b", &"n".repeat(65)] {
            assert!(validate_node_id(bad).is_err(), "{bad}");
        }
    }
}
