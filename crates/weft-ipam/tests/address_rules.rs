//! IPAM address rules through the public API (libnetwork checklist items 59-61, 63).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use weft_ipam::{
    AddressRequest, AddressSpace, Ipam, IpamConfig, IpamError, PoolRequest, PredefinedPool,
};
use weft_types::ErrorKind;

// 59: network and broadcast addresses are never handed out; the gateway is the first host.
#[test]
fn network_and_broadcast_are_never_handed_out() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "198.19.0.0/29").unwrap();
    let got: Vec<String> = (0..6).map(|_| any(&mut ipam, &id, SERIAL)).collect();
    assert_eq!(
        got,
        [
            "198.19.0.1",
            "198.19.0.2",
            "198.19.0.3",
            "198.19.0.4",
            "198.19.0.5",
            "198.19.0.6"
        ]
    );
    let err = ipam.request_address(&id, SERIAL).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no available addresses in pool local/198.19.0.0/29"
    );
    assert_eq!(err.kind(), ErrorKind::Exhausted);
    for (addr, what) in [
        ("198.19.0.0", "network address"),
        ("198.19.0.7", "broadcast address"),
    ] {
        let err = ipam
            .request_address(&id, AddressRequest::Specific(ip(addr)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "address {addr} is the {what} of pool local/198.19.0.0/29 and is never allocated"
            )
        );
        assert!(ipam.release_address(&id, ip(addr)).is_err());
    }
}

#[test]
fn v6_subnet_router_address_is_never_handed_out() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "2001:db8::/126").unwrap();
    let got: Vec<String> = (0..3).map(|_| any(&mut ipam, &id, LOWEST)).collect();
    assert_eq!(got, ["2001:db8::1", "2001:db8::2", "2001:db8::3"]);
    let err = ipam
        .request_address(&id, AddressRequest::Specific(ip("2001:db8::")))
        .unwrap_err();
    assert!(matches!(
        err,
        IpamError::IpReserved {
            what: "subnet-router anycast address",
            ..
        }
    ));
}

#[test]
fn gateway_is_the_first_host_address() {
    let mut ipam = ipam();
    let id = with_range(&mut ipam, "198.19.4.0/22", "198.19.6.0/24").unwrap();
    assert_eq!(ipam.default_gateway(&id), ip("198.19.4.1"));
    assert_eq!(weft_ipam::default_gateway(&id), ip("198.19.4.1"));
    assert_eq!(ipam.pool_info(&id).unwrap().gateway, ip("198.19.4.1"));
    // The gateway is reserved like any specific address, even outside the range.
    ipam.request_address(&id, AddressRequest::Specific(ip("198.19.4.1")))
        .unwrap();
    assert_eq!(any(&mut ipam, &id, SERIAL), "198.19.6.0");
}

// 60: serial is next-fit with wrap; non-serial is lowest-free.
#[test]
fn serial_does_not_reuse_a_released_address_before_wrapping() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "198.19.0.0/29").unwrap();
    for _ in 0..5 {
        any(&mut ipam, &id, SERIAL);
    }
    ipam.release_address(&id, ip("198.19.0.5")).unwrap();
    ipam.release_address(&id, ip("198.19.0.2")).unwrap();
    assert_eq!(any(&mut ipam, &id, SERIAL), "198.19.0.6");
    assert_eq!(any(&mut ipam, &id, SERIAL), "198.19.0.2");
    assert_eq!(any(&mut ipam, &id, SERIAL), "198.19.0.5");
}

#[test]
fn non_serial_returns_the_lowest_free_address() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "198.19.0.0/29").unwrap();
    for _ in 0..5 {
        any(&mut ipam, &id, LOWEST);
    }
    ipam.release_address(&id, ip("198.19.0.4")).unwrap();
    ipam.release_address(&id, ip("198.19.0.2")).unwrap();
    assert_eq!(any(&mut ipam, &id, LOWEST), "198.19.0.2");
    assert_eq!(any(&mut ipam, &id, LOWEST), "198.19.0.4");
    assert_eq!(any(&mut ipam, &id, LOWEST), "198.19.0.6");
}

#[test]
fn any_stays_inside_the_sub_range() {
    let mut ipam = ipam();
    let id = with_range(&mut ipam, "198.19.0.0/24", "198.19.0.252/30").unwrap();
    let got: Vec<String> = (0..3).map(|_| any(&mut ipam, &id, SERIAL)).collect();
    // .255 is the subnet's broadcast: the range's usable part is .252-.254.
    assert_eq!(got, ["198.19.0.252", "198.19.0.253", "198.19.0.254"]);
    assert!(matches!(
        ipam.request_address(&id, LOWEST),
        Err(IpamError::NoAvailableIps { .. })
    ));
    // Specific addresses may still come from anywhere in the subnet.
    ipam.request_address(&id, AddressRequest::Specific(ip("198.19.0.10")))
        .unwrap();
}

// 61: specific address failures.
#[test]
fn specific_address_rules() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "198.19.0.0/24").unwrap();
    let five = AddressRequest::Specific(ip("198.19.0.5"));
    assert_eq!(ipam.request_address(&id, five).unwrap(), ip("198.19.0.5"));
    let err = ipam.request_address(&id, five).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 198.19.0.5 is already allocated in pool local/198.19.0.0/24"
    );
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    for outside in ["198.19.1.5", "2001:db8::5"] {
        let err = ipam
            .request_address(&id, AddressRequest::Specific(ip(outside)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("address {outside} is out of range of pool {id}")
        );
        assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    }
    assert!(ipam.is_allocated(&id, ip("198.19.0.5")).unwrap());
    assert!(!ipam.is_allocated(&id, ip("198.19.0.6")).unwrap());
}

