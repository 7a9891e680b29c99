//! The store handle: opening and format checks, typed reads, atomic flushed commits, and
//! the raw operations an operator needs to repair a corrupt record.

use crate::envelope;
use crate::error::StoreError;
use crate::recovery::{Shared, StoreHealth, Undo, WriteError, is_full_io};
use crate::reserve;
use crate::txn::{Action, Op, Txn};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use weft_types::record::Record;
use weft_types::wire::decode_record;

/// The store format this build writes and the newest it reads.
pub const FORMAT: u64 = 1;
/// Key of the format marker in sled's default tree.
const FORMAT_KEY: &[u8] = b"meta/format";
/// The sled tree holding the records.
const OBJECTS_TREE: &[u8] = b"objects";
/// sled's page cache size: our data is small metadata.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// Files sled creates in its directory; a non-empty directory with none of them is not ours.
const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];

/// A record read from the store with the version it is stored at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<R> {
    /// 1 after the first put, incremented by every put.
    pub version: u64,
    /// The decoded record.
    pub value: R,
}

/// A handle on an open store; clones share the same database and are cheap.
///
/// Every method blocks on disk I/O (a commit waits for an fsync): call them off an actor's
/// or an async runtime's thread (`spawn_blocking`, a sync arbiter).
///
/// After a failed write (a full disk) the store refuses writes until it has reopened the
/// database, which the next commit or [`Store::health`] does once there is room again;
/// see the `recovery` module.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path())
            .finish_non_exhaustive()
    }
}

/// The open database and its records tree; clones are cheap.
#[derive(Clone)]
pub(crate) struct Handles {
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
}

impl std::fmt::Debug for Handles {
    // sled's own Debug prints every entry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handles")
    }
}

impl Store {
    /// Opens the store in `dir`, creating the directory and an empty store if needed.
    ///
    /// Fails, without panicking, if the directory holds something else than a weft store,
    /// a store of a newer format, or a store another process has open.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let existing = check_directory(dir)?;
        // sled writes a snapshot as it opens: on a full disk, the reserve makes room.
        let mut reserve_released = false;
        let db = match open_sled(dir) {
            Err(StoreError::Full { .. }) if reserve::release(dir) => {
                reserve_released = true;
                tracing::warn!(path = %dir.display(), "disk full: released the space reserve to open the store");
                open_sled(dir)?
            }
            opened => opened?,
        };
        check_format(&db, dir, existing)?;
        let tree = db
            .open_tree(OBJECTS_TREE)
            .map_err(StoreError::storage("open objects tree"))?;
        let reserve_released = reserve_released || !reserve::ensure(dir);
        let handles = Handles { db, tree };
        Ok(Store {
            shared: Arc::new(Shared::new(dir.to_owned(), handles, reserve_released)),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        self.shared.path()
    }

    /// Whether commits go through now. If an earlier write failed, first tries to reopen
    /// the database (when there is room again), so a readiness probe also heals the store.
    pub fn health(&self) -> StoreHealth {
        self.shared.health()
    }

    /// Bytes the store's files take on disk (sled amplifies space, often twice the data).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.shared
            .handles()?
            .db
            .size_on_disk()
            .map_err(StoreError::storage("size on disk"))
    }

