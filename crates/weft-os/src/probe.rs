//! ICMP echo probes of other hosts' data-path addresses, answered by their kernels whether
//! or not their agents run: what tells a lost host from a lost agent. One raw ICMPv4
//! socket in the agent's namespace; replies are matched by the echo identifier.

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recvfrom, sendto, socket,
};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// Sends echo requests and reads the replies to them.
#[derive(Debug)]
pub struct EchoProber {
    fd: AsyncFd<OwnedFd>,
    id: u16,
}

impl EchoProber {
    /// A raw ICMP socket (needs CAP_NET_RAW); `id` marks this prober's requests. Must be
    /// called within a tokio runtime.
    pub fn new(id: u16) -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::Icmp,
        )?;
        // SAFETY: an OwnedFd is an open descriptor that stays open, and is the same
        // descriptor, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(EchoProber { fd, id })
    }

    /// Sends echo request `seq` to `to`.
    pub async fn send(&self, to: Ipv4Addr, seq: u16) -> io::Result<()> {
        let packet = echo_request(self.id, seq);
        let addr = SockaddrIn::from(SocketAddrV4::new(to, 0));
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| {
                sendto(fd.as_raw_fd(), &packet, &addr, MsgFlags::empty()).map_err(io::Error::from)
            }) {
                Ok(result) => return result.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }

    /// The next echo reply to one of this prober's requests: who answered, and the seq.
    pub async fn recv(&self) -> io::Result<(Ipv4Addr, u16)> {
        let mut buf = [0u8; 1500];
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|fd| {
                recvfrom::<SockaddrIn>(fd.as_raw_fd(), &mut buf).map_err(io::Error::from)
            });
            let Ok(result) = got else { continue };
            let (n, from) = result?;
            let Some(from) = from else { continue };
            if let Some(seq) = parse_reply(&buf[..n], self.id) {
                return Ok((from.ip(), seq));
            }
        }
    }
}

/// An echo request: type, code, checksum, id, seq, and 8 bytes of payload.
fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = ECHO_REQUEST;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"weft-lb\0");
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The seq of an echo reply with identifier `id`; a raw socket's datagram starts with the
/// IP header. Anything else is `None`.
fn parse_reply(datagram: &[u8], id: u16) -> Option<u16> {
    let ihl = usize::from(datagram.first()? & 0x0f) * 4;
    let icmp = datagram.get(ihl..)?;
    if icmp.len() < 8 || icmp[0] != ECHO_REPLY || icmp[4..6] != id.to_be_bytes() {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_checksums_to_zero_and_a_reply_is_matched_by_id() {
        let req = echo_request(0x1234, 7);
        assert_eq!(checksum(&req), 0);
        let mut datagram = vec![0x45u8];
        datagram.extend_from_slice(&[0u8; 19]);
        let mut reply = req;
        reply[0] = ECHO_REPLY;
        datagram.extend_from_slice(&reply);
        assert_eq!(parse_reply(&datagram, 0x1234), Some(7));
        assert_eq!(parse_reply(&datagram, 0x4321), None);
        assert_eq!(parse_reply(&datagram[..22], 0x1234), None);
        assert_eq!(parse_reply(&[], 0x1234), None);
    }
}
