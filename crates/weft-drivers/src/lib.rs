//! The driver API and the built-in drivers.
//!
//! A driver realises networks and endpoints: the controller decides what should exist
//! (names, addresses, lifecycle, persistence) and asks the driver to make it so. Every
//! driver operation is idempotent, because the controller repeats operations that a crash
//! interrupted: creating what exists succeeds, deleting what is absent succeeds.
//!
//! This crate holds no allocation policy and no persistence.
#![forbid(unsafe_code)]

pub mod bridge;
pub mod fake;
pub mod overlay;
pub mod passive;

pub use bridge::BridgeDriver;
pub use overlay::{OverlayConfig, OverlayDriver, PEER_TABLE, PeerRecord};
pub use passive::PassiveDriver;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use weft_os::{IfName, NsName};
use weft_types::api::SubnetRequest;
use weft_types::{
    DriverName, EndpointId, EndpointRecord, Error, ErrorKind, Labels, Name, NetworkId,
    NetworkRecord, Options, SandboxId, SandboxRecord, Scope,
};

/// The operation a driver failed in, for errors and fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverOp {
    /// Checking a network's request before anything is allocated ([`Driver::validate`]).
    Validate,
    CreateNetwork,
    DeleteNetwork,
    CreateEndpoint,
    DeleteEndpoint,
    Join,
    Leave,
    Reconcile,
    EventNotify,
    Repair,
}

impl fmt::Display for DriverOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverOp::Validate => "validate network",
            DriverOp::CreateNetwork => "create network",
            DriverOp::DeleteNetwork => "delete network",
            DriverOp::CreateEndpoint => "create endpoint",
            DriverOp::DeleteEndpoint => "delete endpoint",
            DriverOp::Join => "join",
            DriverOp::Leave => "leave",
            DriverOp::Reconcile => "reconcile",
            DriverOp::EventNotify => "apply a table event",
            DriverOp::Repair => "repair",
        })
    }
}

/// A driver operation failed.
///
/// A kernel step's failure keeps the [`weft_os::Error`] as its source, so callers match on
/// its kind ([`DriverError::os_error`]) instead of probing the message. The messages render
/// that source too: they cross the API as text ([`weft_types::Error`] keeps no chain), and
/// users must see what the kernel said.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The driver refuses a network option or parameter.
    #[error("driver {driver}: {message}")]
    InvalidParameter { driver: DriverName, message: String },
    /// A kernel step failed (boxed: weft-os errors are large, and results mostly `Ok`).
    #[error(transparent)]
    Kernel(Box<KernelFailure>),
    /// The driver tried and failed for another reason, or in several independent steps (a
    /// reconcile reports every one): no single cause to keep.
    #[error("driver {driver} failed to {op} {object}: {message}")]
    Failed {
        driver: DriverName,
        op: DriverOp,
        object: String,
        message: String,
    },
}

/// A driver's kernel step that failed, with what else failed in the same operation.
#[derive(Debug, thiserror::Error)]
#[error(
    "driver {driver} failed to {op} {object}: {}{}",
    error_chain(.source),
    also_suffix(.also)
)]
pub struct KernelFailure {
    pub driver: DriverName,
    pub op: DriverOp,
    pub object: String,
    /// The kernel's refusal, to match on.
    #[source]
    pub source: weft_os::Error,
    /// What else failed in the same operation (the rollback of earlier steps, later steps
    /// of a delete), in order.
    pub also: Vec<String>,
}

impl DriverError {
    /// `driver` tried `op` on `object` and failed with `message`.
    pub fn failed(
        driver: &DriverName,
        op: DriverOp,
        object: impl Into<String>,
        message: String,
    ) -> Self {
        DriverError::Failed {
            driver: driver.clone(),
            op,
            object: object.into(),
            message,
        }
    }

    /// `driver`'s kernel step of `op` on `object` failed with `source`.
    pub fn kernel(
        driver: &DriverName,
        op: DriverOp,
        object: impl Into<String>,
        source: weft_os::Error,
    ) -> Self {
        DriverError::Kernel(Box::new(KernelFailure {
            driver: driver.clone(),
            op,
            object: object.into(),
            source,
            also: Vec::new(),
        }))
    }

    /// The same error, noting `more` that failed in the same operation (a rollback step);
    /// an error without a list of its own takes it into its message.
    pub fn also(mut self, more: impl Into<String>) -> Self {
        let more = more.into();
        match &mut self {
            DriverError::Kernel(failure) => failure.also.push(more),
            DriverError::Failed { message, .. } | DriverError::InvalidParameter { message, .. } => {
                message.push_str("; ");
                message.push_str(&more);
            }
        }
        self
    }

    /// The kernel's error, when a kernel step failed: match on its variant (e.g.
    /// [`weft_os::Error::is_vni_in_use`]) rather than on the message.
    pub fn os_error(&self) -> Option<&weft_os::Error> {
        match self {
            DriverError::Kernel(failure) => Some(&failure.source),
            DriverError::InvalidParameter { .. } | DriverError::Failed { .. } => None,
        }
    }
}

