use std::net::SocketAddr;
use std::time::Instant;

use super::*;
use proptest::prelude::*;
use ring::rand::SystemRandom;
use weft_keys::SymmetricKey;

fn ring_with(id: u32, byte: u8) -> Keyring {
    Keyring::new(SymmetricKey::new(KeyId(id), [byte; 32]))
}

/// A SYN with an empty digest, built from its wire form (chitchat keeps `Digest` private).
fn syn(cluster: &str) -> ChitchatMessage {
    let mut bytes = vec![0x53, 0xb0, 0, 0, 0, 0];
    bytes.extend_from_slice(&(cluster.len() as u16).to_le_bytes());
    bytes.extend_from_slice(cluster.as_bytes());
    ChitchatMessage::deserialize(&mut &bytes[..]).unwrap()
}

fn sealed(ring: &Keyring, msg: &ChitchatMessage) -> Vec<u8> {
    let mut frames = seal_message(ring, msg, 1, &SystemRandom::new()).unwrap();
    assert_eq!(frames.len(), 1);
    frames.remove(0)
}

fn from() -> SocketAddr {
    ([127, 0, 0, 1], 9).into()
}

#[test]
fn sealed_message_opens_with_the_same_ring() {
    let ring = ring_with(1, 7);
    let frame = sealed(&ring, &syn("weft"));
    assert_eq!(frame[0], FRAME_VERSION);
    assert_eq!(&frame[1..5], &1u32.to_be_bytes());
    assert_eq!(open_message(&ring, &frame).unwrap(), syn("weft"));
}

#[test]
fn nonces_differ_between_datagrams() {
    let ring = ring_with(1, 7);
    let a = sealed(&ring, &syn("weft"));
    let b = sealed(&ring, &syn("weft"));
    assert_ne!(a, b);
    assert_ne!(&a[5..HEADER_LEN], &b[5..HEADER_LEN]);
}

#[test]
fn every_ring_key_opens_only_the_primary_seals() {
    let mut sender = ring_with(1, 7);
    sender.add(SymmetricKey::new(KeyId(2), [8; 32])).unwrap();
    let mut receiver = ring_with(2, 8);
    receiver.add(SymmetricKey::new(KeyId(1), [7; 32])).unwrap();
    let frame = sealed(&sender, &syn("weft"));
    assert_eq!(&frame[1..5], &1u32.to_be_bytes());
    assert!(open_message(&receiver, &frame).is_ok());
    sender.set_primary(KeyId(2)).unwrap();
    assert!(open_message(&receiver, &sealed(&sender, &syn("weft"))).is_ok());
}

#[test]
fn unknown_key_and_wrong_bytes_are_told_apart() {
    let frame = sealed(&ring_with(9, 7), &syn("weft"));
    assert_eq!(
        open_message(&ring_with(1, 7), &frame),
        Err(DropReason::UnknownKey)
    );
    assert_eq!(
        open_message(&ring_with(9, 6), &frame),
        Err(DropReason::Authentication)
    );
}

#[test]
fn header_is_authenticated() {
    let ring = ring_with(1, 7);
    let mut frame = sealed(&ring, &syn("weft"));
    frame[5] ^= 1;
    assert_eq!(open_message(&ring, &frame), Err(DropReason::Authentication));
}

#[test]
fn short_long_and_foreign_frames_are_dropped_by_reason() {
    let ring = ring_with(1, 7);
    let frame = sealed(&ring, &syn("weft"));
    assert_eq!(
        open_message(&ring, &frame[..OVERHEAD - 1]),
        Err(DropReason::Truncated)
    );
    assert_eq!(open_message(&ring, &[]), Err(DropReason::Truncated));
    assert_eq!(
        open_message(&ring, &vec![1u8; MAX_DATAGRAM + 1]),
        Err(DropReason::Oversized)
    );
    let mut other = frame.clone();
    other[0] = FRAME_VERSION + 1;
    assert_eq!(open_message(&ring, &other), Err(DropReason::BadVersion));
}

