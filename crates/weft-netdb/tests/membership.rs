//! Membership in an in-process cluster: graceful leave, failure and suspension, return
//! within the window, restart with a new generation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use weft_netdb::*;

const T: Duration = Duration::from_secs(5);

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

    old.db.send(Abort).await.unwrap();
    wait_until("old generation suspect", T, || {
        let a = a.clone();
        async move { status_of(&a, "node-2").await == Some(MemberStatus::Suspect) }
    })
    .await;

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
