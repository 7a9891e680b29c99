//! The allocator's services: a cluster-unique name defined on one or more global
//! networks, holding one virtual IP per network in `vip` mode, taken as
//! [`Command::AllocateVip`](crate::Command::AllocateVip) takes them, keyed by the service's
//! name. What it is not: no backends and no load balancing; nodes do those.

use super::Allocator;
use crate::{AllocError, Outcome};
use ipnet::IpNet;
use std::collections::BTreeSet;
use weft_types::{Name, NetworkId, ServiceMode, ServiceNetwork, ServiceRecord};

impl Allocator {
    /// The service named `name`.
    pub fn service(&self, name: &Name) -> Option<&ServiceRecord> {
        self.services.get(name)
    }

    /// Every service, by name.
    pub fn services(&self) -> impl Iterator<Item = &ServiceRecord> {
        self.services.values()
    }

    /// The names of the services defined on network `id`, sorted.
    pub fn services_on(&self, id: &NetworkId) -> Vec<Name> {
        self.services
            .values()
            .filter(|s| s.is_on(id))
            .map(|s| s.name.clone())
            .collect()
    }

    /// Refuses while a service is defined on network `id`.
    pub(crate) fn ensure_no_services(&self, id: &NetworkId) -> Result<(), AllocError> {
        let services = self.services_on(id);
        if services.is_empty() {
            return Ok(());
        }
        let network = self.network_state(id)?.def.name.clone();
        Err(AllocError::NetworkHasServices { network, services })
    }

    pub(super) fn create_service(
        &mut self,
        name: &Name,
        mode: ServiceMode,
        networks: &[NetworkId],
    ) -> Result<Outcome, AllocError> {
        self.check_service_networks(name, networks)?;
        if let Some(existing) = self.services.get(name) {
            // The same spec again is a retry whose answer was lost: answer it again.
            return if same_spec(existing, mode, networks) {
                Ok(Outcome::ServiceCreated(existing.clone()))
            } else {
                Err(AllocError::ServiceExists { name: name.clone() })
            };
        }
        let mut record = ServiceRecord {
            name: name.clone(),
            mode,
            networks: Vec::with_capacity(networks.len()),
        };
        // A failure on a later network leaves the earlier VIPs taken, but only in the copy
        // `plan` works on and drops: IPAM's serial cursors included, which releasing them
        // again would not restore.
        for network in networks {
            let vip = match mode {
                ServiceMode::Vip => self.vip_addresses(network, name)?.first().map(IpNet::addr),
                ServiceMode::Dnsrr => None,
            };
            record.networks.push(ServiceNetwork {
                network: network.clone(),
                vip,
            });
        }
        self.services.insert(name.clone(), record.clone());
        Ok(Outcome::ServiceCreated(record))
    }

    /// At least one network, none twice, every one known.
    fn check_service_networks(
        &self,
        name: &Name,
        networks: &[NetworkId],
    ) -> Result<(), AllocError> {
        if networks.is_empty() {
            return Err(AllocError::ServiceWithoutNetwork { name: name.clone() });
        }
        let mut seen = BTreeSet::new();
        for network in networks {
            if !seen.insert(network) {
                return Err(AllocError::ServiceNetworkTwice {
                    name: name.clone(),
                    network: network.clone(),
                });
            }
            self.network_state(network)?;
        }
        Ok(())
    }

    pub(super) fn delete_service(&mut self, name: &Name) -> Result<Outcome, AllocError> {
        let record = self
            .services
            .remove(name)
            .ok_or_else(|| AllocError::UnknownService { name: name.clone() })?;
        if record.mode == ServiceMode::Vip {
            for network in &record.networks {
                match self.release_vip_unchecked(&network.network, name) {
                    // A VIP already gone must not keep the service defined forever.
                    Ok(_) | Err(AllocError::UnknownVip { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Outcome::ServiceDeleted(record))
    }
}

/// Whether `existing` has exactly this mode and these networks, in this order.
fn same_spec(existing: &ServiceRecord, mode: ServiceMode, networks: &[NetworkId]) -> bool {
    existing.mode == mode && existing.networks.iter().map(|n| &n.network).eq(networks)
}
