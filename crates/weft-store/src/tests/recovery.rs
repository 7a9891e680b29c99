//! Recovery from failed writes: the sticky failure, the reopen, the roll-back of a
//! failed commit, and the space reserve on a full disk (faults injected, no root).

use super::*;
use std::sync::atomic::Ordering;

fn fail_next_flush(store: &Store) {
    store.faults().fail_next_flush.store(true, Ordering::SeqCst);
}

fn disk_full(store: &Store, full: bool) {
    store.faults().disk_full.store(full, Ordering::SeqCst);
}

fn teardown_delete<R: Record>(store: &Store, key: &str, expect: Expect) -> Result<(), StoreError> {
    let mut txn = Txn::new();
    txn.delete::<R>(key, expect)?.teardown();
    store.commit(txn).map(drop)
}

#[test]
fn a_failed_commit_is_rolled_back_when_the_store_reopens() {
    let (_dir, store) = open();
    let mut net = network("front");
    put(&store, &net, Expect::Absent).unwrap();
    net.lifecycle = Lifecycle::Ready;
    fail_next_flush(&store);
    let err = put(&store, &net, Expect::Version(1)).unwrap_err();
    assert!(err.is_unwritable(), "{err:?}");
    // Until it reopens, the store refuses writes even with nothing wrong any more.
    let health = store.health();
    assert_eq!(health.problem, None, "{health:?}");
    assert_eq!(health.write_failures, 1);
    // The update was applied in sled's memory and flushed when the old database was
    // dropped: the roll-back put version 1 back, the one the caller saw committed.
    let stored = store.get::<NetworkRecord>(&net.key()).unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.value.lifecycle, Lifecycle::Creating);
    assert_eq!(put(&store, &net, Expect::Version(1)).unwrap(), 2);
}

#[test]
fn every_clone_writes_again_after_the_reopen() {
    let (_dir, store) = open();
    let other = store.clone();
    fail_next_flush(&store);
    put(&store, &sandbox("box-1"), Expect::Absent).unwrap_err();
    // The reopen happens in the next commit, through another clone: the failed
    // database's handles held by every clone are gone, or sled's lock would refuse it.
    put(&other, &sandbox("box-2"), Expect::Absent).unwrap();
    let names: Vec<String> = store
        .list::<SandboxRecord>()
        .unwrap()
        .into_iter()
        .map(|v| v.value.name.to_string())
        .collect();
    assert_eq!(names, vec!["box-2".to_owned()]);
}

#[test]
fn a_failed_removal_goes_through_on_its_retry() {
    let (_dir, store) = open();
    let ep = endpoint("web-1");
    put(&store, &ep, Expect::Absent).unwrap();
    fail_next_flush(&store);
    teardown_delete::<EndpointRecord>(&store, &ep.key(), Expect::Version(1)).unwrap();
    assert!(store.get::<EndpointRecord>(&ep.key()).unwrap().is_none());
    let health = store.health();
    assert_eq!((health.problem, health.reserve_released), (None, false));
}

#[test]
fn a_full_disk_refuses_creates_and_lets_removals_spend_the_reserve() {
    let (dir, store) = open();
    let reserve = dir.path().join("store").join("space-reserve");
    assert!(reserve.exists(), "open writes the reserve");
    let (a, b) = (endpoint("a"), endpoint("b"));
    put(&store, &a, Expect::Absent).unwrap();
    put(&store, &b, Expect::Absent).unwrap();

    disk_full(&store, true);
    fail_next_flush(&store);
    let err = put(&store, &endpoint("c"), Expect::Absent).unwrap_err();
    assert!(matches!(err, StoreError::Full { .. }), "{err:?}");
    assert!(err.to_string().contains("is full"), "{err}");
    let health = store.health();
    assert!(health.problem.unwrap().contains("is full"));
    assert_eq!(health.write_failures, 1);
    let err = put(&store, &endpoint("c"), Expect::Absent).unwrap_err();
    assert!(matches!(err, StoreError::Full { .. }), "{err:?}");

    teardown_delete::<EndpointRecord>(&store, &a.key(), Expect::Version(1)).unwrap();
    assert!(!reserve.exists(), "the removal spent the reserve");
    let health = store.health();
    assert!(health.reserve_released);
    assert!(health.problem.is_some(), "creates still wait for space");
    let err = put(&store, &endpoint("c"), Expect::Absent).unwrap_err();
    assert!(matches!(err, StoreError::Full { .. }), "{err:?}");
    teardown_delete::<EndpointRecord>(&store, &b.key(), Expect::Version(1)).unwrap();

    disk_full(&store, false);
    let health = store.health();
    assert_eq!((health.problem, health.reserve_released), (None, false));
    assert!(reserve.exists(), "the reserve is written again");
    let c = endpoint("c");
    put(&store, &c, Expect::Absent).unwrap();
    let keys = store.list_raw_keys(EndpointRecord::KIND).unwrap();
    assert_eq!(
        keys,
        vec![c.key()],
        "the failed create of another c was rolled back"
    );
}

#[test]
fn a_conflict_does_not_fail_the_store() {
    let (_dir, store) = open();
    let sb = sandbox("box-1");
    put(&store, &sb, Expect::Absent).unwrap();
    assert!(put(&store, &sb, Expect::Absent).unwrap_err().is_conflict());
    let health = store.health();
    assert_eq!((health.problem, health.write_failures), (None, 0));
}
