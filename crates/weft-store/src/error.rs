//! The one error type of the store. Every variant names the object or the path it is about.

use crate::txn::Expect;
use std::path::PathBuf;

/// What can go wrong opening, reading or committing to a [`crate::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store directory could not be created.
    #[error("failed to create store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// sled refused to open the directory (locked by another process, unreadable, damaged).
    #[error("failed to open store at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// The directory holds something, but not a weft store.
    #[error("{path} is not a weft store: {reason}")]
    NotAStore { path: PathBuf, reason: String },
    /// The store was written by a newer weft whose format this build cannot read.
    #[error(
        "store at {path} has format {found}, this build reads format {supported} or older: upgrade weft"
    )]
    NewerFormat {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    /// A stored record cannot be read: bad checksum, truncated, another schema, undecodable.
    /// An operator can find it with `list_raw_keys` and delete it with `remove_corrupt`.
    #[error("record {kind}/{key} is corrupt: {reason}")]
    Corrupt {
        kind: String,
        key: String,
        reason: String,
    },
    /// An expectation of a transaction did not hold; nothing of the transaction was written.
    #[error("record {kind}/{key} has changed: expected {expected}, found {}", describe_found(*.found))]
    Conflict {
        kind: String,
        key: String,
        expected: Expect,
        /// The version found, `None` when the record is absent.
        found: Option<u64>,
    },
    /// A record could not be encoded (for instance it is over the size limit).
    #[error("failed to encode record {kind}/{key}: {source}")]
    Encode {
        kind: String,
        key: String,
        source: weft_types::wire::WireError,
    },
    /// A kind or key that cannot name a record (empty, or a kind containing '/').
    #[error("invalid record name {kind}/{key}: {reason}")]
    InvalidName {
        kind: String,
        key: String,
        reason: &'static str,
    },
    /// The filesystem of the store is full: commits are refused (removals excepted, while
    /// the space reserve lasts) until space is freed, then the store recovers by itself.
    #[error(
        "the filesystem of the data directory is full ({path}): free space, weft retries by itself"
    )]
    Full { path: PathBuf },
    /// An earlier write failed and the store could not be reopened yet; the next call
    /// tries again.
    #[error("the store at {path} cannot be written ({reason}): weft retries by itself")]
    Unavailable { path: PathBuf, reason: String },
    /// sled failed while doing `op` (I/O error, reported corruption of its own files).
    #[error("store operation {op} failed: {source}")]
    Storage {
        op: &'static str,
        source: sled::Error,
    },
}

fn describe_found(found: Option<u64>) -> String {
    match found {
        Some(v) => format!("version {v}"),
        None => "no record".to_owned(),
    }
}

impl StoreError {
    /// A closure mapping a sled error of operation `op` to [`StoreError::Storage`].
    pub(crate) fn storage(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
        move |source| StoreError::Storage { op, source }
    }

    /// True for [`StoreError::Conflict`]: the caller may re-read and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// True for [`StoreError::Full`] and [`StoreError::Unavailable`]: the store cannot be
    /// written now and recovers by itself once the cause is gone.
    pub fn is_unwritable(&self) -> bool {
        matches!(
            self,
            StoreError::Full { .. } | StoreError::Unavailable { .. }
        )
    }

    /// True for [`StoreError::Corrupt`]: an operator has to repair the record.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}
