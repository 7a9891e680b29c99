//! Driver events: a network's events reach its driver in order, events that arrive before
//! the network exists here are kept (folded per key) and delivered when it comes up, and
//! a network that went down receives nothing more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use weft_controller::events::{
    Discover, DriverEvents, DriverEventsState, NetworkDown, NetworkUp, Notify, Observe,
    PendingState, Stats,
};
use weft_drivers::fake::{FAKE_TABLE, FakeDriver};
use weft_drivers::{Capability, Driver, EventNotify, NodeDiscovery};
use weft_types::{Lifecycle, NetworkId, NetworkRecord, Scope};

fn driver() -> FakeDriver {
    FakeDriver::with_capability(
        "ov".parse().unwrap(),
        Capability {
            scope: Scope::Global,
            ipam: true,
            host_namespace: false,
        },
    )
}

fn record(id: &NetworkId) -> NetworkRecord {
    NetworkRecord {
        id: id.clone(),
        name: "g1".parse().unwrap(),
        driver: "ov".parse().unwrap(),
        scope: Scope::Global,
        subnets: vec![],
        auto_subnet: true,
        ipv6: false,
        internal: false,
        attachable: true,
        options: Default::default(),
        labels: Default::default(),
        created_ms: 1,
        lifecycle: Lifecycle::Ready,
    }
}

