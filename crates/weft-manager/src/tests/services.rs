//! Unit tests of services: VIPs, idempotent creation, refusals, release on delete, the
//! network delete they block, persistence and the manager's requests.

use super::*;
use weft_store::Store;
use weft_types::{ServiceMode, ServiceNetwork, ServiceRecord};

fn create_service(name: &str, mode: ServiceMode, networks: &[u8]) -> Command {
    Command::CreateService {
        name: super::name(name),
        mode,
        networks: networks.iter().map(|n| id(*n)).collect(),
    }
}

fn delete_service(name: &str) -> Command {
    Command::DeleteService {
        name: super::name(name),
    }
}

fn service_created(outcome: Outcome) -> ServiceRecord {
    match outcome {
        Outcome::ServiceCreated(record) => record,
        other => panic!("not a service creation: {other:?}"),
    }
}

/// An allocator with networks 1 (198.18.1.0/24) and 2 (198.18.2.0/24).
fn two_networks() -> Allocator {
    let mut a = alloc();
    a.apply(&create(1, vec![subnet("198.18.1.0/24")], None))
        .unwrap();
    a.apply(&create(2, vec![subnet("198.18.2.0/24")], None))
        .unwrap();
    a
}

#[test]
fn a_vip_service_gets_one_vip_per_network_in_its_subnet_apart_from_endpoints() {
    let mut a = two_networks();
    let e1 = addresses(a.apply(&endpoint(1, "ep1", None)).unwrap());
    let record = service_created(
        a.apply(&create_service("web", ServiceMode::Vip, &[2, 1]))
            .unwrap(),
    );
    assert_eq!(record.name, name("web"));
    assert_eq!(record.mode, ServiceMode::Vip);
    // In the order asked for, each VIP from its own network's subnet.
    assert_eq!(
        record.networks,
        vec![
            ServiceNetwork {
                network: id(2),
                vip: Some(ip("198.18.2.2")),
            },
            ServiceNetwork {
                network: id(1),
                vip: Some(ip("198.18.1.3")),
            },
        ]
    );
    assert_ne!(record.vip_on(&id(1)), Some(e1[0].addr()));
    let e2 = addresses(a.apply(&endpoint(1, "ep2", None)).unwrap());
    assert_eq!(e2, vec![net("198.18.1.4/24")], "the vip is not handed out");
    assert_eq!(a.service(&name("web")), Some(&record));
    assert_eq!(a.snapshot().services, vec![record.clone()]);
    // The VIP is held under the service's name, as AllocateVip holds one.
    let held = addresses(
        a.apply(&Command::AllocateVip {
            network: id(1),
            service: name("web"),
        })
        .unwrap(),
    );
    assert_eq!(held, vec![net("198.18.1.3/24")]);
}

#[test]
fn a_dnsrr_service_has_no_vip() {
    let mut a = two_networks();
    let before = a.snapshot().ipam;
    let record = service_created(
        a.apply(&create_service("db", ServiceMode::Dnsrr, &[1, 2]))
            .unwrap(),
    );
    assert!(record.networks.iter().all(|n| n.vip.is_none()));
    assert!(record.is_on(&id(1)) && record.is_on(&id(2)));
    assert_eq!(a.snapshot().ipam, before, "no address taken");
}

#[test]
fn creating_the_same_service_again_returns_the_same_record() {
    let mut a = two_networks();
    let cmd = create_service("web", ServiceMode::Vip, &[1, 2]);
    let first = a.apply(&cmd).unwrap();
    let state = a.clone();
    assert_eq!(a.apply(&cmd).unwrap(), first);
    assert_eq!(a, state, "a repeated creation takes nothing more");
}

