//! Property tests: random request/release sequences on IPv4 pools (/24../28, with and without
//! a sub-range, serial and lowest-free) and on an IPv6 /64, checked step by step against a
//! naive reference model (a `BTreeSet` and linear scans), then exhausted, released and rebuilt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ipnet::IpNet;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weft_ipam::{AddressRequest, AddressSpace, Ipam, IpamConfig, IpamError, PoolId, PoolRequest};

#[derive(Debug, Clone)]
enum Op {
    Any,
    Specific(u128),
    ReleaseAllocated(usize),
    ReleaseOffset(u128),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Any),
        2 => any::<u128>().prop_map(Op::Specific),
        2 => any::<usize>().prop_map(Op::ReleaseAllocated),
        1 => any::<u128>().prop_map(Op::ReleaseOffset),
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    subnet: IpNet,
    range: Option<IpNet>,
    serial: bool,
    ops: Vec<Op>,
}

fn v4_scenario() -> impl Strategy<Value = Scenario> {
    (
        24u8..=28,
        0u8..=3,
        any::<u32>(),
        any::<bool>(),
        prop::collection::vec(op(), 0..300),
    )
        .prop_map(|(prefix, extra, index, serial, ops)| {
            let subnet: IpNet = format!("198.19.0.0/{prefix}").parse().unwrap();
            let range = (extra > 0).then(|| {
                let size = 1u32 << (32 - prefix - extra);
                let start = (index % (1 << extra)) * size;
                let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + start);
                IpNet::new(IpAddr::V4(addr), prefix + extra).unwrap()
            });
            Scenario {
                subnet,
                range,
                serial,
                ops,
            }
        })
}

fn v6_scenario() -> impl Strategy<Value = Scenario> {
    let ranges = prop_oneof![
        Just(None),
        Just(Some("2001:db8:0:7::/120")),
        Just(Some("2001:db8:0:7:ffff:ffff:ffff:ff00/120")),
        Just(Some("2001:db8:0:7:8000::/121")),
    ];
    (ranges, any::<bool>(), prop::collection::vec(op(), 0..300)).prop_map(|(range, serial, ops)| {
        Scenario {
            subnet: "2001:db8:0:7::/64".parse().unwrap(),
            range: range.map(|r| r.parse().unwrap()),
            serial,
            ops,
        }
    })
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The naive reference: allocated offsets in a set, searched linearly.
#[derive(Debug)]
struct Model {
    v6: bool,
    base: u128,
    /// Host mask: offsets run from 0 to `mask`.
    mask: u128,
    /// The window `Any` picks from, as offsets.
    lo: u128,
    hi: u128,
    allocated: BTreeSet<u128>,
    next: u128,
}

impl Model {
    fn new(s: &Scenario) -> Self {
        let v6 = s.subnet.addr().is_ipv6();
        let base = to_u128(s.subnet.network());
        let mask = to_u128(s.subnet.broadcast()) - base;
        let last = if v6 { mask } else { mask - 1 };
        let (lo, hi) = match s.range {
            None => (1, last),
            Some(r) => (
                (to_u128(r.network()) - base).max(1),
                (to_u128(r.broadcast()) - base).min(last),
            ),
        };
        Model {
            v6,
            base,
            mask,
            lo,
            hi,
            allocated: BTreeSet::new(),
            next: lo,
        }
    }

    fn addr(&self, offset: u128) -> IpAddr {
        let value = self.base + offset;
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(value))
        } else {
            IpAddr::V4(Ipv4Addr::from(value as u32))
        }
    }

    fn reserved(&self, offset: u128) -> bool {
        offset == 0 || (!self.v6 && offset == self.mask)
    }

    /// An offset picked by a random selector: anywhere in a v4 subnet; near either end of a v6 one.
    fn offset(&self, selector: u128) -> u128 {
        if !self.v6 {
            return selector % (self.mask + 1);
        }
        let s = selector % 1024;
        if s < 512 { s } else { self.mask - (s - 512) }
    }

    fn first_free(&self, from: u128, to: u128) -> Option<u128> {
        let mut o = from;
        while o <= to {
            if !self.allocated.contains(&o) {
                return Some(o);
            }
            o += 1;
        }
        None
    }

    fn expected_any(&self, serial: bool) -> Option<u128> {
        let start = if serial && (self.lo..=self.hi).contains(&self.next) {
            self.next
        } else {
            self.lo
        };
        self.first_free(start, self.hi)
            .or_else(|| self.first_free(self.lo, start.saturating_sub(1)))
    }

    fn window_free(&self) -> u128 {
        let used = self.allocated.range(self.lo..=self.hi).count() as u128;
        self.hi - self.lo + 1 - used
    }

    fn take(&mut self, offset: u128) {
        assert!(self.allocated.insert(offset), "handed out twice");
        self.next = offset + 1;
    }
}

