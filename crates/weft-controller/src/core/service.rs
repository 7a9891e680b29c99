//! Services. On overlay networks a service is the cluster's: a manager allocates one VIP
//! per network and every node learns it through gossip. On bridge networks it is this
//! host's: its VIPs come from the networks' local pools and it is stored here, like a
//! network. A service is one or the other, never both. This module checks what it is asked
//! against them: the networks of a new service, the service of a new endpoint, and that no
//! backend of this host still names a service being removed.

use super::Core;
use std::net::IpAddr;
use tracing::info;
use weft_types::{
    Error, ErrorKind, Lifecycle, Name, NetworkId, NetworkRecord, Scope, ServiceMode,
    ServiceNetwork, ServiceRecord,
};

impl Core {
    /// Defines a service on the networks named by `network_refs`.
    pub async fn create_service(
        &mut self,
        name: &Name,
        mode: ServiceMode,
        network_refs: &[String],
    ) -> Result<ServiceRecord, Error> {
        if network_refs.is_empty() {
            return Err(Error::invalid("a service needs at least one --network"));
        }
        let mut networks: Vec<NetworkRecord> = Vec::new();
        for reference in network_refs {
            let network = self.find_or_fetch_network(reference).await?;
            if networks.iter().any(|n| n.id == network.id) {
                return Err(Error::invalid(format!(
                    "network {} is named twice",
                    network.name
                )));
            }
            networks.push(network);
        }
        let named = networks
            .iter()
            .map(|n| self.driver_for(n).map(|d| d.answers_names()))
            .collect::<Result<Vec<bool>, Error>>()?;
        if named.contains(&false) {
            return Err(Error::invalid(
                "a service needs networks with names: overlay or bridge networks",
            ));
        }
        let scope = service_scope(&networks)?;
        // The manager answers a repeated create with the existing record (a retry after a
        // lost answer); a user asking twice is told. One name, one service, either scope.
        if self.services.contains_key(name) || self.cluster.service(name).await?.is_some() {
            return Err(Error::already_exists(format!("service {name}")));
        }
        match scope {
            Scope::Global => {
                let ids: Vec<NetworkId> = networks.iter().map(|n| n.id.clone()).collect();
                self.cluster.create_service(name, mode, &ids).await
            }
            Scope::Local => self.create_local_service(name, mode, &networks).await,
        }
    }

    /// A service on local networks: VIPs from their pools, then the record, flushed.
    async fn create_local_service(
        &mut self,
        name: &Name,
        mode: ServiceMode,
        networks: &[NetworkRecord],
    ) -> Result<ServiceRecord, Error> {
        let mut record = ServiceRecord {
            name: name.clone(),
            mode,
            networks: Vec::with_capacity(networks.len()),
        };
        for network in networks {
            let vip = match mode {
                ServiceMode::Dnsrr => None,
                ServiceMode::Vip => match self.allocate_vip(network) {
                    Ok(vip) => Some(vip),
                    Err(e) => {
                        self.release_vips(&record);
                        return Err(e);
                    }
                },
            };
            record.networks.push(ServiceNetwork {
                network: network.id.clone(),
                vip,
            });
        }
        if let Err(e) = self.save(record.clone()).await {
            self.release_vips(&record);
            return Err(e);
        }
        info!(service = %name, %mode, "created local service");
        self.report_local_services();
        Ok(record)
    }

    /// Removes a service; refused while an endpoint of this host is one of its backends.
    pub async fn delete_service(&mut self, name: &Name) -> Result<(), Error> {
        let mut backends: Vec<&str> = self
            .endpoints
            .values()
            .map(|s| &s.record)
            .filter(|e| e.lifecycle != Lifecycle::Deleting && e.service.as_ref() == Some(name))
            .map(|e| e.name.as_str())
            .collect();
        if !backends.is_empty() {
            backends.sort_unstable();
            return Err(Error::new(
                ErrorKind::ActiveEndpoints,
                format!(
                    "service {name} has backend(s) on this host ({}): remove them first",
                    backends.join(", ")
                ),
            ));
        }
        let Some(local) = self.services.get(name).map(|s| s.record.clone()) else {
            return self.cluster.delete_service(name).await;
        };
        // The record goes first: a crash after it leaves VIPs that no start reserves.
        self.erase::<ServiceRecord>(name).await?;
        self.release_vips(&local);
        info!(service = %name, "deleted local service");
        self.report_local_services();
        Ok(())
    }