#[test]
fn sealed_garbage_is_malformed() {
    let ring = ring_with(1, 7);
    let mut frame = Vec::new();
    seal_bytes(
        ring.primary(),
        b"not chitchat",
        &SystemRandom::new(),
        &mut frame,
    )
    .unwrap();
    assert_eq!(open_message(&ring, &frame), Err(DropReason::Malformed));
}

#[test]
fn oversized_messages_are_refused_at_seal_time() {
    let ring = ring_with(1, 7);
    let mut out = Vec::new();
    let payload = vec![0u8; MAX_DATAGRAM - OVERHEAD + 1];
    let err = seal_bytes(ring.primary(), &payload, &SystemRandom::new(), &mut out);
    assert!(matches!(err, Err(SealError::Oversized { .. })));
    let payload = vec![0u8; MAX_DATAGRAM - OVERHEAD];
    seal_bytes(ring.primary(), &payload, &SystemRandom::new(), &mut out).unwrap();
    assert_eq!(out.len(), MAX_DATAGRAM);
}

#[test]
fn stats_count_by_reason() {
    let stats = TransportStats::default();
    stats.received(10);
    stats.dropped(DropReason::UnknownKey);
    stats.dropped(DropReason::Malformed);
    stats.sent(5);
    stats.send_failed(Some(SealError::Oversized { len: 70_000 }));
    let c = stats.snapshot();
    assert_eq!(
        (c.datagrams_in, c.bytes_in, c.datagrams_out, c.bytes_out),
        (1, 10, 1, 5)
    );
    assert_eq!(
        (c.dropped_unknown_key, c.dropped_malformed, c.dropped()),
        (1, 1, 2)
    );
    assert_eq!(c.send_oversized, 1);
}

fn count(stats: &TransportStats, ring: &Keyring, bytes: &[u8]) -> bool {
    let mut receiver = Receiver::default();
    matches!(
        receiver.receive(ring, stats, from(), bytes, Instant::now()),
        Ok(Some(_))
    )
}

#[test]
fn messages_too_large_for_a_datagram_travel_in_fragments() {
    let ring = ring_with(1, 7);
    let big = syn(&"c".repeat(65_500));
    let frames = seal_message_with(&ring, &big, 42, &SystemRandom::new(), false).unwrap();
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| f.len() <= MAX_DATAGRAM));
    let stats = TransportStats::default();
    let mut receiver = Receiver::default();
    let now = Instant::now();
    assert_eq!(
        receiver.receive(&ring, &stats, from(), &frames[1], now),
        Ok(None)
    );
    let got = receiver
        .receive(&ring, &stats, from(), &frames[0], now)
        .unwrap();
    assert_eq!(got, Some(big));
    let c = stats.snapshot();
    assert_eq!((c.fragments_in, c.dropped()), (2, 0));
    assert_eq!(open_message(&ring, &frames[0]), Err(DropReason::Malformed));
}

#[test]
fn payloads_beyond_four_fragments_are_refused() {
    let ring = ring_with(1, 7);
    let payload = vec![0u8; MAX_CHUNK * 4 + 1];
    let err = seal_frames(ring.primary(), &payload, 1, &SystemRandom::new());
    assert!(matches!(err, Err(SealError::Oversized { .. })));
    let ok = seal_frames(ring.primary(), &payload[1..], 1, &SystemRandom::new()).unwrap();
    assert_eq!(ok.len(), 4);
}

