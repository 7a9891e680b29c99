//! Cluster allocation: what an endpoint on a global network costs when its address comes
//! from the manager, on a 3-host cluster (host 1 the manager, hosts 2 and 3 workers).
//!
//! Measured in one run, through keep-alive API connections (no process spawns):
//! - endpoint create + delete on an overlay network from a worker (create = allocation
//!   RPC to the manager + two local commits; delete = release RPC + commits), p50/p99;
//! - the same on the manager itself (the allocator in process), and on a local `null`
//!   network of the worker (no allocation RPC): the worker minus the null baseline is the
//!   round trip worker -> manager -> worker, including the manager's flushed log write;
//! - allocations per second with the three hosts asking at once (8 connections each).
//!
//! `cargo build --release -p weft && WEFT_BIN=$PWD/target/release/weft cargo bench -p cluster-tests --bench allocation`
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use cluster_tests::bench::{ApiConnection as Conn, ms, percentiles};
use cluster_tests::{Cluster, ClusterOptions, wait_until};
use hyper::Method;
use std::time::{Duration, Instant};

const WARMUP: usize = 30;
const ROUNDS: usize = 300;
const CONNECTIONS_PER_HOST: usize = 8;
const PER_CONNECTION: usize = 60;

/// Create + delete of one endpoint, `rounds` times; returns (create, delete) samples.
async fn rounds(
    conn: &mut Conn,
    network: &str,
    tag: &str,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let mut create = Vec::with_capacity(rounds);
    let mut delete = Vec::with_capacity(rounds);
    for n in 0..rounds {
        let body = format!(r#"{{"name":"{tag}-{n}"}}"#);
        let path = format!("/v1/networks/{network}/endpoints");
        create.push(conn.time(Method::POST, &path, &body).await?);
        let path = format!("/v1/networks/{network}/endpoints/{tag}-{n}");
        delete.push(conn.time(Method::DELETE, &path, "").await?);
    }
    Ok((create, delete))
}

fn row(label: &str, samples: &[Duration]) {
    let (p50, p99, max) = percentiles(samples);
    println!("| {label} | {} | {} | {} |", ms(p50), ms(p99), ms(max));
}

fn main() -> anyhow::Result<()> {
    let cluster = Cluster::start(
        3,
        ClusterOptions::default().args(["--gossip-interval", "100ms"]),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut worker = Conn::open(&cluster.host(2).socket()).await?;
        let mut manager = Conn::open(&cluster.host(1).socket()).await?;
        worker
            .call(
                Method::POST,
                "/v1/networks",
                r#"{"name":"alloc","driver":"overlay","subnets":[{"subnet":"198.19.192.0/18"}]}"#,
            )
            .await?;
        worker
            .call(
                Method::POST,
                "/v1/networks",
                r#"{"name":"base","driver":"null"}"#,
            )
            .await?;
        wait_until("the manager to adopt alloc", Duration::from_secs(10), || {
            cluster
                .host(1)
                .cli(&["network", "inspect", "alloc"])
                .success()
                .then_some(())
        })?;
        rounds(&mut worker, "alloc", "warm", WARMUP).await?;
        let (w_create, w_delete) = rounds(&mut worker, "alloc", "w", ROUNDS).await?;
        let (m_create, m_delete) = rounds(&mut manager, "alloc", "m", ROUNDS).await?;
        let (b_create, b_delete) = rounds(&mut worker, "base", "b", ROUNDS).await?;

        println!("3 hosts, {ROUNDS} rounds each, release build recommended\n");
        println!("| operation | p50 | p99 | max |");
        println!("|---|---:|---:|---:|");
        row("worker: create endpoint on overlay (allocation RPC)", &w_create);
        row("worker: delete endpoint on overlay (release RPC)", &w_delete);
        row("manager: create endpoint on overlay (allocator in process)", &m_create);
        row("manager: delete endpoint on overlay", &m_delete);
        row("worker: create endpoint on null (no RPC, baseline)", &b_create);
        row("worker: delete endpoint on null (baseline)", &b_delete);
        let (wc, wc99, _) = percentiles(&w_create);
        let (bc, bc99, _) = percentiles(&b_create);
        println!();
        println!(
            "allocation round trip worker -> manager (worker create - baseline create): p50 {} p99 {}",
            ms(wc.saturating_sub(bc)),
            ms(wc99.saturating_sub(bc99))
        );

        // Throughput: every host's connections create endpoints at once.
        let start = Instant::now();
        let mut tasks = Vec::new();
        for host in 1..=3 {
            for c in 0..CONNECTIONS_PER_HOST {
                let socket = cluster.host(host).socket();
                tasks.push(tokio::spawn(async move {
                    let mut conn = Conn::open(&socket).await?;
                    for n in 0..PER_CONNECTION {
                        let body = format!(r#"{{"name":"t{host}-{c}-{n}"}}"#);
                        conn.time(Method::POST, "/v1/networks/alloc/endpoints", &body)
                            .await?;
                    }
                    anyhow::Ok(())
                }));
            }
        }
        for task in tasks {
            task.await??;
        }
        let elapsed = start.elapsed();
        let total = 3 * CONNECTIONS_PER_HOST * PER_CONNECTION;
        println!(
            "allocations/s, 3 hosts x {CONNECTIONS_PER_HOST} connections at once: {total} in {:.2} s = {:.0}/s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
        anyhow::Ok(())
    })?;
    Ok(())
}
