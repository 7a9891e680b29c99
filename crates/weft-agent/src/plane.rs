//! The agent's cluster plane: what the controller asks of the cluster
//! ([`weft_controller::ClusterPlane`]) and what the cluster tells the controller and the
//! drivers ([`ClusterWatcher`]).
//!
//! - Allocation requests go to the local allocator on a manager, else over RPC to the
//!   managers this node was told of when it joined, first answer wins.
//! - Driver entries are published in NetworkDB under this node's name.
//! - A node that missed definitions catches up with a manager's list ([`spawn_catch_up`]).
//!
//! What NetworkDB tells the node goes through [`crate::watcher::ClusterWatcher`].

use crate::join::ManagerAddr;
use crate::manager::Manager;
use actix::prelude::*;
use async_trait::async_trait;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::{debug, info, warn};
use weft_controller::events::{self, DriverEvents};
use weft_controller::{AdoptNetwork, ClusterPlane, Controller, ForgetNetwork};
use weft_drivers::{Driver, TableEntry};
use weft_manager::{ManagerReply, ManagerRequest, ManagerResponse, NetworkMeta};
use weft_netdb::{
    CreateEntry, DeleteEntry, GetEntry, NetDbError, NetworkDb, TableKey, UpdateEntry,
};
use weft_rpc::RpcClient;
use weft_types::api::SubnetRequest;
use weft_types::gossip::{Table, decode_service};
use weft_types::{
    EndpointId, Error, ErrorKind, Name, NetworkId, NetworkRecord, ServiceMode, ServiceRecord,
};

/// How long one request to a manager may take.
const MANAGER_TIMEOUT: Duration = Duration::from_secs(3);

/// Where allocation requests go.
#[derive(Debug)]
pub enum Allocator {
    /// This node is a manager.
    Local(Arc<Manager>),
    /// A node that joined with a copied keyring and no token: it has no certificate to
    /// speak to managers with.
    Unjoined,
    /// Managers reached over RPC.
    Remote {
        client: RpcClient,
        managers: Vec<ManagerAddr>,
        /// Whether the last request reached one: an operator reads one line when the
        /// managers become unreachable and one when they answer again, not one per call.
        reachable: AtomicBool,
    },
}

impl Allocator {
    /// Requests go to `managers` over `client`.
    pub fn remote(client: RpcClient, managers: Vec<ManagerAddr>) -> Allocator {
        Allocator::Remote {
            client,
            managers,
            reachable: AtomicBool::new(true),
        }
    }

    async fn ask(&self, request: ManagerRequest) -> ManagerReply {
        match self {
            Allocator::Local(manager) => manager.handle(request).await,
            Allocator::Unjoined => Err(Error::new(
                ErrorKind::Unavailable,
                "this node joined without a token and has no certificate: global networks need nodes that joined with weft agent --join ADDR --token T",
            )),
            Allocator::Remote {
                client,
                managers,
                reachable,
            } => {
                if managers.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "this node knows no manager: it joined without a token",
                    ));
                }
                let mut failures = Vec::new();
                for manager in managers {
                    match client
                        .call_typed::<_, ManagerReply>(
                            manager.rpc,
                            &manager.node_id,
                            &request,
                            MANAGER_TIMEOUT,
                        )
                        .await
                    {
                        Ok(reply) => {
                            if !reachable.swap(true, Ordering::Relaxed) {
                                info!(manager = %manager.node_id, rpc = %manager.rpc, "a manager answers again");
                            }
                            return reply;
                        }
                        Err(e) => {
                            failures.push(format!("{} at {}: {e}", manager.node_id, manager.rpc))
                        }
                    }
                }
                let reason = failures.join("; ");
                if reachable.swap(false, Ordering::Relaxed) {
                    info!(%reason, "no manager reachable: global networks cannot be created or changed from this node until one answers");
                }
                Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("no manager reachable ({reason})"),
                ))
            }
        }
    }
}

