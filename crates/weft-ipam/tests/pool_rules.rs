//! IPAM pool rules through the public API (libnetwork checklist items 56-58, 62).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use weft_ipam::{Ipam, IpamConfig, IpamError, PoolRequest};
use weft_types::ErrorKind;

// 56: automatic pools come in configured order, per space, per family.
#[test]
fn automatic_pools_follow_the_predefined_order() {
    let mut ipam = ipam();
    let got: Vec<String> = (0..6).map(|_| auto(&mut ipam, LOCAL).unwrap()).collect();
    let want = [
        "198.19.0.0/24",
        "198.19.1.0/24",
        "198.19.2.0/24",
        "198.19.3.0/24",
    ];
    assert_eq!(got[..4], want);
    assert_eq!(got[4..], ["198.19.8.0/22", "198.19.12.0/22"]);
    assert_eq!(auto(&mut ipam, GLOBAL).unwrap(), "198.19.128.0/24");
    assert_eq!(auto(&mut ipam, GLOBAL).unwrap(), "198.19.129.0/24");
    let v6 = ipam.request_pool(&PoolRequest::auto(LOCAL, true)).unwrap();
    assert_eq!(v6.to_string(), "local/2001:db8:1::/64");
}

// 57: the search resumes after the last pool handed out, wrapping.
#[test]
fn a_released_pool_is_not_reused_at_once() {
    let mut ipam = Ipam::new(IpamConfig {
        local: vec![pre("198.19.0.0/23", 24)],
        global: vec![],
    })
    .unwrap();
    let first = ipam.request_pool(&PoolRequest::auto(LOCAL, false)).unwrap();
    ipam.release_pool(&first).unwrap();
    assert_eq!(auto(&mut ipam, LOCAL).unwrap(), "198.19.1.0/24");
    // Wrapping around finds the released one again.
    assert_eq!(auto(&mut ipam, LOCAL).unwrap(), "198.19.0.0/24");
    let err = auto(&mut ipam, LOCAL).unwrap_err();
    assert!(
        matches!(
            err,
            IpamError::NoAvailablePool {
                space: LOCAL,
                v6: false
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Exhausted);
}

#[test]
fn automatic_pools_skip_allocated_and_overlapping_ones() {
    let mut ipam = ipam();
    explicit(&mut ipam, LOCAL, "198.19.0.128/25").unwrap();
    explicit(&mut ipam, LOCAL, "198.19.1.0/24").unwrap();
    explicit(&mut ipam, LOCAL, "198.19.2.0/23").unwrap();
    assert_eq!(auto(&mut ipam, LOCAL).unwrap(), "198.19.8.0/22");
    // A global pool does not block a local one.
    explicit(&mut ipam, GLOBAL, "198.19.12.0/22").unwrap();
    assert_eq!(auto(&mut ipam, LOCAL).unwrap(), "198.19.12.0/22");
}

#[test]
fn automatic_pools_avoid_given_networks() {
    let mut ipam = ipam();
    let avoid = [
        net("198.19.0.7/24"),
        net("198.19.1.0/25"),
        net("2001:db8::/32"),
    ];
    let id = ipam
        .request_pool_avoiding(&PoolRequest::auto(LOCAL, false), &avoid)
        .unwrap();
    assert_eq!(id.subnet, net("198.19.2.0/24"));
    // Explicit pools are the user's choice.
    explicit(&mut ipam, LOCAL, "198.19.0.0/24").unwrap();
}

#[test]
fn automatic_v6_without_v6_predefined_pools_fails() {
    let mut ipam = Ipam::new(IpamConfig {
        local: vec![pre("198.19.0.0/24", 24)],
        global: vec![],
    })
    .unwrap();
    let err = ipam
        .request_pool(&PoolRequest::auto(LOCAL, true))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not find an available, non-overlapping ipv6 pool among the predefined pools of \
         address space local; give a subnet or configure more pools"
    );
}

#[test]
fn spaces_are_independent() {
    let mut ipam = ipam();
    explicit(&mut ipam, LOCAL, "198.19.200.0/24").unwrap();
    explicit(&mut ipam, GLOBAL, "198.19.200.0/24").unwrap();
    assert_eq!(ipam.snapshot().pools.len(), 2);
}

// 58: explicit pools may not overlap allocated ones.
#[test]
fn explicit_pool_overlap_names_both_subnets() {
    let mut ipam = ipam();
    explicit(&mut ipam, LOCAL, "198.19.4.0/24").unwrap();
    for (pool, existing) in [
        ("198.19.4.0/24", "198.19.4.0/24"),
        ("198.19.4.64/26", "198.19.4.0/24"),
        ("198.19.0.0/16", "198.19.4.0/24"),
    ] {
        let err = explicit(&mut ipam, LOCAL, pool).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "pool {pool} overlaps pool {existing} already allocated in address space local"
            )
        );
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    }
    explicit(&mut ipam, LOCAL, "198.19.5.0/24").unwrap();
    explicit(&mut ipam, LOCAL, "198.19.3.0/24").unwrap();
}

