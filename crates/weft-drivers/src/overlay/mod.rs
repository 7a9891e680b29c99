//! The `overlay` driver: VXLAN networks spanning the cluster, as libnetwork's overlay driver
//! builds them. Per network and host, made at the first local join and removed after the last
//! local leave: a namespace ([`names`]) holding a bridge with the gateway address and a vxlan
//! device (the network's VNI, learning off, proxy ARP on); per joined endpoint a veth pair, one
//! end on that bridge, the other created directly in the sandbox.
//!
//! Hosts learn about each other's endpoints through NetworkDB: a join publishes one
//! [`PEER_TABLE`] entry ([`PeerRecord`]: address, MAC, VTEP), and every other host of the
//! network programs a permanent neighbour entry and an FDB entry for it on its vxlan device
//! ([`Driver::event_notify`]); [`Driver::repair`] puts back what changed behind our back.
//!
//! Kernel programming of one network is serialised by that network's own async lock, so a
//! slow network never holds up another. Not here: encryption, IPv6, the gateway bridge that
//! gives sandboxes a way out of the overlay, node discovery (peers come from the table only).

pub mod config;
#[cfg(test)]
mod error_tests;
pub mod names;
#[cfg(test)]
mod peer_tests;
mod peers;
mod reconcile;
mod setup;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weft_os::{Kernel, NsName, VXLAN_PORT};
use weft_types::{
    DriverName, EndpointId, EndpointRecord, NetworkId, NetworkRecord, SandboxId, SandboxRecord,
    Scope,
};

use crate::{
    Capability, Driver, DriverError, DriverOp, EventNotify, JoinContext, JoinInfo, NetworkRequest,
    TableEntry, Wanted,
};
use crate::{endpoint_object, error_chain, network_object};
pub use config::{ConfigError, OverlayNet};
pub use weft_types::gossip::{PeerError, PeerRecord};

/// The NetworkDB table of every overlay network: endpoint id -> encoded [`PeerRecord`].
pub const PEER_TABLE: &str = weft_types::gossip::Table::OverlayPeers.name();
/// VXLAN's encapsulation overhead over IPv4 (outer IP 20 + UDP 8 + VXLAN 8 + Ethernet 14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// How an agent's overlay driver is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    /// The agent's namespace prefix; overlay namespaces are `<prefix>ov-<network>`.
    pub netns_prefix: String,
    /// This host's data-path address: the vxlan's source, and the VTEP peers tunnel to.
    pub vtep: Ipv4Addr,
    /// This node's id in NetworkDB: peer records it wrote are its own endpoints, whatever
    /// VTEP they name (an earlier run may have advertised another address).
    pub node_id: String,
    /// The VXLAN UDP port.
    pub port: u16,
    /// The MTU of the overlay's devices; the underlay's minus [`VXLAN_OVERHEAD`] when `None`.
    pub mtu: Option<u32>,
    /// For this long after the driver starts, repair adds missing entries but removes none:
    /// after a restart the peers arrive from NetworkDB over a few gossip rounds, and the
    /// entries the previous run programmed must keep carrying traffic until then.
    pub stray_grace: Duration,
}

/// The default [`OverlayConfig::stray_grace`].
pub const STRAY_GRACE: Duration = Duration::from_secs(30);

impl OverlayConfig {
    /// Port 4789 and the MTU derived from the underlay.
    pub fn new(
        netns_prefix: impl Into<String>,
        node_id: impl Into<String>,
        vtep: Ipv4Addr,
    ) -> Self {
        OverlayConfig {
            netns_prefix: netns_prefix.into(),
            vtep,
            node_id: node_id.into(),
            port: VXLAN_PORT,
            mtu: None,
            stray_grace: STRAY_GRACE,
        }
    }
}

/// What the driver holds about one network on this host.
#[derive(Debug, Default)]
struct NetState {
    /// The definition, once the network was created, joined or reconciled here.
    net: Option<OverlayNet>,
    /// Remote endpoints by table key, kept even before the network exists here.
    peers: BTreeMap<String, PeerRecord>,
    /// Local endpoints joined to it.
    joined: BTreeSet<EndpointId>,
    /// The MTU of its devices while its namespace is set up.
    up: Option<u32>,
    /// Set by delete_network: a waiter holding this slot must fetch a fresh one.
    gone: bool,
}