    /// Every service: the cluster's and this host's.
    pub async fn list_services(&mut self) -> Result<Vec<ServiceRecord>, Error> {
        let mut services = self.cluster.services().await?;
        services.extend(self.services.values().map(|s| s.record.clone()));
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(services)
    }

    /// The service an endpoint on `network` is created for must exist there.
    pub(crate) async fn check_endpoint_service(
        &self,
        network: &NetworkRecord,
        service: &Name,
    ) -> Result<(), Error> {
        let definition = match network.scope {
            Scope::Local => self.services.get(service).map(|s| s.record.clone()),
            Scope::Global => self.cluster.service(service).await?,
        };
        let Some(definition) = definition else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "service {service} not found: create it with weft service create --network {} {service}",
                    network.name
                ),
            ));
        };
        if !definition.is_on(&network.id) {
            return Err(Error::invalid(format!(
                "service {service} is not defined on network {}",
                network.name
            )));
        }
        Ok(())
    }

    /// A local network is not removed under a service of its own.
    pub(crate) fn check_no_local_services(&self, network: &NetworkRecord) -> Result<(), Error> {
        let on: Vec<&str> = self
            .services
            .values()
            .filter(|s| s.record.is_on(&network.id))
            .map(|s| s.record.name.as_str())
            .collect();
        if on.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::ActiveEndpoints,
            format!(
                "network {} has service(s) {}: remove them first",
                network.name,
                on.join(", ")
            ),
        ))
    }

    /// Reserves a stored local service's VIPs again (at start).
    pub(crate) fn reserve_service(&mut self, service: &ServiceRecord) -> Result<(), Error> {
        for (vip, network) in self.vips_of(service) {
            self.allocate_address(&network, vip.is_ipv6(), Some(vip))
                .map_err(|e| e.context(format!("stored service {}", service.name)))?;
        }
        Ok(())
    }

    /// A local service's VIPs, each with its network (one this host still has).
    fn vips_of(&self, service: &ServiceRecord) -> Vec<(IpAddr, NetworkRecord)> {
        service
            .networks
            .iter()
            .filter_map(|on| Some((on.vip?, self.networks.get(&on.network)?.record.clone())))
            .collect()
    }

    /// Tells the embedded DNS and load balancers which local services exist.
    pub(crate) fn report_local_services(&self) {
        let services = self.services.values().map(|s| s.record.clone()).collect();
        self.names.local_services(services);
    }

    /// One free IPv4 address of `network` for a VIP.
    fn allocate_vip(&mut self, network: &NetworkRecord) -> Result<IpAddr, Error> {
        self.allocate_address(network, false, None)?
            .map(|net| net.addr())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "network {} has no IPv4 subnet for a virtual IP",
                    network.name
                ))
            })
    }

    /// Releases a local service's VIPs in IPAM.
    fn release_vips(&mut self, service: &ServiceRecord) {
        for (vip, network) in self.vips_of(service) {
            let prefix = if vip.is_ipv4() { 32 } else { 128 };
            if let Ok(net) = ipnet::IpNet::new(vip, prefix) {
                self.release_address(&network, net);
            }
        }
    }
}

/// A service's networks are all global (overlay) or all local (bridge).
fn service_scope(networks: &[NetworkRecord]) -> Result<Scope, Error> {
    let global = networks.iter().filter(|n| n.scope == Scope::Global).count();
    match (global, networks.len() - global) {
        (_, 0) => Ok(Scope::Global),
        (0, _) => Ok(Scope::Local),
        _ => Err(Error::invalid(
            "a service is on overlay networks or on bridge networks, not both",
        )),
    }
}
