//! The value of an `endpoint_table` entry: the names one joined endpoint answers to on its
//! network (the sandbox's name, the endpoint's aliases, the service it backs), keyed by the
//! endpoint id and published by the endpoint's host (libnetwork's `EndpointRecord`).
//! Names are [`Name`]s, so a value from the network is checked as strictly as the CLI's.

use crate::Name;
use crate::wire::{self, WireError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The schema version of the encoded record; bumped when the layout changes.
pub const NAME_SCHEMA: u16 = 1;

/// Most aliases one endpoint may carry: keeps a value far below a gossip datagram.
pub const MAX_ALIASES: usize = 64;

/// What one endpoint answers to in DNS on its network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NameRecord {
    /// The sandbox (container) name: answers for the endpoint's addresses.
    pub sandbox: Name,
    /// The endpoint's own name.
    pub endpoint: Name,
    /// The endpoint's addresses (IPv4 first), without prefix length.
    pub ips: Vec<IpAddr>,
    /// Further names of the endpoint on this network (`--alias`).
    pub aliases: Vec<Name>,
    /// The service the endpoint is a backend of, if any.
    pub service: Option<Name>,
    /// The service's virtual IP on this network (vip mode); none for dnsrr.
    pub vip: Option<IpAddr>,
    /// Set while the endpoint drains before it leaves: no longer among a service's backends.
    pub disabled: bool,
}

/// Why a name value was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a name record of this schema.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Well-formed but unusable.
    #[error("invalid name record: {0}")]
    Invalid(&'static str),
}

impl NameRecord {
    /// The table value.
    pub fn encode(&self) -> Result<Vec<u8>, NameError> {
        self.check()?;
        Ok(wire::encode(NAME_SCHEMA, self)?)
    }

    /// Decodes and checks a table value.
    pub fn decode(bytes: &[u8]) -> Result<Self, NameError> {
        let record: NameRecord = wire::decode(NAME_SCHEMA, bytes)?;
        record.check()?;
        Ok(record)
    }

    /// The endpoint's addresses are usable unicast addresses, and it has at least one.
    fn check(&self) -> Result<(), NameError> {
        if self.ips.is_empty() {
            return Err(NameError::Invalid("the endpoint has no address"));
        }
        if self.ips.len() > 2 {
            return Err(NameError::Invalid("an endpoint has at most two addresses"));
        }
        let unusable = |ip: &IpAddr| ip.is_unspecified() || ip.is_multicast() || ip.is_loopback();
        if self.ips.iter().chain(self.vip.iter()).any(unusable) {
            return Err(NameError::Invalid("an address is not a unicast address"));
        }
        if self.aliases.len() > MAX_ALIASES {
            return Err(NameError::Invalid("more than 64 aliases"));
        }
        if self.vip.is_some() && self.service.is_none() {
            return Err(NameError::Invalid("a vip without a service"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> NameRecord {
        NameRecord {
            sandbox: "web-1".parse().unwrap(),
            endpoint: "web-1-ov".parse().unwrap(),
            ips: vec!["198.19.200.10".parse().unwrap()],
            aliases: vec!["front".parse().unwrap()],
            service: Some("web".parse().unwrap()),
            vip: Some("198.19.200.2".parse().unwrap()),
            disabled: false,
        }
    }

    #[test]
    fn round_trips() {
        let r = record();
        assert_eq!(NameRecord::decode(&r.encode().unwrap()).unwrap(), r);
    }

    #[test]
    fn refuses_unusable_values() {
        let mut r = record();
        r.ips.clear();
        assert!(r.encode().is_err());
        let mut r = record();
        r.ips = vec!["127.0.0.1".parse().unwrap()];
        assert!(r.encode().is_err());
        let mut r = record();
        r.service = None;
        assert!(r.encode().is_err(), "a vip needs a service");
        let mut r = record();
        r.aliases = (0..65).map(|i| format!("a{i}").parse().unwrap()).collect();
        assert!(r.encode().is_err());
    }

    #[test]
    fn refuses_bytes_that_are_not_a_record() {
        assert!(NameRecord::decode(b"").is_err());
        assert!(NameRecord::decode(&[0x57, 1, 0, 0xff, 0xff]).is_err());
        let mut bytes = record().encode().unwrap();
        bytes.push(0);
        assert!(NameRecord::decode(&bytes).is_err(), "trailing bytes");
    }

    #[test]
    fn refuses_invalid_names_from_the_network() {
        #[derive(Serialize)]
        struct Forged<'a> {
            sandbox: &'a str,
            endpoint: &'a str,
            ips: Vec<IpAddr>,
            aliases: Vec<&'a str>,
            service: Option<&'a str>,
            vip: Option<IpAddr>,
            disabled: bool,
        }
        let forged = Forged {
            sandbox: "bad name\0",
            endpoint: "e",
            ips: vec!["198.19.0.1".parse().unwrap()],
            aliases: vec![],
            service: None,
            vip: None,
            disabled: false,
        };
        let bytes = wire::encode(NAME_SCHEMA, &forged).unwrap();
        assert!(NameRecord::decode(&bytes).is_err());
    }
}
