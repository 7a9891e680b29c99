//! What the NetworkDB benches share.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};

use weft_types::NetworkId;

/// A loopback port nobody listens on right now.
pub fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The one network the benches' entries belong to.
pub fn network() -> NetworkId {
    "be".repeat(32).parse().unwrap()
}
