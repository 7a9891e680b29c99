//! Helpers for in-process clusters: several NetworkDb actors on 127.0.0.1 UDP in one
//! actix System. Every wait is bounded in time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use weft_keys::{KeyId, Keyring, SymmetricKey};
use weft_netdb::*;
use weft_types::NetworkId;

pub const TABLE: &str = "overlay_peer_table";

/// A loopback port nobody listens on right now.
pub fn free_addr() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

pub fn keyring(id: u32, byte: u8) -> Keyring {
    Keyring::new(SymmetricKey::new(KeyId(id), [byte; 32]))
}

pub fn network() -> NetworkId {
    "cd".repeat(32).parse().unwrap()
}

pub fn key(k: &str) -> TableKey {
    TableKey::new(TABLE, network(), k).unwrap()
}

/// Fast timings for tests: 50 ms gossip, a short window.
pub fn config(node: &str, addr: SocketAddr, seeds: &[SocketAddr], window: Duration) -> NetDbConfig {
    let mut cfg = NetDbConfig::new(node, addr, keyring(1, 7));
    cfg.cluster_id = "test".to_owned();
    cfg.seeds = seeds.iter().map(ToString::to_string).collect();
    cfg.gossip_interval = Duration::from_millis(50);
    cfg.refresh_interval = Duration::from_millis(25);
    cfg.suspicion_window = window;
    cfg.leave_linger = Duration::from_millis(300);
    cfg
}

pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
    pub db: Addr<NetworkDb>,
}

/// Starts `n` nodes, the first being everyone's seed, and waits until all see all.
pub async fn cluster(n: usize, window: Duration) -> Vec<Node> {
    let seed = free_addr();
    let mut nodes = Vec::new();
    for i in 0..n {
        let addr = if i == 0 { seed } else { free_addr() };
        let name = format!("node-{i}");
        let seeds = if i == 0 { vec![] } else { vec![seed] };
        let db = NetworkDb::start(config(&name, addr, &seeds, window))
            .await
            .unwrap();
        nodes.push(Node { name, addr, db });
    }
    for node in &nodes {
        let db = node.db.clone();
        wait_until("all members alive", Duration::from_secs(10), || {
            let db = db.clone();
            async move { alive_count(&db).await == n }
        })
        .await;
    }
    nodes
}

pub async fn observe(db: &Addr<NetworkDb>) -> NetDbState {
    db.send(Observe).await.unwrap()
}

pub async fn alive_count(db: &Addr<NetworkDb>) -> usize {
    observe(db)
        .await
        .members
        .iter()
        .filter(|m| m.status == MemberStatus::Alive)
        .count()
}

pub async fn status_of(db: &Addr<NetworkDb>, node: &str) -> Option<MemberStatus> {
    observe(db)
        .await
        .members
        .iter()
        .find(|m| m.node_id == node)
        .map(|m| m.status)
}

pub async fn get(db: &Addr<NetworkDb>, k: &str) -> Option<Vec<u8>> {
    db.send(GetEntry { key: key(k) })
        .await
        .unwrap()
        .map(|e| e.value.to_vec())
}

/// Polls `cond` every 10 ms until it holds; panics after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until every node in `dbs` reads `want` for key `k`.
pub async fn wait_value(dbs: &[Addr<NetworkDb>], k: &str, want: Option<&[u8]>, timeout: Duration) {
    for db in dbs {
        let db = db.clone();
        let want = want.map(<[u8]>::to_vec);
        wait_until(&format!("{k} = {want:?}"), timeout, || {
            let db = db.clone();
            let want = want.clone();
            async move { get(&db, k).await == want }
        })
        .await;
    }
}

/// An actor that records the events it is sent.
pub struct Collector(pub Arc<Mutex<Vec<TableEvent>>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<TableEvent> for Collector {
    type Result = ();
    fn handle(&mut self, msg: TableEvent, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(msg);
    }
}

/// Starts a collector and watches `TABLE` of every network on `db` with it.
pub async fn watch(db: &Addr<NetworkDb>) -> Arc<Mutex<Vec<TableEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let collector = Collector(events.clone()).start();
    db.send(Watch {
        table: TABLE.parse().unwrap(),
        network: None,
        recipient: collector.recipient(),
    })
    .await
    .unwrap();
    events
}

pub fn events(log: &Arc<Mutex<Vec<TableEvent>>>) -> Vec<TableEvent> {
    log.lock().unwrap().clone()
}

/// Replays events into a map, checking each against what came before: a create of an
/// existing key, or an update/delete whose `prev` differs from the held value, is a gap
/// or a duplicate.
pub fn replay(events: &[TableEvent]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut map = std::collections::BTreeMap::new();
    for e in events {
        let held = map.get(&e.key.key).cloned();
        assert_eq!(
            held,
            e.prev.as_ref().map(|v| v.to_vec()),
            "event {e:?} does not follow"
        );
        match &e.value {
            Some(v) => map.insert(e.key.key.clone(), v.to_vec()),
            None => map.remove(&e.key.key),
        };
    }
    map
}
