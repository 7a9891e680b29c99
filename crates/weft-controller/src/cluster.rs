//! What the controller needs from the cluster, as one trait the agent implements
//! ([`ClusterPlane`]): the manager's allocator for global networks, NetworkDB for the
//! entries drivers publish, and the per-network driver event actors.
//!
//! The controller stays free of RPC and gossip: it calls these methods at fixed points of
//! its operations (see the module docs of `core`), and tests hand it a fake.

use async_trait::async_trait;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use weft_drivers::{Driver, TableEntry};
use weft_manager::NetworkMeta;
use weft_types::api::SubnetRequest;
use weft_types::{
    EndpointId, Error, ErrorKind, Name, NetworkId, NetworkRecord, ServiceMode, ServiceRecord,
};

/// The controller's view of the cluster.
#[async_trait]
pub trait ClusterPlane: Send + Sync + fmt::Debug {
    /// Asks a manager to create a global network; returns its definition.
    async fn create_network(
        &self,
        name: &Name,
        subnets: &[SubnetRequest],
        meta: NetworkMeta,
    ) -> Result<NetworkRecord, Error>;

    /// Asks a manager to delete a global network (refused while endpoints hold addresses).
    async fn delete_network(&self, network: &NetworkId) -> Result<(), Error>;

    /// `weft network rm --force`: on a manager, also releases the addresses of endpoints
    /// no live node holds (allocations a crashed or lost node left behind), then deletes.
    /// Elsewhere the same as [`ClusterPlane::delete_network`].
    async fn force_delete_network(&self, network: &NetworkId) -> Result<(), Error> {
        self.delete_network(network).await
    }

    /// Asks a manager for an endpoint's addresses; the same endpoint gets the same ones.
    async fn allocate_address(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        ip: Option<IpAddr>,
    ) -> Result<Vec<IpNet>, Error>;

    /// Asks a manager to release an endpoint's addresses; releasing twice succeeds.
    async fn release_address(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<(), Error>;

    /// Publishes entries in NetworkDB, owned by this node (replacing earlier values).
    async fn publish(&self, network: &NetworkId, entries: &[TableEntry]) -> Result<(), Error>;

    /// Withdraws entries this node published; absent ones are fine.
    async fn withdraw(&self, network: &NetworkId, entries: &[TableEntry]) -> Result<(), Error>;

    /// Every global network a manager has: for a reference this node does not know yet
    /// (read your writes across hosts, before gossip brings the definition).
    async fn global_networks(&self) -> Result<Vec<NetworkRecord>, Error>;

    /// Asks a manager to define a service on global networks (one VIP per network in vip
    /// mode); returns its definition. Asking again with the same definition succeeds.
    async fn create_service(
        &self,
        _name: &Name,
        _mode: ServiceMode,
        _networks: &[NetworkId],
    ) -> Result<ServiceRecord, Error> {
        Err(no_cluster())
    }

    /// Asks a manager to remove a service and release its VIPs.
    async fn delete_service(&self, _name: &Name) -> Result<(), Error> {
        Err(no_cluster())
    }

    /// Every service a manager has.
    async fn services(&self) -> Result<Vec<ServiceRecord>, Error> {
        Ok(Vec::new())
    }

    /// The service called `name`: the definition gossip brought, else a manager's (read
    /// your writes across hosts); `None` when no manager knows it.
    async fn service(&self, name: &Name) -> Result<Option<ServiceRecord>, Error> {
        Ok(self.services().await?.into_iter().find(|s| &s.name == name))
    }

    /// The network now exists here: its driver starts receiving the events of the tables
    /// it declares, beginning with those that arrived before.
    fn network_up(&self, network: &NetworkRecord, driver: Arc<dyn Driver>);

    /// The network is gone from this host: its driver stops receiving events.
    fn network_down(&self, network: &NetworkId);
}

/// No cluster: global networks cannot be made, and nothing is published. For tests and
/// for embedding the controller alone.
#[derive(Debug, Default, Clone, Copy)]
pub struct Standalone;

fn no_cluster() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "this agent is not part of a cluster: global networks need a manager",
    )
}

#[async_trait]
impl ClusterPlane for Standalone {
    async fn create_network(
        &self,
        _: &Name,
        _: &[SubnetRequest],
        _: NetworkMeta,
    ) -> Result<NetworkRecord, Error> {
        Err(no_cluster())
    }

    async fn delete_network(&self, _: &NetworkId) -> Result<(), Error> {
        Err(no_cluster())
    }

    async fn allocate_address(
        &self,
        _: &NetworkId,
        _: &EndpointId,
        _: Option<IpAddr>,
    ) -> Result<Vec<IpNet>, Error> {
        Err(no_cluster())
    }

    async fn release_address(&self, _: &NetworkId, _: &EndpointId) -> Result<(), Error> {
        Err(no_cluster())
    }

    async fn publish(&self, _: &NetworkId, _: &[TableEntry]) -> Result<(), Error> {
        Ok(())
    }

    async fn withdraw(&self, _: &NetworkId, _: &[TableEntry]) -> Result<(), Error> {
        Ok(())
    }

    async fn global_networks(&self) -> Result<Vec<NetworkRecord>, Error> {
        Ok(Vec::new())
    }

    fn network_up(&self, _: &NetworkRecord, _: Arc<dyn Driver>) {}

    fn network_down(&self, _: &NetworkId) {}
}
