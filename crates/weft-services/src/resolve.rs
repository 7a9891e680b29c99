//! What to do with one query from a sandbox: answer it from the [`Directory`], forward it
//! upstream, or drop it. Docker's rules (libnetwork resolver.go, sandbox.go ResolveName),
//! with weft's choices where they differ said at the place they apply.

use crate::directory::Directory;
use crate::reverse::{ReverseName, parse_reverse};
use crate::wire::{
    ANSWER_TTL, bare_error, encode_within, fold_name, peek_header, reply_limit, response_to,
};
use crate::{Error, Transport};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use weft_types::NetworkId;

/// The networks the querying sandbox is attached to, in its search order: only their
/// records may answer it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxView {
    pub networks: Vec<NetworkView>,
}

/// One network of a [`SandboxView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    pub id: NetworkId,
    /// The network's name: the `NETWORK` of `NAME.NETWORK` and of PTR answers.
    pub name: String,
    /// An `--internal` network may not reach outside, so nothing is forwarded for it.
    pub internal: bool,
}

impl SandboxView {
    /// True when a query may leave the host: at least one network is not internal. Docker
    /// forwarded from internal networks until CVE-2024-29018; weft never does.
    pub fn can_forward(&self) -> bool {
        self.networks.iter().any(|n| !n.internal)
    }
}

/// What the resolver actor does with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes back to the client.
    Answer(Vec<u8>),
    /// Send the original query bytes to the upstream servers, in order.
    Forward,
    /// Send nothing.
    Drop,
}

/// Why, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Answered from the directory with at least one record.
    Answered,
    /// The name is known here but has no record of the asked type: NOERROR, no answer.
    Empty,
    /// Answered from the directory, cut to fit the UDP limit (TC=1).
    Truncated,
    /// Not a local name: to be forwarded.
    Forwarded,
    /// Not a local name, and no network of the sandbox may reach outside: SERVFAIL.
    Internal,
    /// A header that parses and a body that does not, or not exactly one question: FORMERR.
    Malformed,
    /// An opcode other than QUERY: NOTIMP.
    NotImplemented,
    /// An EDNS version other than 0: BADVERS (RFC 6891 §6.1.3).
    BadVersion,
    /// Too short for a header, or a response: dropped without reply.
    Garbage,
    /// The reply could not be encoded (a bug, logged): dropped.
    Failed,
}

impl Outcome {
    /// A short label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Empty => "empty",
            Outcome::Truncated => "truncated",
            Outcome::Forwarded => "forwarded",
            Outcome::Internal => "internal",
            Outcome::Malformed => "malformed",
            Outcome::NotImplemented => "not_implemented",
            Outcome::BadVersion => "bad_version",
            Outcome::Garbage => "garbage",
            Outcome::Failed => "failed",
        }
    }
}

/// The decision for one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub action: Action,
    pub outcome: Outcome,
}

impl Resolution {
    fn new(action: Action, outcome: Outcome) -> Self {
        Resolution { action, outcome }
    }
}

/// Decides what to do with `query` (one DNS message, without TCP's length prefix), received
/// over `transport` from a sandbox attached to the networks of `view`. `rng` shuffles the
/// addresses of each answer. Never panics, whatever the bytes.
pub fn resolve(
    dir: &Directory,
    view: &SandboxView,
    query: &[u8],
    transport: Transport,
    rng: &mut impl rand::Rng,
) -> Resolution {
    match try_resolve(dir, view, query, transport, rng) {
        Ok(resolution) => resolution,
        Err(error) => {
            tracing::warn!(error = %error, "embedded dns query dropped");
            Resolution::new(Action::Drop, Outcome::Failed)
        }
    }
}

fn try_resolve(
    dir: &Directory,
    view: &SandboxView,
    query: &[u8],
    transport: Transport,
    rng: &mut impl rand::Rng,
) -> Result<Resolution, Error> {
    let Some(header) = peek_header(query).filter(|h| !h.response) else {
        return Ok(Resolution::new(Action::Drop, Outcome::Garbage));
    };
    if header.opcode != 0 {
        let reply = bare_error(header, ResponseCode::NotImp);
        return small_reply(&reply, Outcome::NotImplemented);
    }
    let Ok(message) = Message::from_vec(query) else {
        let reply = bare_error(header, ResponseCode::FormErr);
        return small_reply(&reply, Outcome::Malformed);
    };
    let question = match message.queries.as_slice() {
        [question] => question,
        _ => {
            let mut reply = response_to(&message, ResponseCode::FormErr);
            reply.queries.clear();
            return small_reply(&reply, Outcome::Malformed);
        }
    };
    if message.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        let reply = response_to(&message, ResponseCode::BADVERS);
        return small_reply(&reply, Outcome::BadVersion);
    }
    match local_records(dir, view, question, rng) {
        Local::Records(records) => local_reply(&message, records, transport),
        Local::Malformed => small_reply(
            &response_to(&message, ResponseCode::FormErr),
            Outcome::Malformed,
        ),
        Local::Unknown if view.can_forward() => {
            Ok(Resolution::new(Action::Forward, Outcome::Forwarded))
        }
        // SERVFAIL rather than NXDOMAIN: the name may well exist, we are only not allowed to
        // ask; NXDOMAIN would be a false negative that stub caches keep. Docker 26+ answers
        // SERVFAIL too when it may not forward (resolver.go ServeDNS).
        Local::Unknown => small_reply(
            &response_to(&message, ResponseCode::ServFail),
            Outcome::Internal,
        ),
    }
}

