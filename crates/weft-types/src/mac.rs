//! Ethernet MAC addresses, and the locally administered MAC derived from an IPv4 address
//! (02:42 followed by the four address bytes, as libnetwork does) so that a restarted
//! endpoint keeps its MAC and ARP caches stay valid.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `02:42:a:b:c:d` for the IPv4 address `a.b.c.d`.
    pub fn from_ipv4(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        MacAddr([0x02, 0x42, a, b, c, d])
    }

    /// A random locally administered unicast MAC (for endpoints without IPv4).
    pub fn random() -> Self {
        let mut bytes: [u8; 6] = rand::random();
        bytes[0] = (bytes[0] & 0xfe) | 0x02;
        MacAddr(bytes)
    }

    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl FromStr for MacAddr {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            crate::Error::invalid(format!(
                "invalid MAC address {s:?}: expected six hex pairs like 02:42:c6:13:00:02"
            ))
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(invalid)?;
            if part.len() != 2 {
                return Err(invalid());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        let mac = MacAddr(out);
        if mac.is_multicast() {
            return Err(crate::Error::invalid(format!(
                "invalid MAC address {s}: a multicast address cannot be an endpoint's"
            )));
        }
        Ok(mac)
    }
}

impl TryFrom<String> for MacAddr {
    type Error = crate::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_from_ipv4_like_libnetwork() {
        let mac = MacAddr::from_ipv4(Ipv4Addr::new(198, 19, 0, 2));
        assert_eq!(mac.to_string(), "02:42:c6:13:00:02");
        assert_eq!(mac.to_string().parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn rejects_malformed_and_multicast() {
        for bad in [
            "",
            "02:42",
            "02:42:c6:13:00:02:01",
            "zz:42:c6:13:00:02",
            "01:00:5e:00:00:01",
            "2:42:c6:13:0:2",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn random_is_local_unicast() {
        for _ in 0..100 {
            let m = MacAddr::random();
            assert!(!m.is_multicast());
            assert_eq!(m.0[0] & 2, 2);
        }
    }
}
