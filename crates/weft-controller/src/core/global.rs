//! Global networks and what this host shares with the cluster.
//!
//! A global network is created by a manager (id, subnets, VNIs) and reaches every node
//! through NetworkDB; each node *adopts* the definition into its own store, so listing and
//! the data path keep working while no manager answers. Endpoint addresses on it come from
//! the manager, never from local IPAM. The entries a driver publishes for a joined
//! endpoint go to NetworkDB after the join succeeded and are withdrawn at leave; after a
//! restart they are published again ([`Core::announce`]), because NetworkDB keeps nothing.

use super::{Core, now_ms};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use tracing::{info, warn};
use weft_drivers::{Driver, NetworkRequest};
use weft_manager::NetworkMeta;
use weft_types::api::{CreateNetworkRequest, NetworkInfo, SubnetRequest};
use weft_types::{
    Attachment, EndpointId, EndpointRecord, Error, ErrorKind, Lifecycle, NetworkId, NetworkRecord,
    Scope,
};

impl Core {
    /// Creates a global network through a manager, then adopts it here.
    pub(crate) async fn create_global_network(
        &mut self,
        req: CreateNetworkRequest,
        driver: Arc<dyn Driver>,
    ) -> Result<NetworkInfo, Error> {
        let subnets = global_subnet_requests(&req)?;
        self.check_host_subnets(&subnets).await?;
        // The driver refuses what it cannot realise before the manager allocates and
        // publishes anything.
        driver
            .validate(&super::network::network_request(&req, driver.name()))
            .map_err(Error::from)?;
        let meta = NetworkMeta {
            driver: driver.name().clone(),
            ipv6: req.ipv6,
            internal: req.internal,
            attachable: req.attachable,
            options: req.options,
            labels: req.labels,
            created_ms: now_ms(),
        };
        let record = self
            .cluster
            .create_network(&req.name, &subnets, meta)
            .await
            .map_err(|e| e.context(format!("cannot create network {}", req.name)))?;
        if let Err(e) = self.adopt_network(record.clone()).await {
            // The manager has it, this node could not realise it: undo at the manager so
            // that the name is free again and the user sees one clear failure.
            if let Err(undo) = self.cluster.delete_network(&record.id).await {
                warn!(network = %record.name, error = %undo, "rollback: manager did not delete the network");
            }
            return Err(e);
        }
        self.network_info(&record.id)
    }

    /// Stores and realises a global network's definition (from the manager's answer or
    /// from NetworkDB). Adopting a network already here changes nothing.
    pub async fn adopt_network(&mut self, record: NetworkRecord) -> Result<(), Error> {
        if record.scope != Scope::Global {
            return Err(Error::invalid(format!(
                "network {} is not global: only global networks are shared",
                record.name
            )));
        }
        if self.networks.contains_key(&record.id) {
            return Ok(());
        }
        if let Some(local) = self
            .networks
            .values()
            .find(|s| s.record.name == record.name)
        {
            return Err(Error::already_exists(format!(
                "network {} (id {}) on this node: global network {} cannot be adopted here",
                record.name,
                local.record.id.short(),
                record.id.short()
            )));
        }
        let driver = self.drivers.get(&record.driver)?;
        if driver.capability().scope != Scope::Global {
            return Err(Error::invalid(format!(
                "network {}: driver {} on this node is not a global driver",
                record.name, record.driver
            )));
        }
        driver
            .validate(&NetworkRequest::from_record(&record))
            .map_err(Error::from)?;
        self.realise_network(record.clone(), driver).await?;
        info!(network = %record.name, id = %record.id.short(), driver = %record.driver, "adopted global network");
        Ok(())
    }

    /// A network ready for endpoints; one this node has not heard of yet may be a global
    /// network just created elsewhere: a manager is asked before "not found", and the
    /// definition it has is adopted here (gossip brings it too, a moment later).
    pub(crate) async fn find_or_fetch_network(
        &mut self,
        reference: &str,
    ) -> Result<NetworkRecord, Error> {
        let not_found = match self.find_ready_network(reference) {
            Ok(network) => return Ok(network.clone()),
            Err(e) if e.kind == ErrorKind::NotFound => e,
            Err(e) => return Err(e),
        };
        let known = match self.cluster.global_networks().await {
            Ok(known) => known,
            Err(e) => {
                warn!(network = reference, error = %e, "cannot ask a manager for a network unknown here");
                return Err(not_found);
            }
        };
        let exact = known
            .iter()
            .find(|n| n.id.as_str() == reference || n.name.as_str() == reference);
        let Some(record) = exact.cloned() else {
            return Err(not_found);
        };
        info!(network = %record.name, id = %record.id.short(), "adopting a global network a manager has but gossip has not brought yet");
        self.adopt_network(record).await?;
        self.find_ready_network(reference).cloned()
    }

    /// A manager deleted a global network: removes it here unless endpoints of this host
    /// still use it (a manager refuses that, so it means this node missed something).
    pub async fn forget_network(&mut self, id: &NetworkId) -> Result<(), Error> {
        let Some(network) = self.networks.get(id).map(|s| s.record.clone()) else {
            return Ok(());
        };
        if network.scope != Scope::Global {
            return Ok(());
        }
        let local = self.endpoints_of(id).count();
        if local > 0 {
            warn!(network = %network.name, endpoints = local, "a manager deleted the network, but endpoints here still use it: kept");
            return Err(Error::new(
                ErrorKind::ActiveEndpoints,
                format!(
                    "network {} has {local} endpoint(s) on this node",
                    network.name
                ),
            ));
        }
        self.finish_network_delete(network).await
    }