type Slot = Arc<tokio::sync::Mutex<NetState>>;
type NetGuard = tokio::sync::OwnedMutexGuard<NetState>;

/// The overlay driver (global scope). Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct OverlayDriver {
    name: DriverName,
    kernel: Arc<dyn Kernel>,
    config: OverlayConfig,
    /// One slot per network; the std lock is only held to find a slot, never across an await.
    nets: Mutex<BTreeMap<NetworkId, Slot>>,
    /// Networks deleted here: events still queued for one must not make its slot again.
    deleted: Mutex<Tombstones>,
    started: Instant,
}

/// Most deleted networks remembered; ids are random and never reused, so the oldest
/// matter least (their queued events are long delivered).
const MAX_TOMBSTONES: usize = 4096;

/// The ids of deleted networks, oldest first, bounded by [`MAX_TOMBSTONES`].
#[derive(Debug, Default)]
struct Tombstones {
    ids: BTreeSet<NetworkId>,
    order: std::collections::VecDeque<NetworkId>,
}

impl Tombstones {
    fn insert(&mut self, id: NetworkId) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_TOMBSTONES {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    fn remove(&mut self, id: &NetworkId) {
        if self.ids.remove(id) {
            self.order.retain(|o| o != id);
        }
    }
}

impl OverlayDriver {
    /// A driver programming `kernel`. Nothing is made before the first join.
    pub fn new(kernel: Arc<dyn Kernel>, config: OverlayConfig) -> Self {
        OverlayDriver {
            name: DriverName::overlay(),
            kernel,
            config,
            nets: Mutex::default(),
            deleted: Mutex::default(),
            started: Instant::now(),
        }
    }

    /// The driver's configuration.
    pub fn config(&self) -> &OverlayConfig {
        &self.config
    }

    /// The peers known for `network`, by table key. Asking makes no state.
    pub async fn peers(&self, network: &NetworkId) -> BTreeMap<String, PeerRecord> {
        let slot = self.slots().get(network).cloned();
        match slot {
            Some(slot) => slot.lock_owned().await.peers.clone(),
            None => BTreeMap::new(),
        }
    }

