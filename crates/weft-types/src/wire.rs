//! The versioned binary encoding of stored records: a magic byte, the record's schema
//! version (u16, little-endian), then the bincode 2 (standard config) encoding of the
//! value through serde. Decoding checks all three and refuses trailing bytes, so a
//! corrupt or foreign value is an error, never a wrong object.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// First byte of every encoded record.
pub const MAGIC: u8 = 0x57;
/// Largest encoded value accepted, to bound allocations on corrupt input.
pub const MAX_ENCODED_LEN: usize = 1 << 20;
const HEADER_LEN: usize = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("value is {0} bytes long, shorter than the header")]
    Truncated(usize),
    #[error("value starts with byte {0:#04x}, not the record magic {MAGIC:#04x}")]
    BadMagic(u8),
    #[error("value has schema version {found}, this build reads version {expected}")]
    UnsupportedVersion { found: u16, expected: u16 },
    #[error("value is {0} bytes long, over the {MAX_ENCODED_LEN}-byte limit")]
    TooLarge(usize),
    #[error("failed to decode value: {0}")]
    Decode(String),
    #[error("failed to encode value: {0}")]
    Encode(String),
    #[error("value has {0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENCODED_LEN>()
}

/// Encodes `value` with schema version `schema`.
pub fn encode<T: Serialize>(schema: u16, value: &T) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(64);
    out.push(MAGIC);
    out.extend_from_slice(&schema.to_le_bytes());
    let body = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    out.extend_from_slice(&body);
    if out.len() > MAX_ENCODED_LEN {
        return Err(WireError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Decodes a value written by [`encode`] with the same schema version.
pub fn decode<T: DeserializeOwned>(schema: u16, bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::Truncated(bytes.len()));
    }
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(WireError::TooLarge(bytes.len()));
    }
    if bytes[0] != MAGIC {
        return Err(WireError::BadMagic(bytes[0]));
    }
    let found = u16::from_le_bytes([bytes[1], bytes[2]]);
    if found != schema {
        return Err(WireError::UnsupportedVersion {
            found,
            expected: schema,
        });
    }
    let (value, used): (T, usize) =
        bincode::serde::decode_from_slice(&bytes[HEADER_LEN..], config())
            .map_err(|e| WireError::Decode(e.to_string()))?;
    let trailing = bytes.len() - HEADER_LEN - used;
    if trailing != 0 {
        return Err(WireError::TrailingBytes(trailing));
    }
    Ok(value)
}

/// Encodes a [`crate::record::Record`] with its own schema version.
pub fn encode_record<R: crate::record::Record>(record: &R) -> Result<Vec<u8>, WireError> {
    encode(R::SCHEMA, record)
}

/// Decodes a [`crate::record::Record`] written with its current schema version.
pub fn decode_record<R: crate::record::Record>(bytes: &[u8]) -> Result<R, WireError> {
    decode(R::SCHEMA, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::*;
    use crate::*;

    fn sample_endpoint() -> EndpointRecord {
        EndpointRecord {
            id: EndpointId::random(),
            name: "web-1".parse().unwrap(),
            network: NetworkId::random(),
            ipv4: Some("198.19.0.2/24".parse().unwrap()),
            ipv6: None,
            mac: MacAddr::from_ipv4("198.19.0.2".parse().unwrap()),
            aliases: vec!["web".parse().unwrap()],
            service: None,
            attachment: Attachment::Joined(SandboxId::random()),
            interface: Some(SandboxInterface {
                name: "eth0".into(),
                default_route: true,
            }),
            owner: None,
            created_ms: 1_700_000_000_000,
            lifecycle: Lifecycle::Ready,
        }
    }

    #[test]
    fn records_round_trip() {
        let ep = sample_endpoint();
        let bytes = encode_record(&ep).unwrap();
        assert_eq!(decode_record::<EndpointRecord>(&bytes).unwrap(), ep);
    }

    #[test]
    fn corrupt_values_are_errors() {
        let ep = sample_endpoint();
        let bytes = encode_record(&ep).unwrap();
        assert_eq!(
            decode_record::<EndpointRecord>(&bytes[..2]),
            Err(WireError::Truncated(2))
        );
        let mut wrong_magic = bytes.clone();
        wrong_magic[0] = 0;
        assert_eq!(
            decode_record::<EndpointRecord>(&wrong_magic),
            Err(WireError::BadMagic(0))
        );
        let mut future = bytes.clone();
        future[1] = 9;
        assert!(matches!(
            decode_record::<EndpointRecord>(&future),
            Err(WireError::UnsupportedVersion {
                found: 9,
                expected: 1
            })
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            decode_record::<EndpointRecord>(&trailing),
            Err(WireError::TrailingBytes(1))
        );
        assert!(matches!(
            decode_record::<EndpointRecord>(&bytes[..bytes.len() - 5]),
            Err(WireError::Decode(_))
        ));
    }

    #[test]
    fn validation_applies_when_decoding() {
        // A record whose name was altered on disk to an invalid one is refused.
        let mut ep = sample_endpoint();
        ep.name = "x".parse().unwrap();
        let mut bytes = encode_record(&ep).unwrap();
        let pos = bytes.iter().position(|&b| b == b'x').unwrap();
        bytes[pos] = b'-';
        assert!(matches!(
            decode_record::<EndpointRecord>(&bytes),
            Err(WireError::Decode(_))
        ));
    }
}
