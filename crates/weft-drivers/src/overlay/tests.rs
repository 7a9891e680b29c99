//! The overlay driver against the in-memory kernel: what joins and leaves leave in the kernel,
//! reconciliation, rollback on injected failures, validation; and the helpers shared with
//! [`super::peer_tests`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use weft_os::{
    AddrOps, FakeKernel, IfName, LinkInfo, LinkKind, LinkOps, NeighOps, NetnsOps, NsName, NsRef,
    Route, VethSpec, VxlanInfo, VxlanSpec,
};
use weft_types::{
    DriverName, EndpointId, EndpointRecord, MacAddr, NetworkId, NetworkRecord, Options, SandboxId,
    Scope, SubnetConfig,
};

use super::{OverlayConfig, OverlayDriver, OverlayNet, PEER_TABLE, PeerRecord, names};
pub(super) use crate::bridge::tests::{ctx, endpoint, sandbox};
use crate::{Driver, DriverError, EventNotify, Wanted};
use weft_types::VXLANID_OPTION;

pub(super) const VTEP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(super) const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub(super) const PREFIX: &str = "t-";
/// This node's id; the peer events of the tests come from "remote".
pub(super) const NODE: &str = "this-node";

/// An overlay network on 198.19.`n`.0/24 (gateway .1) with VNI 4096 + `n`: the bridge
/// tests' network, made global.
pub(super) fn network(n: u8) -> NetworkRecord {
    let vni = format!("{VXLANID_OPTION}={}", 4096 + u32::from(n));
    NetworkRecord {
        name: format!("ov{n}").parse().unwrap(),
        driver: DriverName::overlay(),
        scope: Scope::Global,
        attachable: true,
        options: Options::from_pairs([vni.as_str()]).unwrap(),
        ..crate::bridge::tests::network(n, false)
    }
}

/// The address 198.19.`n`.`host` of `net`'s subnet, with its prefix.
pub(super) fn addr(net: &NetworkRecord, host: u8) -> ipnet::IpNet {
    let IpAddr::V4(gw) = net.subnets[0].gateway else {
        panic!("test networks are IPv4")
    };
    let [a, b, c, _] = gw.octets();
    format!("{}/24", Ipv4Addr::new(a, b, c, host))
        .parse()
        .unwrap()
}

pub(super) fn mac_of(ip: ipnet::IpNet) -> MacAddr {
    match ip.addr() {
        IpAddr::V4(v4) => MacAddr::from_ipv4(v4),
        IpAddr::V6(_) => panic!("test addresses are IPv4"),
    }
}

/// A remote endpoint of `net` at `host`, behind VTEP `REMOTE`.
pub(super) fn remote(net: &NetworkRecord, host: u8) -> PeerRecord {
    let ip = addr(net, host);
    PeerRecord {
        ip,
        mac: mac_of(ip),
        vtep: REMOTE,
    }
}

pub(super) fn event(net: &NetworkRecord, key: &str, value: Option<&PeerRecord>) -> EventNotify {
    EventNotify {
        network: net.id.clone(),
        table: PEER_TABLE.to_owned(),
        key: key.to_owned(),
        owner: "node-2".to_owned(),
        prev: None,
        value: value.map(|p| p.encode().unwrap()),
    }
}

pub(super) fn ifn(s: &str) -> IfName {
    IfName::new(s).unwrap()
}

/// A kernel whose host holds the underlay `eth0` (MTU `mtu`, the VTEP address), and a driver.
pub(super) async fn setup_with(
    mtu: u32,
    config_mtu: Option<u32>,
) -> (Arc<FakeKernel>, OverlayDriver) {
    let k = Arc::new(FakeKernel::new());
    k.seed_link(&NsRef::Host, &ifn("eth0"), mtu).unwrap();
    k.add_address(&NsRef::Host, &ifn("eth0"), "192.0.2.1/24".parse().unwrap())
        .await
        .unwrap();
    let config = OverlayConfig {
        mtu: config_mtu,
        stray_grace: std::time::Duration::ZERO,
        ..OverlayConfig::new(PREFIX, NODE, VTEP)
    };
    (k.clone(), OverlayDriver::new(k, config))
}

