//! The names of the kernel objects the overlay driver owns, derived from ids and the VNI only,
//! so that a restarted agent finds (and a reconcile can judge) what it made:
//! - the network's namespace `<netns prefix>ov-<12 hex of the network id>`;
//! - inside it, the bridge `ov-<vni, 6 hex>-<5 hex of the network id>` and the vxlan
//!   `vx-<vni, 6 hex>-<5 hex of the network id>` (libnetwork's shapes, 15 bytes, `IFNAMSIZ`);
//! - inside it, the bridge end of an endpoint's veth, `ve-<10 hex of the endpoint id>`.

use weft_os::{IfName, NsName, Vni};
use weft_types::{EndpointId, NetworkId};

/// Between the agent's netns prefix and the network id in a namespace name.
pub const NETNS_INFIX: &str = "ov-";
/// Prefix of a network's bridge.
pub const BRIDGE_PREFIX: &str = "ov-";
/// Prefix of a network's vxlan device (also while it is briefly in the host namespace).
pub const VXLAN_PREFIX: &str = "vx-";
/// Prefix of the bridge end of an endpoint's veth.
pub const VETH_PREFIX: &str = "ve-";

/// Hex digits of the network id in a namespace name (`NetworkId::short`).
const NETNS_ID_DIGITS: usize = 12;
/// Hex digits of the network id in a device name.
const DEV_ID_DIGITS: usize = 5;
/// Hex digits of the endpoint id in a veth name.
const VETH_ID_DIGITS: usize = 10;

/// The first `n` hex digits of an id (ids are 64 lower-case hex digits).
fn digits(id: &str, n: usize) -> String {
    id.chars().filter(char::is_ascii_hexdigit).take(n).collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<prefix>ov-`: what every overlay namespace of an agent with `prefix` starts with.
pub fn netns_prefix(prefix: &str) -> String {
    format!("{prefix}{NETNS_INFIX}")
}

/// The namespace of network `id`.
pub fn netns(prefix: &str, id: &NetworkId) -> Result<NsName, weft_os::Error> {
    NsName::new(format!(
        "{}{}",
        netns_prefix(prefix),
        digits(id.as_str(), NETNS_ID_DIGITS)
    ))
}

/// Whether `name` has exactly the shape of a namespace this agent makes, so that reconcile
/// never deletes a look-alike it did not make.
pub fn is_owned_netns(prefix: &str, name: &str) -> bool {
    name.strip_prefix(&netns_prefix(prefix))
        .is_some_and(|rest| is_hex(rest, NETNS_ID_DIGITS))
}

fn device(prefix: &str, vni: Vni, id: &NetworkId) -> Result<IfName, weft_os::Error> {
    let nid = digits(id.as_str(), DEV_ID_DIGITS);
    IfName::new(format!("{prefix}{:06x}-{nid}", vni.get()))
}

/// The bridge of network `id` with `vni`, inside its namespace.
pub fn bridge(vni: Vni, id: &NetworkId) -> Result<IfName, weft_os::Error> {
    device(BRIDGE_PREFIX, vni, id)
}

/// The vxlan device of network `id` with `vni`.
pub fn vxlan(vni: Vni, id: &NetworkId) -> Result<IfName, weft_os::Error> {
    device(VXLAN_PREFIX, vni, id)
}

/// Whether `name` has exactly the shape of a vxlan device this driver makes.
pub fn is_owned_vxlan(name: &str) -> bool {
    name.strip_prefix(VXLAN_PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(vni, nid)| is_hex(vni, 6) && is_hex(nid, DEV_ID_DIGITS))
}

/// The bridge end of endpoint `id`'s veth, inside the network's namespace.
pub fn host_veth(id: &EndpointId) -> Result<IfName, weft_os::Error> {
    IfName::new(format!(
        "{VETH_PREFIX}{}",
        digits(id.as_str(), VETH_ID_DIGITS)
    ))
}

/// Whether `name` has exactly the shape of a veth end this driver makes.
pub fn is_owned_veth(name: &str) -> bool {
    name.strip_prefix(VETH_PREFIX)
        .is_some_and(|rest| is_hex(rest, VETH_ID_DIGITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nid() -> NetworkId {
        format!("0123456789ab{}", "c".repeat(52)).parse().unwrap()
    }

    #[test]
    fn names_follow_the_documented_shapes() {
        let vni = Vni::new(4097).unwrap();
        let ns = netns("weft-", &nid()).unwrap();
        assert_eq!(ns.as_str(), "weft-ov-0123456789ab");
        assert_eq!(bridge(vni, &nid()).unwrap().as_str(), "ov-001001-01234");
        assert_eq!(vxlan(vni, &nid()).unwrap().as_str(), "vx-001001-01234");
        let max = Vni::new(0xff_ffff).unwrap();
        assert_eq!(vxlan(max, &nid()).unwrap().as_str().len(), 15);
        let ep: EndpointId = format!("fedcba9876{}", "0".repeat(54)).parse().unwrap();
        assert_eq!(host_veth(&ep).unwrap().as_str(), "ve-fedcba9876");
    }

    #[test]
    fn only_exact_shapes_are_owned() {
        assert!(is_owned_netns("weft-", "weft-ov-0123456789ab"));
        for other in [
            "weft-ov-0123456789a",
            "weft-ov-0123456789abc",
            "weft-sb-0123456789ab",
            "other-ov-0123456789ab",
            "weft-ov-0123456789AB",
        ] {
            assert!(!is_owned_netns("weft-", other), "{other}");
        }
        assert!(is_owned_vxlan("vx-001001-01234"));
        for other in [
            "vx-1001-01234",
            "vx-001001-0123",
            "vx-001001_01234",
            "vxlan0",
        ] {
            assert!(!is_owned_vxlan(other), "{other}");
        }
        assert!(is_owned_veth("ve-0123456789"));
        assert!(!is_owned_veth("ve-012345678") && !is_owned_veth("veth0"));
    }
}
