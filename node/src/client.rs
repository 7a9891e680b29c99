//! The CLI's side of the local API: HTTP/1.1 over the agent's unix socket.

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use tokio::net::UnixStream;
use weft_types::Error;
use weft_types::api::API_PREFIX;

/// Largest answer the CLI reads, so a confused peer cannot exhaust memory.
const MAX_RESPONSE: usize = 64 << 20;

/// Where the agent listens, from `--host unix:///path` or `WEFT_HOST`.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

/// A failed API call: either the agent answered with an error, or it could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Api(Error),
    #[error(transparent)]
    Transport(#[from] anyhow::Error),
    /// A command run in a sandbox ended with this code (already reported).
    #[error("exit status {0}")]
    Exit(u8),
}

impl Client {
    /// Parses `unix:///path/to/sock` (or a bare path).
    pub fn from_host(host: &str) -> anyhow::Result<Self> {
        let path = match host.strip_prefix("unix://") {
            Some(p) => p,
            None if host.starts_with('/') => host,
            None => anyhow::bail!("unsupported --host {host:?}: use unix:///path/to/weft.sock"),
        };
        anyhow::ensure!(!path.is_empty(), "--host {host:?} names no socket path");
        Ok(Client {
            socket: PathBuf::from(path),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), CallError> {
        self.call::<(), serde::de::IgnoredAny>(Method::DELETE, path, None)
            .await
            .map(|_| ())
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).context("failed to encode request")?),
            None => Bytes::new(),
        };
        let (status, bytes) = self.exchange(method, path, body).await?;
        if status.is_success() {
            let bytes = if bytes.is_empty() {
                Bytes::from_static(b"null")
            } else {
                bytes
            };
            return serde_json::from_slice(&bytes).map_err(|e| {
                CallError::Transport(anyhow::anyhow!("unexpected answer from the agent: {e}"))
            });
        }
        match serde_json::from_slice::<Error>(&bytes) {
            Ok(e) => Err(CallError::Api(e)),
            Err(_) => Err(CallError::Transport(anyhow::anyhow!(
                "agent answered {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            ))),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let stream = UnixStream::connect(&self.socket).await.with_context(|| {
            format!(
                "cannot reach the weft agent at {}: is `weft agent` running? (set --host or WEFT_HOST)",
                self.socket.display()
            )
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the agent failed")?;
        tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(format!("{API_PREFIX}{path}"))
            .header("host", "weft")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .context("failed to build request")?;
        let response = sender
            .send_request(request)
            .await
            .context("the agent closed the connection")?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("failed to read the agent's answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}
