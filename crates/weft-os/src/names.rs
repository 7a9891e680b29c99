//! Validated names and numbers handed to the kernel: interface names, namespace names, VNIs,
//! sysctl keys. Parsing happens here, once, so that the kernel-facing code never sees a value
//! it would reject (or worse, misinterpret, like a namespace name containing `/`).

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Linux `IFNAMSIZ` minus the terminating NUL.
const IFNAME_MAX: usize = 15;
/// Upper bound for a namespace file name under the netns directory.
const NSNAME_MAX: usize = 128;

fn invalid(kind: &'static str, value: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        kind,
        value: value.to_owned(),
        reason,
    }
}

/// A network interface name, valid for the kernel's `dev_valid_name`: 1 to 15 bytes, not `.`
/// or `..`, without `/`, `:` or whitespace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    /// Validates `name` as an interface name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if name.is_empty() || name.len() > IFNAME_MAX {
            return Err(invalid("interface name", &name, "must be 1 to 15 bytes"));
        }
        if name == "." || name == ".." {
            return Err(invalid("interface name", &name, "must not be . or .."));
        }
        if name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(invalid(
                "interface name",
                &name,
                "must not contain '/', ':' or whitespace",
            ));
        }
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::str::FromStr for IfName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// The name of a named network namespace (a file under the netns directory): 1 to 128 bytes
/// of ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsName(String);

impl NsName {
    /// Validates `name` as a namespace name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if name.is_empty() || name.len() > NSNAME_MAX {
            return Err(invalid("namespace name", &name, "must be 1 to 128 bytes"));
        }
        if name.starts_with('.') {
            return Err(invalid("namespace name", &name, "must not start with '.'"));
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !name.chars().all(ok) {
            return Err(invalid(
                "namespace name",
                &name,
                "may contain only ASCII letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::str::FromStr for NsName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// Which network namespace an operation targets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsRef {
    /// The namespace the agent process started in.
    Host,
    /// A named namespace under the netns directory.
    Named(NsName),
}

impl NsRef {
    /// A reference to the named namespace.
    pub fn named(name: &NsName) -> Self {
        Self::Named(name.clone())
    }
}

impl fmt::Display for NsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host => f.write_str("host namespace"),
            Self::Named(n) => write!(f, "namespace {n}"),
        }
    }
}

impl From<NsName> for NsRef {
    fn from(name: NsName) -> Self {
        Self::Named(name)
    }
}

/// The VXLAN network identifier, shared with the manager and the drivers.
pub use weft_types::Vni;

/// A sysctl key as path components under `/proc/sys`, e.g. `net.ipv4.ip_forward`.
///
/// Built from components rather than a dotted string when an interface name (which may contain
/// dots) is part of it: see [`SysctlKey::ipv4_conf`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysctlKey(Vec<String>);

impl SysctlKey {
    /// Parses a dotted key such as `net.ipv4.ip_forward`.
    pub fn parse(dotted: &str) -> Result<Self> {
        Self::from_parts(dotted.split('.'))
    }

    /// Builds a key from its path components.
    pub fn from_parts<I, S>(parts: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let parts: Vec<String> = parts.into_iter().map(Into::into).collect();
        let bad = |p: &String| p.is_empty() || p == "." || p == ".." || p.contains('/');
        if parts.is_empty() || parts.iter().any(bad) {
            return Err(invalid(
                "sysctl key",
                &parts.join("."),
                "components must be non-empty, not . or .., without '/'",
            ));
        }
        Ok(Self(parts))
    }

    /// `net.ipv4.conf.<dev>.<setting>`, e.g. `proxy_arp` on a vxlan device.
    pub fn ipv4_conf(dev: &IfName, setting: &str) -> Result<Self> {
        Self::from_parts(["net", "ipv4", "conf", dev.as_str(), setting])
    }

    /// The file under `/proc/sys` holding this key.
    pub fn proc_path(&self) -> PathBuf {
        let mut path = PathBuf::from("/proc/sys");
        path.extend(&self.0);
        path
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl fmt::Debug for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_follows_dev_valid_name() {
        assert!(IfName::new("eth0").is_ok());
        assert!(IfName::new("a".repeat(15)).is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", &"a".repeat(16)] {
            assert!(IfName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nsname_rejects_paths() {
        assert!(NsName::new("weft-sb-1.a_b").is_ok());
        for bad in ["", ".hidden", "../etc", "a/b", "a b", &"a".repeat(129)] {
            assert!(NsName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vni_is_24_bit_non_zero() {}

    #[test]
    fn sysctl_keys_map_to_proc_paths() {
        let k = SysctlKey::parse("net.ipv4.ip_forward").unwrap();
        assert_eq!(
            k.proc_path(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        let dev = IfName::new("vx.1").unwrap();
        let k = SysctlKey::ipv4_conf(&dev, "proxy_arp").unwrap();
        assert_eq!(
            k.proc_path(),
            PathBuf::from("/proc/sys/net/ipv4/conf/vx.1/proxy_arp")
        );
        assert!(SysctlKey::parse("net..x").is_err());
        assert!(SysctlKey::from_parts(["net", "../x"]).is_err());
    }
}
