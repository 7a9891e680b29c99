//! Upstream replies to forwarded queries, and the error replies the actor sends itself.

use super::*;
use crate::{Skip, Verdict, judge_reply, refused, servfail};
use hickory_proto::op::{MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::A;

/// An upstream reply to `query`, built by `shape`.
fn upstream(query: &[u8], shape: impl FnOnce(&mut Message)) -> Vec<u8> {
    let asked = Message::from_vec(query).unwrap();
    let mut reply = Message::response(asked.id, asked.op_code);
    reply.metadata.recursion_available = true;
    reply.add_queries(asked.queries.iter().cloned());
    shape(&mut reply);
    reply.to_vec().unwrap()
}

fn with_code(code: ResponseCode, authoritative: bool) -> impl FnOnce(&mut Message) {
    move |m| {
        m.metadata.response_code = code;
        m.metadata.authoritative = authoritative;
    }
}

fn example() -> Vec<u8> {
    query("www.example.com", RecordType::A)
}

#[test]
fn noerror_replies_are_relayed_even_when_empty() {
    let q = example();
    let empty = upstream(&q, |_| {});
    assert_eq!(judge_reply(&q, &empty), Verdict::Relay(empty.clone()));
    let full = upstream(&q, |m| {
        let name = m.queries[0].name().clone();
        m.add_answer(Record::from_rdata(
            name,
            30,
            RData::A(A([192, 0, 2, 1].into())),
        ));
    });
    assert_eq!(judge_reply(&q, &full), Verdict::Relay(full.clone()));
}

#[test]
fn servfail_and_refused_try_the_next_server() {
    let q = example();
    let servfail = upstream(&q, with_code(ResponseCode::ServFail, false));
    assert_eq!(judge_reply(&q, &servfail), Verdict::TryNext(Skip::ServFail));
    let refused = upstream(&q, with_code(ResponseCode::Refused, true));
    assert_eq!(judge_reply(&q, &refused), Verdict::TryNext(Skip::Refused));
    let notimp = upstream(&q, with_code(ResponseCode::NotImp, false));
    assert_eq!(judge_reply(&q, &notimp), Verdict::TryNext(Skip::Rcode(4)));
}

#[test]
fn nxdomain_is_relayed_only_when_authoritative() {
    let q = example();
    let hearsay = upstream(&q, with_code(ResponseCode::NXDomain, false));
    assert_eq!(
        judge_reply(&q, &hearsay),
        Verdict::TryNext(Skip::UnauthoritativeNxDomain)
    );
    let authoritative = upstream(&q, with_code(ResponseCode::NXDomain, true));
    assert_eq!(
        judge_reply(&q, &authoritative),
        Verdict::Relay(authoritative.clone())
    );
}

#[test]
fn a_truncated_reply_is_relayed_as_is_even_cut_mid_record() {
    let q = example();
    let mut cut = upstream(&q, |m| {
        m.metadata.truncation = true;
        let name = m.queries[0].name().clone();
        m.add_answer(Record::from_rdata(
            name,
            30,
            RData::A(A([192, 0, 2, 1].into())),
        ));
    });
    cut.truncate(cut.len() - 3);
    assert_eq!(judge_reply(&q, &cut), Verdict::Relay(cut.clone()));
}

#[test]
fn replies_for_another_id_or_question_try_the_next_server() {
    let q = example();
    let mut other_id = upstream(&q, |_| {});
    other_id[1] ^= 0xff;
    assert_eq!(judge_reply(&q, &other_id), Verdict::TryNext(Skip::Mismatch));
    let other_question = upstream(&q, |m| {
        m.queries[0].set_query_type(RecordType::AAAA);
    });
    assert_eq!(
        judge_reply(&q, &other_question),
        Verdict::TryNext(Skip::Mismatch)
    );
    let no_question = upstream(&q, |m| m.queries.clear());
    assert_eq!(
        judge_reply(&q, &no_question),
        Verdict::TryNext(Skip::Mismatch)
    );
    assert_eq!(
        judge_reply(&q, &q),
        Verdict::TryNext(Skip::Mismatch),
        "a query is no reply"
    );
}

#[test]
fn a_question_echoed_in_another_case_still_matches() {
    let q = example();
    let shouted = upstream(&q, |m| {
        m.queries[0].set_name(Name::from_ascii("WWW.Example.COM.").unwrap());
    });
    assert_eq!(judge_reply(&q, &shouted), Verdict::Relay(shouted.clone()));
}

#[test]
fn unparsable_replies_try_the_next_server() {
    let q = example();
    assert_eq!(judge_reply(&q, b"\x42"), Verdict::TryNext(Skip::Unparsable));
    let mut junk = upstream(&q, |_| {});
    junk.extend_from_slice(&[0xc0]);
    junk[7] = 1; // claims one answer that is a lone byte
    assert_eq!(judge_reply(&q, &junk), Verdict::TryNext(Skip::Unparsable));
    assert_eq!(
        judge_reply(b"short", &junk),
        Verdict::TryNext(Skip::Unparsable)
    );
}

#[test]
fn servfail_and_refused_builders_echo_the_query() {
    let q = query_with("www.example.com", RecordType::AAAA, Some(1400));
    for (bytes, code) in [
        (servfail(&q), ResponseCode::ServFail),
        (refused(&q), ResponseCode::Refused),
    ] {
        let message = Message::from_vec(&bytes.unwrap()).unwrap();
        assert_eq!((message.id, message.response_code), (ID, code));
        assert_eq!(message.message_type, MessageType::Response);
        assert_eq!(message.queries[0].query_type(), RecordType::AAAA);
        assert!(message.edns.is_some() && message.recursion_desired);
    }
}

#[test]
fn servfail_is_none_for_bytes_that_get_no_reply() {
    assert_eq!(servfail(b"tiny"), None);
    let reply = upstream(&example(), |_| {});
    assert_eq!(refused(&reply), None, "never answer a response");
    let mut body_junk = example();
    body_junk.truncate(14);
    let message = Message::from_vec(&servfail(&body_junk).unwrap()).unwrap();
    assert_eq!((message.id, message.queries.len()), (ID, 0));
}
