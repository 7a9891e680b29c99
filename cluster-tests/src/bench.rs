//! Helpers the benchmarks share: one keep-alive HTTP/1.1 connection to an agent's API
//! socket (so API timings exclude process spawns), and percentiles.

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;

/// How long one API call may take before the benchmark gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One keep-alive connection to the agent's API.
#[derive(Debug)]
pub struct ApiConnection {
    sender: SendRequest<Full<Bytes>>,
}

impl ApiConnection {
    /// Connects to the API socket at `socket`.
    pub async fn open(socket: &Path) -> anyhow::Result<ApiConnection> {
        let stream = UnixStream::connect(socket)
            .await
            .with_context(|| format!("connect to {}", socket.display()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the agent")?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("API connection ended: {e}");
            }
        });
        Ok(ApiConnection { sender })
    }

    /// One request; the answer must be 2xx. Returns the time from send to the last body
    /// byte, and the parsed answer (null when empty).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(Duration, serde_json::Value)> {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", "weft")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .context("build request")?;
        let start = Instant::now();
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, self.exchange(request))
            .await
            .with_context(|| format!("{method} {path}: no answer within {CALL_TIMEOUT:?}"))??;
        let elapsed = start.elapsed();
        anyhow::ensure!(
            status.is_success(),
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        );
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| format!("{method} {path}: JSON"))?
        };
        Ok((elapsed, value))
    }

    /// Like [`ApiConnection::call`], keeping only the time.
    pub async fn time(
        &mut self,
        method: Method,
        path: &str,
        body: &str,
    ) -> anyhow::Result<Duration> {
        Ok(self.call(method, path, body).await?.0)
    }

    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
        self.sender.ready().await.context("connection not ready")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .context("the agent closed the connection")?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("read answer")?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// p50, p99 and max of `samples` (nearest rank on the sorted samples); zeros when empty.
pub fn percentiles(samples: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let Some(&max) = sorted.last() else {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    };
    let at = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    (at(0.50), at(0.99), max)
}

/// A duration in milliseconds, three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Attempts to reach a just-started iperf3 server, and the pause between them.
const CONNECT_ATTEMPTS: usize = 50;
const CONNECT_PAUSE: Duration = Duration::from_millis(50);

/// One iperf3 result.
#[derive(Debug, Clone, Copy)]
pub struct Iperf {
    pub gbps: f64,
    pub retransmits: u64,
    /// CPU use of the client and the server process (iperf3: user + system time over wall
    /// time, in percent of one CPU).
    pub cpu_client: f64,
    pub cpu_server: f64,
}

pub fn parse_iperf(json: &str) -> anyhow::Result<Iperf> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 JSON")?;
    if let Some(e) = v["error"].as_str() {
        anyhow::bail!("iperf3: {e}");
    }
    let end = &v["end"];
    let bps = end["sum_received"]["bits_per_second"]
        .as_f64()
        .context("end.sum_received.bits_per_second")?;
    Ok(Iperf {
        gbps: bps / 1e9,
        retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        cpu_client: end["cpu_utilization_percent"]["host_total"]
            .as_f64()
            .unwrap_or(f64::NAN),
        cpu_server: end["cpu_utilization_percent"]["remote_total"]
            .as_f64()
            .unwrap_or(f64::NAN),
    })
}

/// Runs `client` (an iperf3 client command returning its JSON) until the just-started
/// server accepts it, at most `CONNECT_ATTEMPTS` times.
pub fn iperf_client(
    mut client: impl FnMut() -> anyhow::Result<(bool, String)>,
) -> anyhow::Result<Iperf> {
    let mut last = String::new();
    for _ in 0..CONNECT_ATTEMPTS {
        let (ok, json) = client()?;
        match parse_iperf(&json) {
            Ok(r) if ok => return Ok(r),
            Ok(_) => last = json,
            Err(e) => {
                last = format!("{e:#}");
                // Only a server that is not listening yet is worth another attempt.
                if !last.contains("Connection refused") {
                    anyhow::bail!("iperf3 client failed: {last}");
                }
            }
        }
        std::thread::sleep(CONNECT_PAUSE);
    }
    anyhow::bail!("iperf3 client never succeeded: {last}")
}

