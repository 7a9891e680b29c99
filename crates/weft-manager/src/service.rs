//! The manager's service: what nodes ask a manager over RPC ([`ManagerRequest`]) and how
//! it answers, on top of the persisted allocator.
//!
//! The service turns requests into allocator commands (choosing what the allocator must
//! not choose itself: network ids) and allocator definitions into the [`NetworkRecord`]s
//! and [`ServiceRecord`]s every node stores. Releases are idempotent here, because a node
//! retries a release whose answer it did not receive.

use crate::{
    AllocError, Command, CommandLog, ManagerError, ManagerStore, NetworkDef, NetworkMeta, Outcome,
    StoreLog, Vni,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use weft_types::api::SubnetRequest;
use weft_types::{
    Error, ErrorKind, Lifecycle, Name, NetworkId, NetworkRecord, Options, Scope, ServiceMode,
    ServiceRecord,
};

pub use weft_types::VXLANID_OPTION;

/// A request to a manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerRequest {
    /// Creates a global network. A VNI may be given with the [`VXLANID_OPTION`] option.
    CreateNetwork {
        name: Name,
        subnets: Vec<SubnetRequest>,
        meta: NetworkMeta,
    },
    /// Deletes a global network that has no endpoint left in the cluster.
    DeleteNetwork { id: NetworkId },
    /// Gives an endpoint its addresses; the same endpoint always gets the same ones.
    AllocateAddress {
        network: NetworkId,
        endpoint: String,
        ip: Option<IpAddr>,
    },
    /// Releases an endpoint's addresses; releasing what is not held succeeds.
    ReleaseAddress {
        network: NetworkId,
        endpoint: String,
    },
    /// Every global network.
    Networks,
    /// The operator's way out of allocations no endpoint will ever release (a node that
    /// crashed between the manager's answer and its own save, or was lost for good):
    /// releases every address of the network held by an endpoint not in `live`, then
    /// deletes the network; refused, naming them, while `live` endpoints hold addresses.
    /// Built by a manager from what NetworkDB shows (`weft network rm --force` there),
    /// never accepted from another node.
    ForceDeleteNetwork {
        id: NetworkId,
        live: BTreeSet<String>,
    },
    /// Defines a service on global networks (one VIP per network in `vip` mode); the same
    /// request again gets the same record.
    CreateService {
        name: Name,
        mode: ServiceMode,
        networks: Vec<NetworkId>,
    },
    /// Deletes a service and releases its VIPs.
    DeleteService { name: Name },
    /// Every service.
    Services,
}

/// A manager's answer to a [`ManagerRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerResponse {
    /// The network created, as every node stores it.
    Network(NetworkRecord),
    /// The network was deleted.
    Deleted(NetworkId),
    /// The endpoint's addresses, IPv4 first.
    Addresses(Vec<IpNet>),
    /// The endpoint holds no address any more.
    Released,
    /// Every global network.
    Networks(Vec<NetworkRecord>),
    /// The service defined, as every node stores it.
    Service(ServiceRecord),
    /// The service was deleted.
    ServiceDeleted(Name),
    /// Every service, by name.
    Services(Vec<ServiceRecord>),
}

/// What travels back: an answer or a user-facing error.
pub type ManagerReply = Result<ManagerResponse, Error>;

/// The persisted allocator behind a lock, answering [`ManagerRequest`]s. Every method
/// blocks on disk: call it where blocking is allowed (`spawn_blocking`).
#[derive(Debug)]
pub struct ManagerService<L: CommandLog = StoreLog> {
    store: Mutex<ManagerStore<L>>,
}

