//! weft-keys: the cluster's key material and the rules around it.
//!
//! - [`ca`]: the cluster certificate authority, node ids, node certificates and identities;
//! - [`token`]: join tokens (role, CA fingerprint, secret);
//! - [`keyring`]: the symmetric keyrings that seal gossip (and later the data path): at most
//!   three keys, one primary that seals, all of them open;
//! - [`keyfile`]: private key files, written atomically with mode 0600.
//!
//! This crate makes, checks and stores keys; it speaks no protocol (TLS is weft-rpc, sealing
//! gossip is weft-netdb). No key or secret ever appears in `Debug` output or in an error.
#![forbid(unsafe_code)]

pub mod ca;
pub mod keyfile;
pub mod keyring;
pub mod token;

pub use ca::{CaError, CaFingerprint, ClusterCa, NodeCert, NodeId, NodeIdentity, NodeKey};
pub use keyring::{KEY_LEN, KeyId, Keyring, KeyringError, MAX_KEYS, SymmetricKey};
pub use token::{ClusterTokens, JoinToken, Role, TokenError, TokenFileError};
