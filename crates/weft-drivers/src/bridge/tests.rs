//! The bridge driver against the in-memory kernel: what each operation leaves in the
//! kernel, idempotence, rollback on injected failures, and reconciliation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use weft_os::{FakeKernel, IfName, LinkKind, NsName, NsRef, Route, SysctlKey};
use weft_types::{
    Attachment, DriverName, EndpointId, EndpointRecord, Lifecycle, MacAddr, NetworkId,
    NetworkRecord, Options, SandboxId, SandboxRecord, Scope, SubnetConfig,
};

use super::{BridgeDriver, names, nft};
use crate::{Driver, DriverError, JoinContext, Wanted};

/// A bridge network on 198.19.`n`.0/24 with gateway .1.
pub(crate) fn network(n: u8, internal: bool) -> NetworkRecord {
    NetworkRecord {
        id: NetworkId::random(),
        name: format!("net{n}").parse().unwrap(),
        driver: DriverName::bridge(),
        scope: Scope::Local,
        subnets: vec![SubnetConfig {
            subnet: format!("198.19.{n}.0/24").parse().unwrap(),
            gateway: format!("198.19.{n}.1").parse().unwrap(),
            ip_range: None,
        }],
        auto_subnet: false,
        ipv6: false,
        internal,
        attachable: false,
        options: Options::default(),
        labels: Default::default(),
        created_ms: 0,
        lifecycle: Lifecycle::Ready,
    }
}

/// An endpoint of `net` with address 198.19.x.`host`/24 and the MAC derived from it.
pub(crate) fn endpoint(net: &NetworkRecord, host: u8) -> EndpointRecord {
    let IpAddr::V4(gw) = net.subnets[0].gateway else {
        panic!("test networks are IPv4")
    };
    let [a, b, c, _] = gw.octets();
    let ip = std::net::Ipv4Addr::new(a, b, c, host);
    EndpointRecord {
        id: EndpointId::random(),
        name: format!("ep{host}").parse().unwrap(),
        network: net.id.clone(),
        ipv4: Some(format!("{ip}/24").parse().unwrap()),
        ipv6: None,
        mac: MacAddr::from_ipv4(ip),
        aliases: vec![],
        service: None,
        attachment: Attachment::Detached,
        interface: None,
        owner: None,
        created_ms: 0,
        lifecycle: Lifecycle::Ready,
    }
}

pub(crate) fn sandbox() -> SandboxRecord {
    SandboxRecord {
        id: SandboxId::random(),
        name: "sb".parse().unwrap(),
        hostname: None,
        created_ms: 0,
        lifecycle: Lifecycle::Ready,
    }
}

pub(crate) fn ctx(ns: &NsName, ifname: &str, default_route: bool) -> JoinContext {
    JoinContext {
        netns: ns.clone(),
        ifname: IfName::new(ifname).unwrap(),
        default_route,
    }
}

fn setup() -> (Arc<FakeKernel>, BridgeDriver) {
    let k = Arc::new(FakeKernel::new());
    (k.clone(), BridgeDriver::new(k))
}

async fn make_sandbox(k: &FakeKernel, name: &str) -> (NsName, NsRef) {
    let ns = NsName::new(name).unwrap();
    weft_os::NetnsOps::create_netns(k, &ns).await.unwrap();
    (ns.clone(), NsRef::named(&ns))
}

async fn host_links(k: &FakeKernel, prefix: &str) -> Vec<String> {
    let links = weft_os::LinkOps::list_links(k, &NsRef::Host, prefix)
        .await
        .unwrap();
    links.into_iter().map(|l| l.name.to_string()).collect()
}

fn ifn(s: &str) -> IfName {
    IfName::new(s).unwrap()
}

use weft_os::{AddrOps, FirewallOps, LinkOps, SysctlOps};

