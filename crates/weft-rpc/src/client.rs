//! Clients: [`RpcClient`] (mutual TLS, connections reused per peer) and [`JoinClient`]
//! (no certificate, CA pinned by fingerprint).

use crate::tls::{TlsMaterial, client_config, join_client_config, tls_error};
use crate::{JOIN_SERVER_NAME, MAX_MESSAGE, RpcError, code, decode, encode};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, ConnectionError, Endpoint, ReadError, ReadToEndError, WriteError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::timeout;
use weft_keys::{CaFingerprint, NodeIdentity};

/// Bound on connecting (handshake included), within the call's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn endpoint(tls: rustls::ClientConfig) -> Result<Endpoint, RpcError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(tls_error)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(IDLE_TIMEOUT).map_err(tls_error)?,
    ));
    config.transport_config(Arc::new(transport));
    // Dual-stack where IPv6 exists, IPv4 otherwise.
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
    let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let mut endpoint = Endpoint::client(v6)
        .or_else(|_| Endpoint::client(v4))
        .map_err(|source| RpcError::Bind { addr: v4, source })?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// A client of `weft-rpc/1`: presents the node certificate, trusts only the cluster CA.
pub struct RpcClient {
    endpoint: Endpoint,
    pub(crate) connections: Mutex<HashMap<(SocketAddr, String), Connection>>,
    max_response: usize,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish()
    }
}

impl RpcClient {
    /// A client speaking as `identity`.
    pub fn new(identity: &NodeIdentity) -> Result<Self, RpcError> {
        Self::with_material(&TlsMaterial::from_identity(identity)?)
    }

    /// A client from raw TLS material.
    pub fn with_material(material: &TlsMaterial) -> Result<Self, RpcError> {
        Ok(Self {
            endpoint: endpoint(client_config(material)?)?,
            connections: Mutex::new(HashMap::new()),
            max_response: MAX_MESSAGE,
        })
    }

    /// Sends `request` to the node `server_name` (its node id) at `addr` and returns the
    /// response; the whole call is bounded by `limit`.
    pub async fn call(
        &self,
        addr: SocketAddr,
        server_name: &str,
        request: &[u8],
        limit: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        if request.len() > MAX_MESSAGE {
            return Err(RpcError::TooLarge { limit: MAX_MESSAGE });
        }
        let call = async {
            let (conn, reused) = self.connection(addr, server_name, limit).await?;
            match exchange(&conn, addr, request, self.max_response).await {
                // A cached connection may have died quietly: retry once on a new one, but
                // only when the request was not sent (requests need not be idempotent).
                Err(Exchange::NotSent(_)) if reused => {
                    self.forget(addr, server_name);
                    let (conn, _) = self.connection(addr, server_name, limit).await?;
                    exchange(&conn, addr, request, self.max_response)
                        .await
                        .map_err(Exchange::into_error)
                }
                other => other.map_err(Exchange::into_error),
            }
        };
        let result = timeout(limit, call)
            .await
            .unwrap_or(Err(RpcError::Timeout { addr, after: limit }));
        if matches!(
            result,
            Err(RpcError::Refused { .. } | RpcError::Timeout { .. } | RpcError::Stream { .. })
        ) {
            self.forget(addr, server_name);
        }
        result
    }

    /// [`RpcClient::call`] with bincode-encoded request and response.
    pub async fn call_typed<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        server_name: &str,
        request: &Req,
        limit: Duration,
    ) -> Result<Resp, RpcError> {
        let response = self
            .call(addr, server_name, &encode(request)?, limit)
            .await?;
        decode(&response)
    }

    async fn connection(
        &self,
        addr: SocketAddr,
        server_name: &str,
        limit: Duration,
    ) -> Result<(Connection, bool), RpcError> {
        let key = (addr, server_name.to_owned());
        if let Some(conn) = self.cached(&key) {
            return Ok((conn, true));
        }
        let conn = connect(&self.endpoint, addr, server_name, limit).await?;
        if let Ok(mut map) = self.connections.lock() {
            map.insert(key, conn.clone());
        }
        Ok((conn, false))
    }

    fn cached(&self, key: &(SocketAddr, String)) -> Option<Connection> {
        let map = self.connections.lock().ok()?;
        map.get(key)
            .filter(|conn| conn.close_reason().is_none())
            .cloned()
    }

    fn forget(&self, addr: SocketAddr, server_name: &str) {
        if let Ok(mut map) = self.connections.lock() {
            map.remove(&(addr, server_name.to_owned()));
        }
    }

    /// Closes every connection and waits (at most one second) for the peers to be told.
    pub async fn close(&self) {
        self.endpoint.close(code::SHUTDOWN, b"shutdown");
        let _ = timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// A client of `weft-join/1`: no certificate; the server must present a chain holding the
/// CA whose fingerprint the join token carries.
pub struct JoinClient {
    endpoint: Endpoint,
}

impl std::fmt::Debug for JoinClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinClient").finish()
    }
}

