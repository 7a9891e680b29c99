//! The in-memory fake: the same idempotency rules as the real kernel (the shared scenario),
//! the kernel side effects drivers rely on, call recording, and failure injection. No root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::borrow::Cow;

use common::{idempotency_scenario, ifname, peer_in_scenario};
use weft_os::nftables::batch::Batch;
use weft_os::nftables::schema::{Chain, NfListObject, Table};
use weft_os::nftables::types::NfFamily;
use weft_os::{
    AddrOps, BridgeSpec, CommandSpec, Error, FakeKernel, FdbEntry, Kernel, LinkOps, MacAddr,
    NeighOps, Neighbour, NetnsOps, NftTable, NsName, NsRef, Route, VethSpec,
};

fn ns(name: &str) -> (NsName, NsRef) {
    let n = NsName::new(name).unwrap();
    (n.clone(), NsRef::Named(n))
}

#[tokio::test]
async fn fake_follows_the_idempotency_rules() {
    let k = FakeKernel::new();
    let (name, r) = ns("wtos-fake");
    k.create_netns(&name).await.unwrap();
    k.create_netns(&name).await.unwrap();
    idempotency_scenario(&k, &r).await;
    assert_eq!(k.list_netns("wtos-").await.unwrap(), vec![name.clone()]);
    k.delete_netns(&name).await.unwrap();
    k.delete_netns(&name).await.unwrap();
    let err = k.list_links(&r, "").await.unwrap_err();
    assert!(matches!(err, Error::NetnsNotFound { .. }), "{err}");
}

#[tokio::test]
async fn fake_creates_a_veth_peer_in_another_namespace_like_the_kernel() {
    let k = FakeKernel::new();
    let ((na, a), (nb, b), (nc, c)) = (ns("pa"), ns("pb"), ns("pc"));
    for n in [&na, &nb, &nc] {
        k.create_netns(n).await.unwrap();
    }
    peer_in_scenario(&k, &a, &b, &c).await;
    // The peer landed in b as a real end of the pair: deleting b takes wta0 along.
    k.delete_netns(&nb).await.unwrap();
    assert!(k.get_link(&a, &ifname("wta0")).await.unwrap().is_none());
    // Nothing was moved.
    assert!(!k.call_ops().contains(&"move_link"));
}

#[tokio::test]
async fn moved_veth_end_behaves_like_the_kernel() {
    let k = FakeKernel::new();
    let ((na, a), (nb, b)) = (ns("a"), ns("b"));
    k.create_netns(&na).await.unwrap();
    k.create_netns(&nb).await.unwrap();
    let spec = VethSpec::new(ifname("wta0"), ifname("wtb0"));
    k.create_veth(&a, &spec).await.unwrap();
    k.add_address(&a, &spec.peer, "198.18.0.2/24".parse().unwrap())
        .await
        .unwrap();
    k.set_link_up(&a, &spec.peer).await.unwrap();

    let eth0 = ifname("eth0");
    k.move_link(&a, &spec.peer, &b, Some(&eth0)).await.unwrap();
    k.move_link(&a, &spec.peer, &b, Some(&eth0)).await.unwrap();
    let moved = k.get_link(&b, &eth0).await.unwrap().unwrap();
    assert!(!moved.up, "a moved link arrives down");
    assert!(k.list_addresses(&b, &eth0).await.unwrap().is_empty());

    // Deleting the namespace holding one end destroys the other end too.
    k.delete_netns(&nb).await.unwrap();
    assert!(k.get_link(&a, &spec.name).await.unwrap().is_none());
}

#[tokio::test]
async fn injected_failures_leave_the_model_untouched() {
    let k = FakeKernel::new();
    let (name, r) = ns("inj");
    k.create_netns(&name).await.unwrap();
    let br = BridgeSpec::new(ifname("wtbr0"));

    k.fail_once("create_bridge");
    let err = k.create_bridge(&r, &br).await.unwrap_err();
    assert!(matches!(err, Error::Injected { .. }), "{err}");
    assert!(k.get_link(&r, &br.name).await.unwrap().is_none());
    k.create_bridge(&r, &br).await.unwrap();

    k.fail_on("create_veth", "wtv9");
    let bad = VethSpec::new(ifname("wtv9"), ifname("wtv8"));
    let good = VethSpec::new(ifname("wtv1"), ifname("wtv2"));
    assert!(k.create_veth(&r, &bad).await.is_err());
    k.create_veth(&r, &good).await.unwrap();

    k.fail("delete_link");
    assert!(k.delete_link(&r, &good.name).await.is_err());
    assert!(k.delete_link(&r, &good.name).await.is_err());
    k.clear_failures();
    k.delete_link(&r, &good.name).await.unwrap();

    let ops = k.call_ops();
    assert_eq!(&ops[..3], ["create_netns", "create_bridge", "get_link"]);
    assert_eq!(ops.iter().filter(|op| **op == "delete_link").count(), 3);
    let calls = k.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.op == "create_veth" && c.object == "wtv9")
    );
}