#[test]
fn explicit_pool_must_be_a_network_address() {
    let err = explicit(&mut ipam(), LOCAL, "198.19.4.9/24").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool 198.19.4.9/24: host bits are set; did you mean 198.19.4.0/24"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
}

#[test]
fn pools_must_leave_two_hosts() {
    let mut ipam = ipam();
    for pool in [
        "198.19.0.0/31",
        "198.19.0.2/32",
        "2001:db8::/127",
        "2001:db8::1/128",
    ] {
        let err = explicit(&mut ipam, LOCAL, pool).unwrap_err();
        assert!(
            matches!(err, IpamError::InvalidPool { .. }),
            "{pool}: {err}"
        );
    }
    let id = explicit(&mut ipam, LOCAL, "198.19.0.4/30").unwrap();
    assert_eq!(ipam.pool_info(&id).unwrap().capacity, 2);
    let id = explicit(&mut ipam, LOCAL, "2001:db8::/126").unwrap();
    assert_eq!(ipam.pool_info(&id).unwrap().capacity, 3);
}

#[test]
fn explicit_pool_family_must_match_request() {
    let req = PoolRequest {
        space: LOCAL,
        pool: Some(net("198.19.0.0/24")),
        sub_pool: None,
        v6: true,
    };
    let err = ipam().request_pool(&req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool 198.19.0.0/24: it is an ipv4 network but an ipv6 pool was requested"
    );
}

