//! A driver for tests: it keeps what exists in memory, records every call, and fails an
//! operation on demand, so the controller's ordering, rollback and idempotence can be
//! checked without a kernel.

use crate::{
    Capability, Driver, DriverError, DriverOp, EventNotify, JoinContext, JoinInfo, NetworkRequest,
    NodeDiscovery, TableEntry, Wanted,
};
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use weft_types::{
    DriverName, EndpointId, EndpointRecord, NetworkId, NetworkRecord, SandboxId, SandboxRecord,
};

/// What the fake driver holds, inspectable by tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeState {
    pub networks: BTreeSet<NetworkId>,
    pub endpoints: BTreeSet<EndpointId>,
    pub joins: BTreeSet<(EndpointId, SandboxId)>,
    /// Every call, in order, with the object it was about.
    pub calls: Vec<(DriverOp, String)>,
    /// Every table event received, in order.
    pub events: Vec<EventNotify>,
    /// Every node discovery received, in order (global fakes ask for them).
    pub discoveries: Vec<NodeDiscovery>,
    /// Every request [`Driver::validate`] was asked about, in order (refused ones too).
    pub validated: Vec<NetworkRequest>,
}

/// The table a fake driver publishes joined endpoints in and watches.
pub const FAKE_TABLE: &str = "fake_table";

#[derive(Debug, Default)]
struct Inner {
    state: FakeState,
    /// Operations to fail, with how many more times to fail them.
    failures: HashMap<DriverOp, usize>,
}