#[tokio::test]
async fn create_network_makes_the_bridge_with_gateway_and_mtu() {
    let (k, d) = setup();
    let mut net = network(1, false);
    net.options = Options::from_pairs(["mtu=1400"]).unwrap();
    d.create_network(&net).await.unwrap();
    let br = names::bridge(&net.id).unwrap();
    let link = k.get_link(&NsRef::Host, &br).await.unwrap().unwrap();
    assert_eq!(
        (link.kind, link.mtu, link.up),
        (LinkKind::Bridge, 1400, true)
    );
    let addrs = k.list_addresses(&NsRef::Host, &br).await.unwrap();
    assert_eq!(addrs, vec!["198.19.1.1/24".parse().unwrap()]);
    let fwd = SysctlKey::parse("net.ipv4.ip_forward").unwrap();
    assert_eq!(k.get_sysctl(&NsRef::Host, &fwd).await.unwrap(), "1");
    assert_eq!(
        k.list_tables(&NsRef::Host).await.unwrap(),
        vec![nft::table()]
    );
    // Again: adopted, not duplicated; the ruleset applies a second time.
    d.create_network(&net).await.unwrap();
    assert_eq!(host_links(&k, "wb-").await, vec![br.to_string()]);
    assert_eq!(k.rulesets(&NsRef::Host).len(), 2);
    assert_eq!(d.networks().len(), 1);
}

#[tokio::test]
async fn internal_network_leaves_forwarding_alone_and_default_mtu_is_1500() {
    let (k, d) = setup();
    let net = network(2, true);
    d.create_network(&net).await.unwrap();
    let br = names::bridge(&net.id).unwrap();
    assert_eq!(
        k.get_link(&NsRef::Host, &br).await.unwrap().unwrap().mtu,
        1500
    );
    let fwd = SysctlKey::parse("net.ipv4.ip_forward").unwrap();
    assert!(
        k.get_sysctl(&NsRef::Host, &fwd).await.is_err(),
        "ip_forward was written"
    );
}

#[test]
fn a_definition_is_checked_for_options_and_gateways() {
    let (_, d) = setup();
    let with = |opts: &[&str]| {
        let mut net = network(3, false);
        net.options = Options::from_pairs(opts.iter().copied()).unwrap();
        d.parse(&net)
    };
    assert!(with(&[]).is_ok());
    assert!(with(&["mtu=68"]).is_ok());
    assert!(with(&["mtu=65535"]).is_ok());
    for bad in ["mtu=67", "mtu=65536", "mtu=abc", "mtu="] {
        let err = with(&[bad]).unwrap_err();
        assert!(matches!(err, DriverError::InvalidParameter { .. }), "{bad}");
        assert!(err.to_string().contains("invalid mtu"), "{err}");
    }
    assert!(with(&["icc=false"]).is_ok() && with(&["icc=true"]).is_ok());
    let err = with(&["icc=no"]).unwrap_err();
    assert!(err.to_string().contains("invalid icc \"no\""), "{err}");
    let err = with(&["encrypted"]).unwrap_err();
    assert!(
        err.to_string().contains("does not support encrypted"),
        "{err}"
    );
    let err = with(&["com.example.x=1"]).unwrap_err();
    assert!(
        err.to_string().contains("unknown option \"com.example.x\""),
        "{err}"
    );
    let mut net = network(3, false);
    net.subnets[0].gateway = "198.19.4.1".parse().unwrap();
    let err = d.parse(&net).unwrap_err();
    assert!(err.to_string().contains("not inside subnet"), "{err}");
}

#[tokio::test]
async fn with_icc_off_every_port_is_isolated_and_otherwise_none() {
    let (k, d) = setup();
    let plain = network(7, false);
    let mut closed = network(8, false);
    closed.options = Options::from_pairs(["icc=false"]).unwrap();
    let (ns, _) = make_sandbox(&k, "sb-icc").await;
    for (net, ifname, isolated) in [(&plain, "eth0", false), (&closed, "eth1", true)] {
        d.create_network(net).await.unwrap();
        let ep = endpoint(net, 2);
        d.join(net, &ep, &sandbox(), &ctx(&ns, ifname, false))
            .await
            .unwrap();
        let wv = names::host_veth(&ep.id).unwrap();
        assert_eq!(k.port_isolated(&NsRef::Host, &wv), isolated, "{ifname}");
    }
}

