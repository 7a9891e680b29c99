//! What the store does when a write fails: sled 0.34 remembers the first I/O error (a
//! full disk) and refuses every later write, until the database is opened again. So the
//! store records the failure, and the next commit (or health check) reopens sled once
//! there is room again, dropping every handle first: sled holds an flock on its directory.
//!
//! A commit reported failed must have written nothing, yet a failed flush may leave its
//! writes on disk (a buffer written before the one that failed). The store keeps the
//! before image of every key of a failed commit and puts it back after reopening.
//!
//! Not handled here: reads between the failure and the reopen come from sled's memory and
//! may still show the failed commit's writes.

use crate::error::StoreError;
use crate::reserve;
use crate::store::{Handles, open_handles};
use sled::IVec;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Whether the store can be written, for readiness checks and statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// `None` when commits go through; else the one-line reason they are refused.
    pub problem: Option<String>,
    /// Commits that failed on storage or were refused for want of space, since open.
    pub write_failures: u64,
    /// The disk filled up and the space reserve is spent on removals.
    pub reserve_released: bool,
}

/// One key a failed write touched, with the value it held before.
#[derive(Debug, Clone)]
pub(crate) struct Undo {
    pub(crate) key: Vec<u8>,
    pub(crate) before: Option<IVec>,
}

/// The first failed write not yet recovered from.
#[derive(Debug)]
struct Failure {
    /// What callers are told until the store is writable again.
    full: bool,
    reason: String,
    /// Keys to put back after reopening, because the failed commit may have landed.
    undo: Vec<Undo>,
}

#[derive(Debug)]
struct State {
    /// `None` only after a reopen failed: the old handles were dropped, for their lock.
    handles: Option<Handles>,
    failure: Option<Failure>,
    reserve_released: bool,
}

/// The part of a store every clone shares.
#[derive(Debug)]
pub(crate) struct Shared {
    path: PathBuf,
    state: Mutex<State>,
    write_failures: AtomicU64,
    #[cfg(test)]
    pub(crate) faults: Faults,
}

/// Failures tests inject: a flush that fails after its transaction was applied, and a
/// full disk as the space reserve sees it.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) fail_next_flush: std::sync::atomic::AtomicBool,
    pub(crate) disk_full: std::sync::atomic::AtomicBool,
}

/// A write that did not go through.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Refused before writing anything (conflict, corrupt record): the store is fine.
    Refused(StoreError),
    /// sled failed; `undo` says what the write may have changed.
    Storage {
        source: sled::Error,
        undo: Vec<Undo>,
    },
}

/// The locked state, handed to a write.
pub(crate) struct Writable<'a> {
    shared: &'a Shared,
    state: MutexGuard<'a, State>,
}

