//! Persistence of the allocator as a command log: every accepted command is stored, under
//! its sequence number, before its outcome is answered; at start the log is replayed.
//!
//! Storing commands rather than resulting state is what makes "replaying the stored
//! commands gives the same state" true by construction, and it is the shape a Raft log
//! takes later. The configuration (default pools, VNI range) is stored once, at the first
//! open, because replaying under another configuration would give another state.
//!
//! Every call blocks on disk (a commit waits for an fsync): the manager's actor runs
//! [`ManagerStore::execute`] off its own thread (a sync arbiter or `spawn_blocking`).
//!
//! What it is not (yet): no snapshot or compaction of the log; start-up time grows with
//! the number of commands ever accepted.

use crate::{AllocError, Allocator, AllocatorConfig, Command, ManagerError, Outcome};
use serde::{Deserialize, Serialize};
use weft_store::{Expect, Store, Txn};
use weft_types::record::Record;

/// One accepted command and its position in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LogEntry {
    seq: u64,
    command: Command,
}

impl Record for LogEntry {
    const KIND: &'static str = "manager-log";
    const SCHEMA: u16 = 1;
    fn key(&self) -> String {
        // Zero-padded so that the store's key order is the log order.
        format!("{:020}", self.seq)
    }
}

/// The configuration the allocator was created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ConfigRecord {
    config: AllocatorConfig,
}

impl Record for ConfigRecord {
    const KIND: &'static str = "manager-config";
    const SCHEMA: u16 = 1;
    fn key(&self) -> String {
        CONFIG_KEY.to_owned()
    }
}

const CONFIG_KEY: &str = "allocator";

/// Where the commands are stored: the sled store in production, a fake in tests.
pub trait CommandLog {
    /// The stored configuration, if one was stored.
    fn load_config(&self) -> Result<Option<AllocatorConfig>, ManagerError>;
    /// Stores the configuration, durably, before returning.
    fn save_config(&mut self, config: &AllocatorConfig) -> Result<(), ManagerError>;
    /// Every stored command with its sequence number, in order.
    fn load(&self) -> Result<Vec<(u64, Command)>, ManagerError>;
    /// Stores `cmd` as number `seq`, durably, before returning; fails if `seq` is taken.
    fn append(&mut self, seq: u64, cmd: &Command) -> Result<(), ManagerError>;
}

/// The command log in a [`weft_store::Store`].
#[derive(Debug, Clone)]
pub struct StoreLog {
    store: Store,
}

impl StoreLog {
    /// A log in `store`.
    pub fn new(store: Store) -> Self {
        StoreLog { store }
    }
}

impl CommandLog for StoreLog {
    fn load_config(&self) -> Result<Option<AllocatorConfig>, ManagerError> {
        let record = self.store.get::<ConfigRecord>(CONFIG_KEY)?;
        Ok(record.map(|r| r.value.config))
    }

    fn save_config(&mut self, config: &AllocatorConfig) -> Result<(), ManagerError> {
        let mut txn = Txn::new();
        let record = ConfigRecord {
            config: config.clone(),
        };
        txn.put(&record, Expect::Absent)?;
        self.store.commit(txn)?;
        Ok(())
    }

    fn load(&self) -> Result<Vec<(u64, Command)>, ManagerError> {
        let entries = self.store.list::<LogEntry>()?;
        Ok(entries
            .into_iter()
            .map(|e| (e.value.seq, e.value.command))
            .collect())
    }

    fn append(&mut self, seq: u64, cmd: &Command) -> Result<(), ManagerError> {
        let entry = LogEntry {
            seq,
            command: cmd.clone(),
        };
        let mut txn = Txn::new();
        // Absent: two writers on one log would fail here rather than overwrite.
        txn.put(&entry, Expect::Absent)?;
        self.store.commit(txn)?;
        Ok(())
    }
}

/// The allocator and its command log: persists each accepted command before answering.
#[derive(Debug)]
pub struct ManagerStore<L: CommandLog = StoreLog> {
    log: L,
    allocator: Allocator,
    /// Sequence number of the last stored command (0 when none).
    last_seq: u64,
}

impl ManagerStore<StoreLog> {
    /// Opens the allocator stored in `store`, creating it with `config` if there is none.
    /// Blocks on disk.
    pub fn open(store: Store, config: AllocatorConfig) -> Result<Self, ManagerError> {
        ManagerStore::with_log(StoreLog::new(store), config)
    }
}

impl<L: CommandLog> ManagerStore<L> {
    /// Opens the allocator stored in `log`: checks the configuration (storing it on first
    /// use) and replays every command. Blocks on the log's I/O.
    pub fn with_log(mut log: L, config: AllocatorConfig) -> Result<Self, ManagerError> {
        let mut allocator = Allocator::new(config.clone())?;
        match log.load_config()? {
            Some(stored) if stored != config => return Err(ManagerError::ConfigChanged),
            Some(_) => {}
            None => log.save_config(&config)?,
        }
        let last_seq = replay(&mut allocator, log.load()?)?;
        Ok(ManagerStore {
            log,
            allocator,
            last_seq,
        })
    }

    /// Applies `cmd`: validates it on a copy of the state, stores it (flushed), then
    /// commits the new state and returns the outcome. A refused command is not stored and
    /// a failed store write leaves the state as it was. Blocks on disk: call it off the
    /// actor's thread.
    pub fn execute(&mut self, cmd: &Command) -> Result<Outcome, ManagerError> {
        let (next, outcome) = self.allocator.plan(cmd)?;
        let seq = self.last_seq.saturating_add(1);
        self.log.append(seq, cmd)?;
        self.allocator = next;
        self.last_seq = seq;
        Ok(outcome)
    }

    /// The current state.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// Sequence number of the last stored command (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The log underneath.
    pub fn log(&self) -> &L {
        &self.log
    }
}

/// Applies stored commands in order, checking they are numbered 1, 2, 3, …; returns the
/// last number.
pub fn replay(
    allocator: &mut Allocator,
    commands: Vec<(u64, Command)>,
) -> Result<u64, ManagerError> {
    let mut last = 0u64;
    for (seq, cmd) in commands {
        let expected = last.saturating_add(1);
        if seq != expected {
            return Err(ManagerError::LogOrder {
                expected,
                found: seq,
            });
        }
        allocator
            .apply(&cmd)
            .map_err(|source: AllocError| ManagerError::Replay { seq, source })?;
        last = seq;
    }
    Ok(last)
}
