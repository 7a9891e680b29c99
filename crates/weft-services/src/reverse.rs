//! Reverse-lookup names: `d.c.b.a.in-addr.arpa` (RFC 1035 §3.5) and the 32 nibbles of
//! `ip6.arpa` (RFC 3596 §2.5) back to an address. Only full addresses are accepted: the
//! resolver answers PTR for endpoints, never for zones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a PTR question's name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReverseName {
    /// Not under in-addr.arpa or ip6.arpa: an ordinary name.
    NotReverse,
    /// Under a reverse zone, but not one full address.
    Malformed,
    /// The address the name stands for.
    Address(IpAddr),
}

/// Reads a folded name (lower-case labels joined by dots, see `wire::fold_name`).
pub(crate) fn parse_reverse(folded: &str) -> ReverseName {
    if let Some(rest) = strip_zone(folded, "in-addr.arpa") {
        return parse_v4(rest).map_or(ReverseName::Malformed, ReverseName::Address);
    }
    if let Some(rest) = strip_zone(folded, "ip6.arpa") {
        return parse_v6(rest).map_or(ReverseName::Malformed, ReverseName::Address);
    }
    ReverseName::NotReverse
}

/// The labels before `zone` (possibly empty), if `folded` is `zone` or lies under it.
fn strip_zone<'a>(folded: &'a str, zone: &str) -> Option<&'a str> {
    if folded == zone {
        return Some("");
    }
    folded.strip_suffix(zone)?.strip_suffix('.')
}

/// Four decimal octets, least significant first.
fn parse_v4(labels: &str) -> Option<IpAddr> {
    let mut octets = [0u8; 4];
    let mut count = 0;
    for label in labels.split('.') {
        let slot = octets.get_mut(count)?;
        let digits_only = !label.is_empty() && label.len() <= 3;
        if !digits_only || !label.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = label.parse().ok()?;
        count += 1;
    }
    (count == 4).then(|| {
        octets.reverse();
        IpAddr::V4(Ipv4Addr::from(octets))
    })
}

/// Thirty-two hex nibbles, least significant first.
fn parse_v6(labels: &str) -> Option<IpAddr> {
    let mut value: u128 = 0;
    let mut count = 0;
    for label in labels.split('.') {
        let &[digit] = label.as_bytes() else {
            return None;
        };
        let nibble = char::from(digit).to_digit(16)?;
        if count == 32 {
            return None;
        }
        value |= u128::from(nibble) << (4 * count);
        count += 1;
    }
    (count == 32).then_some(IpAddr::V6(Ipv6Addr::from(value)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_full_ipv4_names() {
        assert_eq!(
            parse_reverse("4.3.2.10.in-addr.arpa"),
            ReverseName::Address("10.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn parses_full_ipv6_names() {
        let ip: IpAddr = "fd00::1:2".parse().unwrap();
        let hickory = hickory_proto::rr::Name::from(ip);
        let folded = crate::wire::fold_name(&hickory).unwrap();
        assert_eq!(parse_reverse(&folded), ReverseName::Address(ip));
    }

    #[test]
    fn refuses_partial_or_bad_reverse_names() {
        for name in [
            "in-addr.arpa",
            "3.2.10.in-addr.arpa",
            "5.4.3.2.10.in-addr.arpa",
            "256.3.2.10.in-addr.arpa",
            "x.3.2.10.in-addr.arpa",
            "0004.3.2.10.in-addr.arpa",
            "1.0.ip6.arpa",
            "10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
        ] {
            assert_eq!(parse_reverse(name), ReverseName::Malformed, "{name}");
        }
        assert_eq!(parse_reverse("web.arpa"), ReverseName::NotReverse);
        assert_eq!(parse_reverse("xin-addr.arpa"), ReverseName::NotReverse);
    }
}
