//! Sealing and opening gossip datagrams, sans-IO: bytes in, a message or a drop reason out.
//!
//! Frame (all integers big-endian):
//! ```text
//! | version = 1 (1) | key id (4) | nonce (12) | ChaCha20-Poly1305( kind (1) | body ) | tag (16) |
//! ```
//! The version byte and key id are authenticated as associated data; the nonce is random
//! per datagram. `kind` 0 carries one whole serialised `ChitchatMessage`; `kind` 1 a
//! fragment of one that does not fit a datagram: `msg id (4) | index (1) | count (1) |
//! chunk` (see [`crate::frag`]). The primary key seals, every key of the ring may open.
//! Anything that does not open and parse becomes a [`DropReason`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chitchat::{ChitchatMessage, Deserializable, Serializable};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use weft_keys::{KeyId, Keyring, SymmetricKey};

use crate::frag::{Fragment, MAX_FRAGMENTS, Reassembly};

/// Frame format version (2: message payloads start with an encoding byte).
pub const FRAME_VERSION: u8 = 2;
/// Clear header: version, key id, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;
/// Largest UDP payload over IPv4, and so the largest frame we send or accept.
pub const MAX_DATAGRAM: usize = 65_507;
/// Bytes a frame adds to a chitchat message.
pub const OVERHEAD: usize = HEADER_LEN + 1 + TAG_LEN;
/// A message payload as serialised by chitchat.
const ENCODING_RAW: u8 = 0;
/// A message payload compressed with zstd: chitchat's digest, sent whole every round,
/// repeats addresses and generation stamps and shrinks several times.
const ENCODING_ZSTD: u8 = 1;
/// Largest message accepted once decompressed: what four full fragments can carry.
const MAX_MESSAGE: usize = MAX_CHUNK * MAX_FRAGMENTS as usize;
/// zstd level: the fastest, since this runs for every datagram.
const ZSTD_LEVEL: i32 = 1;
const KIND_WHOLE: u8 = 0;
const KIND_FRAGMENT: u8 = 1;
const FRAGMENT_HEADER: usize = 4 + 1 + 1;
/// Largest chunk one fragment carries.
pub const MAX_CHUNK: usize = MAX_DATAGRAM - OVERHEAD - FRAGMENT_HEADER;

/// Why a received datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than a header and a tag.
    Truncated,
    /// Longer than [`MAX_DATAGRAM`].
    Oversized,
    /// An unknown frame version.
    BadVersion,
    /// Sealed with a key id that is not in our ring.
    UnknownKey,
    /// The tag did not verify: forged, corrupted, or sealed under other bytes for that id.
    Authentication,
    /// Opened, but not a chitchat message we can parse.
    Malformed,
}

/// Why a message could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The sealed frame would exceed [`MAX_DATAGRAM`].
    Oversized { len: usize },
    /// The system random generator failed or the key was rejected.
    Crypto,
}

/// Datagram counters of one transport, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct TransportStats {
    datagrams_in: AtomicU64,
    bytes_in: AtomicU64,
    datagrams_out: AtomicU64,
    bytes_out: AtomicU64,
    send_oversized: AtomicU64,
    send_errors: AtomicU64,
    fragments_out: AtomicU64,
    fragments_in: AtomicU64,
    injected_loss: AtomicU64,
    truncated: AtomicU64,
    oversized: AtomicU64,
    bad_version: AtomicU64,
    unknown_key: AtomicU64,
    authentication: AtomicU64,
    malformed: AtomicU64,
}

/// A copy of [`TransportStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportCounters {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub send_oversized: u64,
    pub send_errors: u64,
    /// Fragments sent and received (a message too large for one datagram).
    pub fragments_out: u64,
    pub fragments_in: u64,
    /// Outgoing datagrams dropped by injected loss (fault injection, not counted in
    /// [`TransportCounters::dropped`]).
    #[serde(default)]
    pub dropped_injected: u64,
    pub dropped_truncated: u64,
    pub dropped_oversized: u64,
    pub dropped_bad_version: u64,
    pub dropped_unknown_key: u64,
    pub dropped_authentication: u64,
    pub dropped_malformed: u64,
}

