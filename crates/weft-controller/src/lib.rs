//! The controller: the per-host owner of networks, endpoints and sandboxes.
//!
//! [`Controller`] is an actix actor that serialises every operation; the logic lives in
//! [`core::Core`], plain async Rust that persists intent before acting, rolls back
//! every earlier step when a later one fails, and finishes or undoes half-done
//! operations when it starts. It is not the kernel (drivers and weft-os are) and not the
//! API (node/ is).
#![forbid(unsafe_code)]

mod actor;
pub mod cluster;
pub mod core;
pub mod crash;
pub mod events;
pub mod names;

pub use actor::{
    AdoptNetwork, Controller, CreateEndpoint, CreateNetwork, CreateSandbox, CreateService,
    DeleteEndpoint, DeleteNetwork, DeleteSandbox, DeleteService, ForgetNetwork, InspectNetwork,
    InspectSandbox, JoinEndpoint, LeaveEndpoint, ListEndpoints, ListNetworks, ListSandboxes,
    ListServices, Observe, PANIC_EXIT_CODE, StartProcess,
};
pub use cluster::{ClusterPlane, Standalone};
pub use core::{ControllerConfig, ControllerSnapshot, Core, GATEWAY_NETWORK};
pub use names::{NamePlane, NoNames, SandboxNames};
