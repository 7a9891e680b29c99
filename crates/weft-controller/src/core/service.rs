//! Services: definitions are the cluster's (a manager allocates one VIP per network and
//! every node learns them through gossip); this host checks what it is asked against them:
//! the networks of a new service, the service of a new endpoint, and that no backend of
//! this host still names a service being removed.

use super::Core;
use weft_types::{
    Error, ErrorKind, Lifecycle, Name, NetworkId, NetworkRecord, Scope, ServiceMode, ServiceRecord,
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
        // The manager answers a repeated create with the existing record (a retry after a
        // lost answer); a user asking twice is told.
        if self.cluster.service(name).await?.is_some() {
            return Err(Error::already_exists(format!("service {name}")));
        }
        let mut networks: Vec<NetworkId> = Vec::new();
        for reference in network_refs {
            let network = self.find_or_fetch_network(reference).await?;
            check_service_network(&network)?;
            if networks.contains(&network.id) {
                return Err(Error::invalid(format!(
                    "network {} is named twice",
                    network.name
                )));
            }
            networks.push(network.id.clone());
        }
        self.cluster.create_service(name, mode, &networks).await
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
        self.cluster.delete_service(name).await
    }

    /// Every service of the cluster.
    pub async fn list_services(&mut self) -> Result<Vec<ServiceRecord>, Error> {
        let mut services = self.cluster.services().await?;
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(services)
    }

    /// The service an endpoint on `network` is created for must exist there.
    pub(crate) async fn check_endpoint_service(
        &self,
        network: &NetworkRecord,
        service: &Name,
    ) -> Result<(), Error> {
        check_service_network(network)?;
        let Some(definition) = self.cluster.service(service).await? else {
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
}

/// A service lives on global networks with names (overlay).
fn check_service_network(network: &NetworkRecord) -> Result<(), Error> {
    if network.scope != Scope::Global {
        return Err(Error::invalid(format!(
            "network {} is a local network: services are defined on overlay networks",
            network.name
        )));
    }
    Ok(())
}
