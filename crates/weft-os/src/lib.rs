//! weft-os: the only crate of weft that touches the kernel — named network namespaces, links
//! (veth, bridge, vxlan), addresses, routes, neighbour and FDB entries, sysctls, nftables
//! rulesets, and processes started inside a namespace.
//!
//! Everything above it programs the kernel through the narrow traits of [`ops`] (one
//! [`Kernel`] supertrait), injected through constructors: [`RealKernel`] on Linux, [`FakeKernel`]
//! in memory for tests without root. Both are idempotent: creating what exists succeeds
//! (adopting or replacing it, as each method documents), deleting what is absent succeeds.
//!
//! Namespaces are entered only on dedicated short-lived OS threads ([`nsthread`]), never on a
//! tokio worker; netlink sockets are opened inside a namespace once and kept. It is not a
//! policy layer: names, addresses and rules come from the drivers.

#![warn(missing_docs)]

pub mod addr;
pub mod error;
pub mod exec;
pub mod fake;
pub mod link;
pub mod model;
pub mod names;
pub mod neigh;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod nsthread;
pub mod ops;
pub mod probe;
pub mod real;
pub mod resolver;
pub mod sysctl;

pub use error::{Error, NetlinkError, NftError, Result};
pub use exec::Process;
pub use fake::{Call, FakeKernel};
pub use model::{
    BridgeSpec, CommandSpec, FdbEntry, LinkInfo, LinkKind, MacAddr, Neighbour, NftTable, Route,
    StdioMode, VXLAN_PORT, VethSpec, VxlanInfo, VxlanSpec,
};
pub use names::{IfName, NsName, NsRef, SysctlKey, Vni};
pub use netlink::NetlinkHandle;
pub use netns::NetnsDir;
pub use ops::{
    AddrOps, ExecOps, FirewallOps, Inventory, Kernel, LinkOps, NeighOps, NetnsOps, SysctlOps,
    inventory,
};
pub use real::{RealKernel, RealKernelConfig};

/// The `nftables` crate, re-exported so callers build rulesets with the same version.
pub use nftables;
