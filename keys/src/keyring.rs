//! A keyring of up to [`MAX_KEYS`] symmetric 32-byte keys, one of them primary.
//!
//! Like memberlist's and Docker's gossip keyring: the primary key seals, every key in the
//! ring may open. Rotation is add (install for receiving), set primary (start sealing with
//! it), remove the old one; the primary can never be removed, so a keyring is never empty.
//! Key material is zeroized on drop and never printed by `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Length of a key in bytes (ChaCha20-Poly1305 and AES-256 keys).
pub const KEY_LEN: usize = 32;
/// Most keys a keyring holds: the primary, the next one and the previous one.
pub const MAX_KEYS: usize = 3;

/// Identifies a key in a keyring; it travels in the clear in front of sealed datagrams.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a keyring operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    /// The ring already holds [`MAX_KEYS`] keys.
    #[error("failed to add key {id}: the keyring already holds {MAX_KEYS} keys")]
    Full { id: KeyId },
    /// A key with that id is already in the ring.
    #[error("failed to add key {id}: a key with that id is already in the keyring")]
    DuplicateId { id: KeyId },
    /// No key with that id is in the ring.
    #[error("key {id} is not in the keyring")]
    UnknownKey { id: KeyId },
    /// The primary key cannot be removed: make another key primary first.
    #[error("failed to remove key {id}: it is the primary key, make another key primary first")]
    RemovePrimary { id: KeyId },
    /// The system random generator failed.
    #[error("failed to generate key {id}: the system random generator failed")]
    Random { id: KeyId },
}

/// A 32-byte symmetric key with its id; the bytes are zeroized when dropped.
#[derive(Clone)]
pub struct SymmetricKey {
    id: KeyId,
    material: Zeroizing<[u8; KEY_LEN]>,
    /// When the key was made, in seconds since the Unix epoch; 0 when unknown.
    created_s: u64,
}

impl SymmetricKey {
    /// A key from given bytes.
    pub fn new(id: KeyId, material: [u8; KEY_LEN]) -> Self {
        SymmetricKey {
            id,
            material: Zeroizing::new(material),
            created_s: 0,
        }
    }

    /// The same key, recorded as made at `created_s` (seconds since the Unix epoch).
    pub fn with_created(mut self, created_s: u64) -> Self {
        self.created_s = created_s;
        self
    }

    /// When the key was made (seconds since the Unix epoch), if known.
    pub fn created_s(&self) -> Option<u64> {
        (self.created_s > 0).then_some(self.created_s)
    }

    /// A fresh key from the system random generator.
    pub fn generate(id: KeyId) -> Result<Self, KeyringError> {
        let mut material = Zeroizing::new([0u8; KEY_LEN]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut material[..])
            .map_err(|_| KeyringError::Random { id })?;
        let created_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(SymmetricKey {
            id,
            material,
            created_s,
        })
    }

    /// This key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key bytes, for the code that seals and opens with them.
    pub fn material(&self) -> &[u8; KEY_LEN] {
        &self.material
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SymmetricKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Up to [`MAX_KEYS`] keys, exactly one of which is primary.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<SymmetricKey>,
    primary: KeyId,
}

impl Keyring {
    /// A keyring holding one key, which is primary.
    pub fn new(primary: SymmetricKey) -> Self {
        let id = primary.id;
        Keyring {
            keys: vec![primary],
            primary: id,
        }
    }

    /// Installs a key for opening; it does not seal until made primary.
    pub fn add(&mut self, key: SymmetricKey) -> Result<(), KeyringError> {
        if self.get(key.id).is_some() {
            return Err(KeyringError::DuplicateId { id: key.id });
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyringError::Full { id: key.id });
        }
        self.keys.push(key);
        Ok(())
    }

    /// Makes an installed key the one that seals.
    pub fn set_primary(&mut self, id: KeyId) -> Result<(), KeyringError> {
        if self.get(id).is_none() {
            return Err(KeyringError::UnknownKey { id });
        }
        self.primary = id;
        Ok(())
    }

    /// Removes a key that is not primary; its bytes are zeroized.
    pub fn remove(&mut self, id: KeyId) -> Result<(), KeyringError> {
        if id == self.primary {
            return Err(KeyringError::RemovePrimary { id });
        }
        let before = self.keys.len();
        self.keys.retain(|k| k.id != id);
        if self.keys.len() == before {
            return Err(KeyringError::UnknownKey { id });
        }
        Ok(())
    }

