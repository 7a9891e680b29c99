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

mod lb;
mod observe;
mod plane;
mod serve;

use actix::prelude::*;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use weft_controller::names::SandboxNames;
use weft_netdb::{NetworkDb, TableEvent, TableName, Watch};
use weft_os::Kernel;
use weft_services::{Directory, NetworkView, SandboxView};
use weft_types::gossip::{NameRecord, Table};
use weft_types::{EndpointId, NetworkId, SandboxId};

pub use lb::LbStats;
pub use observe::{Backends, NamesState, Observe};
pub use plane::{AgentNames, LocalServices};
pub use serve::{DnsCounters, DnsStats};

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
    netdb: Addr<NetworkDb>,
    kernel: Arc<dyn Kernel>,
    names: SharedNames,
    upstream: Arc<Upstream>,
    resolvers: HashMap<SandboxId, Resolver>,
    /// Records each local sandbox put in the directory, to take out what it no longer has.
    local: HashMap<SandboxId, Vec<(NetworkId, EndpointId)>>,
    /// Remote entries refused as malformed.
    refused: u64,
    /// The load balancers of this host's sandboxes.
    lb: lb::Balancers,
    /// Data-path addresses of the cluster's nodes, from the `nodes` table.
    node_addrs: HashMap<String, IpAddr>,
    /// What the host probes should cover for us; `None` when they could not start.
    probed: Option<tokio::sync::watch::Sender<crate::hosts::Wanted>>,
    /// Remote records deleted, removed when their grace ends unless they come back.
    removals: HashMap<(NetworkId, String), SpawnHandle>,
    /// The names of this host's local services, as last reported.
    local_services: Vec<String>,
}

