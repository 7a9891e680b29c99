//! Forwarding decisions, sans-IO: whether an upstream's reply to a forwarded query is
//! relayed to the client or the next server is tried (Docker's resolver.go forwardExtDNS),
//! the replies the actor sends when forwarding fails, and the in-flight limit.
//!
//! The actor sends, times out (Docker: 4 s per server) and counts; this module only judges.

use crate::wire::{error_reply, first_question, peek_header};
use hickory_proto::op::{Message, ResponseCode};
use serde::{Deserialize, Serialize};

/// Most forwards in flight per resolver; past it the actor answers REFUSED (Docker's
/// `maxConcurrent`).
pub const MAX_IN_FLIGHT: usize = 1024;

/// What to do with an upstream's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send these bytes to the client as they are.
    Relay(Vec<u8>),
    /// Ignore the reply and ask the next server.
    TryNext(Skip),
}

/// Why an upstream's reply was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Skip {
    /// The reply does not parse (or the query we sent does not).
    Unparsable,
    /// Not a response to our query: another id, or another question.
    Mismatch,
    /// SERVFAIL.
    ServFail,
    /// REFUSED.
    Refused,
    /// NXDOMAIN without AA: a server that is not authoritative may be wrong or stale.
    UnauthoritativeNxDomain,
    /// Any other error rcode.
    Rcode(u16),
}

/// Judges `reply`, an upstream's answer to the forwarded `query` (the client's bytes, sent
/// unchanged, so the ids must match).
pub fn judge_reply(query: &[u8], reply: &[u8]) -> Verdict {
    match skip_reason(query, reply) {
        Some(skip) => Verdict::TryNext(skip),
        None => Verdict::Relay(reply.to_vec()),
    }
}

fn skip_reason(query: &[u8], reply: &[u8]) -> Option<Skip> {
    let (Some(asked), Some(got)) = (peek_header(query), peek_header(reply)) else {
        return Some(Skip::Unparsable);
    };
    let Some(asked_question) = first_question(query) else {
        return Some(Skip::Unparsable);
    };
    // The question is compared case-insensitively: 0x20-randomising servers echo any case.
    let same_question = first_question(reply).is_some_and(|q| q == asked_question);
    if !got.response || got.id != asked.id || !same_question {
        return Some(Skip::Mismatch);
    }
    // A truncated reply may stop mid-record: relay it as is so the client retries over TCP.
    if reply.get(2).is_some_and(|flags| flags & 0x02 != 0) {
        return None;
    }
    let Ok(message) = Message::from_vec(reply) else {
        return Some(Skip::Unparsable);
    };
    rcode_skip(&message)
}

/// Docker's rcode rules: NOERROR (even empty) is relayed, NXDOMAIN only with AA=1.
fn rcode_skip(message: &Message) -> Option<Skip> {
    match message.response_code {
        ResponseCode::NoError => None,
        ResponseCode::NXDomain if message.authoritative => None,
        ResponseCode::NXDomain => Some(Skip::UnauthoritativeNxDomain),
        ResponseCode::ServFail => Some(Skip::ServFail),
        ResponseCode::Refused => Some(Skip::Refused),
        other => Some(Skip::Rcode(u16::from(other))),
    }
}

/// SERVFAIL for `query`, sent when no upstream gave a usable reply; `None` when the bytes
/// deserve no reply (too short, or a response).
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    error_reply(query, ResponseCode::ServFail)
}

/// REFUSED for `query`, sent when [`MAX_IN_FLIGHT`] forwards are already in flight.
pub fn refused(query: &[u8]) -> Option<Vec<u8>> {
    error_reply(query, ResponseCode::Refused)
}

/// Counts forwards in flight against a limit. The actor acquires before sending upstream
/// and releases when the forward ends, whatever its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    current: usize,
    limit: usize,
}

impl Default for InFlight {
    fn default() -> Self {
        Self::new()
    }
}

impl InFlight {
    /// A counter with Docker's limit, [`MAX_IN_FLIGHT`].
    pub fn new() -> Self {
        Self::with_limit(MAX_IN_FLIGHT)
    }

    /// A counter with another limit.
    pub fn with_limit(limit: usize) -> Self {
        InFlight { current: 0, limit }
    }

    /// Takes a slot; false when the limit is reached (answer REFUSED).
    pub fn try_acquire(&mut self) -> bool {
        if self.current >= self.limit {
            return false;
        }
        self.current += 1;
        true
    }

    /// Gives a slot back; an extra release is ignored rather than wrapping.
    pub fn release(&mut self) {
        self.current = self.current.saturating_sub(1);
    }

    /// Forwards now in flight.
    pub fn current(&self) -> usize {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_stops_at_its_limit_and_frees_on_release() {
        let mut slots = InFlight::with_limit(2);
        assert!(slots.try_acquire() && slots.try_acquire());
        assert!(!slots.try_acquire());
        slots.release();
        assert!(slots.try_acquire());
        slots.release();
        slots.release();
        slots.release();
        assert_eq!(slots.current(), 0);
        assert_eq!(InFlight::new().limit, MAX_IN_FLIGHT);
    }
}
