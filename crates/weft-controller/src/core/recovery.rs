//! Start-up: rebuild IPAM from the records, then finish or undo what a crash left
//! half-done, in dependency order (attachments, endpoints, sandboxes, networks).
//!
//! | found at start                 | action                                   |
//! |--------------------------------|------------------------------------------|
//! | endpoint `joining`/`leaving`   | driver leave, then `detached`            |
//! | endpoint joined to a missing sandbox | driver leave, then `detached`      |
//! | endpoint `creating`/`deleting` | driver delete, release, delete record    |
//! | endpoint of a missing network  | delete record                            |
//! | sandbox `creating`/`deleting`  | detach its endpoints, delete record      |
//! | network `creating`             | driver delete, release, delete record    |
//! | network `deleting`             | delete its endpoints, then the network   |

use super::Core;
use super::sandbox::kernel_error;
use std::collections::BTreeSet;
use tracing::{info, warn};
use weft_drivers::Wanted;
use weft_os::NsName;
use weft_types::{Attachment, DriverName, Error, ErrorKind, Lifecycle, NetworkRecord, Scope};

impl Core {
    pub(crate) async fn recover(&mut self) -> Result<(), Error> {
        self.rebuild_ipam()?;
        let mut fixed = 0usize;
        fixed += self.recover_attachments().await?;
        fixed += self.recover_endpoints().await?;
        fixed += self.recover_sandboxes().await?;
        fixed += self.recover_networks().await?;
        fixed += self.reconcile_kernel().await?;
        let unsettled = self.settle_gateways().await;
        info!(
            networks = self.networks.len(),
            endpoints = self.endpoints.len(),
            sandboxes = self.sandboxes.len(),
            fixed,
            unsettled,
            "controller state loaded"
        );
        Ok(())
    }

    /// Makes the kernel match the store: every sandbox has its namespace, namespaces of
    /// sandboxes that no longer exist are removed (with what runs in them), and each
    /// driver recreates or adopts what it wants and removes what it owns but does not.
    async fn reconcile_kernel(&mut self) -> Result<usize, Error> {
        let mut wanted = BTreeSet::new();
        for id in self.sandboxes.keys() {
            let netns = self.sandbox_netns(id)?;
            self.kernel
                .create_netns(&netns)
                .await
                .map_err(|e| kernel_error(format!("cannot restore namespace {netns}"), e))?;
            wanted.insert(netns);
        }
        let prefix = self.sandbox_netns_prefix();
        let existing = self
            .kernel
            .list_netns(&prefix)
            .await
            .map_err(|e| kernel_error(format!("cannot list namespaces {prefix}*"), e))?;
        let stray: Vec<NsName> = existing
            .into_iter()
            .filter(|n| !wanted.contains(n))
            .collect();
        for netns in &stray {
            info!(%netns, "reconcile: removing namespace of a sandbox that no longer exists");
            self.remove_netns(netns).await?;
        }
        let drivers: Vec<_> = self.drivers.iter().cloned().collect();
        for driver in drivers {
            let wanted = self.wanted_for(driver.name());
            driver
                .reconcile(&wanted)
                .await
                .map_err(|e| Error::from(e).context("reconcile at start"))?;
        }
        Ok(stray.len())
    }

    /// What the store wants of one driver.
    fn wanted_for(&self, driver: &DriverName) -> Wanted {
        let networks: Vec<NetworkRecord> = self
            .networks
            .values()
            .map(|s| s.record.clone())
            .filter(|n| &n.driver == driver)
            .collect();
        let endpoints = self
            .endpoints
            .values()
            .map(|s| &s.record)
            .filter(|e| networks.iter().any(|n| n.id == e.network))
            .map(|e| (e.clone(), self.stored_join_context(e)))
            .collect();
        Wanted {
            networks,
            endpoints,
        }
    }

