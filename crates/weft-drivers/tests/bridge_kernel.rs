//! The bridge driver on the real kernel, inside a namespace each test makes to stand in for
//! the host (see `common`): connectivity on one network, across two networks of one
//! sandbox, isolation between networks, internal networks, masquerade, teardown without
//! leftovers, and reconciliation after a crash. Addresses are from 198.19.0.0/16 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::records::{ctx, endpoint, network, sandbox};
use common::{Ctx, ping, reaches, run, tcp_works};
use weft_drivers::bridge::{names, nft};
use weft_drivers::{BridgeDriver, Driver, Wanted};
use weft_os::{AddrOps, FirewallOps, IfName, Kernel, LinkOps, NetnsOps, NsName, NsRef, VethSpec};
use weft_types::{EndpointRecord, NetworkRecord, SandboxId};

fn driver(c: &Ctx) -> BridgeDriver {
    BridgeDriver::new(c.kernel.clone() as Arc<dyn Kernel>)
}

async fn new_sandbox(c: &Ctx, suffix: &str) -> NsName {
    let ns = c.names.ns(suffix);
    c.kernel.create_netns(&ns).await.unwrap();
    ns
}

/// Creates endpoint 198.19.`n`.`host` of `net` and joins it to `ns` as `ifname`.
async fn attach(
    d: &BridgeDriver,
    net: &NetworkRecord,
    host: u8,
    ns: &NsName,
    ifname: &str,
) -> EndpointRecord {
    let n = net.name.as_str().trim_start_matches("net").parse().unwrap();
    let ep = endpoint(net, n, host);
    d.create_endpoint(net, &ep).await.unwrap();
    let default_route = ifname == "eth0";
    d.join(net, &ep, &sandbox(), &ctx(ns, ifname, default_route))
        .await
        .unwrap();
    ep
}

async fn owned_links(k: &dyn Kernel) -> Vec<String> {
    let mut all = Vec::new();
    for prefix in names::OWNED_PREFIXES {
        let links = k.list_links(&NsRef::Host, prefix).await.unwrap();
        all.extend(links.into_iter().map(|l| l.name.to_string()));
    }
    all
}

