//! Tables across an in-process cluster: propagation, local API errors, watches, and a
//! watcher that stops reading.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use weft_netdb::*;

const T: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(30);

#[actix::test]
async fn create_update_delete_propagate_to_every_node() {
    let nodes = cluster(3, WINDOW).await;
    let dbs: Vec<_> = nodes.iter().map(|n| n.db.clone()).collect();
    let (a, c) = (&nodes[0].db, &nodes[2].db);

    c.send(CreateEntry {
        key: key("ep1"),
        value: b"v1".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();
    wait_value(&dbs, "ep1", Some(b"v1"), T).await;
    let walked = a
        .send(WalkTable {
            table: TABLE.parse().unwrap(),
            network: network(),
        })
        .await
        .unwrap();
    assert_eq!(walked.len(), 1);
    assert_eq!(&*walked[0].1.owner, "node-2");

    c.send(UpdateEntry {
        key: key("ep1"),
        value: b"v2".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();
    wait_value(&dbs, "ep1", Some(b"v2"), T).await;

    c.send(DeleteEntry { key: key("ep1") })
        .await
        .unwrap()
        .unwrap();
    wait_value(&dbs, "ep1", None, T).await;

    // A deleted key can be created again, by anyone.
    a.send(CreateEntry {
        key: key("ep1"),
        value: b"v3".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();
    wait_value(&dbs, "ep1", Some(b"v3"), T).await;
}

#[actix::test]
async fn local_api_refuses_what_the_semantics_forbid() {
    let nodes = cluster(2, WINDOW).await;
    let (a, b) = (&nodes[0].db, &nodes[1].db);
    a.send(CreateEntry {
        key: key("k"),
        value: b"1".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();

    let again = a
        .send(CreateEntry {
            key: key("k"),
            value: b"2".to_vec(),
        })
        .await
        .unwrap();
    assert!(
        matches!(again, Err(NetDbError::AlreadyExists { .. })),
        "{again:?}"
    );

    let absent = a
        .send(UpdateEntry {
            key: key("nope"),
            value: vec![],
        })
        .await
        .unwrap();
    assert!(
        matches!(absent, Err(NetDbError::NotFound { .. })),
        "{absent:?}"
    );
    let absent = a.send(DeleteEntry { key: key("nope") }).await.unwrap();
    assert!(
        matches!(absent, Err(NetDbError::NotFound { .. })),
        "{absent:?}"
    );

    wait_value(std::slice::from_ref(b), "k", Some(b"1"), T).await;
    let theirs = b
        .send(UpdateEntry {
            key: key("k"),
            value: b"x".to_vec(),
        })
        .await
        .unwrap();
    assert!(
        matches!(theirs, Err(NetDbError::NotOwner { .. })),
        "{theirs:?}"
    );
    let theirs = b.send(DeleteEntry { key: key("k") }).await.unwrap();
    assert!(
        matches!(theirs, Err(NetDbError::NotOwner { .. })),
        "{theirs:?}"
    );
    let dup = b
        .send(CreateEntry {
            key: key("k"),
            value: b"x".to_vec(),
        })
        .await
        .unwrap();
    assert!(
        matches!(dup, Err(NetDbError::AlreadyExists { .. })),
        "{dup:?}"
    );

    let big = vec![0u8; MAX_VALUE_LEN + 1];
    let err = a
        .send(CreateEntry {
            key: key("big"),
            value: big,
        })
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, NetDbError::ValueTooLarge { .. }));
    assert!(err.to_string().contains("above the budget"), "{err}");
    let max = vec![0xffu8; MAX_VALUE_LEN];
    a.send(CreateEntry {
        key: key("max"),
        value: max.clone(),
    })
    .await
    .unwrap()
    .unwrap();
    wait_value(std::slice::from_ref(b), "max", Some(&max), T).await;
}

#[actix::test]
async fn late_watcher_sees_a_snapshot_then_live_events_without_gap_or_duplicate() {
    let nodes = cluster(3, WINDOW).await;
    let dbs: Vec<_> = nodes.iter().map(|n| n.db.clone()).collect();
    let (writer, reader) = (&nodes[0].db, &nodes[2].db);
    for i in 0..5 {
        let k = format!("pre{i}");
        writer
            .send(CreateEntry {
                key: key(&k),
                value: vec![i],
            })
            .await
            .unwrap()
            .unwrap();
    }
    wait_value(&dbs, "pre4", Some(&[4]), T).await;

    // Writes race the watch: some land before it, some after; none may be lost or doubled.
    let writes = {
        let writer = writer.clone();
        actix::spawn(async move {
            for i in 0..20u8 {
                let k = format!("live{i}");
                writer
                    .send(CreateEntry {
                        key: key(&k),
                        value: vec![i],
                    })
                    .await
                    .unwrap()
                    .unwrap();
                if i % 3 == 0 {
                    writer
                        .send(UpdateEntry {
                            key: key(&k),
                            value: vec![i, i],
                        })
                        .await
                        .unwrap()
                        .unwrap();
                }
                if i % 4 == 0 {
                    writer
                        .send(DeleteEntry { key: key(&k) })
                        .await
                        .unwrap()
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = watch(reader).await;
    writes.await.unwrap();
    writer
        .send(CreateEntry {
            key: key("last"),
            value: b"end".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    wait_value(std::slice::from_ref(reader), "last", Some(b"end"), T).await;

    let got = events(&log);
    let snapshot: Vec<_> = got.iter().take_while(|e| e.snapshot).collect();
    assert!(
        snapshot.len() >= 5,
        "snapshot holds at least the 5 early entries"
    );
    assert!(snapshot.iter().all(|e| e.kind() == EventKind::Create));
    assert!(got.iter().skip(snapshot.len()).all(|e| !e.snapshot));
    let replayed = replay(&got);
    let walked: std::collections::BTreeMap<_, _> = reader
        .send(WalkTable {
            table: TABLE.parse().unwrap(),
            network: network(),
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(k, e)| (k.key, e.value.to_vec()))
        .collect();
    assert_eq!(replayed, walked);
    assert_eq!(walked.len(), 5 + 20 - 5 + 1);
}

#[actix::test]
async fn watches_filter_by_network_and_stop_on_unwatch() {
    let nodes = cluster(2, WINDOW).await;
    let a = &nodes[0].db;
    let other: weft_types::NetworkId = "ef".repeat(32).parse().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collector = actix::Actor::start(Collector(log.clone()));
    let id = a
        .send(Watch {
            table: TABLE.parse().unwrap(),
            network: Some(network()),
            recipient: collector.recipient(),
        })
        .await
        .unwrap();
    let elsewhere = TableKey::new(TABLE, other, "x").unwrap();
    a.send(CreateEntry {
        key: elsewhere,
        value: vec![1],
    })
    .await
    .unwrap()
    .unwrap();
    a.send(CreateEntry {
        key: key("mine"),
        value: vec![2],
    })
    .await
    .unwrap()
    .unwrap();
    wait_until("one event", T, || async { events(&log).len() == 1 }).await;
    assert_eq!(events(&log)[0].key.key, "mine");
    a.send(Unwatch { id }).await.unwrap();
    a.send(UpdateEntry {
        key: key("mine"),
        value: vec![3],
    })
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(events(&log).len(), 1);
}

/// Incompressible bytes, so chitchat's zstd cannot shrink deltas below the datagram size.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[actix::test]
async fn a_late_joiner_catches_up_on_state_larger_than_a_datagram() {
    let nodes = cluster(1, WINDOW).await;
    let a = &nodes[0].db;
    for i in 0..40u64 {
        let k = format!("big{i}");
        a.send(CreateEntry {
            key: key(&k),
            value: noise(i, MAX_VALUE_LEN),
        })
        .await
        .unwrap()
        .unwrap();
    }
    let late = NetworkDb::start(config("late", free_addr(), &[nodes[0].addr], WINDOW))
        .await
        .unwrap();
    wait_value(
        std::slice::from_ref(&late),
        "big39",
        Some(&noise(39, MAX_VALUE_LEN)),
        Duration::from_secs(10),
    )
    .await;
    wait_value(
        std::slice::from_ref(&late),
        "big0",
        Some(&noise(0, MAX_VALUE_LEN)),
        T,
    )
    .await;
    let walked = late
        .send(WalkTable {
            table: TABLE.parse().unwrap(),
            network: network(),
        })
        .await
        .unwrap();
    assert_eq!(walked.len(), 40);
    // chitchat compresses deltas (base64 values shrink to about 3/4), so these stay
    // under one datagram; fragmentation is the safety net for what does not.
    assert_eq!(observe(&late).await.transport.dropped(), 0);
}

/// This process's resident memory.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A watcher that stops reading: its first event blocks it until `gate` opens, so its
/// mailbox fills and stays full.
struct Stalled {
    log: std::sync::Arc<std::sync::Mutex<Vec<TableEvent>>>,
    gate: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl actix::Actor for Stalled {
    type Context = actix::Context<Self>;
}

impl actix::Handler<TableEvent> for Stalled {
    type Result = ();
    fn handle(&mut self, msg: TableEvent, _: &mut actix::Context<Self>) {
        // Bounded: the test opens the gate well before this gives up.
        for _ in 0..6_000 {
            if self.gate.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.log.lock().unwrap().push(msg);
    }
}

#[actix::test]
async fn a_watcher_that_stops_reading_holds_one_change_per_key_and_converges_after() {
    const KEYS: usize = 10;
    const ROUNDS: usize = 10_000;
    let nodes = cluster(1, WINDOW).await;
    let db = nodes[0].db.clone();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stalled = {
        let (log, gate) = (log.clone(), gate.clone());
        // Its own thread: blocking there stalls only this watcher.
        let arbiter = actix::Arbiter::new();
        actix::Actor::start_in_arbiter(&arbiter.handle(), move |_| Stalled { log, gate })
    };
    db.send(Watch {
        table: TABLE.parse().unwrap(),
        network: None,
        recipient: stalled.recipient(),
    })
    .await
    .unwrap();
    let idle = rss_kib();
    // Every local write refreshes the view: 10,000 rounds over 10 keys are 100,000 changes.
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let key = key(&format!("k{k}"));
            let value = vec![u8::try_from(round % 251).unwrap(), 1];
            if round == 0 {
                db.send(CreateEntry { key, value }).await.unwrap().unwrap();
            } else {
                db.send(UpdateEntry { key, value }).await.unwrap().unwrap();
            }
        }
    }
    // Memory follows the keys, not the 100,000 changes the watcher did not read.
    let during = rss_kib();
    println!("RSS idle {idle} KiB, after 100,000 unread changes {during} KiB");
    assert!(
        during < idle + 20 * 1024,
        "RSS grew from {idle} to {during} KiB while the watcher did not read"
    );
    let state = observe(&db).await;
    assert!(
        state.events_waiting <= KEYS,
        "{} changes wait for {KEYS} keys",
        state.events_waiting
    );
    assert!(
        state.events_coalesced as usize >= (ROUNDS - 2) * KEYS / 2,
        "only {} events were coalesced",
        state.events_coalesced
    );
    gate.store(true, std::sync::atomic::Ordering::SeqCst);
    let want: std::collections::BTreeMap<String, Vec<u8>> = (0..KEYS)
        .map(|k| {
            (
                format!("k{k}"),
                vec![u8::try_from((ROUNDS - 1) % 251).unwrap(), 1],
            )
        })
        .collect();
    wait_until("the stalled watcher to converge", T, || {
        let log = log.clone();
        let want = want.clone();
        async move { replay(&events(&log)) == want }
    })
    .await;
    let delivered = events(&log).len();
    assert!(
        delivered < ROUNDS * KEYS / 2,
        "{delivered} events delivered: the outbox did not fold"
    );
    assert_eq!(observe(&db).await.events_waiting, 0);
}

/// A node's own write reaches its live peers at once (a push), not at their next gossip
/// round with it, and their views take it at once: with 1 s gossip rounds and 1 s
/// refreshes, every one of 10 writes is on both peers within 300 ms (without either, each
/// would wait about half a second, and 10 in a row within 300 ms would be rare).
#[actix::test]
async fn a_write_is_pushed_to_live_peers_without_waiting_for_a_gossip_round() {
    let seed = free_addr();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let addr = if i == 0 { seed } else { free_addr() };
        let seeds = if i == 0 { vec![] } else { vec![seed] };
        let mut cfg = config(&format!("node-{i}"), addr, &seeds, Duration::from_secs(30));
        cfg.gossip_interval = Duration::from_secs(1);
        // The receivers' view follows at once too (a key-change listener), not at their
        // next periodic refresh.
        cfg.refresh_interval = Duration::from_secs(1);
        nodes.push(NetworkDb::start(cfg).await.unwrap());
    }
    for db in &nodes {
        let db = db.clone();
        wait_until("all members alive", Duration::from_secs(20), || {
            let db = db.clone();
            async move { alive_count(&db).await == 3 }
        })
        .await;
    }
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let k = format!("pushed-{i}");
        let started = std::time::Instant::now();
        nodes[0]
            .send(CreateEntry {
                key: key(&k),
                value: b"v".to_vec(),
            })
            .await
            .unwrap()
            .unwrap();
        for db in &nodes[1..] {
            wait_until("the write on a peer", Duration::from_millis(300), || {
                let (db, k) = (db.clone(), k.clone());
                async move { get(&db, &k).await.is_some() }
            })
            .await;
        }
        slowest = slowest.max(started.elapsed());
    }
    println!("slowest of 10 pushed writes: {slowest:?}");
}

/// A peer cut off for longer than the tombstone grace never sees the tombstone of an entry
/// deleted meanwhile: gossip resets its copy of the writer's state instead. The view,
/// which parses only the key-values whose version moved, must still lose the entry, and
/// must not flap the entries that stayed.
#[actix::test]
async fn a_delete_whose_tombstone_was_collected_during_a_partition_still_reaches_the_peer() {
    let seed = free_addr();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let addr = if i == 0 { seed } else { free_addr() };
        let seeds = if i == 0 { vec![] } else { vec![seed] };
        let mut cfg = config(&format!("node-{i}"), addr, &seeds, WINDOW);
        cfg.tombstone_grace = Duration::from_millis(300);
        nodes.push(NetworkDb::start(cfg).await.unwrap());
    }
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    for k in ["stays", "goes"] {
        a.send(CreateEntry {
            key: key(k),
            value: b"v".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    }
    wait_value(std::slice::from_ref(&b), "goes", Some(b"v"), T).await;
    let log = watch(&b).await;
    b.send(SetIsolated(true)).await.unwrap();
    a.send(DeleteEntry { key: key("goes") })
        .await
        .unwrap()
        .unwrap();
    a.send(CreateEntry {
        key: key("new"),
        value: b"n".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();
    // Several grace periods: chitchat collects the tombstone on its gossip rounds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(&b, "goes").await, Some(b"v".to_vec()), "cut off");
    b.send(SetIsolated(false)).await.unwrap();
    wait_value(std::slice::from_ref(&b), "goes", None, T).await;
    wait_value(std::slice::from_ref(&b), "new", Some(b"n"), T).await;
    let live: Vec<(String, bool)> = events(&log)
        .into_iter()
        .filter(|e| !e.snapshot)
        .map(|e| (e.key.key, e.value.is_some()))
        .collect();
    assert_eq!(
        live,
        vec![("goes".to_owned(), false), ("new".to_owned(), true)],
        "one delete and one create, nothing for the entry that stayed"
    );
}
