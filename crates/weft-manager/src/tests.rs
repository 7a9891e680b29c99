//! Unit tests of the allocator's rules and refusals.

mod services;

use crate::*;
use ipnet::IpNet;
use std::net::IpAddr;
use weft_ipam::PredefinedPool;
use weft_types::api::SubnetRequest;
use weft_types::{ErrorKind, Name, NetworkId};

fn config(pool: &str) -> AllocatorConfig {
    AllocatorConfig {
        pools: vec![PredefinedPool {
            base: pool.parse().unwrap(),
            size: 24,
        }],
        vnis: VniRange::default(),
    }
}

fn alloc() -> Allocator {
    Allocator::new(config("198.19.128.0/17")).unwrap()
}

fn id(n: u8) -> NetworkId {
    format!("{n:064x}").parse().unwrap()
}

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn meta() -> NetworkMeta {
    NetworkMeta {
        driver: "overlay".parse().unwrap(),
        ipv6: false,
        internal: false,
        attachable: true,
        options: Default::default(),
        labels: Default::default(),
        created_ms: 1,
    }
}

fn create(n: u8, subnets: Vec<SubnetRequest>, vni: Option<u32>) -> Command {
    Command::CreateNetwork {
        id: id(n),
        name: name(&format!("net{n}")),
        subnets,
        vni: vni.map(|v| Vni::new(v).unwrap()),
        meta: meta(),
    }
}

fn subnet(s: &str) -> SubnetRequest {
    SubnetRequest {
        subnet: Some(net(s)),
        ..SubnetRequest::default()
    }
}

fn created(outcome: Outcome) -> NetworkDef {
    match outcome {
        Outcome::NetworkCreated(def) => def,
        other => panic!("not a creation: {other:?}"),
    }
}

fn addresses(outcome: Outcome) -> Vec<IpNet> {
    match outcome {
        Outcome::AddressAllocated(g) | Outcome::VipAllocated(g) => g.addresses,
        other => panic!("not an allocation: {other:?}"),
    }
}

fn endpoint(n: u8, ep: &str, ip: Option<&str>) -> Command {
    Command::AllocateAddress {
        network: id(n),
        endpoint: ep.to_owned(),
        ip: ip.map(|s| s.parse().unwrap()),
    }
}

/// Applies `cmd`, expects a refusal of `kind` and checks nothing changed.
fn refused(a: &mut Allocator, cmd: &Command, kind: ErrorKind) -> AllocError {
    let before = a.clone();
    let err = a.apply(cmd).unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(*a, before, "refused command changed the state");
    assert_eq!(a.snapshot(), before.snapshot());
    err
}

#[test]
fn automatic_network_gets_first_subnet_gateway_and_vni_4096() {
    let mut a = alloc();
    let def = created(a.apply(&create(1, vec![], None)).unwrap());
    assert!(def.auto_subnet);
    assert_eq!(def.subnets.len(), 1);
    let s = &def.subnets[0];
    assert_eq!(s.config.subnet, net("198.19.128.0/24"));
    assert_eq!(s.config.gateway, ip("198.19.128.1"));
    assert_eq!(s.vni.map(Vni::get), Some(4096));
    let def2 = created(a.apply(&create(2, vec![], None)).unwrap());
    assert_eq!(def2.subnets[0].config.subnet, net("198.19.129.0/24"));
    assert_eq!(def2.subnets[0].vni.map(Vni::get), Some(4097));
    assert_eq!(a.network_by_name(&name("net2")), Some(&def2));
}

#[test]
fn default_config_is_10_slash_8_in_24s() {
    let mut a = Allocator::default();
    let def = created(a.apply(&create(1, vec![], None)).unwrap());
    assert_eq!(def.subnets[0].config.subnet, net("10.0.0.0/24"));
    assert_eq!(
        a,
        Allocator::new(AllocatorConfig::default())
            .map(|mut b| {
                b.apply(&create(1, vec![], None)).unwrap();
                b
            })
            .unwrap()
    );
}

#[test]
fn duplicate_id_and_name_are_refused() {
    let mut a = alloc();
    a.apply(&create(1, vec![], None)).unwrap();
    let same_id = Command::CreateNetwork {
        id: id(1),
        name: name("other"),
        subnets: vec![],
        vni: None,
        meta: meta(),
    };
    refused(&mut a, &same_id, ErrorKind::AlreadyExists);
    let same_name = Command::CreateNetwork {
        id: id(2),
        name: name("net1"),
        subnets: vec![],
        vni: None,
        meta: meta(),
    };
    let err = refused(&mut a, &same_name, ErrorKind::AlreadyExists);
    assert!(matches!(err, AllocError::NameTaken { .. }));
}

