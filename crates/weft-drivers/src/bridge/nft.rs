//! The host's nftables ruleset for every bridge network: one table, `inet weft-bridge`, built
//! wholly from the driver's current networks and applied as one transaction. It is not
//! patched rule by rule: a full rebuild cannot drift from the networks it describes.
//!
//! The document first adds the table (a no-op when it exists), deletes it with everything
//! in it, and adds it again with its chains and rules, so it applies the same way whether
//! or not a previous version is loaded. Contents, per bridge `B` (Docker's
//! DOCKER-ISOLATION-STAGE-1/2 and POSTROUTING MASQUERADE, in one table):
//! - `forward` (filter, policy accept): `iifname B oifname != B oifname "wb-*" drop`
//!   isolates networks from each other; an internal network also gets
//!   `iifname B oifname != B drop` and `oifname B iifname != B drop` (no route off it);
//! - `postrouting` (nat, srcnat): `ip saddr SUBNET oifname != B masquerade` for every subnet
//!   of a non-internal network (`ip6 saddr` for IPv6 subnets).

use ipnet::IpNet;
use std::borrow::Cow;
use weft_os::NftTable;
use weft_os::nftables::batch::Batch;
use weft_os::nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix,
};
use weft_os::nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use weft_os::nftables::stmt::{Match, Operator, Statement};
use weft_os::nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::config::BridgeNet;
use super::names::BRIDGE_PREFIX;

/// The one table the bridge driver owns in the host namespace.
pub const TABLE: &str = "weft-bridge";
/// Its filter chain on the forward hook.
pub const FORWARD_CHAIN: &str = "forward";
/// Its nat chain on the postrouting hook.
pub const POSTROUTING_CHAIN: &str = "postrouting";
/// `priority filter`.
const PRIO_FILTER: i32 = 0;
/// `priority srcnat`.
const PRIO_SRCNAT: i32 = 100;

/// The driver's table, for listing and deleting it.
pub fn table() -> NftTable {
    NftTable {
        family: NfFamily::INet,
        name: TABLE.to_owned(),
    }
}

/// The whole ruleset for `nets`, as one document (see the module docs).
pub fn ruleset(nets: &[BridgeNet]) -> Nftables<'static> {
    let mut batch = Batch::new();
    let table = || {
        NfListObject::Table(Table {
            family: NfFamily::INet,
            name: TABLE.into(),
            handle: None,
        })
    };
    batch.add(table());
    batch.delete(table());
    batch.add(table());
    batch.add(NfListObject::Chain(base_chain(
        FORWARD_CHAIN,
        NfChainType::Filter,
        NfHook::Forward,
        PRIO_FILTER,
    )));
    batch.add(NfListObject::Chain(base_chain(
        POSTROUTING_CHAIN,
        NfChainType::NAT,
        NfHook::Postrouting,
        PRIO_SRCNAT,
    )));
    for net in nets {
        for (expr, comment) in forward_rules(net) {
            batch.add(NfListObject::Rule(rule(FORWARD_CHAIN, expr, comment)));
        }
        for (expr, comment) in masquerade_rules(net) {
            batch.add(NfListObject::Rule(rule(POSTROUTING_CHAIN, expr, comment)));
        }
    }
    batch.to_nftables()
}

type RuleSpec = (Vec<Statement<'static>>, String);

/// Isolation from the other bridges, and for an internal network, from everything else.
fn forward_rules(net: &BridgeNet) -> Vec<RuleSpec> {
    let b = net.bridge.as_str();
    let wildcard = format!("{BRIDGE_PREFIX}*");
    let mut rules = vec![(
        vec![
            ifname(MetaKey::Iifname, Operator::EQ, b),
            ifname(MetaKey::Oifname, Operator::NEQ, b),
            ifname(MetaKey::Oifname, Operator::EQ, &wildcard),
            Statement::Drop(None),
        ],
        format!("isolate {b} from other networks"),
    )];
    if net.internal {
        rules.push((
            vec![
                ifname(MetaKey::Iifname, Operator::EQ, b),
                ifname(MetaKey::Oifname, Operator::NEQ, b),
                Statement::Drop(None),
            ],
            format!("internal {b}: nothing leaves"),
        ));
        rules.push((
            vec![
                ifname(MetaKey::Oifname, Operator::EQ, b),
                ifname(MetaKey::Iifname, Operator::NEQ, b),
                Statement::Drop(None),
            ],
            format!("internal {b}: nothing enters"),
        ));
    }
    rules
}

/// Outbound traffic of a non-internal network leaves with the host's address.
fn masquerade_rules(net: &BridgeNet) -> Vec<RuleSpec> {
    if net.internal {
        return Vec::new();
    }
    let b = net.bridge.as_str();
    net.subnets
        .iter()
        .map(|s| {
            let expr = vec![
                saddr(s.subnet.trunc()),
                ifname(MetaKey::Oifname, Operator::NEQ, b),
                Statement::Masquerade(None),
            ];
            (expr, format!("masquerade {} leaving {b}", s.subnet.trunc()))
        })
        .collect()
}

fn base_chain(name: &'static str, kind: NfChainType, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

fn rule(chain: &'static str, expr: Vec<Statement<'static>>, comment: String) -> Rule<'static> {
    Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: chain.into(),
        expr: Cow::Owned(expr),
        comment: Some(comment.into()),
        ..Rule::default()
    }
}

/// `iifname|oifname OP "name"` (a trailing `*` makes it a wildcard).
fn ifname(key: MetaKey, op: Operator, name: &str) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Meta(Meta { key })),
        right: Expression::String(name.to_owned().into()),
        op,
    })
}

