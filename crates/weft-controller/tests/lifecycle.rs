//! Networks, endpoints and sandboxes through their whole lifecycle: allocation order,
//! refusals, and rollback of every step when a driver fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use weft_drivers::DriverOp;
use weft_types::ErrorKind;

#[tokio::test]
async fn explicit_and_automatic_subnets_and_endpoint_addresses_in_order() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    let explicit = core
        .create_network(network("a", "null", Some("198.19.200.0/24")))
        .await
        .unwrap();
    assert_eq!(explicit.subnets[0].subnet.to_string(), "198.19.200.0/24");
    assert_eq!(explicit.subnets[0].gateway.to_string(), "198.19.200.1");
    let auto1 = core
        .create_network(network("b", "null", None))
        .await
        .unwrap();
    let auto2 = core
        .create_network(network("c", "null", None))
        .await
        .unwrap();
    assert_eq!(auto1.subnets[0].subnet.to_string(), "198.19.0.0/24");
    assert_eq!(auto2.subnets[0].subnet.to_string(), "198.19.1.0/24");

    let mut ips = Vec::new();
    for i in 0..3 {
        let ep = core
            .create_endpoint("a", endpoint(&format!("e{i}")))
            .await
            .unwrap();
        ips.push(ep.ipv4.unwrap().to_string());
    }
    assert_eq!(
        ips,
        ["198.19.200.2/24", "198.19.200.3/24", "198.19.200.4/24"]
    );
    let ep = core.inspect_network("a").unwrap().endpoints;
    assert_eq!(ep.len(), 3);
    assert_eq!(
        ep[0].mac.to_string(),
        "02:42:c6:13:c8:02",
        "MAC derived from the IP"
    );
}

#[tokio::test]
async fn names_are_unique_and_references_resolve() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    let n = core
        .create_network(network("a", "null", None))
        .await
        .unwrap();
    let again = core
        .create_network(network("a", "null", None))
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::AlreadyExists);
    assert_eq!(core.inspect_network(&n.id.as_str()[..6]).unwrap().id, n.id);
    core.create_endpoint("a", endpoint("e")).await.unwrap();
    let dup = core
        .create_endpoint(n.id.as_str(), endpoint("e"))
        .await
        .unwrap_err();
    assert_eq!(dup.kind, ErrorKind::AlreadyExists);
    core.create_sandbox(sandbox("s")).await.unwrap();
    assert_eq!(
        core.create_sandbox(sandbox("s")).await.unwrap_err().kind,
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        core.inspect_network("zz").unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        core.create_endpoint("nope", endpoint("x"))
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    core.create_network(network("a", "null", Some("198.19.200.0/24")))
        .await
        .unwrap();
    let before = core.snapshot();
    let ipam_before = core.ipam_snapshot();

    let overlap = core
        .create_network(network("b", "null", Some("198.19.200.128/25")))
        .await
        .unwrap_err();
    assert_eq!(
        overlap.kind,
        ErrorKind::AlreadyExists,
        "{}",
        overlap.message
    );
    assert!(
        overlap.message.contains("198.19.200.0/24"),
        "{}",
        overlap.message
    );

    let mut gw = network("c", "null", Some("198.19.201.0/24"));
    gw.subnets[0].gateway = Some("198.19.9.1".parse().unwrap());
    let e = core.create_network(gw).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    assert!(e.message.contains("outside subnet"), "{}", e.message);

    let unknown_driver = core
        .create_network(network("d", "nosuch", None))
        .await
        .unwrap_err();
    assert!(
        unknown_driver.message.contains("available drivers"),
        "{}",
        unknown_driver.message
    );

    let mut opts = network("e", "null", None);
    opts.options = weft_types::Options::from_pairs(["mtu=1400"]).unwrap();
    assert_eq!(
        core.create_network(opts).await.unwrap_err().kind,
        ErrorKind::InvalidParameter
    );

    let mut bad_ip = endpoint("x");
    bad_ip.ip = Some("198.19.99.5".parse().unwrap());
    assert_eq!(
        core.create_endpoint("a", bad_ip).await.unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    let mut gw_ip = endpoint("y");
    gw_ip.ip = Some("198.19.200.1".parse().unwrap());
    assert_eq!(
        core.create_endpoint("a", gw_ip).await.unwrap_err().kind,
        ErrorKind::AlreadyExists
    );

    assert_eq!(core.snapshot(), before);
    assert_eq!(core.ipam_snapshot(), ipam_before);
}

#[tokio::test]
async fn network_with_endpoints_is_removed_only_when_forced() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    core.create_network(network("a", "fake", None))
        .await
        .unwrap();
    core.create_endpoint("a", endpoint("e1")).await.unwrap();
    core.create_sandbox(sandbox("s")).await.unwrap();
    core.join("a", "e1", "s").await.unwrap();
    let refused = core.delete_network("a", false).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::ActiveEndpoints);
    assert!(refused.message.contains("e1"), "{}", refused.message);
    core.delete_network("a", true).await.unwrap();
    assert!(core.list_networks().is_empty());
    assert!(core.list_endpoints(None).unwrap().is_empty());
    let fake = h.fake.state();
    assert!(
        fake.networks.is_empty() && fake.endpoints.is_empty() && fake.joins.is_empty(),
        "{fake:?}"
    );
    // The subnet is free again.
    core.create_network(network("a2", "fake", Some("198.19.0.0/24")))
        .await
        .unwrap();
}

