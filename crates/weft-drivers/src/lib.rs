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
pub mod passive;

pub use bridge::BridgeDriver;
pub use passive::PassiveDriver;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use weft_os::{IfName, NsName};
use weft_types::{
    DriverName, EndpointId, EndpointRecord, Error, ErrorKind, NetworkId, NetworkRecord, SandboxId,
    SandboxRecord, Scope,
};

/// The operation a driver failed in, for errors and fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverOp {
    CreateNetwork,
    DeleteNetwork,
    CreateEndpoint,
    DeleteEndpoint,
    Join,
    Leave,
    Reconcile,
}

impl fmt::Display for DriverOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverOp::CreateNetwork => "create network",
            DriverOp::DeleteNetwork => "delete network",
            DriverOp::CreateEndpoint => "create endpoint",
            DriverOp::DeleteEndpoint => "delete endpoint",
            DriverOp::Join => "join",
            DriverOp::Leave => "leave",
            DriverOp::Reconcile => "reconcile",
        })
    }
}

/// A driver operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// The driver refuses a network option or parameter.
    #[error("driver {driver}: {message}")]
    InvalidParameter { driver: DriverName, message: String },
    /// The driver tried and failed.
    #[error("driver {driver} failed to {op} {object}: {message}")]
    Failed {
        driver: DriverName,
        op: DriverOp,
        object: String,
        message: String,
    },
}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Error {
        let kind = match e {
            DriverError::InvalidParameter { .. } => ErrorKind::InvalidParameter,
            DriverError::Failed { .. } => ErrorKind::Internal,
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

/// What a successful join hands back to the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinInfo {
    /// Table entries to publish once the join has succeeded: (table, key, value).
    pub table_entries: Vec<(String, String, Vec<u8>)>,
}

/// A network driver. Implementations must be idempotent (see the crate docs).
#[async_trait]
pub trait Driver: Send + Sync + fmt::Debug {
    fn name(&self) -> &DriverName;

    fn capability(&self) -> Capability;

    /// Checks a network's driver options before anything is allocated.
    fn validate_network(&self, _network: &NetworkRecord) -> Result<(), DriverError> {
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