/// `; a; b` for the further failures of an operation, nothing when there are none.
fn also_suffix(also: &[String]) -> String {
    also.iter().map(|a| format!("; {a}")).collect()
}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Error {
        let kind = match e {
            DriverError::InvalidParameter { .. } => ErrorKind::InvalidParameter,
            DriverError::Kernel(_) | DriverError::Failed { .. } => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

/// What a driver can do, declared once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Local drivers realise networks on one host; global ones span the cluster.
    pub scope: Scope,
    /// Whether the driver's networks get subnets and endpoints get addresses.
    pub ipam: bool,
    /// Whether a sandbox joined to this driver's network uses the host's namespace
    /// (the `host` driver): it may then be on no other network.
    pub host_namespace: bool,
}

impl Capability {
    /// A local driver with addresses in its own namespace (bridge, null).
    pub const LOCAL: Capability = Capability {
        scope: Scope::Local,
        ipam: true,
        host_namespace: false,
    };
}

/// What is known of a network before anything is allocated for it: what was asked for. No
/// id yet, subnets only where the user named them (IPAM or a manager picks the rest), and
/// no VNI unless the user gave one (a manager picks it). [`Driver::validate`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRequest {
    pub name: Name,
    pub driver: DriverName,
    /// The subnets asked for, in order; none means one picked for the network.
    pub subnets: Vec<SubnetRequest>,
    pub ipv6: bool,
    pub internal: bool,
    pub options: Options,
    pub labels: Labels,
}

impl NetworkRequest {
    /// A complete definition (from a manager or another node) as a request: every subnet,
    /// gateway and option known. Checked with the same hook before it is adopted.
    pub fn from_record(network: &NetworkRecord) -> Self {
        NetworkRequest {
            name: network.name.clone(),
            driver: network.driver.clone(),
            subnets: network
                .subnets
                .iter()
                .map(|s| SubnetRequest {
                    subnet: Some(s.subnet),
                    gateway: Some(s.gateway),
                    ip_range: s.ip_range,
                })
                .collect(),
            ipv6: network.ipv6,
            internal: network.internal,
            options: network.options.clone(),
            labels: network.labels.clone(),
        }
    }

    /// How many IPv4 subnets the network will have: one per entry that is not IPv6 (an
    /// entry without a subnet is an automatic IPv4 one), or the one picked when none is
    /// asked for.
    pub fn ipv4_subnets(&self) -> usize {
        if self.subnets.is_empty() {
            return 1;
        }
        let v6 = |s: &&SubnetRequest| s.subnet.is_some_and(|n| n.addr().is_ipv6());
        self.subnets.len() - self.subnets.iter().filter(v6).count()
    }
}

/// Where an endpoint joins a sandbox: its namespace and the interface name inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinContext {
    /// The sandbox's network namespace.
    pub netns: NsName,
    /// The interface name inside the sandbox: eth0, eth1, ... in join order.
    pub ifname: IfName,
    /// Whether this endpoint carries the sandbox's default route (the first
    /// non-internal network joined does).
    pub default_route: bool,
}

/// What the store wants to exist for one driver, handed over at start.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub networks: Vec<NetworkRecord>,
    /// Endpoints of those networks, with their join when joined.
    pub endpoints: Vec<(EndpointRecord, Option<JoinContext>)>,
}

/// One entry of a NetworkDB table of the endpoint's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub table: String,
    pub key: String,
    pub value: Vec<u8>,
}

/// What a successful join hands back to the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinInfo {
    /// Entries the controller publishes once the join has succeeded and withdraws at
    /// leave (libnetwork's AddTableEntry).
    pub table_entries: Vec<TableEntry>,
}

/// A change to an entry another node wrote in a table the driver asked for
/// (libnetwork's EventNotify): a create has no `prev`, a delete no `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNotify {
    pub network: NetworkId,
    pub table: String,
    pub key: String,
    /// The node that wrote the entry.
    pub owner: String,
    pub prev: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// A node joined or left the cluster (libnetwork's node discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDiscovery {
    pub node: String,
    /// The node's data-path (VTEP) address.
    pub address: std::net::IpAddr,
    pub joined: bool,
}

/// A network driver. Implementations must be idempotent (see the crate docs).
#[async_trait]
pub trait Driver: Send + Sync + fmt::Debug {
    fn name(&self) -> &DriverName;

    fn capability(&self) -> Capability;

    /// Whether the driver's networks have names: their sandboxes get the embedded DNS and
    /// their endpoints' names answer there (Docker's user-defined networks).
    fn answers_names(&self) -> bool {
        false
    }

    /// Refuses a network the driver cannot realise, before anything is allocated for it
    /// (subnets, a manager's id and VNIs) or published: options, subnets asked for, IPv6.
    /// Also called with a complete definition ([`NetworkRequest::from_record`]) before one
    /// made elsewhere is adopted. Must not touch the kernel.
    fn validate(&self, _request: &NetworkRequest) -> Result<(), DriverError> {
        Ok(())
    }