pub(super) async fn setup() -> (Arc<FakeKernel>, OverlayDriver) {
    setup_with(1500, None).await
}

pub(super) async fn make_sandbox(k: &FakeKernel, name: &str) -> (NsName, NsRef) {
    let ns = NsName::new(name).unwrap();
    k.create_netns(&ns).await.unwrap();
    (ns.clone(), NsRef::named(&ns))
}

/// The network's namespace and parsed definition (device names).
pub(super) fn ov(net: &NetworkRecord) -> (NsName, NsRef, OverlayNet) {
    let ns = names::netns(PREFIX, &net.id).unwrap();
    (
        ns.clone(),
        NsRef::named(&ns),
        OverlayNet::from_record(net).unwrap(),
    )
}

pub(super) async fn link(k: &FakeKernel, ns: &NsRef, name: &IfName) -> Option<LinkInfo> {
    k.get_link(ns, name).await.unwrap()
}

/// Creates the sandbox `sb-<tag>` and joins a new endpoint of `net` at `host` as eth0.
pub(super) async fn join(
    k: &FakeKernel,
    d: &OverlayDriver,
    net: &NetworkRecord,
    host: u8,
) -> EndpointRecord {
    let (ns, _) = make_sandbox(k, &format!("sb-{}-{host}", net.name)).await;
    let ep = endpoint(net, host);
    d.join(net, &ep, &sandbox(), &ctx(&ns, "eth0", true))
        .await
        .unwrap();
    ep
}

/// Neighbour entries as (ip, mac) and FDB entries as (mac, dst), sorted.
pub(super) type Entries = (Vec<(IpAddr, MacAddr)>, Vec<(MacAddr, IpAddr)>);

/// The neighbour and FDB entries on the network's vxlan.
pub(super) async fn entries(
    k: &FakeKernel,
    net: &NetworkRecord,
) -> (Vec<(IpAddr, MacAddr)>, Vec<(MacAddr, IpAddr)>) {
    let (_, ns, o) = ov(net);
    let neigh = k.list_neighbours(&ns, &o.vxlan).await.unwrap();
    let fdb = k.list_fdb(&ns, &o.vxlan).await.unwrap();
    (
        neigh.into_iter().map(|n| (n.ip, n.mac)).collect(),
        fdb.into_iter().map(|e| (e.mac, e.dst)).collect(),
    )
}

pub(super) fn programmed(peers: &[PeerRecord]) -> Entries {
    let mut neigh: Vec<_> = peers.iter().map(|p| (p.ip.addr(), p.mac)).collect();
    let mut fdb: Vec<_> = peers.iter().map(|p| (p.mac, IpAddr::V4(p.vtep))).collect();
    neigh.sort();
    fdb.sort();
    (neigh, fdb)
}

