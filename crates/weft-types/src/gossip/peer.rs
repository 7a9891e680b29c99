//! The value of an `overlay_peer_table` entry: where a remote endpoint lives (its address, its
//! MAC, the VTEP of its host), published by the endpoint's host at join and gossiped to every
//! host of the network. Encoded with weft's versioned wire format (magic, schema, bincode) in
//! about 20 bytes; bytes from the network are checked, never trusted.

use crate::MacAddr;
use crate::wire::{self, WireError};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The schema version of the encoded record; bumped when the layout changes.
pub const PEER_SCHEMA: u16 = 1;

/// A remote endpoint, as its host publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerRecord {
    /// The endpoint's address, with its subnet's prefix length.
    pub ip: IpNet,
    /// The endpoint's MAC.
    pub mac: MacAddr,
    /// The data-path address of the endpoint's host.
    pub vtep: Ipv4Addr,
}

/// Why a peer value was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Not a peer record of this schema.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Well-formed but unusable.
    #[error("invalid peer record: {0}")]
    Invalid(&'static str),
}

/// The encoded layout: the MAC as raw bytes (the string form would triple its size).
#[derive(Serialize, Deserialize)]
struct Wire {
    ip: IpNet,
    mac: [u8; 6],
    vtep: Ipv4Addr,
}

impl PeerRecord {
    /// The table value.
    pub fn encode(&self) -> Result<Vec<u8>, PeerError> {
        let wire = Wire {
            ip: self.ip,
            mac: self.mac.0,
            vtep: self.vtep,
        };
        Ok(wire::encode(PEER_SCHEMA, &wire)?)
    }

    /// Decodes and checks a table value: a unicast MAC, a usable address and VTEP.
    pub fn decode(bytes: &[u8]) -> Result<Self, PeerError> {
        let w: Wire = wire::decode(PEER_SCHEMA, bytes)?;
        let mac = MacAddr(w.mac);
        if mac.is_multicast() || w.mac == [0; 6] {
            return Err(PeerError::Invalid("the mac is not a unicast address"));
        }
        let ip = w.ip.addr();
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(PeerError::Invalid("the address is not a unicast address"));
        }
        if w.vtep.is_unspecified() || w.vtep.is_multicast() || w.vtep.is_broadcast() {
            return Err(PeerError::Invalid("the vtep is not a unicast address"));
        }
        Ok(PeerRecord {
            ip: w.ip,
            mac,
            vtep: w.vtep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PeerRecord {
        PeerRecord {
            ip: "198.19.7.2/24".parse().unwrap(),
            mac: "02:42:c6:13:07:02".parse().unwrap(),
            vtep: Ipv4Addr::new(192, 0, 2, 10),
        }
    }

    #[test]
    fn round_trips_compactly() {
        let bytes = sample().encode().unwrap();
        assert!(bytes.len() <= 24, "{} bytes", bytes.len());
        assert_eq!(PeerRecord::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let good = sample().encode().unwrap();
        let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0x57], b"hello world".to_vec()];
        inputs.extend((0..good.len()).map(|n| good[..n].to_vec()));
        let mut trailing = good.clone();
        trailing.push(0);
        inputs.push(trailing);
        for i in 0..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] ^= flip;
                inputs.push(b);
            }
        }
        for bytes in inputs {
            if let Ok(rec) = PeerRecord::decode(&bytes) {
                // A flipped address byte may still be a valid record; it must be a checked one.
                assert!(!rec.mac.is_multicast() && !rec.vtep.is_unspecified());
            }
        }
        assert!(PeerRecord::decode(&good[..good.len() - 1]).is_err());
    }

    #[test]
    fn unusable_records_are_refused() {
        for bad in [
            PeerRecord {
                mac: MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
                ..sample()
            },
            PeerRecord {
                mac: MacAddr([0; 6]),
                ..sample()
            },
            PeerRecord {
                vtep: Ipv4Addr::UNSPECIFIED,
                ..sample()
            },
            PeerRecord {
                ip: "0.0.0.0/0".parse().unwrap(),
                ..sample()
            },
        ] {
            let err = PeerRecord::decode(&bad.encode().unwrap()).unwrap_err();
            assert!(matches!(err, PeerError::Invalid(_)), "{err}");
        }
    }
}
