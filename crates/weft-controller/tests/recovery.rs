//! Restart: the state after reopening the store is the state before, IPAM is rebuilt
//! identically, and records left half-done by a crash are finished or undone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use weft_store::{Expect, Store, Txn};
use weft_types::record::Record;
use weft_types::{Attachment, EndpointRecord, Lifecycle, NetworkRecord, SandboxRecord};

#[tokio::test]
async fn restart_keeps_listings_and_allocations() {
    let h = Harness::new();
    let (networks, endpoints, sandboxes, ipam) = {
        let mut core = h.open().await.unwrap();
        core.create_network(network("a", "fake", Some("198.19.20.0/24")))
            .await
            .unwrap();
        core.create_network(network("b", "null", None))
            .await
            .unwrap();
        for i in 0..5 {
            core.create_endpoint("a", endpoint(&format!("e{i}")))
                .await
                .unwrap();
        }
        core.delete_endpoint("a", "e1", false).await.unwrap();
        core.create_sandbox(sandbox("s")).await.unwrap();
        core.join("a", "e2", "s").await.unwrap();
        (
            core.list_networks(),
            core.list_endpoints(None).unwrap(),
            core.list_sandboxes(),
            core.ipam_snapshot(),
        )
    };
    let mut core = h.open().await.unwrap();
    assert_eq!(core.list_networks(), networks);
    assert_eq!(core.list_endpoints(None).unwrap(), endpoints);
    assert_eq!(core.list_sandboxes(), sandboxes);
    assert_eq!(core.ipam_snapshot(), ipam);
    let next = core
        .create_endpoint("a", endpoint("new"))
        .await
        .unwrap()
        .ipv4
        .unwrap();
    assert!(
        endpoints.iter().all(|e| e.ipv4 != Some(next)),
        "{next} handed out twice"
    );
    assert_ne!(
        next.addr().to_string(),
        "198.19.20.1",
        "gateway stays reserved"
    );
    // A second auto network does not reuse the first one's subnet.
    let c = core
        .create_network(network("c", "null", None))
        .await
        .unwrap();
    assert!(
        networks
            .iter()
            .all(|n| n.subnets[0].subnet != c.subnets[0].subnet)
    );
}

/// Writes records straight into the store, as a crash between two steps leaves them.
fn plant<R: Record>(h: &Harness, records: &[R]) {
    let store = Store::open(h.dir.path()).unwrap();
    let mut txn = Txn::new();
    for r in records {
        txn.put(r, Expect::Any).unwrap();
    }
    store.commit(txn).unwrap();
}

fn stored<R: Record>(h: &Harness) -> Vec<R> {
    Store::open(h.dir.path())
        .unwrap()
        .list::<R>()
        .unwrap()
        .into_iter()
        .map(|v| v.value)
        .collect()
}