#[tokio::test]
async fn the_first_join_builds_namespace_bridge_vxlan_and_veth() {
    let (k, d) = setup().await;
    let net = network(1);
    d.create_network(&net).await.unwrap();
    let (sb_name, sb) = make_sandbox(&k, "sb-first").await;
    let ep = endpoint(&net, 2);
    let info = d
        .join(&net, &ep, &sandbox(), &ctx(&sb_name, "eth0", true))
        .await
        .unwrap();

    let (ns_name, ns, o) = ov(&net);
    assert_eq!(ns_name.as_str(), format!("t-ov-{}", net.id.short()));
    assert!(k.netns_exists(&ns_name).await.unwrap());
    for table in ["iptables", "ip6tables", "arptables"] {
        let key =
            weft_os::SysctlKey::from_parts(["net", "bridge", &format!("bridge-nf-call-{table}")])
                .unwrap();
        assert_eq!(
            weft_os::SysctlOps::get_sysctl(&*k, &ns, &key)
                .await
                .unwrap(),
            "0",
            "{table}"
        );
    }
    let br = link(&k, &ns, &o.bridge).await.unwrap();
    assert_eq!((br.kind, br.mtu, br.up), (LinkKind::Bridge, 1450, true));
    assert_eq!(
        k.list_addresses(&ns, &o.bridge).await.unwrap(),
        vec!["198.19.1.1/24".parse().unwrap()]
    );
    let vx = link(&k, &ns, &o.vxlan).await.unwrap();
    let want = VxlanInfo {
        vni: 4097,
        port: 4789,
        local: Some(VTEP),
        underlay_index: None,
        learning: false,
        proxy: true,
    };
    assert_eq!(vx.kind, LinkKind::Vxlan(want));
    assert_eq!(
        (vx.mtu, vx.up, vx.master),
        (1450, true, Some(o.bridge.clone()))
    );
    assert!(link(&k, &NsRef::Host, &o.vxlan).await.is_none());
    // Asked for in the host, where its socket must live, and made inside: never moved (a
    // move waits for an RCU grace period).
    let calls = k.calls();
    let create = calls.iter().find(|c| c.op == "create_vxlan").unwrap();
    assert_eq!(create.ns, NsRef::Host);
    assert!(!calls.iter().any(|c| c.op == "move_link"), "{calls:?}");

    let ve = link(&k, &ns, &names::host_veth(&ep.id).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (ve.master, ve.mtu, ve.up),
        (Some(o.bridge.clone()), 1450, true)
    );
    let eth0 = link(&k, &sb, &ifn("eth0")).await.unwrap();
    assert_eq!((eth0.mac, eth0.mtu, eth0.up), (Some(ep.mac), 1450, true));
    assert_eq!(
        k.list_addresses(&sb, &ifn("eth0")).await.unwrap(),
        vec![ep.ipv4.unwrap()]
    );
    let route = Route {
        dev: Some(ifn("eth0")),
        ..Route::default_via("198.19.1.1".parse().unwrap())
    };
    assert_eq!(k.list_routes(&sb).await.unwrap(), vec![route]);

    assert_eq!(info.table_entries, d.published_entries(&net, &ep));
    let [entry] = info.table_entries.as_slice() else {
        panic!("{:?}", info.table_entries)
    };
    assert_eq!(
        (entry.table.as_str(), entry.key.as_str()),
        (PEER_TABLE, ep.id.as_str())
    );
    let rec = PeerRecord::decode(&entry.value).unwrap();
    assert_eq!(
        rec,
        PeerRecord {
            ip: ep.ipv4.unwrap(),
            mac: ep.mac,
            vtep: VTEP
        }
    );
}

#[tokio::test]
async fn networks_are_lazy_and_every_operation_is_idempotent() {
    let (k, d) = setup().await;
    let net = network(2);
    d.create_network(&net).await.unwrap();
    d.create_network(&net).await.unwrap();
    assert!(
        k.list_netns("").await.unwrap().is_empty(),
        "create_network made a namespace"
    );
    let (sb_name, sb) = make_sandbox(&k, "sb-idem").await;
    let ep = endpoint(&net, 2);
    let c = ctx(&sb_name, "eth0", false);
    d.join(&net, &ep, &sandbox(), &c).await.unwrap();
    d.join(&net, &ep, &sandbox(), &c).await.unwrap();
    let (ns_name, ns, o) = ov(&net);
    assert_eq!(k.list_links(&ns, "ve-").await.unwrap().len(), 1);
    assert_eq!(k.list_links(&ns, "vx-").await.unwrap().len(), 1);
    assert_eq!(k.list_addresses(&sb, &ifn("eth0")).await.unwrap().len(), 1);
    assert!(
        k.list_routes(&sb).await.unwrap().is_empty(),
        "no default route was asked for"
    );
    d.leave(&net, &ep, &SandboxId::random()).await.unwrap();
    d.leave(&net, &ep, &SandboxId::random()).await.unwrap();
    d.delete_endpoint(&net.id, &ep.id).await.unwrap();
    assert!(!k.netns_exists(&ns_name).await.unwrap());
    assert!(link(&k, &sb, &ifn("eth0")).await.is_none());
    d.delete_network(&net.id).await.unwrap();
    d.delete_network(&net.id).await.unwrap();
    assert!(link(&k, &NsRef::Host, &o.vxlan).await.is_none());
}

