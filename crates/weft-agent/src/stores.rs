//! The stores this agent writes (the controller's, and a manager's allocator's), kept
//! for readiness and statistics: a store that cannot be written makes the node not
//! ready, with the reason.
//!
//! A process-wide list, filled once while the agent starts, like the RPC port's counters.

use serde::Serialize;
use std::sync::{Mutex, PoisonError};
use weft_store::Store;

static STORES: Mutex<Vec<(&'static str, Store)>> = Mutex::new(Vec::new());

/// One store's state, as `weft diag stats` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    /// Whose store: `controller` or `allocator`.
    pub store: &'static str,
    pub path: String,
    pub writable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Commits that failed on storage or were refused for want of space.
    pub write_failures: u64,
    /// The disk filled up and the space reserve is spent on removals.
    pub reserve_released: bool,
}

/// Adds a store to those readiness checks.
pub fn register(store: &'static str, handle: Store) {
    STORES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((store, handle));
}

/// The state of every registered store. A store that failed is reopened here if there is
/// room again: readiness probes also heal the agent when nothing else writes.
pub async fn health() -> Vec<StoreStats> {
    let stores = STORES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let check = move || {
        stores
            .iter()
            .map(|(name, store)| {
                let health = store.health();
                StoreStats {
                    store: name,
                    path: store.path().display().to_string(),
                    writable: health.problem.is_none(),
                    problem: health.problem,
                    write_failures: health.write_failures,
                    reserve_released: health.reserve_released,
                }
            })
            .collect()
    };
    tokio::task::spawn_blocking(check).await.unwrap_or_default()
}

/// The reason the node is not ready, if a store cannot be written.
pub async fn not_ready() -> Option<String> {
    let problems: Vec<String> = health()
        .await
        .into_iter()
        .filter_map(|s| s.problem.map(|p| format!("{} store: {p}", s.store)))
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}
