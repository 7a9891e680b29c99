//! Conversions between addresses and `u128` ordinals, so that one allocator serves IPv4 and IPv6.
//!
//! IPv4 addresses occupy the low 32 bits. Nothing here allocates or validates policy.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as an unsigned integer (IPv4 in the low 32 bits).
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of family `v6` whose integer value is `value` (truncated to 32 bits for IPv4).
pub(crate) fn from_u128(v6: bool, value: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(value))
    } else {
        // Callers only pass values that came from an IPv4 address plus an in-subnet offset.
        IpAddr::V4(Ipv4Addr::from(value as u32))
    }
}

/// The first address of the network, as an integer.
pub(crate) fn net_start(net: &IpNet) -> u128 {
    to_u128(net.network())
}

/// The last address of the network, as an integer.
pub(crate) fn net_end(net: &IpNet) -> u128 {
    net_start(net) | host_mask(net)
}

/// The host part mask of the network: its size minus one.
pub(crate) fn host_mask(net: &IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    // bits is at most 128; a full-width shift would overflow, hence the checked form.
    1u128.checked_shl(bits).map_or(u128::MAX, |size| size - 1)
}

/// True for an IPv6 network.
pub(crate) fn is_v6(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(_))
}

/// True when the network has no host bits set (e.g. 198.19.0.0/24, not 198.19.0.5/24).
pub(crate) fn is_canonical(net: &IpNet) -> bool {
    net.trunc() == *net
}

/// Lower-case family name for messages.
pub(crate) fn family(v6: bool) -> &'static str {
    if v6 { "ipv6" } else { "ipv4" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn v4_bounds() {
        let n = net("198.19.1.0/24");
        assert_eq!(
            from_u128(false, net_start(&n)),
            "198.19.1.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            from_u128(false, net_end(&n)),
            "198.19.1.255".parse::<IpAddr>().unwrap()
        );
        assert_eq!(host_mask(&n), 255);
        assert_eq!(host_mask(&net("0.0.0.0/0")), u128::from(u32::MAX));
    }

    #[test]
    fn v6_bounds() {
        let n = net("2001:db8::/64");
        assert_eq!(host_mask(&n), u128::from(u64::MAX));
        assert_eq!(host_mask(&net("::/0")), u128::MAX);
        assert_eq!(
            from_u128(true, net_end(&n)),
            "2001:db8::ffff:ffff:ffff:ffff".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn canonical() {
        assert!(is_canonical(&net("198.19.0.0/24")));
        assert!(!is_canonical(&net("198.19.0.5/24")));
    }
}
