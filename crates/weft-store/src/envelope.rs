//! The bytes stored for one record: `[version: u64 LE][crc32: u32 LE][payload]`, where the
//! payload is the record's `weft_types::wire` encoding and the checksum covers the version
//! bytes and the payload (so a flipped bit in the version is caught too).
//!
//! This module only frames bytes; it knows nothing of record types or of sled.

/// Length of the header before the payload.
pub(crate) const HEADER_LEN: usize = 12;

/// Frames `payload` with its version and checksum.
pub(crate) fn seal(version: u64, payload: &[u8]) -> Vec<u8> {
    let version = version.to_le_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&version);
    out.extend_from_slice(&checksum(&version, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks the frame and returns the version and the payload, or why the bytes are not a
/// valid frame.
pub(crate) fn open(bytes: &[u8]) -> Result<(u64, &[u8]), String> {
    let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(format!(
            "value is {} bytes long, shorter than the {HEADER_LEN}-byte envelope header",
            bytes.len()
        ));
    };
    let (version_bytes, crc_bytes) = header.split_at(8);
    let mut version = [0u8; 8];
    version.copy_from_slice(version_bytes);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(crc_bytes);
    let stored = u32::from_le_bytes(crc);
    let computed = checksum(&version, payload);
    if stored != computed {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    match u64::from_le_bytes(version) {
        0 => Err("version 0 is never written".to_owned()),
        v => Ok((v, payload)),
    }
}

fn checksum(version: &[u8; 8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(version);
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sealed = seal(7, b"hello");
        assert_eq!(sealed.len(), HEADER_LEN + 5);
        assert_eq!(open(&sealed).unwrap(), (7, &b"hello"[..]));
        assert_eq!(open(&seal(1, b"")).unwrap(), (1, &b""[..]));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let sealed = seal(3, b"some payload");
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[byte] ^= 1 << bit;
                assert!(open(&bad).is_err(), "flip of bit {bit} in byte {byte}");
            }
        }
    }

    #[test]
    fn truncation_is_detected() {
        let sealed = seal(3, b"some payload");
        for len in 0..sealed.len() {
            let err = open(&sealed[..len]).unwrap_err();
            if len < HEADER_LEN {
                assert!(err.contains("shorter than"), "{err}");
            } else {
                assert!(err.contains("checksum mismatch"), "{err}");
            }
        }
    }

    #[test]
    fn version_zero_is_refused() {
        let err = open(&seal(0, b"x")).unwrap_err();
        assert!(err.contains("version 0"), "{err}");
    }
}