impl<L: CommandLog> ManagerService<L> {
    pub fn new(store: ManagerStore<L>) -> Self {
        ManagerService {
            store: Mutex::new(store),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ManagerStore<L>> {
        // execute() replaces the state only after the log write succeeded, so a panic
        // elsewhere cannot leave it half-changed.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one request; the change is stored (flushed) before this returns.
    pub fn handle(&self, request: ManagerRequest) -> ManagerReply {
        match request {
            ManagerRequest::CreateNetwork {
                name,
                subnets,
                meta,
            } => self.create_network(name, subnets, meta),
            ManagerRequest::DeleteNetwork { id } => self.delete_network(&id),
            ManagerRequest::ForceDeleteNetwork { id, live } => {
                self.force_delete_network(&id, &live)
            }
            ManagerRequest::AllocateAddress {
                network,
                endpoint,
                ip,
            } => {
                let cmd = Command::AllocateAddress {
                    network,
                    endpoint,
                    ip,
                };
                match self.execute(&cmd)? {
                    Outcome::AddressAllocated(grant) => {
                        Ok(ManagerResponse::Addresses(grant.addresses))
                    }
                    other => Err(unexpected(&other)),
                }
            }
            ManagerRequest::ReleaseAddress { network, endpoint } => {
                let cmd = Command::ReleaseAddress { network, endpoint };
                match self.lock().execute(&cmd) {
                    Ok(_) | Err(ManagerError::Alloc(AllocError::UnknownEndpoint { .. })) => {
                        Ok(ManagerResponse::Released)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            ManagerRequest::Networks => Ok(ManagerResponse::Networks(self.networks())),
            ManagerRequest::CreateService {
                name,
                mode,
                networks,
            } => self.create_service(name, mode, networks),
            ManagerRequest::DeleteService { name } => self.delete_service(name),
            ManagerRequest::Services => Ok(ManagerResponse::Services(self.services())),
        }
    }

    /// Every global network as nodes store it.
    pub fn networks(&self) -> Vec<NetworkRecord> {
        self.lock()
            .allocator()
            .networks()
            .map(NetworkDef::record)
            .collect()
    }

    /// Every service, by name.
    pub fn services(&self) -> Vec<ServiceRecord> {
        self.lock().allocator().services().cloned().collect()
    }

    fn execute(&self, cmd: &Command) -> Result<Outcome, Error> {
        self.lock().execute(cmd).map_err(Error::from)
    }

    fn create_network(
        &self,
        name: Name,
        subnets: Vec<SubnetRequest>,
        mut meta: NetworkMeta,
    ) -> ManagerReply {
        let vni = match meta.options.get(VXLANID_OPTION) {
            Some(text) => Some(parse_vni(text)?),
            None => None,
        };
        // The option names what was asked; the published definition names what was given.
        meta.options = without(&meta.options, VXLANID_OPTION);
        let cmd = Command::CreateNetwork {
            id: NetworkId::random(),
            name,
            subnets,
            vni,
            meta,
        };
        match self.execute(&cmd)? {
            Outcome::NetworkCreated(def) => Ok(ManagerResponse::Network(def.record())),
            other => Err(unexpected(&other)),
        }
    }

    fn delete_network(&self, id: &NetworkId) -> ManagerReply {
        let mut store = self.lock();
        let snapshot = store.allocator().snapshot();
        let held = snapshot
            .networks
            .iter()
            .find(|n| &n.def.id == id)
            .map_or(0, |n| n.endpoints.len());
        if held > 0 {
            return Err(Error::new(
                ErrorKind::ActiveEndpoints,
                format!(
                    "network {} still has {held} endpoint(s) in the cluster: remove them on their nodes first (weft network rm --force on a manager releases those no live node holds)",
                    id.short()
                ),
            ));
        }
        match store.execute(&Command::DeleteNetwork { id: id.clone() }) {
            Ok(_) => Ok(ManagerResponse::Deleted(id.clone())),
            Err(e) => Err(e.into()),
        }
    }
}

impl<L: CommandLog> ManagerService<L> {
    fn create_service(
        &self,
        name: Name,
        mode: ServiceMode,
        networks: Vec<NetworkId>,
    ) -> ManagerReply {
        let cmd = Command::CreateService {
            name,
            mode,
            networks,
        };
        match self.execute(&cmd)? {
            Outcome::ServiceCreated(record) => Ok(ManagerResponse::Service(record)),
            other => Err(unexpected(&other)),
        }
    }

    fn delete_service(&self, name: Name) -> ManagerReply {
        match self.execute(&Command::DeleteService { name })? {
            Outcome::ServiceDeleted(record) => Ok(ManagerResponse::ServiceDeleted(record.name)),
            other => Err(unexpected(&other)),
        }
    }

    fn force_delete_network(&self, id: &NetworkId, live: &BTreeSet<String>) -> ManagerReply {
        let mut store = self.lock();
        let snapshot = store.allocator().snapshot();
        let Some(network) = snapshot.networks.iter().find(|n| &n.def.id == id) else {
            return Err(Error::not_found(format!("network {}", id.short())));
        };
        // Before any release: a refused forced delete changes nothing.
        store
            .allocator()
            .ensure_no_services(id)
            .map_err(Error::from)?;
        let (held, orphans): (Vec<_>, Vec<_>) = network
            .endpoints
            .iter()
            .map(|(endpoint, _)| endpoint.clone())
            .partition(|endpoint| live.contains(endpoint));
        if !held.is_empty() {
            let short: Vec<&str> = held.iter().map(|e| e.get(..12).unwrap_or(e)).collect();
            return Err(Error::new(
                ErrorKind::ActiveEndpoints,
                format!(
                    "network {} still has {} endpoint(s) joined on live nodes ({}): remove them on their nodes first",
                    network.def.name,
                    held.len(),
                    short.join(", ")
                ),
            ));
        }
        // One logged command per release: a crash in between leaves fewer orphans, and
        // the retry finishes the rest.
        for endpoint in orphans {
            let cmd = Command::ReleaseAddress {
                network: id.clone(),
                endpoint,
            };
            match store.execute(&cmd) {
                Ok(_) | Err(ManagerError::Alloc(AllocError::UnknownEndpoint { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match store.execute(&Command::DeleteNetwork { id: id.clone() }) {
            Ok(_) => Ok(ManagerResponse::Deleted(id.clone())),
            Err(e) => Err(e.into()),
        }
    }
}

impl NetworkDef {
    /// The network as every node stores it: global scope, ready, its VNIs in the
    /// [`VXLANID_OPTION`] option for the driver.
    pub fn record(&self) -> NetworkRecord {
        let vnis: Vec<Vni> = self.subnets.iter().filter_map(|s| s.vni).collect();
        let mut options: BTreeMap<String, String> = self.meta.options.clone().into();
        if !vnis.is_empty() {
            options.insert(VXLANID_OPTION.to_owned(), Vni::format_list(&vnis));
        }
        NetworkRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            driver: self.meta.driver.clone(),
            scope: Scope::Global,
            subnets: self.subnets.iter().map(|s| s.config.clone()).collect(),
            auto_subnet: self.auto_subnet,
            ipv6: self.meta.ipv6,
            internal: self.meta.internal,
            attachable: self.meta.attachable,
            // Keys and values came from validated options; the VNI list is digits and commas.
            options: Options::try_from(options).unwrap_or_else(|_| self.meta.options.clone()),
            labels: self.meta.labels.clone(),
            created_ms: self.meta.created_ms,
            lifecycle: Lifecycle::Ready,
        }
    }
}

fn parse_vni(text: &str) -> Result<Vni, Error> {
    let first = text.split(',').next().unwrap_or_default().trim();
    first
        .parse()
        .map_err(|e| Error::invalid(format!("option {VXLANID_OPTION}={text:?}: {e}")))
}

fn without(options: &Options, key: &str) -> Options {
    let mut map: BTreeMap<String, String> = options.clone().into();
    map.remove(key);
    Options::try_from(map).unwrap_or_else(|_| options.clone())
}

fn unexpected(outcome: &Outcome) -> Error {
    Error::internal(format!("allocator answered with an unexpected {outcome:?}"))
}
