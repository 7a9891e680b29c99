//! The `bridge` driver: a Linux bridge per network in the host namespace, holding the
//! gateway addresses; per joined endpoint a veth pair, one end on the bridge, the other created
//! directly in the sandbox as `eth0`, `eth1`, ... with the endpoint's address, MAC and the network's
//! MTU; outbound traffic masqueraded and networks isolated from each other by one nftables
//! table ([`nft`]). Docker's bridge driver, without its port mapping and userland proxy.
//!
//! Every kernel change goes through [`weft_os::Kernel`], so the driver runs against the
//! in-memory fake in unit tests. Kernel objects carry names derived from ids ([`names`]) so
//! that [`Driver::reconcile`] can find what the driver made. Not here: IP allocation (the
//! controller's IPAM), port publishing, IPv6 forwarding sysctls.

pub mod config;
pub mod names;
pub mod nft;
mod setup;
#[cfg(test)]
pub(crate) mod tests;

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use weft_os::{Kernel, NsRef};
use weft_types::{
    DriverName, EndpointId, EndpointRecord, NetworkId, NetworkRecord, SandboxId, SandboxRecord,
};

use crate::{
    Capability, Driver, DriverError, DriverOp, JoinContext, JoinInfo, NetworkRequest, Wanted,
};
use crate::{Failures, endpoint_object, error_chain, network_object};
pub use config::{BridgeNet, ConfigError};

/// How many times a ruleset sync re-applies when networks changed while it was applying.
const MAX_SYNC_ROUNDS: usize = 8;

/// The networks the ruleset is built from, with a counter bumped on every change.
#[derive(Debug, Default)]
struct State {
    networks: BTreeMap<NetworkId, BridgeNet>,
    generation: u64,
}

/// The bridge driver (local scope). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct BridgeDriver {
    name: DriverName,
    kernel: Arc<dyn Kernel>,
    state: Mutex<State>,
}

impl BridgeDriver {
    /// A driver programming `kernel`'s host namespace. It knows no network until
    /// `create_network` or `reconcile` tells it: an agent must call `reconcile` at start
    /// before anything else, because the ruleset is rebuilt from the networks the driver
    /// knows, and a `create_network` first would drop the rules of the networks that
    /// existed before the restart.
    pub fn new(kernel: Arc<dyn Kernel>) -> Self {
        BridgeDriver {
            name: DriverName::bridge(),
            kernel,
            state: Mutex::default(),
        }
    }

    /// The networks the driver currently holds, in id order.
    pub fn networks(&self) -> Vec<BridgeNet> {
        self.lock().networks.values().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or replaces a network; returns whether it was known before.
    fn remember(&self, net: BridgeNet) -> bool {
        let mut s = self.lock();
        s.generation += 1;
        s.networks.insert(net.id.clone(), net).is_some()
    }

    fn forget(&self, id: &NetworkId) {
        let mut s = self.lock();
        s.generation += 1;
        s.networks.remove(id);
    }

    /// Makes the host's `weft-bridge` table match the current networks (deleting it when
    /// there are none). If networks changed while it applied, it applies again, so that a
    /// stale snapshot applied last by a concurrent caller is always corrected.
    async fn sync_ruleset(&self) -> Result<(), weft_os::Error> {
        for _ in 0..MAX_SYNC_ROUNDS {
            let (generation, nets) = {
                let s = self.lock();
                (
                    s.generation,
                    s.networks.values().cloned().collect::<Vec<_>>(),
                )
            };
            if nets.is_empty() {
                self.kernel
                    .delete_table(&NsRef::Host, &nft::table())
                    .await?;
            } else {
                self.kernel
                    .apply_ruleset(&NsRef::Host, &nft::ruleset(&nets))
                    .await?;
            }
            if self.lock().generation == generation {
                break;
            }
        }
        Ok(())
    }

    fn parse(&self, network: &NetworkRecord) -> Result<BridgeNet, DriverError> {
        BridgeNet::from_record(network).map_err(|e| self.invalid(e))
    }

    fn invalid(&self, e: ConfigError) -> DriverError {
        DriverError::InvalidParameter {
            driver: self.name.clone(),
            message: e.to_string(),
        }
    }

    fn failed(&self, op: DriverOp, object: impl Into<String>, message: String) -> DriverError {
        DriverError::failed(&self.name, op, object, message)
    }

    /// A kernel step of `op` failed: the error is kept as the source.
    fn os_failed(&self, op: DriverOp, object: impl Into<String>, e: weft_os::Error) -> DriverError {
        DriverError::kernel(&self.name, op, object, e)
    }
}

#[async_trait]
impl Driver for BridgeDriver {
    fn name(&self) -> &DriverName {
        &self.name
    }

    fn answers_names(&self) -> bool {
        true
    }

    fn capability(&self) -> Capability {
        Capability::LOCAL
    }

    fn validate(&self, request: &NetworkRequest) -> Result<(), DriverError> {
        config::check_request(request).map_err(|e| self.invalid(e))
    }

    async fn create_network(&self, network: &NetworkRecord) -> Result<(), DriverError> {
        let net = self.parse(network)?;
        self.create_bridge_network(net).await
    }

    async fn delete_network(&self, network: &NetworkId) -> Result<(), DriverError> {
        let op = DriverOp::DeleteNetwork;
        let bridge =
            names::bridge(network).map_err(|e| self.os_failed(op, network_object(network), e))?;
        self.forget(network);
        let mut failures = Failures::new(&self.name, op, network_object(network));
        if let Err(e) = self.kernel.delete_link(&NsRef::Host, &bridge).await {
            failures.push(format_args!("failed to delete bridge {bridge}"), e);
        }
        if let Err(e) = self.sync_ruleset().await {
            failures.push("failed to update the ruleset", e);
        }
        failures.into_result()
    }

    async fn create_endpoint(
        &self,
        _: &NetworkRecord,
        _: &EndpointRecord,
    ) -> Result<(), DriverError> {
        // The veth is made at join, when the sandbox it goes into is known.
        Ok(())
    }

    async fn delete_endpoint(
        &self,
        _: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<(), DriverError> {
        // In case a leave was missed (a crash): the veth dies with the endpoint.
        self.remove_veth(DriverOp::DeleteEndpoint, endpoint).await
    }

    async fn join(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
        _: &SandboxRecord,
        context: &JoinContext,
    ) -> Result<JoinInfo, DriverError> {
        let net = self.parse(network)?;
        self.attach(DriverOp::Join, &net, endpoint, context).await?;
        Ok(JoinInfo::default())
    }

    async fn leave(
        &self,
        _: &NetworkRecord,
        endpoint: &EndpointRecord,
        _: &SandboxId,
    ) -> Result<(), DriverError> {
        // Deleting the host end takes the sandbox end along, wherever it is.
        self.remove_veth(DriverOp::Leave, &endpoint.id).await
    }

    async fn reconcile(&self, wanted: &Wanted) -> Result<(), DriverError> {
        self.reconcile_all(wanted).await
    }
}
