//! Services on local networks, as the controller keeps them: a VIP from the network's
//! pool, stored, reserved again after a restart, released when the service goes; the
//! checks around them (a backend's service must exist on its network; a network is not
//! removed under a service; a service is not removed under a backend).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, endpoint, network};
use weft_types::{ErrorKind, Name, ServiceMode};

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_local_service_keeps_its_vip_across_restarts_and_frees_it_when_removed() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    core.create_network(network("n", "fake", Some("198.19.5.0/24")))
        .await
        .unwrap();
    core.create_network(network("m", "fake", Some("198.19.6.0/24")))
        .await
        .unwrap();
    let web = core
        .create_service(&name("web"), ServiceMode::Vip, &["n".into()])
        .await
        .unwrap();
    let vip = web.networks[0].vip.unwrap();
    assert!(
        "198.19.5.0/24"
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&vip)
    );
    let allocations = core.ipam_snapshot();
    drop(core);

    let mut core = h.open().await.unwrap();
    assert_eq!(
        core.ipam_snapshot(),
        allocations,
        "the VIP is reserved again"
    );
    assert_eq!(core.list_services().await.unwrap(), vec![web.clone()]);
    let again = core
        .create_service(&name("web"), ServiceMode::Dnsrr, &["m".into()])
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::AlreadyExists, "{again}");
    let under = core.delete_network("n", true).await.unwrap_err();
    assert!(under.message.contains("service(s) web"), "{under}");

    // Backends: only for a service that exists on the endpoint's network.
    let mut backend = endpoint("b1");
    backend.service = Some(name("web"));
    core.create_endpoint("n", backend.clone()).await.unwrap();
    let elsewhere = core.create_endpoint("m", backend).await.unwrap_err();
    assert!(
        elsewhere.message.contains("not defined on network m"),
        "{elsewhere}"
    );
    let mut unknown = endpoint("b2");
    unknown.service = Some(name("nope"));
    let missing = core.create_endpoint("n", unknown).await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
    let busy = core.delete_service(&name("web")).await.unwrap_err();
    assert!(busy.message.contains("b1"), "{busy}");

    core.delete_endpoint("n", "b1", false).await.unwrap();
    core.delete_service(&name("web")).await.unwrap();
    assert!(core.list_services().await.unwrap().is_empty());
    // The VIP is free: an endpoint may take it.
    let mut takes_vip = endpoint("b3");
    takes_vip.ip = Some(vip);
    core.create_endpoint("n", takes_vip).await.unwrap();
    drop(core);
    let core = h.open().await.unwrap();
    assert!(core.snapshot().endpoints.len() == 1);
}

#[tokio::test]
async fn a_service_needs_networks_with_names_of_one_scope() {
    let h = Harness::new();
    let mut core = h.open().await.unwrap();
    core.create_network(network("nul", "null", None))
        .await
        .unwrap();
    let err = core
        .create_service(&name("db"), ServiceMode::Vip, &["nul".into()])
        .await
        .unwrap_err();
    assert!(err.message.contains("networks with names"), "{err}");
    let none = core
        .create_service(&name("db"), ServiceMode::Vip, &[])
        .await
        .unwrap_err();
    assert_eq!(none.kind, ErrorKind::InvalidParameter, "{none}");
}