/// What the directory says about a question.
enum Local {
    /// A local name: these records (possibly none) answer it.
    Records(Vec<Record>),
    /// A PTR question for a malformed reverse name.
    Malformed,
    /// Not a name of the sandbox's networks.
    Unknown,
}

fn local_records(
    dir: &Directory,
    view: &SandboxView,
    question: &Query,
    rng: &mut impl rand::Rng,
) -> Local {
    // Other classes (CH `version.bind`...) have no local names.
    if question.query_class() != DNSClass::IN {
        return Local::Unknown;
    }
    let Some(folded) = fold_name(question.name()) else {
        return Local::Unknown;
    };
    if question.query_type() == RecordType::PTR {
        match parse_reverse(&folded) {
            ReverseName::Address(ip) => return ptr_record(dir, view, question.name(), ip),
            ReverseName::Malformed => return Local::Malformed,
            ReverseName::NotReverse => {}
        }
    }
    let Some(mut ips) = find_addresses(dir, view, &folded) else {
        return Local::Unknown;
    };
    ips.shuffle(rng);
    Local::Records(address_records(question, &ips))
}

/// The addresses of `folded` in the first view network that knows it: the whole name in
/// every network in order, then `a.b` in network `c`, then `a` in network `b.c` (Docker's
/// sandbox.go ResolveName). The network part is matched case-insensitively, unlike Docker,
/// since DNS names are.
fn find_addresses(dir: &Directory, view: &SandboxView, folded: &str) -> Option<Vec<IpAddr>> {
    let whole = view.networks.iter().map(|n| dir.lookup(&n.id, folded));
    let split = folded.rmatch_indices('.').flat_map(|(dot, _)| {
        let (host, network) = (&folded[..dot], &folded[dot + 1..]);
        view.networks
            .iter()
            .filter(move |n| n.name.eq_ignore_ascii_case(network))
            .map(move |n| dir.lookup(&n.id, host))
    });
    whole.chain(split).find(|ips| !ips.is_empty())
}

/// The A or AAAA records for `ips`; none for another type or when no address is of the
/// asked family (NOERROR with no answer, not forwarded: a local name is never leaked).
fn address_records(question: &Query, ips: &[IpAddr]) -> Vec<Record> {
    let rdata = |ip: &IpAddr| match (question.query_type(), ip) {
        (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(*v4))),
        (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(*v6))),
        _ => None,
    };
    ips.iter()
        .filter_map(rdata)
        .map(|data| Record::from_rdata(question.name().clone(), ANSWER_TTL, data))
        .collect()
}

/// `<sandbox>.<network>.` for an endpoint address of the first view network that has it.
/// VIPs and foreign addresses are not indexed, so they fall through to forwarding.
fn ptr_record(dir: &Directory, view: &SandboxView, name: &Name, ip: IpAddr) -> Local {
    for network in &view.networks {
        for sandbox in dir.sandboxes_at(&network.id, ip) {
            // A 64-character name is a legal weft name but not a DNS label: skip it.
            let Ok(target) = Name::from_ascii(format!("{sandbox}.{}.", network.name)) else {
                continue;
            };
            let record = Record::from_rdata(name.clone(), ANSWER_TTL, RData::PTR(PTR(target)));
            return Local::Records(vec![record]);
        }
    }
    Local::Unknown
}

/// A reply built from the directory, cut to the transport's limit.
fn local_reply(
    message: &Message,
    records: Vec<Record>,
    transport: Transport,
) -> Result<Resolution, Error> {
    let outcome = if records.is_empty() {
        Outcome::Empty
    } else {
        Outcome::Answered
    };
    let mut reply = response_to(message, ResponseCode::NoError);
    reply.answers = records;
    let (bytes, cut) = encode_within(reply, reply_limit(message, transport))?;
    let outcome = if cut { Outcome::Truncated } else { outcome };
    Ok(Resolution::new(Action::Answer(bytes), outcome))
}

/// An error reply: header, question and OPT only, far below any limit.
fn small_reply(reply: &Message, outcome: Outcome) -> Result<Resolution, Error> {
    let id = reply.id;
    let bytes = reply
        .to_vec()
        .map_err(|source| Error::Encode { id, source })?;
    Ok(Resolution::new(Action::Answer(bytes), outcome))
}
