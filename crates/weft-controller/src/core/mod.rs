//! The controller's logic, free of actors: what exists, in memory and in the store, and
//! the ordered steps of every operation.
//!
//! Rules every operation follows:
//! - validate everything before changing anything;
//! - persist intent (`creating`, `deleting`, `joining`, `leaving`) before calling a
//!   driver, and the outcome after it, each commit flushed before the next step;
//! - on a failure, undo the earlier steps in reverse order;
//! - IPAM state is never stored: it is rebuilt from the records at start
//!   ([`recovery`]), and the store is never written between an IPAM release and the
//!   final delete of the record that held the addresses.

mod endpoint;
mod gateway;
pub use gateway::GATEWAY_NETWORK;
mod global;
mod host;
mod info;
mod names;
mod network;
mod recovery;
mod resolve;
mod sandbox;
mod service;

use crate::cluster::{ClusterPlane, Standalone};
use crate::names::{NamePlane, NoNames};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use weft_drivers::DriverRegistry;
use weft_ipam::{Ipam, IpamConfig, PoolId};
use weft_os::Kernel;
use weft_store::{Expect, Store, StoreError, Txn};
use weft_types::record::Record;
use weft_types::{
    EndpointId, EndpointRecord, Error, ErrorKind, Lifecycle, Name, NetworkId, NetworkRecord,
    SandboxId, SandboxRecord, ServiceRecord,
};

/// How the controller is set up.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Predefined pools for automatically chosen subnets.
    pub ipam: IpamConfig,
    /// Prefix of every namespace this agent creates (several agents may share a host).
    pub netns_prefix: String,
    /// The cluster: the manager's allocator, NetworkDB, driver events.
    pub cluster: Arc<dyn ClusterPlane>,
    /// The embedded DNS: told which sandboxes are on which networks with names.
    pub names: Arc<dyn NamePlane>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            ipam: IpamConfig::default(),
            netns_prefix: "weft-".to_owned(),
            cluster: Arc::new(Standalone),
            names: Arc::new(NoNames),
        }
    }
}

/// A record with the store version it was last written with.
#[derive(Debug, Clone)]
pub(crate) struct Stored<R> {
    pub record: R,
    pub version: u64,
}

/// What exists on this host, for tests and diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ControllerSnapshot {
    pub networks: BTreeMap<String, Lifecycle>,
    pub endpoints: BTreeMap<String, (Lifecycle, Option<String>)>,
    pub sandboxes: BTreeMap<String, Lifecycle>,
}

/// The controller's state and operations. Every operation takes `&mut self`: the actor
/// runs one at a time.
#[derive(Debug)]
pub struct Core {
    store: Store,
    ipam: Ipam,
    drivers: DriverRegistry,
    kernel: Arc<dyn Kernel>,
    cluster: Arc<dyn ClusterPlane>,
    names: Arc<dyn NamePlane>,
    netns_prefix: String,
    networks: BTreeMap<NetworkId, Stored<NetworkRecord>>,
    endpoints: BTreeMap<EndpointId, Stored<EndpointRecord>>,
    sandboxes: BTreeMap<SandboxId, Stored<SandboxRecord>>,
    /// Services on local networks (global ones are the manager's).
    services: BTreeMap<Name, Stored<ServiceRecord>>,
    /// IPAM pools per network, in the order of the network's subnets.
    pools: HashMap<NetworkId, Vec<PoolId>>,
}

/// A record kind the core keeps in memory and in the store.
pub(crate) trait Table: Record + Clone + Send + 'static {
    type Id: Ord + Clone;
    fn id(&self) -> Self::Id;
    fn table(core: &mut Core) -> &mut BTreeMap<Self::Id, Stored<Self>>;
    fn table_ref(core: &Core) -> &BTreeMap<Self::Id, Stored<Self>>;
    fn lifecycle(&self) -> Lifecycle;
}

macro_rules! impl_table {
    ($record:ty, $id:ty, $field:ident) => {
        impl Table for $record {
            type Id = $id;
            fn id(&self) -> $id {
                self.id.clone()
            }
            fn table(core: &mut Core) -> &mut BTreeMap<$id, Stored<Self>> {
                &mut core.$field
            }
            fn table_ref(core: &Core) -> &BTreeMap<$id, Stored<Self>> {
                &core.$field
            }
            fn lifecycle(&self) -> Lifecycle {
                self.lifecycle
            }
        }
    };
}
impl_table!(NetworkRecord, NetworkId, networks);
impl_table!(EndpointRecord, EndpointId, endpoints);
impl_table!(SandboxRecord, SandboxId, sandboxes);

/// Local services have no lifecycle: a service record exists whole or not at all (its
/// VIPs are reserved in memory, and again from the record at start).
impl Table for ServiceRecord {
    type Id = Name;
    fn id(&self) -> Name {
        self.name.clone()
    }
    fn table(core: &mut Core) -> &mut BTreeMap<Name, Stored<Self>> {
        &mut core.services
    }
    fn table_ref(core: &Core) -> &BTreeMap<Name, Stored<Self>> {
        &core.services
    }
    fn lifecycle(&self) -> Lifecycle {
        Lifecycle::Ready
    }
}

