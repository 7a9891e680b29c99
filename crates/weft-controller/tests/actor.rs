//! The actor serialises operations: concurrent creates of one name, exactly one wins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use weft_controller::{Controller, CreateEndpoint, CreateNetwork, ListEndpoints};

#[test]
fn concurrent_creates_of_one_name_exactly_one_succeeds() {
    let sys = actix::System::new();
    sys.block_on(async {
        let h = Harness::new();
        let addr = actix::Actor::start(Controller::new(h.open().await.unwrap()));
        let creates: Vec<_> = (0..20)
            .map(|_| {
                addr.send(CreateNetwork {
                    request: network("same", "null", None),
                })
            })
            .collect();
        let results = futures_util::future::join_all(creates).await;
        let ok = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(ok, 1, "{results:?}");

        let eps: Vec<_> = (0..50)
            .map(|i| {
                addr.send(CreateEndpoint {
                    network: "same".into(),
                    request: endpoint(&format!("e{i}")),
                })
            })
            .collect();
        for r in futures_util::future::join_all(eps).await {
            r.unwrap().unwrap();
        }
        let listed = addr
            .send(ListEndpoints { network: None })
            .await
            .unwrap()
            .unwrap();
        let mut ips: Vec<_> = listed.iter().map(|e| e.ipv4).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 50, "50 distinct addresses");
    });
}
