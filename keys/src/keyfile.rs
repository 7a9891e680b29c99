//! Keyrings on disk: one key per line, `<id> <64 hex digits>`, the primary first. The
//! file is written atomically (temporary file, fsync, rename) with mode 0600, and is
//! refused when anyone but its owner may read it.

use crate::{KEY_LEN, KeyId, Keyring, KeyringError, SymmetricKey};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A keyring file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("failed to read keyring file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write keyring file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keyring file {path}, line {line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("keyring file {path} has mode {mode:o}: others can read it; chmod 600 it")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("keyring file {path}: {source}")]
    Keyring { path: PathBuf, source: KeyringError },
}

/// Reads the keyring at `path`.
pub fn read_keyring(path: &Path) -> Result<Keyring, KeyFileError> {
    let read = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mode = fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(read)?);
    let mut keys = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let parse = |reason: &str| KeyFileError::Parse {
            path: path.to_owned(),
            line: i + 1,
            reason: reason.to_owned(),
        };
        let mut fields = line.split_whitespace();
        let (Some(id), Some(hex_key)) = (fields.next(), fields.next()) else {
            return Err(parse(
                "expected `<id> <64 hex digits> [<created, seconds since 1970>]`",
            ));
        };
        let id: u32 = id
            .parse()
            .map_err(|_| parse("the key id is not a number"))?;
        let mut material = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(hex_key, material.as_mut_slice())
            .map_err(|_| parse("the key is not 64 hex digits"))?;
        let created: u64 = match fields.next() {
            Some(t) => t
                .parse()
                .map_err(|_| parse("the creation time is not a number"))?,
            None => 0,
        };
        if fields.next().is_some() {
            return Err(parse("unexpected text after the creation time"));
        }
        keys.push(SymmetricKey::new(KeyId(id), *material).with_created(created));
    }
    let mut keys = keys.into_iter();
    let primary = keys.next().ok_or_else(|| KeyFileError::Parse {
        path: path.to_owned(),
        line: 1,
        reason: "no key".to_owned(),
    })?;
    let mut ring = Keyring::new(primary);
    for key in keys {
        ring.add(key).map_err(|source| KeyFileError::Keyring {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(ring)
}

/// Writes `ring` to `path` atomically, mode 0600, primary first.
pub fn write_keyring(path: &Path, ring: &Keyring) -> Result<(), KeyFileError> {
    let write = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut text = Zeroizing::new(String::new());
    let primary = ring.primary_id();
    let others = ring.ids().into_iter().filter(|id| *id != primary);
    for id in std::iter::once(primary).chain(others) {
        if let Some(key) = ring.get(id) {
            text.push_str(&format!("{} {}", id.0, hex::encode(key.material())));
            if let Some(created) = key.created_s() {
                text.push_str(&format!(" {created}"));
            }
            text.push('\n');
        }
    }
    write_atomic(path, text.as_bytes(), 0o600).map_err(write)
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename) with `mode`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    // A leftover temporary file keeps its old mode: set it explicitly.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// The mode of `path` when group or others may access it (the file is then refused).
pub(crate) fn exposed_mode(path: &Path) -> std::io::Result<Option<u32>> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// Writes a new keyring of [`crate::MAX_KEYS`] fresh keys (ids 1, 2, 3; 1 primary) to `path`,
/// as a cluster starts with: the spare keys are there for rotation.
pub fn create_full_keyring(path: &Path) -> Result<Keyring, KeyFileError> {
    let keyring_error = |source| KeyFileError::Keyring {
        path: path.to_owned(),
        source,
    };
    let mut ring = Keyring::new(SymmetricKey::generate(KeyId(1)).map_err(keyring_error)?);
    for id in 2..=crate::MAX_KEYS as u32 {
        ring.add(SymmetricKey::generate(KeyId(id)).map_err(keyring_error)?)
            .map_err(keyring_error)?;
    }
    write_keyring(path, &ring)?;
    Ok(ring)
}

/// The keyring at `path`, created with one fresh key when the file does not exist.
pub fn load_or_create(path: &Path) -> Result<Keyring, KeyFileError> {
    if path.exists() {
        return read_keyring(path);
    }
    let key = SymmetricKey::generate(KeyId(1)).map_err(|source| KeyFileError::Keyring {
        path: path.to_owned(),
        source,
    })?;
    let ring = Keyring::new(key);
    write_keyring(path, &ring)?;
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_primary_first_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let created = load_or_create(&path).unwrap();
        let mut ring = read_keyring(&path).unwrap();
        assert_eq!(ring.primary().material(), created.primary().material());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        ring.add(SymmetricKey::generate(KeyId(2)).unwrap()).unwrap();
        ring.set_primary(KeyId(2)).unwrap();
        write_keyring(&path, &ring).unwrap();
        let back = read_keyring(&path).unwrap();
        assert_eq!(back.primary_id(), KeyId(2));
        assert_eq!(back.ids().len(), 2);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("2 "), "primary first: {text}");
    }

    #[test]
    fn bad_files_are_errors_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        for (content, needle) in [
            ("", "no key"),
            ("1 abcd\n", "64 hex"),
            ("x 00\n", "not a number"),
            ("nokey\n", "expected"),
        ] {
            fs::write(&path, content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let e = read_keyring(&path).unwrap_err().to_string();
            assert!(e.contains(needle), "{content:?}: {e}");
        }
        fs::write(&path, format!("1 {}\n", "ab".repeat(32))).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_keyring(&path),
            Err(KeyFileError::Exposed { .. })
        ));
    }

    #[test]
    fn creation_times_round_trip_and_old_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let ring = create_full_keyring(&path).unwrap();
        assert_eq!(ring.ids().len(), crate::MAX_KEYS);
        let back = read_keyring(&path).unwrap();
        for id in back.ids() {
            assert!(
                back.get(id)
                    .unwrap()
                    .created_s()
                    .is_some_and(|t| t > 1_700_000_000)
            );
        }
        // A file without creation times (the first format) reads with unknown times.
        fs::write(&path, format!("1 {}\n", "ab".repeat(32))).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_keyring(&path).unwrap().primary().created_s(), None);
        fs::write(&path, format!("1 {} soon\n", "ab".repeat(32))).unwrap();
        assert!(
            read_keyring(&path)
                .unwrap_err()
                .to_string()
                .contains("creation time")
        );
    }
}
