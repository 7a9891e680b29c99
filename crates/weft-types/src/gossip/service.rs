//! The value of a `services` entry: a service's definition, keyed by its name, written by
//! managers (like `networks`).

use super::{SchemaError, Table};
use crate::ServiceRecord;

/// The table value of `record`.
pub fn encode_service(record: &ServiceRecord) -> Vec<u8> {
    // Names, ids and addresses always serialise.
    serde_json::to_vec(record).unwrap_or_default()
}

/// Decodes the definition stored under `key`, which must be its name.
pub fn decode_service(key: &str, bytes: &[u8]) -> Result<ServiceRecord, SchemaError> {
    let record: ServiceRecord = super::from_json(Table::Services, bytes)?;
    if record.name.as_str() != key {
        return Err(SchemaError::WrongKey {
            table: Table::Services,
            key: key.to_owned(),
            found: record.name.to_string(),
        });
    }
    if record.networks.is_empty() {
        return Err(SchemaError::Malformed {
            table: Table::Services,
            reason: "a service without networks".into(),
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ServiceMode, ServiceNetwork};

    #[test]
    fn round_trips_and_checks_the_key() {
        let record = ServiceRecord {
            name: "web".parse().unwrap(),
            mode: ServiceMode::Vip,
            networks: vec![ServiceNetwork {
                network: crate::NetworkId::random(),
                vip: Some("198.19.200.2".parse().unwrap()),
            }],
        };
        let bytes = encode_service(&record);
        assert_eq!(decode_service("web", &bytes).unwrap(), record);
        assert!(decode_service("db", &bytes).is_err());
        assert!(decode_service("web", b"{").is_err());
    }
}
