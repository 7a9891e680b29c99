//! What the cluster looks like from this node: members, the owners and entries of gossip
//! tables, statistics, and Prometheus metrics. Served on the API socket (`weft node`,
//! `weft diag`) and, read-only, on `--diagnostic-addr` (127.0.0.1 by default).

use crate::watcher::{ClusterWatcher, WatcherStats};
use actix::Addr;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use weft_controller::events::DriverEvents;
use weft_controller::{Controller, Observe as ObserveController};
use weft_netdb::{MemberStatus, NetDbState, NetworkDb, Observe, WalkTable};
use weft_types::api::{NodeInfo, TableEntryInfo};
use weft_types::gossip::{NodeRecord, Table};
use weft_types::{Error, ErrorKind, NetworkId};

fn unavailable(e: actix::MailboxError) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("gossip is not running: {e}"),
    )
}

/// This node's view of the gossip state.
async fn gossip_state(netdb: &Addr<NetworkDb>) -> Result<NetDbState, Error> {
    netdb.send(Observe).await.map_err(unavailable)
}

/// What `weft diag stats` shows: the gossip state, and on a manager its RPC port's counters.
#[derive(Debug, Serialize)]
pub struct Stats {
    #[serde(flatten)]
    pub gossip: NetDbState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc: Option<crate::join::RpcPortStats>,
    /// Whether each store can be written, and its write failures.
    pub stores: Vec<crate::stores::StoreStats>,
    /// The driver-event router: delivered, waiting and coalesced events, repairs.
    pub driver_events: weft_controller::events::EventStats,
    /// The embedded DNS: records known here and each resolver's counters; `None` while
    /// its actor is busy.
    pub names: Option<crate::names::NamesState>,
    /// The cluster watcher's counters; `None` while it waits for a busy driver router
    /// longer than [`WATCHER_PATIENCE`].
    pub watcher: Option<WatcherStats>,
}

/// How long `weft diag stats` waits for the cluster watcher, which answers between events.
pub const WATCHER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// The watcher's counters, unless it is busy.
async fn watcher_stats(watcher: &Addr<ClusterWatcher>) -> Option<WatcherStats> {
    let asked = watcher.send(crate::watcher::Observe);
    tokio::time::timeout(WATCHER_PATIENCE, asked)
        .await
        .ok()?
        .ok()
}

/// This node's statistics.
pub async fn stats(
    netdb: &Addr<NetworkDb>,
    events: &Addr<DriverEvents>,
    watcher: &Addr<ClusterWatcher>,
    names: &Addr<crate::names::ServiceLb>,
) -> Result<Stats, Error> {
    let driver_events = events
        .send(weft_controller::events::Stats)
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("driver events: {e}")))?;
    Ok(Stats {
        gossip: gossip_state(netdb).await?,
        rpc: crate::join::rpc_stats(),
        stores: crate::stores::health().await,
        driver_events,
        watcher: watcher_stats(watcher).await,
        names: tokio::time::timeout(WATCHER_PATIENCE, names.send(crate::names::Observe))
            .await
            .ok()
            .and_then(Result::ok),
    })
}

/// Every member, with the record it published.
pub async fn nodes(netdb: &Addr<NetworkDb>) -> Result<Vec<NodeInfo>, Error> {
    let state = gossip_state(netdb).await?;
    let records: BTreeMap<String, NodeRecord> =
        walk(netdb, Table::Nodes.name(), NetworkId::cluster())
            .await?
            .into_iter()
            .filter_map(|(key, owner, value)| Some((owner, NodeRecord::decode(&key, &value).ok()?)))
            .collect();
    Ok(state
        .members
        .iter()
        .map(|m| {
            let record = records.get(&m.node_id);
            NodeInfo {
                id: m.node_id.clone(),
                name: record.map(|r| r.name.clone()),
                address: m.addr.to_string(),
                role: record.map(|r| r.role.clone()),
                status: status_name(m.status).to_owned(),
                generation: m.generation,
                entries: m.entries,
                local: m.node_id == state.node_id,
            }
        })
        .collect())
}

/// The members owning entries of `network` in any table.
pub async fn network_peers(
    netdb: &Addr<NetworkDb>,
    network: NetworkId,
) -> Result<Vec<NodeInfo>, Error> {
    let state = gossip_state(netdb).await?;
    let mut owners = BTreeSet::new();
    for table in state.tables.iter().filter(|t| t.network == network) {
        for (_, owner, _) in walk(netdb, &table.table, network.clone()).await? {
            owners.insert(owner);
        }
    }
    Ok(nodes(netdb)
        .await?
        .into_iter()
        .filter(|n| owners.contains(&n.id))
        .collect())
}