/// The agent's [`ClusterPlane`].
#[derive(Debug)]
pub struct AgentPlane {
    pub allocator: Allocator,
    pub netdb: Addr<NetworkDb>,
    pub events: Addr<DriverEvents>,
}

fn unexpected(reply: &ManagerResponse) -> Error {
    Error::internal(format!("the manager answered with an unexpected {reply:?}"))
}

/// A network delete's answer; a network already gone at the manager (a retry after a
/// lost answer) counts as deleted.
fn deleted(reply: ManagerReply) -> Result<(), Error> {
    match reply {
        Ok(ManagerResponse::Deleted(_)) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Ok(other) => Err(unexpected(&other)),
        Err(e) => Err(e),
    }
}

fn netdb_error(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("networkdb: {e}"))
}

fn entry_key(network: &NetworkId, entry: &TableEntry) -> Result<TableKey, Error> {
    TableKey::new(&entry.table, network.clone(), &entry.key)
        .map_err(|e| Error::internal(format!("driver entry {}/{}: {e}", entry.table, entry.key)))
}

#[async_trait]
impl ClusterPlane for AgentPlane {
    async fn global_networks(&self) -> Result<Vec<NetworkRecord>, Error> {
        match self.allocator.ask(ManagerRequest::Networks).await? {
            ManagerResponse::Networks(records) => Ok(records),
            _ => Err(Error::internal(
                "the manager answered Networks with something else",
            )),
        }
    }

