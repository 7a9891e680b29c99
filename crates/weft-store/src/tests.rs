//! Unit tests of the store through its public API, plus raw hooks to damage values.

use crate::{Expect, Store, StoreError, Txn, Versioned};
use weft_types::record::Record;
use weft_types::*;

fn endpoint(name: &str) -> EndpointRecord {
    EndpointRecord {
        id: EndpointId::random(),
        name: name.parse().unwrap(),
        network: NetworkId::random(),
        ipv4: Some("198.19.0.2/24".parse().unwrap()),
        ipv6: None,
        mac: MacAddr::from_ipv4("198.19.0.2".parse().unwrap()),
        aliases: vec!["web".parse().unwrap()],
        service: None,
        attachment: Attachment::Joined(SandboxId::random()),
        interface: None,
        owner: None,
        created_ms: 1_700_000_000_000,
        lifecycle: Lifecycle::Ready,
    }
}

fn network(name: &str) -> NetworkRecord {
    NetworkRecord {
        id: NetworkId::random(),
        name: name.parse().unwrap(),
        driver: "bridge".parse().unwrap(),
        scope: Scope::Local,
        subnets: vec![SubnetConfig {
            subnet: "198.19.0.0/24".parse().unwrap(),
            gateway: "198.19.0.1".parse().unwrap(),
            ip_range: None,
        }],
        auto_subnet: false,
        ipv6: false,
        internal: false,
        attachable: true,
        options: Options::default(),
        labels: Labels::default(),
        created_ms: 1_700_000_000_000,
        lifecycle: Lifecycle::Creating,
    }
}