#[test]
fn another_spec_under_an_existing_name_is_refused() {
    let mut a = two_networks();
    a.apply(&create_service("web", ServiceMode::Vip, &[1, 2]))
        .unwrap();
    for other in [
        create_service("web", ServiceMode::Dnsrr, &[1, 2]),
        create_service("web", ServiceMode::Vip, &[1]),
        create_service("web", ServiceMode::Vip, &[2, 1]),
    ] {
        let err = refused(&mut a, &other, ErrorKind::AlreadyExists);
        assert_eq!(err.to_string(), "service web already exists");
    }
}

#[test]
fn unknown_empty_and_repeated_networks_are_refused() {
    let mut a = two_networks();
    let err = refused(
        &mut a,
        &create_service("web", ServiceMode::Vip, &[1, 9]),
        ErrorKind::NotFound,
    );
    assert!(matches!(err, AllocError::UnknownNetwork { ref id } if *id == super::id(9)));
    let err = refused(
        &mut a,
        &create_service("web", ServiceMode::Vip, &[]),
        ErrorKind::InvalidParameter,
    );
    assert_eq!(err.to_string(), "service web needs at least one network");
    let err = refused(
        &mut a,
        &create_service("web", ServiceMode::Dnsrr, &[1, 2, 1]),
        ErrorKind::InvalidParameter,
    );
    assert!(
        matches!(err, AllocError::ServiceNetworkTwice { .. }),
        "{err}"
    );
}

#[test]
fn a_vip_failing_on_a_later_network_leaves_nothing() {
    let mut a = alloc();
    a.apply(&create(1, vec![subnet("198.18.1.0/24")], None))
        .unwrap();
    // A /30 has one address besides its gateway: an endpoint takes it.
    a.apply(&create(2, vec![subnet("198.18.0.0/30")], None))
        .unwrap();
    a.apply(&endpoint(2, "ep", None)).unwrap();
    refused(
        &mut a,
        &create_service("web", ServiceMode::Vip, &[1, 2]),
        ErrorKind::Exhausted,
    );
    assert!(a.service(&name("web")).is_none());
    // Network 1's VIP was not kept: the next address there is still the first one.
    let got = addresses(a.apply(&endpoint(1, "ep", None)).unwrap());
    assert_eq!(got, vec![net("198.18.1.2/24")]);
}

#[test]
fn delete_releases_the_vips_for_the_next_service() {
    let mut a = alloc();
    // A /29 has five addresses besides its gateway.
    a.apply(&create(1, vec![subnet("198.18.1.0/29")], None))
        .unwrap();
    a.apply(&create(2, vec![subnet("198.18.2.0/29")], None))
        .unwrap();
    let empty = a.clone();
    let web = create_service("web", ServiceMode::Vip, &[1, 2]);
    let record = service_created(a.apply(&web).unwrap());
    let deleted = a.apply(&delete_service("web")).unwrap();
    assert_eq!(deleted, Outcome::ServiceDeleted(record));
    assert_eq!(a.snapshot(), empty.snapshot(), "nothing left of it");
    let err = refused(&mut a, &delete_service("web"), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "service web not found");
    // Fill both subnets: web's VIPs and four endpoints each.
    let web = service_created(a.apply(&web).unwrap());
    for n in [1, 2] {
        for ep in ["a", "b", "c", "d"] {
            a.apply(&endpoint(n, ep, None)).unwrap();
        }
    }
    let api = create_service("api", ServiceMode::Vip, &[1, 2]);
    refused(&mut a, &api, ErrorKind::Exhausted);
    a.apply(&delete_service("web")).unwrap();
    let api = service_created(a.apply(&api).unwrap());
    assert_eq!(api.vip_on(&id(1)), web.vip_on(&id(1)));
    assert_eq!(api.vip_on(&id(2)), web.vip_on(&id(2)));
}

