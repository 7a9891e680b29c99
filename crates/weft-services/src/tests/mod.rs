//! Behaviour tests of the resolver core, through the public API: queries as a client would
//! send them, replies parsed back. No sockets, no clocks; rngs are seeded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod answers;
mod garbage;
mod upstream;

use crate::{Action, Directory, NetworkView, Resolution, SandboxView, Transport, resolve};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::net::IpAddr;
use weft_types::NetworkId;
use weft_types::gossip::NameRecord;

/// The id of every test query.
pub(crate) const ID: u16 = 0x4242;

/// A fixed network id, distinct per `n`.
pub(crate) fn net(n: u8) -> NetworkId {
    format!("{n:064x}").parse().unwrap()
}

/// A record for sandbox `name` with addresses `ips` and nothing else.
pub(crate) fn record(name: &str, ips: &[&str]) -> NameRecord {
    NameRecord {
        sandbox: name.parse().unwrap(),
        endpoint: format!("{name}-ep").parse().unwrap(),
        ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        aliases: Vec::new(),
        service: None,
        vip: None,
        disabled: false,
    }
}

/// A view of networks `(n, name, internal)` in order.
pub(crate) fn view(networks: &[(u8, &str, bool)]) -> SandboxView {
    let networks = networks.iter().map(|&(n, name, internal)| NetworkView {
        id: net(n),
        name: name.to_owned(),
        internal,
    });
    SandboxView {
        networks: networks.collect(),
    }
}

/// A recursive query for `name`, with EDNS when `payload` is given.
pub(crate) fn query_with(name: &str, qtype: RecordType, payload: Option<u16>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = ID;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message.to_vec().unwrap()
}

/// A recursive query for `name` without EDNS.
pub(crate) fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    query_with(name, qtype, None)
}

/// Resolves `bytes` with a fixed seed.
pub(crate) fn ask(dir: &Directory, view: &SandboxView, bytes: &[u8], t: Transport) -> Resolution {
    resolve(dir, view, bytes, t, &mut StdRng::seed_from_u64(7))
}

/// The reply of an `Answer`, parsed; panics on another action.
pub(crate) fn reply(resolution: &Resolution) -> Message {
    match &resolution.action {
        Action::Answer(bytes) => Message::from_vec(bytes).unwrap(),
        other => panic!(
            "expected an answer, got {other:?} ({:?})",
            resolution.outcome
        ),
    }
}

/// The A/AAAA addresses of a reply, sorted.
pub(crate) fn addresses(message: &Message) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

/// Parses addresses written as text, sorted.
pub(crate) fn ips(texts: &[&str]) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = texts.iter().map(|t| t.parse().unwrap()).collect();
    ips.sort();
    ips
}
