//! Driver events: the gossip-driven half of the driver API (libnetwork's EventNotify and
//! node discovery), and the periodic repair of drivers' kernel state.
//!
//! [`DriverEvents`] (one per host) receives every table event the agent hears from
//! NetworkDB and routes it to the [`NetworkDriver`] actor of its network (one per
//! network), which hands it to the driver. Each network's events are applied in order,
//! one at a time, and one network's slow driver call never delays another's. Events for a
//! network that does not exist here yet are kept, coalesced per key, and delivered first
//! when the network comes up. [`Observe`] answers what is routed, kept and waiting.

use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};
use weft_drivers::{Driver, EventNotify, NodeDiscovery};
use weft_types::{DriverName, NetworkId, NetworkRecord};

/// Events kept per network that does not exist here yet; beyond, the oldest keys win
/// and later ones are dropped with a warning (the repair and the next update catch up).
const MAX_PENDING_PER_NETWORK: usize = 16_384;
/// Networks with pending events; beyond, events of further unknown networks are dropped.
const MAX_PENDING_NETWORKS: usize = 1024;

/// The network exists here: start delivering its events.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct NetworkUp {
    pub network: NetworkRecord,
    pub driver: Arc<dyn Driver>,
}

/// The network is gone from this host.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct NetworkDown {
    pub network: NetworkId,
}

/// A change another node made to a table entry.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Notify(pub EventNotify);

/// A node joined or left.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Discover(pub NodeDiscovery);

/// Counters for diagnostics.
#[derive(Message, Debug)]
#[rtype(result = "EventStats")]
pub struct Stats;

/// Asks the router for a serialisable snapshot of its state (tests, diagnostics).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "DriverEventsState")]
pub struct Observe;

/// What [`Observe`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DriverEventsState {
    /// One per network whose events are delivered here, in network id order.
    pub routes: Vec<RouteState>,
    /// Networks not here yet that events are kept for, in network id order.
    pub pending: Vec<PendingState>,
    /// Drivers whose periodic repair is running.
    pub repairing: Vec<DriverName>,
    /// The counters [`Stats`] answers with.
    pub stats: EventStats,
}

/// One network's route to its driver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteState {
    pub network: NetworkId,
    pub driver: DriverName,
    /// The tables whose events reach the driver ([`Driver::event_tables`]).
    pub tables: Vec<String>,
    /// Events the driver's full mailbox could not take yet, one per key.
    pub waiting: usize,
}

/// Events kept for a network that does not exist here yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingState {
    pub network: NetworkId,
    /// One per (table, key).
    pub events: usize,
}

/// What the router has done.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventStats {
    pub delivered: u64,
    /// Events kept for networks that do not exist here yet.
    pub pending: usize,
    /// Events waiting for a network's driver whose mailbox is full, one per key.
    pub waiting: usize,
    /// Events folded into one waiting for the same key.
    pub coalesced: u64,
    pub dropped: u64,
    pub repairs: u64,
    /// Repair ticks skipped because the driver's previous repair still ran.
    pub repairs_skipped: u64,
}

struct Route {
    driver: DriverName,
    tables: Vec<String>,
    actor: Addr<NetworkDriver>,
    /// Events the actor's full mailbox could not take yet, folded per key (see [`fold`]).
    waiting: BTreeMap<(String, String), EventNotify>,
}

/// How often events waiting for a busy network's driver are offered again.
const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// The router queues at most this many messages.
const ROUTER_MAILBOX: usize = 4096;
/// A network's driver actor queues at most this many events; more wait, folded per key.
const DRIVER_MAILBOX: usize = 4096;

/// Folds `event` into the events kept per (table, key): the first one's previous value
/// with the last one's new value; a create then a delete is nothing. So what is kept is
/// bounded by the keys, not by the rate of changes. True when it was folded into one.
fn fold(kept: &mut BTreeMap<(String, String), EventNotify>, event: EventNotify) -> bool {
    let slot = (event.table.clone(), event.key.clone());
    match kept.remove(&slot) {
        Some(first) => {
            if first.prev != event.value {
                kept.insert(
                    slot,
                    EventNotify {
                        prev: first.prev,
                        ..event
                    },
                );
            }
            true
        }
        None => {
            kept.insert(slot, event);
            false
        }
    }
}