#[test]
fn overlapping_subnet_is_refused() {
    let mut a = alloc();
    a.apply(&create(1, vec![subnet("198.18.0.0/16")], None))
        .unwrap();
    refused(
        &mut a,
        &create(2, vec![subnet("198.18.4.0/24")], None),
        ErrorKind::AlreadyExists,
    );
    // Two overlapping subnets in one request: the first is rolled back too.
    refused(
        &mut a,
        &create(
            3,
            vec![subnet("198.20.0.0/24"), subnet("198.20.0.0/25")],
            None,
        ),
        ErrorKind::AlreadyExists,
    );
    a.apply(&create(3, vec![subnet("198.20.0.0/24")], None))
        .unwrap();
}

#[test]
fn automatic_subnets_skip_given_ones() {
    let mut a = alloc();
    a.apply(&create(1, vec![subnet("198.19.128.0/23")], None))
        .unwrap();
    let def = created(a.apply(&create(2, vec![], None)).unwrap());
    assert_eq!(def.subnets[0].config.subnet, net("198.19.130.0/24"));
}

#[test]
fn given_gateway_and_range_are_kept_and_checked() {
    let mut a = alloc();
    let req = SubnetRequest {
        subnet: Some(net("198.18.0.0/24")),
        gateway: Some(ip("198.18.0.254")),
        ip_range: Some(net("198.18.0.128/25")),
    };
    let def = created(a.apply(&create(1, vec![req], None)).unwrap());
    let s = &def.subnets[0].config;
    assert_eq!(s.gateway, ip("198.18.0.254"));
    assert_eq!(s.ip_range, Some(net("198.18.0.128/25")));
    assert!(!def.auto_subnet);
    let got = addresses(a.apply(&endpoint(1, "ep", None)).unwrap());
    assert_eq!(got, vec![net("198.18.0.128/24")]);

    let outside = SubnetRequest {
        subnet: Some(net("198.18.1.0/24")),
        gateway: Some(ip("198.18.2.1")),
        ip_range: None,
    };
    refused(
        &mut a,
        &create(2, vec![outside], None),
        ErrorKind::InvalidParameter,
    );
    let no_subnet = SubnetRequest {
        gateway: Some(ip("198.18.2.1")),
        ..SubnetRequest::default()
    };
    refused(
        &mut a,
        &create(2, vec![no_subnet], None),
        ErrorKind::InvalidParameter,
    );
}

#[test]
fn given_vni_is_used_and_skipped_by_the_serial_search() {
    let mut a = alloc();
    let def = created(a.apply(&create(1, vec![], Some(4096))).unwrap());
    assert_eq!(def.subnets[0].vni.map(Vni::get), Some(4096));
    let def = created(a.apply(&create(2, vec![], None)).unwrap());
    assert_eq!(def.subnets[0].vni.map(Vni::get), Some(4097));
    let err = refused(
        &mut a,
        &create(3, vec![], Some(4097)),
        ErrorKind::AlreadyExists,
    );
    assert!(matches!(err, AllocError::VniTaken { .. }));
}

#[test]
fn one_vni_per_ipv4_subnet_and_ipv4_first() {
    let mut a = alloc();
    let subnets = vec![
        subnet("fd00:1::/64"),
        subnet("198.18.0.0/24"),
        subnet("198.18.1.0/24"),
    ];
    let def = created(a.apply(&create(1, subnets, Some(7000))).unwrap());
    let got: Vec<(IpNet, Option<u32>)> = def
        .subnets
        .iter()
        .map(|s| (s.config.subnet, s.vni.map(Vni::get)))
        .collect();
    assert_eq!(
        got,
        vec![
            (net("198.18.0.0/24"), Some(7000)),
            (net("198.18.1.0/24"), Some(4096)),
            (net("fd00:1::/64"), None),
        ]
    );
    // An endpoint gets one address per family.
    let got = addresses(a.apply(&endpoint(1, "ep", None)).unwrap());
    assert_eq!(got, vec![net("198.18.0.2/24"), net("fd00:1::2/64")]);
}

#[test]
fn vni_without_ipv4_subnet_is_refused() {
    let mut a = alloc();
    refused(
        &mut a,
        &create(1, vec![subnet("fd00:1::/64")], Some(5000)),
        ErrorKind::InvalidParameter,
    );
}