    async fn create_network(&self, network: &NetworkRecord) -> Result<(), DriverError>;

    async fn delete_network(&self, network: &NetworkId) -> Result<(), DriverError>;

    async fn create_endpoint(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), DriverError>;

    async fn delete_endpoint(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<(), DriverError>;

    async fn join(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
        sandbox: &SandboxRecord,
        context: &JoinContext,
    ) -> Result<JoinInfo, DriverError>;

    /// Undoes a join. Takes the sandbox id only: a leave must work even when the
    /// sandbox record is gone (recovery after a crash).
    async fn leave(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
        sandbox: &SandboxId,
    ) -> Result<(), DriverError>;

    /// At start, after a crash or a reboot: makes the kernel match `wanted` (creating
    /// what is missing, adopting what exists) and removes what this driver owns that is
    /// not wanted. The default does nothing, for drivers without kernel state.
    async fn reconcile(&self, _wanted: &Wanted) -> Result<(), DriverError> {
        Ok(())
    }

    /// Every table any network of this driver may ask for: the agent subscribes to them
    /// at start, so that events arriving before a network exists here are kept.
    fn watched_tables(&self) -> Vec<String> {
        Vec::new()
    }

    /// The tables of `network` this driver wants [`EventNotify`]s for, declared when the
    /// network is created here (a subset of [`Driver::watched_tables`]).
    fn event_tables(&self, _network: &NetworkRecord) -> Vec<String> {
        Vec::new()
    }

    /// Applies a change another node made to one of the tables the driver asked for. It
    /// may arrive before the network exists on this host: the driver keeps it and applies
    /// it when the network is created.
    async fn event_notify(&self, _event: &EventNotify) -> Result<(), DriverError> {
        Ok(())
    }

    /// Whether the driver wants [`NodeDiscovery`] events.
    fn wants_discovery(&self) -> bool {
        false
    }

    async fn discover(&self, _event: &NodeDiscovery) -> Result<(), DriverError> {
        Ok(())
    }

    /// The entries a joined endpoint publishes: what `join` returned. The controller asks
    /// again after a restart, because NetworkDB is not persisted.
    fn published_entries(
        &self,
        _network: &NetworkRecord,
        _endpoint: &EndpointRecord,
    ) -> Vec<TableEntry> {
        Vec::new()
    }

    /// Compares the kernel with what the driver holds and repairs the differences (entries
    /// removed or changed behind the agent's back); returns how many it repaired. Called
    /// periodically.
    async fn repair(&self) -> Result<usize, DriverError> {
        Ok(0)
    }
}

/// The drivers an agent offers, by name.
#[derive(Debug, Clone, Default)]
pub struct DriverRegistry {
    drivers: BTreeMap<DriverName, Arc<dyn Driver>>,
}

impl DriverRegistry {
    pub fn new() -> Self {
        DriverRegistry::default()
    }

    /// Adds a driver, replacing one of the same name.
    pub fn register(&mut self, driver: Arc<dyn Driver>) {
        self.drivers.insert(driver.name().clone(), driver);
    }

    /// Every driver, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Driver>> {
        self.drivers.values()
    }

    /// The driver called `name`, or an error listing the available ones.
    pub fn get(&self, name: &DriverName) -> Result<Arc<dyn Driver>, Error> {
        self.drivers.get(name).cloned().ok_or_else(|| {
            let available: Vec<&str> = self.drivers.keys().map(DriverName::as_str).collect();
            Error::new(
                ErrorKind::InvalidParameter,
                format!(
                    "unknown driver {name}: available drivers are {}",
                    available.join(", ")
                ),
            )
        })
    }
}

/// An error and its sources, `outer: inner: ...` (weft-os errors keep the cause in `source`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The failures of an operation that carries on past a failed kernel step (a delete): the
/// first one is the error and its source, later ones are noted on it.
pub(crate) struct Failures<'a> {
    driver: &'a DriverName,
    op: DriverOp,
    object: String,
    error: Option<DriverError>,
}

impl<'a> Failures<'a> {
    pub(crate) fn new(driver: &'a DriverName, op: DriverOp, object: String) -> Self {
        Failures {
            driver,
            op,
            object,
            error: None,
        }
    }

    /// Records a failed step; `what` names it in the note when it is not the first.
    pub(crate) fn push(&mut self, what: impl fmt::Display, e: weft_os::Error) {
        self.error = Some(match self.error.take() {
            None => DriverError::kernel(self.driver, self.op, self.object.clone(), e),
            Some(first) => first.also(format!("{what}: {}", error_chain(&e))),
        });
    }

    pub(crate) fn into_result(self) -> Result<(), DriverError> {
        self.error.map_or(Ok(()), Err)
    }
}

pub(crate) fn network_object(id: &NetworkId) -> String {
    format!("network {}", id.short())
}

pub(crate) fn endpoint_object(id: &EndpointId) -> String {
    format!("endpoint {}", id.short())
}