#[tokio::test]
async fn half_done_records_are_finished_or_undone_at_start() {
    let h = Harness::new();
    let (net, eps, sb) = {
        let mut core = h.open().await.unwrap();
        let net = core
            .create_network(network("a", "fake", Some("198.19.30.0/24")))
            .await
            .unwrap();
        for name in ["joining", "leaving", "creating", "deleting", "orphan-join"] {
            core.create_endpoint("a", endpoint(name)).await.unwrap();
        }
        core.create_network(network("doomed", "fake", Some("198.19.31.0/24")))
            .await
            .unwrap();
        core.create_endpoint("doomed", endpoint("x")).await.unwrap();
        core.create_network(network("half", "fake", Some("198.19.32.0/24")))
            .await
            .unwrap();
        let sb = core.create_sandbox(sandbox("s")).await.unwrap();
        drop(core);
        (net, stored::<EndpointRecord>(&h), sb)
    };
    let by_name = |n: &str| eps.iter().find(|e| e.name.as_str() == n).unwrap().clone();
    let mut planted = Vec::new();
    let mut e = by_name("joining");
    e.attachment = Attachment::Joining(sb.id.clone());
    planted.push(e);
    let mut e = by_name("leaving");
    e.attachment = Attachment::Leaving(sb.id.clone());
    planted.push(e);
    let mut e = by_name("creating");
    e.lifecycle = Lifecycle::Creating;
    planted.push(e);
    let mut e = by_name("deleting");
    e.lifecycle = Lifecycle::Deleting;
    planted.push(e);
    let mut e = by_name("orphan-join");
    e.attachment = Attachment::Joined(weft_types::SandboxId::random());
    planted.push(e);
    plant(&h, &planted);
    let mut networks = stored::<NetworkRecord>(&h);
    for n in &mut networks {
        match n.name.as_str() {
            "doomed" => n.lifecycle = Lifecycle::Deleting,
            "half" => n.lifecycle = Lifecycle::Creating,
            _ => {}
        }
    }
    plant(&h, &networks);
    let mut half_sandbox = stored::<SandboxRecord>(&h)[0].clone();
    half_sandbox.id = weft_types::SandboxId::random();
    half_sandbox.name = "half-sb".parse().unwrap();
    half_sandbox.lifecycle = Lifecycle::Creating;
    plant(&h, &[half_sandbox]);

    let core = h.open().await.unwrap();
    let names: Vec<String> = core
        .list_networks()
        .iter()
        .map(|n| n.name.to_string())
        .collect();
    assert_eq!(names, ["a"]);
    let eps: Vec<(String, Option<String>)> = core
        .list_endpoints(None)
        .unwrap()
        .into_iter()
        .map(|e| (e.name.to_string(), e.sandbox.map(|s| s.to_string())))
        .collect();
    let expected: Vec<(String, Option<String>)> = ["joining", "leaving", "orphan-join"]
        .iter()
        .map(|n| (n.to_string(), None))
        .collect();
    assert_eq!(eps, expected);
    assert_eq!(core.list_sandboxes().len(), 1);
    assert!(
        core.snapshot()
            .endpoints
            .values()
            .all(|(l, sb)| *l == Lifecycle::Ready && sb.is_none())
    );
    assert_eq!(core.snapshot().networks.len(), 1, "no half-present network");
    // Every store record is ready; nothing half-present remains on disk either.
    drop(core);
    assert!(
        stored::<NetworkRecord>(&h)
            .iter()
            .all(|n| n.lifecycle == Lifecycle::Ready)
    );
    assert!(
        stored::<EndpointRecord>(&h)
            .iter()
            .all(|e| e.lifecycle == Lifecycle::Ready && e.attachment == Attachment::Detached)
    );
    let mut core = h.open().await.unwrap();
    // The released subnets and addresses are usable again; kept ones are not reused.
    core.create_network(network("doomed", "fake", Some("198.19.31.0/24")))
        .await
        .unwrap();
    core.create_network(network("half", "fake", Some("198.19.32.0/24")))
        .await
        .unwrap();
    let kept: Vec<_> = core
        .list_endpoints(Some(net.id.as_str()))
        .unwrap()
        .iter()
        .map(|e| e.ipv4)
        .collect();
    let fresh = core.create_endpoint("a", endpoint("fresh")).await.unwrap();
    assert!(!kept.contains(&fresh.ipv4));
    assert!(h.fake.state().joins.is_empty());
}

#[tokio::test]
async fn a_corrupt_record_stops_start_with_its_name() {
    let h = Harness::new();
    let id = {
        let mut core = h.open().await.unwrap();
        core.create_network(network("a", "null", None))
            .await
            .unwrap()
            .id
    };
    // Overwrite the value with garbage through sled directly.
    {
        let db = sled::open(h.dir.path()).unwrap();
        let tree_names = db.tree_names();
        let mut hit = false;
        for name in tree_names {
            let tree = db.open_tree(&name).unwrap();
            for item in tree.iter() {
                let (k, v) = item.unwrap();
                if String::from_utf8_lossy(&k).contains(id.as_str()) {
                    let mut bad = v.to_vec();
                    let last = bad.len() - 1;
                    bad[last] ^= 0xff;
                    tree.insert(k, bad).unwrap();
                    hit = true;
                }
            }
        }
        assert!(hit, "found the record to corrupt");
        db.flush().unwrap();
    }
    let err = h.open().await.unwrap_err();
    assert!(
        err.message.contains(id.as_str()) || err.message.contains(id.short()),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn automatic_subnets_resume_after_the_newest_in_use_after_restart() {
    let h = Harness::new();
    {
        let mut core = h.open().await.unwrap();
        core.create_network(network("a", "null", None))
            .await
            .unwrap();
        core.create_network(network("b", "null", None))
            .await
            .unwrap();
    }
    let mut core = h.open().await.unwrap();
    core.delete_network("b", false).await.unwrap();
    let c = core
        .create_network(network("c", "null", None))
        .await
        .unwrap();
    assert_eq!(
        c.subnets[0].subnet.to_string(),
        "198.19.2.0/24",
        "the just-released 198.19.1.0/24 is not reused at once"
    );
}