impl TransportCounters {
    /// All received datagrams dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_truncated
            + self.dropped_oversized
            + self.dropped_bad_version
            + self.dropped_unknown_key
            + self.dropped_authentication
            + self.dropped_malformed
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl TransportStats {
    /// Counts a received datagram of `len` bytes (dropped or not).
    pub fn received(&self, len: usize) {
        add(&self.datagrams_in, 1);
        add(&self.bytes_in, len);
    }

    /// Counts a sent datagram of `len` bytes.
    pub fn sent(&self, len: usize) {
        add(&self.datagrams_out, 1);
        add(&self.bytes_out, len);
    }

    /// Counts fragments sent (`out`) or received.
    pub fn fragments(&self, out: bool, n: usize) {
        add(
            if out {
                &self.fragments_out
            } else {
                &self.fragments_in
            },
            n,
        );
    }

    /// Counts an outgoing datagram dropped by injected loss.
    pub fn injected_loss(&self) {
        add(&self.injected_loss, 1);
    }

    /// Counts a message that could not be sealed or sent.
    pub fn send_failed(&self, err: Option<SealError>) {
        match err {
            Some(SealError::Oversized { .. }) => add(&self.send_oversized, 1),
            _ => add(&self.send_errors, 1),
        }
    }

    /// Counts a dropped datagram by reason.
    pub fn dropped(&self, reason: DropReason) {
        let counter = match reason {
            DropReason::Truncated => &self.truncated,
            DropReason::Oversized => &self.oversized,
            DropReason::BadVersion => &self.bad_version,
            DropReason::UnknownKey => &self.unknown_key,
            DropReason::Authentication => &self.authentication,
            DropReason::Malformed => &self.malformed,
        };
        add(counter, 1);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TransportCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportCounters {
            datagrams_in: get(&self.datagrams_in),
            bytes_in: get(&self.bytes_in),
            datagrams_out: get(&self.datagrams_out),
            bytes_out: get(&self.bytes_out),
            send_oversized: get(&self.send_oversized),
            send_errors: get(&self.send_errors),
            fragments_out: get(&self.fragments_out),
            fragments_in: get(&self.fragments_in),
            dropped_injected: get(&self.injected_loss),
            dropped_truncated: get(&self.truncated),
            dropped_oversized: get(&self.oversized),
            dropped_bad_version: get(&self.bad_version),
            dropped_unknown_key: get(&self.unknown_key),
            dropped_authentication: get(&self.authentication),
            dropped_malformed: get(&self.malformed),
        }
    }
}

fn aead_key(key: &SymmetricKey) -> Option<LessSafeKey> {
    UnboundKey::new(&CHACHA20_POLY1305, key.material())
        .ok()
        .map(LessSafeKey::new)
}

fn header(key_id: KeyId, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = FRAME_VERSION;
    h[1..5].copy_from_slice(&key_id.0.to_be_bytes());
    h[5..].copy_from_slice(nonce);
    h
}

fn seal_plain(
    key: &SymmetricKey,
    plain: &[u8],
    rng: &dyn SecureRandom,
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    let len = HEADER_LEN + plain.len() + TAG_LEN;
    if len > MAX_DATAGRAM {
        return Err(SealError::Oversized { len });
    }
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| SealError::Crypto)?;
    let aead = aead_key(key).ok_or(SealError::Crypto)?;
    let head = header(key.id(), &nonce);
    let mut body = Vec::with_capacity(plain.len() + TAG_LEN);
    body.extend_from_slice(plain);
    aead.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&head[..5]),
        &mut body,
    )
    .map_err(|_| SealError::Crypto)?;
    out.clear();
    out.extend_from_slice(&head);
    out.extend_from_slice(&body);
    Ok(())
}

