//! The names of the kernel objects the bridge driver owns. They are derived from object ids
//! only, so that a restarted agent finds (and a reconcile can judge) what it made: a fixed
//! prefix, then the first ten hex digits of the id, 13 bytes in all (under `IFNAMSIZ`).

use weft_os::IfName;
use weft_types::{EndpointId, NetworkId};

/// Prefix of a network's bridge: `wb-<10 hex of the network id>`.
pub const BRIDGE_PREFIX: &str = "wb-";
/// Prefix of the host end of an endpoint's veth: `wv-<10 hex of the endpoint id>`.
pub const HOST_VETH_PREFIX: &str = "wv-";
/// Prefix of a sandbox end made in the host and then moved (`wp-<10 hex>`). Join now
/// creates that end in the sandbox directly; the prefix stays owned so that reconcile removes
/// one an older version left behind.
pub const PEER_VETH_PREFIX: &str = "wp-";
/// Every prefix the driver owns in the host namespace.
pub const OWNED_PREFIXES: [&str; 3] = [BRIDGE_PREFIX, HOST_VETH_PREFIX, PEER_VETH_PREFIX];

/// How many hex digits of an id a name carries.
const ID_DIGITS: usize = 10;

/// `prefix` + the first ten digits of `id`. Ids are 64 lower-case hex digits, so the name
/// is always 13 valid bytes; a malformed id falls back to its valid characters.
fn derive(prefix: &str, id: &str) -> Result<IfName, weft_os::Error> {
    let digits: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(ID_DIGITS)
        .collect();
    IfName::new(format!("{prefix}{digits}"))
}

/// The bridge of network `id`.
pub fn bridge(id: &NetworkId) -> Result<IfName, weft_os::Error> {
    derive(BRIDGE_PREFIX, id.as_str())
}

/// The host end of endpoint `id`'s veth (enslaved to the bridge).
pub fn host_veth(id: &EndpointId) -> Result<IfName, weft_os::Error> {
    derive(HOST_VETH_PREFIX, id.as_str())
}

/// The host-namespace name an older version gave the sandbox end of endpoint `id`'s veth
/// before moving it (see [`PEER_VETH_PREFIX`]).
pub fn peer_veth(id: &EndpointId) -> Result<IfName, weft_os::Error> {
    derive(PEER_VETH_PREFIX, id.as_str())
}

/// Whether `name` has exactly the shape of a name this driver makes (a prefix, then ten
/// lower-case hex digits), so that reconcile never deletes a look-alike it did not make.
pub fn is_owned(name: &str) -> bool {
    OWNED_PREFIXES.iter().any(|p| {
        name.strip_prefix(p).is_some_and(|rest| {
            rest.len() == ID_DIGITS && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefix_and_ten_digits() {
        let n: NetworkId = format!("0123456789{}", "a".repeat(54)).parse().unwrap();
        let e: EndpointId = format!("fedcba9876{}", "b".repeat(54)).parse().unwrap();
        assert_eq!(bridge(&n).unwrap().as_str(), "wb-0123456789");
        assert_eq!(host_veth(&e).unwrap().as_str(), "wv-fedcba9876");
        assert_eq!(peer_veth(&e).unwrap().as_str(), "wp-fedcba9876");
        assert!(bridge(&n).unwrap().as_str().len() <= 15);
    }

    #[test]
    fn only_exact_shapes_are_owned() {
        assert!(is_owned("wb-0123456789"));
        assert!(is_owned("wv-abcdefabcd"));
        assert!(is_owned("wp-0000000000"));
        for other in [
            "wb-",
            "wb-012345678",
            "wb-0123456789a",
            "wb-ABCDEF0123",
            "wx-0123456789",
            "eth0",
        ] {
            assert!(!is_owned(other), "{other}");
        }
    }
}
