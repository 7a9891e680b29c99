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