    /// Tells the cluster what this host has, after a start: every ready network gets its
    /// driver events, and every joined endpoint publishes its entries again. Failures are
    /// logged: the next join or restart publishes again.
    pub(crate) async fn announce(&mut self) {
        for stored in self.networks.values() {
            let network = &stored.record;
            if network.lifecycle != Lifecycle::Ready {
                continue;
            }
            match self.driver_for(network) {
                Ok(driver) => self.cluster.network_up(network, driver),
                Err(e) => {
                    warn!(network = %network.name, error = %e, "no driver for stored network")
                }
            }
        }
        let joined: Vec<EndpointRecord> = self
            .endpoints
            .values()
            .map(|s| s.record.clone())
            .filter(|e| matches!(e.attachment, Attachment::Joined(_)))
            .collect();
        for endpoint in &joined {
            if let Err(e) = self.publish_entries(endpoint).await {
                warn!(endpoint = %endpoint.name, error = %e, "cannot publish the endpoint's entries again");
            }
        }
        self.report_local_services();
        // The resolvers of this host's sandboxes started empty with the agent.
        let sandboxes: Vec<_> = self.sandboxes.keys().cloned().collect();
        for sandbox in &sandboxes {
            self.report_names(sandbox);
        }
    }

    /// Publishes what the endpoint's driver wants known about it.
    pub(crate) async fn publish_entries(&self, endpoint: &EndpointRecord) -> Result<(), Error> {
        let Some(network) = self.networks.get(&endpoint.network) else {
            return Ok(());
        };
        let mut entries = self
            .driver_for(&network.record)?
            .published_entries(&network.record, endpoint);
        entries.extend(self.name_entry(&network.record, endpoint));
        if entries.is_empty() {
            return Ok(());
        }
        self.cluster.publish(&endpoint.network, &entries).await
    }

    /// Withdraws the endpoint's published entries; failures are logged (a node's entries
    /// also disappear when it leaves or dies).
    pub(crate) async fn withdraw_entries(&self, endpoint: &EndpointRecord) {
        let Some(network) = self.networks.get(&endpoint.network) else {
            return;
        };
        let mut entries = match self.driver_for(&network.record) {
            Ok(d) => d.published_entries(&network.record, endpoint),
            Err(_) => return,
        };
        entries.extend(self.name_entry(&network.record, endpoint));
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self.cluster.withdraw(&endpoint.network, &entries).await {
            warn!(endpoint = %endpoint.name, error = %e, "cannot withdraw the endpoint's entries");
        }
    }

    /// The addresses of a new endpoint on a global network, from a manager.
    pub(crate) async fn allocate_global_addresses(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointId,
        ip: Option<IpAddr>,
    ) -> Result<(Option<IpNet>, Option<IpNet>), Error> {
        let addresses = self
            .cluster
            .allocate_address(&network.id, endpoint, ip)
            .await
            .map_err(|e| e.context(format!("cannot get an address on network {}", network.name)))?;
        let ipv4 = addresses.iter().find(|a| a.addr().is_ipv4()).copied();
        let ipv6 = addresses.iter().find(|a| a.addr().is_ipv6()).copied();
        Ok((ipv4, ipv6))
    }

    /// Refuses, before anything is stored or asked, address requests a global network
    /// cannot take.
    pub(crate) fn check_global_address_request(
        network: &NetworkRecord,
        ip: Option<IpAddr>,
        ipv6: Option<IpAddr>,
    ) -> Result<(), Error> {
        if ipv6.is_some() {
            return Err(Error::invalid(format!(
                "network {} is global: --ipv6 addresses come from the manager",
                network.name
            )));
        }
        if matches!(ip, Some(IpAddr::V6(_))) {
            return Err(Error::invalid(
                "--ip takes an IPv4 address; use --ipv6 for IPv6".to_owned(),
            ));
        }
        Ok(())
    }

    /// Gives an endpoint's addresses back to the manager, if its network is global.
    pub(crate) async fn release_global_addresses(
        &self,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        let global = self
            .networks
            .get(&endpoint.network)
            .is_some_and(|s| s.record.scope == Scope::Global);
        // Asked even when the record holds no address: its intent was stored before the
        // manager answered, and the manager may have allocated (releasing is by id and
        // idempotent).
        if !global {
            return Ok(());
        }
        self.cluster
            .release_address(&endpoint.network, &endpoint.id)
            .await
            .map_err(|e| {
                e.context(format!(
                    "cannot release the addresses of endpoint {}",
                    endpoint.name
                ))
            })
    }
}

/// Global networks take explicit subnets, or none (the manager picks one). Whether the
/// driver takes IPv6 is the driver's to say ([`Driver::validate`]).
fn global_subnet_requests(req: &CreateNetworkRequest) -> Result<Vec<SubnetRequest>, Error> {
    for r in &req.subnets {
        super::network::validate_subnet_request(r)?;
    }
    Ok(req.subnets.clone())
}
