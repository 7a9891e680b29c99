//! Named namespaces on the real kernel: idempotent create/delete, listing by prefix, `lo` up,
//! the shared idempotency scenario, and a re-created namespace getting a fresh socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{NsGuard, idempotency_scenario, ifname, require_root};
use weft_os::{BridgeSpec, Error, LinkOps, NetnsOps, NsRef, RealKernel, inventory};

#[tokio::test]
async fn create_list_delete_are_idempotent() {
    require_root();
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let (a, b) = (guard.name("a"), guard.name("b"));

    k.create_netns(&a).await.unwrap();
    k.create_netns(&a).await.unwrap();
    k.create_netns(&b).await.unwrap();
    assert!(k.netns_exists(&a).await.unwrap());
    assert_eq!(
        k.list_netns(&guard.prefix).await.unwrap(),
        vec![a.clone(), b.clone()]
    );

    let lo = k
        .get_link(&NsRef::named(&a), &ifname("lo"))
        .await
        .unwrap()
        .unwrap();
    assert!(lo.up, "lo must be up in a new namespace");

    k.delete_netns(&a).await.unwrap();
    k.delete_netns(&a).await.unwrap();
    assert!(!k.netns_exists(&a).await.unwrap());
    assert_eq!(k.list_netns(&guard.prefix).await.unwrap(), vec![b.clone()]);
    let err = k
        .get_link(&NsRef::named(&a), &ifname("lo"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NetnsNotFound { .. }), "{err}");
    guard.finish();
}

#[tokio::test]
async fn real_kernel_follows_the_idempotency_rules() {
    require_root();
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let name = guard.name("idem");
    k.create_netns(&name).await.unwrap();
    idempotency_scenario(&k, &NsRef::named(&name)).await;

    let inv = inventory(&k, &guard.prefix, "wt").await.unwrap();
    assert_eq!(inv.namespaces, vec![name.clone()]);
    assert!(
        inv.links[0].1.is_empty(),
        "nothing of ours in the host namespace"
    );
    let in_ns: Vec<String> = inv.links[1].1.iter().map(|l| l.name.to_string()).collect();
    assert_eq!(in_ns, ["wtbr0", "wtvx0"]);
    guard.finish();
}

#[tokio::test]
async fn recreated_namespace_is_not_served_by_a_stale_socket() {
    require_root();
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let name = guard.name("re");
    let ns = NsRef::named(&name);
    k.create_netns(&name).await.unwrap();
    k.create_bridge(&ns, &BridgeSpec::new(ifname("wtbr0")))
        .await
        .unwrap();
    assert!(k.get_link(&ns, &ifname("wtbr0")).await.unwrap().is_some());

    // Deleted behind the kernel object's back (as after a crash), then re-created.
    k.netns_dir().delete(&name).unwrap();
    k.netns_dir().create(&name).unwrap();
    assert!(k.get_link(&ns, &ifname("wtbr0")).await.unwrap().is_none());
    guard.finish();
}
