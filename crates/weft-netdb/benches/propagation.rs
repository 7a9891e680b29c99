//! NetworkDB gossip benchmark: N NetworkDb nodes in one process on 127.0.0.1 UDP with
//! production timings (200 ms gossip, 100 ms refresh, phi threshold 8) and a short
//! suspicion window. For each N it measures, in this order:
//!
//! 1. idle gossip bytes per node per second (sum of `TransportCounters::bytes_out` over a
//!    fixed window, divided by N and the window);
//! 2. the time from a create on one node until every node's watcher has the event
//!    (p50/p99 over WEFT_BENCH_WRITES creates, one at a time);
//! 3. gossip bytes per node per second under a steady write load (updates of one small
//!    entry per node, owned by the writer, spread round-robin over the nodes);
//! 4. false positives under injected packet loss (every node drops that fraction of its
//!    outgoing datagrams): how often any node sees any other, live, node as Suspect/Dead;
//! 5. failure detection: kill one node (`Abort`, a crash) and time until every other
//!    node reports it Suspect, then Dead (after the suspicion window), over a few kills.
//!
//! Run: `cargo bench -p weft-netdb --bench propagation`. Every wait is bounded. Knobs
//! (env vars, defaults in brackets):
//! WEFT_BENCH_SIZES [10,50,100]; WEFT_BENCH_GOSSIP_MS [200] (a list: every size runs at
//! every interval); WEFT_BENCH_WRITES [30] creates timed per size;
//! WEFT_BENCH_BW_WINDOW_S [10] bandwidth window; WEFT_BENCH_WRITE_RATE [100] writes/s;
//! WEFT_BENCH_LOSS [0.2] loss fraction; WEFT_BENCH_LOSS_S [60] loss duration;
//! WEFT_BENCH_LOSS_SIZES [10] sizes that run the loss phase; WEFT_BENCH_KILLS [5] kills per
//! size; WEFT_BENCH_KILL_SIZES [10,50,100] sizes that run the kill phase;
//! WEFT_BENCH_SUSPICION_MS [1000] suspicion window. An empty list ("") skips a phase.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use common::{free_addr, network};
use weft_keys::{KeyId, Keyring, SymmetricKey};
use weft_netdb::*;

const TABLE: &str = "endpoint_table";
const LOAD_TABLE: &str = "bench_load_table";

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

#[derive(Clone, Debug)]
struct Settings {
    sizes: Vec<usize>,
    gossip_ms: Vec<usize>,
    writes: usize,
    bw_window: Duration,
    write_rate: usize,
    loss: f32,
    loss_for: Duration,
    loss_sizes: Vec<usize>,
    kills: usize,
    kill_sizes: Vec<usize>,
    suspicion: Duration,
}

async fn start(n: usize, gossip: Duration, s: &Settings) -> Vec<Addr<NetworkDb>> {
    let ring = Keyring::new(SymmetricKey::new(KeyId(1), [3; 32]));
    let seed = free_addr();
    let mut dbs = Vec::new();
    for i in 0..n {
        let addr = if i == 0 { seed } else { free_addr() };
        let mut cfg = NetDbConfig::new(format!("bench-{i}"), addr, ring.clone());
        cfg.gossip_interval = gossip;
        cfg.suspicion_window = s.suspicion;
        if i > 0 {
            cfg.seeds = vec![seed.to_string()];
        }
        dbs.push(NetworkDb::start(cfg).await.unwrap());
    }
    dbs
}

async fn wait_converged(dbs: &[Addr<NetworkDb>], n: usize, timeout: Duration) -> Option<Duration> {
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
        if all {
            return Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Per-node `bytes_out`, in node order.
async fn bytes_out(dbs: &[Addr<NetworkDb>]) -> Vec<u64> {
    let mut out = Vec::with_capacity(dbs.len());
    for db in dbs {
        out.push(db.send(Observe).await.unwrap().transport.bytes_out);
    }
    out
}

/// Bytes per node per second over a window: (mean, max over nodes).
fn rates(before: &[u64], after: &[u64], window: Duration) -> (f64, f64) {
    let per: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| (a - b) as f64 / window.as_secs_f64())
        .collect();
    let mean = per.iter().sum::<f64>() / per.len() as f64;
    let max = per.iter().copied().fold(0.0, f64::max);
    (mean, max)
}

fn kb(rate: f64) -> String {
    format!("{:.1}", rate / 1000.0)
}

/// One line per metric per (gossip, N), printed again as a summary at the end.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
}