    /// The `R` record under `key`, with its version, or `None` if there is none.
    pub fn get<R: Record>(&self, key: &str) -> Result<Option<Versioned<R>>, StoreError> {
        check_name(R::KIND, key)?;
        let full = full_key(R::KIND, key);
        match self.shared.handles()?.tree.get(full.as_bytes()) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => decode::<R>(key, &bytes).map(Some),
            Err(e) => Err(StoreError::Storage {
                op: "get",
                source: e,
            }),
        }
    }

    /// Every `R` record, in key order. The first unreadable one fails the whole listing
    /// with [`StoreError::Corrupt`] naming it.
    pub fn list<R: Record>(&self) -> Result<Vec<Versioned<R>>, StoreError> {
        check_kind(R::KIND)?;
        let prefix = kind_prefix(R::KIND);
        let mut out = Vec::new();
        for entry in self.shared.handles()?.tree.scan_prefix(prefix.as_bytes()) {
            let (k, bytes) = entry.map_err(StoreError::storage("list"))?;
            let key = key_suffix(&k, prefix.len());
            out.push(decode::<R>(&key, &bytes)?);
        }
        Ok(out)
    }

    /// The keys stored under `kind`, without reading the values: lets an operator tool
    /// walk a kind, `get` each key, and find the corrupt ones.
    pub fn list_raw_keys(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        check_kind(kind)?;
        let prefix = kind_prefix(kind);
        self.shared
            .handles()?
            .tree
            .scan_prefix(prefix.as_bytes())
            .keys()
            .map(|k| {
                k.map(|k| key_suffix(&k, prefix.len()))
                    .map_err(StoreError::storage("list raw keys"))
            })
            .collect()
    }

    /// Removes whatever is stored under `kind/key` without decoding it, and flushes.
    /// This is explicit repair for records [`Store::get`] reports corrupt; returns whether
    /// something was removed.
    pub fn remove_corrupt(&self, kind: &str, key: &str) -> Result<bool, StoreError> {
        check_name(kind, key)?;
        let full = full_key(kind, key);
        let removed = self.shared.write(true, |h| {
            let storage = |source, before| WriteError::Storage {
                source,
                undo: vec![Undo {
                    key: full.as_bytes().to_vec(),
                    before,
                }],
            };
            let removed = h
                .tree
                .remove(full.as_bytes())
                .map_err(|e| storage(e, None))?;
            match h.db.flush() {
                Ok(_) => Ok(removed),
                Err(e) => Err(storage(e, removed)),
            }
        })?;
        if removed.is_some() {
            tracing::warn!(kind, key, "removed a record on operator request");
        }
        Ok(removed.is_some())
    }

    /// Checks every expectation of `txn` and applies all its operations in one sled
    /// transaction, then flushes to disk before returning. Returns the new version of each
    /// operation in order (0 for a delete).
    ///
    /// On a failed expectation it returns [`StoreError::Conflict`] and writes nothing.
    /// Existing records are checked for integrity (checksum), so a commit never silently
    /// overwrites a corrupt record: remove it with [`Store::remove_corrupt`] first.
    pub fn commit(&self, txn: Txn) -> Result<Vec<u64>, StoreError> {
        if txn.is_empty() {
            return Ok(Vec::new());
        }
        let versions = self
            .shared
            .write(txn.teardown, |h| self.commit_once(h, &txn))?;
        tracing::trace!(ops = versions.len(), "committed");
        Ok(versions)
    }

    /// One transaction and its flush, recording what it may change for a roll-back.
    fn commit_once(&self, h: &Handles, txn: &Txn) -> Result<Vec<u64>, WriteError> {
        let undo = RefCell::new(Vec::new());
        let applied = h.tree.transaction(|tx| {
            // sled runs the closure again after a conflict: keep the last run only.
            let mut undo = undo.borrow_mut();
            undo.clear();
            apply(tx, &txn.ops, &mut undo)
        });
        let storage = |source| WriteError::Storage {
            source,
            undo: undo.borrow().clone(),
        };
        let versions = applied.map_err(|e| match e {
            TransactionError::Abort(e) => WriteError::Refused(e),
            TransactionError::Storage(source) => storage(source),
        })?;
        self.flush(h).map_err(storage)?;
        Ok(versions)
    }

    fn flush(&self, h: &Handles) -> Result<(), sled::Error> {
        #[cfg(test)]
        if self
            .shared
            .faults
            .fail_next_flush
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(sled::Error::Io(std::io::Error::from(
                std::io::ErrorKind::StorageFull,
            )));
        }
        h.db.flush().map(drop)
    }
}

/// Opens the database of an existing store again, after a failed write.
pub(crate) fn open_handles(dir: &Path) -> Result<Handles, StoreError> {
    let db = open_sled(dir)?;
    let tree = db
        .open_tree(OBJECTS_TREE)
        .map_err(StoreError::storage("open objects tree"))?;
    Ok(Handles { db, tree })
}

