//! VXLAN network identifiers and the network option that carries them.
//!
//! The manager picks a network's VNIs and writes them into [`VXLANID_OPTION`] (libnetwork's
//! `netlabel.OverlayVxlanIDList`); the overlay driver reads them back from the definition.
//! Both parse the option here, so they cannot disagree on what a VNI is.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The option carrying an overlay network's VNIs, one per IPv4 subnet, comma-separated.
pub const VXLANID_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// The largest VNI: VXLAN identifiers are 24 bits wide (RFC 7348).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// Why a VNI, or a list of them, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VniError {
    /// A number outside 1..2^24.
    #[error("vni {vni} is out of range: a vxlanid must be 1..16777215")]
    OutOfRange { vni: u32 },
    /// Not a number at all.
    #[error("invalid vni {text:?} in option {VXLANID_OPTION}: a vxlanid must be 1..16777215")]
    NotANumber { text: String },
}

/// A VXLAN network identifier, 1 to 2^24 - 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vni(u32);

impl Vni {
    /// A VNI, if `value` is in 1..2^24.
    pub fn new(value: u32) -> Result<Vni, VniError> {
        if (1..=MAX_VNI).contains(&value) {
            Ok(Vni(value))
        } else {
            Err(VniError::OutOfRange { vni: value })
        }
    }

    /// A VNI fixed in the code, for constants: `const V: Vni = Vni::of(4096)` fails the
    /// build when out of range. Values known only at run time go through [`Vni::new`].
    pub const fn of(value: u32) -> Vni {
        assert!(value >= 1 && value <= MAX_VNI, "a vni is 1..2^24");
        Vni(value)
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Parses the value of [`VXLANID_OPTION`]: VNIs separated by commas.
    pub fn parse_list(text: &str) -> Result<Vec<Vni>, VniError> {
        text.split(',').map(|v| v.trim().parse()).collect()
    }

    /// The value of [`VXLANID_OPTION`] naming `vnis`.
    pub fn format_list(vnis: &[Vni]) -> String {
        let parts: Vec<String> = vnis.iter().map(ToString::to_string).collect();
        parts.join(",")
    }
}

impl std::str::FromStr for Vni {
    type Err = VniError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value = text.parse::<u32>().map_err(|_| VniError::NotANumber {
            text: text.to_owned(),
        })?;
        Vni::new(value)
    }
}

impl TryFrom<u32> for Vni {
    type Error = VniError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Vni::new(value)
    }
}

impl From<Vni> for u32 {
    fn from(vni: Vni) -> u32 {
        vni.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_24_bit_non_zero_values_are_vnis() {
        assert!(Vni::new(0).is_err());
        assert_eq!(Vni::new(1).unwrap().get(), 1);
        assert_eq!(Vni::new(MAX_VNI).unwrap().get(), MAX_VNI);
        assert_eq!(
            Vni::new(MAX_VNI + 1),
            Err(VniError::OutOfRange { vni: MAX_VNI + 1 })
        );
    }

    #[test]
    fn lists_parse_and_format_alike() {
        let vnis = Vni::parse_list("4096, 5000").unwrap();
        assert_eq!(Vni::format_list(&vnis), "4096,5000");
        for bad in ["", "x", "4096,", "-1", "16777216", "1.5"] {
            assert!(Vni::parse_list(bad).is_err(), "{bad:?}");
        }
        let e = "x".parse::<Vni>().unwrap_err().to_string();
        assert!(
            e.contains(VXLANID_OPTION) && e.contains("1..16777215"),
            "{e}"
        );
    }

    #[test]
    fn serde_refuses_out_of_range_values() {
        assert!(serde_json::from_str::<Vni>("0").is_err());
        assert_eq!(serde_json::from_str::<Vni>("7").unwrap().get(), 7);
    }
}
