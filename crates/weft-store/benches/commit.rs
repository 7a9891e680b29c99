//! Latency of flushed commits: 1000 one-object and 1000 three-object transactions
//! against a store in a temporary directory (set TMPDIR to measure another disk).
//! Prints p50, p99 and max. Run with `cargo bench -p weft-store`.

use std::time::{Duration, Instant};
use weft_store::{Expect, Store, Txn};
use weft_types::*;

const ITERATIONS: usize = 1000;

fn endpoint(i: usize) -> EndpointRecord {
    EndpointRecord {
        id: EndpointId::random(),
        name: format!("web-{i}")
            .parse()
            .unwrap_or_else(|e| panic!("name: {e}")),
        network: NetworkId::random(),
        ipv4: None,
        ipv6: None,
        mac: MacAddr::random(),
        aliases: vec![],
        service: None,
        attachment: Attachment::Detached,
        interface: None,
        owner: None,
        created_ms: 1_700_000_000_000,
        lifecycle: Lifecycle::Ready,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<22} n={:<5} p50={:>9.1?} p99={:>9.1?} max={:>9.1?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
}

/// Times `ITERATIONS` commits of `objects` endpoint updates each.
fn run(store: &Store, objects: usize) -> Vec<Duration> {
    let mut records: Vec<(EndpointRecord, u64)> = (0..objects).map(|i| (endpoint(i), 0)).collect();
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let mut txn = Txn::new();
        for (rec, version) in &mut records {
            rec.created_ms += 1;
            let expect = match *version {
                0 => Expect::Absent,
                v => Expect::Version(v),
            };
            txn.put(rec, expect).unwrap_or_else(|e| panic!("{e}"));
        }
        let start = Instant::now();
        let versions = store.commit(txn).unwrap_or_else(|e| panic!("{e}"));
        samples.push(start.elapsed());
        for ((_, version), new) in records.iter_mut().zip(versions) {
            *version = new;
        }
    }
    samples
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    println!("store in {}", dir.path().display());
    report("commit, 1 object", run(&store, 1));
    report("commit, 3 objects", run(&store, 3));
    let size = store.size_on_disk().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "size on disk after {} commits: {size} bytes",
        2 * ITERATIONS
    );
}