#[tokio::test]
async fn the_mtu_is_the_underlay_s_minus_50_unless_configured() {
    let (k, d) = setup_with(9000, None).await;
    let net = network(3);
    let ep = join(&k, &d, &net, 2).await;
    let (_, ns, o) = ov(&net);
    assert_eq!(link(&k, &ns, &o.vxlan).await.unwrap().mtu, 8950);
    let ve = names::host_veth(&ep.id).unwrap();
    assert_eq!(link(&k, &ns, &ve).await.unwrap().mtu, 8950);

    let (k, d) = setup_with(9000, Some(1400)).await;
    join(&k, &d, &net, 2).await;
    assert_eq!(link(&k, &ns, &o.bridge).await.unwrap().mtu, 1400);
    assert_eq!(link(&k, &ns, &o.vxlan).await.unwrap().mtu, 1400);

    // No link holds the VTEP address: a clear error, nothing made.
    let k = Arc::new(FakeKernel::new());
    let d = OverlayDriver::new(k.clone(), OverlayConfig::new(PREFIX, NODE, VTEP));
    let (sb, _) = make_sandbox(&k, "sb-mtu").await;
    let err = d
        .join(
            &net,
            &endpoint(&net, 2),
            &sandbox(),
            &ctx(&sb, "eth0", true),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("vtep address 192.0.2.1"), "{err}");
    assert_eq!(k.list_netns("t-ov-").await.unwrap(), vec![]);
}

#[tokio::test]
async fn the_last_leave_removes_the_namespace_and_other_networks_are_unaffected() {
    let (k, d) = setup().await;
    let (n1, n2) = (network(8), network(9));
    let (e1, e2) = (join(&k, &d, &n1, 2).await, join(&k, &d, &n1, 3).await);
    join(&k, &d, &n2, 2).await;
    let b = remote(&n2, 10);
    d.event_notify(&event(&n2, "b", Some(&b))).await.unwrap();
    let ((ns1, _, o1), (ns2, ov2, o2)) = (ov(&n1), ov(&n2));

    d.leave(&n1, &e1, &SandboxId::random()).await.unwrap();
    assert!(
        k.netns_exists(&ns1).await.unwrap(),
        "removed with an endpoint left"
    );
    d.leave(&n1, &e2, &SandboxId::random()).await.unwrap();
    assert!(!k.netns_exists(&ns1).await.unwrap());
    assert!(link(&k, &NsRef::Host, &o1.vxlan).await.is_none());

    assert!(link(&k, &ov2, &o2.vxlan).await.unwrap().up);
    assert_eq!(k.list_links(&ov2, "ve-").await.unwrap().len(), 1);
    assert_eq!(entries(&k, &n2).await, programmed(&[b]));
    // The VNI was freed: the network comes back at the next join.
    join(&k, &d, &n1, 4).await;
    assert!(k.netns_exists(&ns1).await.unwrap() && k.netns_exists(&ns2).await.unwrap());
}

#[tokio::test]
async fn delete_endpoint_cleans_up_after_a_missed_leave() {
    let (k, d) = setup().await;
    let net = network(10);
    let ep = join(&k, &d, &net, 2).await;
    d.delete_endpoint(&net.id, &ep.id).await.unwrap();
    assert!(!k.netns_exists(&ov(&net).0).await.unwrap());
}