impl Route {
    /// Hands `event` to the network's actor if its mailbox has room and nothing waits
    /// before it; else it waits. Returns whether it was folded into a waiting one.
    fn offer(&mut self, event: EventNotify) -> bool {
        if self.waiting.is_empty() {
            match self.actor.try_send(Notify(event)) {
                Ok(()) => return false,
                Err(SendError::Full(Notify(event))) => return fold(&mut self.waiting, event),
                // The actor stopped: the route goes with NetworkDown.
                Err(SendError::Closed(_)) => return false,
            }
        }
        fold(&mut self.waiting, event)
    }

    /// Offers waiting events until the mailbox is full again.
    fn flush(&mut self) {
        while let Some((slot, event)) = self.waiting.pop_first() {
            match self.actor.try_send(Notify(event)) {
                Ok(()) => {}
                Err(SendError::Full(Notify(event))) => {
                    self.waiting.insert(slot, event);
                    return;
                }
                Err(SendError::Closed(_)) => return,
            }
        }
    }
}

/// Routes table events to per-network driver actors; runs the periodic repair.
pub struct DriverEvents {
    drivers: Vec<Arc<dyn Driver>>,
    routes: HashMap<NetworkId, Route>,
    pending: HashMap<NetworkId, BTreeMap<(String, String), EventNotify>>,
    repair_every: Option<Duration>,
    /// Drivers whose repair is running.
    repairing: BTreeSet<DriverName>,
    stats: EventStats,
}

impl std::fmt::Debug for DriverEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverEvents")
            .field("networks", &self.routes.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl DriverEvents {
    /// A router for `drivers` (node discovery and repair go to every one of them);
    /// `repair_every` is the period of the kernel repair, `None` for never.
    pub fn new(drivers: Vec<Arc<dyn Driver>>, repair_every: Option<Duration>) -> Self {
        DriverEvents {
            drivers,
            routes: HashMap::new(),
            pending: HashMap::new(),
            repair_every,
            repairing: Default::default(),
            stats: EventStats::default(),
        }
    }

    /// The counters, with what is kept and waiting now.
    fn stats(&self) -> EventStats {
        EventStats {
            pending: self.pending.values().map(BTreeMap::len).sum(),
            waiting: self.routes.values().map(|r| r.waiting.len()).sum(),
            ..self.stats.clone()
        }
    }

    fn observe(&self) -> DriverEventsState {
        let mut routes: Vec<RouteState> = self
            .routes
            .iter()
            .map(|(network, route)| RouteState {
                network: network.clone(),
                driver: route.driver.clone(),
                tables: route.tables.clone(),
                waiting: route.waiting.len(),
            })
            .collect();
        routes.sort_by(|a, b| a.network.cmp(&b.network));
        let mut pending: Vec<PendingState> = self
            .pending
            .iter()
            .map(|(network, kept)| PendingState {
                network: network.clone(),
                events: kept.len(),
            })
            .collect();
        pending.sort_by(|a, b| a.network.cmp(&b.network));
        DriverEventsState {
            routes,
            pending,
            repairing: self.repairing.iter().cloned().collect(),
            stats: self.stats(),
        }
    }

    fn deliver(&mut self, event: EventNotify) {
        if let Some(route) = self.routes.get_mut(&event.network) {
            if route.tables.contains(&event.table) {
                self.stats.delivered += 1;
                if route.offer(event) {
                    self.stats.coalesced += 1;
                }
            }
            return;
        }
        if !self.pending.contains_key(&event.network) && self.pending.len() >= MAX_PENDING_NETWORKS
        {
            self.stats.dropped += 1;
            return;
        }
        let kept = self.pending.entry(event.network.clone()).or_default();
        let slot = (event.table.clone(), event.key.clone());
        if !kept.contains_key(&slot) && kept.len() >= MAX_PENDING_PER_NETWORK {
            self.stats.dropped += 1;
            warn!(network = %event.network.short(), "too many events for a network unknown here: dropping");
            return;
        }
        fold(kept, event);
    }
}

impl Actor for DriverEvents {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The cluster watcher waits for room when this is full (back-pressure), so the
        // queue between the two stays bounded.
        ctx.set_mailbox_capacity(ROUTER_MAILBOX);
        ctx.run_interval(FLUSH_EVERY, |act, _| {
            for route in act.routes.values_mut() {
                route.flush();
            }
        });
        if let Some(every) = self.repair_every {
            ctx.run_interval(every, |act, ctx| {
                for driver in act.drivers.clone() {
                    let name = driver.name().clone();
                    // A repair slower than the period would pile up behind itself.
                    if !act.repairing.insert(name.clone()) {
                        act.stats.repairs_skipped += 1;
                        debug!(driver = %name, "previous repair still running: tick skipped");
                        continue;
                    }
                    let fut = async move { (name, driver.repair().await) };
                    ctx.spawn(fut.into_actor(act).map(|(name, result), act, _| {
                        act.repairing.remove(&name);
                        match result {
                            Ok(0) => debug!(driver = %name, "repair found nothing to change"),
                            Ok(n) => {
                                act.stats.repairs += n as u64;
                                info!(driver = %name, repaired = n, "repaired kernel state changed behind the agent's back");
                            }
                            Err(e) => warn!(driver = %name, error = %e, "repair failed"),
                        }
                    }));
                }
            });
        }
    }
}