#[test]
fn a_service_vip_is_released_only_by_deleting_the_service() {
    let mut a = two_networks();
    a.apply(&create_service("web", ServiceMode::Vip, &[1]))
        .unwrap();
    let release = Command::ReleaseVip {
        network: id(1),
        service: name("web"),
    };
    let err = refused(&mut a, &release, ErrorKind::Forbidden);
    assert!(matches!(err, AllocError::VipOfService { .. }), "{err}");
    // A dnsrr service holds none: the VIP code answers as for any name.
    a.apply(&create_service("db", ServiceMode::Dnsrr, &[1]))
        .unwrap();
    let release = Command::ReleaseVip {
        network: id(1),
        service: name("db"),
    };
    refused(&mut a, &release, ErrorKind::NotFound);
}

#[test]
fn a_network_is_not_deleted_under_a_service() {
    let mut a = two_networks();
    a.apply(&create_service("web", ServiceMode::Vip, &[1, 2]))
        .unwrap();
    a.apply(&create_service("db", ServiceMode::Dnsrr, &[1]))
        .unwrap();
    let err = refused(
        &mut a,
        &Command::DeleteNetwork { id: id(1) },
        ErrorKind::Forbidden,
    );
    assert_eq!(
        err.to_string(),
        "network net1 has service(s) db, web: remove them first"
    );
    assert_eq!(a.services_on(&id(2)), vec![name("web")]);
    a.apply(&delete_service("web")).unwrap();
    a.apply(&Command::DeleteNetwork { id: id(2) }).unwrap();
    a.apply(&delete_service("db")).unwrap();
    a.apply(&Command::DeleteNetwork { id: id(1) }).unwrap();
    let s = a.snapshot();
    assert!(s.networks.is_empty() && s.services.is_empty() && s.ipam.pools.is_empty());
}

#[test]
fn reopening_the_store_gives_the_same_services() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("198.19.128.0/17");
    let cmds = [
        create(1, vec![], None),
        create(
            2,
            vec![subnet("198.18.0.0/24"), subnet("fd00:1::/64")],
            None,
        ),
        endpoint(1, "a", None),
        create_service("web", ServiceMode::Vip, &[1, 2]),
        create_service("db", ServiceMode::Dnsrr, &[2]),
        create_service("gone", ServiceMode::Vip, &[1]),
        create_service("web", ServiceMode::Vip, &[1, 2]),
        delete_service("gone"),
        endpoint(1, "b", None),
    ];
    let mut memory = Allocator::new(cfg.clone()).unwrap();
    let before = {
        let mut m = ManagerStore::open(Store::open(dir.path()).unwrap(), cfg.clone()).unwrap();
        for c in &cmds {
            assert_eq!(m.execute(c).unwrap(), memory.apply(c).unwrap());
        }
        m.allocator().clone()
    };
    assert_eq!(before, memory);
    let mut m = ManagerStore::open(Store::open(dir.path()).unwrap(), cfg).unwrap();
    assert_eq!(*m.allocator(), before);
    assert_eq!(m.allocator().snapshot(), before.snapshot());
    assert_eq!(m.allocator().snapshot().services.len(), 2);
    // After the restart, the next allocation avoids the replayed VIPs.
    let web = before.service(&name("web")).cloned().unwrap();
    let next = addresses(m.execute(&endpoint(2, "c", None)).unwrap());
    assert_ne!(Some(next[0].addr()), web.vip_on(&id(2)));
}

#[test]
fn stored_variants_keep_their_positions() {
    // Bincode stores an enum variant as its index followed by its fields: appending the
    // service variants must leave the existing ones where stored logs expect them.
    let encode = |v: &dyn erased::Encode| v.bytes();
    assert_eq!(
        encode(&Command::DeleteNetwork { id: id(1) }),
        encode(&(1u32, id(1)))
    );
    assert_eq!(encode(&delete_service("web")), encode(&(7u32, name("web"))));
    assert_eq!(
        encode(&ManagerRequest::DeleteService { name: name("web") }),
        encode(&(7u32, name("web")))
    );
    assert_eq!(encode(&ManagerRequest::Services), encode(&8u32));
    assert_eq!(
        encode(&ManagerResponse::ServiceDeleted(name("web"))),
        encode(&(6u32, name("web")))
    );
}