/// Applies the operations inside a sled transaction; any error aborts it whole.
/// `undo` receives each key's value as found, for a roll-back if the commit fails.
fn apply(
    tx: &TransactionalTree,
    ops: &[Op],
    undo: &mut Vec<Undo>,
) -> ConflictableTransactionResult<Vec<u64>, StoreError> {
    let mut versions = Vec::with_capacity(ops.len());
    for op in ops {
        let before = tx.get(op.full_key.as_bytes())?;
        let found = match &before {
            None => None,
            Some(bytes) => Some(envelope::open(bytes).map(|(v, _)| v).map_err(|reason| {
                ConflictableTransactionError::Abort(corrupt(op.kind, &op.key, reason))
            })?),
        };
        undo.push(Undo {
            key: op.full_key.as_bytes().to_vec(),
            before,
        });
        if !op.expect.matches(found) {
            return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                kind: op.kind.to_owned(),
                key: op.key.clone(),
                expected: op.expect,
                found,
            }));
        }
        match &op.action {
            Action::Put(payload) => {
                let version = found.map_or(1, |v| v.saturating_add(1));
                tx.insert(op.full_key.as_bytes(), envelope::seal(version, payload))?;
                versions.push(version);
            }
            Action::Delete => {
                if found.is_some() {
                    tx.remove(op.full_key.as_bytes())?;
                }
                versions.push(0);
            }
        }
    }
    Ok(versions)
}

/// Decodes a stored value as an `R` stored under `key`.
fn decode<R: Record>(key: &str, bytes: &[u8]) -> Result<Versioned<R>, StoreError> {
    let (version, payload) =
        envelope::open(bytes).map_err(|reason| corrupt(R::KIND, key, reason))?;
    let value: R = decode_record(payload).map_err(|e| corrupt(R::KIND, key, e.to_string()))?;
    let own_key = value.key();
    if own_key != key {
        return Err(corrupt(
            R::KIND,
            key,
            format!("it holds the record of key {own_key}"),
        ));
    }
    Ok(Versioned { version, value })
}

fn corrupt(kind: &str, key: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        kind: kind.to_owned(),
        key: key.to_owned(),
        reason,
    }
}

/// The sled key of a record.
pub(crate) fn full_key(kind: &str, key: &str) -> String {
    format!("{kind}/{key}")
}

fn kind_prefix(kind: &str) -> String {
    format!("{kind}/")
}

/// The record key after the kind prefix; keys are written from `String`s, so lossy
/// conversion only matters for bytes someone else wrote, which `get` will then not find.
fn key_suffix(full: &[u8], prefix_len: usize) -> String {
    String::from_utf8_lossy(full.get(prefix_len..).unwrap_or_default()).into_owned()
}

/// Refuses kinds and keys that could not be told apart once joined with '/'.
pub(crate) fn check_name(kind: &str, key: &str) -> Result<(), StoreError> {
    check_kind(kind)?;
    if key.is_empty() {
        return Err(invalid(kind, key, "the key is empty"));
    }
    Ok(())
}

fn check_kind(kind: &str) -> Result<(), StoreError> {
    if kind.is_empty() {
        return Err(invalid(kind, "", "the kind is empty"));
    }
    if kind.contains('/') {
        return Err(invalid(kind, "", "the kind contains '/'"));
    }
    Ok(())
}

fn invalid(kind: &str, key: &str, reason: &'static str) -> StoreError {
    StoreError::InvalidName {
        kind: kind.to_owned(),
        key: key.to_owned(),
        reason,
    }
}

/// Refuses a non-empty directory without sled's files, so that a wrong path (a home
/// directory, /etc) is not silently turned into a store. Returns whether sled's log file
/// already holds data.
fn check_directory(dir: &Path) -> Result<bool, StoreError> {
    let not_a_store = |reason: String| StoreError::NotAStore {
        path: dir.to_owned(),
        reason,
    };
    let mut entries = std::fs::read_dir(dir).map_err(|e| not_a_store(e.to_string()))?;
    let non_empty = entries.next().is_some();
    let has_sled_file = SLED_FILES.iter().any(|f| dir.join(f).exists());
    if non_empty && !has_sled_file {
        return Err(not_a_store(
            "the directory is not empty and holds no sled database".to_owned(),
        ));
    }
    let db_len = std::fs::metadata(dir.join("db")).map_or(0, |m| m.len());
    Ok(db_len > 0)
}

