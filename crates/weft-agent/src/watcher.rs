//! The cluster watcher: NetworkDB's events of the cluster tables and the drivers' tables,
//! turned into controller messages and driver events.
//!
//! What an event means is decided by [`crate::change::table_change`]; this actor only
//! carries it out. It handles one event at a time, in order: a definition is adopted before
//! the next event is looked at, and when the driver-event router's mailbox is full the
//! watcher waits for room instead of queueing without bound. While it waits its own mailbox
//! fills, and NetworkDB folds what it holds for it per key (see weft-netdb's outbox), so a
//! slow driver costs memory bounded by the number of keys, never by the rate of changes.

use crate::change::{self, Change, Members, PeerCounts, Presence};
use actix::dev::SendError;
use actix::prelude::*;
use serde::Serialize;
use tracing::{debug, info, warn};
use weft_controller::events::{self, DriverEvents};
use weft_controller::{AdoptNetwork, Controller, ForgetNetwork};
use weft_netdb::{NetworkDb, TableEvent, TableName, Watch};
use weft_types::gossip::Table;

/// The watcher's mailbox: NetworkDB holds what does not fit, folded per key.
const MAILBOX: usize = 4096;

/// What the watcher has done, for `weft diag stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatcherStats {
    /// Events received from NetworkDB.
    pub events: u64,
    /// Definitions adopted (new or republished).
    pub adopted: u64,
    /// Definitions withdrawn by a live manager: networks removed here.
    pub forgotten: u64,
    /// Nodes discovered or lost.
    pub discovered: u64,
    /// Entries of other nodes handed to drivers.
    pub notified: u64,
    /// Events that change nothing (own entries, node updates, absent managers).
    pub ignored: u64,
    /// Values refused as malformed or misplaced.
    pub refused: u64,
    /// Times the driver-event router was full and the watcher waited for room.
    pub waited_for_drivers: u64,
}

/// Asks the watcher for its counters.
#[derive(Message, Debug)]
#[rtype(result = "WatcherStats")]
pub struct Observe;

/// Turns NetworkDB events into controller messages and driver events.
pub struct ClusterWatcher {
    node_name: String,
    /// Tests only (crash-point builds): while this file exists the watcher reads nothing.
    stall: Option<std::path::PathBuf>,
    netdb: Addr<NetworkDb>,
    controller: Addr<Controller>,
    events: Addr<DriverEvents>,
    stats: WatcherStats,
    peers: PeerCounts,
}

impl ClusterWatcher {
    /// Starts the watcher and subscribes it to the cluster's tables and to `tables` (the
    /// tables drivers declared), in every network.
    pub async fn start(
        node_name: String,
        netdb: Addr<NetworkDb>,
        controller: Addr<Controller>,
        events: Addr<DriverEvents>,
        tables: Vec<String>,
    ) -> Result<Addr<ClusterWatcher>, crate::AgentError> {
        let watcher = ClusterWatcher {
            node_name,
            stall: weft_controller::crash::stall_file(weft_controller::crash::STALL_WATCHER),
            netdb: netdb.clone(),
            controller,
            events,
            stats: WatcherStats::default(),
            peers: PeerCounts::default(),
        }
        .start();
        let mut watched: Vec<_> = [Table::Networks, Table::Nodes]
            .into_iter()
            .map(|t| (t.name().to_owned(), t.watched_network()))
            .collect();
        watched.extend(tables.into_iter().map(|t| (t, None)));
        for (table, network) in watched {
            let table = table.parse::<TableName>().map_err(|e| {
                crate::AgentError::Refused(format!("a driver declared table {table:?}: {e}"))
            })?;
            netdb
                .send(Watch {
                    table,
                    network,
                    recipient: watcher.clone().recipient(),
                })
                .await
                .map_err(|source| crate::AgentError::Mailbox {
                    what: "cannot watch the cluster's tables",
                    source,
                })?;
        }
        Ok(watcher)
    }