    /// Gateways and endpoint addresses are reserved before anything new is allocated.
    /// Networks are replayed in creation order, so automatic subnets resume after the
    /// newest one still in use (the exact position of the search is not stored).
    fn rebuild_ipam(&mut self) -> Result<(), Error> {
        let mut networks: Vec<NetworkRecord> =
            self.networks.values().map(|s| s.record.clone()).collect();
        networks.sort_by_key(|n| (n.created_ms, n.subnets.first().map(|s| s.subnet)));
        // Global networks' addresses belong to the manager's allocator.
        networks.retain(|n| n.scope == Scope::Local);
        for network in &networks {
            self.reserve_network(network)?;
            if network.auto_subnet {
                for pool in self.pools.get(&network.id).into_iter().flatten() {
                    self.ipam.resume_after(pool);
                }
            }
        }
        // In creation order too: each reservation moves the serial cursor, so it ends
        // after the newest address, and a just-released one is not handed out at once.
        let mut endpoints: Vec<_> = self.endpoints.values().map(|s| s.record.clone()).collect();
        endpoints.sort_by_key(|e| (e.created_ms, e.ipv4));
        for endpoint in &endpoints {
            self.reserve_endpoint(endpoint)?;
        }
        let services: Vec<_> = self.services.values().map(|s| s.record.clone()).collect();
        for service in &services {
            self.reserve_service(service)?;
        }
        Ok(())
    }

    async fn recover_attachments(&mut self) -> Result<usize, Error> {
        let stale: Vec<_> = self
            .endpoints
            .values()
            .map(|s| &s.record)
            .filter(|e| match &e.attachment {
                Attachment::Detached => false,
                Attachment::Joined(sb) => !self.sandboxes.contains_key(sb),
                Attachment::Joining(_) | Attachment::Leaving(_) => true,
            })
            .map(|e| e.id.clone())
            .collect();
        for id in &stale {
            info!(endpoint = %id.short(), "recovery: detaching endpoint left half-joined");
            self.detach(id.clone()).await?;
        }
        Ok(stale.len())
    }

    async fn recover_endpoints(&mut self) -> Result<usize, Error> {
        let stale: Vec<_> = self
            .endpoints
            .values()
            .map(|s| &s.record)
            .filter(|e| {
                e.lifecycle != Lifecycle::Ready
                    || !self.networks.contains_key(&e.network)
                    || e.owner
                        .as_ref()
                        .is_some_and(|o| !self.sandboxes.contains_key(o))
            })
            .map(|e| e.id.clone())
            .collect();
        for id in &stale {
            info!(endpoint = %id.short(), "recovery: deleting endpoint left half-done");
            let result = self.delete_endpoint_record(id.clone(), true).await;
            unless_manager_away(result, "endpoint", id.short())?;
        }
        Ok(stale.len())
    }

    async fn recover_sandboxes(&mut self) -> Result<usize, Error> {
        let stale: Vec<_> = self
            .sandboxes
            .values()
            .map(|s| &s.record)
            .filter(|s| s.lifecycle != Lifecycle::Ready)
            .cloned()
            .collect();
        for sandbox in &stale {
            info!(sandbox = %sandbox.name, "recovery: deleting sandbox left half-done");
            let result = self.delete_sandbox_record(sandbox.clone(), true).await;
            unless_manager_away(result, "sandbox", sandbox.name.as_str())?;
        }
        Ok(stale.len())
    }

    async fn recover_networks(&mut self) -> Result<usize, Error> {
        let stale: Vec<_> = self
            .networks
            .values()
            .map(|s| &s.record)
            .filter(|n| n.lifecycle != Lifecycle::Ready)
            .cloned()
            .collect();
        for network in &stale {
            info!(network = %network.name, lifecycle = ?network.lifecycle, "recovery: finishing network left half-done");
            let endpoints: Vec<_> = self
                .endpoints_of(&network.id)
                .map(|e| e.id.clone())
                .collect();
            let mut kept = false;
            for endpoint in endpoints {
                let result = self.delete_endpoint_record(endpoint.clone(), true).await;
                kept |= unless_manager_away(result, "endpoint", endpoint.short())?;
            }
            if !kept {
                self.finish_network_delete(network.clone()).await?;
            }
        }
        Ok(stale.len())
    }
}

/// A step that needs a manager (releasing a global network's addresses) must not stop the
/// agent from starting while no manager answers: the object is kept as it is (an endpoint
/// whose release failed is back to ready, see `delete_endpoint_record`) and a later delete
/// or start finishes. Returns whether it was kept; other errors still fail the start.
fn unless_manager_away(result: Result<(), Error>, kind: &str, name: &str) -> Result<bool, Error> {
    match result {
        Ok(()) => Ok(false),
        Err(e) if e.kind == ErrorKind::Unavailable => {
            warn!(object = kind, name, error = %e, "recovery: kept until a manager answers");
            Ok(true)
        }
        Err(e) => Err(e),
    }
}