    async fn create_service(
        &self,
        name: &Name,
        mode: ServiceMode,
        networks: &[NetworkId],
    ) -> Result<ServiceRecord, Error> {
        let request = ManagerRequest::CreateService {
            name: name.clone(),
            mode,
            networks: networks.to_vec(),
        };
        match self.allocator.ask(request).await? {
            ManagerResponse::Service(record) => Ok(record),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_service(&self, name: &Name) -> Result<(), Error> {
        let request = ManagerRequest::DeleteService { name: name.clone() };
        match self.allocator.ask(request).await? {
            ManagerResponse::ServiceDeleted(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn services(&self) -> Result<Vec<ServiceRecord>, Error> {
        match self.allocator.ask(ManagerRequest::Services).await? {
            ManagerResponse::Services(records) => Ok(records),
            other => Err(unexpected(&other)),
        }
    }

    async fn service(&self, name: &Name) -> Result<Option<ServiceRecord>, Error> {
        // Gossip first: it answers while no manager does.
        if let Ok(key) = TableKey::new(Table::Services.name(), NetworkId::cluster(), name.as_str())
            && let Ok(Some(entry)) = self.netdb.send(GetEntry { key }).await
            && let Ok(record) = decode_service(name.as_str(), &entry.value)
        {
            return Ok(Some(record));
        }
        Ok(self.services().await?.into_iter().find(|s| &s.name == name))
    }

    async fn create_network(
        &self,
        name: &Name,
        subnets: &[SubnetRequest],
        meta: NetworkMeta,
    ) -> Result<NetworkRecord, Error> {
        let request = ManagerRequest::CreateNetwork {
            name: name.clone(),
            subnets: subnets.to_vec(),
            meta,
        };
        match self.allocator.ask(request).await? {
            ManagerResponse::Network(record) => Ok(record),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_network(&self, network: &NetworkId) -> Result<(), Error> {
        let request = ManagerRequest::DeleteNetwork {
            id: network.clone(),
        };
        deleted(self.allocator.ask(request).await)
    }

    async fn force_delete_network(&self, network: &NetworkId) -> Result<(), Error> {
        let Allocator::Local(manager) = &self.allocator else {
            // Only a manager sees which endpoints live nodes hold.
            return self.delete_network(network).await;
        };
        deleted(manager.force_delete(network).await)
    }

    async fn allocate_address(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        ip: Option<IpAddr>,
    ) -> Result<Vec<IpNet>, Error> {
        let request = ManagerRequest::AllocateAddress {
            network: network.clone(),
            endpoint: endpoint.to_string(),
            ip,
        };
        match self.allocator.ask(request).await? {
            ManagerResponse::Addresses(addresses) => Ok(addresses),
            other => Err(unexpected(&other)),
        }
    }

    async fn release_address(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<(), Error> {
        let request = ManagerRequest::ReleaseAddress {
            network: network.clone(),
            endpoint: endpoint.to_string(),
        };
        match self.allocator.ask(request).await {
            Ok(ManagerResponse::Released) => Ok(()),
            // The network is gone at the manager, and its addresses with it.
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(e),
        }
    }

    async fn publish(&self, network: &NetworkId, entries: &[TableEntry]) -> Result<(), Error> {
        for entry in entries {
            let key = entry_key(network, entry)?;
            let value = entry.value.clone();
            let created = self
                .netdb
                .send(CreateEntry {
                    key: key.clone(),
                    value: value.clone(),
                })
                .await
                .map_err(netdb_error)?;
            match created {
                Ok(()) => {}
                Err(NetDbError::AlreadyExists { .. }) => self
                    .netdb
                    .send(UpdateEntry { key, value })
                    .await
                    .map_err(netdb_error)?
                    .map_err(netdb_error)?,
                Err(e) => return Err(netdb_error(e)),
            }
        }
        Ok(())
    }

    async fn withdraw(&self, network: &NetworkId, entries: &[TableEntry]) -> Result<(), Error> {
        for entry in entries {
            let key = entry_key(network, entry)?;
            match self
                .netdb
                .send(DeleteEntry { key })
                .await
                .map_err(netdb_error)?
            {
                Ok(()) | Err(NetDbError::NotFound { .. }) => {}
                Err(e) => return Err(netdb_error(e)),
            }
        }
        Ok(())
    }

    fn network_up(&self, network: &NetworkRecord, driver: Arc<dyn Driver>) {
        self.events.do_send(events::NetworkUp {
            network: network.clone(),
            driver,
        });
    }

    fn network_down(&self, network: &NetworkId) {
        self.events.do_send(events::NetworkDown {
            network: network.clone(),
        });
    }
}

/// How often a node compares its global networks with a manager's list.
const CATCH_UP_EVERY: Duration = Duration::from_secs(60);

/// Catches up with definitions this node missed (it was down or saw the manager as not
/// alive when a network was deleted or created): shortly after start, then every minute,
/// the manager's list is authoritative. Without an answer nothing changes.
pub fn spawn_catch_up(plane: Arc<AgentPlane>, controller: Addr<Controller>) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        loop {
            if let Err(e) = catch_up(&plane, &controller).await {
                debug!(error = %e, "global networks not compared with a manager");
            }
            tokio::time::sleep(CATCH_UP_EVERY).await;
        }
    });
}

async fn catch_up(plane: &AgentPlane, controller: &Addr<Controller>) -> Result<(), Error> {
    // Local first: a network created between the two listings is then only in the
    // manager's (adopted, harmless), never only in ours (which would remove it).
    let local = controller
        .send(weft_controller::ListNetworks {})
        .await
        .map_err(|e| Error::internal(format!("controller: {e}")))??;
    let ManagerResponse::Networks(wanted) = plane.allocator.ask(ManagerRequest::Networks).await?
    else {
        return Err(Error::internal(
            "the manager answered Networks with something else",
        ));
    };
    let plan = crate::change::catch_up(&local, wanted);
    for network in plan.forget {
        warn!(network = %network.name, "a manager no longer has this global network: removing it");
        let forgotten = controller
            .send(ForgetNetwork {
                network: network.id.clone(),
            })
            .await
            .map_err(|e| Error::internal(format!("controller: {e}")))?;
        if let Err(e) = forgotten {
            warn!(network = %network.name, error = %e, "cannot remove a deleted global network");
        }
    }
    for record in plan.adopt {
        let name = record.name.clone();
        match controller.send(AdoptNetwork { record }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(network = %name, error = %e, "cannot adopt global network"),
            Err(e) => warn!(network = %name, error = %e, "controller unreachable"),
        }
    }
    Ok(())
}
