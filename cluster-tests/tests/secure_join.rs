//! Joining with a token: a node started with `--init` is a manager and prints join
//! tokens; workers join through it over QUIC with the worker token, receive their
//! certificate and the gossip keyring, and appear everywhere; a token with a wrong secret
//! or naming another CA gets a one-line error and the node never appears; a restarted
//! worker needs no token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, Topology, wait_until};
use std::time::Duration;

fn nodes(agent: &Agent) -> Vec<(String, String, String)> {
    let v = agent.json(&["node", "ls"]);
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or("-").to_owned();
            (s("id"), s("role"), s("status"))
        })
        .collect()
}

#[test]
fn workers_join_with_a_token_and_strangers_stay_out() {
    let topology = Topology::create(4).unwrap();
    let h1 = topology.start_agent(1, &["--init"]).unwrap();
    let worker = h1.ok(&["cluster", "token", "worker"]).trim().to_owned();
    assert!(
        worker.starts_with("weft-W-") && worker.len() == "weft-W-".len() + 64 + 1 + 64,
        "{worker}"
    );
    let manager = h1.ok(&["cluster", "token", "manager"]).trim().to_owned();
    assert!(manager.starts_with("weft-M-") && manager != worker);
    let seed = format!("{}:7947", topology.addr(1));

    let mut h2 = topology
        .start_agent(2, &["--join", &seed, "--token", &worker])
        .unwrap();
    let h3 = topology
        .start_agent(3, &["--join", &seed, "--token", &worker])
        .unwrap();
    for agent in [&h1, &h2, &h3] {
        wait_until("three alive nodes", Duration::from_secs(20), || {
            let n = nodes(agent);
            (n.len() == 3 && n.iter().all(|(_, _, s)| s == "alive")).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", nodes(agent)));
    }
    let roles: Vec<_> = nodes(&h3)
        .into_iter()
        .map(|(id, role, _)| (id, role))
        .collect();
    assert_eq!(
        roles,
        [
            ("h1".into(), "manager".into()),
            ("h2".into(), "worker".into()),
            ("h3".into(), "worker".into())
        ]
    );

    // Both keyrings, three keys each, reached the worker; keys ls shows no material.
    for agent in [&h1, &h2] {
        let keys = agent.json(&["keys", "ls"]);
        let keys = keys.as_array().unwrap();
        for subsystem in ["gossip", "datapath"] {
            let ring: Vec<_> = keys
                .iter()
                .filter(|k| k["subsystem"] == subsystem)
                .collect();
            assert_eq!(ring.len(), 3, "{subsystem}: {keys:?}");
            assert_eq!(ring.iter().filter(|k| k["primary"] == true).count(), 1);
            assert!(
                ring.iter()
                    .all(|k| k["age_s"].as_u64().is_some_and(|a| a < 600))
            );
        }
        assert!(
            keys.iter().all(|k| k.as_object().unwrap().len() == 4),
            "only id, subsystem, role, age"
        );
    }
    let ring_of = |agent: &Agent| -> Vec<(String, u64, bool)> {
        let keys = agent.json(&["keys", "ls"]);
        let mut v: Vec<_> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["subsystem"].as_str().unwrap().to_owned(),
                    k["id"].as_u64().unwrap(),
                    k["primary"] == true,
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ring_of(&h1),
        ring_of(&h2),
        "the worker holds the cluster's keyrings"
    );
    let text = h2.ok(&["keys", "ls"]);
    assert!(
        text.contains("SUBSYSTEM")
            && text.contains("primary")
            && !text.contains(&worker[worker.len() - 64..])
    );

    // The right CA but a wrong secret: refused by the manager.
    let (prefix, _) = worker.rsplit_once('-').unwrap();
    let wrong_secret = format!("{prefix}-{}", "0".repeat(64));
    let err = topology
        .start_agent(4, &["--join", &seed, "--token", &wrong_secret])
        .unwrap_err();
    assert!(format!("{err:#}").contains("invalid join token"), "{err:#}");
    // A token naming another CA: the joiner refuses the manager before sending anything.
    let (_, secret) = worker.rsplit_once('-').unwrap();
    let other_ca = format!("weft-W-{}-{secret}", "ab".repeat(32));
    let err = topology
        .start_agent(4, &["--join", &seed, "--token", &other_ca])
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not hold the cluster CA"),
        "{err:#}"
    );
    let ids: Vec<String> = nodes(&h1).into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids, ["h1", "h2", "h3"], "a refused node appeared");

    // A second manager is not supported yet, and says so.
    let err = topology
        .start_agent(4, &["--join", &seed, "--token", &manager])
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("joining as a manager is not supported yet"),
        "{err:#}"
    );

    // Only managers hand out tokens.
    let out = h2.cli(&["cluster", "token", "worker"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("not a manager"), "{}", out.stderr);

    // A restarted worker rejoins with what it stored (the same flags are ignored).
    h2.kill9().unwrap();
    h2.restart().unwrap();
    wait_until("h2 alive again", Duration::from_secs(20), || {
        nodes(&h1)
            .iter()
            .any(|(id, _, s)| id == "h2" && s == "alive")
            .then_some(())
    })
    .unwrap();
    assert_eq!(nodes(&h1).len(), 3);
}
