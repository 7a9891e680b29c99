//! Commits survive closing the store, and survive the process being killed with SIGKILL
//! right after `commit` returned (the child is this test binary, re-executed).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{endpoint, put, sandbox};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use weft_store::{Expect, Store, StoreError, Txn};
use weft_types::record::Record;
use weft_types::{EndpointRecord, SandboxRecord};

const CHILD_DIR_ENV: &str = "WEFT_STORE_TEST_CHILD_DIR";
const COMMITS: usize = 20;

#[test]
fn committed_values_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint("web-1");
    {
        let store = Store::open(dir.path()).unwrap();
        put(&store, &ep, Expect::Absent).unwrap();
        put(&store, &ep, Expect::Version(1)).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let got = store.get::<EndpointRecord>(&ep.key()).unwrap().unwrap();
    assert_eq!((got.version, got.value), (2, ep.clone()));
    // Versions keep counting after a reopen.
    assert_eq!(put(&store, &ep, Expect::Version(2)).unwrap(), 3);
}

#[test]
fn a_second_open_of_the_same_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(dir.path().to_str().unwrap()),
        "{err}"
    );
}

/// Runs only when re-executed by `commits_survive_sigkill`: commits, reports the keys on
/// stdout once every commit has returned, then waits to be killed.
#[test]
#[ignore = "helper process of commits_survive_sigkill"]
fn sigkill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let store = Store::open(dir.as_ref()).unwrap();
    let mut keys = Vec::new();
    for i in 0..COMMITS {
        let (ep, sb) = (endpoint(&format!("web-{i}")), sandbox(&format!("box-{i}")));
        let mut txn = Txn::new();
        txn.put(&ep, Expect::Absent).unwrap();
        txn.put(&sb, Expect::Absent).unwrap();
        store.commit(txn).unwrap();
        keys.push(format!("{} {}", ep.key(), sb.key()));
    }
    for k in &keys {
        println!("KEYS {k}");
    }
    println!("DONE");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
fn commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut keys = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        // libtest prints "test sigkill_child ... " before the child's first line.
        if line.ends_with("DONE") {
            break;
        }
        if let Some((_, rest)) = line.split_once("KEYS ") {
            let (ep, sb) = rest.split_once(' ').unwrap();
            keys.push((ep.to_owned(), sb.to_owned()));
        }
    }
    // Child::kill sends SIGKILL on Unix: no destructor or exit handler runs.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(keys.len(), COMMITS, "child did not report all its commits");

    let store = Store::open(dir.path()).unwrap();
    for (ep, sb) in &keys {
        assert_eq!(store.get::<EndpointRecord>(ep).unwrap().unwrap().version, 1);
        assert_eq!(store.get::<SandboxRecord>(sb).unwrap().unwrap().version, 1);
    }
    assert_eq!(store.list::<EndpointRecord>().unwrap().len(), COMMITS);
}
