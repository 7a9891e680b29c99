//! The NetworkDb actor: owns the chitchat handle, the materialised view and the watchers.
//!
//! Every `refresh_interval` (and after every local write, and soon after gossip brought a
//! change) it reads chitchat's node states, applies the key-values whose version moved to
//! its parsed copy of each node, updates the view with [`crate::view`] and sends the
//! changes to watchers. Being one actor, a watch registers between two refreshes:
//! its snapshot is exactly the view the next diff starts from, so there is no gap and no
//! duplicate.

mod handlers;
pub mod messages;
mod outbox;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chitchat::{
    Chitchat, ChitchatHandle, ChitchatId, KeyChangeEvent, ListenerHandle, NodeState, spawn_chitchat,
};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::{info, warn};
use weft_keys::Keyring;

use crate::config::NetDbConfig;
use crate::error::NetDbError;
use crate::membership::{LivenessTracker, Member, MemberStatus, member_status, status_changes};
use crate::schema::{self, KEYS_KEY, MARKER_VALUE, READY_KEY};
use crate::seal::TransportStats;
use crate::transport::{Isolation, SealedTransport, SharedKeyring};
use crate::view::{self, Change, EntryChange, NodeContent, NodeInput, Tables};
use messages::{TableEvent, WatchId};
use outbox::Outbox;

struct Watcher {
    id: WatchId,
    table: schema::TableName,
    network: Option<weft_types::NetworkId>,
    recipient: Recipient<TableEvent>,
    /// Changes its full mailbox could not take yet.
    outbox: Outbox,
    /// Its mailbox is closed: dropped at the next dispatch.
    closed: bool,
}

/// How often changes waiting for slow watchers are offered again.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(5);
/// How long this node's own writes are gathered before they are pushed to peers.
const PUSH_DELAY: std::time::Duration = std::time::Duration::from_millis(1);
/// How many live peers a push goes to at most (in turn, when there are more): the rest
/// hear of the write from them or from the next gossip rounds.
const PUSH_FANOUT: usize = 16;
/// How long after gossip brought another node's change the view is refreshed: soon, yet
/// at most about once per this interval while changes stream in. A refresh costs what
/// changed (it cost O(entries) when this was 10 ms).
const NUDGE_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

/// Gossip brought a change of another node's entries (chitchat's key-change listener).
#[derive(Message)]
#[rtype(result = "()")]
struct Nudge;

/// What delivering to watchers did, for diagnostics.
#[derive(Debug, Default, Clone, Copy)]
struct Delivery {
    sent: u64,
    coalesced: u64,
}

impl Watcher {
    /// Gives `change` to the watcher now if its mailbox has room and nothing waits before
    /// it, else keeps it in the outbox.
    fn offer(&mut self, change: Change, snapshot: bool, delivery: &mut Delivery) {
        if self.closed {
            return;
        }
        if self.outbox.is_empty() {
            match self.recipient.try_send(event(self.id, &change, snapshot)) {
                Ok(()) => {
                    delivery.sent += 1;
                    return;
                }
                Err(SendError::Full(_)) => {}
                Err(SendError::Closed(_)) => {
                    self.closed = true;
                    return;
                }
            }
        }
        if self.outbox.push(change, snapshot) {
            delivery.coalesced += 1;
        }
    }