/// `ip saddr SUBNET` or `ip6 saddr SUBNET`.
fn saddr(subnet: IpNet) -> Statement<'static> {
    let protocol = match subnet {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    };
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: protocol.into(),
                field: "saddr".into(),
            },
        ))),
        right: Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(subnet.addr().to_string().into())),
            len: u32::from(subnet.prefix_len()),
        })),
        op: Operator::EQ,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::bridge::tests::network;
    use weft_os::nftables::schema::{NfCmd, NfObject};

    fn nets() -> Vec<BridgeNet> {
        let mut two = network(2, false);
        two.subnets.push(weft_types::SubnetConfig {
            subnet: "2001:db8:2::/64".parse().unwrap(),
            gateway: "2001:db8:2::1".parse().unwrap(),
            ip_range: None,
        });
        [network(1, false), two, network(3, true)]
            .iter()
            .map(|n| BridgeNet::from_record(n).unwrap())
            .collect()
    }

    fn rules<'a>(doc: &'a Nftables<'static>, chain: &str) -> Vec<&'a Rule<'static>> {
        let added = doc.objects.iter().filter_map(|o| match o {
            NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(r))) => Some(r),
            _ => None,
        });
        added.filter(|r| r.chain == chain).collect()
    }

    #[test]
    fn the_table_is_replaced_whole_in_one_document() {
        let doc = ruleset(&nets());
        let head: Vec<_> = doc.objects.iter().take(5).collect();
        let is_table = |o: &NfObject, add: bool| match o {
            NfObject::CmdObject(NfCmd::Add(NfListObject::Table(t))) => add && t.name == TABLE,
            NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(t))) => !add && t.name == TABLE,
            _ => false,
        };
        assert!(is_table(head[0], true) && is_table(head[1], false) && is_table(head[2], true));
        let chain = |o: &NfObject| match o {
            NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(c))) => {
                Some((c.name.to_string(), c._type, c.hook, c.prio, c.policy))
            }
            _ => None,
        };
        let accept = Some(NfChainPolicy::Accept);
        assert_eq!(
            chain(head[3]),
            Some((
                "forward".into(),
                Some(NfChainType::Filter),
                Some(NfHook::Forward),
                Some(0),
                accept
            ))
        );
        assert_eq!(
            chain(head[4]),
            Some((
                "postrouting".into(),
                Some(NfChainType::NAT),
                Some(NfHook::Postrouting),
                Some(100),
                accept
            ))
        );
    }

    #[test]
    fn every_bridge_is_isolated_and_internal_ones_are_closed() {
        let nets = nets();
        let doc = ruleset(&nets);
        let forward = rules(&doc, FORWARD_CHAIN);
        // One isolation rule per network, two more for the internal one.
        assert_eq!(forward.len(), 3 + 2);
        for (net, rule) in nets.iter().zip([&forward[0], &forward[1], &forward[2]]) {
            let b = net.bridge.as_str();
            assert_eq!(
                rule.expr.as_ref(),
                [
                    ifname(MetaKey::Iifname, Operator::EQ, b),
                    ifname(MetaKey::Oifname, Operator::NEQ, b),
                    ifname(MetaKey::Oifname, Operator::EQ, "wb-*"),
                    Statement::Drop(None),
                ]
            );
        }
        let internal = nets[2].bridge.as_str();
        assert_eq!(
            forward[3].expr.as_ref(),
            [
                ifname(MetaKey::Iifname, Operator::EQ, internal),
                ifname(MetaKey::Oifname, Operator::NEQ, internal),
                Statement::Drop(None),
            ]
        );
        assert_eq!(
            forward[4].expr.as_ref(),
            [
                ifname(MetaKey::Oifname, Operator::EQ, internal),
                ifname(MetaKey::Iifname, Operator::NEQ, internal),
                Statement::Drop(None),
            ]
        );
    }

    #[test]
    fn non_internal_subnets_are_masqueraded_when_leaving_their_bridge() {
        let nets = nets();
        let doc = ruleset(&nets);
        let post = rules(&doc, POSTROUTING_CHAIN);
        let want = [
            (&nets[0], "198.19.1.0/24"),
            (&nets[1], "198.19.2.0/24"),
            (&nets[1], "2001:db8:2::/64"),
        ];
        assert_eq!(
            post.len(),
            want.len(),
            "the internal network is not masqueraded"
        );
        for (rule, (net, subnet)) in post.iter().zip(want) {
            assert_eq!(
                rule.expr.as_ref(),
                [
                    saddr(subnet.parse().unwrap()),
                    ifname(MetaKey::Oifname, Operator::NEQ, net.bridge.as_str()),
                    Statement::Masquerade(None),
                ]
            );
        }
        let json = serde_json_text(&doc);
        assert!(
            json.contains(r#"{"payload":{"protocol":"ip6","field":"saddr"}}"#),
            "{json}"
        );
        assert!(
            json.contains(r#"{"prefix":{"addr":"198.19.1.0","len":24}}"#),
            "{json}"
        );
    }

    /// The document as `nft -j` receives it, through the fake kernel's recorder.
    fn serde_json_text(doc: &Nftables<'static>) -> String {
        let k = weft_os::FakeKernel::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(weft_os::FirewallOps::apply_ruleset(
            &k,
            &weft_os::NsRef::Host,
            doc,
        ))
        .unwrap();
        k.rulesets(&weft_os::NsRef::Host).pop().unwrap()
    }
}
