//! The load balancer's desired state in one sandbox, as an nftables document: connections
//! the sandbox opens to a service's VIP are DNATed to one of the service's active backends,
//! picked at random per connection (this kernel has no IPVS; Docker uses IPVS in a
//! per-network `lb-` sandbox instead).
//!
//! Table `ip weft-lb` in the sandbox's namespace, built whole and applied as one
//! transaction (add, delete, add: the same document works whether or not one is loaded):
//! - chain `output` (nat, hook output, priority dstnat): `ip daddr vmap { VIP : jump svc-N }`,
//!   one lookup whatever the number of services;
//! - chain `svc-N` per VIP with backends: `dnat ip to numgen random mod K map { 0 : B0, … }`.
//!
//! Conntrack keeps an established connection on its backend: a backend that is drained
//! (disabled) leaves the map and gets no new connection, while its open ones finish.

use nftables::batch::Batch;
use nftables::expr::{
    Expression, NamedExpression, NgMode, Numgen, Payload, PayloadField, SetItem, Verdict,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, NAT, NATFamily, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::net::IpAddr;

/// The table's name in each sandbox.
pub const LB_TABLE: &str = "weft-lb";
const OUTPUT_CHAIN: &str = "output";
/// `priority dstnat`.
const PRIO_DSTNAT: i32 = -100;

/// The table, for the document that removes it.
fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::IP,
        name: LB_TABLE.into(),
        handle: None,
    })
}

/// The whole table for `services` (VIP, active backends), IPv4 only; VIPs without a
/// backend get no rule (a connection to them finds no one, as to any unused address).
pub fn lb_ruleset(services: &[(IpAddr, Vec<IpAddr>)]) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
    batch.add(table());
    batch.add(NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: LB_TABLE.into(),
        name: OUTPUT_CHAIN.into(),
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Output),
        prio: Some(PRIO_DSTNAT),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }));
    let mut vmap = Vec::new();
    for (i, (vip, backends)) in services.iter().enumerate() {
        let backends: Vec<IpAddr> = backends.iter().copied().filter(IpAddr::is_ipv4).collect();
        if !vip.is_ipv4() || backends.is_empty() {
            continue;
        }
        let chain = format!("svc-{i}");
        batch.add(NfListObject::Chain(Chain {
            family: NfFamily::IP,
            table: LB_TABLE.into(),
            name: chain.clone().into(),
            ..Chain::default()
        }));
        batch.add(NfListObject::Rule(rule(&chain, vec![dnat(&backends)])));
        vmap.push(SetItem::Mapping(
            Expression::String(Cow::Owned(vip.to_string())),
            Expression::Verdict(Verdict::Jump(JumpTarget {
                target: Cow::Owned(chain),
            })),
        ));
    }
    if !vmap.is_empty() {
        let lookup = Statement::VerdictMap(VerdictMap {
            key: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                PayloadField {
                    protocol: "ip".into(),
                    field: "daddr".into(),
                },
            ))),
            data: Expression::Named(NamedExpression::Set(vmap)),
        });
        batch.add(NfListObject::Rule(rule(OUTPUT_CHAIN, vec![lookup])));
    }
    batch.to_nftables()
}

/// The document that removes the table (a sandbox with no VIP left).
pub fn lb_removal() -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
    batch.to_nftables()
}

/// `dnat ip to B` for one backend, else `dnat ip to numgen random mod K map { i : Bi }`.
fn dnat(backends: &[IpAddr]) -> Statement<'static> {
    let addr = |ip: &IpAddr| Expression::String(Cow::Owned(ip.to_string()));
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

    #[test]
    fn one_lookup_and_one_chain_per_vip_with_backends() {
        let doc = lb_ruleset(&[
            (
                "198.19.1.2".parse().unwrap(),
                ips(&["198.19.1.10", "198.19.1.11"]),
            ),
            ("198.19.1.3".parse().unwrap(), ips(&[])),
            ("198.19.1.4".parse().unwrap(), ips(&["198.19.1.12"])),
        ]);
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(json.matches("\"numgen\"").count(), 1, "{json}");
        assert_eq!(json.matches("\"vmap\"").count(), 1, "{json}");
        assert!(json.contains("svc-0") && json.contains("svc-2") && !json.contains("svc-1"));
        assert!(json.contains("198.19.1.12"));
    }

    #[test]
    fn no_backend_anywhere_means_no_lookup_rule() {
        let doc = lb_ruleset(&[("198.19.1.3".parse().unwrap(), ips(&[]))]);
        let json = serde_json::to_string(&doc).unwrap();
        assert!(!json.contains("vmap"), "{json}");
    }
}