/// Encoding through a trait object, so that one closure takes every type.
mod erased {
    pub trait Encode {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Encode for T {
        fn bytes(&self) -> Vec<u8> {
            weft_types::wire::encode(1, self).unwrap()
        }
    }
}

mod requests {
    use super::*;

    fn service() -> (tempfile::TempDir, ManagerService) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let store = ManagerStore::open(store, config("198.19.0.0/16")).unwrap();
        (dir, ManagerService::new(store))
    }

    fn network(s: &ManagerService, name: &str) -> NetworkId {
        let reply = s.handle(ManagerRequest::CreateNetwork {
            name: name.parse().unwrap(),
            subnets: vec![],
            meta: meta(),
        });
        match reply {
            Ok(ManagerResponse::Network(record)) => record.id,
            other => panic!("create failed: {other:?}"),
        }
    }

    fn create_web(s: &ManagerService, networks: Vec<NetworkId>) -> ManagerReply {
        s.handle(ManagerRequest::CreateService {
            name: name("web"),
            mode: ServiceMode::Vip,
            networks,
        })
    }

    #[test]
    fn services_are_created_listed_and_deleted() {
        let (_dir, s) = service();
        let ov = network(&s, "ov1");
        let Ok(ManagerResponse::Service(web)) = create_web(&s, vec![ov.clone()]) else {
            panic!("create failed");
        };
        assert_eq!(web.vip_on(&ov), Some(ip("198.19.0.2")));
        assert_eq!(
            create_web(&s, vec![ov.clone()]).unwrap(),
            ManagerResponse::Service(web.clone()),
            "a retried creation gets the same answer"
        );
        assert_eq!(
            s.handle(ManagerRequest::Services).unwrap(),
            ManagerResponse::Services(vec![web])
        );
        let delete = ManagerRequest::DeleteService { name: name("web") };
        assert_eq!(
            s.handle(delete.clone()).unwrap(),
            ManagerResponse::ServiceDeleted(name("web"))
        );
        assert_eq!(s.handle(delete).unwrap_err().kind, ErrorKind::NotFound);
        assert!(s.services().is_empty());
    }

    #[test]
    fn a_conflicting_or_unknown_network_service_is_refused() {
        let (_dir, s) = service();
        let ov = network(&s, "ov1");
        create_web(&s, vec![ov.clone()]).unwrap();
        let other = network(&s, "ov2");
        let err = create_web(&s, vec![ov, other]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::AlreadyExists);
        assert_eq!(err.message, "service web already exists");
        let err = create_web(&s, vec![id(9)]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[test]
    fn plain_and_forced_network_deletes_are_refused_under_a_service() {
        let (_dir, s) = service();
        let ov = network(&s, "ov1");
        create_web(&s, vec![ov.clone()]).unwrap();
        s.handle(ManagerRequest::AllocateAddress {
            network: ov.clone(),
            endpoint: "orphan".to_owned(),
            ip: None,
        })
        .unwrap();
        let force = ManagerRequest::ForceDeleteNetwork {
            id: ov.clone(),
            live: Default::default(),
        };
        let err = s.handle(force.clone()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden);
        assert_eq!(
            err.message,
            "network ov1 has service(s) web: remove them first"
        );
        // The refused forced delete released nothing.
        let plain = ManagerRequest::DeleteNetwork { id: ov.clone() };
        let err = s.handle(plain.clone()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ActiveEndpoints, "{}", err.message);
        s.handle(ManagerRequest::ReleaseAddress {
            network: ov.clone(),
            endpoint: "orphan".to_owned(),
        })
        .unwrap();
        let err = s.handle(plain.clone()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden);
        assert!(err.message.contains("service(s) web"), "{}", err.message);
        s.handle(ManagerRequest::DeleteService { name: name("web") })
            .unwrap();
        assert_eq!(s.handle(plain).unwrap(), ManagerResponse::Deleted(ov));
    }
}