#[tokio::test]
async fn delete_network_removes_the_namespace_and_forgets_peers() {
    let (k, d) = setup().await;
    let net = network(11);
    join(&k, &d, &net, 2).await;
    d.event_notify(&event(&net, "a", Some(&remote(&net, 10))))
        .await
        .unwrap();
    d.delete_network(&net.id).await.unwrap();
    assert!(!k.netns_exists(&ov(&net).0).await.unwrap());
    assert!(d.peers(&net.id).await.is_empty());
}

#[tokio::test]
async fn reconcile_adopts_leftovers_recreates_veths_and_removes_what_is_unwanted() {
    let (k, d) = setup().await;
    let (keep, gone) = (network(13), network(14));
    let (sb_name, sb) = make_sandbox(&k, "sb-rec").await;
    let ep = endpoint(&keep, 2);
    d.join(&keep, &ep, &sandbox(), &ctx(&sb_name, "eth0", true))
        .await
        .unwrap();
    join(&k, &d, &gone, 2).await;
    let ((_, ns, o), (gone_ns, _, _)) = (ov(&keep), ov(&gone));
    let bridge_index = link(&k, &ns, &o.bridge).await.unwrap().index;

    // The "crash": the wanted veth is gone, the vxlan is back in the host (as if an earlier
    // version of the agent died between its creation there and its move), a stray veth
    // and a stranded vxlan appear.
    k.delete_link(&ns, &names::host_veth(&ep.id).unwrap())
        .await
        .unwrap();
    k.move_link(&ns, &o.vxlan, &NsRef::Host, None)
        .await
        .unwrap();
    let stray = names::host_veth(&EndpointId::random()).unwrap();
    k.create_veth(&ns, &VethSpec::new(stray.clone(), ifn("stray1")))
        .await
        .unwrap();
    let stranded = OverlayNet::from_record(&network(15)).unwrap().vxlan;
    let spec = VxlanSpec::new(stranded.clone(), weft_os::Vni::new(4111).unwrap());
    k.create_vxlan(&NsRef::Host, &spec).await.unwrap();

    let lookalike = NsName::new("t-ov-notours").unwrap();
    k.create_netns(&lookalike).await.unwrap();

    let d = OverlayDriver::new(k.clone(), OverlayConfig::new(PREFIX, NODE, VTEP));
    let wanted = Wanted {
        networks: vec![keep.clone(), gone.clone()],
        endpoints: vec![(ep.clone(), Some(ctx(&sb_name, "eth0", true)))],
    };
    d.reconcile(&wanted).await.unwrap();

    // The one in the host held the VNI: removed, and the vxlan made inside again.
    let vx = link(&k, &ns, &o.vxlan).await.unwrap();
    assert!(vx.up);
    assert_eq!(vx.master, Some(o.bridge.clone()));
    assert_eq!(link(&k, &ns, &o.bridge).await.unwrap().index, bridge_index);
    assert!(link(&k, &NsRef::Host, &o.vxlan).await.is_none());
    let ves: Vec<_> = k
        .list_links(&ns, "ve-")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(ves, vec![names::host_veth(&ep.id).unwrap()]);
    let eth0 = link(&k, &sb, &ifn("eth0")).await.unwrap();
    assert_eq!((eth0.mac, eth0.up), (Some(ep.mac), true));
    assert!(
        !k.netns_exists(&gone_ns).await.unwrap(),
        "a namespace without joins was kept"
    );
    assert!(link(&k, &NsRef::Host, &stranded).await.is_none());
    assert!(
        k.netns_exists(&lookalike).await.unwrap(),
        "a look-alike was deleted"
    );
    // Peers arriving now are programmed into the adopted namespace.
    let a = remote(&keep, 10);
    d.event_notify(&event(&keep, "a", Some(&a))).await.unwrap();
    assert_eq!(entries(&k, &keep).await, programmed(&[a]));
}

