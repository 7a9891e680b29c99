//! The weft agent as a library: everything between the command line and the controller.
//!
//! - [`membership`]: the node's NetworkDB, its keyring and seeds, the `nodes` record it
//!   publishes; [`join`]: secure join (identity, tokens, admission on managers).
//! - [`manager`]: the manager role, the cluster allocator served over RPC and the global
//!   network definitions it publishes.
//! - [`plane`]: what the controller asks of the cluster ([`plane::AgentPlane`]);
//!   [`watcher`] and [`change`]: what the cluster tells the controller and the drivers.
//! - `hosts`: probes of other hosts, which tell a crashed agent (its entries stay) from a
//!   lost host (its backends leave at once).
//! - [`names`]: the embedded DNS: every name this host's sandboxes may ask for, and a
//!   resolver in each sandbox on a network with names.
//! - [`server`], [`serve`], [`diag`], [`stores`]: the local API, its HTTP serving limits,
//!   diagnostics and metrics, the stores' health.
//! - [`agent`]: the composition root, [`run`].
#![forbid(unsafe_code)]

pub mod agent;
pub mod change;
pub mod config;
pub mod diag;
pub mod error;
mod hosts;
pub mod join;
pub mod manager;
pub mod membership;
pub mod names;
pub mod plane;
pub mod serve;
pub mod server;
mod service_api;
pub mod stores;
pub mod watcher;

pub use agent::run;
pub use config::{AgentConfig, ClusterSettings};
pub use error::AgentError;
