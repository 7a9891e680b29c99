//! Opening: what is and is not accepted as a store directory, and damage found through a
//! raw sled handle after the store was closed.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{endpoint, put};
use weft_store::{Expect, Store, StoreError};
use weft_types::EndpointRecord;
use weft_types::record::Record;

fn mentions_path(err: &StoreError, path: &std::path::Path) -> bool {
    err.to_string().contains(path.to_str().unwrap())
}

#[test]
fn creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/store");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    assert!(store.list::<EndpointRecord>().unwrap().is_empty());
}

#[test]
fn a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    std::fs::write(&path, b"hello").unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(mentions_path(&err, &path), "{err}");
}

#[test]
fn a_non_empty_directory_without_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    assert!(mentions_path(&err, dir.path()), "{err}");
    // Nothing was created in it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn garbage_sled_files_are_an_error_not_a_panic() {
    for (conf, db) in [
        (
            &b"not a config at all, but long enough"[..],
            &[0xffu8; 4096][..],
        ),
        (&b""[..], &b"garbage"[..]),
        (&[0u8; 64][..], &[0u8; 1 << 16][..]),
        // A plausible config with a bad checksum: sled reads the log as empty.
        (
            &b"segment_size: 524288\nuse_compression: false\nversion: 0.34\nvQ\xd1\x01"[..],
            &[0x5au8; 1 << 20][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), conf).unwrap();
        std::fs::write(dir.path().join("db"), db).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(mentions_path(&err, dir.path()), "{err}");
    }
}

#[test]
fn a_foreign_sled_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(b"someone", b"else").unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    assert!(err.to_string().contains("format marker"), "{err}");
}

#[test]
fn a_byte_flipped_on_disk_is_reported_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint("web-1");
    {
        let store = Store::open(dir.path()).unwrap();
        put(&store, &ep, Expect::Absent).unwrap();
    }
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree(b"objects").unwrap();
        let key = format!("endpoint/{}", ep.key());
        let mut value = tree.get(key.as_bytes()).unwrap().unwrap().to_vec();
        value[20] ^= 0x01;
        tree.insert(key.as_bytes(), value).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let err = store.get::<EndpointRecord>(&ep.key()).unwrap_err();
    assert_eq!(
        err.to_string().split(':').next().unwrap(),
        format!("record endpoint/{} is corrupt", ep.key())
    );
    assert!(store.list::<EndpointRecord>().unwrap_err().is_corrupt());
    assert!(store.remove_corrupt("endpoint", &ep.key()).unwrap());
    assert!(store.list::<EndpointRecord>().unwrap().is_empty());
}