impl JoinClient {
    /// A client that trusts only the CA with `fingerprint`.
    pub fn new(fingerprint: CaFingerprint) -> Result<Self, RpcError> {
        Ok(Self {
            endpoint: endpoint(join_client_config(fingerprint)?)?,
        })
    }

    /// Sends `request` to the seed at `addr`; bounded by `limit`.
    pub async fn call(
        &self,
        addr: SocketAddr,
        request: &[u8],
        limit: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        if request.len() > MAX_MESSAGE {
            return Err(RpcError::TooLarge { limit: MAX_MESSAGE });
        }
        let call = async {
            let conn = connect(&self.endpoint, addr, JOIN_SERVER_NAME, limit).await?;
            let result = exchange(&conn, addr, request, MAX_MESSAGE)
                .await
                .map_err(Exchange::into_error);
            conn.close(code::SHUTDOWN, b"done");
            result
        };
        timeout(limit, call)
            .await
            .unwrap_or(Err(RpcError::Timeout { addr, after: limit }))
    }

    /// Closes the endpoint and waits (at most one second) for the peers to be told.
    pub async fn close(&self) {
        self.endpoint.close(code::SHUTDOWN, b"shutdown");
        let _ = timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

async fn connect(
    endpoint: &Endpoint,
    addr: SocketAddr,
    server_name: &str,
    limit: Duration,
) -> Result<Connection, RpcError> {
    let connecting = endpoint
        .connect(addr, server_name)
        .map_err(|e| RpcError::Connect {
            addr,
            reason: e.to_string(),
        })?;
    let bound = limit.min(CONNECT_TIMEOUT);
    match timeout(bound, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(connection_error(addr, error)),
        Err(_) => Err(RpcError::Timeout { addr, after: bound }),
    }
}

/// How an exchange failed: before the request left (safe to retry) or after.
enum Exchange {
    NotSent(RpcError),
    Failed(RpcError),
}

impl Exchange {
    fn into_error(self) -> RpcError {
        match self {
            Exchange::NotSent(e) | Exchange::Failed(e) => e,
        }
    }
}

async fn exchange(
    conn: &Connection,
    addr: SocketAddr,
    request: &[u8],
    max_response: usize,
) -> Result<Vec<u8>, Exchange> {
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| Exchange::NotSent(connection_error(addr, e)))?;
    let failed = |e| Exchange::Failed(e);
    send.write_all(request)
        .await
        .map_err(|e| failed(write_error(addr, e)))?;
    send.finish().map_err(|e| {
        failed(RpcError::Stream {
            addr,
            reason: e.to_string(),
        })
    })?;
    recv.read_to_end(max_response).await.map_err(|e| {
        failed(match e {
            ReadToEndError::TooLong => RpcError::TooLarge {
                limit: max_response,
            },
            ReadToEndError::Read(e) => read_error(addr, e),
        })
    })
}

fn stream_code(addr: SocketAddr, code: quinn::VarInt) -> RpcError {
    if code == code::TOO_LARGE {
        RpcError::TooLarge { limit: MAX_MESSAGE }
    } else {
        RpcError::Remote {
            addr,
            code: code.into_inner(),
        }
    }
}

fn write_error(addr: SocketAddr, error: WriteError) -> RpcError {
    match error {
        WriteError::Stopped(code) => stream_code(addr, code),
        WriteError::ConnectionLost(e) => connection_error(addr, e),
        other => RpcError::Stream {
            addr,
            reason: other.to_string(),
        },
    }
}

fn read_error(addr: SocketAddr, error: ReadError) -> RpcError {
    match error {
        ReadError::Reset(code) => stream_code(addr, code),
        ReadError::ConnectionLost(e) => connection_error(addr, e),
        other => RpcError::Stream {
            addr,
            reason: other.to_string(),
        },
    }
}

fn connection_error(addr: SocketAddr, error: ConnectionError) -> RpcError {
    match error {
        ConnectionError::TimedOut => RpcError::Timeout {
            addr,
            after: IDLE_TIMEOUT,
        },
        ConnectionError::ApplicationClosed(close) if close.error_code == code::REFUSED => {
            RpcError::Refused {
                addr,
                reason: "the server requires a valid node certificate".to_owned(),
            }
        }
        // TLS failures, on either side, end the connection with a transport (crypto) error.
        ConnectionError::TransportError(_) | ConnectionError::ConnectionClosed(_) => {
            RpcError::Refused {
                addr,
                reason: error.to_string(),
            }
        }
        other => RpcError::Stream {
            addr,
            reason: other.to_string(),
        },
    }
}
