//! Bad input of every kind gets exit code 1 and one line on stderr; the agent keeps
//! running and its state is unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Agent, AgentOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn raw_http(agent: &Agent, request: &str) -> String {
    let mut stream = UnixStream::connect(agent.socket()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST /v1{path} HTTP/1.1\r\nHost: weft\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn bad_input_is_refused_in_one_line_and_changes_nothing() {
    let mut agent = Agent::start(AgentOptions::default()).unwrap();
    agent.ok(&[
        "network",
        "create",
        "-d",
        "null",
        "--subnet",
        "198.19.64.0/24",
        "n1",
    ]);
    agent.ok(&["endpoint", "create", "n1", "e1"]);
    agent.ok(&["sandbox", "create", "s1"]);
    let before = agent.listings();
    let long = "x".repeat(65);
    let cases: Vec<Vec<&str>> = vec![
        vec!["network", "create", "-d", "null", ""],
        vec!["network", "create", "-d", "null", &long],
        vec!["network", "create", "-d", "null", "a/b"],
        vec![
            "network",
            "create",
            "-d",
            "null",
            "--subnet",
            "198.19.1.0/33",
            "x",
        ],
        vec![
            "network",
            "create",
            "-d",
            "null",
            "--subnet",
            "not-a-cidr",
            "x",
        ],
        vec![
            "network",
            "create",
            "-d",
            "null",
            "--subnet",
            "198.19.64.128/25",
            "overlap",
        ],
        vec![
            "network",
            "create",
            "-d",
            "null",
            "--subnet",
            "198.19.65.7/24",
            "hostbits",
        ],
        vec![
            "network",
            "create",
            "-d",
            "null",
            "--subnet",
            "198.19.66.0/24",
            "--gateway",
            "198.19.67.1",
            "gw",
        ],
        vec![
            "network",
            "create",
            "-d",
            "null",
            "--subnet",
            "198.19.66.0/24",
            "--ip-range",
            "198.19.0.0/25",
            "rng",
        ],
        vec!["network", "create", "-d", "null", "n1"],
        vec!["network", "create", "-d", "no-such-driver", "x"],
        vec!["network", "create", "-d", "null", "-o", "mtu=9000", "x"],
        vec!["network", "create", "-d", "null", "--label", "a b=c", "x"],
        vec!["network", "inspect", "nope"],
        vec!["network", "rm", "nope"],
        vec!["network", "rm", "n1"],
        vec!["endpoint", "create", "nope", "e"],
        vec!["endpoint", "create", "n1", "e1"],
        vec!["endpoint", "create", "--ip", "198.19.99.9", "n1", "e9"],
        vec!["endpoint", "create", "--ip", "198.19.64.1", "n1", "e9"],
        vec![
            "endpoint",
            "create",
            "--mac",
            "01:00:5e:00:00:01",
            "n1",
            "e9",
        ],
        vec!["endpoint", "join", "n1", "nope", "s1"],
        vec!["endpoint", "join", "n1", "e1", "nope"],
        vec!["endpoint", "leave", "n1", "e1"],
        vec!["endpoint", "rm", "n1", "nope"],
        vec!["sandbox", "create", "s1"],
        vec!["sandbox", "create", "--hostname", "bad_host", "s2"],
        vec!["sandbox", "rm", "nope"],
    ];
    for args in &cases {
        let out = agent.cli(args);
        assert_eq!(
            out.code(),
            Some(1),
            "weft {args:?}: expected exit 1, got {:?}: {}",
            out.code(),
            out.stderr
        );
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "weft {args:?}: expected one line, got {:?}",
            out.stderr
        );
        assert!(
            lines[0].starts_with("error: ") && lines[0].len() > 12,
            "weft {args:?}: {:?}",
            lines[0]
        );
        assert!(
            out.stdout.is_empty(),
            "weft {args:?} printed {:?}",
            out.stdout
        );
    }

    // Malformed requests on the socket itself.
    let answers = [
        raw_http(&agent, &post("/networks", "{\"name\": ")),
        raw_http(&agent, &post("/networks", "[1,2,3]")),
        raw_http(
            &agent,
            &post(
                "/networks",
                "{\"name\":\"ok\",\"driver\":\"null\",\"subnets\":[{\"subnet\":\"x\"}]}",
            ),
        ),
        raw_http(&agent, &post("/networks/n1/endpoints/e1/join", "{}")),
        raw_http(
            &agent,
            "DELETE /v1/networks/n1?force=maybe HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n",
        ),
        raw_http(
            &agent,
            "GET /v1/nothing-here HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n",
        ),
        raw_http(&agent, "garbage\r\n\r\n"),
    ];
    for (i, answer) in answers.iter().enumerate() {
        let status = answer.split_whitespace().nth(1).unwrap_or("");
        assert!(
            status.starts_with('4'),
            "request {i}: expected a 4xx answer, got {answer:?}"
        );
    }
    for answer in &answers[..6] {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        let err: serde_json::Value =
            serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
        assert!(
            err["kind"].is_string() && err["message"].is_string(),
            "{answer:?}"
        );
    }

    assert!(agent.is_running(), "the agent died on bad input");
    assert_eq!(
        agent.listings(),
        before,
        "bad input changed the agent's state"
    );
    // And it still works.
    agent.ok(&["endpoint", "create", "n1", "e2"]);
    agent.stop().unwrap();
}

#[test]
fn unreachable_agent_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(cluster_tests::weft_bin())
        .args([
            "--host",
            &format!("unix://{}/none.sock", dir.path().display()),
            "network",
            "ls",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("weft agent"), "{stderr}");
}