#[tokio::test]
async fn fdb_neighbours_and_routes_have_replace_semantics() {
    let k = FakeKernel::new();
    let (name, r) = ns("ov");
    k.create_netns(&name).await.unwrap();
    let dev = ifname("wtbr0");
    k.create_bridge(&r, &BridgeSpec::new(dev.clone()))
        .await
        .unwrap();
    let mac = MacAddr([2, 0x42, 0, 0, 0, 9]);

    for dst in ["198.18.1.2", "198.18.1.3"] {
        let e = FdbEntry {
            dev: dev.clone(),
            mac,
            dst: dst.parse().unwrap(),
        };
        k.replace_fdb(&r, &e).await.unwrap();
    }
    let fdb = k.list_fdb(&r, &dev).await.unwrap();
    assert_eq!(fdb.len(), 1);
    assert_eq!(fdb[0].dst.to_string(), "198.18.1.3");
    k.delete_fdb(&r, &dev, mac).await.unwrap();
    k.delete_fdb(&r, &dev, mac).await.unwrap();

    let n = Neighbour {
        dev: dev.clone(),
        ip: "198.19.0.5".parse().unwrap(),
        mac,
    };
    k.replace_neighbour(&r, &n).await.unwrap();
    k.replace_neighbour(&r, &n).await.unwrap();
    assert_eq!(k.list_neighbours(&r, &dev).await.unwrap(), vec![n.clone()]);
    k.delete_neighbour(&r, &dev, n.ip).await.unwrap();
    k.delete_neighbour(&r, &dev, n.ip).await.unwrap();

    k.replace_route(&r, &Route::default_via("198.19.0.1".parse().unwrap()))
        .await
        .unwrap();
    k.replace_route(&r, &Route::default_via("198.19.0.2".parse().unwrap()))
        .await
        .unwrap();
    let routes = k.list_routes(&r).await.unwrap();
    assert_eq!(
        routes,
        vec![Route::default_via("198.19.0.2".parse().unwrap())]
    );
    // A route through a missing device is refused, as the kernel would.
    let via = Route::via_dev("198.19.9.0/24".parse().unwrap(), ifname("nope"));
    assert!(k.replace_route(&r, &via).await.is_err());
}

#[tokio::test]
async fn fake_rulesets_are_atomic_and_exec_reports_the_set_exit_code() {
    let k: std::sync::Arc<FakeKernel> = std::sync::Arc::new(FakeKernel::new());
    let dynk: std::sync::Arc<dyn Kernel> = k.clone();
    let (name, r) = ns("nft");
    dynk.create_netns(&name).await.unwrap();
    let table = |n: &str| Table {
        family: NfFamily::INet,
        name: Cow::Owned(n.into()),
        handle: None,
    };
    let mut good = Batch::new();
    good.add(NfListObject::Table(table("weft")));
    dynk.apply_ruleset(&r, &good.to_nftables()).await.unwrap();

    let mut bad = Batch::new();
    bad.add(NfListObject::Table(table("other")));
    bad.add(NfListObject::Chain(Chain {
        family: NfFamily::INet,
        table: Cow::Borrowed("missing"),
        name: Cow::Borrowed("c"),
        ..Chain::default()
    }));
    assert!(dynk.apply_ruleset(&r, &bad.to_nftables()).await.is_err());
    let weft = NftTable {
        family: NfFamily::INet,
        name: "weft".into(),
    };
    assert_eq!(dynk.list_tables(&r).await.unwrap(), vec![weft.clone()]);
    assert_eq!(k.rulesets(&r).len(), 1);
    dynk.delete_table(&r, &weft).await.unwrap();
    dynk.delete_table(&r, &weft).await.unwrap();
    assert!(dynk.list_tables(&r).await.unwrap().is_empty());

    k.set_exit_code(3);
    let p = dynk
        .spawn(&r, &CommandSpec::new("true", [] as [&str; 0]))
        .await
        .unwrap();
    assert_eq!(p.wait().await.unwrap(), 3);
}
