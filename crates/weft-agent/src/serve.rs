//! Serving the agent's HTTP routers (the local API, diagnostics, metrics) with limits that
//! `axum::serve` does not have: a cap on open connections, and a timeout on reading each
//! request's head, which also closes a connection that stays silent (before its first
//! request or between two). Without them, a few hundred clients that send their headers
//! slowly stay open for good and hold the agent's memory.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a whole request head, counted from when the server starts
/// waiting for it (so a silent connection is closed after it too).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shutdown waits for requests in flight to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed accept (e.g. out of file descriptors), wait before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listening socket: unix for the local API, TCP for diagnostics and metrics.
pub trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then waits (a bounded time) for
/// the requests in flight.
pub async fn serve<L: Listener>(
    mut listener: L,
    app: Router,
    what: &'static str,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Told to every connection at shutdown: idle ones close, busy ones finish first.
    let (stopping, stop_notice) = watch::channel(false);
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!(server = what, error = %e, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            // The first refusal, then one line per hundred: a flood must not flood the log.
            if refused % 100 == 1 {
                warn!(
                    server = what,
                    max = MAX_CONNECTIONS,
                    refused,
                    "too many open connections: refusing new ones"
                );
            }
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_notice.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => served,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                debug!(server = what, error = %e, "connection closed with an error");
            }
        });
    }
    let _ = stopping.send(true);
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        warn!(server = what, "requests still running at shutdown were cut");
    }
}
