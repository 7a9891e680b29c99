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
use tracing::info;
use weft_types::{Attachment, Error, Lifecycle, NetworkRecord};

impl Core {
    pub(crate) async fn recover(&mut self) -> Result<(), Error> {
        self.rebuild_ipam()?;
        let mut fixed = 0usize;
        fixed += self.recover_attachments().await?;
        fixed += self.recover_endpoints().await?;
        fixed += self.recover_sandboxes().await?;
        fixed += self.recover_networks().await?;
        info!(
            networks = self.networks.len(),
            endpoints = self.endpoints.len(),
            sandboxes = self.sandboxes.len(),
            fixed,
            "controller state loaded"
        );
        Ok(())
    }

    /// Gateways and endpoint addresses are reserved before anything new is allocated.
    /// Networks are replayed in creation order, so automatic subnets resume after the
    /// newest one still in use (the exact position of the search is not stored).
    fn rebuild_ipam(&mut self) -> Result<(), Error> {
        let mut networks: Vec<NetworkRecord> =
            self.networks.values().map(|s| s.record.clone()).collect();
        networks.sort_by_key(|n| n.created_ms);
        for network in &networks {
            self.reserve_network(network)?;
            if network.auto_subnet {
                for pool in self.pools.get(&network.id).into_iter().flatten() {
                    self.ipam.resume_after(pool);
                }
            }
        }
        let endpoints: Vec<_> = self.endpoints.values().map(|s| s.record.clone()).collect();
        for endpoint in &endpoints {
            self.reserve_endpoint(endpoint)?;
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
            .filter(|e| e.lifecycle != Lifecycle::Ready || !self.networks.contains_key(&e.network))
            .map(|e| e.id.clone())
            .collect();
        for id in &stale {
            info!(endpoint = %id.short(), "recovery: deleting endpoint left half-done");
            self.delete_endpoint_record(id.clone(), true).await?;
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
            self.delete_sandbox_record(sandbox.clone(), true).await?;
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
            for endpoint in endpoints {
                self.delete_endpoint_record(endpoint, true).await?;
            }
            self.finish_network_delete(network.clone()).await?;
        }
        Ok(stale.len())
    }
}