#[tokio::test]
async fn join_builds_the_veth_and_configures_the_sandbox_end() {
    let (k, d) = setup();
    let mut net = network(5, false);
    net.options = Options::from_pairs(["mtu=1450"]).unwrap();
    d.create_network(&net).await.unwrap();
    let (ns, sb) = make_sandbox(&k, "sb-join").await;
    let ep = endpoint(&net, 2);
    d.join(&net, &ep, &sandbox(), &ctx(&ns, "eth0", true))
        .await
        .unwrap();

    let wv = names::host_veth(&ep.id).unwrap();
    let host_end = k.get_link(&NsRef::Host, &wv).await.unwrap().unwrap();
    assert_eq!(host_end.master, Some(names::bridge(&net.id).unwrap()));
    assert!(host_end.up && host_end.mtu == 1450);
    assert!(
        host_links(&k, "wp-").await.is_empty(),
        "the peer stayed in the host"
    );
    // One create makes the pair with its peer already in the sandbox: nothing is moved.
    let ops = k.call_ops();
    assert!(!ops.contains(&"move_link"), "{ops:?}");
    let creates: Vec<_> = k
        .calls()
        .into_iter()
        .filter(|c| c.op == "create_veth")
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(
        (creates[0].ns.clone(), creates[0].object.clone()),
        (NsRef::Host, wv.to_string())
    );
    let eth0 = k.get_link(&sb, &ifn("eth0")).await.unwrap().unwrap();
    assert_eq!((eth0.mac, eth0.mtu, eth0.up), (Some(ep.mac), 1450, true));
    assert_eq!(
        k.list_addresses(&sb, &ifn("eth0")).await.unwrap(),
        vec![ep.ipv4.unwrap()]
    );
    let want = Route {
        dev: Some(ifn("eth0")),
        ..Route::default_via("198.19.5.1".parse().unwrap())
    };
    assert_eq!(k.list_routes(&sb).await.unwrap(), vec![want]);
}

