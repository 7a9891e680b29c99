//! Two namespaces joined by a veth pair (one end moved across and renamed eth0, or created
//! directly in the other namespace as eth0): addresses and routes read back over netlink,
//! then real traffic (TCP and ICMP) between them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{NsGuard, ifname, peer_in_scenario, require_root, require_tools};
use weft_os::{
    AddrOps, CommandSpec, ExecOps, LinkKind, LinkOps, NetnsOps, NsRef, RealKernel, Route,
    StdioMode, VethSpec, nsthread,
};

#[tokio::test]
async fn veth_between_namespaces_carries_tcp_and_icmp() {
    require_root();
    require_tools(&["ping"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let (na, nb) = (guard.name("a"), guard.name("b"));
    let (a, b) = (NsRef::named(&na), NsRef::named(&nb));
    k.create_netns(&na).await.unwrap();
    k.create_netns(&nb).await.unwrap();

    let mut spec = VethSpec::new(ifname("wta0"), ifname("wtb0"));
    spec.mtu = Some(1400);
    k.create_veth(&a, &spec).await.unwrap();
    let eth0 = ifname("eth0");
    k.move_link(&a, &spec.peer, &b, Some(&eth0)).await.unwrap();
    // A retry after a crash finds the work done.
    k.move_link(&a, &spec.peer, &b, Some(&eth0)).await.unwrap();
    assert!(k.get_link(&a, &spec.peer).await.unwrap().is_none());
    let moved = k.get_link(&b, &eth0).await.unwrap().unwrap();
    assert_eq!(
        (moved.kind.clone(), moved.mtu, moved.up),
        (LinkKind::Veth, 1400, false)
    );

    let (ip_a, ip_b) = (
        "198.18.0.1/24".parse().unwrap(),
        "198.18.0.2/24".parse().unwrap(),
    );
    k.add_address(&a, &spec.name, ip_a).await.unwrap();
    k.add_address(&a, &spec.name, ip_a).await.unwrap();
    k.add_address(&b, &eth0, ip_b).await.unwrap();
    assert_eq!(k.list_addresses(&a, &spec.name).await.unwrap(), vec![ip_a]);
    assert_eq!(k.list_addresses(&b, &eth0).await.unwrap(), vec![ip_b]);
    k.set_link_up(&a, &spec.name).await.unwrap();
    k.set_link_up(&b, &eth0).await.unwrap();

    routes_replace_and_delete(&k, &b).await;
    tcp_from_a_to_b(&k, &na, &nb).await;

    let ping = CommandSpec::new("ping", ["-c1", "-W2", "198.18.0.2"]).stdio(StdioMode::Null);
    let code = k.spawn(&a, &ping).await.unwrap().wait().await.unwrap();
    assert_eq!(code, 0, "ping from a to b failed");

    k.delete_address(&b, &eth0, ip_b).await.unwrap();
    k.delete_address(&b, &eth0, ip_b).await.unwrap();
    assert!(k.list_addresses(&b, &eth0).await.unwrap().is_empty());
    let code = k.spawn(&a, &ping).await.unwrap().wait().await.unwrap();
    assert_ne!(code, 0, "ping must fail once b's address is gone");
    guard.finish();
}

#[tokio::test]
async fn veth_with_its_peer_created_in_another_namespace_carries_tcp_and_icmp() {
    require_root();
    require_tools(&["ping"]);
    let mut guard = NsGuard::new();
    let k = RealKernel::new().unwrap();
    let (na, nb, nc) = (guard.name("a"), guard.name("b"), guard.name("c"));
    let (a, b, c) = (NsRef::named(&na), NsRef::named(&nb), NsRef::named(&nc));
    for n in [&na, &nb, &nc] {
        k.create_netns(n).await.unwrap();
    }
    // Leaves wta0 in a, its peer eth0 in b (MTU 1450).
    peer_in_scenario(&k, &a, &b, &c).await;
    let (wta0, eth0) = (ifname("wta0"), ifname("eth0"));

    let (ip_a, ip_b) = (
        "198.18.0.1/24".parse().unwrap(),
        "198.18.0.2/24".parse().unwrap(),
    );
    k.add_address(&a, &wta0, ip_a).await.unwrap();
    k.add_address(&b, &eth0, ip_b).await.unwrap();
    k.set_link_up(&a, &wta0).await.unwrap();
    k.set_link_up(&b, &eth0).await.unwrap();
    tcp_from_a_to_b(&k, &na, &nb).await;
    let ping = CommandSpec::new("ping", ["-c1", "-W2", "198.18.0.2"]).stdio(StdioMode::Null);
    let code = k.spawn(&a, &ping).await.unwrap().wait().await.unwrap();
    assert_eq!(code, 0, "ping from a to b failed");

    // Re-created (a retry): adopted as it is, addresses and traffic untouched.
    let before = k.get_link(&b, &eth0).await.unwrap().unwrap();
    let spec = VethSpec {
        mtu: Some(1450),
        ..VethSpec::new(wta0.clone(), eth0.clone()).peer_in(b.clone())
    };
    k.create_veth(&a, &spec).await.unwrap();
    let after = k.get_link(&b, &eth0).await.unwrap().unwrap();
    assert_eq!((after.index, after.up), (before.index, true));
    assert_eq!(k.list_addresses(&b, &eth0).await.unwrap(), vec![ip_b]);
    let code = k.spawn(&a, &ping).await.unwrap().wait().await.unwrap();
    assert_eq!(code, 0, "ping from a to b failed after the re-create");
    tcp_from_a_to_b(&k, &na, &nb).await;

    // The peer is b's: deleting b takes the pair along (the kernel dismantles a namespace
    // asynchronously, once its last reference is gone).
    k.delete_netns(&nb).await.unwrap();
    let start = std::time::Instant::now();
    while k.get_link(&a, &wta0).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "wta0 outlived b's deletion"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    guard.finish();
}

async fn routes_replace_and_delete(k: &RealKernel, b: &NsRef) {
    let eth0 = ifname("eth0");
    k.replace_route(b, &Route::default_via("198.18.0.1".parse().unwrap()))
        .await
        .unwrap();
    k.replace_route(b, &Route::default_via("198.18.0.3".parse().unwrap()))
        .await
        .unwrap();
    let prefix = Route::via_dev("198.18.9.0/24".parse().unwrap(), eth0.clone());
    k.replace_route(b, &prefix).await.unwrap();
    k.replace_route(b, &prefix).await.unwrap();
    let routes = k.list_routes(b).await.unwrap();
    let defaults: Vec<_> = routes
        .iter()
        .filter(|r| r.destination.prefix_len() == 0)
        .collect();
    assert_eq!(defaults.len(), 1, "{routes:?}");
    assert_eq!(defaults[0].gateway, Some("198.18.0.3".parse().unwrap()));
    assert_eq!(defaults[0].dev, Some(eth0.clone()));
    assert!(routes.contains(&prefix), "{routes:?}");
    assert_eq!(
        routes.len(),
        2,
        "kernel-made routes are not listed: {routes:?}"
    );

    k.delete_route(b, &prefix).await.unwrap();
    k.delete_route(b, &prefix).await.unwrap();
    k.replace_route(b, &Route::default_via("198.18.0.1".parse().unwrap()))
        .await
        .unwrap();
    let routes = k.list_routes(b).await.unwrap();
    assert_eq!(routes.len(), 1, "{routes:?}");
}

/// A listener created on a thread inside b, a connection made from a thread inside a.
async fn tcp_from_a_to_b(k: &RealKernel, na: &weft_os::NsName, nb: &weft_os::NsName) {
    let listener = nsthread::in_netns(Some(k.netns_path(nb)), || TcpListener::bind("198.18.0.2:0"))
        .await
        .unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, peer) = accept_within(&listener, Duration::from_secs(5));
        conn.set_nonblocking(false).unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(b"pong!").unwrap();
        (peer, buf)
    });
    let reply = nsthread::in_netns(Some(k.netns_path(na)), move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"ping!")?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf)?;
        Ok(buf)
    })
    .await
    .unwrap();
    let (peer, got) = server.join().unwrap();
    assert_eq!(&got, b"ping!");
    assert_eq!(&reply, b"pong!");
    assert_eq!(peer.ip().to_string(), "198.18.0.1");
}

/// Accepts one connection, failing the test instead of hanging if none comes in time.
fn accept_within(listener: &TcpListener, limit: Duration) -> (TcpStream, SocketAddr) {
    let start = std::time::Instant::now();
    loop {
        match listener.accept() {
            Ok(conn) => return conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("no connection within {limit:?}: {e}"),
        }
    }
}