fn event(network: &NetworkId, key: &str, prev: Option<&str>, value: Option<&str>) -> EventNotify {
    EventNotify {
        network: network.clone(),
        table: FAKE_TABLE.to_owned(),
        key: key.to_owned(),
        owner: "h2".to_owned(),
        prev: prev.map(|v| v.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
    }
}

/// Waits (bounded) until the driver has received `n` events.
async fn received(driver: &FakeDriver, n: usize) -> Vec<EventNotify> {
    for _ in 0..200 {
        let events = driver.state().events;
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    driver.state().events
}

#[actix::test]
async fn events_wait_for_their_network_and_stop_after_it() {
    let fake = driver();
    let as_driver: Arc<dyn Driver> = Arc::new(fake.clone());
    let router = DriverEvents::new(vec![as_driver.clone()], None).start();
    let net = NetworkId::random();

    // Before the network exists here: a create then an update of one key fold into one
    // create with the last value; a create then a delete of another is nothing.
    router.do_send(Notify(event(&net, "a", None, Some("1"))));
    router.do_send(Notify(event(&net, "a", Some("1"), Some("2"))));
    router.do_send(Notify(event(&net, "b", None, Some("x"))));
    router.do_send(Notify(event(&net, "b", Some("x"), None)));
    let stats = router.send(Stats).await.unwrap();
    assert_eq!(stats.pending, 1);
    assert!(fake.state().events.is_empty());

    router
        .send(NetworkUp {
            network: record(&net),
            driver: as_driver.clone(),
        })
        .await
        .unwrap();
    let events = received(&fake, 1).await;
    assert_eq!(events, vec![event(&net, "a", None, Some("2"))]);

    // Live events, in order; other tables are not delivered.
    for i in 0..50 {
        let prev = i.to_string();
        let next = (i + 1).to_string();
        router.do_send(Notify(event(&net, "a", Some(&prev), Some(&next))));
    }
    let mut other = event(&net, "c", None, Some("1"));
    other.table = "other_table".to_owned();
    router.do_send(Notify(other));
    let events = received(&fake, 51).await;
    assert_eq!(events.len(), 51);
    let values: Vec<String> = events[1..]
        .iter()
        .map(|e| String::from_utf8(e.value.clone().unwrap()).unwrap())
        .collect();
    let expected: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
    assert_eq!(values, expected);

    router
        .send(NetworkDown {
            network: net.clone(),
        })
        .await
        .unwrap();
    router.do_send(Notify(event(&net, "z", None, Some("1"))));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fake.state().events.len(), 51);
}

#[actix::test]
async fn node_discovery_reaches_the_drivers_that_ask_for_it() {
    let global = driver();
    let local = FakeDriver::new("local".parse().unwrap());
    let router = DriverEvents::new(
        vec![Arc::new(global.clone()), Arc::new(local.clone())],
        None,
    )
    .start();
    let joined = NodeDiscovery {
        node: "h2".to_owned(),
        address: "198.18.0.2".parse().unwrap(),
        joined: true,
    };
    router.send(Discover(joined.clone())).await.unwrap();
    for _ in 0..200 {
        if !global.state().discoveries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(global.state().discoveries, vec![joined]);
    assert!(local.state().discoveries.is_empty());
}

#[actix::test]
async fn a_slow_driver_gets_the_latest_change_per_key_not_an_unbounded_queue() {
    const KEYS: usize = 100;
    const CHANGES: usize = 100_000;
    let fake = driver();
    let as_driver: Arc<dyn Driver> = Arc::new(fake.clone());
    let router = DriverEvents::new(vec![as_driver.clone()], None).start();
    let net = NetworkId::random();
    router.do_send(NetworkUp {
        network: record(&net),
        driver: as_driver,
    });
    fake.stall_events(true);
    let value = |i: usize| (i / KEYS).to_string();
    for i in 0..CHANGES {
        let key = format!("k{}", i % KEYS);
        let prev = (i >= KEYS).then(|| value(i - KEYS));
        router.do_send(Notify(event(&net, &key, prev.as_deref(), Some(&value(i)))));
    }
    let stats = router.send(Stats).await.unwrap();
    assert_eq!(stats.delivered, CHANGES as u64);
    assert!(stats.waiting <= KEYS, "{stats:?}");
    assert!(
        stats.coalesced as usize >= CHANGES - KEYS - 4096 - 1,
        "{stats:?}"
    );
    fake.stall_events(false);
    // Converged: every key's last value reached the driver, in far fewer calls.
    let last = value(CHANGES - 1);
    for _ in 0..400 {
        let events = fake.state().events;
        let latest: std::collections::BTreeMap<_, _> = events
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        if latest.len() == KEYS
            && latest
                .values()
                .all(|v| v.as_deref() == Some(last.as_bytes()))
        {
            assert!(events.len() < CHANGES / 10, "{} driver calls", events.len());
            assert_eq!(router.send(Stats).await.unwrap().waiting, 0);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the driver did not converge: {:?}",
        router.send(Stats).await.unwrap()
    );
}

#[actix::test]
async fn a_repair_tick_is_skipped_while_the_previous_repair_runs() {
    let fake = driver();
    let as_driver: Arc<dyn Driver> = Arc::new(fake.clone());
    fake.stall_events(true);
    let router = DriverEvents::new(vec![as_driver], Some(Duration::from_millis(10))).start();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let repairs = |f: &FakeDriver| {
        f.state()
            .calls
            .iter()
            .filter(|(op, _)| *op == weft_drivers::DriverOp::Repair)
            .count()
    };
    assert_eq!(repairs(&fake), 1, "a repair started while one ran");
    let stats = router.send(Stats).await.unwrap();
    assert!(stats.repairs_skipped >= 5, "{stats:?}");
    fake.stall_events(false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        repairs(&fake) >= 3,
        "repairs did not resume: {}",
        repairs(&fake)
    );
}

#[actix::test]
async fn observe_shows_each_route_what_waits_for_it_and_what_is_kept() {
    let fake = driver();
    let as_driver: Arc<dyn Driver> = Arc::new(fake.clone());
    let router = DriverEvents::new(vec![as_driver.clone()], None).start();
    assert_eq!(
        router.send(Observe).await.unwrap(),
        DriverEventsState::default()
    );
    let (up, later) = (NetworkId::random(), NetworkId::random());
    router.do_send(NetworkUp {
        network: record(&up),
        driver: as_driver,
    });
    // A stalled driver takes one event, its mailbox the next ones (4096): the rest wait
    // in the route, one per key.
    fake.stall_events(true);
    let sent = 4096 + 10;
    for i in 0..sent {
        router.do_send(Notify(event(&up, &format!("k{i}"), None, Some("1"))));
    }
    router.do_send(Notify(event(&later, "a", None, Some("1"))));
    router.do_send(Notify(event(&later, "b", None, Some("1"))));
    let state = router.send(Observe).await.unwrap();
    fake.stall_events(false);
    let [route] = state.routes.as_slice() else {
        panic!("{state:?}")
    };
    assert_eq!(route.network, up);
    assert_eq!(route.driver.as_str(), "ov");
    assert_eq!(route.tables, vec![FAKE_TABLE.to_owned()]);
    assert!((1..=sent).contains(&route.waiting), "{route:?}");
    assert_eq!(
        state.pending,
        vec![PendingState {
            network: later.clone(),
            events: 2
        }]
    );
    assert!(state.repairing.is_empty());
    assert_eq!(state.stats.delivered, sent as u64);
    assert_eq!(state.stats.pending, 2);
    assert_eq!(state.stats.waiting, route.waiting);
    // The counters agree with Stats, which diagnostics already serve.
    let stats = router.send(Stats).await.unwrap();
    assert_eq!((stats.delivered, stats.pending), (sent as u64, 2));
    // The waiting events drain once the driver keeps up; a network going down takes
    // its route along.
    for _ in 0..400 {
        if router.send(Observe).await.unwrap().routes[0].waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(router.send(Observe).await.unwrap().routes[0].waiting, 0);
    router.send(NetworkDown { network: up }).await.unwrap();
    assert!(router.send(Observe).await.unwrap().routes.is_empty());
}
