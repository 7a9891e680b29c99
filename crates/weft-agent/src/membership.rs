//! The agent's membership in the cluster: its NetworkDb, started with the stored (or
//! given) gossip keyring and seeds, and the node record it publishes in the `nodes`
//! table, so every member can list every other with its name and role.
//!
//! The keyring comes from secure join (join.rs: a token, then the keyring over QUIC with
//! mutual TLS) or, for nodes started with `--gossip-key-file`, from a copied file; either
//! way each node keeps its own copy in `<data-dir>/gossip.keyring` with its seeds, so a
//! restart needs neither the flag nor `--join`.

use crate::AgentError;
use crate::config::ClusterSettings;
use actix::Addr;
use std::net::SocketAddr;
use std::path::Path;
use weft_keys::keyfile;
use weft_netdb::{NetDbConfig, NetworkDb, TableKey};
use weft_types::NetworkId;
use weft_types::gossip::{NodeRecord, Table};

const KEYRING_FILE: &str = "gossip.keyring";
const SEEDS_FILE: &str = "seeds";

/// Starts gossip for this node.
pub async fn start(
    data_dir: &Path,
    node_name: &str,
    settings: &ClusterSettings,
) -> Result<Addr<NetworkDb>, AgentError> {
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
        TableKey::new(Table::Nodes.name(), NetworkId::cluster(), node_name).map_err(|source| {
            AgentError::Gossip {
                listen: settings.listen,
                source: Box::new(source),
            }
        })?;
    let mut config = NetDbConfig::new(node_name, settings.listen, keyring);
    config.advertise_addr = settings.advertise;
    config.seeds = seeds.iter().map(ToString::to_string).collect();
    config.gossip_interval = settings.gossip_interval;
    config.suspicion_window = settings.suspicion_window;
    config.initial_entries = vec![(key, record.encode())];
    // Ready once the controller and the manager have re-asserted what this node owns (the
    // agent sends MarkReady): a restart then changes nothing on peers.
    config.defer_ready = true;
    NetworkDb::start(config)
        .await
        .map_err(|source| AgentError::Gossip {
            listen: settings.listen,
            source: Box::new(source),
        })
}

/// The seeds given now (and stored for restarts), else the stored ones.
fn seeds(data_dir: &Path, given: &[SocketAddr]) -> Result<Vec<SocketAddr>, AgentError> {
    let path = data_dir.join(SEEDS_FILE);
    if !given.is_empty() {
        let text: String = given.iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(&path, text)
            .map_err(|e| AgentError::file("cannot store seeds in", &path, e))?;
        return Ok(given.to_vec());
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim()
                    .parse()
                    .map_err(|e: std::net::AddrParseError| AgentError::Corrupt {
                        what: "seed",
                        text: l.to_owned(),
                        path: path.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(AgentError::file("cannot read", &path, e)),
    }
}

/// The keyring given now (stored as this node's copy), else the stored one, else a new
/// one for a node that starts a cluster.
fn keyring(
    data_dir: &Path,
    given: Option<&Path>,
    joining: bool,
) -> Result<weft_keys::Keyring, AgentError> {
    let own = data_dir.join(KEYRING_FILE);
    if let Some(given) = given {
        let ring = keyfile::read_keyring(given)
            .map_err(AgentError::keys("cannot read the gossip keyring"))?;
        if given != own {
            keyfile::write_keyring(&own, &ring)
                .map_err(AgentError::keys("cannot store the gossip keyring"))?;
        }
        return Ok(ring);
    }
    if own.exists() || !joining {
        return keyfile::load_or_create(&own)
            .map_err(AgentError::keys("cannot load the gossip keyring"));
    }
    Err(AgentError::Refused(format!(
        "joining a cluster needs its gossip keyring: give --gossip-key-file (a copy of {KEYRING_FILE} from a member's data directory)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_given_now_are_stored_for_restarts_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let given: Vec<SocketAddr> = vec!["198.18.0.1:7946".parse().unwrap()];
        assert_eq!(seeds(dir.path(), &given).unwrap(), given);
        // A restart without --join uses the stored seeds.
        assert_eq!(seeds(dir.path(), &[]).unwrap(), given);
        std::fs::write(
            dir.path().join(SEEDS_FILE),
            "198.18.0.1:7946\nnot-an-address\n",
        )
        .unwrap();
        let e = seeds(dir.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("bad seed \"not-an-address\""), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(seeds(empty.path(), &[]).unwrap().is_empty());
    }

    #[test]
    fn a_joining_node_needs_a_keyring_and_keeps_its_own_copy() {
        let dir = tempfile::tempdir().unwrap();
        let e = keyring(dir.path(), None, true).unwrap_err().to_string();
        assert!(e.contains("--gossip-key-file"), "{e}");
        // The first node of a cluster makes one; a restart reads the same one.
        let made = keyring(dir.path(), None, false).unwrap();
        let again = keyring(dir.path(), None, true).unwrap();
        assert_eq!(made.primary_id(), again.primary_id());
        // A copied keyring given with the flag becomes the node's own.
        let other = tempfile::tempdir().unwrap();
        let copy = other.path().join("copied.keyring");
        std::fs::copy(dir.path().join(KEYRING_FILE), &copy).unwrap();
        keyring(other.path(), Some(&copy), true).unwrap();
        assert!(other.path().join(KEYRING_FILE).exists());
        std::fs::write(&copy, b"garbage").unwrap();
        assert!(keyring(other.path(), Some(&copy), true).is_err());
    }
}
