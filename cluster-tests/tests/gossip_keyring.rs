//! Joining through seeds: a node that seals with a key outside the ring never appears in
//! the cluster (nor learns it), and the seed counts its datagrams as dropped; a node
//! whose seed is not up yet keeps trying until it answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, Topology, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn node_ids(agent: &Agent) -> Vec<String> {
    let nodes = agent.json(&["node", "ls"]);
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

fn dropped(agent: &Agent) -> u64 {
    let stats = agent.json(&["diag", "stats"]);
    let t = &stats["transport"];
    t["dropped_unknown_key"].as_u64().unwrap() + t["dropped_authentication"].as_u64().unwrap()
}

/// Writes a keyring file with one fixed key (not the cluster's own) and returns its path.
fn keyring_file(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, format!("1 {hex}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

#[test]
fn a_node_with_a_foreign_key_never_joins_and_its_datagrams_are_dropped() {
    let topology = Topology::create(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h1 = topology.start_agent(1, &[]).unwrap();
    let ring = h1.data_dir().join("gossip.keyring").display().to_string();
    let seed = format!("{}:7946", topology.addr(1));
    let h2 = topology
        .start_agent(2, &["--join", &seed, "--gossip-key-file", &ring])
        .unwrap();
    let foreign = keyring_file(dir.path(), "foreign.keyring");
    let h3 = topology
        .start_agent(3, &["--join", &seed, "--gossip-key-file", &foreign])
        .unwrap();

    wait_until("h1 and h2 see each other", Duration::from_secs(20), || {
        (node_ids(&h1).len() == 2 && node_ids(&h2).len() == 2).then_some(())
    })
    .unwrap();
    wait_until("h1 drops h3's datagrams", Duration::from_secs(20), || {
        (dropped(&h1) > 0).then_some(())
    })
    .unwrap();
    // Give h3 many gossip rounds to get in; it must not.
    for _ in 0..20 {
        assert_eq!(node_ids(&h1), ["h1", "h2"]);
        assert_eq!(node_ids(&h2), ["h1", "h2"]);
        assert_eq!(
            node_ids(&h3),
            ["h3"],
            "h3 learned the cluster without its key"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_keeps_trying_its_seed_until_it_answers() {
    let topology = Topology::create(2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The seed's keyring exists before the seed runs (an operator copied it).
    let ring = keyring_file(dir.path(), "shared.keyring");
    let seed = format!("{}:7946", topology.addr(1));
    let h2 = topology
        .start_agent(2, &["--join", &seed, "--gossip-key-file", &ring])
        .unwrap();
    // Several rounds with nobody at the seed address (time passing is the point here).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(node_ids(&h2), ["h2"]);
    let h1 = topology
        .start_agent(1, &["--gossip-key-file", &ring])
        .unwrap();
    wait_until(
        "h2 joins once its seed answers",
        Duration::from_secs(20),
        || (node_ids(&h1).len() == 2 && node_ids(&h2).len() == 2).then_some(()),
    )
    .unwrap();
}