#[tokio::test]
async fn join_rules() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    core.create_network(network("a", "fake", None))
        .await
        .unwrap();
    core.create_endpoint("a", endpoint("e1")).await.unwrap();
    core.create_endpoint("a", endpoint("e2")).await.unwrap();
    core.create_sandbox(sandbox("s1")).await.unwrap();
    core.create_sandbox(sandbox("s2")).await.unwrap();
    core.join("a", "e1", "s1").await.unwrap();
    assert_eq!(
        core.join("a", "e1", "s2").await.unwrap_err().kind,
        ErrorKind::Forbidden
    );
    assert_eq!(
        core.join("a", "e2", "s1").await.unwrap_err().kind,
        ErrorKind::Forbidden,
        "one endpoint per network per sandbox"
    );
    assert_eq!(
        core.delete_endpoint("a", "e1", false)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::ActiveContainer
    );
    assert_eq!(
        core.delete_sandbox("s1", false).await.unwrap_err().kind,
        ErrorKind::ActiveEndpoints
    );
    assert_eq!(core.inspect_sandbox("s1").unwrap().endpoints.len(), 1);
    core.leave("a", "e1").await.unwrap();
    assert_eq!(
        core.leave("a", "e1").await.unwrap_err().kind,
        ErrorKind::Forbidden
    );
    core.join("a", "e1", "s2").await.unwrap();
    core.delete_endpoint("a", "e1", true).await.unwrap();
    assert!(h.fake.state().joins.is_empty());
    core.delete_sandbox("s1", false).await.unwrap();
}

#[tokio::test]
async fn driver_failures_roll_back_every_step() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();

    h.fake.fail(DriverOp::CreateNetwork, 1);
    assert!(
        core.create_network(network("a", "fake", Some("198.19.10.0/24")))
            .await
            .is_err()
    );
    assert!(core.list_networks().is_empty());
    assert!(
        core.snapshot().networks.is_empty(),
        "no half-created record"
    );
    core.create_network(network("a", "fake", Some("198.19.10.0/24")))
        .await
        .expect("subnet released by the rollback");

    h.fake.fail(DriverOp::CreateEndpoint, 1);
    let mut wanted = endpoint("e");
    wanted.ip = Some("198.19.10.7".parse().unwrap());
    assert!(core.create_endpoint("a", wanted.clone()).await.is_err());
    assert!(core.snapshot().endpoints.is_empty());
    core.create_endpoint("a", wanted)
        .await
        .expect("address released by the rollback");

    core.create_sandbox(sandbox("s")).await.unwrap();
    h.fake.fail(DriverOp::Join, 1);
    assert!(core.join("a", "e", "s").await.is_err());
    assert_eq!(core.inspect_sandbox("s").unwrap().endpoints.len(), 0);
    let calls = h.fake.state().calls;
    assert_eq!(
        calls.last().map(|c| c.0),
        Some(DriverOp::Leave),
        "a failed join is undone: {calls:?}"
    );
    core.join("a", "e", "s").await.unwrap();

    // A failing leave leaves the endpoint `leaving`; retrying finishes it.
    h.fake.fail(DriverOp::Leave, 1);
    assert!(core.leave("a", "e").await.is_err());
    core.leave("a", "e").await.unwrap();
    assert!(h.fake.state().joins.is_empty());
}

#[tokio::test]
async fn a_failed_rollback_leaves_a_network_rm_can_finish_not_a_blocked_name() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    h.fake.fail(DriverOp::CreateNetwork, 1);
    h.fake.fail(DriverOp::DeleteNetwork, 1);
    let e = core
        .create_network(network("a", "fake", Some("198.19.10.0/24")))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("run weft network rm a to finish"),
        "{}",
        e.message
    );
    let e = core
        .create_network(network("a", "fake", Some("198.19.10.0/24")))
        .await
        .unwrap_err();
    assert!(e.message.contains("being deleted"), "{}", e.message);
    core.delete_network("a", false).await.unwrap();
    core.create_network(network("a", "fake", Some("198.19.10.0/24")))
        .await
        .unwrap();
}

#[tokio::test]
async fn failed_network_delete_can_be_retried_and_blocks_reuse_of_the_name() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    core.create_network(network("a", "fake", Some("198.19.10.0/24")))
        .await
        .unwrap();
    h.fake.fail(DriverOp::DeleteNetwork, 1);
    assert!(core.delete_network("a", false).await.is_err());
    let e = core
        .create_network(network("a", "fake", None))
        .await
        .unwrap_err();
    assert!(e.message.contains("being deleted"), "{}", e.message);
    core.delete_network("a", false).await.unwrap();
    core.create_network(network("a", "fake", Some("198.19.10.0/24")))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_driver_checks_a_local_network_before_any_subnet_is_allocated() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    let before = h.fake.state().calls.len();
    h.fake.fail(DriverOp::Validate, 1);
    let err = core
        .create_network(network("a", "fake", Some("198.19.10.0/24")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter, "{err}");
    assert!(err.message.contains("injected refusal of a"), "{err}");
    assert!(core.snapshot().networks.is_empty());
    let state = h.fake.state();
    let ops: Vec<DriverOp> = state.calls[before..].iter().map(|c| c.0).collect();
    assert_eq!(
        ops,
        vec![DriverOp::Validate],
        "the driver was asked to create"
    );

    // Accepted: the driver saw what was asked for (no subnet: IPAM had not picked one
    // yet), then the network with the subnet IPAM picked.
    let auto = core
        .create_network(network("b", "fake", None))
        .await
        .unwrap();
    assert_eq!(auto.subnets[0].subnet.to_string(), "198.19.0.0/24");
    let state = h.fake.state();
    let ops: Vec<DriverOp> = state.calls[before..].iter().map(|c| c.0).collect();
    assert_eq!(
        ops,
        vec![
            DriverOp::Validate,
            DriverOp::Validate,
            DriverOp::CreateNetwork
        ]
    );
    let asked = state.validated.last().unwrap();
    assert_eq!(asked.name.as_str(), "b");
    assert!(asked.subnets.is_empty(), "{asked:?}");
}
