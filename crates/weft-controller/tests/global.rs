//! Global networks in the controller, against a cluster plane backed by a real allocator
//! service: addresses come from the manager, entries are published after a join and
//! withdrawn at leave, a restart publishes again, and a missing manager is a clear error
//! that changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use async_trait::async_trait;
use common::{Harness, endpoint, network, sandbox};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use weft_controller::{ClusterPlane, ControllerConfig};
use weft_drivers::fake::{FAKE_TABLE, FakeDriver};
use weft_drivers::{Capability, Driver, DriverOp, OverlayConfig, OverlayDriver, TableEntry};
use weft_manager::{
    AllocatorConfig, ManagerRequest, ManagerResponse, ManagerService, ManagerStore, NetworkMeta,
};
use weft_types::api::SubnetRequest;
use weft_types::{
    EndpointId, Error, ErrorKind, Name, NetworkId, NetworkRecord, Options, Scope, VXLANID_OPTION,
};

#[derive(Debug)]
struct Plane {
    _dir: tempfile::TempDir,
    service: ManagerService,
    up: AtomicBool,
    /// The next allocation happens at the manager, but its answer does not arrive.
    lose_answer: AtomicBool,
    /// With a lost answer, the manager becomes unreachable too.
    vanish: AtomicBool,
    published: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    networks_up: Mutex<Vec<NetworkId>>,
}

impl Plane {
    fn new() -> Arc<Plane> {
        let dir = tempfile::tempdir().unwrap();
        let store = weft_store::Store::open(dir.path()).unwrap();
        let config = AllocatorConfig {
            pools: vec![
                weft_ipam::PredefinedPool::new("198.19.128.0/17".parse().unwrap(), 24).unwrap(),
            ],
            ..AllocatorConfig::default()
        };
        Arc::new(Plane {
            service: ManagerService::new(ManagerStore::open(store, config).unwrap()),
            _dir: dir,
            up: AtomicBool::new(true),
            lose_answer: AtomicBool::new(false),
            vanish: AtomicBool::new(false),
            published: Mutex::default(),
            networks_up: Mutex::default(),
        })
    }

    fn ask(&self, request: ManagerRequest) -> Result<ManagerResponse, Error> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Unavailable, "no manager reachable"));
        }
        self.service.handle(request)
    }

    fn published(&self) -> BTreeMap<(String, String), Vec<u8>> {
        self.published.lock().unwrap().clone()
    }
}