impl Core {
    /// Loads the store, rebuilds IPAM and finishes or undoes what a crash interrupted.
    pub async fn open(
        config: ControllerConfig,
        store: Store,
        drivers: DriverRegistry,
        kernel: Arc<dyn Kernel>,
    ) -> Result<Core, Error> {
        let ipam = Ipam::new(config.ipam)
            .map_err(|e| Error::invalid(format!("ipam configuration: {e}")))?;
        let mut core = Core {
            store,
            ipam,
            drivers,
            kernel,
            cluster: config.cluster,
            names: config.names,
            netns_prefix: config.netns_prefix,
            networks: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            sandboxes: BTreeMap::new(),
            services: BTreeMap::new(),
            pools: HashMap::new(),
        };
        core.load().await?;
        core.recover().await?;
        core.announce().await;
        Ok(core)
    }

    /// The lifecycle of every object, for tests and diagnostics.
    pub fn snapshot(&self) -> ControllerSnapshot {
        ControllerSnapshot {
            networks: self
                .networks
                .iter()
                .map(|(id, s)| (id.to_string(), s.record.lifecycle))
                .collect(),
            endpoints: self
                .endpoints
                .iter()
                .map(|(id, s)| {
                    let sandbox = s.record.attachment.sandbox().map(ToString::to_string);
                    (id.to_string(), (s.record.lifecycle, sandbox))
                })
                .collect(),
            sandboxes: self
                .sandboxes
                .iter()
                .map(|(id, s)| (id.to_string(), s.record.lifecycle))
                .collect(),
        }
    }

    /// The allocator's state, to check that a restart rebuilds it identically.
    pub fn ipam_snapshot(&self) -> weft_ipam::IpamSnapshot {
        self.ipam.snapshot()
    }

    /// Writes `record`, expecting the version held in memory, and keeps the new version.
    pub(crate) async fn save<R: Table>(&mut self, record: R) -> Result<(), Error> {
        let expect = R::table_ref(self)
            .get(&record.id())
            .map_or(Expect::Absent, |s| Expect::Version(s.version));
        let mut txn = Txn::new();
        txn.put(&record, expect)
            .map_err(|e| store_error(e, "encode"))?;
        // The intent of a removal may use the store's reserve on a full disk.
        if record.lifecycle() == Lifecycle::Deleting {
            txn.teardown();
        }
        let versions = self.commit(txn).await?;
        let version = versions.first().copied().unwrap_or_default();
        R::table(self).insert(record.id(), Stored { record, version });
        Ok(())
    }

    /// Deletes the record with `id` from the store, then from memory.
    pub(crate) async fn erase<R: Table>(&mut self, id: &R::Id) -> Result<(), Error> {
        let Some(stored) = R::table_ref(self).get(id) else {
            return Ok(());
        };
        let mut txn = Txn::new();
        txn.delete::<R>(&stored.record.key(), Expect::Version(stored.version))
            .map_err(|e| store_error(e, "encode"))?
            .teardown();
        self.commit(txn).await?;
        R::table(self).remove(id);
        Ok(())
    }

    /// Commits off the actor's thread: a commit flushes to disk.
    async fn commit(&self, txn: Txn) -> Result<Vec<u64>, Error> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.commit(txn))
            .await
            .map_err(|e| Error::internal(format!("store commit task failed: {e}")))?
            .map_err(|e| store_error(e, "commit"))
    }

    /// Reads every record into memory.
    async fn load(&mut self) -> Result<(), Error> {
        let store = self.store.clone();
        let (networks, endpoints, sandboxes, services) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((
                store.list::<NetworkRecord>()?,
                store.list::<EndpointRecord>()?,
                store.list::<SandboxRecord>()?,
                store.list::<ServiceRecord>()?,
            ))
        })
        .await
        .map_err(|e| Error::internal(format!("store load task failed: {e}")))?
        .map_err(|e| store_error(e, "load"))?;
        self.keep(networks);
        self.keep(endpoints);
        self.keep(sandboxes);
        self.keep(services);
        Ok(())
    }

    /// Holds loaded records in memory with their versions.
    fn keep<R: Table>(&mut self, loaded: Vec<weft_store::Versioned<R>>) {
        for v in loaded {
            R::table(self).insert(
                v.value.id(),
                Stored {
                    version: v.version,
                    record: v.value,
                },
            );
        }
    }

    fn driver_for(
        &self,
        network: &NetworkRecord,
    ) -> Result<std::sync::Arc<dyn weft_drivers::Driver>, Error> {
        self.drivers.get(&network.driver)
    }

    /// Endpoints on `network`, in any lifecycle.
    fn endpoints_of(&self, network: &NetworkId) -> impl Iterator<Item = &EndpointRecord> + Clone {
        self.endpoints
            .values()
            .map(|s| &s.record)
            .filter(move |e| &e.network == network)
    }
}

fn store_error(e: StoreError, during: &str) -> Error {
    // A full disk is the operator's to fix, and its message already says what to do.
    if e.is_unwritable() {
        return Error::new(ErrorKind::Unavailable, e.to_string());
    }
    Error::new(ErrorKind::Internal, format!("store {during} failed: {e}"))
}

/// Milliseconds since the epoch, strictly increasing within this process, so creation
/// stamps order objects even when two are made in the same millisecond.
pub(crate) fn now_ms() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}