#[tokio::test]
async fn default_route_only_when_asked_and_not_internal() {
    let (k, d) = setup();
    let (plain, internal) = (network(6, false), network(7, true));
    d.create_network(&plain).await.unwrap();
    d.create_network(&internal).await.unwrap();
    let (ns, sb) = make_sandbox(&k, "sb-routes").await;
    let sbr = sandbox();
    d.join(&plain, &endpoint(&plain, 2), &sbr, &ctx(&ns, "eth0", false))
        .await
        .unwrap();
    d.join(
        &internal,
        &endpoint(&internal, 2),
        &sbr,
        &ctx(&ns, "eth1", true),
    )
    .await
    .unwrap();
    assert!(k.list_routes(&sb).await.unwrap().is_empty());
    assert_eq!(k.list_addresses(&sb, &ifn("eth1")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn join_is_idempotent_and_finishes_a_crashed_join() {
    let (k, d) = setup();
    let net = network(8, false);
    d.create_network(&net).await.unwrap();
    let (ns, sb) = make_sandbox(&k, "sb-idem").await;
    let ep = endpoint(&net, 3);
    let c = ctx(&ns, "eth0", true);
    d.join(&net, &ep, &sandbox(), &c).await.unwrap();
    d.join(&net, &ep, &sandbox(), &c).await.unwrap();
    assert_eq!(host_links(&k, "wv-").await.len(), 1);
    assert_eq!(k.list_addresses(&sb, &ifn("eth0")).await.unwrap().len(), 1);

    // A crash right after the create: the pair exists, the sandbox end is unconfigured.
    let ep2 = endpoint(&net, 4);
    let wv = names::host_veth(&ep2.id).unwrap();
    let spec = weft_os::VethSpec::new(wv.clone(), ifn("eth1")).peer_in(sb.clone());
    k.create_veth(&NsRef::Host, &spec).await.unwrap();
    let made = k.get_link(&sb, &ifn("eth1")).await.unwrap().unwrap();
    d.join(&net, &ep2, &sandbox(), &ctx(&ns, "eth1", false))
        .await
        .unwrap();
    let eth1 = k.get_link(&sb, &ifn("eth1")).await.unwrap().unwrap();
    assert_eq!(eth1.index, made.index, "the pair was not adopted");
    assert_eq!((eth1.mac, eth1.up), (Some(ep2.mac), true));
    assert_eq!(k.list_addresses(&sb, &ifn("eth1")).await.unwrap().len(), 1);
    let host_end = k.get_link(&NsRef::Host, &wv).await.unwrap().unwrap();
    assert_eq!(host_end.master, Some(names::bridge(&net.id).unwrap()));
}

#[tokio::test]
async fn join_finishes_what_an_older_create_then_move_join_left() {
    let (k, d) = setup();
    let net = network(18, false);
    d.create_network(&net).await.unwrap();
    let (ns, sb) = make_sandbox(&k, "sb-old").await;

    // Crashed before the move: both ends in the host. The pair is made again.
    let ep = endpoint(&net, 2);
    let (wv, wp) = (
        names::host_veth(&ep.id).unwrap(),
        names::peer_veth(&ep.id).unwrap(),
    );
    let old = weft_os::VethSpec::new(wv.clone(), wp.clone());
    k.create_veth(&NsRef::Host, &old).await.unwrap();
    d.join(&net, &ep, &sandbox(), &ctx(&ns, "eth0", true))
        .await
        .unwrap();
    assert!(
        host_links(&k, "wp-").await.is_empty(),
        "wp- left in the host"
    );
    assert_eq!(host_links(&k, "wv-").await, vec![wv.to_string()]);
    let eth0 = k.get_link(&sb, &ifn("eth0")).await.unwrap().unwrap();
    assert_eq!((eth0.mac, eth0.up), (Some(ep.mac), true));

    // Crashed right after the move (MAC and MTU not yet set): the pair is adopted and fixed.
    let mut net2 = network(19, false);
    net2.options = Options::from_pairs(["mtu=1400"]).unwrap();
    d.create_network(&net2).await.unwrap();
    let ep2 = endpoint(&net2, 2);
    let (wv2, wp2) = (
        names::host_veth(&ep2.id).unwrap(),
        names::peer_veth(&ep2.id).unwrap(),
    );
    let old = weft_os::VethSpec::new(wv2.clone(), wp2.clone());
    k.create_veth(&NsRef::Host, &old).await.unwrap();
    k.move_link(&NsRef::Host, &wp2, &sb, Some(&ifn("eth1")))
        .await
        .unwrap();
    let moved = k.get_link(&sb, &ifn("eth1")).await.unwrap().unwrap();
    d.join(&net2, &ep2, &sandbox(), &ctx(&ns, "eth1", false))
        .await
        .unwrap();
    let eth1 = k.get_link(&sb, &ifn("eth1")).await.unwrap().unwrap();
    assert_eq!(eth1.index, moved.index, "the moved end was not adopted");
    assert_eq!((eth1.mac, eth1.mtu, eth1.up), (Some(ep2.mac), 1400, true));
    let host_end = k.get_link(&NsRef::Host, &wv2).await.unwrap().unwrap();
    assert_eq!(host_end.mtu, 1400);
}

#[tokio::test]
async fn a_join_into_a_taken_ifname_fails_and_leaves_no_veth() {
    let (k, d) = setup();
    let net = network(20, false);
    d.create_network(&net).await.unwrap();
    let (ns, sb) = make_sandbox(&k, "sb-taken").await;
    k.seed_link(&sb, &ifn("eth0"), 1500).unwrap();
    let ep = endpoint(&net, 2);
    let err = d
        .join(&net, &ep, &sandbox(), &ctx(&ns, "eth0", true))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("eth0"), "{err}");
    assert!(host_links(&k, "wv-").await.is_empty(), "wv- left");
    assert!(k.get_link(&sb, &ifn("eth0")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_join_failing_midway_leaves_no_veth() {
    for (op, object) in [
        ("create_veth", None),
        ("set_master", None),
        ("set_link_up", None),
        ("add_address", None),
        ("set_link_up", Some("eth0")),
        ("replace_route", None),
    ] {
        let (k, d) = setup();
        let net = network(9, false);
        d.create_network(&net).await.unwrap();
        let (ns, sb) = make_sandbox(&k, "sb-fail").await;
        let ep = endpoint(&net, 2);
        match object {
            Some(object) => k.fail_on(op, object),
            None => k.fail_once(op),
        }
        let err = d
            .join(&net, &ep, &sandbox(), &ctx(&ns, "eth0", true))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("failed to join endpoint") && msg.contains(ep.id.short()),
            "{op}: {msg}"
        );
        // The failed step is kept, not flattened into the message.
        assert!(
            matches!(err.os_error(), Some(weft_os::Error::Injected { op: o, .. }) if o == op),
            "{op}: {err:?}"
        );
        assert!(host_links(&k, "wv-").await.is_empty(), "{op}: wv- left");
        assert!(host_links(&k, "wp-").await.is_empty(), "{op}: wp- left");
        assert!(
            k.get_link(&sb, &ifn("eth0")).await.unwrap().is_none(),
            "{op}: eth0 left"
        );
        // The retry succeeds.
        k.clear_failures();
        d.join(&net, &ep, &sandbox(), &ctx(&ns, "eth0", true))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn leave_and_deletes_are_idempotent_and_leave_nothing() {
    let (k, d) = setup();
    let net = network(10, false);
    d.create_network(&net).await.unwrap();
    let (ns, sb) = make_sandbox(&k, "sb-leave").await;
    let ep = endpoint(&net, 2);
    d.create_endpoint(&net, &ep).await.unwrap();
    d.join(&net, &ep, &sandbox(), &ctx(&ns, "eth0", true))
        .await
        .unwrap();
    let sid = SandboxId::random();
    d.leave(&net, &ep, &sid).await.unwrap();
    d.leave(&net, &ep, &sid).await.unwrap();
    assert!(k.get_link(&sb, &ifn("eth0")).await.unwrap().is_none());
    d.delete_endpoint(&net.id, &ep.id).await.unwrap();
    d.delete_network(&net.id).await.unwrap();
    d.delete_network(&net.id).await.unwrap();
    for p in names::OWNED_PREFIXES {
        assert!(host_links(&k, p).await.is_empty(), "{p} left");
    }
    assert!(k.list_tables(&NsRef::Host).await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_endpoint_removes_a_veth_a_missed_leave_left() {
    let (k, d) = setup();
    let net = network(11, false);
    d.create_network(&net).await.unwrap();
    let (ns, _) = make_sandbox(&k, "sb-missed").await;
    let ep = endpoint(&net, 2);
    d.join(&net, &ep, &sandbox(), &ctx(&ns, "eth0", true))
        .await
        .unwrap();
    d.delete_endpoint(&net.id, &ep.id).await.unwrap();
    assert!(host_links(&k, "wv-").await.is_empty());
}

#[tokio::test]
async fn reconcile_removes_unwanted_links_and_recreates_wanted_ones() {
    let (k, d) = setup();
    let (keep, gone) = (network(12, false), network(13, false));
    let (ns, sb) = make_sandbox(&k, "sb-rec").await;
    d.create_network(&keep).await.unwrap();
    d.create_network(&gone).await.unwrap();
    let (kept_ep, stale_ep) = (endpoint(&keep, 2), endpoint(&gone, 2));
    d.join(&keep, &kept_ep, &sandbox(), &ctx(&ns, "eth0", true))
        .await
        .unwrap();
    d.join(&gone, &stale_ep, &sandbox(), &ctx(&ns, "eth1", false))
        .await
        .unwrap();
    // Lost across the "crash": the wanted bridge and veth; a stray half-made pair appears.
    k.delete_link(&NsRef::Host, &names::bridge(&keep.id).unwrap())
        .await
        .unwrap();
    k.delete_link(&NsRef::Host, &names::host_veth(&kept_ep.id).unwrap())
        .await
        .unwrap();
    let stray = EndpointId::random();
    let spec = weft_os::VethSpec::new(
        names::host_veth(&stray).unwrap(),
        names::peer_veth(&stray).unwrap(),
    );
    k.create_veth(&NsRef::Host, &spec).await.unwrap();
    let lookalike = weft_os::BridgeSpec::new(ifn("wb-notours"));
    k.create_bridge(&NsRef::Host, &lookalike).await.unwrap();

    let wanted = Wanted {
        networks: vec![keep.clone()],
        endpoints: vec![(kept_ep.clone(), Some(ctx(&ns, "eth0", true)))],
    };
    d.reconcile(&wanted).await.unwrap();

    let br = names::bridge(&keep.id).unwrap().to_string();
    assert_eq!(
        host_links(&k, "wb-").await,
        vec![br, "wb-notours".to_string()]
    );
    assert_eq!(
        host_links(&k, "wv-").await,
        vec![names::host_veth(&kept_ep.id).unwrap().to_string()]
    );
    assert!(host_links(&k, "wp-").await.is_empty());
    assert!(k.get_link(&sb, &ifn("eth0")).await.unwrap().unwrap().up);
    assert!(k.get_link(&sb, &ifn("eth1")).await.unwrap().is_none());
    assert_eq!(d.networks().len(), 1);
    let last = k.rulesets(&NsRef::Host).pop().unwrap();
    assert!(!last.contains(names::bridge(&gone.id).unwrap().as_str()));
}

#[tokio::test]
async fn reconcile_reports_every_teardown_error_and_still_builds() {
    let (k, d) = setup();
    let (a, b) = (EndpointId::random(), EndpointId::random());
    for id in [&a, &b] {
        let spec =
            weft_os::VethSpec::new(names::host_veth(id).unwrap(), names::peer_veth(id).unwrap());
        k.create_veth(&NsRef::Host, &spec).await.unwrap();
    }
    let (wa, wb) = (names::host_veth(&a).unwrap(), names::host_veth(&b).unwrap());
    k.fail_on("delete_link", wa.as_str());
    k.fail_on("delete_link", wb.as_str());
    let net = network(14, false);
    let wanted = Wanted {
        networks: vec![net.clone()],
        endpoints: vec![],
    };
    let err = d.reconcile(&wanted).await.unwrap_err().to_string();
    assert!(
        err.contains(wa.as_str()) && err.contains(wb.as_str()),
        "{err}"
    );
    assert!(
        k.get_link(&NsRef::Host, &names::bridge(&net.id).unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_failed_ruleset_undoes_the_new_bridge() {
    let (k, d) = setup();
    let net = network(15, false);
    k.fail_once("apply_ruleset");
    let err = d.create_network(&net).await.unwrap_err();
    assert!(err.to_string().contains("ruleset"), "{err}");
    assert!(host_links(&k, "wb-").await.is_empty());
    assert!(d.networks().is_empty());
    d.create_network(&net).await.unwrap();
}

#[tokio::test]
async fn the_applied_ruleset_follows_the_networks() {
    let (k, d) = setup();
    let (a, b) = (network(16, false), network(17, true));
    d.create_network(&a).await.unwrap();
    d.create_network(&b).await.unwrap();
    let json = k.rulesets(&NsRef::Host).pop().unwrap();
    let (ba, bb) = (names::bridge(&a.id).unwrap(), names::bridge(&b.id).unwrap());
    assert!(json.contains(ba.as_str()) && json.contains(bb.as_str()));
    assert!(json.contains("\"masquerade\"") && json.contains("198.19.16.0"));
    assert!(
        !json.contains("198.19.17.0"),
        "an internal network is masqueraded"
    );
    d.delete_network(&a.id).await.unwrap();
    let json = k.rulesets(&NsRef::Host).pop().unwrap();
    assert!(!json.contains(ba.as_str()));
    d.delete_network(&b.id).await.unwrap();
    assert!(k.list_tables(&NsRef::Host).await.unwrap().is_empty());
}
