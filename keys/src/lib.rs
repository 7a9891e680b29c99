//! weft-keys: the symmetric keyrings that seal gossip (and later the data path).
//!
//! This crate holds key material and the rules of a keyring (at most three keys, one
//! primary that seals, all of them open). It does no cryptography of its own beyond
//! generating random keys: the sealing transport lives in weft-netdb. Keyrings are stored in
//! private files ([`keyfile`]). Cluster CA, node certificates and join tokens come later.
#![forbid(unsafe_code)]

pub mod keyfile;
pub mod keyring;

pub use keyring::{KEY_LEN, KeyId, Keyring, KeyringError, MAX_KEYS, SymmetricKey};
