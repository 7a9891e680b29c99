//! What a manager does with what it refuses on its RPC port (issue 18, item 8): junk
//! datagrams are counted; wrong-secret joins are refused, logged with the source and the
//! reason, counted, and after a burst of 5 refused at once as rate-limited (without looking
//! at the secret); a joiner that rejects the manager's CA leaves a counted, logged TLS
//! failure; a correct join from another source still works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cluster_tests::{Topology, wait_until};
use std::time::{Duration, Instant};

const METRICS_ADDR: &str = "127.0.0.1:9464";
const ATTEMPTS: usize = 20;
/// The limiter's burst (weft_rpc::LimitConfig::default()).
const BURST: usize = 5;

/// Host `i`'s Prometheus metrics, fetched inside its namespace.
fn metrics(topology: &Topology, i: usize) -> String {
    let script = "exec 3<>/dev/tcp/127.0.0.1/9464 && \
                  printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 5 cat <&3";
    let out = topology.exec(i, "bash", &["-c", script]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample named exactly `name` (with its labels), 0 when absent.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn refused_joins_are_counted_logged_and_rate_limited() {
    let topology = Topology::create(3).unwrap();
    let h1 = topology
        .start_agent(1, &["--init", "--metrics-addr", METRICS_ADDR])
        .unwrap();
    let worker = h1.ok(&["cluster", "token", "worker"]).trim().to_owned();
    let seed = format!("{}:7947", topology.addr(1));

    // Junk on the RPC port, from host 2: counted, nothing else happens.
    let junk = format!(
        "for i in $(seq 10); do printf 'not quic %s' $i > /dev/udp/{}/7947; done",
        topology.addr(1)
    );
    let out = topology.exec(2, "bash", &["-c", &junk]).unwrap();
    assert!(out.status.success(), "{out:?}");
    let counted = wait_until("10 junk datagrams counted", Duration::from_secs(10), || {
        let m = metrics(&topology, 1);
        (sample(&m, "weft_rpc_junk_datagrams_total") >= 10).then_some(m)
    })
    .unwrap();
    assert_eq!(
        sample(&counted, "weft_rpc_junk_datagrams_total"),
        10,
        "{counted}"
    );
    assert_eq!(
        sample(&counted, "weft_rpc_handshakes_total{outcome=\"completed\"}"),
        0
    );

    // Wrong-secret joins from host 2 in quick succession.
    let (prefix, secret) = worker.rsplit_once('-').unwrap();
    let wrong_secret = format!("{prefix}-{}", "0".repeat(64));
    let start = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..ATTEMPTS {
        let err = topology
            .start_agent(2, &["--join", &seed, "--token", &wrong_secret])
            .unwrap_err();
        answers.push(format!("{err:#}"));
    }
    let elapsed = start.elapsed();
    let limited_msg = format!("too many failed joins from {}, retry in", topology.addr(2));
    let wrong: Vec<usize> = (0..ATTEMPTS)
        .filter(|&i| answers[i].contains("invalid join token"))
        .collect();
    let limited: Vec<usize> = (0..ATTEMPTS)
        .filter(|&i| answers[i].contains(&limited_msg))
        .collect();
    println!(
        "{ATTEMPTS} wrong-secret joins in {elapsed:?}: {} refused as wrong, {} as rate-limited (attempts {limited:?})",
        wrong.len(),
        limited.len()
    );
    assert_eq!(
        wrong.len() + limited.len(),
        ATTEMPTS,
        "every attempt names its reason: {answers:#?}"
    );
    assert_eq!(&wrong[..BURST], &[0, 1, 2, 3, 4], "the burst: {answers:#?}");
    // After the burst, one failure per second of the whole run at most gets through.
    assert!(
        wrong.len() <= BURST + elapsed.as_secs() as usize + 1,
        "{elapsed:?}: {answers:#?}"
    );
    assert!(!limited.is_empty(), "{elapsed:?}: {answers:#?}");

    // A token naming another CA, from host 2: the joiner refuses the manager; the manager
    // sees a TLS alert (not a join: the limit does not apply).
    let other_ca = format!("weft-W-{}-{secret}", "ab".repeat(32));
    let err = topology
        .start_agent(2, &["--join", &seed, "--token", &other_ca])
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not hold the cluster CA"),
        "{err:#}"
    );

    // A correct join from host 3 is not affected by host 2's limit.
    let h3 = topology
        .start_agent(3, &["--join", &seed, "--token", &worker])
        .unwrap();
    assert!(h3.log().contains("joined the cluster"), "{}", h3.log());

    let m = wait_until("the TLS failure counted", Duration::from_secs(10), || {
        let m = metrics(&topology, 1);
        (sample(
            &m,
            "weft_rpc_handshakes_total{outcome=\"peer_rejected_tls\"}",
        ) >= 1)
            .then_some(m)
    })
    .unwrap();
    println!("{m}");
    let refused = |reason: &str| {
        sample(
            &m,
            &format!("weft_joins_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(refused("wrong_secret"), wrong.len() as u64, "{m}");
    assert_eq!(refused("rate_limited"), limited.len() as u64, "{m}");
    assert_eq!(sample(&m, "weft_joins_admitted_total"), 1, "{m}");
    assert_eq!(
        sample(
            &m,
            "weft_rpc_handshakes_total{outcome=\"peer_rejected_tls\"}"
        ),
        1,
        "{m}"
    );
    assert_eq!(
        sample(&m, "weft_rpc_junk_datagrams_total"),
        10,
        "real QUIC is not junk: {m}"
    );

    // The manager's log names the source and the reason of each refusal.
    let log = h1.log();
    let from_h2 = format!("from={}:", topology.addr(2));
    let lines = |reason: &str| {
        log.lines()
            .filter(|l| l.contains("refused a node") && l.contains(&from_h2) && l.contains(reason))
            .count()
    };
    assert_eq!(lines("reason=wrong_secret"), wrong.len(), "{log}");
    assert_eq!(lines("reason=rate_limited"), limited.len(), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("rejected this node's certificate")
                && l.contains(&format!("addr={}:", topology.addr(2)))),
        "{log}"
    );

    // The same counters in `weft diag stats`.
    let stats = h1.json(&["diag", "stats"]);
    assert_eq!(stats["rpc"]["server"]["junk_datagrams"], 10, "{stats}");
    assert_eq!(
        stats["rpc"]["joins_refused"]["rate_limited"],
        limited.len() as u64
    );
}