/// The entries of one table of one network, with owners.
pub async fn table(
    netdb: &Addr<NetworkDb>,
    table: &str,
    network: NetworkId,
) -> Result<Vec<TableEntryInfo>, Error> {
    Ok(walk(netdb, table, network)
        .await?
        .into_iter()
        .map(|(key, owner, value)| TableEntryInfo {
            key,
            owner,
            value: decoded(table, &value),
        })
        .collect())
}

/// A value as an operator reads it: decoded where the table is weft's, else its text or hex.
fn decoded(table: &str, value: &[u8]) -> String {
    let json = match Table::from_name(table) {
        Some(Table::Endpoints) => weft_types::gossip::NameRecord::decode(value)
            .ok()
            .and_then(|r| serde_json::to_string(&r).ok()),
        Some(Table::OverlayPeers) => weft_types::gossip::PeerRecord::decode(value).ok().map(|p| {
            format!(
                "{{\"ip\":\"{}\",\"mac\":\"{}\",\"vtep\":\"{}\"}}",
                p.ip, p.mac, p.vtep
            )
        }),
        _ => None,
    };
    json.unwrap_or_else(|| String::from_utf8(value.to_vec()).unwrap_or_else(|_| hex::encode(value)))
}

async fn walk(
    netdb: &Addr<NetworkDb>,
    table: &str,
    network: NetworkId,
) -> Result<Vec<(String, String, Vec<u8>)>, Error> {
    let table = table
        .parse()
        .map_err(|e| Error::invalid(format!("table {table:?}: {e}")))?;
    let entries = netdb
        .send(WalkTable { table, network })
        .await
        .map_err(unavailable)?;
    Ok(entries
        .into_iter()
        .map(|(k, e)| (k.key, e.owner.to_string(), e.value.to_vec()))
        .collect())
}

fn status_name(status: MemberStatus) -> &'static str {
    match status {
        MemberStatus::Alive => "alive",
        MemberStatus::Suspect => "suspect",
        MemberStatus::Dead => "dead",
        MemberStatus::Left => "left",
    }
}

type Labels = Vec<(String, String)>;

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

/// The Prometheus text exposition of this node's gossip and controller state.
/// The actors `/metrics` reads.
#[derive(Debug, Clone, Copy)]
pub struct MetricSources<'a> {
    pub netdb: &'a Addr<NetworkDb>,
    pub controller: &'a Addr<Controller>,
    pub events: &'a Addr<DriverEvents>,
    pub watcher: &'a Addr<ClusterWatcher>,
    pub names: &'a Addr<crate::names::ServiceLb>,
}

