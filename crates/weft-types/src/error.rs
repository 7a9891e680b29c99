//! The errors a user of weft sees, whatever layer raised them.
//!
//! Each carries a kind (what class of problem, which maps to an HTTP status and an exit
//! code) and a one-line message that says what went wrong and, where it helps, what to do.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The class of a user-visible error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The named object does not exist.
    NotFound,
    /// An object with that name or address already exists.
    AlreadyExists,
    /// The operation is not allowed in the object's current state.
    Forbidden,
    /// An input value is malformed or out of range.
    InvalidParameter,
    /// The network still has endpoints; remove them or force.
    ActiveEndpoints,
    /// The endpoint is still joined to a sandbox; leave first or force.
    ActiveContainer,
    /// A resource pool (addresses, subnets) is exhausted.
    Exhausted,
    /// A component that must answer (a manager, a driver) is not reachable.
    Unavailable,
    /// A bug or an unexpected failure of the host; the message says where.
    Internal,
}

impl ErrorKind {
    /// The HTTP status the local API answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists
            | ErrorKind::ActiveEndpoints
            | ErrorKind::ActiveContainer
            | ErrorKind::Forbidden => 409,
            ErrorKind::InvalidParameter => 400,
            ErrorKind::Exhausted => 507,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// Stable lower-case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::InvalidParameter => "invalid_parameter",
            ErrorKind::ActiveEndpoints => "active_endpoints",
            ErrorKind::ActiveContainer => "active_container",
            ErrorKind::Exhausted => "exhausted",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user-visible error: a kind and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        // Messages are one line: a newline would break the CLI's error contract.
        let message = message.into().replace('\n', " ");
        Error { kind, message }
    }

    /// `what` (e.g. "network foo") does not exist.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn already_exists(what: impl fmt::Display) -> Self {
        Error::new(ErrorKind::AlreadyExists, format!("{what} already exists"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidParameter, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Forbidden, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Prefixes the message with context, keeping the kind.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error::new(self.kind, format!("{context}: {}", self.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_on_one_line() {
        let e = Error::invalid("bad\nvalue");
        assert_eq!(e.message, "bad value");
    }

    #[test]
    fn kinds_round_trip_through_json() {
        let e = Error::new(ErrorKind::ActiveEndpoints, "network n has 2 endpoints");
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"active_endpoints\""));
        let back: Error = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