    fn apply(&mut self, change: Change, event: &TableEvent, ctx: &mut Context<Self>) {
        match change {
            Change::Adopt(record) => {
                self.stats.adopted += 1;
                let controller = self.controller.clone();
                ctx.wait(
                    async move {
                        let name = record.name.clone();
                        match controller.send(AdoptNetwork { record }).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                warn!(network = %name, error = %e, "cannot adopt global network")
                            }
                            Err(e) => warn!(network = %name, error = %e, "controller unreachable"),
                        }
                    }
                    .into_actor(self),
                );
            }
            Change::Forget(network) => {
                self.stats.forgotten += 1;
                self.peers.forget_network(&network);
                let controller = self.controller.clone();
                ctx.wait(
                    async move {
                        let forgotten = controller.send(ForgetNetwork { network: network.clone() }).await;
                        match forgotten {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => warn!(network = %network.short(), error = %e, "cannot remove deleted global network"),
                            Err(e) => warn!(network = %network.short(), error = %e, "controller unreachable"),
                        }
                    }
                    .into_actor(self),
                );
            }
            Change::Discover(discovery) => {
                self.stats.discovered += 1;
                self.hand_to_drivers(events::Discover(discovery), ctx);
            }
            Change::Notify(notify) => {
                self.stats.notified += 1;
                if let Some(presence) = self.peers.apply(&notify) {
                    self.log_presence(presence, ctx);
                }
                self.hand_to_drivers(events::Notify(notify), ctx);
            }
            Change::Ignore(why) if why.is_suspicious() => {
                self.stats.refused += 1;
                warn!(table = %event.key.table.as_str(), key = %event.key.key.as_str(), owner = %event.owner, reason = ?why, "table value ignored");
            }
            Change::Ignore(why) => {
                self.stats.ignored += 1;
                debug!(table = %event.key.table.as_str(), key = %event.key.key.as_str(), owner = %event.owner, reason = ?why, "table event changes nothing here");
            }
        }
    }

    /// One info line when a node's entries in a network appear or all go, with the reason.
    fn log_presence(&self, presence: Presence, ctx: &mut Context<Self>) {
        match presence {
            Presence::Appeared {
                network,
                node,
                again,
            } => {
                let what = if again { "restored" } else { "added" };
                info!(network = %network.short(), %node, "network peers on a node {what}");
            }
            Presence::Gone { network, node } => {
                let netdb = self.netdb.clone();
                // Spawned, not waited for: a log line must not hold up the events.
                ctx.spawn(
                    async move {
                        let state = netdb.send(weft_netdb::Observe).await;
                        let status = state.ok().and_then(|s| s.status_of(&node));
                        let reason = change::gone_reason(status);
                        info!(network = %network.short(), %node, reason, "network peers on a node removed");
                    }
                    .into_actor(self),
                );
            }
        }
    }

    /// Hands `msg` to the driver-event router, waiting for room when its mailbox is full.
    fn hand_to_drivers<M>(&mut self, msg: M, ctx: &mut Context<Self>)
    where
        M: Message<Result = ()> + Send + 'static,
        DriverEvents: Handler<M>,
    {
        match self.events.try_send(msg) {
            Ok(()) => {}
            Err(SendError::Full(msg)) => {
                self.stats.waited_for_drivers += 1;
                let events = self.events.clone();
                ctx.wait(
                    async move {
                        // Closed only while the agent stops.
                        let _ = events.send(msg).await;
                    }
                    .into_actor(self),
                );
            }
            Err(SendError::Closed(_)) => debug!("driver events stopped: event dropped"),
        }
    }
}

impl Actor for ClusterWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl std::fmt::Debug for ClusterWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterWatcher")
            .field("node", &self.node_name)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Handler<TableEvent> for ClusterWatcher {
    type Result = ();

    fn handle(&mut self, event: TableEvent, ctx: &mut Context<Self>) {
        if let Some(file) = self.stall.clone().filter(|f| f.exists()) {
            warn!(file = %file.display(), "cluster watcher stalled by a test while the file exists");
            ctx.wait(
                stall_while(file)
                    .into_actor(self)
                    .map(|(), act, ctx| act.handle(event, ctx)),
            );
            return;
        }
        self.stats.events += 1;
        if !change::needs_members(&event) {
            let change = change::table_change(&event, &self.node_name, &Members::default());
            return self.apply(change, &event, ctx);
        }
        let netdb = self.netdb.clone();
        ctx.wait(
            async move {
                let members = match netdb.send(weft_netdb::Observe).await {
                    Ok(state) => Members::alive(state.alive_members()),
                    Err(_) => Members::default(),
                };
                (event, members)
            }
            .into_actor(self)
            .map(|(event, members), act, ctx| {
                let change = change::table_change(&event, &act.node_name, &members);
                act.apply(change, &event, ctx);
            }),
        );
    }
}

/// Waits while `file` exists, for at most ten minutes.
async fn stall_while(file: std::path::PathBuf) {
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    while file.exists() && tokio::time::Instant::now() < give_up {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl Handler<Observe> for ClusterWatcher {
    type Result = MessageResult<Observe>;

    fn handle(&mut self, _: Observe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}