#[test]
fn sub_pool_rules() {
    let mut ipam = ipam();
    let req = PoolRequest {
        sub_pool: Some(net("198.19.0.0/25")),
        ..PoolRequest::auto(LOCAL, false)
    };
    let err = ipam.request_pool(&req).unwrap_err();
    assert!(matches!(err, IpamError::InvalidSubPool { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    for range in [
        "198.19.1.0/25",
        "198.19.0.0/23",
        "198.19.0.1/25",
        "2001:db8::/64",
        "198.19.0.0/32",
    ] {
        let err = with_range(&mut ipam, "198.19.0.0/24", range).unwrap_err();
        assert!(
            matches!(err, IpamError::InvalidSubPool { .. }),
            "{range}: {err}"
        );
    }
    // None of the failures left a pool behind.
    assert!(ipam.snapshot().pools.is_empty());
    let id = with_range(&mut ipam, "198.19.0.0/24", "198.19.0.128/25").unwrap();
    assert_eq!(id.range, Some(net("198.19.0.128/25")));
}

// 62: pool ids and unknown pools.
#[test]
fn pool_ids_have_the_libnetwork_form() {
    let mut ipam = ipam();
    let id = with_range(&mut ipam, "198.19.0.0/24", "198.19.0.128/25").unwrap();
    assert_eq!(id.to_string(), "local/198.19.0.0/24/198.19.0.128/25");
    let id = explicit(&mut ipam, GLOBAL, "2001:db8::/64").unwrap();
    assert_eq!(id.to_string(), "global/2001:db8::/64");
    assert_eq!(pid("global/2001:db8::/64"), id);
}

#[test]
fn unknown_pools_are_not_found() {
    let mut ipam = ipam();
    let id = with_range(&mut ipam, "198.19.0.0/24", "198.19.0.128/25").unwrap();
    for other in [
        "local/198.19.0.0/24",
        "global/198.19.0.0/24/198.19.0.128/25",
        "local/198.19.0.0/25",
    ] {
        let err = ipam.release_pool(&pid(other)).unwrap_err();
        assert_eq!(err, IpamError::UnknownPool(pid(other)));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(ipam.request_address(&pid(other), LOWEST).is_err());
    }
    ipam.release_pool(&id).unwrap();
    assert_eq!(
        ipam.release_pool(&id).unwrap_err().to_string(),
        format!("pool {id} not found")
    );
    assert!(matches!(
        ipam.request_address(&id, LOWEST),
        Err(IpamError::UnknownPool(_))
    ));
    assert!(matches!(
        ipam.pool_info(&id),
        Err(IpamError::UnknownPool(_))
    ));
}

#[test]
fn releasing_a_pool_frees_its_subnet_and_addresses() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "198.19.0.0/24").unwrap();
    ipam.request_address(&id, LOWEST).unwrap();
    ipam.release_pool(&id).unwrap();
    let again = explicit(&mut ipam, LOCAL, "198.19.0.0/24").unwrap();
    assert_eq!(ipam.pool_info(&again).unwrap().allocated, 0);
}

#[test]
fn default_allocator_uses_dockers_pools() {
    let ipam = Ipam::default();
    assert_eq!(ipam.config(), &IpamConfig::default());
    assert!(ipam.snapshot().pools.is_empty());
}

#[test]
fn resume_after_moves_the_automatic_search_past_a_predefined_pool() {
    let mut ipam = weft_ipam::Ipam::new(weft_ipam::IpamConfig {
        local: vec![weft_ipam::PredefinedPool::new("198.19.0.0/16".parse().unwrap(), 24).unwrap()],
        global: vec![],
    })
    .unwrap();
    let kept = weft_ipam::PoolRequest::explicit(
        weft_ipam::AddressSpace::Local,
        "198.19.5.0/24".parse().unwrap(),
    );
    let kept = ipam.request_pool(&kept).unwrap();
    ipam.resume_after(&kept);
    let next = ipam
        .request_pool(&weft_ipam::PoolRequest::auto(
            weft_ipam::AddressSpace::Local,
            false,
        ))
        .unwrap();
    assert_eq!(next.subnet.to_string(), "198.19.6.0/24");
    // A subnet that is not a predefined candidate leaves the search where it was.
    let odd = weft_ipam::PoolRequest::explicit(
        weft_ipam::AddressSpace::Local,
        "198.19.200.0/25".parse().unwrap(),
    );
    let odd = ipam.request_pool(&odd).unwrap();
    ipam.resume_after(&odd);
    let after = ipam
        .request_pool(&weft_ipam::PoolRequest::auto(
            weft_ipam::AddressSpace::Local,
            false,
        ))
        .unwrap();
    assert_eq!(after.subnet.to_string(), "198.19.7.0/24");
}

#[test]
fn resume_after_then_release_keeps_the_position() {
    use weft_ipam::*;
    let mut ipam = Ipam::new(IpamConfig {
        local: vec![PredefinedPool::new("198.19.0.0/18".parse().unwrap(), 24).unwrap()],
        global: vec![],
    })
    .unwrap();
    for s in ["198.19.0.0/24", "198.19.1.0/24"] {
        let id = ipam
            .request_pool(&PoolRequest::explicit(
                AddressSpace::Local,
                s.parse().unwrap(),
            ))
            .unwrap();
        ipam.resume_after(&id);
    }
    let b: PoolId = "local/198.19.1.0/24".parse().unwrap();
    ipam.release_pool(&b).unwrap();
    let next = ipam
        .request_pool(&PoolRequest::auto(AddressSpace::Local, false))
        .unwrap();
    assert_eq!(next.subnet.to_string(), "198.19.2.0/24");
}