    /// Offers waiting changes until the mailbox is full again.
    fn flush(&mut self, delivery: &mut Delivery) {
        while let Some(pending) = self.outbox.next() {
            match self
                .recipient
                .try_send(event(self.id, &pending.change, pending.snapshot))
            {
                Ok(()) => {
                    delivery.sent += 1;
                    self.outbox.delivered();
                }
                Err(SendError::Full(_)) => return,
                Err(SendError::Closed(_)) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }
}

/// One generation's key-values as last parsed.
#[derive(Debug, Default)]
struct Parsed {
    /// chitchat's max version and last GC version of the node state when parsed.
    version: u64,
    gc_version: u64,
    content: NodeContent,
}

/// Brings one generation's parsed content up to date with its gossip state and returns
/// the changes of its entries: only the key-values whose version moved are parsed.
fn sync(parsed: &mut Parsed, state: &NodeState) -> Vec<EntryChange> {
    let (version, gc_version) = (state.max_version(), state.last_gc_version());
    if (version, gc_version) == (parsed.version, parsed.gc_version) {
        return Vec::new();
    }
    let changes = if gc_version > parsed.version || version < parsed.version {
        // Tombstones newer than the last parse may be gone (collected, or the state was
        // reset by a peer): a deletion could be missed, so parse it all again.
        let fresh = view::parse_node(state.key_values());
        let changes = view::entry_changes(&parsed.content, &fresh);
        parsed.content = fresh;
        changes
    } else {
        let since = parsed.version;
        let content = &mut parsed.content;
        state
            .key_values_including_deleted()
            .filter(|(_, v)| v.version > since)
            .filter_map(|(key, v)| {
                content.apply(key, (!v.is_deleted()).then_some(v.value.as_str()))
            })
            .collect()
    };
    parsed.version = version;
    parsed.gc_version = gc_version;
    changes
}

/// The per-host NetworkDB actor.
pub struct NetworkDb {
    config: NetDbConfig,
    self_id: ChitchatId,
    handle: Option<ChitchatHandle>,
    chitchat: Arc<Mutex<Chitchat>>,
    keyring: SharedKeyring,
    stats: Arc<TransportStats>,
    isolation: Arc<Isolation>,
    parsed: HashMap<ChitchatId, Parsed>,
    tracker: LivenessTracker,
    /// When each node's host last answered a probe (see [`messages::HostAnswered`]).
    host_seen: HashMap<String, Instant>,
    /// Generations chitchat forgot (its dead-node GC) whose host still answers: their
    /// entries stay, from their last parsed content.
    kept: HashSet<ChitchatId>,
    /// The member list for those who follow it (the host prober).
    members_tx: tokio::sync::watch::Sender<Vec<Member>>,
    tables: Tables,
    /// The generation whose entries the tables show, per node id.
    shown: BTreeMap<Arc<str>, ChitchatId>,
    members: Vec<Member>,
    watchers: Vec<Watcher>,
    next_watch: u64,
    leaving: bool,
    delivery: Delivery,
    /// Where the next push goes (the live peers when the last write landed).
    push_to: Vec<std::net::SocketAddr>,
    push_scheduled: bool,
    /// Rotates the peers a push starts with, when there are more than [`PUSH_FANOUT`].
    push_round: usize,
    /// Set by the key-change listener until the [`Nudge`] it sent is handled.
    nudged: Arc<AtomicBool>,
    /// Keeps chitchat's key-change listener registered.
    listener: Option<ListenerHandle>,
}

impl std::fmt::Debug for NetworkDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkDb")
            .field("self_id", &self.self_id)
            .field("entries", &self.tables.view().len())
            .field("watchers", &self.watchers.len())
            .finish_non_exhaustive()
    }
}

fn initial_key_values(config: &NetDbConfig) -> Result<Vec<(String, String)>, NetDbError> {
    let mut kvs = Vec::with_capacity(config.initial_entries.len() + 2);
    for (key, value) in &config.initial_entries {
        kvs.push((key.gossip_key(), schema::encode_value(key, value)?));
    }
    let ring = &config.keyring;
    kvs.push((
        KEYS_KEY.to_owned(),
        schema::encode_key_ids(&ring.ids(), ring.primary_id()),
    ));
    // Last, so it has the highest version: chitchat sends a node's keys in version order,
    // so a peer that sees `m:ready` holds every initial entry.
    if !config.defer_ready {
        kvs.push((READY_KEY.to_owned(), MARKER_VALUE.to_owned()));
    }
    Ok(kvs)
}

