//! Sealed gossip in an in-process cluster: foreign keys are ignored, garbage is counted,
//! the keyring rotates while entries keep converging.

mod common;

use std::time::Duration;

use common::*;
use weft_keys::{KeyId, SymmetricKey};
use weft_netdb::*;

const T: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(30);

#[actix::test]
async fn a_node_sealing_with_a_key_outside_the_ring_is_ignored() {
    let nodes = cluster(2, WINDOW).await;
    let seed = nodes[0].addr;
    let mut unknown_id = config("intruder-1", free_addr(), &[seed], WINDOW);
    unknown_id.keyring = keyring(9, 7);
    let mut wrong_bytes = config("intruder-2", free_addr(), &[seed], WINDOW);
    wrong_bytes.keyring = keyring(1, 99);
    let i1 = NetworkDb::start(unknown_id).await.unwrap();
    let i2 = NetworkDb::start(wrong_bytes).await.unwrap();
    i1.send(CreateEntry {
        key: key("evil"),
        value: b"x".to_vec(),
    })
    .await
    .unwrap()
    .unwrap();

    let a = nodes[0].db.clone();
    wait_until("intruders' datagrams dropped", T, || {
        let a = a.clone();
        async move {
            let t = observe(&a).await.transport;
            t.dropped_unknown_key > 3 && t.dropped_authentication > 3
        }
    })
    .await;
    nodes[1]
        .db
        .send(CreateEntry {
            key: key("good"),
            value: b"g".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    wait_value(std::slice::from_ref(&a), "good", Some(b"g"), T).await;
    let state = observe(&a).await;
    assert_eq!(state.members.len(), 2, "{:?}", state.members);
    assert_eq!(get(&a, "evil").await, None);
    assert_eq!(alive_count(&i1).await, 1, "the intruder learned nobody");
    assert_eq!(alive_count(&i2).await, 1);
}

#[actix::test]
async fn garbage_datagrams_are_counted_and_gossip_goes_on() {
    let nodes = cluster(2, WINDOW).await;
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = nodes[0].addr;
    let mut payloads: Vec<Vec<u8>> =
        vec![vec![], vec![1], vec![1; 20], vec![9; 200], vec![0xff; 1500]];
    // The current frame version (2), key id 1, then garbage instead of a sealed body.
    let mut forged = vec![2u8, 0, 0, 0, 1];
    forged.extend_from_slice(&[0u8; 60]);
    payloads.push(forged);
    for p in &payloads {
        junk.send_to(p, target).unwrap();
    }
    let a = nodes[0].db.clone();
    let sent = payloads.len() as u64;
    wait_until("garbage counted", T, || {
        let a = a.clone();
        async move { observe(&a).await.transport.dropped() >= sent }
    })
    .await;
    let t = observe(&a).await.transport;
    assert_eq!(t.dropped_truncated, 3);
    assert_eq!(t.dropped_bad_version, 2);
    assert_eq!(t.dropped_authentication, 1);
    nodes[1]
        .db
        .send(CreateEntry {
            key: key("still"),
            value: b"ok".to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
    wait_value(std::slice::from_ref(&a), "still", Some(b"ok"), T).await;
}

async fn all_hold(nodes: &[Node], ids: &[KeyId], primary: KeyId) {
    for observer in nodes {
        let db = observer.db.clone();
        let want = ids.to_vec();
        wait_until("keyring converged", T, || {
            let db = db.clone();
            let want = want.clone();
            async move {
                let s = observe(&db).await;
                s.members
                    .iter()
                    .all(|m| m.key_ids == want && m.primary_key == Some(primary))
            }
        })
        .await;
    }
}

#[actix::test]
async fn keyring_rotates_while_entries_keep_converging() {
    let nodes = cluster(3, WINDOW).await;
    let dbs: Vec<_> = nodes.iter().map(|n| n.db.clone()).collect();
    let new_key = SymmetricKey::generate(KeyId(2)).unwrap();

    // 1. install the new key everywhere, for opening only
    for db in &dbs {
        db.send(AddKey {
            key: new_key.clone(),
        })
        .await
        .unwrap()
        .unwrap();
    }
    all_hold(&nodes, &[KeyId(1), KeyId(2)], KeyId(1)).await;
    dbs[0]
        .send(CreateEntry {
            key: key("step1"),
            value: vec![1],
        })
        .await
        .unwrap()
        .unwrap();
    wait_value(&dbs, "step1", Some(&[1]), T).await;

    // 2. switch primaries one by one, entries converging in between
    for (i, db) in dbs.iter().enumerate() {
        db.send(SetPrimaryKey { id: KeyId(2) })
            .await
            .unwrap()
            .unwrap();
        let k = format!("switch{i}");
        db.send(CreateEntry {
            key: key(&k),
            value: vec![i as u8],
        })
        .await
        .unwrap()
        .unwrap();
        wait_value(&dbs, &k, Some(&[i as u8]), T).await;
    }
    all_hold(&nodes, &[KeyId(1), KeyId(2)], KeyId(2)).await;

    // 3. remove the old key everywhere
    for db in &dbs {
        db.send(RemoveKey { id: KeyId(1) }).await.unwrap().unwrap();
    }
    all_hold(&nodes, &[KeyId(2)], KeyId(2)).await;
    dbs[2]
        .send(UpdateEntry {
            key: key("switch2"),
            value: vec![42],
        })
        .await
        .unwrap()
        .unwrap();
    wait_value(&dbs, "switch2", Some(&[42]), T).await;

    for db in &dbs {
        let t = observe(db).await.transport;
        assert_eq!(t.dropped(), 0, "no datagram lost to rotation: {t:?}");
        assert_eq!(alive_count(db).await, 3);
    }
    let refused = dbs[0].send(RemoveKey { id: KeyId(2) }).await.unwrap();
    assert!(
        matches!(refused, Err(NetDbError::Keyring(_))),
        "{refused:?}"
    );
}

#[actix::test]
async fn observe_snapshot_serialises() {
    let nodes = cluster(2, WINDOW).await;
    nodes[0]
        .db
        .send(CreateEntry {
            key: key("k"),
            value: vec![1],
        })
        .await
        .unwrap()
        .unwrap();
    let state = observe(&nodes[0].db).await;
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json["node_id"], "node-0");
    assert_eq!(json["members"].as_array().unwrap().len(), 2);
    assert_eq!(json["members"][0]["status"], "alive");
    assert_eq!(json["tables"][0]["owned"], 1);
    assert_eq!(json["primary_key"], 1);
}