#[tokio::test]
async fn a_vxlan_left_holding_the_vni_elsewhere_is_removed_rather_than_failing() {
    let (k, d) = setup().await;
    let net = network(16);
    let (_, _, o) = ov(&net);
    // A namespace of this agent, left behind holding the VNI under another network's name;
    // the kernel then refuses the new vxlan with EEXIST.
    let other = NetworkId::random();
    let leftover_ns = names::netns(PREFIX, &other).unwrap();
    k.create_netns(&leftover_ns).await.unwrap();
    let leftover = names::vxlan(o.vni, &other).unwrap();
    k.create_vxlan(&NsRef::Host, &VxlanSpec::new(leftover.clone(), o.vni))
        .await
        .unwrap();
    let there = NsRef::named(&leftover_ns);
    k.move_link(&NsRef::Host, &leftover, &there, None)
        .await
        .unwrap();

    join(&k, &d, &net, 2).await;
    assert!(link(&k, &ov(&net).1, &o.vxlan).await.is_some());
    assert!(link(&k, &there, &leftover).await.is_none());
    let calls = k.calls();
    let creates = calls
        .iter()
        .filter(|c| c.op == "create_vxlan" && c.object == o.vxlan.as_str());
    assert_eq!(creates.count(), 2, "the first create met no conflict");
}

#[tokio::test]
async fn a_join_failing_midway_leaves_nothing_and_the_retry_succeeds() {
    for (op, object) in [
        ("create_bridge", None),
        ("add_address", None),
        ("create_vxlan", None),
        ("set_master", None),
        ("create_veth", None),
        ("set_link_up", Some("eth0")),
        ("replace_route", None),
    ] {
        let (k, d) = setup().await;
        let net = network(17);
        let (sb_name, sb) = make_sandbox(&k, "sb-fail").await;
        let ep = endpoint(&net, 2);
        match object {
            Some(object) => k.fail_on(op, object),
            None => k.fail_once(op),
        }
        let c = ctx(&sb_name, "eth0", true);
        let err = d
            .join(&net, &ep, &sandbox(), &c)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("failed to join"), "{op}: {err}");
        let (ns, _, o) = ov(&net);
        assert!(!k.netns_exists(&ns).await.unwrap(), "{op}: namespace left");
        assert!(
            link(&k, &NsRef::Host, &o.vxlan).await.is_none(),
            "{op}: vxlan left"
        );
        assert!(
            link(&k, &sb, &ifn("eth0")).await.is_none(),
            "{op}: eth0 left"
        );
        k.clear_failures();
        d.join(&net, &ep, &sandbox(), &c).await.unwrap();
    }
}

#[tokio::test]
async fn a_failed_join_keeps_a_namespace_other_endpoints_use() {
    let (k, d) = setup().await;
    let net = network(23);
    let first = join(&k, &d, &net, 2).await;
    let (sb_name, _) = make_sandbox(&k, "sb-second").await;
    k.fail_once("create_veth");
    let c = ctx(&sb_name, "eth0", true);
    d.join(&net, &endpoint(&net, 3), &sandbox(), &c)
        .await
        .unwrap_err();
    let (ns_name, ns, _) = ov(&net);
    assert!(k.netns_exists(&ns_name).await.unwrap());
    let ves: Vec<_> = k.list_links(&ns, "ve-").await.unwrap();
    assert_eq!(ves.len(), 1);
    assert_eq!(ves[0].name, names::host_veth(&first.id).unwrap());
}