impl NetworkDb {
    /// Binds the sealed gossip socket, joins through the seeds and starts the actor.
    /// Call it inside an actix `System`.
    pub async fn start(config: NetDbConfig) -> Result<Addr<NetworkDb>, NetDbError> {
        schema::validate_node_id(&config.node_id)?;
        let kvs = initial_key_values(&config)?;
        let keyring: SharedKeyring = Arc::new(std::sync::RwLock::new(config.keyring.clone()));
        let stats = Arc::new(TransportStats::default());
        let isolation = Arc::new(Isolation::default());
        let transport = SealedTransport::new(keyring.clone(), stats.clone(), isolation.clone());
        let handle = spawn_chitchat(config.chitchat_config(), kvs, &transport)
            .await
            .map_err(|err| NetDbError::Start {
                addr: config.listen_addr,
                reason: format!("{err:#}"),
            })?;
        info!(node_id = %config.node_id, generation = config.generation, addr = %config.listen_addr, "networkdb started");
        let db = NetworkDb {
            self_id: handle.chitchat_id().clone(),
            chitchat: handle.chitchat(),
            handle: Some(handle),
            config,
            keyring,
            stats,
            isolation,
            parsed: HashMap::new(),
            tracker: LivenessTracker::default(),
            host_seen: HashMap::new(),
            kept: HashSet::new(),
            members_tx: tokio::sync::watch::Sender::new(Vec::new()),
            tables: Tables::default(),
            shown: BTreeMap::new(),
            members: Vec::new(),
            watchers: Vec::new(),
            next_watch: 0,
            leaving: false,
            delivery: Delivery::default(),
            push_to: Vec::new(),
            push_scheduled: false,
            push_round: 0,
            nudged: Arc::new(AtomicBool::new(false)),
            listener: None,
        };
        Ok(db.start())
    }