impl Shared {
    pub(crate) fn new(path: PathBuf, handles: Handles, reserve_released: bool) -> Shared {
        Shared {
            path,
            state: Mutex::new(State {
                handles: Some(handles),
                failure: None,
                reserve_released,
            }),
            write_failures: AtomicU64::new(0),
            #[cfg(test)]
            faults: Faults::default(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside a write leaves the state as consistent as an error would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The database handles for a read.
    pub(crate) fn handles(&self) -> Result<Handles, StoreError> {
        let state = self.lock();
        match (&state.handles, &state.failure) {
            (Some(h), _) => Ok(h.clone()),
            (None, failure) => Err(self.unwritable(failure.as_ref())),
        }
    }

    /// Runs `write` once the store is writable, recording a storage failure. A `teardown`
    /// write may spend the space reserve, and is tried again once if the reserve lets
    /// the store reopen.
    pub(crate) fn write<T>(
        &self,
        teardown: bool,
        write: impl Fn(&Handles) -> Result<T, WriteError>,
    ) -> Result<T, StoreError> {
        let mut w = Writable {
            shared: self,
            state: self.lock(),
        };
        let result = w.write_once(teardown, &write);
        let result = match result {
            Err(_) if teardown && w.can_release_reserve() => w.write_once(teardown, &write),
            other => other,
        };
        if let Err(e) = &result
            && e.is_unwritable()
        {
            self.write_failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Whether commits go through now, after trying to recover from an earlier failure.
    pub(crate) fn health(&self) -> StoreHealth {
        let mut w = Writable {
            shared: self,
            state: self.lock(),
        };
        let problem = w.make_writable(false).err().map(|e| e.to_string());
        StoreHealth {
            problem,
            write_failures: self.write_failures.load(Ordering::Relaxed),
            reserve_released: w.state.reserve_released,
        }
    }

    fn unwritable(&self, failure: Option<&Failure>) -> StoreError {
        match failure {
            Some(f) if !f.full => StoreError::Unavailable {
                path: self.path.clone(),
                reason: f.reason.clone(),
            },
            _ => StoreError::Full {
                path: self.path.clone(),
            },
        }
    }

    fn disk_full(&self) -> bool {
        #[cfg(test)]
        if self.faults.disk_full.load(Ordering::SeqCst) {
            return true;
        }
        false
    }

    fn ensure_reserve(&self) -> bool {
        !self.disk_full() && reserve::ensure(&self.path)
    }

    fn probe_room(&self) -> bool {
        !self.disk_full() && reserve::probe(&self.path)
    }
}

impl Writable<'_> {
    fn write_once<T>(
        &mut self,
        teardown: bool,
        write: &impl Fn(&Handles) -> Result<T, WriteError>,
    ) -> Result<T, StoreError> {
        self.make_writable(teardown)?;
        let handles = self.handles()?;
        match write(&handles) {
            Ok(value) => Ok(value),
            Err(WriteError::Refused(e)) => Err(e),
            Err(WriteError::Storage { source, undo }) => Err(self.fail(&source, undo)),
        }
    }

    fn handles(&self) -> Result<Handles, StoreError> {
        match &self.state.handles {
            Some(h) if self.state.failure.is_none() => Ok(h.clone()),
            _ => Err(self.shared.unwritable(self.state.failure.as_ref())),
        }
    }

    /// True when a failed teardown write could go through on the reserve: the store
    /// failed and the reserve is still there to release.
    fn can_release_reserve(&self) -> bool {
        self.state.failure.is_some() && !self.state.reserve_released
    }

    /// Records a storage failure; the first one is kept, with the undo of every key.
    fn fail(&mut self, source: &sled::Error, undo: Vec<Undo>) -> StoreError {
        let full = is_full(source);
        match &mut self.state.failure {
            Some(f) => f.undo.extend(undo),
            None => {
                tracing::warn!(
                    path = %self.shared.path.display(),
                    error = %source,
                    "store write failed: refusing writes until it can be reopened"
                );
                self.state.failure = Some(Failure {
                    full,
                    reason: source.to_string(),
                    undo,
                });
            }
        }
        self.shared.unwritable(self.state.failure.as_ref())
    }

    /// Ok when a write may be tried: the store has not failed, or reopened now. A store
    /// on a released reserve accepts teardown writes only until the reserve is back.
    fn make_writable(&mut self, teardown: bool) -> Result<(), StoreError> {
        if self.state.failure.is_none() {
            return self.restore_reserve(teardown);
        }
        let room = (!self.state.reserve_released || self.restore_reserve(false).is_ok())
            && self.shared.probe_room();
        if !room {
            if !teardown || self.state.reserve_released || !reserve::release(&self.shared.path) {
                return Err(self.shared.unwritable(self.state.failure.as_ref()));
            }
            self.state.reserve_released = true;
            tracing::warn!(
                path = %self.shared.path.display(),
                "disk full: released the space reserve for a removal"
            );
        }
        self.reopen()
    }

    fn restore_reserve(&mut self, teardown: bool) -> Result<(), StoreError> {
        if !self.state.reserve_released {
            return Ok(());
        }
        if self.shared.ensure_reserve() {
            self.state.reserve_released = false;
            tracing::info!(path = %self.shared.path.display(), "space is back: reserve restored");
            return Ok(());
        }
        if teardown {
            return Ok(());
        }
        Err(StoreError::Full {
            path: self.shared.path.clone(),
        })
    }

    /// Drops the failed database, opens it again and puts back what the failed writes
    /// may have changed. On failure the store stays failed; the next write tries again.
    fn reopen(&mut self) -> Result<(), StoreError> {
        drop(self.state.handles.take());
        let handles = match open_handles(&self.shared.path) {
            Ok(h) => h,
            Err(e) => {
                if let Some(f) = &mut self.state.failure {
                    f.reason = e.to_string();
                    f.full = matches!(e, StoreError::Full { .. });
                }
                return Err(self.shared.unwritable(self.state.failure.as_ref()));
            }
        };
        let undo = self
            .state
            .failure
            .as_ref()
            .map(|f| f.undo.clone())
            .unwrap_or_default();
        let rolled_back = roll_back(&handles, &undo);
        self.state.handles = Some(handles);
        match rolled_back {
            Ok(n) => {
                self.state.failure = None;
                tracing::info!(
                    path = %self.shared.path.display(),
                    rolled_back = n,
                    "store reopened after a failed write"
                );
                Ok(())
            }
            Err(source) => Err(self.fail(&source, Vec::new())),
        }
    }
}

/// Puts back, for every key the failed writes touched, the value it held before the first
/// of them: every one of those writes was reported failed. Returns how many keys changed.
fn roll_back(handles: &Handles, undo: &[Undo]) -> Result<usize, sled::Error> {
    let mut before = std::collections::HashMap::new();
    for u in undo {
        before.entry(u.key.clone()).or_insert(u.before.clone());
    }
    let mut batch = sled::Batch::default();
    let mut n = 0;
    for (key, value) in before {
        if handles.tree.get(&key)? == value {
            continue;
        }
        match value {
            Some(bytes) => batch.insert(key, bytes),
            None => batch.remove(key),
        }
        n += 1;
    }
    if n > 0 {
        handles.tree.apply_batch(batch)?;
        handles.db.flush()?;
    }
    Ok(n)
}

/// True for a sled error caused by a full filesystem or an exhausted quota.
pub(crate) fn is_full(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => is_full_io(io),
        _ => false,
    }
}

pub(crate) fn is_full_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || e.raw_os_error() == Some(28)
}