#[async_trait]
impl ClusterPlane for Plane {
    async fn create_network(
        &self,
        name: &Name,
        subnets: &[SubnetRequest],
        meta: NetworkMeta,
    ) -> Result<NetworkRecord, Error> {
        match self.ask(ManagerRequest::CreateNetwork {
            name: name.clone(),
            subnets: subnets.to_vec(),
            meta,
        })? {
            ManagerResponse::Network(r) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    async fn delete_network(&self, id: &NetworkId) -> Result<(), Error> {
        self.ask(ManagerRequest::DeleteNetwork { id: id.clone() })
            .map(drop)
    }

    async fn allocate_address(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
        ip: Option<IpAddr>,
    ) -> Result<Vec<IpNet>, Error> {
        let answer = self.ask(ManagerRequest::AllocateAddress {
            network: network.clone(),
            endpoint: endpoint.to_string(),
            ip,
        })?;
        if self.lose_answer.swap(false, Ordering::SeqCst) {
            if self.vanish.swap(false, Ordering::SeqCst) {
                self.up.store(false, Ordering::SeqCst);
            }
            return Err(Error::new(ErrorKind::Unavailable, "the answer was lost"));
        }
        match answer {
            ManagerResponse::Addresses(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    async fn release_address(
        &self,
        network: &NetworkId,
        endpoint: &EndpointId,
    ) -> Result<(), Error> {
        self.ask(ManagerRequest::ReleaseAddress {
            network: network.clone(),
            endpoint: endpoint.to_string(),
        })
        .map(drop)
    }

    async fn publish(&self, _: &NetworkId, entries: &[TableEntry]) -> Result<(), Error> {
        let mut published = self.published.lock().unwrap();
        for e in entries {
            published.insert((e.table.clone(), e.key.clone()), e.value.clone());
        }
        Ok(())
    }

    async fn withdraw(&self, _: &NetworkId, entries: &[TableEntry]) -> Result<(), Error> {
        let mut published = self.published.lock().unwrap();
        for e in entries {
            published.remove(&(e.table.clone(), e.key.clone()));
        }
        Ok(())
    }

    async fn global_networks(&self) -> Result<Vec<NetworkRecord>, Error> {
        match self.ask(ManagerRequest::Networks)? {
            ManagerResponse::Networks(records) => Ok(records),
            other => Err(Error::internal(format!("unexpected {other:?}"))),
        }
    }

    fn network_up(&self, network: &NetworkRecord, _: Arc<dyn Driver>) {
        self.networks_up.lock().unwrap().push(network.id.clone());
    }

    fn network_down(&self, network: &NetworkId) {
        self.networks_up.lock().unwrap().retain(|n| n != network);
    }
}

fn global_driver() -> FakeDriver {
    FakeDriver::with_capability(
        "ov".parse().unwrap(),
        Capability {
            scope: Scope::Global,
            ipam: true,
            host_namespace: false,
        },
    )
}

async fn open(h: &Harness, plane: &Arc<Plane>, driver: &FakeDriver) -> weft_controller::Core {
    let config = ControllerConfig {
        cluster: plane.clone(),
        ..Harness::config()
    };
    h.open_in(config, vec![Arc::new(driver.clone())])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lost_allocation_answer_is_released_so_the_network_can_go() {
    let h = Harness::new();
    let plane = Plane::new();
    let driver = global_driver();
    let mut core = open(&h, &plane, &driver).await;
    core.create_network(network("g8", "ov", Some("198.19.208.0/24")))
        .await
        .unwrap();
    plane.lose_answer.store(true, Ordering::SeqCst);
    let e = core
        .create_endpoint("g8", endpoint("e1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(core.list_endpoints(None).unwrap().is_empty());
    // The manager allocated, then was told to release: nothing holds the network.
    core.delete_network("g8", false).await.unwrap();
    assert!(plane.service.networks().is_empty());

    // The manager vanishes right after allocating: the release cannot happen now, so the
    // endpoint is kept (deleting) and removing it later releases the address.
    core.create_network(network("g7", "ov", Some("198.19.207.0/24")))
        .await
        .unwrap();
    plane.lose_answer.store(true, Ordering::SeqCst);
    plane.vanish.store(true, Ordering::SeqCst);
    assert!(core.create_endpoint("g7", endpoint("e2")).await.is_err());
    let held = core.delete_network("g7", false).await.unwrap_err();
    assert_eq!(held.kind, ErrorKind::Unavailable, "{held}");
    plane.up.store(true, Ordering::SeqCst);
    core.delete_network("g7", false).await.unwrap();
    assert!(plane.service.networks().is_empty());
}

#[tokio::test]
async fn a_network_created_on_another_node_is_usable_before_gossip_brings_it() {
    let plane = Plane::new();
    let driver = global_driver();
    let (h1, h2) = (Harness::new(), Harness::new());
    let mut first = open(&h1, &plane, &driver).await;
    let mut second = open(&h2, &plane, &driver).await;
    let info = first
        .create_network(network("g9", "ov", Some("198.19.209.0/24")))
        .await
        .unwrap();
    // No gossip here: the second node has never heard of g9, and asks the manager.
    let e = second.create_endpoint("g9", endpoint("e1")).await.unwrap();
    assert_eq!(e.network.as_str(), "g9");
    let adopted = second.list_networks();
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].id, info.id);
    // A name no manager knows is still not found, and adopts nothing.
    let missing = second
        .create_endpoint("nope", endpoint("e2"))
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
    assert_eq!(second.list_networks().len(), 1);
}

#[tokio::test]
async fn a_global_network_takes_its_definition_and_addresses_from_the_manager() {
    let h = Harness::new();
    let plane = Plane::new();
    let driver = global_driver();
    let mut core = open(&h, &plane, &driver).await;
    let info = core
        .create_network(network("g1", "ov", Some("198.19.200.0/24")))
        .await
        .unwrap();
    assert_eq!(info.scope, Scope::Global);
    assert_eq!(info.options.get(weft_types::VXLANID_OPTION), Some("4096"));
    assert_eq!(plane.service.networks().len(), 1);
    assert_eq!(*plane.networks_up.lock().unwrap(), vec![info.id.clone()]);

    let e1 = core.create_endpoint("g1", endpoint("e1")).await.unwrap();
    assert_eq!(e1.ipv4.unwrap().to_string(), "198.19.200.2/24");
    // The manager holds it: a second node asking for that address is refused.
    let taken = plane
        .service
        .handle(ManagerRequest::AllocateAddress {
            network: info.id.clone(),
            endpoint: "elsewhere".to_owned(),
            ip: Some("198.19.200.2".parse().unwrap()),
        })
        .unwrap_err();
    assert_eq!(taken.kind, ErrorKind::AlreadyExists, "{taken}");

    // A join publishes the driver's entry; a leave withdraws it.
    core.create_sandbox(sandbox("s1")).await.unwrap();
    core.join("g1", "e1", "s1").await.unwrap();
    let key = (FAKE_TABLE.to_owned(), e1.id.to_string());
    assert_eq!(
        plane.published().get(&key).map(|v| v.as_slice()),
        Some(b"198.19.200.2/24".as_slice())
    );
    // After a restart, NetworkDB is empty: the joined endpoint is published again.
    drop(core);
    plane.published.lock().unwrap().clear();
    plane.networks_up.lock().unwrap().clear();
    let mut core = open(&h, &plane, &driver).await;
    assert!(plane.published().contains_key(&key));
    // The global network, and the gateway network the joined sandbox got (a way out).
    let gateway = core
        .list_networks()
        .into_iter()
        .find(|n| n.name.as_str() == weft_controller::GATEWAY_NETWORK)
        .expect("a sandbox on a global network gets the gateway network");
    let mut up = plane.networks_up.lock().unwrap().clone();
    up.sort();
    let mut want = vec![info.id.clone(), gateway.id];
    want.sort();
    assert_eq!(up, want);
    core.leave("g1", "e1").await.unwrap();
    assert!(plane.published().is_empty());

    // Deleting the endpoint releases its address at the manager.
    core.delete_endpoint("g1", "e1", false).await.unwrap();
    let again = plane
        .service
        .handle(ManagerRequest::AllocateAddress {
            network: info.id.clone(),
            endpoint: "elsewhere".to_owned(),
            ip: Some("198.19.200.2".parse().unwrap()),
        })
        .unwrap();
    assert!(matches!(again, ManagerResponse::Addresses(_)));
    plane
        .service
        .handle(ManagerRequest::ReleaseAddress {
            network: info.id.clone(),
            endpoint: "elsewhere".to_owned(),
        })
        .unwrap();
    core.delete_network("g1", false).await.unwrap();
    assert!(plane.service.networks().is_empty());
    // The gateway network stays for the next sandbox, as Docker's docker_gwbridge does.
    let left: Vec<String> = core
        .list_networks()
        .iter()
        .map(|n| n.name.to_string())
        .collect();
    assert_eq!(left, [weft_controller::GATEWAY_NETWORK]);
}

#[tokio::test]
async fn without_a_manager_creates_fail_clearly_and_the_rest_keeps_working() {
    let h = Harness::new();
    let plane = Plane::new();
    let driver = global_driver();
    let mut core = open(&h, &plane, &driver).await;
    core.create_network(network("g1", "ov", None))
        .await
        .unwrap();
    core.create_endpoint("g1", endpoint("e1")).await.unwrap();
    // A sandbox owning an endpoint of the global network, joined.
    core.create_sandbox(sandbox("s1")).await.unwrap();
    let mut owned = endpoint("s1");
    owned.owner = Some("s1".to_owned());
    core.create_endpoint("g1", owned).await.unwrap();
    core.join("g1", "s1", "s1").await.unwrap();
    plane.up.store(false, Ordering::SeqCst);
    let err = core.delete_sandbox("s1", true).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");

    let err = core
        .create_network(network("g2", "ov", None))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("no manager reachable"), "{err}");
    let err = core
        .create_endpoint("g1", endpoint("e2"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("g1"), "{err}");
    // Nothing half-made, listing unaffected (g1, and the gateway network s1 got), local
    // networks unaffected.
    assert_eq!(core.list_networks().len(), 2);
    // e1, s1 and s1's gateway endpoint (deleted last, so still there).
    assert_eq!(core.list_endpoints(None).unwrap().len(), 3);
    core.create_network(network("l1", "fake", None))
        .await
        .unwrap();
    // Deleting needs the manager too, and fails before changing anything.
    let err = core.delete_endpoint("g1", "e1", false).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(core.list_endpoints(Some("g1")).unwrap().len(), 2);
    // The failed delete left the endpoint as it was; a restart while the manager is away
    // starts normally.
    drop(core);
    let mut core = open(&h, &plane, &driver).await;
    assert_eq!(
        core.list_networks().len(),
        3,
        "g1, l1 and the gateway network"
    );
    plane.up.store(true, Ordering::SeqCst);
    core.delete_sandbox("s1", true).await.unwrap();
    assert!(core.list_sandboxes().is_empty());
    core.delete_endpoint("g1", "e1", false).await.unwrap();
    core.delete_network("g1", false).await.unwrap();
}

#[tokio::test]
async fn adopting_is_idempotent_and_forgetting_spares_networks_in_use() {
    let h = Harness::new();
    let plane = Plane::new();
    let driver = global_driver();
    let mut core = open(&h, &plane, &driver).await;
    let meta = NetworkMeta {
        driver: "ov".parse().unwrap(),
        ipv6: false,
        internal: false,
        attachable: true,
        options: Default::default(),
        labels: Default::default(),
        created_ms: 1,
    };
    let ManagerResponse::Network(record) = plane
        .service
        .handle(ManagerRequest::CreateNetwork {
            name: "g1".parse().unwrap(),
            subnets: vec![],
            meta,
        })
        .unwrap()
    else {
        panic!()
    };
    core.adopt_network(record.clone()).await.unwrap();
    core.adopt_network(record.clone()).await.unwrap();
    assert_eq!(core.list_networks().len(), 1);
    assert_eq!(driver.state().networks.len(), 1);
    // A local network of the name blocks a different global one, with a clear error.
    let mut other = record.clone();
    other.id = NetworkId::random();
    let err = core.adopt_network(other).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AlreadyExists);

    core.create_endpoint("g1", endpoint("e1")).await.unwrap();
    let err = core.forget_network(&record.id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ActiveEndpoints);
    core.delete_endpoint("g1", "e1", false).await.unwrap();
    core.forget_network(&record.id).await.unwrap();
    assert!(core.list_networks().is_empty());
    assert!(driver.state().networks.is_empty());
}

#[tokio::test]
async fn the_driver_checks_the_request_before_the_manager_allocates() {
    let h = Harness::new();
    let plane = Plane::new();
    let driver = global_driver();
    let mut core = open(&h, &plane, &driver).await;
    driver.fail(DriverOp::Validate, 1);
    let err = core
        .create_network(network("g1", "ov", Some("198.19.200.0/24")))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter, "{err}");
    assert!(plane.service.networks().is_empty(), "the manager allocated");
    assert!(core.list_networks().is_empty());
    // The driver saw the request as given: no made-up id, subnet or VNI.
    let state = driver.state();
    let [asked] = state.validated.as_slice() else {
        panic!("{:?}", state.validated)
    };
    assert_eq!(asked.name.as_str(), "g1");
    let subnet = SubnetRequest {
        subnet: Some("198.19.200.0/24".parse().unwrap()),
        ..SubnetRequest::default()
    };
    assert_eq!(asked.subnets, vec![subnet]);
    assert_eq!(asked.options.get(VXLANID_OPTION), None);

    // Accepted: checked as asked, then the manager's definition is checked again before
    // it is adopted, with what the manager picked.
    let info = core
        .create_network(network("g1", "ov", None))
        .await
        .unwrap();
    let state = driver.state();
    let [_, asked, adopted] = state.validated.as_slice() else {
        panic!("{:?}", state.validated)
    };
    assert!(asked.subnets.is_empty() && asked.options.get(VXLANID_OPTION).is_none());
    assert_eq!(adopted.options.get(VXLANID_OPTION), Some("4096"));
    assert_eq!(adopted.subnets[0].subnet, Some(info.subnets[0].subnet));
}

#[tokio::test]
async fn the_overlay_driver_refuses_what_it_cannot_realise_before_the_manager_is_asked() {
    let h = Harness::new();
    let plane = Plane::new();
    let vtep = "192.0.2.1".parse().unwrap();
    let overlay = OverlayDriver::new(
        h.kernel.clone(),
        OverlayConfig::new("t-", "this-node", vtep),
    );
    let config = ControllerConfig {
        cluster: plane.clone(),
        ..Harness::config()
    };
    let mut core = h.open_in(config, vec![Arc::new(overlay)]).await.unwrap();
    let with = |edit: &dyn Fn(&mut weft_types::api::CreateNetworkRequest)| {
        let mut req = network("bad", "overlay", Some("198.19.205.0/24"));
        edit(&mut req);
        req
    };
    let subnet = |s: &str| SubnetRequest {
        subnet: Some(s.parse().unwrap()),
        ..SubnetRequest::default()
    };
    let opts = |o: &str| Options::from_pairs([o]).unwrap();
    let cases = [
        (
            with(&|r| r.subnets.push(subnet("198.19.206.0/24"))),
            "one ipv4 subnet per network, got 2",
        ),
        (
            with(&|r| r.options = opts(&format!("{VXLANID_OPTION}=5000,5001"))),
            "lists 2 vnis for 1 ipv4 subnet(s)",
        ),
        (
            with(&|r| r.options = opts(&format!("{VXLANID_OPTION}=0"))),
            "vxlanid must be 1..16777215",
        ),
        (
            with(&|r| r.options = opts("encrypted")),
            "does not support encrypted",
        ),
        (
            with(&|r| r.options = opts("vxlanid_list=5000")),
            "unknown option \"vxlanid_list\"",
        ),
        (with(&|r| r.ipv6 = true), "does not support ipv6"),
        (
            with(&|r| {
                r.ipv6 = true;
                r.subnets.push(subnet("2001:db8::/64"));
            }),
            "does not support ipv6 yet (subnet 2001:db8::/64)",
        ),
    ];
    for (req, want) in cases {
        let err = core.create_network(req).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter, "{want}: {err}");
        assert!(err.message.contains(want), "{want}: {err}");
    }
    assert!(plane.service.networks().is_empty(), "the manager allocated");
    assert!(core.list_networks().is_empty());
    assert!(h.kernel.calls().iter().all(|c| c.op != "create_vxlan"));

    let mut good = network("ov", "overlay", None);
    good.options = opts("mtu=1400");
    let info = core.create_network(good).await.unwrap();
    assert_eq!(info.options.get(VXLANID_OPTION), Some("4096"));
    assert_eq!(plane.service.networks().len(), 1);
}

/// The gateway endpoints on this host: (name, sandbox it is joined to).
fn gateways(core: &weft_controller::Core) -> Vec<(String, Option<String>)> {
    let Ok(endpoints) = core.list_endpoints(Some(weft_controller::GATEWAY_NETWORK)) else {
        return Vec::new();
    };
    endpoints
        .into_iter()
        .map(|e| (e.name.to_string(), e.sandbox.map(|s| s.to_string())))
        .collect()
}

#[tokio::test]
async fn a_sandbox_on_an_overlay_gets_a_way_out_that_holds_its_default_route() {
    let h = Harness::new();
    let plane = Plane::new();
    let driver = global_driver();
    let mut core = open(&h, &plane, &driver).await;
    core.create_network(network("g1", "ov", None))
        .await
        .unwrap();
    let mut internal = network("gi", "ov", None);
    internal.internal = true;
    core.create_network(internal).await.unwrap();
    core.create_network(network("l1", "fake", None))
        .await
        .unwrap();
    for (net, ep) in [("gi", "b"), ("g1", "a"), ("g1", "c"), ("l1", "cl")] {
        core.create_endpoint(net, endpoint(ep)).await.unwrap();
    }
    let sb = core.create_sandbox(sandbox("sb")).await.unwrap();
    let gw_name = format!("gw-{}", sb.id.short());
    // An internal overlay leads nowhere: no way out.
    core.join("gi", "b", "sb").await.unwrap();
    assert!(gateways(&core).is_empty());
    // A non-internal overlay: the gateway network is made, with icc off, and the sandbox
    // joins it through an endpoint of its own.
    core.join("g1", "a", "sb").await.unwrap();
    assert_eq!(gateways(&core), [(gw_name.clone(), Some("sb".to_owned()))]);
    let gw = core
        .inspect_network(weft_controller::GATEWAY_NETWORK)
        .unwrap();
    assert_eq!(
        (gw.driver.as_str(), gw.scope, gw.options.get("icc")),
        ("bridge", Scope::Local, Some("false"))
    );
    // Leaving the last non-internal overlay takes the way out away.
    core.leave("g1", "a").await.unwrap();
    assert!(gateways(&core).is_empty());
    // A sandbox whose default route comes from a local network needs none.
    core.create_sandbox(sandbox("sc")).await.unwrap();
    core.join("l1", "cl", "sc").await.unwrap();
    core.join("g1", "c", "sc").await.unwrap();
    assert!(gateways(&core).is_empty());
    // Back on g1: a way out again, and a restart settles nothing twice.
    core.join("g1", "a", "sb").await.unwrap();
    drop(core);
    let core = open(&h, &plane, &driver).await;
    assert_eq!(gateways(&core), [(gw_name.clone(), Some("sb".to_owned()))]);
    drop(core);
    let store = weft_store::Store::open(h.dir.path()).unwrap();
    let mut routes: Vec<(String, bool)> = store
        .list::<weft_types::EndpointRecord>()
        .unwrap()
        .into_iter()
        .filter_map(|v| Some((v.value.name.to_string(), v.value.interface?.default_route)))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            ("a".to_owned(), false),
            ("b".to_owned(), false),
            ("c".to_owned(), false),
            ("cl".to_owned(), true),
            (gw_name, true),
        ],
        "an overlay never holds the default route; the gateway or a local network does"
    );
}