#[test]
fn unknown_network_is_refused_everywhere() {
    let mut a = alloc();
    a.apply(&create(1, vec![], None)).unwrap();
    let svc = name("web");
    for cmd in [
        Command::DeleteNetwork { id: id(9) },
        endpoint(9, "ep", None),
        Command::ReleaseAddress {
            network: id(9),
            endpoint: "ep".into(),
        },
        Command::AllocateVip {
            network: id(9),
            service: svc.clone(),
        },
        Command::ReleaseVip {
            network: id(9),
            service: svc.clone(),
        },
    ] {
        refused(&mut a, &cmd, ErrorKind::NotFound);
    }
}

#[test]
fn exhausted_subnet_pool_is_refused() {
    let mut a = Allocator::new(config("198.19.128.0/23")).unwrap();
    a.apply(&create(1, vec![], None)).unwrap();
    a.apply(&create(2, vec![], None)).unwrap();
    refused(&mut a, &create(3, vec![], None), ErrorKind::Exhausted);
    a.apply(&Command::DeleteNetwork { id: id(1) }).unwrap();
    let def = created(a.apply(&create(3, vec![], None)).unwrap());
    assert_eq!(def.subnets[0].config.subnet, net("198.19.128.0/24"));
}

#[test]
fn exhausted_vnis_are_refused() {
    let mut cfg = config("198.19.128.0/17");
    cfg.vnis = VniRange {
        first: Vni::new(100).unwrap(),
        last: Vni::new(101).unwrap(),
    };
    let mut a = Allocator::new(cfg).unwrap();
    a.apply(&create(1, vec![], None)).unwrap();
    a.apply(&create(2, vec![], None)).unwrap();
    let err = refused(&mut a, &create(3, vec![], None), ErrorKind::Exhausted);
    assert!(matches!(err, AllocError::VnisExhausted { .. }));
    // The subnet tried for the refused network was not kept.
    a.apply(&Command::DeleteNetwork { id: id(1) }).unwrap();
    let def = created(a.apply(&create(3, vec![], None)).unwrap());
    assert_eq!(def.subnets[0].vni.map(Vni::get), Some(100));
}

#[test]
fn exhausted_addresses_are_refused() {
    let mut a = alloc();
    a.apply(&create(1, vec![subnet("198.18.0.0/30")], None))
        .unwrap();
    let got = addresses(a.apply(&endpoint(1, "a", None)).unwrap());
    assert_eq!(got, vec![net("198.18.0.2/30")]);
    refused(&mut a, &endpoint(1, "b", None), ErrorKind::Exhausted);
    refused(
        &mut a,
        &Command::AllocateVip {
            network: id(1),
            service: name("web"),
        },
        ErrorKind::Exhausted,
    );
}

#[test]
fn addresses_are_idempotent_per_endpoint() {
    let mut a = alloc();
    a.apply(&create(1, vec![], None)).unwrap();
    let first = addresses(a.apply(&endpoint(1, "ep", None)).unwrap());
    assert_eq!(first, vec![net("198.19.128.2/24")]);
    let again = addresses(a.apply(&endpoint(1, "ep", None)).unwrap());
    assert_eq!(first, again);
    let same_ip = addresses(a.apply(&endpoint(1, "ep", Some("198.19.128.2"))).unwrap());
    assert_eq!(first, same_ip);
    refused(
        &mut a,
        &endpoint(1, "ep", Some("198.19.128.9")),
        ErrorKind::AlreadyExists,
    );
    let other = addresses(a.apply(&endpoint(1, "other", None)).unwrap());
    assert_eq!(other, vec![net("198.19.128.3/24")]);
}

#[test]
fn specific_addresses_are_checked() {
    let mut a = alloc();
    a.apply(&create(1, vec![], None)).unwrap();
    let got = addresses(a.apply(&endpoint(1, "a", Some("198.19.128.50"))).unwrap());
    assert_eq!(got, vec![net("198.19.128.50/24")]);
    refused(
        &mut a,
        &endpoint(1, "b", Some("198.19.128.50")),
        ErrorKind::AlreadyExists,
    );
    refused(
        &mut a,
        &endpoint(1, "b", Some("198.19.128.1")),
        ErrorKind::AlreadyExists,
    );
    refused(
        &mut a,
        &endpoint(1, "b", Some("198.19.128.255")),
        ErrorKind::InvalidParameter,
    );
    refused(
        &mut a,
        &endpoint(1, "b", Some("192.0.2.1")),
        ErrorKind::InvalidParameter,
    );
    refused(&mut a, &endpoint(1, "", None), ErrorKind::InvalidParameter);
}