/// Seals a serialised payload whole (one frame of kind 0) into `out`.
pub fn seal_bytes(
    key: &SymmetricKey,
    payload: &[u8],
    rng: &dyn SecureRandom,
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    let mut plain = Vec::with_capacity(1 + payload.len());
    plain.push(KIND_WHOLE);
    plain.extend_from_slice(payload);
    seal_plain(key, &plain, rng, out)
}

/// Seals a payload as one whole frame, or as fragments of message `msg_id` when it does
/// not fit in one datagram.
pub fn seal_frames(
    key: &SymmetricKey,
    payload: &[u8],
    msg_id: u32,
    rng: &dyn SecureRandom,
) -> Result<Vec<Vec<u8>>, SealError> {
    let mut frame = Vec::new();
    if payload.len() + OVERHEAD <= MAX_DATAGRAM {
        seal_bytes(key, payload, rng, &mut frame)?;
        return Ok(vec![frame]);
    }
    let count = payload.len().div_ceil(MAX_CHUNK);
    let count = u8::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_FRAGMENTS)
        .ok_or(SealError::Oversized {
            len: payload.len() + OVERHEAD,
        })?;
    let mut frames = Vec::with_capacity(usize::from(count));
    for (index, chunk) in (0u8..).zip(payload.chunks(MAX_CHUNK)) {
        let mut plain = Vec::with_capacity(1 + FRAGMENT_HEADER + chunk.len());
        plain.push(KIND_FRAGMENT);
        plain.extend_from_slice(&msg_id.to_be_bytes());
        plain.extend_from_slice(&[index, count]);
        plain.extend_from_slice(chunk);
        seal_plain(key, &plain, rng, &mut frame)?;
        frames.push(std::mem::take(&mut frame));
    }
    Ok(frames)
}

/// Serialises, compresses when that makes it smaller, and seals a chitchat message under
/// the ring's primary key.
pub fn seal_message(
    ring: &Keyring,
    msg: &ChitchatMessage,
    msg_id: u32,
    rng: &dyn SecureRandom,
) -> Result<Vec<Vec<u8>>, SealError> {
    seal_message_with(ring, msg, msg_id, rng, true)
}

/// [`seal_message`], with compression chosen by the caller (tests of fragmentation need
/// payloads that stay large).
pub fn seal_message_with(
    ring: &Keyring,
    msg: &ChitchatMessage,
    msg_id: u32,
    rng: &dyn SecureRandom,
    compress: bool,
) -> Result<Vec<Vec<u8>>, SealError> {
    let mut plain = Vec::with_capacity(1 + msg.serialized_len());
    plain.push(ENCODING_RAW);
    msg.serialize(&mut plain);
    let packed = compress
        .then(|| zstd::bulk::compress(&plain[1..], ZSTD_LEVEL).ok())
        .flatten();
    if let Some(packed) = packed.filter(|p| p.len() + 1 < plain.len()) {
        plain.clear();
        plain.push(ENCODING_ZSTD);
        plain.extend_from_slice(&packed);
    }
    seal_frames(ring.primary(), &plain, msg_id, rng)
}

/// What one frame held once opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// A whole serialised message.
    Whole(Vec<u8>),
    /// A fragment of one.
    Fragment(Fragment),
}

/// Opens a frame with whichever ring key its id names.
pub fn open_frame(ring: &Keyring, datagram: &[u8]) -> Result<Opened, DropReason> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(DropReason::Oversized);
    }
    if datagram.len() < HEADER_LEN + 1 + TAG_LEN {
        return Err(DropReason::Truncated);
    }
    let (head, body) = datagram.split_at(HEADER_LEN);
    if head[0] != FRAME_VERSION {
        return Err(DropReason::BadVersion);
    }
    let id = KeyId(u32::from_be_bytes([head[1], head[2], head[3], head[4]]));
    let key = ring.get(id).ok_or(DropReason::UnknownKey)?;
    let aead = aead_key(key).ok_or(DropReason::UnknownKey)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&head[5..]);
    let mut buf = body.to_vec();
    let plain_len = aead
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&head[..5]),
            &mut buf,
        )
        .map_err(|_| DropReason::Authentication)?
        .len();
    buf.truncate(plain_len);
    parse_plain(buf)
}