/// Applies one op to both, asserting they agree.
fn step(ipam: &mut Ipam, id: &PoolId, model: &mut Model, serial: bool, op: &Op) {
    match *op {
        Op::Any => {
            let got = ipam.request_address(id, AddressRequest::Any { serial });
            match model.expected_any(serial) {
                Some(o) => {
                    assert_eq!(got.unwrap(), model.addr(o));
                    model.take(o);
                }
                None => assert!(matches!(got, Err(IpamError::NoAvailableIps { .. }))),
            }
        }
        Op::Specific(sel) => {
            let o = model.offset(sel);
            let got = ipam.request_address(id, AddressRequest::Specific(model.addr(o)));
            if model.reserved(o) {
                assert!(matches!(got, Err(IpamError::IpReserved { .. })), "{got:?}");
            } else if model.allocated.contains(&o) {
                assert!(
                    matches!(got, Err(IpamError::IpAlreadyAllocated { .. })),
                    "{got:?}"
                );
            } else {
                assert_eq!(got.unwrap(), model.addr(o));
                model.take(o);
            }
        }
        Op::ReleaseAllocated(i) => {
            if model.allocated.is_empty() {
                return;
            }
            let o = *model
                .allocated
                .iter()
                .nth(i % model.allocated.len())
                .unwrap();
            ipam.release_address(id, model.addr(o)).unwrap();
            model.allocated.remove(&o);
        }
        Op::ReleaseOffset(sel) => {
            let o = model.offset(sel);
            let got = ipam.release_address(id, model.addr(o));
            if model.reserved(o) {
                assert!(matches!(got, Err(IpamError::IpReserved { .. })), "{got:?}");
            } else if model.allocated.remove(&o) {
                got.unwrap();
            } else {
                assert!(
                    matches!(got, Err(IpamError::NotAllocated { .. })),
                    "{got:?}"
                );
            }
        }
    }
}

fn request(s: &Scenario) -> PoolRequest {
    PoolRequest {
        space: AddressSpace::Global,
        pool: Some(s.subnet),
        sub_pool: s.range,
        v6: s.subnet.addr().is_ipv6(),
    }
}

fn empty_ipam() -> Ipam {
    Ipam::new(IpamConfig {
        local: vec![],
        global: vec![],
    })
    .unwrap()
}

/// Property 4: a fresh allocator given the same pool and every allocated address as
/// `Specific` has an equal snapshot.
fn assert_rebuilds(ipam: &Ipam, s: &Scenario) {
    let snap = ipam.snapshot();
    let mut rebuilt = empty_ipam();
    let id = rebuilt.request_pool(&request(s)).unwrap();
    for addr in snap.pools.iter().flat_map(|p| p.addresses()) {
        rebuilt
            .request_address(&id, AddressRequest::Specific(addr))
            .unwrap();
    }
    assert_eq!(rebuilt.snapshot(), snap);
}

/// Properties 2 and 3: `Any` reaches exactly every free address of the window, and a released
/// address is the only one available afterwards.
fn assert_exhausts(ipam: &mut Ipam, id: &PoolId, model: &mut Model, serial: bool) {
    let free = model.window_free();
    assert_eq!(ipam.pool_info(id).unwrap().available, free);
    let mut got = BTreeSet::new();
    while let Ok(ip) = ipam.request_address(id, AddressRequest::Any { serial }) {
        let o = to_u128(ip) - model.base;
        assert!(
            (model.lo..=model.hi).contains(&o) && !model.reserved(o),
            "{ip} outside window"
        );
        assert!(got.insert(o), "{ip} handed out twice");
        model.take(o);
        assert!(
            got.len() as u128 <= free,
            "more than {free} addresses handed out"
        );
    }
    assert_eq!(got.len() as u128, free);
    assert_eq!(ipam.pool_info(id).unwrap().available, 0);
    if let Some(&o) = model
        .allocated
        .range(model.lo..=model.hi)
        .nth(got.len() / 2)
    {
        ipam.release_address(id, model.addr(o)).unwrap();
        model.allocated.remove(&o);
        let again = ipam
            .request_address(id, AddressRequest::Any { serial })
            .unwrap();
        assert_eq!(again, model.addr(o));
        model.take(o);
    }
}

fn run(s: &Scenario, exhaust: bool) {
    let mut ipam = empty_ipam();
    let id = ipam.request_pool(&request(s)).unwrap();
    let mut model = Model::new(s);
    for op in &s.ops {
        step(&mut ipam, &id, &mut model, s.serial, op);
    }
    // Property 1 and the model agree on the whole state.
    let listed: Vec<IpAddr> = ipam.snapshot().pools[0].addresses().collect();
    let expected: Vec<IpAddr> = model.allocated.iter().map(|&o| model.addr(o)).collect();
    assert_eq!(listed, expected);
    assert_eq!(
        ipam.pool_info(&id).unwrap().allocated,
        model.allocated.len() as u128
    );
    assert_rebuilds(&ipam, s);
    if exhaust {
        assert_exhausts(&mut ipam, &id, &mut model, s.serial);
        assert_rebuilds(&ipam, s);
    }
}

proptest! {
    #[test]
    fn v4_pools_agree_with_the_model(s in v4_scenario()) {
        run(&s, true);
    }

    #[test]
    fn v6_slash_64_agrees_with_the_model(s in v6_scenario()) {
        // A /64 without a range cannot be exhausted; with one it can.
        run(&s, s.range.is_some());
    }
}

#[test]
fn a_fresh_pool_hands_out_exactly_its_capacity() {
    for prefix in 24..=30 {
        let s = Scenario {
            subnet: format!("198.19.0.0/{prefix}").parse().unwrap(),
            range: None,
            serial: prefix % 2 == 0,
            ops: vec![],
        };
        let mut ipam = empty_ipam();
        let id = ipam.request_pool(&request(&s)).unwrap();
        let capacity = ipam.pool_info(&id).unwrap().capacity;
        assert_eq!(capacity, (1u128 << (32 - prefix)) - 2);
        let mut model = Model::new(&s);
        assert_exhausts(&mut ipam, &id, &mut model, s.serial);
        assert_eq!(model.allocated.len() as u128, capacity);
    }
}
