//! The agent's cluster plane: what the controller asks of the cluster
//! ([`weft_controller::ClusterPlane`]) and what the cluster tells the controller and the
//! drivers ([`ClusterWatcher`]).
//!
//! - Allocation requests go to the local allocator on a manager, else over RPC to the
//!   managers this node was told of when it joined, first answer wins.
//! - Driver entries are published in NetworkDB under this node's name.
//! - Events of the `networks` table become adoptions and removals of global networks;
//!   events of the tables drivers declare go to the per-network driver actors; changes of
//!   the `nodes` table become node discovery.

use crate::cluster::{NODES_TABLE, NodeRecord, cluster_network};
use crate::join::ManagerAddr;
use crate::manager::{Manager, NETWORKS_TABLE};
use actix::prelude::*;
use async_trait::async_trait;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};
use weft_controller::events::{self, DriverEvents};
use weft_controller::{AdoptNetwork, ClusterPlane, Controller, ForgetNetwork};
use weft_drivers::{Driver, EventNotify, NodeDiscovery, TableEntry};
use weft_manager::{ManagerReply, ManagerRequest, ManagerResponse, NetworkMeta};
use weft_netdb::{
    CreateEntry, DeleteEntry, MemberStatus, NetDbError, NetworkDb, TableEvent, TableKey, TableName,
    UpdateEntry, Watch,
};
use weft_rpc::RpcClient;
use weft_types::api::SubnetRequest;
use weft_types::{EndpointId, Error, ErrorKind, Name, NetworkId, NetworkRecord};

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
    },
}

