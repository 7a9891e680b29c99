//! Driver options (`-o key=value`) and labels (`--label key=value`): ordered string maps
//! with validated keys and bounded sizes, so a stored record stays small.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most entries accepted in one options or labels map.
pub const MAX_ENTRIES: usize = 64;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 128;
/// Longest value accepted.
pub const MAX_VALUE_LEN: usize = 1024;

/// Options that may be given without a value (`--opt encrypted`, as Docker takes it).
pub const FLAG_OPTIONS: &[&str] = &["encrypted"];

macro_rules! define_map {
    ($(#[$doc:meta])* $name:ident, $what:literal, $flags:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
        pub struct $name(BTreeMap<String, String>);

        impl $name {
            pub fn get(&self, key: &str) -> Option<&str> {
                self.0.get(key).map(String::as_str)
            }

            pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
                self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// Parses `key=value` pairs as given on the command line; only the flags
            /// this map knows may come without `=`.
            pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, crate::Error> {
                let flags: &[&str] = $flags;
                let mut map = BTreeMap::new();
                for pair in pairs {
                    let (k, v) = match pair.split_once('=') {
                        Some(kv) => kv,
                        None if flags.contains(&pair) => (pair, ""),
                        None => {
                            return Err(crate::Error::invalid(format!(
                                "{} {pair:?}: expected KEY=VALUE", $what
                            )));
                        }
                    };
                    if map.insert(k.to_owned(), v.to_owned()).is_some() {
                        return Err(crate::Error::invalid(format!("{} {k:?} is given twice", $what)));
                    }
                }
                Self::try_from(map)
            }
        }

        impl TryFrom<BTreeMap<String, String>> for $name {
            type Error = crate::Error;
            fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
                validate_map(&map, $what)?;
                Ok($name(map))
            }
        }

        impl From<$name> for BTreeMap<String, String> {
            fn from(m: $name) -> Self {
                m.0
            }
        }
    };
}

define_map!(
    /// Driver options, e.g. `mtu=1400`, `encrypted=`.
    Options,
    "option",
    FLAG_OPTIONS
);
define_map!(
    /// Free-form labels for operators.
    Labels,
    "label",
    &[]
);

fn validate_map(map: &BTreeMap<String, String>, what: &str) -> Result<(), crate::Error> {
    if map.len() > MAX_ENTRIES {
        return Err(crate::Error::invalid(format!(
            "too many {what}s: {} given, at most {MAX_ENTRIES}",
            map.len()
        )));
    }
    for (k, v) in map {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_KEY_LEN
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
        if !key_ok {
            return Err(crate::Error::invalid(format!(
                "invalid {what} key {k:?}: use 1 to {MAX_KEY_LEN} letters, digits, '.', '_', '-' or '/'"
            )));
        }
        if v.len() > MAX_VALUE_LEN || v.chars().any(char::is_control) {
            return Err(crate::Error::invalid(format!(
                "invalid {what} value for {k:?}: at most {MAX_VALUE_LEN} printable characters"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_flags() {
        let o = Options::from_pairs(["mtu=1400", "encrypted"]).unwrap();
        assert_eq!(o.get("mtu"), Some("1400"));
        assert_eq!(o.get("encrypted"), Some(""));
    }

    #[test]
    fn a_pair_without_equals_is_refused_unless_it_is_a_flag() {
        let e = Options::from_pairs(["novalue"]).unwrap_err();
        assert_eq!(e.message, "option \"novalue\": expected KEY=VALUE");
        let e = Labels::from_pairs(["noeq"]).unwrap_err();
        assert_eq!(e.message, "label \"noeq\": expected KEY=VALUE");
        assert!(Labels::from_pairs(["encrypted"]).is_err());
        assert_eq!(Labels::from_pairs(["k="]).unwrap().get("k"), Some(""));
    }

    #[test]
    fn rejects_bad_keys_duplicates_and_control_characters() {
        assert!(Options::from_pairs(["=x"]).is_err());
        assert!(Options::from_pairs(["a b=x"]).is_err());
        assert!(Labels::from_pairs(["a=1", "a=2"]).is_err());
        assert!(Labels::from_pairs(["a=\u{7}"]).is_err());
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("k{i}=v")).collect();
        assert!(Labels::from_pairs(many.iter().map(String::as_str)).is_err());
    }

    #[test]
    fn deserialisation_validates() {
        assert!(serde_json::from_str::<Options>(r#"{"":"x"}"#).is_err());
        assert!(serde_json::from_str::<Options>(r#"{"mtu":"1400"}"#).is_ok());
    }
}
