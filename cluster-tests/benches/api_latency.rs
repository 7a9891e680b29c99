//! End-to-end latency of the local API with the null driver: one real `weft agent`, one
//! keep-alive HTTP/1.1 connection over its unix socket, and rounds of create network +
//! create endpoint + create sandbox + join + leave + delete endpoint, sandbox and network.
//!
//! Also measured in the same run, as baselines: a `GET /v1/version` round trip on the same
//! connection (the transport floor) and a flushed one-object store commit in the same temp
//! directory (the disk floor). Prints a Markdown table.
//!
//! Run with the agent built in release:
//! `cargo build --release -p weft && WEFT_BIN=$PWD/target/release/weft cargo bench -p cluster-tests --bench api_latency`
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use anyhow::Context;
use cluster_tests::bench::{ApiConnection as Conn, ms, percentiles as stats};
use cluster_tests::{Agent, AgentOptions, weft_bin};
use hyper::Method;
use std::time::{Duration, Instant};

const WARMUP_ROUNDS: usize = 50;
const MEASURED_ROUNDS: usize = 1_000;
const STORE_COMMITS: usize = 200;
/// Target from the acceptance list: round p50 under 5 ms.
const TARGET_P50: Duration = Duration::from_millis(5);

/// The operations of one round, in order, as labelled in the report.
const OPS: [&str; 8] = [
    "create network",
    "create endpoint",
    "create sandbox",
    "join",
    "leave",
    "delete endpoint",
    "delete sandbox",
    "delete network",
];

/// Runs round `n`, returning the time of each operation.
async fn round(conn: &mut Conn, n: usize) -> anyhow::Result<[Duration; 8]> {
    let net = format!("/v1/networks/bench-{n}");
    let ep = format!("{net}/endpoints/ep");
    let sb = format!("sb-{n}");
    let mut t = [Duration::ZERO; 8];
    let create_net = format!(r#"{{"name":"bench-{n}","driver":"null"}}"#);
    t[0] = conn.time(Method::POST, "/v1/networks", &create_net).await?;
    let create_ep = format!("{net}/endpoints");
    t[1] = conn
        .time(Method::POST, &create_ep, r#"{"name":"ep"}"#)
        .await?;
    let create_sb = format!(r#"{{"name":"{sb}"}}"#);
    t[2] = conn.time(Method::POST, "/v1/sandboxes", &create_sb).await?;
    let join = format!(r#"{{"sandbox":"{sb}"}}"#);
    t[3] = conn
        .time(Method::POST, &format!("{ep}/join"), &join)
        .await?;
    t[4] = conn.time(Method::POST, &format!("{ep}/leave"), "").await?;
    t[5] = conn.time(Method::DELETE, &ep, "").await?;
    let del_sb = format!("/v1/sandboxes/{sb}");
    t[6] = conn.time(Method::DELETE, &del_sb, "").await?;
    t[7] = conn.time(Method::DELETE, &net, "").await?;
    Ok(t)
}

/// Samples of the whole run, one entry per measured round.
#[derive(Default)]
struct Samples {
    rounds: Vec<Duration>,
    ops: [Vec<Duration>; 8],
    version: Vec<Duration>,
}

/// Warm-up, then measured rounds; each measured round is followed by one `GET /v1/version`
/// (not part of the round) so the floor is sampled under the same conditions.
async fn measure(conn: &mut Conn) -> anyhow::Result<Samples> {
    for n in 0..WARMUP_ROUNDS {
        round(conn, n)
            .await
            .with_context(|| format!("warm-up round {n}"))?;
        conn.time(Method::GET, "/v1/version", "").await?;
    }
    let mut s = Samples::default();
    for n in WARMUP_ROUNDS..WARMUP_ROUNDS + MEASURED_ROUNDS {
        let start = Instant::now();
        let ops = round(conn, n).await.with_context(|| format!("round {n}"))?;
        s.rounds.push(start.elapsed());
        for (samples, t) in s.ops.iter_mut().zip(ops) {
            samples.push(t);
        }
        s.version
            .push(conn.time(Method::GET, "/v1/version", "").await?);
    }
    Ok(s)
}

/// A record the size of a stored endpoint, defined here so the baseline does not follow
/// changes to the real record types.
#[derive(serde::Serialize, serde::Deserialize)]
struct BenchRecord {
    id: String,
    name: String,
    network: String,
    mac: String,
    created_ms: u64,
}

impl weft_types::record::Record for BenchRecord {
    const KIND: &'static str = "bench";
    const SCHEMA: u16 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// Flushed one-object commits to a store in a fresh temp directory (same disk as the agent's).
fn store_commits() -> anyhow::Result<Vec<Duration>> {
    use weft_store::{Expect, Store, Txn};
    let dir = tempfile::tempdir().context("tempdir")?;
    let store = Store::open(dir.path())?;
    let mut rec = BenchRecord {
        id: "3f1c2b7e9a8d4c6f0b1e2d3c4a5b6978".into(),
        name: "ep".into(),
        network: "8e7d6c5b4a39281706f5e4d3c2b1a098".into(),
        mac: "02:42:c6:13:00:02".into(),
        created_ms: 1_700_000_000_000,
    };
    let mut version = 0;
    let mut samples = Vec::with_capacity(STORE_COMMITS);
    for _ in 0..STORE_COMMITS {
        rec.created_ms += 1;
        let expect = match version {
            0 => Expect::Absent,
            v => Expect::Version(v),
        };
        let mut txn = Txn::new();
        txn.put(&rec, expect)?;
        let start = Instant::now();
        let versions = store.commit(txn)?;
        samples.push(start.elapsed());
        version = versions
            .first()
            .copied()
            .context("commit returned no version")?;
    }
    Ok(samples)
}

fn report(s: &Samples, commits: &[Duration]) {
    let (r50, r99, rmax) = stats(&s.rounds);
    let (v50, v99, vmax) = stats(&s.version);
    println!("| operation | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    println!(
        "| **round (8 calls)** | **{}** | **{}** | **{}** |",
        ms(r50),
        ms(r99),
        ms(rmax)
    );
    for (name, samples) in OPS.iter().zip(&s.ops) {
        let (p50, p99, max) = stats(samples);
        println!("| {name} | {} | {} | {} |", ms(p50), ms(p99), ms(max));
    }
    println!(
        "| GET /v1/version (transport floor) | {} | {} | {} |",
        ms(v50),
        ms(v99),
        ms(vmax)
    );
    let (c50, c99, cmax) = stats(commits);
    println!(
        "| flushed store commit, 1 object ({} runs) | {} | {} | {} |",
        commits.len(),
        ms(c50),
        ms(c99),
        ms(cmax)
    );
    println!();
    let ratio = r50.as_secs_f64() / (8.0 * v50.as_secs_f64());
    println!("round p50 / (8 × version p50) = {ratio:.1}");
    let verdict = if r50 < TARGET_P50 { "met" } else { "NOT met" };
    println!("target round p50 < {}: {verdict}", ms(TARGET_P50));
}

fn main() -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "agent {}; {WARMUP_ROUNDS} warm-up + {MEASURED_ROUNDS} measured rounds; {cpus} CPUs\n",
        weft_bin().display()
    );
    let agent = Agent::start(AgentOptions::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let samples = runtime
        .block_on(async {
            let mut conn = Conn::open(&agent.socket()).await?;
            measure(&mut conn).await
        })
        .inspect_err(|_| eprintln!("agent log:\n{}", agent.log()))?;
    drop(agent);
    let commits = store_commits()?;
    report(&samples, &commits);
    Ok(())
}
