//! The manager role: the cluster allocator ([`ManagerService`]) answering nodes over RPC,
//! and the definitions it publishes in the cluster network, from which every node adopts
//! them: global networks in the `networks` table, services in the `services` table.
//!
//! The allocator's store is its own sled database (`<data-dir>/manager`), apart from the
//! controller's: the two have different owners and lifetimes.

use crate::AgentError;
use actix::Addr;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};
use weft_manager::{
    AllocatorConfig, ManagerReply, ManagerRequest, ManagerResponse, ManagerService, ManagerStore,
    VniRange,
};
use weft_netdb::{CreateEntry, DeleteEntry, NetworkDb, Observe, TableKey, UpdateEntry, WalkTable};
use weft_rpc::{RpcHandler, rpc_handler};
use weft_types::gossip::{Table, encode_network, encode_service};
use weft_types::{Error, Name, NetworkId, NetworkRecord, ServiceRecord};

const STORE_DIR: &str = "manager";
/// How often the definitions are published again, healing a publish that failed.
const REPUBLISH_EVERY: Duration = Duration::from_secs(30);

/// A manager's allocator and its publisher.
#[derive(Debug)]
pub struct Manager {
    service: Arc<ManagerService>,
    netdb: Addr<NetworkDb>,
}

impl Manager {
    /// Opens the allocator stored in the data directory (replaying its log) and publishes
    /// every definition it holds: NetworkDB starts empty after a restart.
    pub async fn start(
        data_dir: &Path,
        ipam: &weft_ipam::IpamConfig,
        netdb: Addr<NetworkDb>,
    ) -> Result<Arc<Manager>, AgentError> {
        let dir = data_dir.join(STORE_DIR);
        let config = AllocatorConfig {
            pools: ipam.global.clone(),
            vnis: VniRange::default(),
        };
        let store = tokio::task::spawn_blocking(move || -> Result<ManagerStore, AgentError> {
            let store = weft_store::Store::open(&dir).map_err(|source| AgentError::Store {
                what: format!("cannot open the allocator store in {}", dir.display()),
                source,
            })?;
            crate::stores::register("allocator", store.clone());
            ManagerStore::open(store, config).map_err(AgentError::Allocator)
        })
        .await
        .map_err(|source| AgentError::Task {
            what: "allocator open",
            source,
        })??;
        let manager = Arc::new(Manager {
            service: Arc::new(ManagerService::new(store)),
            netdb,
        });
        manager.publish_all().await;
        let again = manager.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REPUBLISH_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                again.publish_all().await;
            }
        });
        Ok(manager)
    }

    /// Answers one request: the allocator's change is stored before the answer, and a
    /// network's or service's definition is published before its creator hears of it.
    pub async fn handle(&self, request: ManagerRequest) -> ManagerReply {
        let service = self.service.clone();
        let reply = tokio::task::spawn_blocking(move || service.handle(request))
            .await
            .map_err(|e| Error::internal(format!("allocator task failed: {e}")))?;
        match &reply {
            Ok(ManagerResponse::Network(record)) => self.publish(record).await,
            Ok(ManagerResponse::Deleted(id)) => self.unpublish(id).await,
            Ok(ManagerResponse::Service(record)) => self.publish_service(record).await,
            Ok(ManagerResponse::ServiceDeleted(name)) => self.unpublish_service(name).await,
            _ => {}
        }
        reply
    }

    /// `weft network rm --force` on this manager: the addresses of endpoints that no live
    /// node holds are released, then the network is deleted. An endpoint counts as held
    /// while its overlay peer entry is published by a node NetworkDB sees alive (every
    /// joined endpoint publishes one); one a node crashed before saving never was.
    pub async fn force_delete(&self, id: &NetworkId) -> ManagerReply {
        let live = self.live_endpoints(id).await?;
        warn!(network = %id.short(), live = live.len(), "forced delete: releasing the addresses of endpoints no live node holds");
        self.handle(ManagerRequest::ForceDeleteNetwork {
            id: id.clone(),
            live,
        })
        .await
    }

    async fn live_endpoints(&self, id: &NetworkId) -> Result<BTreeSet<String>, Error> {
        let unavailable = |e: actix::MailboxError| Error::internal(format!("networkdb: {e}"));
        let state = self.netdb.send(Observe).await.map_err(unavailable)?;
        let alive: BTreeSet<&str> = state.alive_members().collect();
        let table = Table::OverlayPeers
            .name()
            .parse()
            .map_err(|e| Error::internal(format!("{e}")))?;
        let entries = self
            .netdb
            .send(WalkTable {
                table,
                network: id.clone(),
            })
            .await
            .map_err(unavailable)?;
        Ok(entries
            .into_iter()
            .filter(|(_, entry)| alive.contains(&*entry.owner))
            .map(|(key, _)| key.key)
            .collect())
    }

    /// The RPC service: bincode [`ManagerRequest`] in, [`ManagerReply`] out.
    pub fn rpc_handler(self: &Arc<Self>) -> RpcHandler {
        let manager = self.clone();
        rpc_handler(move |peer, bytes| {
            let manager = manager.clone();
            async move {
                let reply = match weft_rpc::decode::<ManagerRequest>(&bytes) {
                    // Its list of live endpoints is the manager's own view, never a caller's.
                    Ok(ManagerRequest::ForceDeleteNetwork { .. }) => Err(Error::forbidden(
                        "a forced delete of a global network runs on a manager: weft network rm --force there".to_owned(),
                    )),
                    Ok(request) => manager.handle(request).await,
                    Err(e) => {
                        warn!(peer = %peer.node_id, error = %e, "malformed manager request");
                        Err(Error::invalid(format!("malformed manager request: {e}")))
                    }
                };
                encode_reply(&reply)
            }
        })
    }

    async fn publish_all(&self) {
        let service = self.service.clone();
        let listed =
            tokio::task::spawn_blocking(move || (service.networks(), service.services())).await;
        let (networks, services) = match listed {
            Ok(listed) => listed,
            Err(e) => {
                warn!(error = %e, "cannot list the allocator's definitions");
                return;
            }
        };
        // Periodic and usually a no-op: not worth an info line every 30 s.
        if !networks.is_empty() || !services.is_empty() {
            debug!(
                networks = networks.len(),
                services = services.len(),
                "publishing global network and service definitions"
            );
        }
        // Networks before the services defined on them, the order they were created in.
        for record in &networks {
            self.publish(record).await;
        }
        for record in &services {
            self.publish_service(record).await;
        }
    }

    /// Writes (or rewrites) a network's definition; failures are logged, the next round
    /// retries.
    async fn publish(&self, record: &NetworkRecord) {
        let result = async {
            let key = definition_key(&record.id)?;
            self.write_entry(key, encode_network(record)).await
        }
        .await;
        if let Err(e) = result {
            warn!(network = %record.name, error = %e, "cannot publish the network's definition");
        }
    }

    async fn unpublish(&self, id: &NetworkId) {
        let result = async { self.delete_entry(definition_key(id)?).await }.await;
        if let Err(e) = result {
            warn!(network = %id.short(), error = %e, "cannot withdraw the network's definition");
        }
    }

    /// Writes (or rewrites) a service's definition; failures are logged, the next round
    /// retries.
    async fn publish_service(&self, record: &ServiceRecord) {
        let result = async {
            let key = service_key(&record.name)?;
            self.write_entry(key, encode_service(record)).await
        }
        .await;
        if let Err(e) = result {
            warn!(service = %record.name, error = %e, "cannot publish the service's definition");
        }
    }

    async fn unpublish_service(&self, name: &Name) {
        let result = async { self.delete_entry(service_key(name)?).await }.await;
        if let Err(e) = result {
            warn!(service = %name, error = %e, "cannot withdraw the service's definition");
        }
    }

    /// Creates or updates the entry at `key`, leaving it alone when it holds `value`
    /// already (the periodic republish then gossips nothing).
    async fn write_entry(&self, key: TableKey, value: Vec<u8>) -> Result<(), String> {
        let existing = self
            .netdb
            .send(weft_netdb::GetEntry { key: key.clone() })
            .await
            .map_err(|e| e.to_string())?;
        let written = match existing {
            Some(entry) if *entry.value == *value.as_slice() => return Ok(()),
            Some(_) => self.netdb.send(UpdateEntry { key, value }).await,
            None => self.netdb.send(CreateEntry { key, value }).await,
        };
        written
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn delete_entry(&self, key: TableKey) -> Result<(), String> {
        self.netdb
            .send(DeleteEntry { key })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

fn definition_key(id: &NetworkId) -> Result<TableKey, String> {
    TableKey::new(Table::Networks.name(), NetworkId::cluster(), id.as_str())
        .map_err(|e| e.to_string())
}

/// Where a service's definition lives: keyed by its name, in the cluster network.
fn service_key(name: &Name) -> Result<TableKey, String> {
    TableKey::new(Table::Services.name(), NetworkId::cluster(), name.as_str())
        .map_err(|e| e.to_string())
}

/// Encodes `reply`. One that cannot be encoded (larger than an RPC message may be) becomes
/// an error saying so: an empty answer would reach the client as a decoding failure.
fn encode_reply(reply: &ManagerReply) -> Vec<u8> {
    let e = match weft_rpc::encode(reply) {
        Ok(bytes) => return bytes,
        Err(e) => e,
    };
    warn!(error = %e, "cannot encode a manager reply");
    let refusal: ManagerReply = Err(Error::internal(format!(
        "the manager cannot send its answer: {e}"
    )));
    // A short error always encodes; should it not, the client reports a decoding failure.
    weft_rpc::encode(&refusal).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use weft_types::{DriverName, Labels, Lifecycle, Scope};

    #[test]
    fn a_reply_too_large_to_send_becomes_an_error_not_an_empty_answer() {
        let big = "v".repeat(1000);
        let pairs: Vec<String> = (0..64).map(|i| format!("k{i}={big}")).collect();
        let labels = Labels::from_pairs(pairs.iter().map(String::as_str)).unwrap();
        let record = NetworkRecord {
            id: NetworkId::random(),
            name: "big".parse().unwrap(),
            driver: DriverName::overlay(),
            scope: Scope::Global,
            auto_subnet: false,
            subnets: Vec::new(),
            ipv6: false,
            internal: false,
            attachable: false,
            options: Default::default(),
            labels,
            created_ms: 0,
            lifecycle: Lifecycle::Ready,
        };
        let reply: ManagerReply = Ok(ManagerResponse::Networks(vec![record; 80]));
        let bytes = encode_reply(&reply);
        let decoded: ManagerReply = weft_rpc::decode(&bytes).unwrap();
        let e = decoded.unwrap_err();
        assert!(
            e.message.contains("cannot send its answer"),
            "{}",
            e.message
        );
        // A reply that fits is sent as it is.
        let small: ManagerReply = Ok(ManagerResponse::Networks(Vec::new()));
        assert_eq!(
            weft_rpc::decode::<ManagerReply>(&encode_reply(&small)).unwrap(),
            small
        );
    }

    #[test]
    fn a_service_definition_is_keyed_by_its_name_in_the_cluster_services_table() {
        let record = ServiceRecord {
            name: "web".parse().unwrap(),
            mode: weft_types::ServiceMode::Vip,
            networks: vec![weft_types::ServiceNetwork {
                network: NetworkId::random(),
                vip: Some("198.19.0.2".parse().unwrap()),
            }],
        };
        let key = service_key(&record.name).unwrap();
        assert_eq!(key.table.as_str(), "services");
        assert_eq!(key.network, NetworkId::cluster());
        let decoded = weft_types::gossip::decode_service(&key.key, &encode_service(&record));
        assert_eq!(decoded.unwrap(), record);
    }
}
