//! The vocabulary every weft crate shares: ids, validated names, the errors users see,
//! options and labels, scopes, VNIs, the persisted records and the API messages, the gossip
//! schema (tables and their values), and the versioned binary encoding of records.
//!
//! This crate holds no logic beyond parsing and validation: no I/O, no allocation policy.
#![forbid(unsafe_code)]

pub mod api;
pub mod error;
pub mod gossip;
pub mod id;
pub mod mac;
pub mod name;
pub mod options;
pub mod record;
pub mod service;
pub mod vni;
pub mod wire;

pub use error::{Error, ErrorKind};
pub use id::{EndpointId, NetworkId, SandboxId};
pub use mac::MacAddr;
pub use name::{DriverName, Hostname, Name};
pub use options::{Labels, Options};
pub use record::{
    Attachment, EndpointRecord, Lifecycle, NetworkRecord, SandboxInterface, SandboxRecord, Scope,
    SubnetConfig,
};
pub use service::{ServiceMode, ServiceNetwork, ServiceRecord};
pub use vni::{VXLANID_OPTION, Vni, VniError};