    /// Runs `f` with chitchat locked, atomically with respect to other messages.
    fn locked<R: 'static>(
        &self,
        f: impl FnOnce(&mut Self, &mut Chitchat) -> R + 'static,
    ) -> AtomicResponse<Self, R> {
        self.locked_in(move |act, cc, _| f(act, cc))
    }

    /// [`Self::locked`], with the actor's context.
    fn locked_in<R: 'static>(
        &self,
        f: impl FnOnce(&mut Self, &mut Chitchat, &mut Context<Self>) -> R + 'static,
    ) -> AtomicResponse<Self, R> {
        let chitchat = self.chitchat.clone();
        AtomicResponse::new(Box::pin(
            async move { chitchat.lock_owned().await }
                .into_actor(self)
                .map(move |mut guard: OwnedMutexGuard<Chitchat>, act, ctx| f(act, &mut guard, ctx)),
        ))
    }

    /// Like [`Self::locked`], for a write of this node's own entries: once it succeeds,
    /// the live peers get it at once (a gossip handshake started from here carries it in
    /// its last leg) instead of at their next gossip round with this node, which at the
    /// default 200 ms interval made a new sandbox reachable from another host only ~150 ms
    /// after its join. Gossip stays the reliable path: a lost push changes nothing.
    fn locked_write(
        &self,
        f: impl FnOnce(&mut Self, &mut Chitchat) -> Result<(), NetDbError> + 'static,
    ) -> AtomicResponse<Self, Result<(), NetDbError>> {
        self.locked_in(move |act, cc, ctx| {
            let result = f(act, cc);
            if result.is_ok() {
                act.push_soon(cc, ctx);
            }
            result
        })
    }

    /// Schedules a push of this node's state to its live peers; writes within
    /// [`PUSH_DELAY`] share one.
    fn push_soon(&mut self, cc: &Chitchat, ctx: &mut Context<Self>) {
        self.push_to = cc
            .live_nodes()
            .filter(|id| **id != self.self_id)
            .map(|id| id.gossip_advertise_addr)
            .collect();
        if std::mem::replace(&mut self.push_scheduled, true) {
            return;
        }
        ctx.run_later(PUSH_DELAY, |act, _| act.push());
    }

    fn push(&mut self) {
        self.push_scheduled = false;
        let (Some(handle), n) = (&self.handle, self.push_to.len()) else {
            return;
        };
        if n == 0 {
            return;
        }
        let first = self.push_round % n;
        self.push_round = self.push_round.wrapping_add(PUSH_FANOUT);
        for peer in self
            .push_to
            .iter()
            .cycle()
            .skip(first)
            .take(n.min(PUSH_FANOUT))
        {
            // Fails only when chitchat is shutting down; then there is nothing to push.
            let _ = handle.gossip(*peer);
        }
    }

    /// Brings the view up to date with chitchat's state and sends the changes to
    /// watchers. The work follows what moved: the key-values of a node whose version
    /// moved, and all the entries of a node shown or hidden.
    fn refresh(&mut self, chitchat: &Chitchat, now: Instant) {
        let states = chitchat.node_states();
        self.keep_forgotten(states, now);
        let mut batch = self.tables.batch();
        for (id, state) in states {
            if !self.parsed.contains_key(id) {
                self.parsed.insert(id.clone(), Parsed::default());
            }
            let Some(parsed) = self.parsed.get_mut(id) else {
                continue;
            };
            let changes = sync(parsed, state);
            if self.shown.get(&id.node_id) == Some(id) {
                for (key, value) in &changes {
                    batch.put(key, &id.node_id, value.as_ref());
                }
            }
        }
        let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
        let mut nodes = Vec::new();
        for id in states.keys().chain(&self.kept) {
            let Some(parsed) = self.parsed.get(id) else {
                continue;
            };
            let seen = self.host_seen.get(&*id.node_id).copied();
            nodes.push(NodeInput {
                id,
                liveness: self.tracker.observe(id, live.contains(id), seen, now),
                content: &parsed.content,
            });
        }
        let (members, shown) = view::membership(&nodes, self.config.suspicion_window);
        for (node, id) in &self.shown {
            if shown.get(node) != Some(id)
                && let Some(parsed) = self.parsed.get(id)
            {
                batch.hide(node, &parsed.content);
            }
        }
        for (node, id) in &shown {
            if self.shown.get(node) != Some(id)
                && let Some(parsed) = self.parsed.get(id)
            {
                batch.show(node, &parsed.content);
            }
        }
        let changes = batch.finish();
        drop(nodes);
        self.shown = shown;
        let kept = &self.kept;
        let known = |id: &ChitchatId| states.contains_key(id) || kept.contains(id);
        self.tracker.retain(known);
        self.parsed.retain(|id, _| known(id));
        let node_ids: HashSet<&str> = self.parsed.keys().map(|id| &*id.node_id).collect();
        self.host_seen
            .retain(|node, _| node_ids.contains(node.as_str()));
        for moved in status_changes(&self.members, &members, &self.self_id.node_id) {
            info!(
                node = %moved.node_id,
                generation = moved.generation,
                from = ?moved.from,
                to = ?moved.to,
                "node {}: {}",
                moved.node_id,
                moved.reason()
            );
        }
        self.members_tx.send_if_modified(|current| {
            let moved = *current != members;
            if moved {
                current.clone_from(&members);
            }
            moved
        });
        self.members = members;
        self.dispatch(changes);
    }

    /// chitchat forgets a dead generation's state after its grace period. One whose host
    /// still answers probes is still suspect (its sandboxes run), so its last content is
    /// kept here until its host goes silent for the window, or a newer generation of the
    /// node shows up.
    fn keep_forgotten(&mut self, states: &BTreeMap<ChitchatId, NodeState>, now: Instant) {
        let window = self.config.suspicion_window;
        for (id, parsed) in &self.parsed {
            if states.contains_key(id) || self.kept.contains(id) {
                continue;
            }
            let seen = self.host_seen.get(&*id.node_id).copied();
            let liveness = self.tracker.observe(id, false, seen, now);
            if member_status(liveness, parsed.content.leaving, window) == MemberStatus::Suspect {
                info!(node = %id.node_id, generation = id.generation_id, "gossip forgot a silent node whose host still answers: its entries are kept");
                self.kept.insert(id.clone());
            }
        }
        let (tracker, host_seen, parsed) = (&mut self.tracker, &self.host_seen, &self.parsed);
        self.kept.retain(|id| {
            let newer = states.keys().any(|s| s.node_id == id.node_id);
            let seen = host_seen.get(&*id.node_id).copied();
            let leaving = parsed.get(id).is_some_and(|p| p.content.leaving);
            let status = member_status(tracker.observe(id, false, seen, now), leaving, window);
            !newer && status == MemberStatus::Suspect
        });
    }

    fn dispatch(&mut self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        self.watchers
            .retain(|w| !w.closed && w.recipient.connected());
        for change in changes {
            for w in &mut self.watchers {
                if change.key.matches(&w.table, w.network.as_ref()) {
                    w.offer(change.clone(), false, &mut self.delivery);
                }
            }
        }
    }

    /// Offers slow watchers what waits for them.
    fn flush_watchers(&mut self) {
        for w in &mut self.watchers {
            w.flush(&mut self.delivery);
        }
    }

    fn publish_keys(&self, chitchat: &mut Chitchat, ring: &Keyring) {
        chitchat.self_node_state().set(
            KEYS_KEY,
            schema::encode_key_ids(&ring.ids(), ring.primary_id()),
        );
    }

    fn schedule_refresh(&mut self, ctx: &mut Context<Self>) {
        let chitchat = self.chitchat.clone();
        ctx.wait(
            async move { chitchat.lock_owned().await }
                .into_actor(self)
                .map(|guard, act, _| act.refresh(&guard, Instant::now())),
        );
    }

    /// Registers a key-change listener that nudges this actor when gossip brings another
    /// node's new or changed entry, so watchers see it within [`NUDGE_DELAY`] instead of
    /// at the next periodic refresh (deletions, which chitchat does not report, wait for
    /// that one).
    fn listen(&mut self, ctx: &mut Context<Self>) {
        let chitchat = self.chitchat.clone();
        let (addr, nudged, me) = (ctx.address(), self.nudged.clone(), self.self_id.clone());
        let callback = move |event: KeyChangeEvent| {
            if *event.node != me && !nudged.swap(true, Ordering::AcqRel) {
                addr.do_send(Nudge);
            }
        };
        ctx.wait(
            async move { chitchat.lock_owned().await }
                .into_actor(self)
                .map(move |guard, act, _| {
                    act.listener = Some(guard.subscribe_event("", callback));
                }),
        );
    }

    fn stop_gossip(&mut self) {
        if let Some(handle) = self.handle.take() {
            if handle.initiate_shutdown().is_err() {
                warn!(node_id = %self.self_id.node_id, "gossip server already stopped");
            }
            handle.abort();
        }
    }
}