#[test]
fn a_definition_names_the_problem() {
    let k = Arc::new(FakeKernel::new());
    let d = OverlayDriver::new(k, OverlayConfig::new(PREFIX, NODE, VTEP));
    assert!(d.parse(&network(20)).is_ok());
    let check = |edit: &dyn Fn(&mut NetworkRecord), want: &str| {
        let mut net = network(20);
        edit(&mut net);
        let err = d.parse(&net).unwrap_err();
        assert!(matches!(err, DriverError::InvalidParameter { .. }), "{err}");
        assert!(err.to_string().contains(want), "{want}: {err}");
    };
    let opt = |v: &str| Options::from_pairs([format!("{VXLANID_OPTION}={v}").as_str()]).unwrap();
    check(&|n| n.options = Options::default(), "is missing");
    for (bad, want) in [
        ("0", "invalid vni \"0\""),
        ("16777216", "invalid vni \"16777216\""),
        ("abc", "invalid vni \"abc\""),
        ("", "invalid vni \"\""),
        ("4097,4098", "lists 2 vnis"),
    ] {
        check(&|n| n.options = opt(bad), want);
    }
    assert!(
        d.parse(&{
            let mut n = network(20);
            n.options = opt("16777215");
            n
        })
        .is_ok()
    );
    check(&|n| n.subnets.clear(), "needs an ipv4 subnet");
    let second = SubnetConfig {
        subnet: "198.19.21.0/24".parse().unwrap(),
        gateway: "198.19.21.1".parse().unwrap(),
        ip_range: None,
    };
    check(
        &|n| n.subnets.push(second.clone()),
        "one ipv4 subnet per network, got 2",
    );
    let v6 = SubnetConfig {
        subnet: "2001:db8::/64".parse().unwrap(),
        gateway: "2001:db8::1".parse().unwrap(),
        ip_range: None,
    };
    check(&|n| n.subnets.push(v6.clone()), "does not support ipv6");
    check(
        &|n| n.subnets[0].gateway = "198.19.99.1".parse().unwrap(),
        "not an ipv4 address inside",
    );
    check(
        &|n| {
            n.options =
                Options::from_pairs(["encrypted", &format!("{VXLANID_OPTION}=5000")]).unwrap()
        },
        "encrypted",
    );
    let with = |extra: &str| {
        Options::from_pairs([format!("{VXLANID_OPTION}=5000").as_str(), extra]).unwrap()
    };
    // Unknown keys were stored and silently ignored: a typo must be an error.
    for (bad, want) in [
        ("vxlanid_list=99999999", "unknown option \"vxlanid_list\""),
        (
            "vxlanid_list=5000",
            "did you mean com.docker.network.driver.overlay.vxlanid_list",
        ),
        ("com.example.x=1", "unknown option \"com.example.x\""),
        ("mtu=abc", "invalid mtu \"abc\""),
        ("mtu=67", "invalid mtu \"67\""),
        ("mtu=", "invalid mtu \"\""),
    ] {
        check(&|n| n.options = with(bad), want);
    }
    let mut net = network(20);
    net.options = with("mtu=1400");
    assert_eq!(OverlayNet::from_record(&net).unwrap().mtu, Some(1400));
    assert_eq!(OverlayNet::from_record(&network(20)).unwrap().mtu, None);
}

#[tokio::test]
async fn the_mtu_option_beats_the_underlay_and_the_driver_setting() {
    let (k, d) = setup_with(9000, Some(1400)).await;
    let mut net = network(23);
    net.options =
        Options::from_pairs([format!("{VXLANID_OPTION}=4123").as_str(), "mtu=1300"]).unwrap();
    let ep = join(&k, &d, &net, 2).await;
    let (_, ns, o) = ov(&net);
    assert_eq!(link(&k, &ns, &o.bridge).await.unwrap().mtu, 1300);
    assert_eq!(link(&k, &ns, &o.vxlan).await.unwrap().mtu, 1300);
    let ve = names::host_veth(&ep.id).unwrap();
    assert_eq!(link(&k, &ns, &ve).await.unwrap().mtu, 1300);
}

#[test]
fn declares_global_scope_and_the_peer_table() {
    let d = OverlayDriver::new(
        Arc::new(FakeKernel::new()),
        OverlayConfig::new(PREFIX, NODE, VTEP),
    );
    let cap = d.capability();
    assert_eq!(
        (cap.scope, cap.ipam, cap.host_namespace),
        (Scope::Global, true, false)
    );
    assert_eq!(d.name(), &DriverName::overlay());
    assert_eq!(d.event_tables(&network(22)), vec![PEER_TABLE.to_owned()]);
}