#[test]
fn release_address_rules() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "198.19.0.0/24").unwrap();
    let err = ipam.release_address(&id, ip("198.19.9.9")).unwrap_err();
    assert!(matches!(err, IpamError::IpOutOfRange { .. }), "{err}");
    let err = ipam.release_address(&id, ip("198.19.0.9")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 198.19.0.9 is not allocated in pool local/198.19.0.0/24"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let got = ipam.request_address(&id, LOWEST).unwrap();
    ipam.release_address(&id, got).unwrap();
    assert!(ipam.release_address(&id, got).is_err());
}

#[test]
fn v6_slash_64_needs_no_bitmap() {
    let mut ipam = ipam();
    let id = ipam.request_pool(&PoolRequest::auto(GLOBAL, true)).unwrap();
    let info = ipam.pool_info(&id).unwrap();
    assert_eq!(info.capacity, u128::from(u64::MAX));
    for _ in 0..1000 {
        ipam.request_address(&id, SERIAL).unwrap();
    }
    let last = ip("2001:db8:2::ffff:ffff:ffff:ffff");
    ipam.request_address(&id, AddressRequest::Specific(last))
        .unwrap();
    let snap = ipam.snapshot();
    assert_eq!(snap.pools[0].allocated.len(), 2);
    assert_eq!(snap.pools[0].allocated_count(), 1001);
    // The cursor moved past the last address, so serial wraps to the start.
    assert_eq!(any(&mut ipam, &id, SERIAL), "2001:db8:2::3e9");
}

#[test]
fn large_v6_pools_work() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "2001:db8::/32").unwrap();
    assert_eq!(ipam.pool_info(&id).unwrap().capacity, (1u128 << 96) - 1);
    assert_eq!(any(&mut ipam, &id, LOWEST), "2001:db8::1");
}

// 63: after a restart, replayed gateways and endpoint addresses are reserved first.
#[test]
fn replayed_addresses_are_reserved_before_new_ones() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "198.19.0.0/24").unwrap();
    for addr in ["198.19.0.1", "198.19.0.2", "198.19.0.3", "198.19.0.7"] {
        ipam.request_address(&id, AddressRequest::Specific(ip(addr)))
            .unwrap();
    }
    // Serial continues after the last replayed address.
    assert_eq!(any(&mut ipam, &id, SERIAL), "198.19.0.8");
    assert_eq!(any(&mut ipam, &id, LOWEST), "198.19.0.4");
}

#[test]
fn pool_info_reports_fill_level() {
    let mut ipam = ipam();
    let id = with_range(&mut ipam, "198.19.0.0/24", "198.19.0.0/25").unwrap();
    ipam.request_address(&id, AddressRequest::Specific(ip("198.19.0.200")))
        .unwrap();
    ipam.request_address(&id, SERIAL).unwrap();
    let info = ipam.pool_info(&id).unwrap();
    assert_eq!(info.subnet, net("198.19.0.0/24"));
    assert_eq!(info.range, Some(net("198.19.0.0/25")));
    assert_eq!(
        (info.allocated, info.capacity, info.available),
        (2, 254, 126)
    );
}

#[test]
fn snapshot_is_sorted_and_serialisable() {
    let mut ipam = ipam();
    explicit(&mut ipam, GLOBAL, "198.19.9.0/24").unwrap();
    let b = explicit(&mut ipam, LOCAL, "198.19.7.0/24").unwrap();
    explicit(&mut ipam, LOCAL, "2001:db8::/64").unwrap();
    explicit(&mut ipam, LOCAL, "198.19.3.0/24").unwrap();
    ipam.request_address(&b, LOWEST).unwrap();
    let snap = ipam.snapshot();
    let ids: Vec<String> = snap.pools.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "local/198.19.3.0/24",
            "local/198.19.7.0/24",
            "local/2001:db8::/64",
            "global/198.19.9.0/24"
        ]
    );
    assert_eq!(
        snap.pools[1].addresses().collect::<Vec<_>>(),
        [ip("198.19.7.1")]
    );
    let json = serde_json::to_string(&snap).unwrap();
    assert_eq!(
        serde_json::from_str::<weft_ipam::IpamSnapshot>(&json).unwrap(),
        snap
    );
}

#[test]
fn bad_config_is_rejected() {
    let bad = IpamConfig {
        local: vec![PredefinedPool {
            base: net("198.19.0.0/24"),
            size: 31,
        }],
        global: vec![],
    };
    let err = Ipam::new(bad).unwrap_err();
    assert!(
        matches!(err, IpamError::InvalidPredefinedPool { .. }),
        "{err}"
    );
    Ipam::new(IpamConfig::default()).unwrap();
}

#[test]
fn errors_map_to_user_visible_kinds() {
    let mut ipam = ipam();
    let id = explicit(&mut ipam, LOCAL, "198.19.0.0/30").unwrap();
    let user: weft_types::Error = explicit(&mut ipam, LOCAL, "198.19.0.0/30")
        .unwrap_err()
        .into();
    assert_eq!(user.kind, ErrorKind::AlreadyExists);
    assert!(user.message.starts_with("pool 198.19.0.0/30 overlaps"));
    ipam.request_address(&id, LOWEST).unwrap();
    ipam.request_address(&id, LOWEST).unwrap();
    let user: weft_types::Error = ipam.request_address(&id, LOWEST).unwrap_err().into();
    assert_eq!(user.kind, ErrorKind::Exhausted);
    let user: weft_types::Error = "nowhere".parse::<AddressSpace>().unwrap_err().into();
    assert_eq!(user.kind, ErrorKind::InvalidParameter);
}