#[test]
fn two_sandboxes_on_one_network_talk_over_icmp_and_tcp() {
    run(|c| async move {
        let d = driver(&c);
        let net = network(1, false);
        d.create_network(&net).await.unwrap();
        let (a, b) = (new_sandbox(&c, "a").await, new_sandbox(&c, "b").await);
        attach(&d, &net, 2, &a, "eth0").await;
        attach(&d, &net, 3, &b, "eth0").await;
        let k = &*c.kernel;
        assert!(reaches(k, &a, "198.19.1.3").await, "a -> b (icmp)");
        assert!(reaches(k, &b, "198.19.1.2").await, "b -> a (icmp)");
        assert!(reaches(k, &a, "198.19.1.1").await, "a -> gateway");
        let server = "198.19.1.2:8080".parse().unwrap();
        assert!(tcp_works(&c.kernel, &a, server, &b).await, "b -> a (tcp)");
        let eth0 = k
            .get_link(&NsRef::named(&a), &IfName::new("eth0").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((eth0.mtu, eth0.up), (1500, true));
    });
}

#[test]
fn with_icc_off_sandboxes_reach_the_gateway_but_not_each_other() {
    run(|c| async move {
        let d = driver(&c);
        let mut net = network(1, false);
        net.options = weft_types::Options::from_pairs(["icc=false"]).unwrap();
        d.create_network(&net).await.unwrap();
        let (a, b) = (new_sandbox(&c, "a").await, new_sandbox(&c, "b").await);
        let ea = attach(&d, &net, 2, &a, "eth0").await;
        let eb = attach(&d, &net, 3, &b, "eth0").await;
        let k = &*c.kernel;
        assert!(reaches(k, &a, "198.19.1.1").await, "a -> gateway");
        assert!(reaches(k, &b, "198.19.1.1").await, "b -> gateway");
        assert!(!ping(k, &a, "198.19.1.3").await, "a reached b");
        let server = "198.19.1.2:8083".parse().unwrap();
        assert!(
            !tcp_works(&c.kernel, &a, server, &b).await,
            "b reached a over tcp"
        );
        // The ports' isolation is what keeps them apart.
        for ep in [&ea, &eb] {
            let port = names::host_veth(&ep.id).unwrap();
            k.set_port_isolated(&NsRef::Host, &port, false)
                .await
                .unwrap();
        }
        assert!(reaches(k, &a, "198.19.1.3").await, "without it they talk");
    });
}

#[test]
fn a_sandbox_on_two_networks_reaches_both() {
    run(|c| async move {
        let d = driver(&c);
        let (n1, n2) = (network(1, false), network(2, false));
        d.create_network(&n1).await.unwrap();
        d.create_network(&n2).await.unwrap();
        let (multi, on1, on2) = (
            new_sandbox(&c, "m").await,
            new_sandbox(&c, "x").await,
            new_sandbox(&c, "y").await,
        );
        attach(&d, &n1, 2, &multi, "eth0").await;
        attach(&d, &n2, 2, &multi, "eth1").await;
        attach(&d, &n1, 3, &on1, "eth0").await;
        attach(&d, &n2, 3, &on2, "eth0").await;
        let k = &*c.kernel;
        assert!(reaches(k, &multi, "198.19.1.3").await, "multi -> network 1");
        assert!(reaches(k, &multi, "198.19.2.3").await, "multi -> network 2");
        assert!(reaches(k, &on2, "198.19.2.2").await, "network 2 -> multi");
        let server = "198.19.2.3:8081".parse().unwrap();
        assert!(
            tcp_works(&c.kernel, &on2, server, &multi).await,
            "multi -> network 2 (tcp)"
        );
    });
}

#[test]
fn sandboxes_on_different_networks_are_isolated_by_the_ruleset() {
    run(|c| async move {
        let d = driver(&c);
        let (n1, n2) = (network(1, false), network(2, false));
        d.create_network(&n1).await.unwrap();
        d.create_network(&n2).await.unwrap();
        let (a, b) = (new_sandbox(&c, "a").await, new_sandbox(&c, "b").await);
        attach(&d, &n1, 2, &a, "eth0").await;
        attach(&d, &n2, 2, &b, "eth0").await;
        let k = &*c.kernel;
        assert!(reaches(k, &a, "198.19.1.1").await && reaches(k, &b, "198.19.2.1").await);
        assert!(
            !ping(k, &a, "198.19.2.2").await,
            "network 1 reached network 2"
        );
        assert!(
            !ping(k, &b, "198.19.1.2").await,
            "network 2 reached network 1"
        );
        let server = "198.19.2.2:8082".parse().unwrap();
        assert!(
            !tcp_works(&c.kernel, &b, server, &a).await,
            "tcp crossed networks"
        );
        eprintln!(
            "nft list ruleset (test host namespace):\n{}",
            common::nft_ruleset(k).await
        );

        // Routing and forwarding would connect them: the ruleset alone keeps them apart.
        k.delete_table(&NsRef::Host, &nft::table()).await.unwrap();
        assert!(
            reaches(k, &a, "198.19.2.2").await,
            "without the table the networks connect"
        );
        d.create_network(&n1).await.unwrap();
        assert!(
            !ping(k, &a, "198.19.2.2").await,
            "isolation is back after re-applying"
        );
    });
}

/// A namespace outside every weft network, reachable from the test host over a plain veth
/// (198.19.250.1 on the host side, 198.19.250.2 inside). It has a route back to the internal
/// network's 198.19.3.0/24 only (so that only the ruleset can stop that traffic) and none
/// to 198.19.1.0/24 (so that an answer there proves the masquerade).
async fn outside_world(c: &Ctx) -> NsName {
    let k = &*c.kernel;
    let out = new_sandbox(c, "out").await;
    let (host_end, eth0) = (IfName::new("out0").unwrap(), IfName::new("eth0").unwrap());
    let spec = VethSpec::new(host_end.clone(), eth0.clone()).peer_in(NsRef::named(&out));
    k.create_veth(&NsRef::Host, &spec).await.unwrap();
    k.add_address(&NsRef::Host, &host_end, "198.19.250.1/24".parse().unwrap())
        .await
        .unwrap();
    k.add_address(
        &NsRef::named(&out),
        &eth0,
        "198.19.250.2/24".parse().unwrap(),
    )
    .await
    .unwrap();
    k.set_link_up(&NsRef::Host, &host_end).await.unwrap();
    k.set_link_up(&NsRef::named(&out), &eth0).await.unwrap();
    let back = weft_os::Route {
        destination: "198.19.3.0/24".parse().unwrap(),
        gateway: Some("198.19.250.1".parse().unwrap()),
        dev: None,
    };
    k.replace_route(&NsRef::named(&out), &back).await.unwrap();
    out
}

#[test]
fn outbound_traffic_is_masqueraded_and_an_internal_network_has_no_route_out() {
    run(|c| async move {
        let d = driver(&c);
        let (open, internal) = (network(1, false), network(3, true));
        d.create_network(&open).await.unwrap();
        d.create_network(&internal).await.unwrap();
        outside_world(&c).await;
        let (a, i1, i2) = (
            new_sandbox(&c, "a").await,
            new_sandbox(&c, "i1").await,
            new_sandbox(&c, "i2").await,
        );
        attach(&d, &open, 2, &a, "eth0").await;
        attach(&d, &internal, 2, &i1, "eth0").await;
        attach(&d, &internal, 3, &i2, "eth0").await;
        let k = &*c.kernel;
        // The outside has no route to 198.19.1.0/24: an answer proves the masquerade.
        assert!(
            reaches(k, &a, "198.19.250.2").await,
            "open network -> outside"
        );
        assert!(
            reaches(k, &i1, "198.19.3.3").await,
            "inside an internal network"
        );
        assert!(
            reaches(k, &i1, "198.19.3.1").await,
            "internal network -> its gateway"
        );
        let i1_ns = NsRef::named(&i1);
        assert!(
            k.list_routes(&i1_ns)
                .await
                .unwrap()
                .iter()
                .all(|r| r.destination.prefix_len() != 0)
        );
        assert!(
            !ping(k, &i1, "198.19.1.1").await,
            "internal -> another network's gateway"
        );
        assert!(!ping(k, &i1, "198.19.250.2").await, "internal -> outside");
        // Even with a default route added by hand, the forward chain drops it.
        let route = weft_os::Route::default_via("198.19.3.1".parse().unwrap());
        k.replace_route(&i1_ns, &route).await.unwrap();
        assert!(
            !ping(k, &i1, "198.19.250.2").await,
            "internal -> outside via a hand-made route"
        );
        assert!(
            !ping(k, &i1, "198.19.1.2").await,
            "internal -> open network via a hand-made route"
        );
    });
}

#[test]
fn leave_and_delete_leave_no_link_and_no_table() {
    run(|c| async move {
        let d = driver(&c);
        let k = &*c.kernel;
        let (n1, n2) = (network(1, false), network(2, true));
        d.create_network(&n1).await.unwrap();
        d.create_network(&n2).await.unwrap();
        let (a, b) = (new_sandbox(&c, "a").await, new_sandbox(&c, "b").await);
        let joined = [
            (&n1, attach(&d, &n1, 2, &a, "eth0").await, a.clone()),
            (&n2, attach(&d, &n2, 2, &a, "eth1").await, a.clone()),
            (&n1, attach(&d, &n1, 3, &b, "eth0").await, b.clone()),
        ];
        assert_eq!(
            owned_links(k).await.len(),
            2 + 3,
            "two bridges and three veths"
        );
        assert!(
            k.list_tables(&NsRef::Host)
                .await
                .unwrap()
                .contains(&nft::table())
        );
        for (net, ep, _) in &joined {
            d.leave(net, ep, &SandboxId::random()).await.unwrap();
            d.leave(net, ep, &SandboxId::random()).await.unwrap();
            d.delete_endpoint(&net.id, &ep.id).await.unwrap();
        }
        for (_, _, ns) in &joined {
            let left = k.list_links(&NsRef::named(ns), "eth").await.unwrap();
            assert!(left.is_empty(), "sandbox {ns} kept {left:?}");
        }
        for net in [&n1, &n2] {
            d.delete_network(&net.id).await.unwrap();
            d.delete_network(&net.id).await.unwrap();
        }
        assert!(
            owned_links(k).await.is_empty(),
            "left: {:?}",
            owned_links(k).await
        );
        assert!(
            !k.list_tables(&NsRef::Host)
                .await
                .unwrap()
                .contains(&nft::table())
        );
    });
}

#[test]
fn reconcile_after_a_crash_restores_the_wanted_and_removes_the_rest() {
    run(|c| async move {
        let k = &*c.kernel;
        let (keep, gone) = (network(1, false), network(2, false));
        let (a, b, z) = (
            new_sandbox(&c, "a").await,
            new_sandbox(&c, "b").await,
            new_sandbox(&c, "z").await,
        );
        let (ea, eb) = {
            let before = driver(&c);
            before.create_network(&keep).await.unwrap();
            before.create_network(&gone).await.unwrap();
            let ea = attach(&before, &keep, 2, &a, "eth0").await;
            let eb = attach(&before, &keep, 3, &b, "eth0").await;
            attach(&before, &gone, 2, &z, "eth0").await;
            (ea, eb)
        }; // The agent "dies" here; the kernel keeps what it made, minus one lost veth.
        k.delete_link(&NsRef::Host, &names::host_veth(&ea.id).unwrap())
            .await
            .unwrap();
        assert!(!ping(k, &b, "198.19.1.2").await);

        let after = driver(&c);
        let wanted = Wanted {
            networks: vec![keep.clone()],
            endpoints: vec![
                (ea, Some(ctx(&a, "eth0", true))),
                (eb, Some(ctx(&b, "eth0", true))),
            ],
        };
        after.reconcile(&wanted).await.unwrap();
        after.reconcile(&wanted).await.unwrap();
        assert!(reaches(k, &b, "198.19.1.2").await, "connectivity restored");
        let links = owned_links(k).await;
        assert_eq!(links.len(), 3, "{links:?}");
        assert!(!links.contains(&names::bridge(&gone.id).unwrap().to_string()));
        let z_links = k.list_links(&NsRef::named(&z), "eth").await.unwrap();
        assert!(
            z_links.is_empty(),
            "the unwanted endpoint's sandbox end survived"
        );
    });
}

#[test]
fn a_join_repeated_after_a_crash_completes() {
    run(|c| async move {
        let k = &*c.kernel;
        let d = driver(&c);
        let net = network(1, false);
        d.create_network(&net).await.unwrap();
        let (a, b, x) = (
            new_sandbox(&c, "a").await,
            new_sandbox(&c, "b").await,
            new_sandbox(&c, "x").await,
        );
        let eth0 = IfName::new("eth0").unwrap();

        // Crashed right after the pair was made (peer already in the sandbox as eth0).
        let ea = endpoint(&net, 1, 2);
        d.create_endpoint(&net, &ea).await.unwrap();
        let wva = names::host_veth(&ea.id).unwrap();
        let spec = VethSpec::new(wva.clone(), eth0.clone()).peer_in(NsRef::named(&a));
        k.create_veth(&NsRef::Host, &spec).await.unwrap();
        let made = k.get_link(&NsRef::named(&a), &eth0).await.unwrap().unwrap();
        d.join(&net, &ea, &sandbox(), &ctx(&a, "eth0", true))
            .await
            .unwrap();
        let joined = k.get_link(&NsRef::named(&a), &eth0).await.unwrap().unwrap();
        assert_eq!(joined.index, made.index, "the pair was not adopted");
        assert_eq!((joined.mac, joined.up), (Some(ea.mac), true));

        // Left by an older create-then-move join that crashed before the move.
        let eb = endpoint(&net, 1, 3);
        d.create_endpoint(&net, &eb).await.unwrap();
        let (wvb, wpb) = (
            names::host_veth(&eb.id).unwrap(),
            names::peer_veth(&eb.id).unwrap(),
        );
        k.create_veth(&NsRef::Host, &VethSpec::new(wvb.clone(), wpb.clone()))
            .await
            .unwrap();
        d.join(&net, &eb, &sandbox(), &ctx(&b, "eth0", true))
            .await
            .unwrap();
        assert!(k.get_link(&NsRef::Host, &wpb).await.unwrap().is_none());

        // The endpoint's veth still leads into another sandbox (a missed leave): re-made.
        let ex = endpoint(&net, 1, 4);
        d.create_endpoint(&net, &ex).await.unwrap();
        d.join(&net, &ex, &sandbox(), &ctx(&a, "eth1", false))
            .await
            .unwrap();
        d.join(&net, &ex, &sandbox(), &ctx(&x, "eth0", true))
            .await
            .unwrap();
        let eth1 = IfName::new("eth1").unwrap();
        assert!(
            k.get_link(&NsRef::named(&a), &eth1)
                .await
                .unwrap()
                .is_none()
        );

        assert!(reaches(k, &a, "198.19.1.3").await, "a -> b");
        assert!(reaches(k, &b, "198.19.1.4").await, "b -> x");
        assert!(reaches(k, &x, "198.19.1.2").await, "x -> a");
        let links = owned_links(k).await;
        assert_eq!(links.len(), 4, "{links:?}");
    });
}
