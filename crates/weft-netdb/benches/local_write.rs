//! NetworkDB local-write benchmark: what one write of a node's own entry costs on that
//! node, and how long until its own watcher has the event, as the tables grow.
//!
//! Two NetworkDb nodes on 127.0.0.1 UDP with production timings. For each size N, node A
//! starts with N entries of its own (as a manager holding N service definitions does) and
//! node B with N entries (what gossip brings from elsewhere). Then, one at a time, A
//! creates, updates and deletes a probe entry; each operation is timed from the request
//! to A's reply and to the event at A's watcher, and (for the create) to the event at B's.
//! Medians and p99 over WEFT_BENCH_WRITES [100] rounds; sizes WEFT_BENCH_SIZES
//! [10,5000,50000]. Every wait is bounded.
//!
//! Run: `cargo bench -p weft-netdb --bench local_write`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use common::{free_addr, network};
use weft_keys::{KeyId, Keyring, SymmetricKey};
use weft_netdb::*;

const TABLE: &str = "endpoint_table";

/// The instants at which a watcher saw (non-snapshot) events for the probe key.
type Seen = Arc<Mutex<Vec<Instant>>>;

struct Stamp(Seen);

impl Actor for Stamp {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        // Room for the watch's whole snapshot, as the agent's watchers have.
        ctx.set_mailbox_capacity(1 << 17);
    }
}

impl Handler<TableEvent> for Stamp {
    type Result = ();
    fn handle(&mut self, msg: TableEvent, _: &mut Context<Self>) {
        if !msg.snapshot && msg.key.key == "probe" {
            self.0.lock().unwrap().push(Instant::now());
        }
    }
}

fn key(k: &str) -> TableKey {
    TableKey::new(TABLE, network(), k).unwrap()
}

fn config(node: &str, addr: SocketAddr, seeds: &[SocketAddr], entries: usize) -> NetDbConfig {
    let ring = Keyring::new(SymmetricKey::new(KeyId(1), [7; 32]));
    let mut cfg = NetDbConfig::new(node, addr, ring);
    cfg.cluster_id = "bench".to_owned();
    cfg.seeds = seeds.iter().map(ToString::to_string).collect();
    cfg.initial_entries = (0..entries)
        .map(|i| (key(&format!("{node}-{i:06}")), vec![0x5a; 200]))
        .collect();
    cfg
}

async fn watch(db: &Addr<NetworkDb>) -> Seen {
    let seen = Seen::default();
    let stamp = Stamp(seen.clone()).start();
    db.send(Watch {
        table: TABLE.parse().unwrap(),
        network: None,
        recipient: stamp.recipient(),
    })
    .await
    .unwrap();
    seen
}

/// Waits (bounded) until `seen` has more than `before` stamps; returns the first new one.
async fn next_stamp(seen: &Seen, before: usize) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(t) = seen.lock().unwrap().get(before) {
            return Some(*t);
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    None
}

#[derive(Default)]
struct Samples {
    reply: Vec<Duration>,
    own_event: Vec<Duration>,
}

fn quantiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "-".to_owned();
    }
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    format!("{:.2} / {:.2} ms", at(0.5), at(0.99))
}

async fn run(n: usize, rounds: usize) -> Vec<String> {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let a = NetworkDb::start(config("node-a", a_addr, &[], n))
        .await
        .unwrap();
    let b = NetworkDb::start(config("node-b", b_addr, &[a_addr], n))
        .await
        .unwrap();
    // Wait until each holds both nodes' entries.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let full = |s: NetDbState| s.tables.iter().map(|t| t.entries).sum::<usize>() == 2 * n;
        if full(a.send(Observe).await.unwrap()) && full(b.send(Observe).await.unwrap()) {
            break;
        }
        assert!(Instant::now() < deadline, "size {n}: tables did not fill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (seen_a, seen_b) = (watch(&a).await, watch(&b).await);
    let (mut create, mut update, mut delete) =
        (Samples::default(), Samples::default(), Samples::default());
    let mut remote = Vec::new();
    for round in 0..rounds {
        let value = vec![round as u8; 200];
        for (op, samples) in [(0, &mut create), (1, &mut update), (2, &mut delete)] {
            let before_a = seen_a.lock().unwrap().len();
            let before_b = seen_b.lock().unwrap().len();
            let start = Instant::now();
            let reply = match op {
                0 => {
                    a.send(CreateEntry {
                        key: key("probe"),
                        value: value.clone(),
                    })
                    .await
                }
                1 => {
                    a.send(UpdateEntry {
                        key: key("probe"),
                        value: vec![!(round as u8); 200],
                    })
                    .await
                }
                _ => a.send(DeleteEntry { key: key("probe") }).await,
            }
            .unwrap();
            reply.unwrap();
            samples.reply.push(start.elapsed());
            let own = next_stamp(&seen_a, before_a).await.expect("own event");
            samples.own_event.push(own - start);
            let theirs = next_stamp(&seen_b, before_b).await.expect("peer event");
            if op == 0 {
                remote.push(theirs - start);
            }
        }
    }
    let _ = a.send(Abort).await;
    let _ = b.send(Abort).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    vec![
        format!(
            "| {n} | create | {} | {} | {} |",
            quantiles(create.reply),
            quantiles(create.own_event),
            quantiles(remote)
        ),
        format!(
            "| {n} | update | {} | {} | |",
            quantiles(update.reply),
            quantiles(update.own_event)
        ),
        format!(
            "| {n} | delete | {} | {} | |",
            quantiles(delete.reply),
            quantiles(delete.own_event)
        ),
    ]
}

fn main() {
    let list = |name: &str, default: &str| -> Vec<usize> {
        std::env::var(name)
            .unwrap_or_else(|_| default.to_owned())
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    };
    let sizes = list("WEFT_BENCH_SIZES", "10,5000,50000");
    let rounds = list("WEFT_BENCH_WRITES", "100")
        .first()
        .copied()
        .unwrap_or(100);
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    system.block_on(async move {
        let mut lines = Vec::new();
        for &n in &sizes {
            let started = Instant::now();
            lines.extend(run(n, rounds).await);
            println!("size {n} done in {:.1}s", started.elapsed().as_secs_f64());
        }
        println!("\n| own entries (and the peer's) | write | reply, p50 / p99 | own watcher, p50 / p99 | peer's watcher, p50 / p99 |");
        println!("|---:|---|---:|---:|---:|");
        for line in lines {
            println!("{line}");
        }
    });
}
