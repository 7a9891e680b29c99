//! The agent's membership in the cluster: its NetworkDb, started with the stored (or
//! given) gossip keyring and seeds, and the node record it publishes in the `nodes`
//! table, so every member can list every other with its name and role.
//!
//! The keyring comes from secure join (join.rs: a token, then the keyring over QUIC with
//! mutual TLS) or, for nodes started with `--gossip-key-file`, from a copied file; either
//! way each node keeps its own copy in `<data-dir>/gossip.keyring` with its seeds, so a
//! restart needs neither the flag nor `--join`.

use crate::config::ClusterSettings;
use actix::Addr;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use weft_keys::keyfile;
use weft_netdb::{NetDbConfig, NetworkDb, TableKey};
use weft_types::NetworkId;

/// The table of node records.
pub const NODES_TABLE: &str = "nodes";
const KEYRING_FILE: &str = "gossip.keyring";
const SEEDS_FILE: &str = "seeds";

/// The reserved network id of cluster-wide tables.
pub fn cluster_network() -> NetworkId {
    NetworkId::cluster()
}

/// What a node publishes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub role: String,
    pub version: String,
    /// Where its data path (VXLAN) listens, for node discovery.
    #[serde(default)]
    pub data_addr: Option<std::net::IpAddr>,
}

/// Starts gossip for this node.
pub async fn start(
    data_dir: &Path,
    node_name: &str,
    settings: &ClusterSettings,
) -> anyhow::Result<Addr<NetworkDb>> {
    let seeds = seeds(data_dir, &settings.join)?;
    let keyring = keyring(data_dir, settings.key_file.as_deref(), !seeds.is_empty())?;
    // A node holding the CA is a manager; so is the first node of a cluster formed with
    // a copied keyring (no identity, no seeds).
    let holds_ca = crate::join::is_manager(data_dir);
    let role = if holds_ca || (seeds.is_empty() && !crate::join::has_identity(data_dir)) {
        "manager"
    } else {
        "worker"
    };
    let record = NodeRecord {
        name: node_name.to_owned(),
        role: role.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        data_addr: Some(settings.data_path.into()),
    };
    let key =
        TableKey::new(NODES_TABLE, cluster_network(), node_name).context("node record key")?;
    let mut config = NetDbConfig::new(node_name, settings.listen, keyring);
    config.advertise_addr = settings.advertise;
    config.seeds = seeds.iter().map(ToString::to_string).collect();
    config.gossip_interval = settings.gossip_interval;
    config.suspicion_window = settings.suspicion_window;
    config.initial_entries = vec![(key, serde_json::to_vec(&record)?)];
    NetworkDb::start(config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start gossip on {}: {e}", settings.listen))
}

/// The seeds given now (and stored for restarts), else the stored ones.
fn seeds(data_dir: &Path, given: &[SocketAddr]) -> anyhow::Result<Vec<SocketAddr>> {
    let path = data_dir.join(SEEDS_FILE);
    if !given.is_empty() {
        let text: String = given.iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(&path, text)
            .with_context(|| format!("cannot store seeds in {}", path.display()))?;
        return Ok(given.to_vec());
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim()
                    .parse()
                    .with_context(|| format!("bad seed {l:?} in {}", path.display()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The keyring given now (stored as this node's copy), else the stored one, else a new
/// one for a node that starts a cluster.
fn keyring(
    data_dir: &Path,
    given: Option<&Path>,
    joining: bool,
) -> anyhow::Result<weft_keys::Keyring> {
    let own = data_dir.join(KEYRING_FILE);
    if let Some(given) = given {
        let ring = keyfile::read_keyring(given)?;
        if given != own {
            keyfile::write_keyring(&own, &ring)?;
        }
        return Ok(ring);
    }
    if own.exists() || !joining {
        return Ok(keyfile::load_or_create(&own)?);
    }
    anyhow::bail!(
        "joining a cluster needs its gossip keyring: give --gossip-key-file (a copy of {KEYRING_FILE} from a member's data directory)"
    )
}
