//! Property tests over random command sequences: nothing handed out twice among live
//! allocations, releases reusable, refusals change nothing, replay and restart give an
//! equal state, services only on live networks and holding their VIPs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipnet::IpNet;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use weft_ipam::PredefinedPool;
use weft_manager::{
    Allocator, AllocatorConfig, AllocatorSnapshot, Command, ManagerStore, Outcome, Vni, VniRange,
};
use weft_store::Store;
use weft_types::api::SubnetRequest;
use weft_types::{Name, NetworkId, ServiceMode};

fn meta() -> weft_manager::NetworkMeta {
    weft_manager::NetworkMeta {
        driver: "overlay".parse().unwrap(),
        ipv6: false,
        internal: false,
        attachable: true,
        options: Default::default(),
        labels: Default::default(),
        created_ms: 1,
    }
}

fn config() -> AllocatorConfig {
    AllocatorConfig {
        // Four /24s, so that subnet exhaustion happens in the sequences.
        pools: vec![PredefinedPool {
            base: "198.19.128.0/22".parse().unwrap(),
            size: 24,
        }],
        vnis: VniRange {
            first: Vni::new(4096).unwrap(),
            last: Vni::new(4100).unwrap(),
        },
    }
}

fn id(n: u8) -> NetworkId {
    format!("{n:064x}").parse().unwrap()
}

fn name(prefix: &str, n: u8) -> Name {
    format!("{prefix}{n}").parse().unwrap()
}

const GIVEN: [&str; 5] = [
    "198.19.129.0/24",
    "198.18.0.0/29",
    "198.18.0.0/28",
    "fd00::/64",
    "198.18.1.0/30",
];

fn subnet_request() -> impl Strategy<Value = SubnetRequest> {
    prop_oneof![
        2 => Just(SubnetRequest::default()),
        3 => (0..GIVEN.len()).prop_map(|i| SubnetRequest {
            subnet: Some(GIVEN[i].parse().unwrap()),
            ..SubnetRequest::default()
        }),
    ]
}