pub async fn metrics(sources: MetricSources<'_>) -> Result<String, Error> {
    let MetricSources {
        netdb,
        controller,
        events,
        watcher,
        names,
    } = sources;
    let state = gossip_state(netdb).await?;
    let driver_events = events
        .send(weft_controller::events::Stats)
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("driver events: {e}")))?;
    let objects = controller
        .send(ObserveController {})
        .await
        .map_err(|e| Error::new(ErrorKind::Unavailable, format!("controller: {e}")))??;
    let mut registry = Registry::with_prefix("weft");
    let t = &state.transport;
    let bytes = Family::<Labels, Counter>::default();
    bytes
        .get_or_create(&label("direction", "in"))
        .inc_by(t.bytes_in);
    bytes
        .get_or_create(&label("direction", "out"))
        .inc_by(t.bytes_out);
    registry.register("gossip_bytes", "Gossip bytes sent and received", bytes);
    let datagrams = Family::<Labels, Counter>::default();
    datagrams
        .get_or_create(&label("direction", "in"))
        .inc_by(t.datagrams_in);
    datagrams
        .get_or_create(&label("direction", "out"))
        .inc_by(t.datagrams_out);
    registry.register(
        "gossip_datagrams",
        "Gossip datagrams sent and received",
        datagrams,
    );
    let dropped = Family::<Labels, Counter>::default();
    for (reason, n) in [
        ("truncated", t.dropped_truncated),
        ("oversized", t.dropped_oversized),
        ("bad_version", t.dropped_bad_version),
        ("unknown_key", t.dropped_unknown_key),
        ("authentication", t.dropped_authentication),
        ("malformed", t.dropped_malformed),
    ] {
        dropped.get_or_create(&label("reason", reason)).inc_by(n);
    }
    registry.register(
        "gossip_dropped_datagrams",
        "Received gossip datagrams dropped, by reason",
        dropped,
    );
    let peers = Family::<Labels, Gauge>::default();
    for status in [
        MemberStatus::Alive,
        MemberStatus::Suspect,
        MemberStatus::Dead,
        MemberStatus::Left,
    ] {
        let n = state.members.iter().filter(|m| m.status == status).count();
        peers
            .get_or_create(&label("status", status_name(status)))
            .set(n as i64);
    }
    registry.register(
        "gossip_peers",
        "Cluster members by status, this node included",
        peers,
    );
    let entries = Family::<Labels, Gauge>::default();
    let mut per_table: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &state.tables {
        *per_table.entry(t.table.as_str()).or_default() += t.entries;
    }
    for (table, n) in per_table {
        entries.get_or_create(&label("table", table)).set(n as i64);
    }
    registry.register(
        "gossip_table_entries",
        "Visible entries per gossip table",
        entries,
    );
    let local = Family::<Labels, Gauge>::default();
    local
        .get_or_create(&label("kind", "network"))
        .set(objects.networks.len() as i64);
    local
        .get_or_create(&label("kind", "endpoint"))
        .set(objects.endpoints.len() as i64);
    local
        .get_or_create(&label("kind", "sandbox"))
        .set(objects.sandboxes.len() as i64);
    registry.register(
        "objects",
        "Networks, endpoints and sandboxes on this node",
        local,
    );
    let routed = Family::<Labels, Counter>::default();
    routed
        .get_or_create(&label("outcome", "delivered"))
        .inc_by(driver_events.delivered);
    routed
        .get_or_create(&label("outcome", "dropped"))
        .inc_by(driver_events.dropped);
    routed
        .get_or_create(&label("outcome", "coalesced"))
        .inc_by(driver_events.coalesced);
    registry.register(
        "driver_events",
        "Table events from other nodes handed to drivers, dropped (too many for networks not here), or folded into a later change of the same key while a driver was busy",
        routed,
    );
    let pending = Gauge::<i64>::default();
    pending.set(driver_events.pending as i64);
    registry.register(
        "driver_events_pending",
        "Table events kept for networks that do not exist here yet",
        pending,
    );
    let waiting = Gauge::<i64>::default();
    waiting.set(driver_events.waiting as i64);
    registry.register(
        "driver_events_waiting",
        "Table events waiting for a busy network driver, at most one per key",
        waiting,
    );
    let watchers = Gauge::<i64>::default();
    watchers.set(state.events_waiting as i64);
    registry.register(
        "netdb_events_waiting",
        "NetworkDB changes waiting for watchers whose mailboxes are full, at most one per key",
        watchers,
    );
    let coalesced = Counter::<u64>::default();
    coalesced.inc_by(state.events_coalesced);
    registry.register(
        "netdb_events_coalesced",
        "NetworkDB changes folded into a later change of the same key for a slow watcher",
        coalesced,
    );
    let repairs = Counter::<u64>::default();
    repairs.inc_by(driver_events.repairs);
    registry.register(
        "driver_repairs",
        "Kernel entries drivers put back or removed because they changed behind the agent's back",
        repairs,
    );
    if let Some(w) = watcher_stats(watcher).await {
        register_watcher(&mut registry, &w);
    }
    if let Some(rpc) = crate::join::rpc_stats() {
        register_rpc(&mut registry, &rpc);
    }
    let asked = tokio::time::timeout(WATCHER_PATIENCE, names.send(crate::names::Observe));
    if let Ok(Ok(state)) = asked.await {
        register_names(&mut registry, &state);
    }
    register_stores(&mut registry, &crate::stores::health().await);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .map_err(|e| Error::internal(format!("encoding metrics: {e}")))?;
    Ok(out)
}

fn counter(n: u64) -> Counter {
    let counter = Counter::<u64>::default();
    counter.inc_by(n);
    counter
}

fn counters<'a>(
    key: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default();
    for (value, n) in values {
        family.get_or_create(&label(key, value)).inc_by(n);
    }
    family
}

