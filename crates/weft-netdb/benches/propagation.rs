//! Propagation benchmark: N NetworkDb nodes in one process on 127.0.0.1 UDP, production
//! timings (200 ms gossip, 100 ms refresh). Measures the time from a create on one node
//! until every node's watcher has the event (p50/p99), and idle gossip bytes per node per
//! second. Run: `cargo bench -p weft-netdb --bench propagation` (sizes: WEFT_BENCH_SIZES,
//! default "10,50"; writes per size: WEFT_BENCH_WRITES, default 30; gossip interval:
//! WEFT_BENCH_GOSSIP_MS, default 200).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use weft_keys::{KeyId, Keyring, SymmetricKey};
use weft_netdb::*;
use weft_types::NetworkId;

const TABLE: &str = "endpoint_table";

type Receipts = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

struct Stamp(Receipts);

impl Actor for Stamp {
    type Context = Context<Self>;
}

impl Handler<TableEvent> for Stamp {
    type Result = ();
    fn handle(&mut self, msg: TableEvent, _: &mut Context<Self>) {
        if !msg.snapshot {
            let mut r = self.0.lock().unwrap();
            r.entry(msg.key.key).or_default().push(Instant::now());
        }
    }
}

fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn network() -> NetworkId {
    "be".repeat(32).parse().unwrap()
}

async fn start(n: usize, gossip: Duration) -> Vec<Addr<NetworkDb>> {
    let ring = Keyring::new(SymmetricKey::new(KeyId(1), [3; 32]));
    let seed = free_addr();
    let mut dbs = Vec::new();
    for i in 0..n {
        let addr = if i == 0 { seed } else { free_addr() };
        let mut cfg = NetDbConfig::new(format!("bench-{i}"), addr, ring.clone());
        cfg.gossip_interval = gossip;
        if i > 0 {
            cfg.seeds = vec![seed.to_string()];
        }
        dbs.push(NetworkDb::start(cfg).await.unwrap());
    }
    dbs
}

async fn wait_converged(dbs: &[Addr<NetworkDb>], n: usize, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for db in dbs {
            let state = db.send(Observe).await.unwrap();
            let alive = state
                .members
                .iter()
                .filter(|m| m.status == MemberStatus::Alive)
                .count();
            all &= alive == n;
        }
        if all || started.elapsed() > timeout {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn total_bytes_out(dbs: &[Addr<NetworkDb>]) -> u64 {
    let mut total = 0;
    for db in dbs {
        total += db.send(Observe).await.unwrap().transport.bytes_out;
    }
    total
}

async fn run(n: usize, writes: usize, gossip: Duration) {
    let dbs = start(n, gossip).await;
    let converge = wait_converged(&dbs, n, Duration::from_secs(60)).await;
    let receipts: Receipts = Arc::default();
    for db in &dbs {
        let stamp = Stamp(receipts.clone()).start();
        let watch = Watch {
            table: TABLE.parse().unwrap(),
            network: None,
            recipient: stamp.recipient(),
        };
        db.send(watch).await.unwrap();
    }

    // Idle gossip: bytes sent over a quiet window.
    let idle = Duration::from_secs(5);
    let before = total_bytes_out(&dbs).await;
    tokio::time::sleep(idle).await;
    let idle_rate = (total_bytes_out(&dbs).await - before) as f64 / n as f64 / idle.as_secs_f64();

    let mut latencies = Vec::new();
    let mut lost = 0;
    for w in 0..writes {
        let k = format!("ep{w}");
        let writer = &dbs[(w * 7 + 3) % n];
        let key = TableKey::new(TABLE, network(), &k).unwrap();
        let t0 = Instant::now();
        writer
            .send(CreateEntry {
                key,
                value: vec![w as u8; 64],
            })
            .await
            .unwrap()
            .unwrap();
        let deadline = t0 + Duration::from_secs(15);
        loop {
            let done = receipts.lock().unwrap().get(&k).map(Vec::len).unwrap_or(0) >= n;
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let r = receipts.lock().unwrap();
        match r
            .get(&k)
            .filter(|v| v.len() >= n)
            .and_then(|v| v.iter().max())
        {
            Some(last) => latencies.push(*last - t0),
            None => lost += 1,
        }
    }
    latencies.sort();
    if latencies.is_empty() {
        println!("n={n}: no write reached every node");
    } else {
        println!(
            "gossip={}ms n={n:>3} converge={:>6.2}s writes={} incomplete={lost} all-nodes latency p50={:>4}ms p99={:>4}ms max={:>4}ms idle gossip={:.0} B/s/node",
            gossip.as_millis(),
            converge.as_secs_f64(),
            latencies.len(),
            percentile(&latencies, 0.5).as_millis(),
            percentile(&latencies, 0.99).as_millis(),
            latencies.last().map(Duration::as_millis).unwrap_or(0),
            idle_rate,
        );
    }
    for db in &dbs {
        db.send(Abort).await.unwrap();
    }
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let sizes = env_list("WEFT_BENCH_SIZES", "10,50");
    let writes = env_list("WEFT_BENCH_WRITES", "30")
        .first()
        .copied()
        .unwrap_or(30);
    let gossip = env_list("WEFT_BENCH_GOSSIP_MS", "200")
        .first()
        .copied()
        .unwrap_or(200);
    let gossip = Duration::from_millis(gossip as u64);
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    system.block_on(async move {
        for n in sizes {
            run(n, writes, gossip).await;
        }
    });
}