/// The event one change makes for one watcher.
fn event(watch: WatchId, change: &Change, snapshot: bool) -> TableEvent {
    let owner = change
        .next
        .as_ref()
        .or(change.prev.as_ref())
        .map(|e| e.owner.clone())
        .unwrap_or_else(|| Arc::from(""));
    TableEvent {
        watch,
        key: change.key.clone(),
        owner,
        prev: change.prev.as_ref().map(|e| e.value.clone()),
        value: change.next.as_ref().map(|e| e.value.clone()),
        snapshot,
    }
}

impl Handler<Nudge> for NetworkDb {
    type Result = ();
    fn handle(&mut self, _: Nudge, ctx: &mut Context<Self>) {
        ctx.run_later(NUDGE_DELAY, |act, ctx| {
            // Cleared first: a change that lands during the rebuild nudges again.
            act.nudged.store(false, Ordering::Release);
            act.schedule_refresh(ctx);
        });
    }
}

impl Actor for NetworkDb {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.schedule_refresh(ctx);
        ctx.run_interval(self.config.refresh_interval, |act, ctx| {
            act.schedule_refresh(ctx)
        });
        ctx.run_interval(FLUSH_EVERY, |act, _| act.flush_watchers());
        self.listen(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.stop_gossip();
        info!(node_id = %self.self_id.node_id, "networkdb stopped");
    }
}
