//! The ServiceLb actor's naming half: every name this host's sandboxes may ask for, and one
//! embedded DNS resolver per sandbox on a network with names (127.0.0.11:53, UDP and TCP,
//! sockets made in the sandbox's namespace and served from the agent's).
//!
//! Records come from two places: the controller reports this host's sandboxes and their
//! joined endpoints ([`weft_controller::NamePlane`], implemented by [`AgentNames`]), and
//! NetworkDB's `endpoint_table` brings other hosts' endpoints on global networks. What a
//! query means is decided by weft-services' sans-IO core; this module owns the sockets.
//!
//! The resolvers read the names through one shared lock that only this actor writes: a
//! query never waits for the actor's mailbox.

mod serve;

use actix::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use weft_controller::names::{NamePlane, SandboxNames};
use weft_netdb::{NetworkDb, TableEvent, TableName, Watch};
use weft_services::{Directory, NetworkView, SandboxView};
use weft_types::gossip::{NameRecord, Table};
use weft_types::{EndpointId, NetworkId, SandboxId};

pub use serve::DnsCounters;

/// What the resolvers read: the records, and each sandbox's networks.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub(crate) directory: Directory,
    pub(crate) views: HashMap<SandboxId, SandboxView>,
}

/// The names shared with the resolvers; written by [`ServiceLb`] only.
pub(crate) type SharedNames = Arc<RwLock<Names>>;

/// Where names not known here are forwarded, and what a sandbox's resolv.conf says.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// At most three servers, tried in order.
    pub servers: Vec<IpAddr>,
    /// The resolv.conf processes in a sandbox see.
    pub resolv_conf: String,
}

impl Upstream {
    /// `servers` if given, else the host's resolv.conf nameservers; the sandbox's
    /// resolv.conf keeps the host's search line.
    pub fn from_host(servers: Vec<IpAddr>, host_resolv_conf: &str) -> Upstream {
        let host = weft_services::parse_resolv_conf(host_resolv_conf);
        let servers = if servers.is_empty() {
            host.nameservers.clone()
        } else {
            servers
        };
        Upstream {
            servers,
            resolv_conf: weft_services::render_sandbox_resolv_conf(&host),
        }
    }
}

/// One running resolver.
#[derive(Debug)]
struct Resolver {
    netns: PathBuf,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<DnsCounters>,
}

impl Drop for Resolver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The per-host naming actor.
pub struct ServiceLb {
    node_name: String,
    names: SharedNames,
    upstream: Arc<Upstream>,
    resolvers: HashMap<SandboxId, Resolver>,
    /// Records each local sandbox put in the directory, to take out what it no longer has.
    local: HashMap<SandboxId, Vec<(NetworkId, EndpointId)>>,
    /// Remote entries refused as malformed.
    refused: u64,
}

impl std::fmt::Debug for ServiceLb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceLb")
            .field("node", &self.node_name)
            .field("resolvers", &self.resolvers.len())
            .finish_non_exhaustive()
    }
}

impl ServiceLb {
    /// Starts the actor and subscribes it to `endpoint_table` in every network.
    pub async fn start(
        node_name: String,
        netdb: &Addr<NetworkDb>,
        upstream: Upstream,
    ) -> Result<Addr<ServiceLb>, crate::AgentError> {
        let actor = ServiceLb {
            node_name,
            names: SharedNames::default(),
            upstream: Arc::new(upstream),
            resolvers: HashMap::new(),
            local: HashMap::new(),
            refused: 0,
        }
        .start();
        let table = Table::Endpoints
            .name()
            .parse::<TableName>()
            .map_err(|e| crate::AgentError::Refused(format!("endpoint table name: {e}")))?;
        netdb
            .send(Watch {
                table,
                network: None,
                recipient: actor.clone().recipient(),
            })
            .await
            .map_err(|source| crate::AgentError::Mailbox {
                what: "cannot watch the endpoint table",
                source,
            })?;
        Ok(actor)
    }

    fn write_names(&self) -> std::sync::RwLockWriteGuard<'_, Names> {
        // A resolver task never panics while holding the lock (it only reads and
        // answers), so a poisoned lock still holds consistent names.
        self.names.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a sandbox's reported state: its records and view, and its resolver.
    fn apply_sandbox(&mut self, report: SandboxNames, ctx: &mut Context<Self>) {
        let id = report.sandbox.clone();
        let now: Vec<(NetworkId, EndpointId)> = report
            .attachments
            .iter()
            .map(|a| (a.network.clone(), a.endpoint.clone()))
            .collect();
        let before = self
            .local
            .insert(id.clone(), now.clone())
            .unwrap_or_default();
        {
            let mut names = self.write_names();
            for (network, endpoint) in before.iter().filter(|k| !now.contains(k)) {
                names.directory.remove(network, endpoint.as_str());
            }
            for a in &report.attachments {
                names.directory.insert(
                    &a.network,
                    a.endpoint.as_str(),
                    &self.node_name,
                    a.record.clone(),
                );
            }
            let view = SandboxView {
                networks: report
                    .attachments
                    .iter()
                    .map(|a| NetworkView {
                        id: a.network.clone(),
                        name: a.network_name.to_string(),
                        internal: a.internal,
                    })
                    .collect(),
            };
            if report.attachments.is_empty() {
                names.views.remove(&id);
            } else {
                names.views.insert(id.clone(), view);
            }
        }
        if report.attachments.is_empty() {
            self.local.remove(&id);
            self.stop_resolver(&id);
        } else if !self.resolvers.contains_key(&id) {
            self.start_resolver(id, report.name.to_string(), report.netns, ctx);
        }
    }