fn sandbox(name: &str) -> SandboxRecord {
    SandboxRecord {
        id: SandboxId::random(),
        name: name.parse().unwrap(),
        hostname: Some("host-1".parse().unwrap()),
        created_ms: 1_700_000_000_000,
        lifecycle: Lifecycle::Ready,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

fn put<R: Record>(store: &Store, record: &R, expect: Expect) -> Result<u64, StoreError> {
    let mut txn = Txn::new();
    txn.put(record, expect)?;
    Ok(store.commit(txn)?[0])
}

fn delete<R: Record>(store: &Store, key: &str, expect: Expect) -> Result<u64, StoreError> {
    let mut txn = Txn::new();
    txn.delete::<R>(key, expect)?;
    Ok(store.commit(txn)?[0])
}

#[test]
fn put_get_list_round_trip_of_every_record_kind() {
    let (_dir, store) = open();
    let (net, ep, sb) = (network("front"), endpoint("web-1"), sandbox("box-1"));
    let mut txn = Txn::new();
    txn.put(&net, Expect::Absent)
        .unwrap()
        .put(&ep, Expect::Absent)
        .unwrap()
        .put(&sb, Expect::Absent)
        .unwrap();
    assert_eq!(store.commit(txn).unwrap(), vec![1, 1, 1]);

    let got = store.get::<NetworkRecord>(&net.key()).unwrap().unwrap();
    assert_eq!(
        got,
        Versioned {
            version: 1,
            value: net.clone()
        }
    );
    assert_eq!(
        store
            .get::<EndpointRecord>(&ep.key())
            .unwrap()
            .unwrap()
            .value,
        ep
    );
    assert_eq!(
        store
            .get::<SandboxRecord>(&sb.key())
            .unwrap()
            .unwrap()
            .value,
        sb
    );
    assert!(store.get::<NetworkRecord>(&ep.key()).unwrap().is_none());

    let ep2 = endpoint("web-2");
    put(&store, &ep2, Expect::Absent).unwrap();
    let mut listed: Vec<_> = store.list::<EndpointRecord>().unwrap();
    listed.sort_by(|a, b| a.value.name.as_str().cmp(b.value.name.as_str()));
    assert_eq!(
        listed.iter().map(|v| &v.value).collect::<Vec<_>>(),
        vec![&ep, &ep2]
    );
    assert_eq!(store.list::<NetworkRecord>().unwrap().len(), 1);
    let mut keys = store.list_raw_keys("endpoint").unwrap();
    keys.sort();
    let mut want = vec![ep.key(), ep2.key()];
    want.sort();
    assert_eq!(keys, want);
}

#[test]
fn versions_start_at_one_and_increment_on_every_put() {
    let (_dir, store) = open();
    let mut ep = endpoint("web-1");
    assert_eq!(put(&store, &ep, Expect::Absent).unwrap(), 1);
    ep.lifecycle = Lifecycle::Deleting;
    assert_eq!(put(&store, &ep, Expect::Version(1)).unwrap(), 2);
    assert_eq!(put(&store, &ep, Expect::Any).unwrap(), 3);
    let got = store.get::<EndpointRecord>(&ep.key()).unwrap().unwrap();
    assert_eq!((got.version, got.value), (3, ep));
}

#[test]
fn stale_update_fails_and_keeps_the_old_value() {
    let (_dir, store) = open();
    let mut ep = endpoint("web-1");
    put(&store, &ep, Expect::Absent).unwrap();
    put(&store, &ep, Expect::Version(1)).unwrap();
    let before = store.get::<EndpointRecord>(&ep.key()).unwrap().unwrap();
    ep.lifecycle = Lifecycle::Deleting;
    let err = put(&store, &ep, Expect::Version(1)).unwrap_err();
    match &err {
        StoreError::Conflict {
            kind,
            key,
            expected,
            found,
        } => {
            assert_eq!(
                (kind.as_str(), key.as_str()),
                ("endpoint", ep.key().as_str())
            );
            assert_eq!((*expected, *found), (Expect::Version(1), Some(2)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "record endpoint/{} has changed: expected version 1, found version 2",
            ep.key()
        )
    );
    assert_eq!(
        store.get::<EndpointRecord>(&ep.key()).unwrap().unwrap(),
        before
    );
}

#[test]
fn absent_on_existing_fails_and_version_on_missing_fails() {
    let (_dir, store) = open();
    let ep = endpoint("web-1");
    put(&store, &ep, Expect::Absent).unwrap();
    let err = put(&store, &ep, Expect::Absent).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { found: Some(1), .. }),
        "{err:?}"
    );
    let other = endpoint("web-2");
    let err = put(&store, &other, Expect::Version(1)).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { found: None, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .ends_with("expected version 1, found no record"),
        "{err}"
    );
    assert!(store.get::<EndpointRecord>(&other.key()).unwrap().is_none());
}

#[test]
fn delete_checks_the_version() {
    let (_dir, store) = open();
    let ep = endpoint("web-1");
    put(&store, &ep, Expect::Absent).unwrap();
    put(&store, &ep, Expect::Version(1)).unwrap();
    let err = delete::<EndpointRecord>(&store, &ep.key(), Expect::Version(1)).unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        store
            .get::<EndpointRecord>(&ep.key())
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        delete::<EndpointRecord>(&store, &ep.key(), Expect::Version(2)).unwrap(),
        0
    );
    assert!(store.get::<EndpointRecord>(&ep.key()).unwrap().is_none());
    // Idempotent delete of an absent record, and recreation starts again at version 1.
    assert_eq!(
        delete::<EndpointRecord>(&store, &ep.key(), Expect::Any).unwrap(),
        0
    );
    assert!(delete::<EndpointRecord>(&store, &ep.key(), Expect::Version(2)).is_err());
    assert_eq!(put(&store, &ep, Expect::Absent).unwrap(), 1);
}

#[test]
fn a_conflict_in_the_last_op_writes_nothing() {
    let (_dir, store) = open();
    let (net, sb, ep) = (network("front"), sandbox("box-1"), endpoint("web-1"));
    put(&store, &ep, Expect::Absent).unwrap();
    let mut txn = Txn::new();
    txn.put(&net, Expect::Absent).unwrap();
    txn.delete::<EndpointRecord>(&ep.key(), Expect::Version(1))
        .unwrap();
    txn.put(&sb, Expect::Version(4)).unwrap();
    let err = store.commit(txn).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { kind, .. } if kind == "sandbox"),
        "{err:?}"
    );
    assert!(store.get::<NetworkRecord>(&net.key()).unwrap().is_none());
    assert_eq!(
        store
            .get::<EndpointRecord>(&ep.key())
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert!(store.get::<SandboxRecord>(&sb.key()).unwrap().is_none());
}

#[test]
fn ops_on_the_same_key_apply_in_order() {
    let (_dir, store) = open();
    let ep = endpoint("web-1");
    let mut txn = Txn::new();
    txn.put(&ep, Expect::Absent).unwrap();
    txn.put(&ep, Expect::Version(1)).unwrap();
    txn.put(&ep, Expect::Version(2)).unwrap();
    assert_eq!(store.commit(txn).unwrap(), vec![1, 2, 3]);
    let mut txn = Txn::new();
    txn.delete::<EndpointRecord>(&ep.key(), Expect::Version(3))
        .unwrap();
    txn.put(&ep, Expect::Absent).unwrap();
    assert_eq!(store.commit(txn).unwrap(), vec![0, 1]);
    assert!(store.commit(Txn::new()).unwrap().is_empty());
}

