//! The overlay driver's devices on the real kernel: a bridge and a vxlan with the requested
//! attributes (read back over netlink), enslavement, and FDB/neighbour entries with replace
//! semantics, including over an entry the kernel already has.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::{NsGuard, ifname, require_root, require_tools};
use weft_os::{
    AddrOps, BridgeSpec, CommandSpec, ExecOps, FdbEntry, LinkKind, LinkOps, MacAddr, NeighOps,
    Neighbour, NetnsOps, NsRef, RealKernel, StdioMode, SysctlKey, SysctlOps, VethSpec, Vni,
    VxlanInfo, VxlanSpec,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn bridge_and_vxlan_with_fdb_and_neighbours() {
    require_root();
    require_tools(&["bridge"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let name = guard.name("ov");
    let ns = NsRef::named(&name);
    k.create_netns(&name).await.unwrap();

    // An underlay device with the local VTEP address.
    let under = VethSpec::new(ifname("wtu0"), ifname("wtu1"));
    k.create_veth(&ns, &under).await.unwrap();
    k.add_address(&ns, &under.name, "198.18.1.1/24".parse().unwrap())
        .await
        .unwrap();
    k.set_link_up(&ns, &under.name).await.unwrap();
    let under_index = k.get_link(&ns, &under.name).await.unwrap().unwrap().index;

    let mut br = BridgeSpec::new(ifname("wtbr0"));
    br.mtu = Some(1450);
    br.mac = Some(MacAddr([0x02, 0x42, 0xc6, 0x13, 0x00, 0x01]));
    k.create_bridge(&ns, &br).await.unwrap();
    let got = k.get_link(&ns, &br.name).await.unwrap().unwrap();
    assert_eq!(
        (got.kind, got.mtu, got.mac),
        (LinkKind::Bridge, 1450, br.mac)
    );

    let mut vx = VxlanSpec::new(ifname("wtvx0"), Vni::new(4242).unwrap());
    vx.local = Some("198.18.1.1".parse().unwrap());
    vx.underlay = Some(under.name.clone());
    vx.mtu = Some(1450);
    k.create_vxlan(&ns, &vx).await.unwrap();
    k.create_vxlan(&ns, &vx).await.unwrap();
    let got = k.get_link(&ns, &vx.name).await.unwrap().unwrap();
    let want = VxlanInfo {
        vni: 4242,
        port: 4789,
        local: vx.local,
        underlay_index: Some(under_index),
        learning: false,
        proxy: true,
    };
    assert_eq!((got.kind, got.mtu), (LinkKind::Vxlan(want), 1450));

    k.set_master(&ns, &vx.name, Some(&br.name)).await.unwrap();
    k.set_link_up(&ns, &vx.name).await.unwrap();
    k.set_link_up(&ns, &br.name).await.unwrap();
    let got = k.get_link(&ns, &vx.name).await.unwrap().unwrap();
    assert_eq!((got.master, got.up), (Some(br.name.clone()), true));
    k.add_address(&ns, &br.name, "198.19.0.1/24".parse().unwrap())
        .await
        .unwrap();

    fdb_replace_delete(&k, &ns, &vx.name).await;
    neighbour_replace_delete(&k, &ns, &vx.name).await;

    let proxy_arp = SysctlKey::ipv4_conf(&vx.name, "proxy_arp").unwrap();
    k.set_sysctl(&ns, &proxy_arp, "1").await.unwrap();
    assert_eq!(k.get_sysctl(&ns, &proxy_arp).await.unwrap(), "1");

    k.set_master(&ns, &vx.name, None).await.unwrap();
    assert_eq!(
        k.get_link(&ns, &vx.name).await.unwrap().unwrap().master,
        None
    );
    guard.finish();
}

async fn fdb_replace_delete(k: &RealKernel, ns: &NsRef, dev: &weft_os::IfName) {
    let mac = MacAddr([0x02, 0x42, 0xc6, 0x13, 0x00, 0x02]);
    let entry = |dst| FdbEntry {
        dev: dev.clone(),
        mac,
        dst: ip(dst),
    };
    k.replace_fdb(ns, &entry("198.18.1.2")).await.unwrap();
    k.replace_fdb(ns, &entry("198.18.1.3")).await.unwrap();
    assert_eq!(
        k.list_fdb(ns, dev).await.unwrap(),
        vec![entry("198.18.1.3")]
    );

    // An entry the kernel holds as dynamic (as if learned), written by iproute2.
    let learned = MacAddr([0x02, 0x42, 0xc6, 0x13, 0x00, 0x03]);
    let args = [
        "fdb",
        "add",
        "02:42:c6:13:00:03",
        "dev",
        dev.as_str(),
        "dst",
        "198.18.1.9",
    ];
    let add = CommandSpec::new("bridge", args.iter().chain(&["self", "dynamic"]).copied())
        .stdio(StdioMode::Null);
    assert_eq!(k.spawn(ns, &add).await.unwrap().wait().await.unwrap(), 0);
    let over = FdbEntry {
        dev: dev.clone(),
        mac: learned,
        dst: ip("198.18.1.4"),
    };
    k.replace_fdb(ns, &over).await.unwrap();
    let mut all = k.list_fdb(ns, dev).await.unwrap();
    all.sort_by_key(|e| e.mac);
    assert_eq!(all, vec![entry("198.18.1.3"), over.clone()]);

    k.delete_fdb(ns, dev, mac).await.unwrap();
    k.delete_fdb(ns, dev, mac).await.unwrap();
    assert_eq!(k.list_fdb(ns, dev).await.unwrap(), vec![over]);
}

async fn neighbour_replace_delete(k: &RealKernel, ns: &NsRef, dev: &weft_os::IfName) {
    let n = |last| Neighbour {
        dev: dev.clone(),
        ip: ip("198.19.0.5"),
        mac: MacAddr([0x02, 0x42, 0xc6, 0x13, 0x00, last]),
    };
    k.replace_neighbour(ns, &n(5)).await.unwrap();
    k.replace_neighbour(ns, &n(6)).await.unwrap();
    assert_eq!(k.list_neighbours(ns, dev).await.unwrap(), vec![n(6)]);
    k.delete_neighbour(ns, dev, ip("198.19.0.5")).await.unwrap();
    k.delete_neighbour(ns, dev, ip("198.19.0.5")).await.unwrap();
    assert!(k.list_neighbours(ns, dev).await.unwrap().is_empty());
}

/// Docker's overlay creates the vxlan where its UDP socket must live, then moves it into the
/// network's namespace: the device keeps its VNI there.
#[tokio::test]
async fn vxlan_keeps_its_attributes_when_moved() {
    require_root();
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let (na, nb) = (guard.name("under"), guard.name("net"));
    let (a, b) = (NsRef::named(&na), NsRef::named(&nb));
    k.create_netns(&na).await.unwrap();
    k.create_netns(&nb).await.unwrap();
    let vx = VxlanSpec::new(ifname("wtvx0"), Vni::new(4100).unwrap());
    k.create_vxlan(&a, &vx).await.unwrap();
    k.move_link(&a, &vx.name, &b, Some(&ifname("vxlan0")))
        .await
        .unwrap();
    let got = k.get_link(&b, &ifname("vxlan0")).await.unwrap().unwrap();
    match got.kind {
        LinkKind::Vxlan(v) => assert_eq!((v.vni, v.learning, v.proxy), (4100, false, true)),
        kind => panic!("expected vxlan, got {kind:?}"),
    }
    assert!(k.list_links(&a, "wt").await.unwrap().is_empty());
    guard.finish();
}

/// What the overlay driver does instead of a move (which waits for an RCU grace period):
/// the vxlan is asked for in the underlay's namespace and made directly in the network's.
/// Its UDP socket is where it was asked for; asking again adopts it.
#[tokio::test]
async fn a_vxlan_made_in_another_namespace_keeps_its_socket_where_it_was_asked_for() {
    require_root();
    require_tools(&["ss", "sh", "grep"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let (na, nb) = (guard.name("under"), guard.name("net"));
    let (a, b) = (NsRef::named(&na), NsRef::named(&nb));
    k.create_netns(&na).await.unwrap();
    k.create_netns(&nb).await.unwrap();
    let vx = VxlanSpec {
        port: 4795,
        netns: Some(b.clone()),
        ..VxlanSpec::new(ifname("wtvx1"), Vni::new(4101).unwrap())
    };
    k.create_vxlan(&a, &vx).await.unwrap();
    assert!(k.list_links(&a, "wt").await.unwrap().is_empty());
    let made = k.get_link(&b, &vx.name).await.unwrap().unwrap();
    match &made.kind {
        LinkKind::Vxlan(v) => assert_eq!((v.vni, v.port), (4101, 4795)),
        kind => panic!("expected vxlan, got {kind:?}"),
    }
    k.set_link_up(&b, &vx.name).await.unwrap();
    let listens = |ns: NsRef| {
        let k = &k;
        async move {
            let cmd = CommandSpec::new("sh", ["-c", "ss -Hunl 'sport = :4795' | grep -q ."])
                .stdio(StdioMode::Null);
            k.spawn(&ns, &cmd).await.unwrap().wait().await.unwrap() == 0
        }
    };
    assert!(
        listens(a.clone()).await,
        "no vxlan socket in the underlay's namespace"
    );
    assert!(
        !listens(b.clone()).await,
        "the vxlan socket is in the network's namespace"
    );
    k.create_vxlan(&a, &vx).await.unwrap();
    let again = k.get_link(&b, &vx.name).await.unwrap().unwrap();
    assert_eq!((again.index, again.up), (made.index, true), "not adopted");
    guard.finish();
}
