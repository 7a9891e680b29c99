//! weft's IP address management (IPAM): address spaces, predefined pools, and the allocation
//! of subnets and of addresses inside them, with the semantics of Docker libnetwork's default
//! IPAM driver (pool ids, predefined pools, serial and lowest-free allocation, reserved
//! network/broadcast addresses).
//!
//! It is pure logic: no I/O, no clock, no persistence. State is rebuilt by replaying pools and
//! addresses (see [`Ipam::request_pool`] and [`AddressRequest::Specific`]); which addresses to
//! replay, and from which store, is the controller's business. It knows nothing of networks,
//! endpoints or host routes (callers pass the latter to [`Ipam::request_pool_avoiding`]).
//!
//! Allocated addresses are kept as runs of consecutive offsets in a `BTreeMap`, not as a
//! bitmap, so IPv4 and IPv6 share one representation and an IPv6 /64 costs memory only in
//! proportion to the number of runs handed out.
//!
//! Rules, in short (libnetwork's, except where marked *weft*):
//! - Pools of one [`AddressSpace`] never overlap; the two spaces are independent.
//! - Automatic pools come from the predefined pools of the family, in order, resuming after the
//!   last one handed out in that space and wrapping (a released pool is not reused at once).
//!   Explicit pools do not move that cursor.
//! - Explicit pools must have no host bits set. IPv4 pools must leave 2 hosts (/30 or larger).
//!   *weft*: IPv6 pools of any size up to /126 work (libnetwork caps a bitmap at 2^64 bits);
//!   predefined IPv6 pools are cut into /64 or larger subnets (prefix length at most 64).
//! - The IPv4 network and broadcast addresses and the IPv6 subnet-router address (`::0`) are
//!   never handed out. A sub-range's own first and last addresses are ordinary hosts.
//! - `Any` picks from the sub-range if there is one; `Specific` may pick anywhere in the subnet.
//! - The default gateway is the subnet's first host ([`default_gateway`]); it is not reserved
//!   automatically: the caller requests it like any other address.
//! - Releasing a pool drops every address allocated in it.
#![forbid(unsafe_code)]

mod addr;
mod candidates;
mod config;
mod error;
mod id;
mod ipam;
mod pool;
mod ranges;
mod snapshot;

pub use config::{IpamConfig, MAX_V4_SPLIT, MAX_V6_SPLIT, PredefinedPool};
pub use error::IpamError;
pub use id::{AddressSpace, PoolId};
pub use ipam::{AddressRequest, Ipam, PoolRequest};
pub use pool::PoolInfo;
pub use snapshot::{AddrRange, IpamSnapshot, PoolSnapshot};

/// The gateway a network on `pool` gets by default: the subnet's first host address.
pub fn default_gateway(pool: &PoolId) -> std::net::IpAddr {
    pool.default_gateway()
}