#[test]
fn flipped_byte_is_reported_corrupt_by_get_and_list() {
    let (_dir, store) = open();
    let ep = endpoint("web-1");
    put(&store, &ep, Expect::Absent).unwrap();
    put(&store, &endpoint("web-2"), Expect::Absent).unwrap();
    let mut bytes = store.raw_get("endpoint", &ep.key()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    store.raw_put("endpoint", &ep.key(), &bytes);

    let err = store.get::<EndpointRecord>(&ep.key()).unwrap_err();
    let want = format!("record endpoint/{} is corrupt: checksum mismatch", ep.key());
    assert!(err.to_string().starts_with(&want), "{err}");
    let err = store.list::<EndpointRecord>().unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { kind, key, .. } if kind == "endpoint" && *key == ep.key()),
        "{err:?}"
    );
    // A commit does not overwrite it silently either.
    let err = put(&store, &ep, Expect::Any).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
}

#[test]
fn truncated_value_is_corrupt() {
    let (_dir, store) = open();
    let ep = endpoint("web-1");
    put(&store, &ep, Expect::Absent).unwrap();
    let bytes = store.raw_get("endpoint", &ep.key()).unwrap();
    for len in [0, 5, 12, bytes.len() - 1] {
        store.raw_put("endpoint", &ep.key(), &bytes[..len]);
        let err = store.get::<EndpointRecord>(&ep.key()).unwrap_err();
        assert!(err.is_corrupt(), "length {len}: {err:?}");
        assert!(err.to_string().contains(&ep.key()), "{err}");
    }
}

#[test]
fn other_schema_version_or_kind_is_corrupt() {
    let (_dir, store) = open();
    let ep = endpoint("web-1");
    // A well-framed value whose payload has schema version 9.
    let mut payload = wire::encode_record(&ep).unwrap();
    payload[1] = 9;
    payload[2] = 0;
    store.raw_put("endpoint", &ep.key(), &crate::envelope::seal(1, &payload));
    let err = store.get::<EndpointRecord>(&ep.key()).unwrap_err();
    assert!(err.to_string().contains("schema version 9"), "{err}");

    // A sandbox record stored under an endpoint key does not decode as an endpoint.
    let sb = sandbox("box-1");
    let payload = wire::encode_record(&sb).unwrap();
    store.raw_put("endpoint", &ep.key(), &crate::envelope::seal(1, &payload));
    assert!(
        store
            .get::<EndpointRecord>(&ep.key())
            .unwrap_err()
            .is_corrupt()
    );

    // A valid endpoint under another endpoint's key.
    let other = endpoint("web-2");
    let payload = wire::encode_record(&other).unwrap();
    store.raw_put("endpoint", &ep.key(), &crate::envelope::seal(1, &payload));
    let err = store.get::<EndpointRecord>(&ep.key()).unwrap_err();
    assert!(err.to_string().contains("holds the record of key"), "{err}");
}

#[test]
fn remove_corrupt_repairs_a_listing() {
    let (_dir, store) = open();
    let (good, bad) = (endpoint("web-1"), endpoint("web-2"));
    put(&store, &good, Expect::Absent).unwrap();
    put(&store, &bad, Expect::Absent).unwrap();
    store.raw_put("endpoint", &bad.key(), b"garbage");
    assert!(store.list::<EndpointRecord>().is_err());

    // What an operator tool does: walk the keys, find the unreadable ones, remove them.
    let corrupt: Vec<String> = store
        .list_raw_keys("endpoint")
        .unwrap()
        .into_iter()
        .filter(|k| store.get::<EndpointRecord>(k).is_err())
        .collect();
    assert_eq!(corrupt, vec![bad.key()]);
    assert!(store.remove_corrupt("endpoint", &bad.key()).unwrap());
    assert!(!store.remove_corrupt("endpoint", &bad.key()).unwrap());
    let listed = store.list::<EndpointRecord>().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].value, good);
}

#[test]
fn invalid_names_are_refused() {
    let (_dir, store) = open();
    assert!(matches!(
        store.get::<EndpointRecord>(""),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(store.list_raw_keys("a/b").is_err());
    assert!(store.remove_corrupt("", "x").is_err());
    assert!(
        Txn::new()
            .delete::<EndpointRecord>("", Expect::Any)
            .is_err()
    );
}

#[test]
fn format_marker_is_written_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    assert!(store.size_on_disk().unwrap() > 0);
    let marker = store.raw_db().get(b"meta/format").unwrap().unwrap();
    assert_eq!(marker.as_ref(), &crate::FORMAT.to_le_bytes());
    store
        .raw_db()
        .insert(b"meta/format", &7u64.to_le_bytes())
        .unwrap();
    store.raw_db().flush().unwrap();
    drop(store);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerFormat {
                found: 7,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
}

#[test]
fn debug_does_not_dump_the_contents() {
    let (_dir, store) = open();
    put(&store, &endpoint("web-1"), Expect::Absent).unwrap();
    let debug = format!("{store:?}");
    assert!(debug.starts_with("Store { path:"), "{debug}");
    assert!(!debug.contains("endpoint/"), "{debug}");
}

mod recovery;
