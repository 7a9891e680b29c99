//! The overlay driver on the real kernel: two "hosts" (the test's host namespace and a second
//! namespace standing in for another host), joined by a veth as the underlay, each with its
//! own driver; their endpoints reach each other over VXLAN once the peer entries are handed
//! over as NetworkDB would, and everything is gone after the last leave. The real host's
//! namespaces are never touched (see `common`). Addresses are from 198.19.0.0/16 only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use common::records::{ctx, endpoint, network, sandbox};
use common::{ping, reaches, run};
use nix::sched::{CloneFlags, setns};
use weft_drivers::overlay::names;
use weft_drivers::{Driver, EventNotify, JoinInfo, OverlayConfig, OverlayDriver, PeerRecord};
use weft_os::{
    AddrOps, IfName, LinkOps, NeighOps, NetnsOps, NsRef, RealKernel, SysctlKey, SysctlOps,
    VethSpec, Vni, VxlanSpec,
};
use weft_types::VXLANID_OPTION;
use weft_types::{DriverName, NetworkRecord, Options, SandboxId, Scope};

const VTEP_A: Ipv4Addr = Ipv4Addr::new(198, 19, 250, 1);
const VTEP_B: Ipv4Addr = Ipv4Addr::new(198, 19, 250, 2);

/// A kernel whose host namespace is the one at `path`. `RealKernel` opens its host socket in
/// the namespace of the thread that builds it: this thread enters `path` for that, and returns.
fn kernel_in(path: &Path) -> Arc<RealKernel> {
    let home = File::open("/proc/thread-self/ns/net").unwrap();
    setns(File::open(path).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
    let kernel = RealKernel::new();
    setns(home, CloneFlags::CLONE_NEWNET).unwrap();
    Arc::new(kernel.unwrap())
}

fn overlay_network() -> NetworkRecord {
    NetworkRecord {
        driver: DriverName::overlay(),
        scope: Scope::Global,
        options: Options::from_pairs([format!("{VXLANID_OPTION}=4242").as_str()]).unwrap(),
        ..network(100, false)
    }
}

/// Hands `from`'s published entries to `to`, as NetworkDB would.
async fn gossip(net: &NetworkRecord, from: &JoinInfo, to: &OverlayDriver) {
    for entry in &from.table_entries {
        let event = EventNotify {
            network: net.id.clone(),
            table: entry.table.clone(),
            key: entry.key.clone(),
            owner: "other".into(),
            prev: None,
            value: Some(entry.value.clone()),
        };
        to.event_notify(&event).await.unwrap();
    }
}

#[test]
fn endpoints_on_two_hosts_talk_over_vxlan_and_leave_nothing_behind() {
    run(|c| async move {
        let ka = c.kernel.clone();
        let host_b = c.names.ns("hostb");
        ka.create_netns(&host_b).await.unwrap();
        let prefix = host_b.as_str().strip_suffix("hostb").unwrap().to_owned();
        let kb = kernel_in(&ka.netns_path(&host_b));

        // The underlay: one veth between the two hosts.
        let (u0, u1) = (IfName::new("wtu0").unwrap(), IfName::new("wtu1").unwrap());
        let spec = VethSpec::new(u0.clone(), u1.clone()).peer_in(NsRef::named(&host_b));
        ka.create_veth(&NsRef::Host, &spec).await.unwrap();
        for (k, dev, ip) in [(&ka, &u0, VTEP_A), (&kb, &u1, VTEP_B)] {
            let addr = format!("{ip}/24").parse().unwrap();
            k.add_address(&NsRef::Host, dev, addr).await.unwrap();
            k.set_link_up(&NsRef::Host, dev).await.unwrap();
        }

        let net = overlay_network();
        let (pa, pb) = (format!("{prefix}a-"), format!("{prefix}b-"));
        // Registered for the cleanup guard, in case the test fails before the last leave.
        let ov_a = c.names.ns(&format!("a-ov-{}", net.id.short()));
        let ov_b = c.names.ns(&format!("b-ov-{}", net.id.short()));
        let da = OverlayDriver::new(ka.clone(), OverlayConfig::new(pa, "node-a", VTEP_A));
        let db = OverlayDriver::new(kb.clone(), OverlayConfig::new(pb, "node-b", VTEP_B));
        let (sa, sb) = (c.names.ns("sba"), c.names.ns("sbb"));
        ka.create_netns(&sa).await.unwrap();
        ka.create_netns(&sb).await.unwrap();
        let (ea, eb) = (endpoint(&net, 100, 2), endpoint(&net, 100, 3));
        da.create_network(&net).await.unwrap();
        db.create_network(&net).await.unwrap();
        let (ca, cb) = (ctx(&sa, "eth0", true), ctx(&sb, "eth0", true));
        let ia = da.join(&net, &ea, &sandbox(), &ca).await.unwrap();
        let ib = db.join(&net, &eb, &sandbox(), &cb).await.unwrap();
        assert_eq!(ov_a, names::netns(&format!("{prefix}a-"), &net.id).unwrap());
        assert_eq!(ov_b, names::netns(&format!("{prefix}b-"), &net.id).unwrap());

        // br_netfilter is off in the network's namespace (where the kernel has it).
        let nf = SysctlKey::from_parts(["net", "bridge", "bridge-nf-call-iptables"]).unwrap();
        match ka.get_sysctl(&NsRef::named(&ov_a), &nf).await {
            Ok(value) => assert_eq!(value.trim(), "0"),
            Err(e) => assert_eq!(e.errno(), Some(2), "{e}"),
        }

        // Underlay MTU 1500 minus the VXLAN overhead.
        let eth0 = IfName::new("eth0").unwrap();
        let link = ka
            .get_link(&NsRef::named(&sa), &eth0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((link.mtu, link.mac), (1450, Some(ea.mac)));

        // Nothing is learned from traffic: without the peer entries there is no path.
        assert!(
            !ping(&*ka, &sa, "198.19.100.3").await,
            "reached b before any gossip"
        );
        gossip(&net, &ia, &db).await;
        gossip(&net, &ib, &da).await;
        assert!(reaches(&*ka, &sa, "198.19.100.3").await, "a cannot reach b");
        assert!(reaches(&*ka, &sb, "198.19.100.2").await, "b cannot reach a");

        // What the kernel lists on a live vxlan is exactly what the driver programmed, so
        // repair finds nothing to do (no kernel-made entries it would delete).
        let vx = names::vxlan(Vni::new(4242).unwrap(), &net.id).unwrap();
        let fdb = ka.list_fdb(&NsRef::named(&ov_a), &vx).await.unwrap();
        let peer = PeerRecord::decode(&ib.table_entries[0].value).unwrap();
        assert_eq!(
            fdb.iter().map(|e| (e.mac, e.dst)).collect::<Vec<_>>(),
            vec![(peer.mac, VTEP_B.into())]
        );
        assert_eq!(da.repair().await.unwrap(), 0);
        assert_eq!(db.repair().await.unwrap(), 0);

        da.leave(&net, &ea, &SandboxId::random()).await.unwrap();
        db.leave(&net, &eb, &SandboxId::random()).await.unwrap();
        assert!(!ka.netns_exists(&ov_a).await.unwrap());
        assert!(!ka.netns_exists(&ov_b).await.unwrap());
        assert!(
            ka.get_link(&NsRef::named(&sa), &eth0)
                .await
                .unwrap()
                .is_none()
        );
        for k in [&ka, &kb] {
            assert!(k.list_links(&NsRef::Host, "vx-").await.unwrap().is_empty());
        }
        // The VNI was freed at once: the network comes back at the next join.
        da.join(&net, &ea, &sandbox(), &ca).await.unwrap();
        da.delete_network(&net.id).await.unwrap();
        db.delete_network(&net.id).await.unwrap();
        assert!(!ka.netns_exists(&ov_a).await.unwrap());
    });
}

#[test]
fn a_vni_another_device_holds_is_reported_as_a_typed_error() {
    run(|c| async move {
        let k = c.kernel.clone();
        let vni = Vni::new(4243).unwrap();
        let mut net = overlay_network();
        net.options = Options::from_pairs([format!("{VXLANID_OPTION}={vni}").as_str()]).unwrap();
        // Not of the driver's naming, so not a leftover it may remove: the kernel refuses
        // the overlay's vxlan (EEXIST) and weft-os names the holder.
        let foreign = IfName::new("wtvxforeign").unwrap();
        let spec = VxlanSpec {
            local: Some(VTEP_A),
            ..VxlanSpec::new(foreign.clone(), vni)
        };
        k.create_vxlan(&NsRef::Host, &spec).await.unwrap();
        let sa = c.names.ns("sbv");
        k.create_netns(&sa).await.unwrap();
        let prefix = sa.as_str().strip_suffix("sbv").unwrap().to_owned();
        let ov = c.names.ns(&format!("v-ov-{}", net.id.short()));
        let config = OverlayConfig {
            mtu: Some(1400),
            ..OverlayConfig::new(format!("{prefix}v-"), "node-a", VTEP_A)
        };
        let d = OverlayDriver::new(k.clone(), config);
        let err = d
            .join(
                &net,
                &endpoint(&net, 100, 2),
                &sandbox(),
                &ctx(&sa, "eth0", true),
            )
            .await
            .unwrap_err();

        match err.os_error() {
            Some(weft_os::Error::VniInUse { vni: v, holder, .. }) => {
                assert_eq!((*v, holder.as_str()), (vni.get(), "wtvxforeign"));
            }
            other => panic!("not a vni conflict: {other:?} ({err})"),
        }
        let msg = err.to_string();
        assert!(msg.contains("is already used by wtvxforeign"), "{msg}");
        assert!(k.get_link(&NsRef::Host, &foreign).await.unwrap().is_some());
        assert!(
            !k.netns_exists(&ov).await.unwrap(),
            "the failed join left its namespace"
        );
    });
}