    /// The key that seals.
    pub fn primary(&self) -> &SymmetricKey {
        // The invariant "primary is in keys" is kept by every mutator; fall back to the
        // first key rather than panic should it ever be broken.
        self.get(self.primary).unwrap_or(&self.keys[0])
    }

    /// The id of the key that seals.
    pub fn primary_id(&self) -> KeyId {
        self.primary
    }

    /// The key with that id, if installed.
    pub fn get(&self, id: KeyId) -> Option<&SymmetricKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The ids of all installed keys, in installation order.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// Number of installed keys (1 to [`MAX_KEYS`]).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring holds at least its primary key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids())
            .field("primary", &self.primary)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> SymmetricKey {
        SymmetricKey::new(KeyId(id), [id as u8; KEY_LEN])
    }

    #[test]
    fn new_ring_has_its_key_as_primary() {
        let ring = Keyring::new(key(7));
        assert_eq!(ring.primary_id(), KeyId(7));
        assert_eq!(ring.primary().material(), &[7u8; KEY_LEN]);
        assert_eq!(ring.ids(), vec![KeyId(7)]);
        assert_eq!(ring.len(), 1);
        assert!(!ring.is_empty());
    }

    #[test]
    fn holds_at_most_three_keys() {
        let mut ring = Keyring::new(key(1));
        ring.add(key(2)).unwrap();
        ring.add(key(3)).unwrap();
        assert_eq!(ring.add(key(4)), Err(KeyringError::Full { id: KeyId(4) }));
        assert_eq!(ring.len(), MAX_KEYS);
    }

    #[test]
    fn refuses_duplicate_ids() {
        let mut ring = Keyring::new(key(1));
        assert_eq!(
            ring.add(key(1)),
            Err(KeyringError::DuplicateId { id: KeyId(1) })
        );
    }

    #[test]
    fn set_primary_needs_an_installed_key() {
        let mut ring = Keyring::new(key(1));
        assert_eq!(
            ring.set_primary(KeyId(2)),
            Err(KeyringError::UnknownKey { id: KeyId(2) })
        );
        ring.add(key(2)).unwrap();
        ring.set_primary(KeyId(2)).unwrap();
        assert_eq!(ring.primary().id(), KeyId(2));
    }

    #[test]
    fn never_removes_the_primary() {
        let mut ring = Keyring::new(key(1));
        assert_eq!(
            ring.remove(KeyId(1)),
            Err(KeyringError::RemovePrimary { id: KeyId(1) })
        );
        assert_eq!(
            ring.remove(KeyId(9)),
            Err(KeyringError::UnknownKey { id: KeyId(9) })
        );
    }

    #[test]
    fn full_rotation_add_switch_remove() {
        let mut ring = Keyring::new(key(1));
        ring.add(key(2)).unwrap();
        ring.set_primary(KeyId(2)).unwrap();
        ring.remove(KeyId(1)).unwrap();
        assert_eq!(ring.ids(), vec![KeyId(2)]);
        assert!(ring.get(KeyId(1)).is_none());
        ring.add(key(3)).unwrap();
        assert_eq!(ring.ids(), vec![KeyId(2), KeyId(3)]);
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let secret = SymmetricKey::new(KeyId(5), [0xab; KEY_LEN]);
        let mut ring = Keyring::new(secret.clone());
        ring.add(key(6)).unwrap();
        for text in [
            format!("{secret:?}"),
            format!("{ring:?}"),
            format!("{ring:#?}"),
        ] {
            assert!(!text.contains("171"), "{text}");
            assert!(!text.to_lowercase().contains("ab, ab"), "{text}");
            assert!(!text.contains("material"), "{text}");
        }
        assert!(format!("{ring:?}").contains("primary: KeyId(5)"));
    }

    #[test]
    fn generated_keys_are_random() {
        let a = SymmetricKey::generate(KeyId(1)).unwrap();
        let b = SymmetricKey::generate(KeyId(2)).unwrap();
        assert_ne!(a.material(), b.material());
        assert_eq!(a.id(), KeyId(1));
    }
}