#[test]
fn released_addresses_come_back() {
    let mut a = alloc();
    a.apply(&create(1, vec![subnet("198.18.0.0/29")], None))
        .unwrap();
    let release = |ep: &str| Command::ReleaseAddress {
        network: id(1),
        endpoint: ep.into(),
    };
    for ep in ["a", "b", "c", "d", "e"] {
        a.apply(&endpoint(1, ep, None)).unwrap();
    }
    refused(&mut a, &endpoint(1, "f", None), ErrorKind::Exhausted);
    let released = a.apply(&release("c")).unwrap();
    assert_eq!(
        released,
        Outcome::AddressReleased(Grant {
            network: id(1),
            addresses: vec![net("198.18.0.4/29")],
        })
    );
    refused(&mut a, &release("c"), ErrorKind::NotFound);
    let got = addresses(a.apply(&endpoint(1, "f", None)).unwrap());
    assert_eq!(got, vec![net("198.18.0.4/29")]);
}

#[test]
fn vips_are_idempotent_distinct_from_endpoints_and_released() {
    let mut a = alloc();
    a.apply(&create(1, vec![], None)).unwrap();
    let vip = Command::AllocateVip {
        network: id(1),
        service: name("web"),
    };
    let v = addresses(a.apply(&vip).unwrap());
    assert_eq!(addresses(a.apply(&vip).unwrap()), v);
    let e = addresses(a.apply(&endpoint(1, "web", None)).unwrap());
    assert_ne!(v, e);
    let release = Command::ReleaseVip {
        network: id(1),
        service: name("web"),
    };
    assert!(matches!(
        a.apply(&release).unwrap(),
        Outcome::VipReleased(_)
    ));
    refused(&mut a, &release, ErrorKind::NotFound);
}

#[test]
fn delete_releases_subnets_vnis_addresses_and_vips() {
    let mut a = alloc();
    let empty = a.clone();
    a.apply(&create(1, vec![subnet("198.18.0.0/24")], Some(5000)))
        .unwrap();
    a.apply(&endpoint(1, "ep", None)).unwrap();
    a.apply(&Command::AllocateVip {
        network: id(1),
        service: name("web"),
    })
    .unwrap();
    let deleted = a.apply(&Command::DeleteNetwork { id: id(1) }).unwrap();
    assert!(matches!(deleted, Outcome::NetworkDeleted(ref d) if d.id == id(1)));
    assert_eq!(a, empty);
    assert!(a.network(&id(1)).is_none());
    a.apply(&create(2, vec![subnet("198.18.0.0/24")], Some(5000)))
        .unwrap();
    // The name is free again too.
    let reuse = Command::CreateNetwork {
        id: id(3),
        name: name("net1"),
        subnets: vec![],
        vni: None,
        meta: meta(),
    };
    a.apply(&reuse).unwrap();
}

#[test]
fn invalid_configuration_is_refused() {
    let mut cfg = config("198.19.128.0/17");
    cfg.vnis = VniRange {
        first: Vni::new(10).unwrap(),
        last: Vni::new(9).unwrap(),
    };
    assert!(matches!(
        Allocator::new(cfg),
        Err(AllocError::InvalidConfig { .. })
    ));
    let mut cfg = config("198.19.128.0/17");
    cfg.pools[0].base = net("198.19.128.5/17");
    assert!(Allocator::new(cfg).is_err());
}

#[test]
fn errors_map_to_user_kinds() {
    let e: weft_types::Error = AllocError::UnknownNetwork { id: id(1) }.into();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("not found"), "{}", e.message);
    let e: weft_types::Error = ManagerError::ConfigChanged.into();
    assert_eq!(e.kind, ErrorKind::InvalidParameter);
    let e: weft_types::Error = ManagerError::LogOrder {
        expected: 1,
        found: 2,
    }
    .into();
    assert_eq!(e.kind, ErrorKind::Internal);
}

#[test]
fn same_commands_give_same_state_and_outcomes() {
    let cmds = [
        create(1, vec![], None),
        endpoint(1, "a", None),
        create(2, vec![subnet("198.18.0.0/24")], Some(9000)),
        endpoint(2, "b", None),
        Command::DeleteNetwork { id: id(1) },
        create(3, vec![], None),
    ];
    let run = || {
        let mut a = alloc();
        let outs: Vec<_> = cmds.iter().map(|c| a.apply(c).unwrap()).collect();
        (a, outs)
    };
    let (a, outs_a) = run();
    let (b, outs_b) = run();
    assert_eq!(a, b);
    assert_eq!(outs_a, outs_b);
}

mod service {
    use super::*;
    use weft_store::Store;

