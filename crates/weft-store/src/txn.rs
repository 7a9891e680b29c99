//! Transactions: a list of puts and deletes, each with an expectation about the version it
//! finds, committed all together or not at all by [`crate::Store::commit`].
//!
//! Building a `Txn` touches no storage; only the commit reads and writes.

use crate::StoreError;
use crate::store::{check_name, full_key};
use weft_types::record::Record;
use weft_types::wire::encode_record;

/// What an operation expects to find under its key when the transaction commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    /// No record: a create.
    Absent,
    /// The record at exactly this version: an update or delete of what was read.
    Version(u64),
    /// Anything, present or not: a blind write or an idempotent delete.
    Any,
}

impl Expect {
    /// Whether finding `found` (`None` = absent) satisfies this expectation.
    pub fn matches(self, found: Option<u64>) -> bool {
        match self {
            Expect::Absent => found.is_none(),
            Expect::Version(v) => found == Some(v),
            Expect::Any => true,
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Absent => f.write_str("no record"),
            Expect::Version(v) => write!(f, "version {v}"),
            Expect::Any => f.write_str("any version"),
        }
    }
}

/// What an operation does once its expectation holds.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Store this encoded record (the `weft_types::wire` encoding) with the next version.
    Put(Vec<u8>),
    /// Remove the record; a no-op when it is absent.
    Delete,
}

/// One operation of a transaction.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) kind: &'static str,
    pub(crate) key: String,
    /// `"{kind}/{key}"`, the sled key.
    pub(crate) full_key: String,
    pub(crate) expect: Expect,
    pub(crate) action: Action,
}

/// A set of puts and deletes applied atomically by [`crate::Store::commit`].
///
/// Operations apply in order: a later operation on the same key sees the earlier one
/// (a put then a put with `Expect::Version(1)` of the same new record gives versions 1, 2).
#[derive(Debug, Clone, Default)]
pub struct Txn {
    pub(crate) ops: Vec<Op>,
    /// May spend the space reserve kept for a full disk (see [`Txn::teardown`]).
    pub(crate) teardown: bool,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Adds a put of `record` under its own key, expecting `expect`. It gets version 1 if
    /// absent, else the current version plus one. Fails if the record cannot be encoded
    /// or its kind or key is not a valid name.
    pub fn put<R: Record>(&mut self, record: &R, expect: Expect) -> Result<&mut Txn, StoreError> {
        let key = record.key();
        check_name(R::KIND, &key)?;
        let payload = encode_record(record).map_err(|source| StoreError::Encode {
            kind: R::KIND.to_owned(),
            key: key.clone(),
            source,
        })?;
        self.push(R::KIND, key, expect, Action::Put(payload));
        Ok(self)
    }

    /// Adds a delete of the `R` record under `key`, expecting `expect`. Deleting an
    /// absent record is a no-op (when the expectation allows absence).
    pub fn delete<R: Record>(&mut self, key: &str, expect: Expect) -> Result<&mut Txn, StoreError> {
        check_name(R::KIND, key)?;
        self.push(R::KIND, key.to_owned(), expect, Action::Delete);
        Ok(self)
    }

    /// Marks the transaction as part of a removal. When the disk is full, the store
    /// releases its space reserve for such transactions only: a full disk must not stop
    /// an operator from removing things, while creates wait for space.
    pub fn teardown(&mut self) -> &mut Txn {
        self.teardown = true;
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the transaction has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn push(&mut self, kind: &'static str, key: String, expect: Expect, action: Action) {
        self.ops.push(Op {
            kind,
            full_key: full_key(kind, &key),
            key,
            expect,
            action,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations() {
        assert!(Expect::Absent.matches(None));
        assert!(!Expect::Absent.matches(Some(1)));
        assert!(Expect::Version(2).matches(Some(2)));
        assert!(!Expect::Version(2).matches(Some(3)));
        assert!(!Expect::Version(2).matches(None));
        assert!(Expect::Any.matches(None));
        assert!(Expect::Any.matches(Some(9)));
    }
}