fn address() -> impl Strategy<Value = Option<IpAddr>> {
    prop_oneof![
        4 => Just(None),
        1 => prop::sample::select(vec![
            "198.19.128.5", "198.19.129.2", "198.18.0.3", "198.18.0.9", "fd00::5", "198.18.1.2",
        ])
        .prop_map(|s| Some(s.parse().unwrap())),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let net = 0u8..4;
    prop_oneof![
        3 => (net.clone(), 0u8..5, prop::collection::vec(subnet_request(), 0..3),
              prop::option::weighted(0.2, 4096u32..4103))
            .prop_map(|(n, nm, subnets, vni)| Command::CreateNetwork {
                id: id(n),
                name: name("net", nm),
                subnets,
                vni: vni.map(|v| Vni::new(v).unwrap()),
                meta: meta(),
            }),
        1 => net.clone().prop_map(|n| Command::DeleteNetwork { id: id(n) }),
        6 => (net.clone(), 0u8..4, address()).prop_map(|(n, e, ip)| Command::AllocateAddress {
            network: id(n),
            endpoint: format!("ep{e}"),
            ip,
        }),
        3 => (net.clone(), 0u8..4).prop_map(|(n, e)| Command::ReleaseAddress {
            network: id(n),
            endpoint: format!("ep{e}"),
        }),
        2 => (net.clone(), 0u8..3).prop_map(|(n, s)| Command::AllocateVip {
            network: id(n),
            service: name("svc", s),
        }),
        1 => (net.clone(), 0u8..3).prop_map(|(n, s)| Command::ReleaseVip {
            network: id(n),
            service: name("svc", s),
        }),
        // The same names as the VIPs above: a service adopts a VIP its name holds.
        2 => (0u8..3, any::<bool>(), prop::collection::vec(net, 0..3))
            .prop_map(|(s, vip, nets)| Command::CreateService {
                name: name("svc", s),
                mode: if vip { ServiceMode::Vip } else { ServiceMode::Dnsrr },
                networks: nets.into_iter().map(id).collect(),
            }),
        1 => (0u8..3).prop_map(|s| Command::DeleteService { name: name("svc", s) }),
    ]
}

/// Checks that the live allocations are unique and agree with IPAM and the VNI set.
fn check_invariants(s: &AllocatorSnapshot) {
    let mut addresses = BTreeSet::new();
    let mut vnis = BTreeSet::new();
    let mut subnets: Vec<IpNet> = Vec::new();
    let mut names = BTreeSet::new();
    for n in &s.networks {
        assert!(
            names.insert(n.def.name.clone()),
            "name {} twice",
            n.def.name
        );
        for sub in &n.def.subnets {
            let net = sub.config.subnet;
            for other in &subnets {
                assert!(
                    !other.contains(&net.network()) && !net.contains(&other.network()),
                    "subnets {net} and {other} overlap"
                );
            }
            subnets.push(net);
            assert!(addresses.insert(sub.config.gateway), "gateway twice");
            if let Some(v) = sub.vni {
                assert!(vnis.insert(v), "vni {v} twice");
            }
        }
        for addrs in n
            .endpoints
            .iter()
            .map(|(_, a)| a)
            .chain(n.vips.iter().map(|(_, a)| a))
        {
            for a in addrs {
                assert!(
                    n.def
                        .subnets
                        .iter()
                        .any(|s| s.config.subnet.contains(&a.addr())),
                    "{a} outside its network"
                );
                assert!(addresses.insert(a.addr()), "address {a} handed out twice");
            }
        }
    }
    assert_eq!(vnis, s.vnis.iter().copied().collect(), "vni set disagrees");
    let in_ipam: BTreeSet<IpAddr> = s.ipam.pools.iter().flat_map(|p| p.addresses()).collect();
    assert_eq!(
        in_ipam, addresses,
        "ipam holds addresses nobody owns, or misses some"
    );
    let pools: BTreeSet<IpNet> = s.ipam.pools.iter().map(|p| p.id.subnet).collect();
    assert_eq!(pools, subnets.into_iter().collect(), "ipam pools disagree");
    check_services(s);
}

/// Every service is on live networks, each once, and holds the VIP its record names.
fn check_services(s: &AllocatorSnapshot) {
    for service in &s.services {
        assert!(
            !service.networks.is_empty(),
            "{} without network",
            service.name
        );
        let mut seen = BTreeSet::new();
        for on in &service.networks {
            assert!(
                seen.insert(&on.network),
                "{} twice on a network",
                service.name
            );
            let network = s.networks.iter().find(|n| n.def.id == on.network);
            let network =
                network.unwrap_or_else(|| panic!("{} on a deleted network", service.name));
            let held = network
                .vips
                .iter()
                .find(|(name, _)| *name == service.name)
                .map(|(_, addrs)| addrs[0].addr());
            match service.mode {
                ServiceMode::Vip => assert_eq!(held, on.vip, "{} vip not held", service.name),
                ServiceMode::Dnsrr => assert_eq!(on.vip, None),
            }
        }
    }
}

/// For a release, the freed addresses can be asked for again at once.
fn check_reusable(a: &Allocator, outcome: &Outcome) {
    let released: Vec<(NetworkId, IpAddr)> = match outcome {
        Outcome::AddressReleased(g) | Outcome::VipReleased(g) => g
            .addresses
            .iter()
            .map(|a| (g.network.clone(), a.addr()))
            .collect(),
        Outcome::ServiceDeleted(record) => record
            .networks
            .iter()
            .filter_map(|n| n.vip.map(|vip| (n.network.clone(), vip)))
            .collect(),
        _ => Vec::new(),
    };
    for (network, addr) in released {
        let mut probe = a.clone();
        probe
            .apply(&Command::AllocateAddress {
                network,
                endpoint: "probe-endpoint".into(),
                ip: Some(addr),
            })
            .unwrap_or_else(|e| panic!("released {addr} not reusable: {e}"));
    }
}

/// Runs `cmds`; returns the state, the accepted commands and their outcomes.
fn run(cmds: &[Command]) -> (Allocator, Vec<Command>, Vec<Outcome>) {
    let mut a = Allocator::new(config()).unwrap();
    let (mut accepted, mut outcomes) = (Vec::new(), Vec::new());
    for cmd in cmds {
        let before = a.clone();
        match a.apply(cmd) {
            Ok(out) => {
                check_reusable(&a, &out);
                accepted.push(cmd.clone());
                outcomes.push(out);
            }
            Err(_) => assert_eq!(a, before, "refused {cmd:?} changed the state"),
        }
        check_invariants(&a.snapshot());
    }
    (a, accepted, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nothing_is_handed_out_twice_and_replay_is_equal(
        cmds in prop::collection::vec(command(), 1..60)
    ) {
        let (a, accepted, outcomes) = run(&cmds);
        let mut replayed = Allocator::new(config()).unwrap();
        let again: Vec<Outcome> = accepted.iter().map(|c| replayed.apply(c).unwrap()).collect();
        prop_assert_eq!(&replayed, &a);
        prop_assert_eq!(again, outcomes);
    }

    #[test]
    fn deleting_every_network_frees_everything(
        cmds in prop::collection::vec(command(), 1..60)
    ) {
        let (mut a, _, _) = run(&cmds);
        // Services first: a network is not deleted under one.
        let services: Vec<Name> = a.services().map(|s| s.name.clone()).collect();
        for name in services {
            a.apply(&Command::DeleteService { name }).unwrap();
        }
        let ids: Vec<NetworkId> = a.networks().map(|d| d.id.clone()).collect();
        for id in ids {
            a.apply(&Command::DeleteNetwork { id }).unwrap();
        }
        let s = a.snapshot();
        prop_assert!(s.networks.is_empty() && s.vnis.is_empty() && s.ipam.pools.is_empty());
        // All four default subnets and every given one can be had again.
        for n in 0..4u8 {
            a.apply(&Command::CreateNetwork {
                id: id(n), name: name("again", n), subnets: vec![], vni: None, meta: meta(),
            }).unwrap();
        }
        let given: Vec<SubnetRequest> = ["198.18.0.0/28", "fd00::/64", "198.18.1.0/30"]
            .iter()
            .map(|s| SubnetRequest { subnet: Some(s.parse().unwrap()), ..SubnetRequest::default() })
            .collect();
        a.apply(&Command::CreateNetwork {
            id: id(9), name: name("given", 0), subnets: given, vni: Some(Vni::new(5000).unwrap()), meta: meta(),
        }).unwrap();
    }
}

proptest! {
    // Each case opens sled and fsyncs per command: keep it small.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn restart_gives_an_equal_state_and_new_allocations(
        cmds in prop::collection::vec(command(), 1..30)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let mut m = ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
            let mut memory = Allocator::new(config()).unwrap();
            for c in &cmds {
                let stored = m.execute(c).map_err(|e| e.to_string());
                let pure = memory.apply(c).map_err(|e| e.to_string());
                prop_assert_eq!(stored, pure);
            }
            prop_assert_eq!(m.allocator(), &memory);
            memory
        };
        let mut m = ManagerStore::open(Store::open(dir.path()).unwrap(), config()).unwrap();
        prop_assert_eq!(m.allocator(), &expected);
        let live: BTreeMap<NetworkId, BTreeSet<IpAddr>> = expected
            .snapshot()
            .networks
            .iter()
            .map(|n| {
                let held = n.endpoints.iter().map(|(_, a)| a).chain(n.vips.iter().map(|(_, a)| a));
                (n.def.id.clone(), held.flatten().map(IpNet::addr).collect())
            })
            .collect();
        for (network, held) in live {
            let cmd = Command::AllocateAddress {
                network: network.clone(), endpoint: "after-restart".into(), ip: None,
            };
            if let Ok(Outcome::AddressAllocated(g)) = m.execute(&cmd) {
                for a in g.addresses {
                    prop_assert!(!held.contains(&a.addr()), "{} handed out again", a);
                }
            }
        }
        check_invariants(&m.allocator().snapshot());
    }
}