impl Report {
    fn push(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }
}

async fn latency_phase(
    dbs: &[Addr<NetworkDb>],
    receipts: &Receipts,
    writes: usize,
) -> (Vec<Duration>, usize) {
    let n = dbs.len();
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
    (latencies, lost)
}

/// Updates one small entry per node, round-robin, at `rate` per second for `window`.
/// Returns (bytes/s/node mean, max, writes done, write errors).
async fn write_load_phase(
    dbs: &[Addr<NetworkDb>],
    rate: usize,
    window: Duration,
) -> (f64, f64, usize, usize) {
    let n = dbs.len();
    let key = |i: usize| TableKey::new(LOAD_TABLE, network(), &format!("load-{i}")).unwrap();
    for (i, db) in dbs.iter().enumerate() {
        db.send(CreateEntry {
            key: key(i),
            value: vec![0; 16],
        })
        .await
        .unwrap()
        .unwrap();
    }
    // Let the creates spread before the window opens.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = bytes_out(dbs).await;
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut done, mut errors) = (0usize, 0usize);
    let max_writes = (rate as f64 * window.as_secs_f64()).ceil() as usize;
    while done + errors < max_writes && t0.elapsed() < window {
        tick.tick().await;
        let i = (done + errors) % n;
        let mut value = vec![0u8; 16];
        value[..8].copy_from_slice(&(done as u64).to_be_bytes());
        match dbs[i]
            .send(UpdateEntry { key: key(i), value })
            .await
            .unwrap()
        {
            Ok(()) => done += 1,
            Err(_) => errors += 1,
        }
    }
    if let Some(rest) = window.checked_sub(t0.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let elapsed = t0.elapsed();
    let after = bytes_out(dbs).await;
    let (mean, max) = rates(&before, &after, elapsed);
    (mean, max, done, errors)
}

struct LossResult {
    episodes: usize,
    pairs: usize,
    dead_episodes: usize,
    longest: Duration,
    sent: u64,
    dropped: u64,
}

