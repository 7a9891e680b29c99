//! The overlay driver's peers against the in-memory kernel: table events programming,
//! replacing and removing neighbour and FDB entries, what is ignored or refused, repair, and
//! per-network locking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use weft_os::{FdbEntry, MacAddr, NeighOps, Neighbour, NetnsOps};

use super::PeerRecord;
use super::tests::{NODE, VTEP, entries, event, join, network, ov, programmed, remote, setup};
use crate::{Driver, DriverError};

#[tokio::test]
async fn peers_received_before_the_network_exists_are_programmed_at_the_first_join() {
    let (k, d) = setup().await;
    let net = network(4);
    let (a, b) = (remote(&net, 10), remote(&net, 11));
    d.event_notify(&event(&net, "a", Some(&a))).await.unwrap();
    d.event_notify(&event(&net, "b", Some(&b))).await.unwrap();
    assert!(k.list_netns("").await.unwrap().is_empty());
    assert_eq!(d.peers(&net.id).await.len(), 2);
    d.create_network(&net).await.unwrap();
    join(&k, &d, &net, 2).await;
    assert_eq!(entries(&k, &net).await, programmed(&[a, b]));
}

#[tokio::test]
async fn events_queued_for_a_deleted_network_do_not_bring_it_back() {
    let (k, d) = setup().await;
    let net = network(7);
    d.create_network(&net).await.unwrap();
    join(&k, &d, &net, 2).await;
    assert_eq!(d.network_count(), 1);
    d.delete_network(&net.id).await.unwrap();
    assert_eq!(d.network_count(), 0);
    d.event_notify(&event(&net, "a", Some(&remote(&net, 10))))
        .await
        .unwrap();
    assert_eq!(d.network_count(), 0, "the deleted network's slot came back");
    assert!(d.peers(&net.id).await.is_empty());
    // Asking for the peers of a network never seen makes no state either.
    assert!(d.peers(&network(8).id).await.is_empty());
    assert_eq!(d.network_count(), 0);
    // Created again (adopted anew): its events count again.
    d.create_network(&net).await.unwrap();
    d.event_notify(&event(&net, "a", Some(&remote(&net, 10))))
        .await
        .unwrap();
    assert_eq!(d.peers(&net.id).await.len(), 1);
}

#[tokio::test]
async fn events_program_replace_and_remove_neighbour_and_fdb_entries() {
    let (k, d) = setup().await;
    let net = network(5);
    join(&k, &d, &net, 2).await;
    let a = remote(&net, 10);
    d.event_notify(&event(&net, "a", Some(&a))).await.unwrap();
    assert_eq!(entries(&k, &net).await, programmed(&[a]));

    // Moved to another address, MAC and host: the old entries go.
    let moved = PeerRecord {
        vtep: Ipv4Addr::new(192, 0, 2, 3),
        ..remote(&net, 20)
    };
    d.event_notify(&event(&net, "a", Some(&moved)))
        .await
        .unwrap();
    assert_eq!(entries(&k, &net).await, programmed(&[moved]));

    d.event_notify(&event(&net, "a", None)).await.unwrap();
    d.event_notify(&event(&net, "a", None)).await.unwrap();
    assert_eq!(entries(&k, &net).await, (vec![], vec![]));
    assert!(d.peers(&net.id).await.is_empty());
}

#[tokio::test]
async fn records_of_our_own_vtep_and_other_tables_are_ignored() {
    let (k, d) = setup().await;
    let net = network(6);
    join(&k, &d, &net, 2).await;
    let own = PeerRecord {
        vtep: VTEP,
        ..remote(&net, 10)
    };
    d.event_notify(&event(&net, "own", Some(&own)))
        .await
        .unwrap();
    let mut other = event(&net, "x", Some(&remote(&net, 11)));
    other.table = "endpoint_table".into();
    d.event_notify(&other).await.unwrap();
    assert_eq!(entries(&k, &net).await, (vec![], vec![]));
    assert!(d.peers(&net.id).await.is_empty());
}

