//! Validated names: object names (networks, endpoints, sandboxes, services, aliases),
//! driver names and hostnames. Parsing is the only way to get one, so every layer past
//! the edge can rely on them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest object name accepted. Long enough for generated names, short enough to show.
pub const MAX_NAME_LEN: usize = 64;

/// An object name: 1 to 64 characters, a letter or digit first, then letters, digits,
/// `_`, `.` or `-` (Docker's rule, plus a length cap).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("name must not be empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!(
            "name {:?}... is {} characters long; the limit is {MAX_NAME_LEN}",
            &s[..s.char_indices().nth(16).map_or(s.len(), |(i, _)| i)],
            s.len()
        ));
    }
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        return Err(format!(
            "invalid name {s:?}: use letters, digits, '_', '.' or '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

impl FromStr for Name {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        validate_name(s).map_err(crate::Error::invalid)?;
        Ok(Name(s.to_owned()))
    }
}

/// A driver name: lower-case letters, digits and '-', 1 to 32 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DriverName(String);

impl DriverName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `null` driver: addresses, no connectivity.
    pub fn null() -> Self {
        DriverName("null".into())
    }

    /// The `host` driver: sandboxes use the host's namespace.
    pub fn host() -> Self {
        DriverName("host".into())
    }

    /// The default driver when none is named, as in Docker.
    pub fn bridge() -> Self {
        DriverName("bridge".into())
    }

    /// The `overlay` driver: VXLAN networks spanning the cluster.
    pub fn overlay() -> Self {
        DriverName("overlay".into())
    }
}

impl FromStr for DriverName {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(crate::Error::invalid(format!(
                "invalid driver name {s:?}: expected lower-case letters, digits or '-'"
            )));
        }
        Ok(DriverName(s.to_owned()))
    }
}

/// A hostname (RFC 1123): dot-separated labels of 1 to 63 letters, digits or '-', not
/// starting or ending with '-', 253 characters at most.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Hostname {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if s.is_empty() || s.len() > 253 || !s.split('.').all(label_ok) {
            return Err(crate::Error::invalid(format!(
                "invalid hostname {s:?}: use dot-separated labels of letters, digits and '-'"
            )));
        }
        Ok(Hostname(s.to_owned()))
    }
}

macro_rules! string_newtype_impls {
    ($t:ident) => {
        impl TryFrom<String> for $t {
            type Error = crate::Error;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
string_newtype_impls!(Name);
string_newtype_impls!(DriverName);
string_newtype_impls!(Hostname);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_style_names() {
        for ok in [
            "a",
            "net1",
            "my_net.v2-x",
            "0abc",
            &"n".repeat(MAX_NAME_LEN),
        ] {
            assert!(ok.parse::<Name>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_empty_overlong_and_odd_names() {
        let long = "n".repeat(MAX_NAME_LEN + 1);
        for bad in ["", "-a", ".a", "a b", "a/b", "é", long.as_str()] {
            let err = bad.parse::<Name>().unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::InvalidParameter);
            assert!(!err.message.contains('\n'));
        }
        assert!("".parse::<Name>().unwrap_err().message.contains("empty"));
        assert!(
            long.parse::<Name>()
                .unwrap_err()
                .message
                .contains("limit is 64")
        );
    }

    #[test]
    fn names_deserialise_with_validation() {
        assert!(serde_json::from_str::<Name>("\"\"").is_err());
        assert_eq!(
            serde_json::from_str::<Name>("\"web\"").unwrap().as_str(),
            "web"
        );
    }

    #[test]
    fn hostnames_follow_rfc1123() {
        assert!("web-1.example".parse::<Hostname>().is_ok());
        for bad in ["", "-a", "a-", "a..b", "a_b", &"h".repeat(64)] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad}");
        }
    }

    #[test]
    fn driver_names_are_lower_case() {
        assert!("overlay".parse::<DriverName>().is_ok());
        assert!("Overlay".parse::<DriverName>().is_err());
        assert!("".parse::<DriverName>().is_err());
    }
}