/// The cluster watcher's counters.
fn register_watcher(registry: &mut Registry, w: &WatcherStats) {
    let outcomes = counters(
        "outcome",
        [
            ("adopted", w.adopted),
            ("forgotten", w.forgotten),
            ("discovered", w.discovered),
            ("notified", w.notified),
            ("ignored", w.ignored),
            ("refused", w.refused),
        ],
    );
    registry.register(
        "watcher_events",
        "NetworkDB events the cluster watcher handled, by what they did",
        outcomes,
    );
    registry.register(
        "watcher_waits",
        "Times the cluster watcher waited for room in the driver-event router (back-pressure)",
        counter(w.waited_for_drivers),
    );
}

/// The embedded DNS, summed over the sandboxes' resolvers, and the load balancers.
fn register_names(registry: &mut Registry, state: &crate::names::NamesState) {
    let sum = |f: fn(&crate::names::DnsStats) -> u64| state.resolvers.values().map(f).sum::<u64>();
    let outcomes = counters(
        "outcome",
        [
            ("local", sum(|d| d.local)),
            ("forwarded", sum(|d| d.forwarded)),
            ("servfail", sum(|d| d.servfail)),
            ("refused", sum(|d| d.refused)),
            ("malformed", sum(|d| d.malformed)),
        ],
    );
    registry.register(
        "dns_answers",
        "Queries to the embedded DNS of every sandbox, by how they were answered",
        outcomes,
    );
    registry.register(
        "dns_queries",
        "Queries received by the embedded DNS of every sandbox",
        counter(sum(|d| d.queries)),
    );
    let records = Gauge::<i64>::default();
    records.set(i64::try_from(state.records).unwrap_or(i64::MAX));
    registry.register("dns_records", "Name records known on this host", records);
    let lb = &state.lb;
    registry.register(
        "lb_programs",
        "Load-balancer transactions applied in sandboxes",
        counter(lb.programs),
    );
    registry.register(
        "lb_program_failures",
        "Load-balancer transactions the kernel refused",
        counter(lb.failures),
    );
    let last = Gauge::<i64>::default();
    last.set(i64::try_from(lb.last_program_us).unwrap_or(i64::MAX));
    registry.register(
        "lb_last_program_microseconds",
        "How long the last load-balancer transaction took",
        last,
    );
}

/// Whether each store can be written, and how many writes failed.
fn register_stores(registry: &mut Registry, stores: &[crate::stores::StoreStats]) {
    let failures = Family::<Labels, Counter>::default();
    let writable = Family::<Labels, Gauge>::default();
    for s in stores {
        let store = label("store", s.store);
        failures.get_or_create(&store).inc_by(s.write_failures);
        writable.get_or_create(&store).set(i64::from(s.writable));
    }
    registry.register(
        "store_write_failures",
        "Store commits that failed on storage or were refused for want of space (a full disk)",
        failures,
    );
    registry.register(
        "store_writable",
        "1 while the store accepts writes, 0 while it cannot be written",
        writable,
    );
}

/// A manager's RPC port: what reached it that it could not use, and the joins it answered.
fn register_rpc(registry: &mut Registry, rpc: &crate::join::RpcPortStats) {
    let s = &rpc.server;
    registry.register(
        "rpc_datagrams",
        "Datagrams received on the RPC port",
        counter(s.datagrams_in),
    );
    registry.register(
        "rpc_junk_datagrams",
        "Datagrams on the RPC port that cannot be QUIC for it (bad version, unknown connection id, too short)",
        counter(s.junk_datagrams),
    );
    registry.register(
        "rpc_handshakes",
        "QUIC handshakes on the RPC port, by outcome",
        counters(
            "outcome",
            [
                ("completed", s.handshakes_completed),
                ("peer_rejected_tls", s.handshake_peer_rejected_tls),
                ("rejected_peer_tls", s.handshake_rejected_peer_tls),
                ("timeout", s.handshake_timeout),
                ("other", s.handshake_other),
            ],
        ),
    );
    registry.register(
        "rpc_refused_connections",
        "RPC connections closed after the handshake: no certificate, or a protocol not served",
        counter(s.connections_refused),
    );
    registry.register(
        "rpc_failed_requests",
        "RPC requests not served, by reason",
        counters(
            "reason",
            [
                ("too_large", s.requests_too_large),
                ("timeout", s.requests_timed_out),
                ("read", s.requests_failed),
            ],
        ),
    );
    registry.register(
        "joins_admitted",
        "Nodes admitted with a join token",
        counter(rpc.joins_admitted),
    );
    registry.register(
        "joins_refused",
        "Join requests refused, by reason",
        counters("reason", rpc.joins_refused.iter().map(|(r, n)| (*r, *n))),
    );
}