fn parse_plain(mut buf: Vec<u8>) -> Result<Opened, DropReason> {
    match buf.first() {
        Some(&KIND_WHOLE) => {
            buf.remove(0);
            Ok(Opened::Whole(buf))
        }
        Some(&KIND_FRAGMENT) if buf.len() > 1 + FRAGMENT_HEADER => {
            let msg_id = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            let (index, count) = (buf[5], buf[6]);
            if !(2..=MAX_FRAGMENTS).contains(&count) || index >= count {
                return Err(DropReason::Malformed);
            }
            let chunk = buf.split_off(1 + FRAGMENT_HEADER);
            Ok(Opened::Fragment(Fragment {
                msg_id,
                index,
                count,
                chunk,
            }))
        }
        _ => Err(DropReason::Malformed),
    }
}

/// Decodes a message payload (its encoding byte, then the message, compressed or not)
/// and parses it. Decompression stops at [`MAX_MESSAGE`], so a small datagram cannot
/// expand into a large allocation.
pub fn decode_message(payload: &[u8]) -> Result<ChitchatMessage, DropReason> {
    match payload.split_first() {
        Some((&ENCODING_RAW, rest)) => parse_message(rest),
        Some((&ENCODING_ZSTD, rest)) => {
            let plain =
                zstd::bulk::decompress(rest, MAX_MESSAGE).map_err(|_| DropReason::Malformed)?;
            parse_message(&plain)
        }
        _ => Err(DropReason::Malformed),
    }
}

/// Parses a serialised chitchat message.
pub fn parse_message(plain: &[u8]) -> Result<ChitchatMessage, DropReason> {
    // chitchat's parser returns errors on bad input as far as we read it; catching a panic
    // too keeps an authenticated but hostile peer from killing the socket loop.
    std::panic::catch_unwind(|| ChitchatMessage::deserialize(&mut &plain[..]))
        .map_err(|_| DropReason::Malformed)?
        .map_err(|_| DropReason::Malformed)
}

/// Opens a whole-message frame and parses it (fragments are reported as malformed: use
/// a [`Receiver`] to reassemble them).
pub fn open_message(ring: &Keyring, datagram: &[u8]) -> Result<ChitchatMessage, DropReason> {
    match open_frame(ring, datagram)? {
        Opened::Whole(plain) => decode_message(&plain),
        Opened::Fragment(_) => Err(DropReason::Malformed),
    }
}

/// The receive side of one socket: opens frames, reassembles fragments, parses messages.
#[derive(Debug, Default)]
pub struct Receiver {
    reassembly: Reassembly,
}

impl Receiver {
    /// One datagram in; a message out when one is complete, `Ok(None)` while a fragmented
    /// message waits for the rest.
    pub fn receive(
        &mut self,
        ring: &Keyring,
        stats: &TransportStats,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Option<ChitchatMessage>, DropReason> {
        stats.received(datagram.len());
        let result = match open_frame(ring, datagram) {
            Ok(Opened::Whole(plain)) => decode_message(&plain).map(Some),
            Ok(Opened::Fragment(frag)) => {
                stats.fragments(false, 1);
                match self.reassembly.insert(from, frag, now) {
                    Ok(Some(plain)) => decode_message(&plain).map(Some),
                    Ok(None) => Ok(None),
                    Err(_) => Err(DropReason::Malformed),
                }
            }
            Err(reason) => Err(reason),
        };
        if let Err(reason) = result {
            stats.dropped(reason);
        }
        result
    }
}

#[cfg(test)]
mod tests;
