//! Bytes that are not a well-formed query: dropped or answered with an error, never a panic.

use super::*;
use crate::{Outcome, judge_reply, refused, servfail};
use hickory_proto::op::ResponseCode;
use rand::Rng;

fn a_network() -> (Directory, SandboxView) {
    let mut dir = Directory::new();
    let mut r = record("web", &["10.0.1.2", "fd00::2"]);
    r.aliases = vec!["front-door".parse().unwrap()];
    r.service = Some("svc".parse().unwrap());
    dir.insert(&net(1), "e1", "n", r);
    (dir, view(&[(1, "front", false)]))
}

#[test]
fn too_short_or_response_bytes_are_dropped() {
    let (dir, v) = a_network();
    for bytes in [&[][..], &[0x42; 11][..]] {
        let resolution = ask(&dir, &v, bytes, Transport::Udp);
        assert_eq!(
            (resolution.action, resolution.outcome),
            (Action::Drop, Outcome::Garbage)
        );
    }
    let mut response = query("web", RecordType::A);
    response[2] |= 0x80;
    assert_eq!(
        ask(&dir, &v, &response, Transport::Udp).action,
        Action::Drop
    );
}

#[test]
fn a_header_with_an_unparsable_body_gets_formerr_with_its_id() {
    let (dir, v) = a_network();
    let mut bytes = query("web", RecordType::A);
    bytes.truncate(15);
    let resolution = ask(&dir, &v, &bytes, Transport::Udp);
    assert_eq!(resolution.outcome, Outcome::Malformed);
    let message = reply(&resolution);
    assert_eq!(
        (message.id, message.response_code),
        (ID, ResponseCode::FormErr)
    );
}

#[test]
fn zero_or_two_questions_get_formerr() {
    let (dir, v) = a_network();
    let mut none = Message::from_vec(&query("web", RecordType::A)).unwrap();
    none.queries.clear();
    let mut two = Message::from_vec(&query("web", RecordType::A)).unwrap();
    two.add_query(two.queries[0].clone());
    for message in [none, two] {
        let resolution = ask(&dir, &v, &message.to_vec().unwrap(), Transport::Udp);
        assert_eq!(resolution.outcome, Outcome::Malformed);
        assert_eq!(reply(&resolution).response_code, ResponseCode::FormErr);
    }
}

#[test]
fn opcodes_other_than_query_get_notimp() {
    let (dir, v) = a_network();
    for opcode in [1u8, 2, 4, 5, 15] {
        let mut bytes = query("web", RecordType::A);
        bytes[2] = (bytes[2] & 0x87) | (opcode << 3);
        let resolution = ask(&dir, &v, &bytes, Transport::Udp);
        assert_eq!(
            resolution.outcome,
            Outcome::NotImplemented,
            "opcode {opcode}"
        );
        let message = reply(&resolution);
        assert_eq!(
            (message.id, message.response_code),
            (ID, ResponseCode::NotImp)
        );
    }
}

/// Valid queries to mutate: every kind of question the resolver treats differently.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        query("web", RecordType::A),
        query_with("front-door.front", RecordType::AAAA, Some(4096)),
        query("tasks.svc", RecordType::A),
        query("2.1.0.10.in-addr.arpa", RecordType::PTR),
        query("example.com", RecordType::MX),
    ]
}

/// Random bytes, random truncations and random byte flips of valid queries.
fn junk(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let seed = &seeds[rng.random_range(0..seeds.len())];
    match rng.random_range(0..3) {
        0 => {
            let len = rng.random_range(0..600);
            (0..len).map(|_| rng.random()).collect()
        }
        1 => seed[..rng.random_range(0..=seed.len())].to_vec(),
        _ => {
            let mut bytes = seed.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            bytes
        }
    }
}

#[test]
fn thousands_of_random_and_truncated_inputs_never_panic() {
    let (dir, v) = a_network();
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..4000 {
        let bytes = junk(&mut rng, &seeds);
        for transport in [Transport::Udp, Transport::Tcp] {
            let resolution = resolve(&dir, &v, &bytes, transport, &mut rng);
            if let Action::Answer(answer) = &resolution.action {
                assert_eq!(answer[..2], bytes[..2], "the reply keeps the query id");
                assert!(answer.len() <= 65_535);
            }
            assert_ne!(resolution.outcome, crate::Outcome::Failed, "{bytes:?}");
        }
        let _ = judge_reply(&seeds[0], &bytes);
        let _ = judge_reply(&bytes, &seeds[0]);
        let _ = servfail(&bytes);
        let _ = refused(&bytes);
    }
}