/// A record this node wrote is one of its own endpoints, on its bridge, whatever VTEP it
/// names (an earlier run's names the address advertised then): never a peer, and it
/// replaces a peer the key held. Programming it towards that address would send local
/// traffic into the vxlan.
#[tokio::test]
async fn records_this_node_wrote_with_another_vtep_are_not_peers() {
    let (k, d) = setup().await;
    let net = network(9);
    join(&k, &d, &net, 2).await;
    let mut earlier = event(&net, "mine", Some(&remote(&net, 10)));
    earlier.owner = NODE.to_owned();
    d.event_notify(&earlier).await.unwrap();
    assert_eq!(entries(&k, &net).await, (vec![], vec![]));
    assert!(d.peers(&net.id).await.is_empty());

    // A key programmed as a peer that turns out to be ours loses its entries.
    let peer = remote(&net, 11);
    d.event_notify(&event(&net, "k", Some(&peer)))
        .await
        .unwrap();
    assert_eq!(entries(&k, &net).await, programmed(&[peer]));
    let mut ours = event(&net, "k", Some(&remote(&net, 11)));
    ours.owner = NODE.to_owned();
    d.event_notify(&ours).await.unwrap();
    assert_eq!(entries(&k, &net).await, (vec![], vec![]));
    assert!(d.peers(&net.id).await.is_empty());
}

#[tokio::test]
async fn a_malformed_value_is_refused_and_changes_nothing() {
    let (k, d) = setup().await;
    let net = network(7);
    join(&k, &d, &net, 2).await;
    let a = remote(&net, 10);
    d.event_notify(&event(&net, "key-a", Some(&a)))
        .await
        .unwrap();
    k.clear_calls();
    let mut bad = event(&net, "key-a", None);
    bad.value = Some(b"not a peer record".to_vec());
    let err = d.event_notify(&bad).await.unwrap_err();
    assert!(matches!(err, DriverError::InvalidParameter { .. }), "{err}");
    assert!(err.to_string().contains("\"key-a\""), "{err}");
    assert!(
        k.calls().is_empty(),
        "the kernel was touched: {:?}",
        k.calls()
    );
    assert_eq!(d.peers(&net.id).await.get("key-a"), Some(&a));
    assert_eq!(entries(&k, &net).await, programmed(&[a]));
}

#[tokio::test]
async fn repair_restores_changed_entries_and_removes_strays() {
    let (k, d) = setup().await;
    let net = network(12);
    join(&k, &d, &net, 2).await;
    let (a, b) = (remote(&net, 10), remote(&net, 11));
    d.event_notify(&event(&net, "a", Some(&a))).await.unwrap();
    d.event_notify(&event(&net, "b", Some(&b))).await.unwrap();
    assert_eq!(d.repair().await.unwrap(), 0);

    let (_, ns, o) = ov(&net);
    let dev = o.vxlan.clone();
    k.delete_fdb(&ns, &dev, a.mac).await.unwrap();
    let wrong = MacAddr([0x02, 0x42, 0, 0, 0, 0x99]);
    k.replace_neighbour(
        &ns,
        &Neighbour {
            dev: dev.clone(),
            ip: b.ip.addr(),
            mac: wrong,
        },
    )
    .await
    .unwrap();
    let stray_ip: IpAddr = "198.19.12.77".parse().unwrap();
    k.replace_neighbour(
        &ns,
        &Neighbour {
            dev: dev.clone(),
            ip: stray_ip,
            mac: wrong,
        },
    )
    .await
    .unwrap();
    let stray = FdbEntry {
        dev: dev.clone(),
        mac: wrong,
        dst: "192.0.2.9".parse().unwrap(),
    };
    k.replace_fdb(&ns, &stray).await.unwrap();

    assert_eq!(d.repair().await.unwrap(), 4);
    assert_eq!(entries(&k, &net).await, programmed(&[a, b]));
    assert_eq!(d.repair().await.unwrap(), 0);
}

#[tokio::test]
async fn a_busy_network_does_not_hold_up_another() {
    let (k, d) = setup().await;
    let (n1, n2) = (network(18), network(19));
    join(&k, &d, &n1, 2).await;
    join(&k, &d, &n2, 2).await;
    let held = d.lock_net(&n1.id).await;
    let (a, b) = (remote(&n1, 10), remote(&n2, 10));
    let e2 = event(&n2, "b", Some(&b));
    let other = tokio::time::timeout(Duration::from_secs(5), d.event_notify(&e2));
    let other = other.await.expect("blocked by another network's lock");
    other.unwrap();
    let e1 = event(&n1, "a", Some(&a));
    let same = tokio::time::timeout(Duration::from_millis(50), d.event_notify(&e1));
    assert!(same.await.is_err(), "the network's own lock was not held");
    drop(held);
    d.event_notify(&e1).await.unwrap();
    assert_eq!(entries(&k, &n1).await, programmed(&[a]));
}
