//! DNS wire helpers on top of hickory-proto: a raw header peek (so garbage is told apart
//! from a malformed query before a full parse), name folding for the directory's keys, and
//! reply building with size limits. No decision about what to answer lives here.

use crate::{Error, Transport};
use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record};

/// TTL of local answers: Docker's 600 s (resolver.go `respTTL`).
pub const ANSWER_TTL: u32 = 600;
/// The smallest UDP reply limit: RFC 1035 §4.2.1, and the limit without EDNS.
pub const UDP_MIN_REPLY: usize = 512;
/// The largest reply over TCP: the 16-bit length prefix (RFC 1035 §4.2.2).
pub const TCP_MAX_REPLY: usize = u16::MAX as usize;
/// The UDP payload size our OPT records advertise: the DNS Flag Day 2020 value, which
/// avoids IP fragmentation on any path.
pub const REPLY_UDP_PAYLOAD: u16 = 1232;

/// Length of the fixed DNS header (RFC 1035 §4.1.1).
const HEADER_LEN: usize = 12;

/// The fields of a header read straight from the bytes, before any full parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub recursion_desired: bool,
    pub qdcount: u16,
}

/// Reads the header; `None` when the bytes are too short to hold one.
pub(crate) fn peek_header(bytes: &[u8]) -> Option<RawHeader> {
    let header = bytes.get(..HEADER_LEN)?;
    Some(RawHeader {
        id: u16::from_be_bytes([header[0], header[1]]),
        response: header[2] & 0x80 != 0,
        opcode: (header[2] >> 3) & 0x0f,
        recursion_desired: header[2] & 0x01 != 0,
        qdcount: u16::from_be_bytes([header[4], header[5]]),
    })
}

/// The name's labels lower-cased and joined with dots (no trailing dot), the form the
/// directory indexes. `None` for the root and for names holding a byte no weft name may
/// hold (such as a dot inside a label): they cannot be local.
pub(crate) fn fold_name(name: &Name) -> Option<String> {
    let mut folded = String::with_capacity(name.len());
    for label in name.iter() {
        if label.is_empty() || !label.iter().all(|b| is_name_byte(*b)) {
            return None;
        }
        if !folded.is_empty() {
            folded.push('.');
        }
        folded.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    (!folded.is_empty()).then_some(folded)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A response to `query`: its id, opcode, RD and question echoed, RA=1 (we recurse by
/// forwarding), AA=0 (Docker's flags), and an OPT record if the query had one.
pub(crate) fn response_to(query: &Message, code: ResponseCode) -> Message {
    let mut metadata = Metadata::response_from_request(&query.metadata);
    metadata.recursion_available = true;
    metadata.response_code = code;
    let mut reply = Message::new(query.id, MessageType::Response, query.op_code);
    reply.metadata = metadata;
    reply.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        reply.set_edns(reply_edns());
    }
    reply
}

/// The OPT record of our replies: version 0, our payload size, no options.
fn reply_edns() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(REPLY_UDP_PAYLOAD);
    edns.set_version(0);
    edns
}

/// An error reply to a query whose body did not parse: only the header's id, opcode and RD.
pub(crate) fn bare_error(header: RawHeader, code: ResponseCode) -> Message {
    let mut reply = Message::error_msg(header.id, OpCode::from_u8(header.opcode), code);
    reply.metadata.recursion_desired = header.recursion_desired;
    reply.metadata.recursion_available = true;
    reply
}

/// The largest reply `transport` allows for `query` (RFC 6891 §6.2.5: the requestor's
/// payload size, never below 512).
pub(crate) fn reply_limit(query: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Udp => usize::from(query.max_payload()).max(UDP_MIN_REPLY),
        Transport::Tcp => TCP_MAX_REPLY,
    }
}

/// Encodes `reply` within `limit` bytes: if the whole message does not fit, the most
/// leading answers that do are kept and TC is set. Returns the bytes and whether it cut.
pub(crate) fn encode_within(mut reply: Message, limit: usize) -> Result<(Vec<u8>, bool), Error> {
    let id = reply.id;
    let encode = |m: &Message| m.to_vec().map_err(|source| Error::Encode { id, source });
    let full = encode(&reply)?;
    if full.len() <= limit {
        return Ok((full, false));
    }
    let answers = std::mem::take(&mut reply.answers);
    reply.metadata.truncation = true;
    let kept = fitting_answers(&mut reply, &answers, limit, &encode)?;
    reply.answers = answers[..kept].to_vec();
    Ok((encode(&reply)?, true))
}

/// Binary search for the most leading `answers` that fit in `limit` alongside the rest of
/// `reply`: whole records only, since a client must not see half an RR. Name compression
/// makes a record's size depend on what precedes it, hence encoding, not summing.
fn fitting_answers(
    reply: &mut Message,
    answers: &[Record],
    limit: usize,
    encode: &impl Fn(&Message) -> Result<Vec<u8>, Error>,
) -> Result<usize, Error> {
    let (mut fits, mut too_many) = (0, answers.len());
    while too_many - fits > 1 {
        let mid = fits + (too_many - fits) / 2;
        reply.answers = answers[..mid].to_vec();
        if encode(reply)?.len() <= limit {
            fits = mid;
        } else {
            too_many = mid;
        }
    }
    Ok(fits)
}

/// An error reply to the raw `query` (SERVFAIL, REFUSED, FORMERR...), echoing what of the
/// query parses; `None` for bytes that must get no reply (no header, or a response).
pub(crate) fn error_reply(query: &[u8], code: ResponseCode) -> Option<Vec<u8>> {
    let header = peek_header(query).filter(|h| !h.response)?;
    let reply = match Message::from_vec(query) {
        Ok(message) => response_to(&message, code),
        Err(_) => bare_error(header, code),
    };
    reply.to_vec().ok()
}

/// The first question of a message, read without parsing the rest (a truncated upstream
/// reply may stop mid-record).
pub(crate) fn first_question(bytes: &[u8]) -> Option<Query> {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let mut decoder = BinDecoder::new(bytes.get(HEADER_LEN..)?);
    Query::read(&mut decoder).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn peek_header_needs_twelve_bytes() {
        assert!(peek_header(&[0; 11]).is_none());
        let h = peek_header(&[0x12, 0x34, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(h.id, 0x1234);
        assert!(h.response && h.recursion_desired);
        assert_eq!((h.opcode, h.qdcount), (0, 1));
    }

    #[test]
    fn fold_name_lowers_and_refuses_bytes_no_weft_name_has() {
        let name = Name::from_ascii("NaMe1.Net-1.").unwrap();
        assert_eq!(fold_name(&name).as_deref(), Some("name1.net-1"));
        assert_eq!(fold_name(&Name::root()), None);
        let dotted = Name::from_labels(vec![b"a.b".to_vec()]).unwrap();
        assert_eq!(fold_name(&dotted), None);
    }

    #[test]
    fn error_reply_drops_responses_and_short_bytes() {
        assert!(error_reply(&[0; 5], ResponseCode::ServFail).is_none());
        assert!(
            error_reply(
                &[0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ResponseCode::ServFail
            )
            .is_none()
        );
        let bytes = error_reply(
            &[0, 7, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            ResponseCode::ServFail,
        );
        let reply = Message::from_vec(&bytes.unwrap()).unwrap();
        assert_eq!(reply.id, 7);
        assert_eq!(reply.response_code, ResponseCode::ServFail);
        assert!(reply.recursion_desired);
    }
}
