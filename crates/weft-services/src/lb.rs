//! The load balancer's desired state in one sandbox, as nftables documents: connections
//! the sandbox opens to a service's VIP are DNATed to one of the service's active backends,
//! picked at random per connection (this kernel has no IPVS; Docker uses IPVS in a
//! per-network `lb-` sandbox instead).
//!
//! Table `ip weft-lb` in the sandbox's namespace:
//! - chain `output` (nat, hook output, priority dstnat): one rule,
//!   `ip daddr & 0.0.0.63 vmap { 0.0.0.K : jump b-K }`: the VIP's low 6 bits pick one of 64
//!   bucket chains (VIPs come from a subnet in order, so they spread evenly);
//! - chain `b-K`: `ip daddr vmap { VIP : jump s-VIP, ... }` for the VIPs of bucket K;
//! - chain `s-VIP` per VIP: `dnat ip to numgen random mod N map { 0 : B0, ... }` over its
//!   active backends (no rule while it has none).
//!
//! A packet costs two map lookups whatever the number of services. [`lb_ruleset`] builds
//! the whole table (add, delete, add: the same document works whether or not one is
//! loaded); [`lb_update`] changes a loaded one in one transaction that touches only what
//! changed: a backend set is one chain flushed and refilled, a VIP added or removed also
//! rewrites its bucket's rule (about 1/64 of the VIPs). Conntrack keeps an established
//! connection on its backend: a backend that is drained leaves its map and gets no new
//! connection, while its open ones finish.

use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, Expression, NamedExpression, NgMode, Numgen, Payload, PayloadField, SetItem,
    Verdict,
};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, NAT, NATFamily, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// The table's name in each sandbox.
pub const LB_TABLE: &str = "weft-lb";
const OUTPUT_CHAIN: &str = "output";
/// `priority dstnat`.
const PRIO_DSTNAT: i32 = -100;
/// Bucket chains; a power of two (the bucket is the VIP's low bits).
pub const BUCKETS: u8 = 64;

/// VIP -> active backends: one sandbox's load balancer.
pub type LbServices = [(IpAddr, Vec<IpAddr>)];

/// The IPv4 VIPs and their IPv4 backends (this table is IPv4; the rest is ignored).
fn v4(services: &LbServices) -> BTreeMap<Ipv4Addr, Vec<Ipv4Addr>> {
    services
        .iter()
        .filter_map(|(vip, backends)| {
            let IpAddr::V4(vip) = vip else { return None };
            let backends: BTreeSet<Ipv4Addr> = backends
                .iter()
                .filter_map(|b| match b {
                    IpAddr::V4(b) => Some(*b),
                    IpAddr::V6(_) => None,
                })
                .collect();
            Some((*vip, backends.into_iter().collect()))
        })
        .collect()
}

fn bucket(vip: Ipv4Addr) -> u8 {
    vip.octets()[3] & (BUCKETS - 1)
}

fn bucket_chain(k: u8) -> String {
    format!("b-{k}")
}

fn service_chain(vip: Ipv4Addr) -> String {
    format!("s-{:08x}", u32::from(vip))
}

fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::IP,
        name: LB_TABLE.into(),
        handle: None,
    })
}

fn chain(name: String) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: LB_TABLE.into(),
        name: name.into(),
        ..Chain::default()
    }
}

/// The whole table for `services`.
pub fn lb_ruleset(services: &LbServices) -> Nftables<'static> {
    let services = v4(services);
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
    batch.add(table());
    batch.add(NfListObject::Chain(Chain {
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Output),
        prio: Some(PRIO_DSTNAT),
        policy: Some(NfChainPolicy::Accept),
        ..chain(OUTPUT_CHAIN.to_owned())
    }));
    for k in 0..BUCKETS {
        batch.add(NfListObject::Chain(chain(bucket_chain(k))));
    }
    batch.add(NfListObject::Rule(rule(OUTPUT_CHAIN, vec![dispatch()])));
    for (vip, backends) in &services {
        batch.add(NfListObject::Chain(chain(service_chain(*vip))));
        if !backends.is_empty() {
            batch.add(NfListObject::Rule(rule(
                &service_chain(*vip),
                vec![dnat(backends)],
            )));
        }
    }
    let buckets: BTreeSet<u8> = services.keys().map(|v| bucket(*v)).collect();
    for k in buckets {
        if let Some(r) = bucket_rule(k, &services) {
            batch.add(NfListObject::Rule(r));
        }
    }
    batch.to_nftables()
}

/// The transaction from `before` (loaded) to `after`; `None` when they are the same.
pub fn lb_update(before: &LbServices, after: &LbServices) -> Option<Nftables<'static>> {
    let (before, after) = (v4(before), v4(after));
    if before == after {
        return None;
    }
    let mut batch = Batch::new();
    let mut touched = BTreeSet::new();
    for (vip, backends) in &after {
        match before.get(vip) {
            None => {
                touched.insert(bucket(*vip));
                batch.add(NfListObject::Chain(chain(service_chain(*vip))));
            }
            Some(old) if old == backends => continue,
            Some(_) => batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain(service_chain(*vip))))),
        }
        if !backends.is_empty() {
            batch.add(NfListObject::Rule(rule(
                &service_chain(*vip),
                vec![dnat(backends)],
            )));
        }
    }
    let removed: Vec<Ipv4Addr> = before
        .keys()
        .filter(|v| !after.contains_key(v))
        .copied()
        .collect();
    touched.extend(removed.iter().map(|v| bucket(*v)));
    for k in touched {
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain(bucket_chain(k)))));
        if let Some(r) = bucket_rule(k, &after) {
            batch.add(NfListObject::Rule(r));
        }
    }
    // Last: a chain is deleted once no bucket rule jumps to it any more.
    for vip in removed {
        batch.delete(NfListObject::Chain(chain(service_chain(vip))));
    }
    Some(batch.to_nftables())
}