/// How long a remote record deleted from NetworkDB keeps answering: about two gossip
/// rounds, for a restarted agent to publish it again.
const REMOVAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

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
        kernel: Arc<dyn Kernel>,
        upstream: Upstream,
    ) -> Result<Addr<ServiceLb>, crate::AgentError> {
        let actor = ServiceLb {
            node_name,
            netdb: netdb.clone(),
            kernel,
            names: SharedNames::default(),
            upstream: Arc::new(upstream),
            resolvers: HashMap::new(),
            local: HashMap::new(),
            refused: 0,
            lb: lb::Balancers::default(),
            node_addrs: HashMap::new(),
            probed: None,
            removals: HashMap::new(),
            local_services: Vec::new(),
        }
        .start();
        for table in [Table::Endpoints, Table::Services, Table::Nodes] {
            let name = table
                .name()
                .parse::<TableName>()
                .map_err(|e| crate::AgentError::Refused(format!("table name {table}: {e}")))?;
            netdb
                .send(Watch {
                    table: name,
                    network: table.watched_network(),
                    recipient: actor.clone().recipient(),
                })
                .await
                .map_err(|source| crate::AgentError::Mailbox {
                    what: "cannot watch the service tables",
                    source,
                })?;
        }
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
            self.lb.forget(&id);
        } else {
            self.lb.track(id.clone(), report.ns_name.clone());
            if !self.resolvers.contains_key(&id) {
                self.start_resolver(id, report.name.to_string(), report.netns, ctx);
            }
        }
        self.lb_changed(ctx);
    }

    /// Something the load balancers depend on changed: program them soon, in one batch.
    fn lb_changed(&mut self, ctx: &mut Context<Self>) {
        if self.lb.mark_all_dirty() {
            ctx.run_later(lb::BATCH, |act, ctx| act.program_lbs(ctx));
        }
    }

    /// Programs every sandbox whose desired rules differ from what it has.
    fn program_lbs(&mut self, ctx: &mut Context<Self>) {
        let desired = {
            let names = self.names.read().unwrap_or_else(|p| p.into_inner());
            self.lb.desired(&names)
        };
        for job in self.lb.start_jobs(desired) {
            let kernel = self.kernel.clone();
            ctx.spawn(
                async move {
                    let started = std::time::Instant::now();
                    let result = job.apply(kernel.as_ref()).await;
                    (job, result, started.elapsed())
                }
                .into_actor(self)
                .map(|(job, result, took), act, ctx| {
                    if let Err(e) = &result {
                        warn!(sandbox = %job.sandbox.short(), error = %e, "cannot program the sandbox's load balancer");
                    }
                    if let Some(after) = act.lb.finish(job, result.is_ok(), took) {
                        ctx.run_later(after, |act, ctx| act.program_lbs(ctx));
                    }
                }),
            );
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

    /// A service's definition from a manager: learnt, replaced, or removed. A definition
    /// that vanishes because its manager died or left is kept (as network definitions
    /// are): only a live manager's delete removes it.
    fn apply_definition(&mut self, event: TableEvent, ctx: &mut Context<Self>) {
        let name = event.key.key.as_str().to_owned();
        if let Some(value) = &event.value {
            match weft_types::gossip::decode_service(&name, value) {
                Ok(record) => {
                    self.write_names().directory.define_service(record);
                    self.lb_changed(ctx);
                }
                Err(e) => {
                    self.refused += 1;
                    warn!(owner = %event.owner, service = %name, error = %e, "service definition refused");
                }
            }
            return;
        }
        let netdb = self.netdb.clone();
        let owner = event.owner.clone();
        ctx.spawn(
            async move {
                let state = netdb.send(weft_netdb::Observe).await.ok();
                state.and_then(|s| s.status_of(&owner)) == Some(weft_netdb::MemberStatus::Alive)
            }
            .into_actor(self)
            .map(move |alive, act, ctx| {
                if alive {
                    act.write_names().directory.undefine_service(&name);
                    act.lb_changed(ctx);
                }
            }),
        );
    }

    /// A node's record: where its data path is, to probe its host.
    fn apply_node(&mut self, event: &TableEvent) {
        let node = event.key.key.as_str();
        let addr = event.value.as_ref().and_then(|v| {
            weft_types::gossip::NodeRecord::decode(node, v)
                .ok()
                .and_then(|r| r.data_addr)
        });
        match addr {
            Some(addr) => self.node_addrs.insert(node.to_owned(), addr),
            None => self.node_addrs.remove(node),
        };
        self.update_probes();
    }

    /// Probes the hosts of the nodes that own records here.
    fn update_probes(&mut self) {
        let Some(probed) = &self.probed else { return };
        let owners = self
            .names
            .read()
            .map(|n| n.directory.owners_except(&self.node_name))
            .unwrap_or_default();
        let wanted = crate::hosts::Wanted {
            owners,
            addrs: self.node_addrs.clone(),
        };
        probed.send_if_modified(|current| {
            let changed = *current != wanted;
            if changed {
                *current = wanted;
            }
            changed
        });
    }

    /// Another host's entry: added, replaced or removed.
    fn apply_remote(&mut self, event: &TableEvent, ctx: &mut Context<Self>) {
        let Ok(network) = event.key.network.as_str().parse::<NetworkId>() else {
            self.refused += 1;
            return;
        };
        let key = event.key.key.as_str();
        let pending = (network.clone(), key.to_owned());
        if let Some(handle) = self.removals.remove(&pending) {
            ctx.cancel_future(handle);
        }
        let Some(value) = &event.value else {
            // A restarted agent's entries vanish with its old generation and come back
            // with the new one a round later: a short grace avoids a gap in answers. A
            // backend that leaves on purpose drained (disabled) before this.
            let handle = ctx.run_later(REMOVAL_GRACE, move |act, ctx| {
                act.removals.remove(&pending);
                act.write_names().directory.remove(&pending.0, &pending.1);
                act.update_probes();
                act.lb_changed(ctx);
            });
            self.removals.insert((network, key.to_owned()), handle);
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
        self.probed = crate::hosts::spawn(
            self.netdb.clone(),
            self.node_name.clone(),
            ctx.address().recipient(),
        );
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
    fn handle(&mut self, msg: ForgetSandbox, _ctx: &mut Context<Self>) {
        if let Some(before) = self.local.remove(&msg.0) {
            let mut names = self.write_names();
            for (network, endpoint) in before {
                names.directory.remove(&network, endpoint.as_str());
            }
        }
        self.write_names().views.remove(&msg.0);
        self.stop_resolver(&msg.0);
        // The namespace goes with the sandbox, and its rules with it.
        self.lb.forget(&msg.0);
    }
}

impl Handler<TableEvent> for ServiceLb {
    type Result = ();
    fn handle(&mut self, event: TableEvent, ctx: &mut Context<Self>) {
        if event.key.table.as_str() == Table::Services.name() {
            return self.apply_definition(event, ctx);
        }
        if event.key.table.as_str() == Table::Nodes.name() {
            return self.apply_node(&event);
        }
        // This host's own entries come from the controller, with their sandboxes.
        if *event.owner == *self.node_name {
            return;
        }
        self.apply_remote(&event, ctx);
        // The probed owners change only with an owner not probed yet: a delete takes its
        // record out after the grace, and that path updates them itself. Walking every
        // record on every event would cost O(records) per gossip change.
        let probed = self
            .probed
            .as_ref()
            .is_some_and(|p| p.borrow().owners.contains(&*event.owner));
        if event.value.is_some() && !probed {
            self.update_probes();
        }
        self.lb_changed(ctx);
    }
}

impl Handler<crate::hosts::HostLiveness> for ServiceLb {
    type Result = ();
    fn handle(&mut self, msg: crate::hosts::HostLiveness, ctx: &mut Context<Self>) {
        use weft_netdb::hosts::Transition;
        let (node, lost) = match msg.0 {
            Transition::Lost(node) => (node, true),
            Transition::Found(node) => (node, false),
        };
        if self.write_names().directory.set_host_lost(&node, lost) {
            if lost {
                info!(%node, "host lost (its data-path address stopped answering): its backends leave dns and load balancing");
            } else {
                info!(%node, "host answers again: its backends are back in dns and load balancing");
            }
            self.lb_changed(ctx);
        }
    }
}
