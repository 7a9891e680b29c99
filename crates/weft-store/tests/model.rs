//! Random transactions against a BTreeMap model: the store agrees with the model after
//! every commit (including the rejected ones) and after a reopen.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use weft_store::{Expect, Store, StoreError, Txn};
use weft_types::record::Record;
use weft_types::{Lifecycle, SandboxId, SandboxRecord};

const KEYS: usize = 4;

/// An expectation, resolved against the model when the operation runs.
#[derive(Debug, Clone)]
enum Exp {
    Absent,
    /// The model's current version (absent: version 1, which is then wrong).
    Current,
    /// The current version plus a non-zero offset: always wrong.
    Stale(u64),
    Any,
}

#[derive(Debug, Clone)]
enum Op {
    Put { key: usize, created: u64, exp: Exp },
    Delete { key: usize, exp: Exp },
}

type Model = BTreeMap<String, (u64, SandboxRecord)>;

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        1 => Just(Exp::Absent),
        3 => Just(Exp::Current),
        1 => (1u64..3).prop_map(Exp::Stale),
        1 => Just(Exp::Any),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS, any::<u64>(), exp()).prop_map(|(key, created, exp)| Op::Put { key, created, exp }),
        1 => (0..KEYS, exp()).prop_map(|(key, exp)| Op::Delete { key, exp }),
    ]
}

fn id(key: usize) -> SandboxId {
    format!("{:064x}", key + 1).parse().unwrap()
}

fn record(key: usize, created: u64) -> SandboxRecord {
    SandboxRecord {
        id: id(key),
        name: format!("box-{key}").parse().unwrap(),
        hostname: None,
        created_ms: created,
        lifecycle: Lifecycle::Ready,
    }
}

fn resolve(exp: &Exp, current: Option<u64>) -> Expect {
    match exp {
        Exp::Absent => Expect::Absent,
        Exp::Current => Expect::Version(current.unwrap_or(1)),
        Exp::Stale(d) => Expect::Version(current.unwrap_or(0) + d),
        Exp::Any => Expect::Any,
    }
}

/// Applies `ops` to a copy of the model; returns the new model and the expected versions,
/// or `None` if an expectation fails.
fn apply_model(model: &Model, ops: &[Op], txn: &mut Txn) -> Option<(Model, Vec<u64>)> {
    let mut next = model.clone();
    let mut versions = Vec::new();
    let mut ok = true;
    for op in ops {
        let (key, exp) = match op {
            Op::Put { key, exp, .. } | Op::Delete { key, exp } => (*key, exp),
        };
        let k = id(key).to_string();
        let current = next.get(&k).map(|(v, _)| *v);
        let expect = resolve(exp, current);
        ok &= expect.matches(current);
        match op {
            Op::Put { created, .. } => {
                let rec = record(key, *created);
                txn.put(&rec, expect).unwrap();
                let v = current.map_or(1, |v| v + 1);
                next.insert(k, (v, rec));
                versions.push(v);
            }
            Op::Delete { .. } => {
                txn.delete::<SandboxRecord>(&k, expect).unwrap();
                next.remove(&k);
                versions.push(0);
            }
        }
    }
    ok.then_some((next, versions))
}

fn assert_agrees(store: &Store, model: &Model) {
    let listed: Model = store
        .list::<SandboxRecord>()
        .unwrap()
        .into_iter()
        .map(|v| (v.value.key(), (v.version, v.value)))
        .collect();
    assert_eq!(&listed, model);
    for key in 0..KEYS {
        let k = id(key).to_string();
        let got = store
            .get::<SandboxRecord>(&k)
            .unwrap()
            .map(|v| (v.version, v.value));
        assert_eq!(got.as_ref(), model.get(&k));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_model(txns in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        {
            let store = Store::open(dir.path()).unwrap();
            for ops in &txns {
                let mut txn = Txn::new();
                let expected = apply_model(&model, ops, &mut txn);
                let result = store.commit(txn);
                match (expected, result) {
                    (Some((next, versions)), Ok(got)) => {
                        prop_assert_eq!(got, versions);
                        model = next;
                    }
                    (None, Err(StoreError::Conflict { .. })) => {}
                    (expected, result) => {
                        prop_assert!(false, "model {:?} store {:?} for {:?}", expected, result, ops);
                    }
                }
                assert_agrees(&store, &model);
            }
        }
        let store = Store::open(dir.path()).unwrap();
        assert_agrees(&store, &model);
    }
}