/// Cloning shares the state, so a test keeps a handle while the controller owns the driver.
#[derive(Debug, Clone)]
pub struct FakeDriver {
    name: DriverName,
    capability: Capability,
    inner: Arc<Mutex<Inner>>,
    /// While set, table events wait before they are taken: a slow driver.
    stalled: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeDriver {
    pub fn new(name: DriverName) -> Self {
        FakeDriver::with_capability(name, Capability::LOCAL)
    }

    /// A fake that declares `capability` (e.g. to stand in for the host driver).
    pub fn with_capability(name: DriverName, capability: Capability) -> Self {
        FakeDriver {
            name,
            capability,
            inner: Arc::default(),
            stalled: Arc::default(),
        }
    }

    /// Makes table events and repairs wait (at most a minute each) until called again
    /// with `false`.
    pub fn stall_events(&self, stalled: bool) {
        self.stalled
            .store(stalled, std::sync::atomic::Ordering::SeqCst);
    }

    fn global(&self) -> bool {
        self.capability.scope == weft_types::Scope::Global
    }

    /// Makes the next `times` calls of `op` fail.
    pub fn fail(&self, op: DriverOp, times: usize) {
        self.lock().failures.insert(op, times);
    }

    /// Forgets what exists (not the calls), as a reboot would.
    pub fn reconcile_reset(&self) {
        let mut inner = self.lock();
        inner.state.networks.clear();
        inner.state.endpoints.clear();
        inner.state.joins.clear();
    }

    /// A copy of the current state.
    pub fn state(&self) -> FakeState {
        self.lock().state.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the call, then fails it if a failure is armed, else applies `change`. An
    /// armed [`DriverOp::Validate`] is a refusal (invalid parameter), others failures.
    fn call(
        &self,
        op: DriverOp,
        object: String,
        change: impl FnOnce(&mut FakeState),
    ) -> Result<(), DriverError> {
        let mut inner = self.lock();
        inner.state.calls.push((op, object.clone()));
        if let Some(left) = inner.failures.get_mut(&op).filter(|n| **n > 0) {
            *left -= 1;
            if op == DriverOp::Validate {
                return Err(DriverError::InvalidParameter {
                    driver: self.name.clone(),
                    message: format!("injected refusal of {object}"),
                });
            }
            return Err(DriverError::Failed {
                driver: self.name.clone(),
                op,
                object,
                message: "injected failure".into(),
            });
        }
        change(&mut inner.state);
        Ok(())
    }
}

#[async_trait]
impl Driver for FakeDriver {
    fn name(&self) -> &DriverName {
        &self.name
    }

    fn capability(&self) -> Capability {
        self.capability
    }

    /// Stands in for bridge and overlay, which answer names; not for `host`.
    fn answers_names(&self) -> bool {
        !self.capability.host_namespace
    }

    /// Records the request, refused or not.
    fn validate(&self, request: &NetworkRequest) -> Result<(), DriverError> {
        self.lock().state.validated.push(request.clone());
        self.call(DriverOp::Validate, request.name.to_string(), |_| {})
    }

    async fn create_network(&self, network: &NetworkRecord) -> Result<(), DriverError> {
        let id = network.id.clone();
        self.call(DriverOp::CreateNetwork, id.to_string(), |s| {
            s.networks.insert(id);
        })
    }

    async fn delete_network(&self, network: &NetworkId) -> Result<(), DriverError> {
        self.call(DriverOp::DeleteNetwork, network.to_string(), |s| {
            s.networks.remove(network);
        })
    }

    async fn create_endpoint(
        &self,
        _: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), DriverError> {
        let id = endpoint.id.clone();
        self.call(DriverOp::CreateEndpoint, id.to_string(), |s| {
            s.endpoints.insert(id);
        })
    }

    async fn delete_endpoint(
        &self,
        _: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<(), DriverError> {
        self.call(DriverOp::DeleteEndpoint, endpoint.to_string(), |s| {
            s.endpoints.remove(endpoint);
        })
    }

    async fn join(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
        sandbox: &SandboxRecord,
        _: &JoinContext,
    ) -> Result<JoinInfo, DriverError> {
        let key = (endpoint.id.clone(), sandbox.id.clone());
        self.call(DriverOp::Join, endpoint.id.to_string(), |s| {
            s.joins.insert(key);
        })?;
        Ok(JoinInfo {
            table_entries: self.published_entries(network, endpoint),
        })
    }

    async fn leave(
        &self,
        _: &NetworkRecord,
        endpoint: &EndpointRecord,
        sandbox: &SandboxId,
    ) -> Result<(), DriverError> {
        let key = (endpoint.id.clone(), sandbox.clone());
        self.call(DriverOp::Leave, endpoint.id.to_string(), |s| {
            s.joins.remove(&key);
        })
    }

    fn watched_tables(&self) -> Vec<String> {
        self.global()
            .then(|| FAKE_TABLE.to_owned())
            .into_iter()
            .collect()
    }

    fn event_tables(&self, _: &NetworkRecord) -> Vec<String> {
        self.watched_tables()
    }

    async fn event_notify(&self, event: &EventNotify) -> Result<(), DriverError> {
        for _ in 0..12_000 {
            if !self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let recorded = event.clone();
        self.call(DriverOp::EventNotify, event.key.clone(), |s| {
            s.events.push(recorded);
        })
    }

    fn wants_discovery(&self) -> bool {
        self.global()
    }

    /// Records the call; waits while events are stalled, as a slow repair would.
    async fn repair(&self) -> Result<usize, DriverError> {
        self.call(DriverOp::Repair, String::new(), |_| {})?;
        for _ in 0..12_000 {
            if !self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Ok(0)
    }

    async fn discover(&self, event: &NodeDiscovery) -> Result<(), DriverError> {
        let recorded = event.clone();
        self.call(DriverOp::EventNotify, event.node.clone(), |s| {
            s.discoveries.push(recorded);
        })
    }

    /// A global fake publishes each joined endpoint's address under its id.
    fn published_entries(&self, _: &NetworkRecord, endpoint: &EndpointRecord) -> Vec<TableEntry> {
        if !self.global() {
            return Vec::new();
        }
        vec![TableEntry {
            table: FAKE_TABLE.to_owned(),
            key: endpoint.id.to_string(),
            value: endpoint
                .ipv4
                .map(|ip| ip.to_string())
                .unwrap_or_default()
                .into_bytes(),
        }]
    }

    async fn reconcile(&self, wanted: &Wanted) -> Result<(), DriverError> {
        // Like a kernel driver: what is wanted exists afterwards, nothing else does.
        self.call(
            DriverOp::Reconcile,
            format!("{} networks", wanted.networks.len()),
            |s| {
                s.networks = wanted.networks.iter().map(|n| n.id.clone()).collect();
                s.endpoints = wanted.endpoints.iter().map(|(e, _)| e.id.clone()).collect();
                s.joins = wanted
                    .endpoints
                    .iter()
                    .filter_map(|(e, join)| {
                        join.as_ref()
                            .and(e.attachment.sandbox())
                            .map(|sb| (e.id.clone(), sb.clone()))
                    })
                    .collect();
            },
        )
    }
}