    fn start_resolver(
        &mut self,
        id: SandboxId,
        name: String,
        netns: PathBuf,
        ctx: &mut Context<Self>,
    ) {
        let counters = Arc::new(DnsCounters::default());
        // Registered before the sockets exist, so that a report arriving meanwhile does
        // not start a second one; the tasks are added when they run.
        self.resolvers.insert(
            id.clone(),
            Resolver {
                netns: netns.clone(),
                tasks: Vec::new(),
                counters: counters.clone(),
            },
        );
        let config = serve::ResolverConfig {
            sandbox: id.clone(),
            names: self.names.clone(),
            upstream: self.upstream.clone(),
            counters,
        };
        let resolv_conf = self.upstream.resolv_conf.clone();
        ctx.spawn(
            async move {
                if let Err(e) = weft_os::resolver::write_resolv_conf(&netns, &resolv_conf) {
                    warn!(sandbox = %name, error = %e, "cannot write the sandbox's resolv.conf");
                }
                let sockets = weft_os::resolver::bind_resolver(netns).await;
                (sockets, name)
            }
            .into_actor(self)
            .map(move |(sockets, name), act, _| {
                let Some(resolver) = act.resolvers.get_mut(&id) else {
                    return; // the sandbox went meanwhile: the sockets close here
                };
                match sockets.and_then(|(udp, tcp)| serve::spawn(config, udp, tcp)) {
                    Ok(tasks) => {
                        resolver.tasks = tasks;
                        info!(sandbox = %name, "embedded dns listening on 127.0.0.11:53");
                    }
                    Err(e) => warn!(sandbox = %name, error = %e, "cannot start the embedded dns"),
                }
            }),
        );
    }

    fn stop_resolver(&mut self, id: &SandboxId) {
        if let Some(resolver) = self.resolvers.remove(id) {
            if let Err(e) = weft_os::resolver::remove_etc(&resolver.netns) {
                warn!(sandbox = %id.short(), error = %e, "cannot remove the sandbox's resolv.conf");
            }
            debug!(sandbox = %id.short(), "embedded dns stopped");
        }
    }

    /// Another host's entry: added, replaced or removed.
    fn apply_remote(&mut self, event: &TableEvent) {
        let Ok(network) = event.key.network.as_str().parse::<NetworkId>() else {
            self.refused += 1;
            return;
        };
        let key = event.key.key.as_str();
        let Some(value) = &event.value else {
            self.write_names().directory.remove(&network, key);
            return;
        };
        match NameRecord::decode(value) {
            Ok(record) => {
                self.write_names()
                    .directory
                    .insert(&network, key, &event.owner, record);
            }
            Err(e) => {
                self.refused += 1;
                warn!(owner = %event.owner, key, error = %e, "endpoint_table value refused");
            }
        }
    }
}

impl Actor for ServiceLb {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

/// A sandbox's names changed (from the controller).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ReportSandbox(pub SandboxNames);

/// A sandbox is gone (from the controller).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ForgetSandbox(pub SandboxId);

impl Handler<ReportSandbox> for ServiceLb {
    type Result = ();
    fn handle(&mut self, msg: ReportSandbox, ctx: &mut Context<Self>) {
        self.apply_sandbox(msg.0, ctx);
    }
}

impl Handler<ForgetSandbox> for ServiceLb {
    type Result = ();
    fn handle(&mut self, msg: ForgetSandbox, _: &mut Context<Self>) {
        if let Some(before) = self.local.remove(&msg.0) {
            let mut names = self.write_names();
            for (network, endpoint) in before {
                names.directory.remove(&network, endpoint.as_str());
            }
        }
        self.write_names().views.remove(&msg.0);
        self.stop_resolver(&msg.0);
    }
}

impl Handler<TableEvent> for ServiceLb {
    type Result = ();
    fn handle(&mut self, event: TableEvent, _: &mut Context<Self>) {
        // This host's own entries come from the controller, with their sandboxes.
        if *event.owner == *self.node_name {
            return;
        }
        self.apply_remote(&event);
    }
}

/// The naming actor's state, for `weft diag stats`.
#[derive(Debug, Clone, Serialize)]
pub struct NamesState {
    /// Name records known here, in every network.
    pub records: usize,
    /// Remote entries refused as malformed.
    pub refused: u64,
    /// Each resolver's counters, by sandbox id.
    pub resolvers: BTreeMap<String, serve::DnsStats>,
}

/// Asks the naming actor for its state.
#[derive(Message, Debug)]
#[rtype(result = "NamesState")]
pub struct Observe;

impl Handler<Observe> for ServiceLb {
    type Result = MessageResult<Observe>;
    fn handle(&mut self, _: Observe, _: &mut Context<Self>) -> Self::Result {
        let records = self.names.read().map_or(0, |names| names.directory.len());
        MessageResult(NamesState {
            records,
            refused: self.refused,
            resolvers: self
                .resolvers
                .iter()
                .map(|(id, r)| (id.to_string(), r.counters.snapshot()))
                .collect(),
        })
    }
}

/// The controller's [`NamePlane`]: its reports become this actor's messages. One message
/// per controller operation (the controller runs one at a time), each handled in memory.
#[derive(Debug, Clone)]
pub struct AgentNames {
    pub names: Addr<ServiceLb>,
}

impl NamePlane for AgentNames {
    fn sandbox_names(&self, names: SandboxNames) {
        self.names.do_send(ReportSandbox(names));
    }

    fn sandbox_gone(&self, sandbox: &SandboxId) {
        self.names.do_send(ForgetSandbox(sandbox.clone()));
    }
}