/// `rtt min/avg/max/mdev = a/b/c/d ms` → b, in ms.
pub fn parse_ping_avg(out: &str) -> anyhow::Result<f64> {
    let line = out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .with_context(|| format!("no rtt line in ping output: {out}"))?;
    let values = line.split('=').nth(1).context("rtt values")?.trim();
    let avg = values.split('/').nth(1).context("rtt avg")?;
    avg.trim().parse().context("rtt avg number")
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Runs `f` on a new OS thread that entered the network namespace at `netns` (a path),
/// and returns what it made. Sockets made there stay in that namespace whichever thread
/// uses them afterwards, so the calling thread never changes namespace.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    use std::os::fd::AsFd;
    let ns = std::fs::File::open(netns).with_context(|| format!("open {netns}"))?;
    let thread = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
        f()
    });
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the thread in {netns} panicked"))?
        .with_context(|| format!("in namespace {netns}"))
}

/// One `wrk` run: requests per second, and the requests that failed (socket errors of
/// every kind, and answers other than 2xx/3xx).
#[derive(Debug, Clone, Copy)]
pub struct Wrk {
    pub requests_per_s: f64,
    pub errors: u64,
}

/// Reads wrk's summary: `Requests/sec: N`, `Socket errors: connect a, read b, write c,
/// timeout d` and `Non-2xx or 3xx responses: e` (the last two only when non-zero).
pub fn parse_wrk(out: &str) -> anyhow::Result<Wrk> {
    let value = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_s = value("Requests/sec:")
        .with_context(|| format!("no Requests/sec in wrk output: {out}"))?
        .parse()
        .context("Requests/sec number")?;
    let mut errors = 0;
    if let Some(socket) = value("Socket errors:") {
        for part in socket.split(',') {
            let n = part.split_whitespace().last().unwrap_or("0");
            errors += n.parse::<u64>().context("wrk socket error count")?;
        }
    }
    if let Some(n) = value("Non-2xx or 3xx responses:") {
        errors += n.parse::<u64>().context("wrk non-2xx count")?;
    }
    Ok(Wrk {
        requests_per_s,
        errors,
    })
}

/// One `dnsperf` run: queries per second, the mean latency, and the queries lost.
#[derive(Debug, Clone, Copy)]
pub struct DnsPerf {
    pub queries_per_s: f64,
    pub avg_latency: Duration,
    pub lost: u64,
}

/// Reads dnsperf's statistics: `Queries per second: N`, `Average Latency (s): X (min ..)`
/// and `Queries lost: N (P%)`.
pub fn parse_dnsperf(out: &str) -> anyhow::Result<DnsPerf> {
    let first_word = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("no {prefix:?} in dnsperf output: {out}"))
    };
    let queries_per_s = first_word("Queries per second:")?
        .parse()
        .context("queries per second")?;
    let avg: f64 = first_word("Average Latency (s):")?
        .parse()
        .context("average latency")?;
    let lost = first_word("Queries lost:")?
        .parse()
        .context("queries lost")?;
    Ok(DnsPerf {
        queries_per_s,
        avg_latency: Duration::from_secs_f64(avg),
        lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_summary_gives_the_rate_and_every_kind_of_error() {
        let out = "Running 5s test @ http://198.19.192.4/\n\
            \x20 2 threads and 32 connections\n\
            \x20 123456 requests in 5.00s, 9.42MB read\n\
            \x20 Socket errors: connect 1, read 12, write 0, timeout 3\n\
            \x20 Non-2xx or 3xx responses: 2\n\
            Requests/sec:  24691.20\n\
            Transfer/sec:      1.88MB\n";
        let wrk = parse_wrk(out).unwrap();
        assert!((wrk.requests_per_s - 24691.2).abs() < 1e-9);
        assert_eq!(wrk.errors, 18);
        let clean = parse_wrk("Requests/sec: 10.5\n").unwrap();
        assert_eq!(clean.errors, 0);
        assert!(parse_wrk("unable to connect to 127.0.0.1:80 Connection refused").is_err());
    }

    #[test]
    fn dnsperf_statistics_give_rate_latency_and_losses() {
        let out = "Statistics:\n\n\
            \x20 Queries sent:         100\n\
            \x20 Queries completed:    97 (97.00%)\n\
            \x20 Queries lost:         3 (3.00%)\n\n\
            \x20 Queries per second:   21234.567890\n\n\
            \x20 Average Latency (s):  0.000321 (min 0.000010, max 0.001234)\n";
        let perf = parse_dnsperf(out).unwrap();
        assert!((perf.queries_per_s - 21234.56789).abs() < 1e-6);
        assert!((perf.avg_latency.as_secs_f64() - 0.000321).abs() < 1e-9);
        assert_eq!(perf.lost, 3);
    }
}
