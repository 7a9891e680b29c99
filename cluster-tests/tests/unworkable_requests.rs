//! Requests that cannot work are refused with a message saying why, and change nothing:
//! subnets no network can use (0.0.0.0/0, a /31, the host's own underlay subnet), overlay
//! options with typos or bad values, names that read as another object's id, a second
//! `host` network, options and labels without `=`, empty references. And `weft run`
//! leaves nothing behind when its command cannot start, and a detached command that
//! `sandbox rm -f` kills is reaped, not left a zombie.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, Cluster, ClusterOptions, wait_until};
use std::time::Duration;

/// Runs `args`, expects exit code `code` and one stderr line containing `says`.
fn refused(agent: &Agent, args: &[&str], code: i32, says: &str) {
    let out = agent.cli(args);
    assert_eq!(out.code(), Some(code), "{args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    assert!(
        out.stderr.contains(says),
        "{args:?}: want {says:?} in {:?}",
        out.stderr
    );
}

#[test]
fn unworkable_networks_names_and_options_are_refused() {
    let agent = Agent::start(Default::default()).unwrap();
    let before = agent.listings();
    for (subnet, says) in [
        ("0.0.0.0/0", "subnet 0.0.0.0/0 is too large"),
        ("::/0", "subnet ::/0 is too large"),
        ("198.0.0.0/7", "too large"),
        ("198.19.3.0/31", "subnet 198.19.3.0/31 is too small"),
        ("198.19.3.1/32", "too small"),
    ] {
        let mut args = vec!["network", "create", "--subnet", subnet];
        if subnet.contains(':') {
            args.push("--ipv6");
        }
        args.push("n0");
        refused(&agent, &args, 1, says);
    }
    refused(
        &agent,
        &["network", "create", "-o", "novalue", "n0"],
        1,
        "option \"novalue\": expected KEY=VALUE",
    );
    refused(
        &agent,
        &["network", "create", "--label", "noeq", "n0"],
        1,
        "label \"noeq\": expected KEY=VALUE",
    );
    refused(&agent, &["network", "rm", ""], 1, "the name or id is empty");
    refused(
        &agent,
        &["sandbox", "inspect", ""],
        1,
        "the name or id is empty",
    );
    refused(
        &agent,
        &["endpoint", "ls", ""],
        1,
        "the name or id is empty",
    );
    assert_eq!(agent.listings(), before, "a refusal changed something");

    // A name that reads as another network's id could make `network rm` hit that network.
    let id = agent.ok(&[
        "network",
        "create",
        "-d",
        "null",
        "--subnet",
        "198.19.70.0/24",
        "a1",
    ]);
    let id = id.trim();
    refused(
        &agent,
        &["network", "create", "-d", "null", id],
        1,
        "looks like an id",
    );
    refused(
        &agent,
        &["network", "create", "-d", "null", &id[..12]],
        1,
        "is a prefix of the id of network",
    );
    let fake_id = "f".repeat(64);
    refused(
        &agent,
        &["sandbox", "create", &fake_id],
        1,
        "looks like an id",
    );
    agent.ok(&["network", "inspect", id]);

    // One host namespace, so one host network.
    agent.ok(&["network", "create", "-d", "host", "h1"]);
    refused(
        &agent,
        &["network", "create", "-d", "host", "h2"],
        1,
        "only one host network can exist",
    );
    let names: Vec<String> = agent
        .json(&["network", "ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with('h')).count(),
        1,
        "{names:?}"
    );
    agent.ok(&["network", "rm", "h1", "a1"]);
}

#[test]
fn the_underlay_subnet_and_bad_overlay_options_are_refused() {
    let cluster = Cluster::start(1, ClusterOptions::default()).unwrap();
    let h1 = cluster.host(1);
    let before = h1.listings();
    // The harness's hosts sit on 198.18.0.0/24.
    for driver in ["bridge", "overlay"] {
        for (subnet, says) in [
            ("198.18.0.0/24", "overlaps 198.18.0.0/24 of host interface"),
            ("198.18.0.0/16", "the host's own network"),
        ] {
            let args = ["network", "create", "-d", driver, "--subnet", subnet, "u"];
            refused(h1, &args, 1, says);
        }
    }
    fn ov(opt: &str) -> Vec<&str> {
        vec![
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "198.19.210.0/24",
            "-o",
            opt,
            "ov",
        ]
    }
    let vni = "com.docker.network.driver.overlay.vxlanid_list";
    for (opt, says) in [
        (
            "vxlanid_list=99999999".to_owned(),
            "unknown option \"vxlanid_list\"",
        ),
        (format!("{vni}=99999999"), "vxlanid must be 1..16777215"),
        (format!("{vni}=0"), "vxlanid must be 1..16777215"),
        (format!("{vni}=abc"), "vxlanid must be 1..16777215"),
        ("mtu=abc".to_owned(), "invalid mtu \"abc\""),
        (
            "colour=blue".to_owned(),
            "unknown option \"colour\" for the overlay driver",
        ),
        ("novalue".to_owned(), "expected KEY=VALUE"),
    ] {
        refused(h1, &ov(&opt), 1, says);
    }
    assert_eq!(h1.listings(), before, "a refusal changed something");
    // A good MTU option reaches the sandbox.
    h1.ok(&ov("mtu=1400"));
    h1.ok(&[
        "run",
        "-d",
        "--name",
        "m",
        "--network",
        "ov",
        "--",
        "sleep",
        "60",
    ]);
    let link = h1.ok(&["exec", "m", "--", "ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    h1.ok(&["sandbox", "rm", "-f", "m"]);
    h1.ok(&["network", "rm", "ov"]);
}

/// A child of `parent` whose command line is `cmdline` (NUL-separated), if one runs.
fn child_running(parent: u32, cmdline: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid: u32 = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
            let cmd = std::fs::read(entry.path().join("cmdline")).ok()?;
            (ppid == parent && cmd == cmdline.as_bytes()).then_some(pid)
        })
}

/// The state letter of a process (`R`, `S`, `Z`...), or `None` once it is gone.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses and may hold spaces.
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn run_leaves_nothing_when_its_command_cannot_start_and_reaps_what_it_detached() {
    let agent = Agent::start(Default::default()).unwrap();
    agent.ok(&["network", "create", "--subnet", "198.19.71.0/24", "b"]);
    let before = agent.listings();
    for detach in [false, true] {
        let mut args = vec!["run", "--name", "x", "--network", "b"];
        if detach {
            args.push("-d");
        }
        args.extend(["--", "/no/such/program"]);
        let out = agent.cli(&args);
        assert!(!out.success(), "{args:?}: {out:?}");
        let want = if detach { 1 } else { 127 };
        assert_eq!(out.code(), Some(want), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("cannot run /no/such/program"),
            "{out:?}"
        );
        assert_eq!(agent.listings(), before, "{args:?} left something behind");
    }
    assert!(
        agent.namespaces().iter().all(|n| !n.contains("sb-")),
        "{:?}",
        agent.namespaces()
    );

    // A detached command is the agent's child: killed by `sandbox rm -f`, it is reaped.
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "d",
        "--network",
        "b",
        "--",
        "sleep",
        "600",
    ]);
    let agent_pid = agent.pid().unwrap();
    let pid = wait_until("the detached sleep to run", Duration::from_secs(5), || {
        child_running(agent_pid, "sleep\x00600\x00")
    })
    .unwrap();
    assert_eq!(process_state(pid).map(|s| s != 'Z'), Some(true));
    agent.ok(&["sandbox", "rm", "-f", "d"]);
    wait_until(
        "the killed process to be reaped",
        Duration::from_secs(5),
        || process_state(pid).is_none().then_some(()),
    )
    .unwrap();
    agent.ok(&["network", "rm", "b"]);
}