/// The document that removes the table (a sandbox with no VIP left).
pub fn lb_removal() -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
    batch.to_nftables()
}

/// `ip daddr & 0.0.0.63 vmap { 0.0.0.K : jump b-K }`.
fn dispatch() -> Statement<'static> {
    let mask = Ipv4Addr::from(u32::from(BUCKETS - 1));
    Statement::VerdictMap(VerdictMap {
        key: Expression::BinaryOperation(Box::new(BinaryOperation::AND(
            daddr(),
            Expression::String(Cow::Owned(mask.to_string())),
        ))),
        data: Expression::Named(NamedExpression::Set(
            (0..BUCKETS)
                .map(|k| {
                    SetItem::Mapping(
                        Expression::String(Cow::Owned(Ipv4Addr::from(u32::from(k)).to_string())),
                        jump(bucket_chain(k)),
                    )
                })
                .collect(),
        )),
    })
}

/// Bucket `k`'s rule, if it has VIPs: `ip daddr vmap { VIP : jump s-VIP }`.
fn bucket_rule(k: u8, services: &BTreeMap<Ipv4Addr, Vec<Ipv4Addr>>) -> Option<Rule<'static>> {
    let items: Vec<SetItem<'static>> = services
        .keys()
        .filter(|v| bucket(**v) == k)
        .map(|v| {
            SetItem::Mapping(
                Expression::String(Cow::Owned(v.to_string())),
                jump(service_chain(*v)),
            )
        })
        .collect();
    if items.is_empty() {
        return None;
    }
    let lookup = Statement::VerdictMap(VerdictMap {
        key: daddr(),
        data: Expression::Named(NamedExpression::Set(items)),
    });
    Some(rule(&bucket_chain(k), vec![lookup]))
}

fn daddr() -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: "ip".into(),
            field: "daddr".into(),
        },
    )))
}

fn jump(target: String) -> Expression<'static> {
    Expression::Verdict(Verdict::Jump(JumpTarget {
        target: Cow::Owned(target),
    }))
}

/// `dnat ip to B` for one backend, else `dnat ip to numgen random mod K map { i : Bi }`.
fn dnat(backends: &[Ipv4Addr]) -> Statement<'static> {
    let addr = |ip: &Ipv4Addr| Expression::String(Cow::Owned(ip.to_string()));
    let target = match backends {
        [one] => addr(one),
        many => Expression::Named(NamedExpression::Map(Box::new(nftables::expr::Map {
            key: Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Random,
                ng_mod: u32::try_from(many.len()).unwrap_or(u32::MAX),
                offset: None,
            })),
            data: Expression::Named(NamedExpression::Set(
                many.iter()
                    .zip(0u32..)
                    .map(|(ip, i)| SetItem::Mapping(Expression::Number(i), addr(ip)))
                    .collect(),
            )),
        }))),
    };
    Statement::DNAT(Some(NAT {
        addr: Some(target),
        family: Some(NATFamily::IP),
        port: None,
        flags: None,
    }))
}

fn rule(chain: &str, expr: Vec<Statement<'static>>) -> Rule<'static> {
    Rule {
        family: NfFamily::IP,
        table: LB_TABLE.into(),
        chain: Cow::Owned(chain.to_owned()),
        expr: Cow::Owned(expr),
        ..Rule::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ips(texts: &[&str]) -> Vec<IpAddr> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn ip(t: &str) -> IpAddr {
        t.parse().unwrap()
    }

    #[test]
    fn the_whole_table_has_a_dispatch_buckets_and_a_chain_per_vip() {
        let doc = lb_ruleset(&[
            (ip("198.19.1.2"), ips(&["198.19.1.10", "198.19.1.11"])),
            (ip("198.19.1.3"), ips(&[])),
            (ip("198.19.1.66"), ips(&["198.19.1.12"])),
        ]);
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(json.matches("\"numgen\"").count(), 1, "{json}");
        // The dispatch, bucket 2 (198.19.1.2 and .66: 66 & 63 = 2) and bucket 3.
        assert_eq!(json.matches("\"vmap\"").count(), 3, "{json}");
        for chain in ["s-c6130102", "s-c6130103", "s-c6130142", "b-63"] {
            assert!(json.contains(chain), "{chain}: {json}");
        }
    }

    #[test]
    fn an_update_touches_only_what_changed() {
        let before = [
            (ip("198.19.1.2"), ips(&["198.19.1.10", "198.19.1.11"])),
            (ip("198.19.1.3"), ips(&["198.19.1.12"])),
        ];
        assert!(lb_update(&before, &before).is_none());
        // One backend leaves: one chain flushed and refilled, no bucket touched.
        let after = [
            (ip("198.19.1.2"), ips(&["198.19.1.10"])),
            (ip("198.19.1.3"), ips(&["198.19.1.12"])),
        ];
        let json = serde_json::to_string(&lb_update(&before, &after).unwrap()).unwrap();
        assert!(
            json.contains("s-c6130102") && !json.contains("s-c6130103"),
            "{json}"
        );
        assert!(!json.contains("b-"), "{json}");
        // A VIP goes: its bucket rewritten, then its chain deleted.
        let json = serde_json::to_string(&lb_update(&before, &before[..1]).unwrap()).unwrap();
        let flush = json.find("b-3").unwrap();
        let delete = json.find("\"delete\"").unwrap();
        assert!(flush < delete, "{json}");
        assert!(!json.contains("b-2"), "{json}");
    }
}
