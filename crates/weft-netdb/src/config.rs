//! NetworkDb configuration, with defaults an operator would expect.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::{ChitchatConfig, ChitchatId, FailureDetectorConfig};
use weft_keys::Keyring;

use crate::schema::TableKey;

/// Default gossip port.
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;

/// How one NetworkDb joins and gossips.
#[derive(Debug, Clone)]
pub struct NetDbConfig {
    /// This node's id, stable across restarts.
    pub node_id: String,
    /// This run's generation: larger after every restart (see [`generation_now`]).
    pub generation: u64,
    /// Only nodes with the same cluster id talk to each other.
    pub cluster_id: String,
    /// Where the gossip socket binds.
    pub listen_addr: SocketAddr,
    /// Where peers reach this node.
    pub advertise_addr: SocketAddr,
    /// "ip:port" or "host:port" of seed nodes; retried every round until one answers.
    pub seeds: Vec<String>,
    /// Gossip round period.
    pub gossip_interval: Duration,
    /// Phi accrual threshold: about how many mean heartbeat intervals of silence make a
    /// node dead.
    pub phi_threshold: f64,
    /// How long a failed node's entries stay (suspended) before they are deleted.
    pub suspicion_window: Duration,
    /// How long a leaving node keeps gossiping its leaving marker before it stops.
    pub leave_linger: Duration,
    /// How long chitchat keeps a dead generation's state; `None` for
    /// [`NetDbConfig::dead_node_grace_period`]'s default. NetworkDb keeps the entries of a
    /// node whose host still answers past it anyway.
    pub dead_state_grace: Option<Duration>,
    /// How long deleted keys are remembered as tombstones; a peer partitioned for longer
    /// is reset (resynchronised in full) instead of patched.
    pub tombstone_grace: Duration,
    /// How often the view is recomputed from gossip state.
    pub refresh_interval: Duration,
    /// The gossip keyring.
    pub keyring: Keyring,
    /// Entries this node owns from the start (what it re-asserts after a restart).
    pub initial_entries: Vec<(TableKey, Vec<u8>)>,
    /// The owner says when everything it owns is re-asserted ([`crate::MarkReady`]); until
    /// then peers keep showing this node's previous generation, so a restart whose entries
    /// come back one by one removes none of them anywhere. False: ready at once, with the
    /// initial entries.
    pub defer_ready: bool,
}

/// A generation id from the wall clock: larger on every restart of a host whose clock
/// does not run backwards.
pub fn generation_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(1)
}

impl NetDbConfig {
    /// A configuration with defaults for everything but identity, address and keys.
    pub fn new(node_id: impl Into<String>, addr: SocketAddr, keyring: Keyring) -> Self {
        NetDbConfig {
            node_id: node_id.into(),
            generation: generation_now(),
            cluster_id: "weft".to_owned(),
            listen_addr: addr,
            advertise_addr: addr,
            seeds: Vec::new(),
            gossip_interval: Duration::from_millis(200),
            phi_threshold: 8.0,
            suspicion_window: Duration::from_secs(60),
            leave_linger: Duration::from_millis(600),
            dead_state_grace: None,
            tombstone_grace: Duration::from_secs(3600),
            refresh_interval: Duration::from_millis(100),
            keyring,
            initial_entries: Vec::new(),
            defer_ready: false,
        }
    }

    /// How long chitchat keeps a dead node's state: past the suspicion window, so the
    /// window and not chitchat's GC decides when entries go (chitchat's default is 24 h).
    pub fn dead_node_grace_period(&self) -> Duration {
        self.dead_state_grace
            .unwrap_or(self.suspicion_window * 2 + Duration::from_secs(30))
    }

    /// The chitchat configuration this implies.
    pub fn chitchat_config(&self) -> ChitchatConfig {
        ChitchatConfig {
            chitchat_id: ChitchatId::new(
                self.node_id.as_str(),
                self.generation,
                self.advertise_addr,
            ),
            cluster_id: self.cluster_id.clone(),
            gossip_interval: self.gossip_interval,
            listen_addr: self.listen_addr,
            seed_nodes: self.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: self.phi_threshold,
                sampling_window_size: 1000,
                max_interval: Duration::from_secs(10),
                // chitchat smooths with this prior (weight 5); its 5 s default would make
                // detection take tens of seconds on a fresh cluster.
                initial_interval: self.gossip_interval,
                dead_node_grace_period: self.dead_node_grace_period(),
            },
            marked_for_deletion_grace_period: self.tombstone_grace,
            catchup_callback: None,
            extra_liveness_predicate: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_keys::{KeyId, SymmetricKey};

    #[test]
    fn defaults_are_sensible() {
        let ring = Keyring::new(SymmetricKey::new(KeyId(1), [0; 32]));
        let cfg = NetDbConfig::new("n1", ([127, 0, 0, 1], 7946).into(), ring);
        let cc = cfg.chitchat_config();
        assert!(cc.failure_detector_config.dead_node_grace_period > cfg.suspicion_window);
        assert!(cc.failure_detector_config.dead_node_grace_period < Duration::from_secs(24 * 3600));
        assert_eq!(
            cc.failure_detector_config.initial_interval,
            cfg.gossip_interval
        );
        assert!(generation_now() > 1_600_000_000_000_000_000);
    }
}
