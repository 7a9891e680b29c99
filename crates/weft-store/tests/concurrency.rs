//! Concurrent commits from threads sharing a store: expectations are checked atomically.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{endpoint, put};
use std::sync::{Arc, Barrier};
use weft_store::{Expect, Store, StoreError};
use weft_types::EndpointRecord;
use weft_types::record::Record;

const THREADS: usize = 8;

#[test]
fn concurrent_absent_creates_of_one_key_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for round in 0..10 {
        let base = endpoint(&format!("web-{round}"));
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                // Same key (id), a different value per thread.
                let mut ep = base.clone();
                ep.created_ms = i as u64;
                std::thread::spawn(move || {
                    barrier.wait();
                    (i, put(&store, &ep, Expect::Absent))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<usize> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (_, r) in &results {
            match r {
                Ok(v) => assert_eq!(*v, 1),
                Err(StoreError::Conflict { found: Some(1), .. }) => {}
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
        }
        let stored = store.get::<EndpointRecord>(&base.key()).unwrap().unwrap();
        assert_eq!(stored.version, 1);
        assert_eq!(stored.value.created_ms, winners[0] as u64);
    }
}

#[test]
fn concurrent_versioned_updates_lose_no_increment() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ep = endpoint("counter");
    put(&store, &ep, Expect::Absent).unwrap();
    const PER_THREAD: usize = 10;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, key) = (store.clone(), ep.key());
            std::thread::spawn(move || {
                let mut done = 0;
                while done < PER_THREAD {
                    // Read-modify-write with optimistic retries.
                    let cur = store.get::<EndpointRecord>(&key).unwrap().unwrap();
                    let mut next = cur.value.clone();
                    next.created_ms += 1;
                    match put(&store, &next, Expect::Version(cur.version)) {
                        Ok(_) => done += 1,
                        Err(e) if e.is_conflict() => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let got = store.get::<EndpointRecord>(&ep.key()).unwrap().unwrap();
    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!(got.version, 1 + total);
    assert_eq!(got.value.created_ms, ep.created_ms + total);
}