/// Every node drops `loss` of its outgoing datagrams for `duration`; counts the times
/// any node sees any other node (all alive) leave Alive.
async fn loss_phase(dbs: &[Addr<NetworkDb>], loss: f32, duration: Duration) -> LossResult {
    let mut c0 = Vec::new();
    for db in dbs {
        db.send(SetLoss(loss)).await.unwrap();
        c0.push(db.send(Observe).await.unwrap().transport);
    }
    let t0 = Instant::now();
    // (observer, subject) -> since when it has been not Alive, and whether it reached Dead.
    let mut open: HashMap<(usize, String), (Instant, bool)> = HashMap::new();
    let mut pairs: HashSet<(usize, String)> = HashSet::new();
    let (mut episodes, mut dead_episodes) = (0usize, 0usize);
    let mut longest = Duration::ZERO;
    let mut c1 = Vec::new();
    while t0.elapsed() < duration {
        let now = Instant::now();
        for (i, db) in dbs.iter().enumerate() {
            let state = db.send(Observe).await.unwrap();
            for m in &state.members {
                if m.node_id == state.node_id {
                    continue;
                }
                let k = (i, m.node_id.clone());
                if m.status == MemberStatus::Alive {
                    if let Some((since, _)) = open.remove(&k) {
                        longest = longest.max(now - since);
                    }
                } else {
                    let slot = open.entry(k.clone()).or_insert_with(|| {
                        episodes += 1;
                        pairs.insert(k.clone());
                        println!(
                            "  false positive at {:.1}s: bench-{i} sees {} {:?}",
                            t0.elapsed().as_secs_f64(),
                            m.node_id,
                            m.status
                        );
                        (now, false)
                    });
                    if m.status == MemberStatus::Dead && !slot.1 {
                        slot.1 = true;
                        dead_episodes += 1;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (since, _) in open.values() {
        longest = longest.max(since.elapsed());
    }
    for db in dbs {
        c1.push(db.send(Observe).await.unwrap().transport);
        db.send(SetLoss(0.0)).await.unwrap();
    }
    let sent = c0
        .iter()
        .zip(&c1)
        .map(|(a, b)| b.datagrams_out - a.datagrams_out)
        .sum();
    let dropped = c0
        .iter()
        .zip(&c1)
        .map(|(a, b)| b.dropped_injected - a.dropped_injected)
        .sum();
    LossResult {
        episodes,
        pairs: pairs.len(),
        dead_episodes,
        longest,
        sent,
        dropped,
    }
}

struct KillResult {
    /// Per kill: until every survivor reports Suspect (or worse), and Dead.
    all_suspect: Vec<Duration>,
    all_dead: Vec<Duration>,
    /// Per (kill, survivor).
    each_suspect: Vec<Duration>,
    each_dead: Vec<Duration>,
    incomplete: usize,
}

/// Kills `kills` nodes one after the other (never the seed) and times detection.
async fn kill_phase(dbs: &[Addr<NetworkDb>], kills: usize, suspicion: Duration) -> KillResult {
    let n = dbs.len();
    let kills = kills.min(n.saturating_sub(2));
    let victims: Vec<usize> = (1..=kills).map(|k| k * (n - 1) / (kills + 1) + 1).collect();
    let mut dead: HashSet<usize> = HashSet::new();
    let mut r = KillResult {
        all_suspect: Vec::new(),
        all_dead: Vec::new(),
        each_suspect: Vec::new(),
        each_dead: Vec::new(),
        incomplete: 0,
    };
    let timeout = suspicion + Duration::from_secs(30);
    for v in victims {
        let name = format!("bench-{v}");
        let t0 = Instant::now();
        dbs[v].send(Abort).await.unwrap();
        dead.insert(v);
        let survivors: Vec<usize> = (0..n).filter(|i| !dead.contains(i)).collect();
        let mut suspect_at: HashMap<usize, Duration> = HashMap::new();
        let mut dead_at: HashMap<usize, Duration> = HashMap::new();
        while dead_at.len() < survivors.len() && t0.elapsed() < timeout {
            for &i in &survivors {
                if dead_at.contains_key(&i) {
                    continue;
                }
                let state = dbs[i].send(Observe).await.unwrap();
                let status = state
                    .members
                    .iter()
                    .find(|m| m.node_id == name)
                    .map(|m| m.status);
                let at = t0.elapsed();
                match status {
                    Some(MemberStatus::Suspect) => {
                        suspect_at.entry(i).or_insert(at);
                    }
                    Some(MemberStatus::Dead) | None => {
                        suspect_at.entry(i).or_insert(at);
                        dead_at.insert(i, at);
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if dead_at.len() < survivors.len() {
            r.incomplete += 1;
            println!(
                "  kill {name}: only {}/{} survivors saw it dead within {timeout:?}",
                dead_at.len(),
                survivors.len()
            );
        } else {
            r.all_suspect
                .push(suspect_at.values().copied().max().unwrap());
            r.all_dead.push(dead_at.values().copied().max().unwrap());
        }
        r.each_suspect.extend(suspect_at.values().copied());
        r.each_dead.extend(dead_at.values().copied());
        // Let the cluster settle on the remaining members before the next kill.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for v in [
        &mut r.all_suspect,
        &mut r.all_dead,
        &mut r.each_suspect,
        &mut r.each_dead,
    ] {
        v.sort();
    }
    r
}

fn dist(v: &[Duration]) -> String {
    if v.is_empty() {
        return "-".to_owned();
    }
    format!(
        "p50={}ms p99={}ms max={}ms (n={})",
        ms(percentile(v, 0.5)),
        ms(percentile(v, 0.99)),
        ms(*v.last().unwrap()),
        v.len()
    )
}

async fn run(n: usize, gossip: Duration, s: &Settings, report: &mut Report) {
    let g = gossip.as_millis();
    let tag = format!("gossip={g}ms n={n:>3}");
    let started = Instant::now();
    let dbs = start(n, gossip, s).await;
    let Some(converge) = wait_converged(&dbs, n, Duration::from_secs(90)).await else {
        report.push(format!("{tag} did not converge within 90 s; skipped"));
        for db in &dbs {
            let _ = db.send(Abort).await;
        }
        return;
    };
    println!("{tag} converged in {:.2}s", converge.as_secs_f64());
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

    // 1. Idle gossip.
    let before = bytes_out(&dbs).await;
    let t0 = Instant::now();
    tokio::time::sleep(s.bw_window).await;
    let (idle_mean, idle_max) = rates(&before, &bytes_out(&dbs).await, t0.elapsed());
    report.push(format!(
        "{tag} idle: {} KB/s/node (max node {} KB/s) over {}s",
        kb(idle_mean),
        kb(idle_max),
        s.bw_window.as_secs()
    ));

    // 2. Create-to-every-watcher latency.
    if s.writes > 0 {
        let (lat, lost) = latency_phase(&dbs, &receipts, s.writes).await;
        report.push(format!(
            "{tag} create->all watchers: {} incomplete={lost}",
            dist(&lat)
        ));
    }

    // 3. Bandwidth under writes.
    if s.write_rate > 0 {
        let (mean, max, done, errors) = write_load_phase(&dbs, s.write_rate, s.bw_window).await;
        report.push(format!(
            "{tag} under {:.0} writes/s ({done} updates, {errors} errors): {} KB/s/node (max node {} KB/s)",
            done as f64 / s.bw_window.as_secs_f64(),
            kb(mean),
            kb(max)
        ));
    }

    // 4. False positives under loss.
    if s.loss_sizes.contains(&n) && !s.loss_for.is_zero() {
        let r = loss_phase(&dbs, s.loss, s.loss_for).await;
        report.push(format!(
            "{tag} loss {:.0}% for {}s (measured {:.1}% of {} datagrams dropped): false positives={} (pairs={}, reached dead={}, longest {}ms)",
            s.loss * 100.0,
            s.loss_for.as_secs(),
            100.0 * r.dropped as f64 / (r.sent + r.dropped).max(1) as f64,
            r.sent + r.dropped,
            r.episodes,
            r.pairs,
            r.dead_episodes,
            ms(r.longest)
        ));
        if wait_converged(&dbs, n, Duration::from_secs(30))
            .await
            .is_none()
        {
            report.push(format!("{tag} not all alive again 30 s after the loss"));
        }
    }

    // 5. Failure detection.
    if s.kill_sizes.contains(&n) && s.kills > 0 {
        let r = kill_phase(&dbs, s.kills, s.suspicion).await;
        let mut line = format!(
            "{tag} kill (window {}ms, {} kills, {} incomplete):",
            ms(s.suspicion),
            r.all_dead.len() + r.incomplete,
            r.incomplete
        );
        write!(
            line,
            " all suspect {}; all dead {}; per observer suspect {}; per observer dead {}",
            dist(&r.all_suspect),
            dist(&r.all_dead),
            dist(&r.each_suspect),
            dist(&r.each_dead)
        )
        .unwrap();
        report.push(line);
    }

    for db in &dbs {
        let _ = db.send(Abort).await;
    }
    println!("{tag} done in {:.0}s", started.elapsed().as_secs_f64());
    // Let the aborted sockets close before the next size binds new ones.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    env_str(name, default)
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn env_one(name: &str, default: usize) -> usize {
    env_list(name, &default.to_string())
        .first()
        .copied()
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let s = Settings {
        sizes: env_list("WEFT_BENCH_SIZES", "10,50,100"),
        gossip_ms: env_list("WEFT_BENCH_GOSSIP_MS", "200"),
        writes: env_one("WEFT_BENCH_WRITES", 30),
        bw_window: Duration::from_secs(env_one("WEFT_BENCH_BW_WINDOW_S", 10).max(1) as u64),
        write_rate: env_one("WEFT_BENCH_WRITE_RATE", 100),
        loss: env_str("WEFT_BENCH_LOSS", "0.2")
            .trim()
            .parse::<f32>()
            .unwrap_or(0.2)
            .clamp(0.0, 1.0),
        loss_for: Duration::from_secs(env_one("WEFT_BENCH_LOSS_S", 60) as u64),
        loss_sizes: env_list("WEFT_BENCH_LOSS_SIZES", "10"),
        kills: env_one("WEFT_BENCH_KILLS", 5),
        kill_sizes: env_list("WEFT_BENCH_KILL_SIZES", "10,50,100"),
        suspicion: Duration::from_millis(env_one("WEFT_BENCH_SUSPICION_MS", 1000) as u64),
    };
    println!("{s:?}");
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    let started = Instant::now();
    system.block_on(async move {
        let mut report = Report::default();
        for &g in &s.gossip_ms {
            for &n in &s.sizes {
                run(n, Duration::from_millis(g as u64), &s, &mut report).await;
            }
        }
        println!(
            "\nsummary (phi threshold 8, refresh 100 ms, total {:.0}s):",
            started.elapsed().as_secs_f64()
        );
        for line in &report.lines {
            println!("{line}");
        }
    });
}