impl Handler<NetworkUp> for DriverEvents {
    type Result = ();

    fn handle(&mut self, msg: NetworkUp, _: &mut Context<Self>) {
        let id = msg.network.id.clone();
        if self.routes.contains_key(&id) {
            return;
        }
        let tables = msg.driver.event_tables(&msg.network);
        let driver = msg.driver.name().clone();
        let actor = NetworkDriver {
            network: id.clone(),
            driver: msg.driver,
        }
        .start();
        let route = Route {
            driver,
            tables,
            actor,
            waiting: BTreeMap::new(),
        };
        self.routes.insert(id.clone(), route);
        for (_, event) in self.pending.remove(&id).unwrap_or_default() {
            self.deliver(event);
        }
    }
}

impl Handler<NetworkDown> for DriverEvents {
    type Result = ();

    fn handle(&mut self, msg: NetworkDown, _: &mut Context<Self>) {
        // Dropping the last address stops the network's actor once its mailbox is empty.
        self.routes.remove(&msg.network);
        self.pending.remove(&msg.network);
    }
}

impl Handler<Notify> for DriverEvents {
    type Result = ();

    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) {
        self.deliver(msg.0);
    }
}

impl Handler<Discover> for DriverEvents {
    type Result = ();

    fn handle(&mut self, msg: Discover, ctx: &mut Context<Self>) {
        let interested: Vec<Arc<dyn Driver>> = self
            .drivers
            .iter()
            .filter(|d| d.wants_discovery())
            .cloned()
            .collect();
        for driver in interested {
            let event = msg.0.clone();
            ctx.spawn(
                async move {
                    if let Err(e) = driver.discover(&event).await {
                        warn!(driver = %driver.name(), node = %event.node, error = %e, "node discovery failed");
                    }
                }
                .into_actor(self),
            );
        }
    }
}

impl Handler<Stats> for DriverEvents {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<Observe> for DriverEvents {
    type Result = MessageResult<Observe>;

    fn handle(&mut self, _: Observe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.observe())
    }
}

/// One network's driver, receiving that network's events in order.
#[derive(Debug)]
pub struct NetworkDriver {
    network: NetworkId,
    driver: Arc<dyn Driver>,
}

impl Actor for NetworkDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(DRIVER_MAILBOX);
    }
}

impl Handler<Notify> for NetworkDriver {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) -> Self::Result {
        let driver = self.driver.clone();
        let network = self.network.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let event = msg.0;
                match driver.event_notify(&event).await {
                    Ok(()) => debug!(network = %network.short(), table = %event.table, key = %event.key, "applied table event"),
                    Err(e) => warn!(network = %network.short(), table = %event.table, key = %event.key, owner = %event.owner, error = %e, "driver refused a table event"),
                }
            }
            .into_actor(self),
        ))
    }
}
