//! Named crash points: with the `crash-points` feature, the process aborts at the point
//! named by the `WEFT_CRASH_AT` environment variable, as a `kill -9` would stop it there,
//! or panics at the one `WEFT_PANIC_AT` names, as a bug in the operation would.
//! Tests use them to check that every half-done operation is finished or undone at the
//! next start. Without the feature they compile to nothing.

/// The environment variable naming the crash point to abort at.
pub const CRASH_AT_ENV: &str = "WEFT_CRASH_AT";

macro_rules! crash_points {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        $($(#[$doc])* pub const $name: &str = $value;)*
        /// Every crash point, for tests that visit them all.
        pub const ALL: &[&str] = &[$($value),*];
    };
}

crash_points! {
    /// Network record persisted as `creating`, driver not yet called.
    NETWORK_CREATE_INTENT = "network-create-intent";
    /// Driver created the network, record still `creating`.
    NETWORK_CREATE_DRIVER = "network-create-driver";
    /// Network persisted `ready`, reply not yet sent.
    NETWORK_CREATE_DONE = "network-create-done";
    /// Network persisted as `deleting`.
    NETWORK_DELETE_MARK = "network-delete-mark";
    /// Driver deleted the network.
    NETWORK_DELETE_DRIVER = "network-delete-driver";
    /// Pools released in IPAM, record not yet deleted.
    NETWORK_DELETE_RELEASE = "network-delete-release";
    /// Record deleted, reply not yet sent.
    NETWORK_DELETE_DONE = "network-delete-done";
    /// Endpoint record persisted as `creating` (with its addresses on a local network).
    ENDPOINT_CREATE_INTENT = "endpoint-create-intent";
    /// A global network's manager answered with the addresses, not yet stored.
    ENDPOINT_CREATE_ALLOCATED = "endpoint-create-allocated";
    /// Driver created the endpoint, record still `creating`.
    ENDPOINT_CREATE_DRIVER = "endpoint-create-driver";
    /// Endpoint persisted `ready`, reply not yet sent.
    ENDPOINT_CREATE_DONE = "endpoint-create-done";
    /// Endpoint persisted as `deleting`.
    ENDPOINT_DELETE_MARK = "endpoint-delete-mark";
    /// Driver deleted the endpoint.
    ENDPOINT_DELETE_DRIVER = "endpoint-delete-driver";
    /// Addresses released in IPAM, record not yet deleted.
    ENDPOINT_DELETE_RELEASE = "endpoint-delete-release";
    /// Record deleted, reply not yet sent.
    ENDPOINT_DELETE_DONE = "endpoint-delete-done";
    /// Endpoint persisted as `joining`.
    JOIN_INTENT = "join-intent";
    /// Driver joined the endpoint to the sandbox.
    JOIN_DRIVER = "join-driver";
    /// Endpoint persisted `joined`, reply not yet sent.
    JOIN_DONE = "join-done";
    /// Endpoint persisted as `leaving`.
    LEAVE_INTENT = "leave-intent";
    /// Driver undid the join.
    LEAVE_DRIVER = "leave-driver";
    /// Endpoint persisted `detached`, reply not yet sent.
    LEAVE_DONE = "leave-done";
    /// Sandbox record persisted as `creating`.
    SANDBOX_CREATE_INTENT = "sandbox-create-intent";
    /// Sandbox persisted `ready`, reply not yet sent.
    SANDBOX_CREATE_DONE = "sandbox-create-done";
    /// Sandbox persisted as `deleting`.
    SANDBOX_DELETE_MARK = "sandbox-delete-mark";
    /// Sandbox record deleted, reply not yet sent.
    SANDBOX_DELETE_DONE = "sandbox-delete-done";
}

/// The environment variable naming the crash point to panic at instead: how an
/// operation's bug behaves, rather than a `kill -9`.
pub const PANIC_AT_ENV: &str = "WEFT_PANIC_AT";

/// Aborts the process if `WEFT_CRASH_AT` names `point`; panics if `WEFT_PANIC_AT` does.
#[cfg(feature = "crash-points")]
pub fn point(point: &str) {
    if std::env::var(CRASH_AT_ENV).is_ok_and(|p| p == point) {
        eprintln!("weft: aborting at crash point {point}");
        std::process::abort();
    }
    if std::env::var(PANIC_AT_ENV).is_ok_and(|p| p == point) {
        panic!("panic injected at crash point {point}");
    }
}

/// Crash points are compiled out without the `crash-points` feature.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn point(_point: &str) {}

/// The environment variable naming a stall point and a file, as `POINT:PATH`: while the
/// file exists, the work at that point waits (a consumer that never reads, for tests of
/// what piles up behind it).
pub const STALL_AT_ENV: &str = "WEFT_STALL_AT";

/// The cluster watcher reads no NetworkDB event.
pub const STALL_WATCHER: &str = "watcher";

/// The file whose existence stalls `point`, if `WEFT_STALL_AT` names it.
#[cfg(feature = "crash-points")]
pub fn stall_file(point: &str) -> Option<std::path::PathBuf> {
    let value = std::env::var(STALL_AT_ENV).ok()?;
    let (name, path) = value.split_once(':')?;
    (name == point && !path.is_empty()).then(|| path.into())
}

/// Stall points are compiled out without the `crash-points` feature.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn stall_file(_point: &str) -> Option<std::path::PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique() {
        let mut names = super::ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), super::ALL.len());
    }
}
