//! Membership in an in-process cluster: graceful leave, failure and suspension, return
//! within the window, restart with a new generation.

mod common;

use std::time::{Duration, Instant};

use actix::Addr;
use common::*;
use weft_netdb::*;

const T: Duration = Duration::from_secs(5);

/// Kills `victim` (a crash: no leave) and waits until `observer` sees `node` suspect.
#[allow(clippy::unwrap_used)]
async fn crash_and_wait_suspect(victim: &Addr<NetworkDb>, observer: &Addr<NetworkDb>, node: &str) {
    victim.send(Abort).await.unwrap();
    wait_until(&format!("{node} suspect"), T, || {
        let a = observer.clone();
        async move { status_of(&a, node).await == Some(MemberStatus::Suspect) }
    })
    .await;
}

async fn seen_by_all(nodes: &[Node], k: &str, v: &[u8]) {
    let dbs: Vec<_> = nodes.iter().map(|n| n.db.clone()).collect();
    wait_value(&dbs, k, Some(v), T).await;
}

#[actix::test]
async fn graceful_leave_deletes_its_entries_everywhere_at_once() {
    let window = Duration::from_secs(60);
    let nodes = cluster(3, window).await;
    let leaver = &nodes[2];
    leaver
        .db
        .send(CreateEntry {
            key: key("ep"),
            value: b"v".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    seen_by_all(&nodes, "ep", b"v").await;
    let log = watch(&nodes[0].db).await;

    let started = Instant::now();
    leaver.db.send(Leave).await.unwrap();
    let rest: Vec<_> = nodes[..2].iter().map(|n| n.db.clone()).collect();
    wait_value(&rest, "ep", None, Duration::from_secs(3)).await;
    assert!(
        started.elapsed() < window / 10,
        "deleted at once, not after the window"
    );
    for db in &rest {
        assert_eq!(status_of(db, "node-2").await, Some(MemberStatus::Left));
    }
    let got = events(&log);
    assert_eq!(got.last().map(TableEvent::kind), Some(EventKind::Delete));
    replay(&got);
    assert!(leaver.db.send(Observe).await.is_err(), "the leaver stopped");
}

#[actix::test]
async fn failed_node_is_suspended_then_deleted_after_the_window() {
    let window = Duration::from_secs(3);
    let nodes = cluster(3, window).await;
    let victim = &nodes[2];
    victim
        .db
        .send(CreateEntry {
            key: key("ep"),
            value: b"v".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    seen_by_all(&nodes, "ep", b"v").await;
    let a = nodes[0].db.clone();
    let log = watch(&a).await;

    victim.db.send(Abort).await.unwrap();
    let killed = Instant::now();
    wait_until("victim suspect", T, || {
        let a = a.clone();
        async move { status_of(&a, "node-2").await == Some(MemberStatus::Suspect) }
    })
    .await;
    let detected = killed.elapsed();
    assert_eq!(
        get(&a, "ep").await,
        Some(b"v".to_vec()),
        "suspended, not deleted"
    );

    wait_until("victim dead", window + T, || {
        let a = a.clone();
        async move { status_of(&a, "node-2").await == Some(MemberStatus::Dead) }
    })
    .await;
    assert!(
        killed.elapsed() >= window,
        "not before the window ({detected:?} to detect)"
    );
    let rest: Vec<_> = nodes[..2].iter().map(|n| n.db.clone()).collect();
    wait_value(&rest, "ep", None, T).await;
    let got = events(&log);
    assert_eq!(
        got.iter().filter(|e| e.kind() == EventKind::Delete).count(),
        1
    );
}

/// A crashed agent whose host still answers probes: its entries stay past the window and
/// past chitchat forgetting its state, with no event at all; once its host goes silent
/// too, they go one window later.
#[actix::test]
async fn a_silent_node_whose_host_answers_keeps_its_entries_until_the_host_goes_silent() {
    let window = Duration::from_secs(1);
    let seed = free_addr();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let addr = if i == 0 { seed } else { free_addr() };
        let seeds = if i == 0 { vec![] } else { vec![seed] };
        let mut cfg = config(&format!("node-{i}"), addr, &seeds, window);
        // chitchat forgets dead state soon, to show the entries outlive it.
        cfg.dead_state_grace = Some(Duration::from_secs(2));
        nodes.push(NetworkDb::start(cfg).await.unwrap());
    }
    let (a, victim) = (nodes[0].clone(), nodes[1].clone());
    wait_until("both alive", T, || {
        let a = a.clone();
        async move { alive_count(&a).await == 2 }
    })
    .await;
    victim
        .send(CreateEntry {
            key: key("ep"),
            value: b"v".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    wait_value(std::slice::from_ref(&a), "ep", Some(b"v"), T).await;
    let log = watch(&a).await;

    victim.send(Abort).await.unwrap();
    let killed = Instant::now();
    // The host answers every 250 ms for 3 windows plus chitchat's grace, and more.
    let mut last_answer = Instant::now();
    while killed.elapsed() < Duration::from_secs(6) {
        a.send(HostAnswered {
            node_id: "node-1".to_owned(),
        })
        .await
        .unwrap();
        last_answer = Instant::now();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status_of(&a, "node-1").await, Some(MemberStatus::Suspect));
    assert_eq!(get(&a, "ep").await, Some(b"v".to_vec()), "kept");
    let live =
        |log| -> Vec<TableEvent> { events(log).into_iter().filter(|e| !e.snapshot).collect() };
    assert!(live(&log).is_empty(), "{:?}", live(&log));

    // The host went silent: one window after its last answer the entry goes, with one
    // delete.
    wait_value(std::slice::from_ref(&a), "ep", None, window + T).await;
    assert!(
        last_answer.elapsed() >= window,
        "{:?}",
        last_answer.elapsed()
    );
    let got = live(&log);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].kind(), EventKind::Delete);
}

#[actix::test]
async fn partitioned_node_returning_within_the_window_loses_nothing() {
    let window = Duration::from_secs(20);
    let nodes = cluster(3, window).await;
    let cut = &nodes[2];
    cut.db
        .send(CreateEntry {
            key: key("ep"),
            value: b"v".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    seen_by_all(&nodes, "ep", b"v").await;
    let a = nodes[0].db.clone();
    let log = watch(&a).await;

    cut.db.send(SetIsolated(true)).await.unwrap();
    wait_until("cut node suspect", T, || {
        let a = a.clone();
        async move { status_of(&a, "node-2").await == Some(MemberStatus::Suspect) }
    })
    .await;
    // While cut off, it keeps writing; the rest keeps its old entries.
    cut.db
        .send(CreateEntry {
            key: key("during"),
            value: b"d".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(get(&a, "ep").await, Some(b"v".to_vec()));

    cut.db.send(SetIsolated(false)).await.unwrap();
    wait_until("cut node alive", T, || {
        let a = a.clone();
        async move { status_of(&a, "node-2").await == Some(MemberStatus::Alive) }
    })
    .await;
    seen_by_all(&nodes, "during", b"d").await;
    seen_by_all(&nodes, "ep", b"v").await;
    let got = events(&log);
    assert!(got.iter().all(|e| e.kind() != EventKind::Delete), "{got:?}");
    replay(&got);
}

#[actix::test]
async fn restarted_node_comes_back_with_a_new_generation_and_reasserts_its_entries() {
    let window = Duration::from_secs(20);
    let nodes = cluster(3, window).await;
    let old = &nodes[2];
    old.db
        .send(CreateEntry {
            key: key("ep"),
            value: b"v".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    seen_by_all(&nodes, "ep", b"v").await;
    let a = nodes[0].db.clone();
    let old_generation = observe(&old.db).await.generation;
    let log = watch(&a).await;

    crash_and_wait_suspect(&old.db, &a, "node-2").await;

    // The restarted agent re-asserts what it owns from the start.
    let mut cfg = config("node-2", old.addr, &[nodes[0].addr], window);
    cfg.initial_entries = vec![(key("ep"), b"v".to_vec())];
    let new = NetworkDb::start(cfg).await.unwrap();
    let new_generation = observe(&new).await.generation;
    assert!(new_generation > old_generation);
    wait_until("new generation alive", T, || {
        let a = a.clone();
        async move {
            let state = observe(&a).await;
            let mine: Vec<_> = state
                .members
                .iter()
                .filter(|m| m.node_id == "node-2")
                .collect();
            mine.len() == 1
                && mine[0].generation == new_generation
                && mine[0].status == MemberStatus::Alive
        }
    })
    .await;
    new.send(CreateEntry {
        key: key("after"),
        value: b"a".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();
    seen_by_all(&nodes[..2], "after", b"a").await;
    assert_eq!(get(&a, "ep").await, Some(b"v".to_vec()));
    let got = events(&log);
    assert!(
        got.iter().all(|e| e.kind() != EventKind::Delete),
        "no flicker: {got:?}"
    );
}

/// A restarted owner that re-asserts its entries one by one and then says it is ready: no
/// peer sees a single event, though the new generation held only some of them for a while.
#[actix::test]
async fn a_restart_that_defers_ready_switches_generations_without_any_event() {
    let window = Duration::from_secs(20);
    let nodes = cluster(2, window).await;
    let (a, old) = (nodes[0].db.clone(), &nodes[1]);
    for k in ["ep1", "ep2"] {
        old.db
            .send(CreateEntry {
                key: key(k),
                value: b"v".to_vec(),
            })
            .await
            .unwrap()
            .unwrap();
    }
    seen_by_all(&nodes, "ep2", b"v").await;
    let log = watch(&a).await;
    crash_and_wait_suspect(&old.db, &a, "node-1").await;

    let mut cfg = config("node-1", old.addr, &[nodes[0].addr], window);
    cfg.defer_ready = true;
    let new = NetworkDb::start(cfg).await.unwrap();
    let new_generation = observe(&new).await.generation;
    new.send(CreateEntry {
        key: key("ep1"),
        value: b"v".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();
    // Several gossip rounds with only ep1 in the new generation: a still shows the old.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(&a, "ep2").await, Some(b"v".to_vec()));
    new.send(CreateEntry {
        key: key("ep2"),
        value: b"v".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();
    new.send(MarkReady).await.unwrap();
    wait_until("new generation alive", T, || {
        let a = a.clone();
        async move {
            let state = observe(&a).await;
            state
                .members
                .iter()
                .any(|m| m.generation == new_generation && m.status == MemberStatus::Alive)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let live: Vec<TableEvent> = events(&log).into_iter().filter(|e| !e.snapshot).collect();
    assert!(live.is_empty(), "{live:?}");
}