/// True for sled's "could not acquire lock" error. sled 0.34 wraps the WouldBlock of its
/// file lock into an error of kind Other, so its message is all there is to test.
fn is_lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// How long opening waits for another holder of the store's lock to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens sled. Flushing happens on every commit, so sled's background flusher is off: a
/// write is durable exactly when the call that made it returns.
fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(None);
    // sled 0.34 asserts on some damaged files instead of returning an error; a damaged
    // store must be a message naming the path, not a crash of the agent.
    // The lock of a store just closed is released by sled a moment later, and an agent
    // restarted in a hurry can race its previous process: wait a little for it.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let opened = loop {
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        match &opened {
            Ok(Err(sled::Error::Io(e)))
                if is_lock_busy(e) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => break opened,
        }
    };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(e))) if is_full_io(&e) => Err(StoreError::Full {
            path: dir.to_owned(),
        }),
        Ok(Err(sled::Error::Io(e))) if is_lock_busy(&e) => Err(StoreError::Open {
            path: dir.to_owned(),
            reason: "it is in use by another process: is another agent running with this data directory?"
                .to_owned(),
        }),
        Ok(Err(e)) => Err(StoreError::Open {
            path: dir.to_owned(),
            reason: e.to_string(),
        }),
        Err(panic) => Err(StoreError::Open {
            path: dir.to_owned(),
            reason: format!("sled panicked reading it: {}", panic_message(&*panic)),
        }),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Checks the format marker, writing it into a new, empty database. `existing` says sled's
/// log file held data before opening: sled reads a damaged log as an empty database, which
/// must then be refused, not initialised over.
fn check_format(db: &sled::Db, dir: &Path, existing: bool) -> Result<(), StoreError> {
    let not_a_store = |reason: &str| StoreError::NotAStore {
        path: dir.to_owned(),
        reason: reason.to_owned(),
    };
    let marker = db
        .get(FORMAT_KEY)
        .map_err(StoreError::storage("read format marker"))?;
    match marker {
        Some(bytes) => {
            let bytes: [u8; 8] = bytes
                .as_ref()
                .try_into()
                .map_err(|_| not_a_store("its format marker is malformed"))?;
            match u64::from_le_bytes(bytes) {
                0 => Err(not_a_store("its format marker is malformed")),
                found if found > FORMAT => Err(StoreError::NewerFormat {
                    path: dir.to_owned(),
                    found,
                    supported: FORMAT,
                }),
                _ => Ok(()),
            }
        }
        // sled always lists its default tree; anything more, or any key, is someone's data.
        None if !db.is_empty() || db.tree_names().len() > 1 => Err(not_a_store(
            "it is a sled database without a weft format marker",
        )),
        None if existing => Err(not_a_store(
            "its database file holds data but sled reads no record from it: it is damaged or foreign",
        )),
        None => {
            db.insert(FORMAT_KEY, &FORMAT.to_le_bytes())
                .map_err(StoreError::storage("write format marker"))?;
            db.flush()
                .map(drop)
                .map_err(StoreError::storage("flush format marker"))
        }
    }
}

#[cfg(test)]
pub(crate) mod test_hooks {
    //! Raw access for tests: write bytes under a record's key, bypassing the envelope.

    use super::*;

    impl Store {
        pub(crate) fn raw_get(&self, kind: &str, key: &str) -> Option<Vec<u8>> {
            self.shared
                .handles()
                .unwrap()
                .tree
                .get(full_key(kind, key).as_bytes())
                .unwrap()
                .map(|v| v.to_vec())
        }

        pub(crate) fn raw_put(&self, kind: &str, key: &str, bytes: &[u8]) {
            let h = self.shared.handles().unwrap();
            h.tree
                .insert(full_key(kind, key).as_bytes(), bytes)
                .unwrap();
            h.db.flush().unwrap();
        }

        pub(crate) fn raw_db(&self) -> sled::Db {
            self.shared.handles().unwrap().db
        }

        pub(crate) fn faults(&self) -> &crate::recovery::Faults {
            &self.shared.faults
        }
    }
}