    fn service() -> (tempfile::TempDir, ManagerService) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = AllocatorConfig {
            pools: vec![PredefinedPool {
                base: "198.19.0.0/16".parse().unwrap(),
                size: 24,
            }],
            vnis: VniRange::default(),
        };
        let service = ManagerService::new(ManagerStore::open(store, config).unwrap());
        (dir, service)
    }

    fn create(service: &ManagerService, name: &str, options: &[&str]) -> ManagerReply {
        let mut m = meta();
        m.options = weft_types::Options::from_pairs(options.iter().copied()).unwrap();
        service.handle(ManagerRequest::CreateNetwork {
            name: name.parse().unwrap(),
            subnets: vec![],
            meta: m,
        })
    }

    #[test]
    fn created_network_carries_its_vni_as_the_driver_option() {
        let (_dir, s) = service();
        let Ok(ManagerResponse::Network(record)) = create(&s, "ov1", &[]) else {
            panic!("create failed");
        };
        assert_eq!(record.scope, weft_types::Scope::Global);
        assert_eq!(record.options.get(VXLANID_OPTION), Some("4096"));
        assert_eq!(record.subnets[0].subnet.to_string(), "198.19.0.0/24");
        assert_eq!(s.networks(), vec![record]);
    }

    #[test]
    fn a_given_vni_is_used_and_a_bad_one_refused() {
        let (_dir, s) = service();
        let given = format!("{VXLANID_OPTION}=5000");
        let Ok(ManagerResponse::Network(record)) = create(&s, "ov1", &[&given]) else {
            panic!("create failed");
        };
        assert_eq!(record.options.get(VXLANID_OPTION), Some("5000"));
        let bad = format!("{VXLANID_OPTION}=x");
        let err = create(&s, "ov2", &[&bad]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert!(err.to_string().contains(VXLANID_OPTION), "{err}");
        let taken = create(&s, "ov3", &[&given]).unwrap_err();
        assert_eq!(taken.kind, ErrorKind::AlreadyExists);
    }

    #[test]
    fn delete_is_refused_while_endpoints_hold_addresses() {
        let (_dir, s) = service();
        let Ok(ManagerResponse::Network(record)) = create(&s, "ov1", &[]) else {
            panic!("create failed");
        };
        let alloc = ManagerRequest::AllocateAddress {
            network: record.id.clone(),
            endpoint: "e1".to_owned(),
            ip: None,
        };
        let first = s.handle(alloc.clone()).unwrap();
        assert_eq!(s.handle(alloc).unwrap(), first, "allocation is idempotent");
        let delete = ManagerRequest::DeleteNetwork {
            id: record.id.clone(),
        };
        let err = s.handle(delete.clone()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ActiveEndpoints);
        let release = ManagerRequest::ReleaseAddress {
            network: record.id.clone(),
            endpoint: "e1".to_owned(),
        };
        assert_eq!(
            s.handle(release.clone()).unwrap(),
            ManagerResponse::Released
        );
        assert_eq!(
            s.handle(release).unwrap(),
            ManagerResponse::Released,
            "a repeated release succeeds"
        );
        assert_eq!(
            s.handle(delete).unwrap(),
            ManagerResponse::Deleted(record.id)
        );
        assert!(s.networks().is_empty());
    }

    #[test]
    fn a_forced_delete_releases_orphaned_addresses_but_not_live_ones() {
        let (_dir, s) = service();
        let Ok(ManagerResponse::Network(record)) = create(&s, "ov1", &[]) else {
            panic!("create failed");
        };
        for endpoint in ["live-one", "orphan-1", "orphan-2"] {
            s.handle(ManagerRequest::AllocateAddress {
                network: record.id.clone(),
                endpoint: endpoint.to_owned(),
                ip: None,
            })
            .unwrap();
        }
        let force = |live: &[&str]| ManagerRequest::ForceDeleteNetwork {
            id: record.id.clone(),
            live: live.iter().map(|e| e.to_string()).collect(),
        };
        let err = s.handle(force(&["live-one", "elsewhere"])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ActiveEndpoints);
        assert!(
            err.message
                .contains("1 endpoint(s) joined on live nodes (live-one)"),
            "{}",
            err.message
        );
        // Nothing was released by the refusal.
        let plain = s
            .handle(ManagerRequest::DeleteNetwork {
                id: record.id.clone(),
            })
            .unwrap_err();
        assert!(plain.message.contains("3 endpoint(s)"), "{}", plain.message);
        assert!(
            plain.message.contains("--force on a manager"),
            "{}",
            plain.message
        );
        assert_eq!(
            s.handle(force(&[])).unwrap(),
            ManagerResponse::Deleted(record.id.clone())
        );
        assert!(s.networks().is_empty());
        let e = s.handle(force(&[])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
    }
}
