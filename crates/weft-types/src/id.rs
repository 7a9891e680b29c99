//! Object ids: 256 random bits written as 64 lower-case hex digits, like Docker's.
//! Users may refer to an object by a unique prefix of its id; `short()` is the 12-digit
//! form listings show.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Length of an id in hex digits.
pub const ID_LEN: usize = 64;
/// Length of the short form shown in listings.
pub const SHORT_ID_LEN: usize = 12;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                $name(random_hex())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The first 12 hex digits.
            pub fn short(&self) -> &str {
                &self.0[..SHORT_ID_LEN]
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                validate_hex_id(s, $what).map(|()| $name(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::Error;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                validate_hex_id(&s, $what).map(|()| $name(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

define_id!(
    /// Identifies a network, cluster-wide for global networks.
    NetworkId,
    "network id"
);
impl NetworkId {
    /// The reserved id of cluster-wide gossip tables (all zeros: random ids never are).
    pub fn cluster() -> Self {
        NetworkId("0".repeat(ID_LEN))
    }
}

define_id!(
    /// Identifies an endpoint.
    EndpointId,
    "endpoint id"
);
define_id!(
    /// Identifies a sandbox on its host.
    SandboxId,
    "sandbox id"
);

fn random_hex() -> String {
    let bytes: [u8; ID_LEN / 2] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn validate_hex_id(s: &str, what: &str) -> Result<(), crate::Error> {
    if s.len() != ID_LEN || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(crate::Error::invalid(format!(
            "invalid {what} {s:?}: expected {ID_LEN} lower-case hex digits"
        )));
    }
    Ok(())
}

/// True when `s` could be a prefix of an id (used to resolve "name or id" references).
pub fn is_id_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_parse_back_and_differ() {
        let a = NetworkId::random();
        let b = NetworkId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<NetworkId>().unwrap(), a);
        assert_eq!(a.short().len(), SHORT_ID_LEN);
    }

    #[test]
    fn malformed_ids_are_rejected_with_their_kind() {
        let err = "xyz".parse::<EndpointId>().unwrap_err();
        assert!(err.message.contains("endpoint id"), "{}", err.message);
        assert!("A".repeat(64).parse::<SandboxId>().is_err());
    }

    #[test]
    fn the_cluster_id_is_a_valid_id_no_random_one_equals() {
        let cluster = NetworkId::cluster();
        assert_eq!(cluster.as_str().parse::<NetworkId>().unwrap(), cluster);
        assert!((0..1000).all(|_| NetworkId::random() != cluster));
    }

    #[test]
    fn ids_deserialise_with_validation() {
        let bad: Result<NetworkId, _> = serde_json::from_str("\"nothex\"");
        assert!(bad.is_err());
    }
}
