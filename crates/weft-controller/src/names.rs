//! What the embedded DNS needs from the controller, as one trait the agent implements
//! ([`NamePlane`]): which sandboxes are on which networks with names, and the names each
//! of their endpoints answers to. The controller reports a sandbox's whole state after
//! every change (join, leave, restart), so the receiver never has to replay a history.
//!
//! Names of other hosts' endpoints do not pass here: they arrive through NetworkDB's
//! `endpoint_table`, where the controller publishes the names of endpoints on global
//! networks next to the driver's own entries.

use std::fmt;
use std::path::PathBuf;
use weft_os::NsName;
use weft_types::gossip::NameRecord;
use weft_types::{EndpointId, Name, NetworkId, SandboxId, ServiceRecord};

/// One endpoint of a sandbox on a network with names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedAttachment {
    pub network: NetworkId,
    pub network_name: Name,
    /// `--internal`: names from outside are never forwarded for such a network alone.
    pub internal: bool,
    pub endpoint: EndpointId,
    pub record: NameRecord,
}

/// A sandbox and its endpoints on networks with names, in the order they joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNames {
    pub sandbox: SandboxId,
    pub name: Name,
    /// The sandbox's network namespace (`/run/netns/NAME`), where its resolver listens.
    pub netns: PathBuf,
    /// The same namespace by name, for its load balancer's rules.
    pub ns_name: NsName,
    pub attachments: Vec<NamedAttachment>,
}

/// The controller's view of the embedded DNS.
pub trait NamePlane: Send + Sync + fmt::Debug {
    /// The sandbox's current attachments; none means it needs no resolver any more.
    fn sandbox_names(&self, names: SandboxNames);

    /// The sandbox is gone.
    fn sandbox_gone(&self, sandbox: &SandboxId);

    /// Every service on this host's local networks, as they are now (global ones come
    /// from the cluster).
    fn local_services(&self, services: Vec<ServiceRecord>);
}

/// No embedded DNS: for tests and for embedding the controller alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNames;

impl NamePlane for NoNames {
    fn sandbox_names(&self, _: SandboxNames) {}
    fn sandbox_gone(&self, _: &SandboxId) {}
    fn local_services(&self, _: Vec<ServiceRecord>) {}
}