    /// How many networks the driver holds state for: deleted ones must not stay.
    #[cfg(test)]
    fn network_count(&self) -> usize {
        self.slots().len()
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<NetworkId, Slot>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.nets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tombstones(&self) -> MutexGuard<'_, Tombstones> {
        self.deleted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `id` was deleted here (and not created again since).
    fn is_deleted(&self, id: &NetworkId) -> bool {
        self.tombstones().ids.contains(id)
    }

    /// Locks the state of `id`, making it if needed.
    async fn lock_net(&self, id: &NetworkId) -> NetGuard {
        loop {
            let slot = self.slots().entry(id.clone()).or_default().clone();
            let guard = slot.lock_owned().await;
            if !guard.gone {
                return guard;
            }
        }
    }

    /// Every network's slot, for work over all of them.
    fn all_slots(&self) -> Vec<(NetworkId, Slot)> {
        let slots = self.slots();
        slots.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Drops a deleted network's state; its guard must be held, so waiters see `gone`.
    fn forget(&self, id: &NetworkId, st: &mut NetState) {
        *st = NetState {
            gone: true,
            ..NetState::default()
        };
        self.tombstones().insert(id.clone());
        self.slots().remove(id);
    }

    fn netns(&self, id: &NetworkId) -> Result<NsName, weft_os::Error> {
        names::netns(&self.config.netns_prefix, id)
    }

    fn parse(&self, network: &NetworkRecord) -> Result<OverlayNet, DriverError> {
        OverlayNet::from_record(network).map_err(|e| self.invalid(e.to_string()))
    }

    fn invalid(&self, message: String) -> DriverError {
        DriverError::InvalidParameter {
            driver: self.name.clone(),
            message,
        }
    }

    fn failed(&self, op: DriverOp, object: impl Into<String>, message: String) -> DriverError {
        DriverError::failed(&self.name, op, object, message)
    }

    /// A kernel step of `op` failed: the error is kept as the source.
    fn os_failed(&self, op: DriverOp, object: impl Into<String>, e: weft_os::Error) -> DriverError {
        DriverError::kernel(&self.name, op, object, e)
    }

    /// The table entry a joined endpoint publishes, if it has an IPv4 address.
    fn peer_entry(&self, endpoint: &EndpointRecord) -> Option<TableEntry> {
        let record = PeerRecord {
            ip: endpoint.ipv4?,
            mac: endpoint.mac,
            vtep: self.config.vtep,
        };
        let value = match record.encode() {
            Ok(value) => value,
            Err(e) => {
                // A fixed-size record always encodes; published_entries has no error channel.
                tracing::error!(endpoint = endpoint.id.short(), error = %e, "failed to encode a peer record");
                return None;
            }
        };
        Some(TableEntry {
            table: PEER_TABLE.to_owned(),
            key: endpoint.id.to_string(),
            value,
        })
    }
}

#[async_trait]
impl Driver for OverlayDriver {
    fn name(&self) -> &DriverName {
        &self.name
    }

    fn answers_names(&self) -> bool {
        true
    }

    fn capability(&self) -> Capability {
        Capability {
            scope: Scope::Global,
            ipam: true,
            host_namespace: false,
        }
    }

    fn validate(&self, request: &NetworkRequest) -> Result<(), DriverError> {
        config::check_request(request).map_err(|e| self.invalid(e.to_string()))
    }

    async fn create_network(&self, network: &NetworkRecord) -> Result<(), DriverError> {
        // Lazy: the namespace is made by the first local join.
        let net = self.parse(network)?;
        self.tombstones().remove(&network.id);
        self.lock_net(&network.id).await.net = Some(net);
        Ok(())
    }

    async fn delete_network(&self, network: &NetworkId) -> Result<(), DriverError> {
        let mut st = self.lock_net(network).await;
        let result = self.remove_network(network, &st).await;
        self.forget(network, &mut st);
        result
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
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<(), DriverError> {
        // In case a leave was missed (a crash): the veth dies with the endpoint.
        let mut st = self.lock_net(network).await;
        self.detach(DriverOp::DeleteEndpoint, network, endpoint, &mut st)
            .await
    }

    async fn join(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
        _: &SandboxRecord,
        context: &JoinContext,
    ) -> Result<JoinInfo, DriverError> {
        let net = self.parse(network)?;
        if endpoint.ipv4.is_none() {
            return Err(self.invalid(format!(
                "endpoint {} has no ipv4 address: overlay endpoints need one",
                endpoint.id.short()
            )));
        }
        let mut st = self.lock_net(&net.id).await;
        st.net = Some(net.clone());
        self.join_locked(DriverOp::Join, &mut st, &net, endpoint, context)
            .await?;
        Ok(JoinInfo {
            table_entries: self.published_entries(network, endpoint),
        })
    }

    async fn leave(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
        _: &SandboxId,
    ) -> Result<(), DriverError> {
        let mut st = self.lock_net(&network.id).await;
        self.detach(DriverOp::Leave, &network.id, &endpoint.id, &mut st)
            .await
    }

    async fn reconcile(&self, wanted: &Wanted) -> Result<(), DriverError> {
        self.reconcile_all(wanted).await
    }

    fn watched_tables(&self) -> Vec<String> {
        vec![PEER_TABLE.to_owned()]
    }

    fn event_tables(&self, _: &NetworkRecord) -> Vec<String> {
        vec![PEER_TABLE.to_owned()]
    }

    async fn event_notify(&self, event: &EventNotify) -> Result<(), DriverError> {
        if event.table != PEER_TABLE {
            return Ok(());
        }
        self.apply_event(event).await
    }

    fn published_entries(&self, _: &NetworkRecord, endpoint: &EndpointRecord) -> Vec<TableEntry> {
        self.peer_entry(endpoint).into_iter().collect()
    }

    async fn repair(&self) -> Result<usize, DriverError> {
        self.repair_all().await
    }
}