#[test]
fn bad_fragment_headers_are_malformed() {
    let ring = ring_with(1, 7);
    for header in [[0u8, 0, 0, 1, 0, 1], [0, 0, 0, 1, 2, 2], [0, 0, 0, 1, 0, 9]] {
        let mut plain = vec![KIND_FRAGMENT];
        plain.extend_from_slice(&header);
        plain.push(0xaa);
        let mut frame = Vec::new();
        seal_plain(ring.primary(), &plain, &SystemRandom::new(), &mut frame).unwrap();
        assert_eq!(
            open_frame(&ring, &frame),
            Err(DropReason::Malformed),
            "{header:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_and_are_counted(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let ring = ring_with(1, 7);
        let stats = TransportStats::default();
        let accepted = count(&stats, &ring, &bytes);
        let c = stats.snapshot();
        prop_assert!(!accepted);
        prop_assert_eq!(c.dropped(), 1);
    }

    #[test]
    fn mutated_valid_datagrams_never_panic_and_are_counted(
        cut in 0usize..200,
        flips in proptest::collection::vec((0usize..200, 1u8..=255), 1..4),
    ) {
        let ring = ring_with(1, 7);
        let mut frame = sealed(&ring, &syn("weft-cluster"));
        for (at, mask) in flips {
            let at = at % frame.len();
            frame[at] ^= mask;
        }
        frame.truncate(frame.len().saturating_sub(cut % 8));
        let stats = TransportStats::default();
        let accepted = count(&stats, &ring, &frame);
        prop_assert!(!accepted);
        prop_assert_eq!(stats.snapshot().dropped(), 1);
    }

    #[test]
    fn authenticated_garbage_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let ring = ring_with(1, 7);
        let mut frame = Vec::new();
        seal_bytes(ring.primary(), &payload, &SystemRandom::new(), &mut frame).unwrap();
        let stats = TransportStats::default();
        let accepted = count(&stats, &ring, &frame);
        let c = stats.snapshot();
        prop_assert_eq!(u64::from(!accepted), c.dropped_malformed);
    }

    #[test]
    fn authenticated_fragments_never_panic(
        frags in proptest::collection::vec((any::<u32>(), 0u8..6, 0u8..6, proptest::collection::vec(any::<u8>(), 0..64)), 1..12),
    ) {
        let ring = ring_with(1, 7);
        let stats = TransportStats::default();
        let mut receiver = Receiver::default();
        for (id, index, count, chunk) in frags {
            let mut plain = vec![KIND_FRAGMENT];
            plain.extend_from_slice(&(id % 3).to_be_bytes());
            plain.extend_from_slice(&[index, count]);
            plain.extend_from_slice(&chunk);
            let mut frame = Vec::new();
            seal_plain(ring.primary(), &plain, &SystemRandom::new(), &mut frame).unwrap();
            let _ = receiver.receive(&ring, &stats, from(), &frame, Instant::now());
        }
    }

    #[test]
    fn authenticated_chitchat_prefixed_garbage_never_panics(
        kind in 0u8..5,
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let ring = ring_with(1, 7);
        let mut payload = vec![ENCODING_RAW, 0x53, 0xb0, 0, kind];
        payload.extend_from_slice(&tail);
        let mut frame = Vec::new();
        seal_bytes(ring.primary(), &payload, &SystemRandom::new(), &mut frame).unwrap();
        let stats = TransportStats::default();
        let _ = count(&stats, &ring, &frame);
    }

    #[test]
    fn authenticated_compressed_garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let ring = ring_with(1, 7);
        let mut payload = vec![ENCODING_ZSTD];
        payload.extend_from_slice(&tail);
        let mut frame = Vec::new();
        seal_bytes(ring.primary(), &payload, &SystemRandom::new(), &mut frame).unwrap();
        let stats = TransportStats::default();
        let _ = count(&stats, &ring, &frame);
    }
}

#[test]
fn repetitive_messages_are_compressed_and_open_again() {
    let ring = ring_with(1, 7);
    let msg = syn(&"weft-cluster-".repeat(2000));
    let frames = seal_message(&ring, &msg, 1, &SystemRandom::new()).unwrap();
    assert_eq!(frames.len(), 1);
    assert!(
        frames[0].len() < 2000,
        "compressed to {} bytes",
        frames[0].len()
    );
    assert_eq!(open_message(&ring, &frames[0]).unwrap(), msg);
}

#[test]
fn a_decompression_bomb_is_dropped() {
    let ring = ring_with(1, 7);
    // 1 MiB of zeros compresses to a few bytes but expands past the message limit.
    let mut payload = vec![ENCODING_ZSTD];
    payload.extend_from_slice(&zstd::bulk::compress(&vec![0u8; 1 << 20], 1).unwrap());
    let mut frame = Vec::new();
    seal_bytes(ring.primary(), &payload, &SystemRandom::new(), &mut frame).unwrap();
    assert_eq!(open_message(&ring, &frame), Err(DropReason::Malformed));
}
