//! weft-manager: the cluster allocator of global networks, as a deterministic state
//! machine ([`Allocator`]: [`Command`] in, new state and [`Outcome`] out), and its
//! persistence as a command log ([`ManagerStore`]).
//!
//! It allocates global network ids and names (unique in the cluster), subnets (from the
//! configurable default pools, 10.0.0.0/8 in /24s, or given ones that must not overlap),
//! one VNI per IPv4 subnet (serial from 4096, libnetwork reference §3.1), endpoint addresses
//! and service virtual IPs, and keeps the services defined on those networks (one VIP per
//! network in `vip` mode; a network is not deleted under a service). The same commands in
//! the same order always give the same state, so the log can later be replicated with Raft
//! without rewriting the allocator.
//!
//! [`ManagerService`] answers the requests nodes send a manager (the messages travel over
//! weft-rpc; this crate does no I/O besides its store). What it is not: no RPC transport,
//! no actor, no gossip; the agent publishes the definitions it returns.
#![forbid(unsafe_code)]

mod allocator;
mod command;
mod error;
mod log;
mod service;
mod vni;

pub use allocator::{Allocator, AllocatorSnapshot, NetworkSnapshot};
pub use command::{
    AllocatorConfig, Command, GlobalSubnet, Grant, NetworkDef, NetworkMeta, Outcome,
};
pub use error::{AllocError, ManagerError};
pub use log::{CommandLog, ManagerStore, StoreLog, replay};
pub use service::{ManagerReply, ManagerRequest, ManagerResponse, ManagerService, VXLANID_OPTION};
pub use vni::{FIRST_AUTO_VNI, MAX_VNI, Vni, VniRange};

#[cfg(test)]
mod tests;
