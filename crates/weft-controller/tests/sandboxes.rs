//! Sandboxes own a network namespace; joins name interfaces in join order and give the
//! default route to the first non-internal network; a sandbox on a host network is on
//! no other; and at start the kernel is made to match the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use weft_os::{NetnsOps, NsName};
use weft_store::Store;
use weft_types::{EndpointRecord, ErrorKind};

fn interfaces(h: &Harness) -> Vec<(String, Option<(String, bool)>)> {
    let store = Store::open(h.dir.path()).unwrap();
    let mut out: Vec<_> = store
        .list::<EndpointRecord>()
        .unwrap()
        .into_iter()
        .map(|v| {
            (
                v.value.name.to_string(),
                v.value.interface.map(|i| (i.name, i.default_route)),
            )
        })
        .collect();
    out.sort();
    out
}

async fn namespaces(h: &Harness) -> Vec<String> {
    h.kernel
        .list_netns("t-")
        .await
        .unwrap()
        .iter()
        .map(|n| n.to_string())
        .collect()
}

#[tokio::test]
async fn a_sandbox_is_a_namespace_removed_with_its_processes() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    let sb = core.create_sandbox(sandbox("s")).await.unwrap();
    let ns = format!("t-sb-{}", sb.id.short());
    assert_eq!(namespaces(&h).await, std::slice::from_ref(&ns));
    assert!(sb.netns.ends_with(&ns), "{}", sb.netns);
    core.delete_sandbox("s", false).await.unwrap();
    assert!(namespaces(&h).await.is_empty());
    let ops: Vec<String> = h.kernel.calls().iter().map(|c| c.op.to_string()).collect();
    let kill = ops
        .iter()
        .position(|o| o == "kill_all")
        .expect("processes killed");
    let delete = ops.iter().position(|o| o == "delete_netns").unwrap();
    assert!(kill < delete, "{ops:?}");
}

#[tokio::test]
async fn interfaces_in_join_order_and_one_default_route() {
    let h = Harness::new();
    {
        let mut core = h.open().await.unwrap();
        core.create_network(network("a", "fake", None))
            .await
            .unwrap();
        let mut internal = network("i", "fake", None);
        internal.internal = true;
        core.create_network(internal).await.unwrap();
        core.create_network(network("b", "fake", None))
            .await
            .unwrap();
        for (n, e) in [("i", "ei"), ("a", "ea"), ("b", "eb")] {
            core.create_endpoint(n, endpoint(e)).await.unwrap();
        }
        core.create_sandbox(sandbox("s")).await.unwrap();
        core.join("i", "ei", "s").await.unwrap();
        core.join("a", "ea", "s").await.unwrap();
        core.join("b", "eb", "s").await.unwrap();
        core.leave("i", "ei").await.unwrap();
        core.create_endpoint("i", endpoint("ei2")).await.unwrap();
        core.join("i", "ei2", "s").await.unwrap();
        let sb = core.inspect_sandbox("s").unwrap();
        let mut names: Vec<_> = sb
            .endpoints
            .iter()
            .map(|e| e.interface.clone().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["eth0", "eth1", "eth2"]);
    }
    assert_eq!(
        interfaces(&h),
        [
            ("ea".into(), Some(("eth1".into(), true))),
            ("eb".into(), Some(("eth2".into(), false))),
            ("ei".into(), None),
            ("ei2".into(), Some(("eth0".into(), false))),
        ],
        "internal networks never take the default route; the first free ethN is reused"
    );
}

#[tokio::test]
async fn a_sandbox_on_a_host_network_is_on_no_other() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    let mut with_subnet = network("h", "fakehost", Some("198.19.70.0/24"));
    let e = core.create_network(with_subnet.clone()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParameter, "{}", e.message);
    with_subnet.subnets.clear();
    let host = core.create_network(with_subnet).await.unwrap();
    assert!(host.subnets.is_empty());
    let ep = core.create_endpoint("h", endpoint("eh")).await.unwrap();
    assert!(ep.ipv4.is_none(), "no addresses on a host network");
    core.create_network(network("a", "fake", None))
        .await
        .unwrap();
    core.create_endpoint("a", endpoint("ea")).await.unwrap();
    core.create_sandbox(sandbox("s")).await.unwrap();
    core.join("h", "eh", "s").await.unwrap();
    let sb = core.inspect_sandbox("s").unwrap();
    assert_eq!(
        sb.netns,
        format!("/proc/{}/ns/net", std::process::id()),
        "runs in the host's namespace"
    );
    assert_eq!(
        core.join("a", "ea", "s").await.unwrap_err().kind,
        ErrorKind::Forbidden
    );
    core.leave("h", "eh").await.unwrap();
    core.join("a", "ea", "s").await.unwrap();
    assert_eq!(
        core.join("h", "eh", "s").await.unwrap_err().kind,
        ErrorKind::Forbidden
    );
}

#[tokio::test]
async fn start_makes_the_kernel_match_the_store() {
    let h = Harness::new();
    let kept = {
        let mut core = h.open().await.unwrap();
        core.create_network(network("a", "fake", None))
            .await
            .unwrap();
        core.create_endpoint("a", endpoint("e")).await.unwrap();
        let sb = core.create_sandbox(sandbox("s")).await.unwrap();
        core.join("a", "e", "s").await.unwrap();
        sb
    };
    let kept_ns = NsName::new(format!("t-sb-{}", kept.id.short())).unwrap();
    // Behind the agent's back: its sandbox namespace vanished, a stray one appeared, and
    // the driver forgot everything (as a reboot would do).
    h.kernel.delete_netns(&kept_ns).await.unwrap();
    h.kernel
        .create_netns(&NsName::new("t-sb-0123456789ab").unwrap())
        .await
        .unwrap();
    h.kernel
        .create_netns(&NsName::new("other-sb-keep").unwrap())
        .await
        .unwrap();
    h.fake.reconcile_reset();

    let core = h.open().await.unwrap();
    assert_eq!(namespaces(&h).await, [kept_ns.to_string()]);
    assert!(
        h.kernel
            .netns_exists(&NsName::new("other-sb-keep").unwrap())
            .await
            .unwrap(),
        "not ours: kept"
    );
    let state = h.fake.state();
    assert_eq!(state.networks.len(), 1);
    assert_eq!(state.joins.len(), 1, "the join was re-plumbed: {state:?}");
    assert_eq!(core.inspect_sandbox("s").unwrap().endpoints.len(), 1);
}