impl Allocator {
    async fn ask(&self, request: ManagerRequest) -> ManagerReply {
        match self {
            Allocator::Local(manager) => manager.handle(request).await,
            Allocator::Unjoined => Err(Error::new(
                ErrorKind::Unavailable,
                "this node joined without a token and has no certificate: global networks need nodes that joined with weft agent --join ADDR --token T",
            )),
            Allocator::Remote { client, managers } => {
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
                        Ok(reply) => return reply,
                        Err(e) => {
                            failures.push(format!("{} at {}: {e}", manager.node_id, manager.rpc))
                        }
                    }
                }
                Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("no manager reachable ({})", failures.join("; ")),
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
        match self.allocator.ask(request).await {
            Ok(ManagerResponse::Deleted(_)) => Ok(()),
            // Already gone at the manager (a retry after a lost answer).
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(e),
        }
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
    for network in local
        .iter()
        .filter(|n| n.scope == weft_types::Scope::Global)
    {
        if !wanted.iter().any(|w| w.id == network.id) {
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
    }
    for record in wanted {
        if local.iter().any(|n| n.id == record.id) {
            continue;
        }
        let name = record.name.clone();
        match controller.send(AdoptNetwork { record }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(network = %name, error = %e, "cannot adopt global network"),
            Err(e) => warn!(network = %name, error = %e, "controller unreachable"),
        }
    }
    Ok(())
}

/// Turns NetworkDB events into controller messages and driver events.
pub struct ClusterWatcher {
    node_name: String,
    netdb: Addr<NetworkDb>,
    controller: Addr<Controller>,
    events: Addr<DriverEvents>,
}

impl ClusterWatcher {
    /// Starts the watcher and subscribes it to the cluster's tables and to `tables` (the
    /// tables drivers declared), in every network.
    pub async fn start(
        node_name: String,
        netdb: Addr<NetworkDb>,
        controller: Addr<Controller>,
        events: Addr<DriverEvents>,
        tables: Vec<String>,
    ) -> anyhow::Result<Addr<ClusterWatcher>> {
        let watcher = ClusterWatcher {
            node_name,
            netdb: netdb.clone(),
            controller,
            events,
        }
        .start();
        let mut watched = vec![
            (NETWORKS_TABLE.to_owned(), Some(cluster_network())),
            (NODES_TABLE.to_owned(), Some(cluster_network())),
        ];
        watched.extend(tables.into_iter().map(|t| (t, None)));
        for (table, network) in watched {
            let table = table
                .parse::<TableName>()
                .map_err(|e| anyhow::anyhow!("cannot watch table {table}: {e}"))?;
            netdb
                .send(Watch {
                    table,
                    network,
                    recipient: watcher.clone().recipient(),
                })
                .await?;
        }
        Ok(watcher)
    }

    fn network_event(&self, event: TableEvent, ctx: &mut Context<Self>) {
        match &event.value {
            Some(value) => match serde_json::from_slice::<NetworkRecord>(value) {
                Ok(record) if record.id.to_string() == event.key.key.as_str() => {
                    let controller = self.controller.clone();
                    ctx.spawn(
                        async move {
                            let name = record.name.clone();
                            match controller.send(AdoptNetwork { record }).await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => warn!(network = %name, error = %e, "cannot adopt global network"),
                                Err(e) => warn!(network = %name, error = %e, "controller unreachable"),
                            }
                        }
                        .into_actor(self),
                    );
                }
                Ok(_) => {
                    warn!(key = %event.key.key.as_str(), owner = %event.owner, "network definition under another id's key: ignored")
                }
                Err(e) => {
                    warn!(key = %event.key.key.as_str(), owner = %event.owner, error = %e, "malformed network definition: ignored")
                }
            },
            None => {
                let Ok(id) = event.key.key.as_str().parse::<NetworkId>() else {
                    return;
                };
                let netdb = self.netdb.clone();
                let controller = self.controller.clone();
                let owner = event.owner.clone();
                ctx.spawn(
                    async move {
                        // A delete counts only when the manager made it: a dead or departed
                        // manager's definitions vanish from NetworkDB, not from the cluster.
                        let alive = match netdb.send(weft_netdb::Observe).await {
                            Ok(state) => state.members.iter().any(|m| {
                                m.node_id == *owner && m.status == MemberStatus::Alive
                            }),
                            Err(_) => false,
                        };
                        if !alive {
                            debug!(network = %id.short(), %owner, "definition withdrawn by a manager that is not alive: kept");
                            return;
                        }
                        match controller.send(ForgetNetwork { network: id.clone() }).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => warn!(network = %id.short(), error = %e, "cannot remove deleted global network"),
                            Err(e) => warn!(network = %id.short(), error = %e, "controller unreachable"),
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }

    fn node_event(&self, event: TableEvent) {
        let value = event.value.as_ref().or(event.prev.as_ref());
        let Some(record) = value.and_then(|v| serde_json::from_slice::<NodeRecord>(v).ok()) else {
            return;
        };
        let Some(address) = record.data_addr else {
            return;
        };
        let joined = event.value.is_some();
        if event.prev.is_some() && joined {
            return;
        }
        self.events.do_send(events::Discover(NodeDiscovery {
            node: record.name,
            address,
            joined,
        }));
    }
}

impl Actor for ClusterWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
    }
}

impl std::fmt::Debug for ClusterWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterWatcher")
            .field("node", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl Handler<TableEvent> for ClusterWatcher {
    type Result = ();

    fn handle(&mut self, event: TableEvent, ctx: &mut Context<Self>) {
        let table = event.key.table.as_str().to_owned();
        if table == NETWORKS_TABLE {
            return self.network_event(event, ctx);
        }
        if table == NODES_TABLE {
            return self.node_event(event);
        }
        // This node's own entries describe its own endpoints: the driver knows them.
        if *event.owner == *self.node_name {
            return;
        }
        self.events.do_send(events::Notify(EventNotify {
            network: event.key.network.clone(),
            table,
            key: event.key.key.clone(),
            owner: event.owner.to_string(),
            prev: event.prev.map(|v| v.to_vec()),
            value: event.value.map(|v| v.to_vec()),
        }));
    }
}
