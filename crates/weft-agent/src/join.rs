//! Secure membership: how a node gets its identity and the cluster's gossip keyring.
//!
//! - `--init` (or a first start without `--join`): the node creates the cluster CA, its
//!   own certificate, the worker and manager join tokens and the gossip keyring; it is a
//!   manager and admits other nodes on the join protocol of its RPC port.
//! - `--join ADDR --token T`: the node sends the token's secret and a certificate request
//!   to ADDR over QUIC, checking that ADDR holds the CA the token names; it receives its
//!   certificate, the gossip keyring and the gossip seeds, and stores them.
//!
//! Every file is written before the identity, whose presence means "joined": a restart
//! then needs neither the token nor `--join`.

use crate::AgentError;
use crate::config::ClusterSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tracing::{info, warn};
use weft_keys::{
    ClusterCa, ClusterTokens, JoinToken, KeyId, Keyring, NodeId, NodeIdentity, NodeKey, Role,
    SymmetricKey, keyfile,
};
use weft_rpc::{
    FailureLimiter, JoinClient, LimitConfig, RpcError, RpcHandler, RpcServer, ServerOptions,
    ServerStats, StatsHandle, TlsMaterial, join_handler,
};

const IDENTITY_DIR: &str = "identity";
const CA_DIR: &str = "ca";
const TOKENS_FILE: &str = "tokens";
const KEYRING_FILE: &str = "gossip.keyring";
/// The data-path keyring (for encrypted networks, later): made with the cluster.
const DATAPATH_KEYRING_FILE: &str = "datapath.keyring";
const SEEDS_FILE: &str = "seeds";
/// How long one join attempt may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a joining node asks.
#[derive(Serialize, Deserialize)]
struct JoinRequest {
    manager: bool,
    secret: Vec<u8>,
    node_id: String,
    csr_der: Vec<u8>,
}

/// A key as sent to a joining node (inside the mutually authenticated QUIC session):
/// id, material, creation time (0 when unknown).
type WireKey = (u32, Vec<u8>, u64);

/// What a manager answers.
#[derive(Serialize, Deserialize)]
enum JoinResponse {
    Accepted {
        cert_pem: String,
        ca_pem: String,
        keys: Vec<WireKey>,
        datapath_keys: Vec<WireKey>,
        gossip_seeds: Vec<SocketAddr>,
        managers: Vec<ManagerAddr>,
    },
    Refused(String),
}

/// Where a manager answers RPC requests, and the node id its certificate names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerAddr {
    pub node_id: String,
    pub rpc: SocketAddr,
}

const MANAGERS_FILE: &str = "managers";

/// The managers this node was told of when it joined (none on a manager itself).
pub fn managers(data_dir: &Path) -> Result<Vec<ManagerAddr>, AgentError> {
    let path = data_dir.join(MANAGERS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AgentError::file("cannot read", &path, e)),
    };
    let corrupt = |what, text: &str, reason: String| AgentError::Corrupt {
        what,
        text: text.to_owned(),
        path: path.clone(),
        reason,
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let (Some(node_id), Some(rpc), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt("line", line, "expected NODE-ID IP:PORT".to_owned()));
            };
            NodeId::new(node_id).map_err(|e| corrupt("manager id", node_id, e.to_string()))?;
            let rpc = rpc.parse().map_err(|e: std::net::AddrParseError| {
                corrupt("manager address", rpc, e.to_string())
            })?;
            Ok(ManagerAddr {
                node_id: node_id.to_owned(),
                rpc,
            })
        })
        .collect()
}

fn identity_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(IDENTITY_DIR)
}

/// Creates a directory for key material, readable by its owner only.
fn private_dir(dir: &Path) -> Result<(), AgentError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AgentError::file("cannot create", dir, e))
}

/// This node's certificate and key.
pub fn load_identity(data_dir: &Path) -> Result<NodeIdentity, AgentError> {
    NodeIdentity::load(&identity_dir(data_dir))
        .map_err(AgentError::keys("cannot load this node's identity"))
}

/// True once the node has an identity (it made or joined a cluster with a token).
pub fn has_identity(data_dir: &Path) -> bool {
    identity_dir(data_dir).join("node.crt").exists()
}

/// True on a node that holds the cluster CA (a manager).
pub fn is_manager(data_dir: &Path) -> bool {
    data_dir.join(CA_DIR).join("cluster-ca.key").exists()
}

/// Makes a new cluster: CA, this node's identity, join tokens, gossip keyring.
pub fn init(data_dir: &Path, node_name: &str) -> Result<(), AgentError> {
    let node = node_id(node_name)?;
    let ca =
        ClusterCa::generate("weft").map_err(AgentError::keys("cannot create the cluster CA"))?;
    private_dir(&data_dir.join(CA_DIR))?;
    private_dir(&identity_dir(data_dir))?;
    ca.to_files(&data_dir.join(CA_DIR))
        .map_err(AgentError::keys("cannot store the cluster CA"))?;
    ClusterTokens::generate(ca.fingerprint())
        .map_err(AgentError::keys("cannot make the join tokens"))?
        .save(&data_dir.join(TOKENS_FILE))
        .map_err(AgentError::keys("cannot store the join tokens"))?;
    for file in [KEYRING_FILE, DATAPATH_KEYRING_FILE] {
        // A keyring already here (a node of the copied-keyring flow) is kept.
        let path = data_dir.join(file);
        if !path.exists() {
            keyfile::create_full_keyring(&path)
                .map_err(AgentError::keys("cannot create a keyring"))?;
        }
    }
    let identity = ca
        .issue_identity(&node)
        .map_err(AgentError::keys("cannot issue this node's certificate"))?;
    identity
        .save(&identity_dir(data_dir))
        .map_err(AgentError::keys("cannot store this node's identity"))?;
    info!(fingerprint = %ca.fingerprint(), "initialised a new cluster: this node is a manager");
    Ok(())
}

/// Joins through the first of `seeds` that admits this node with `token`.
pub async fn join(
    data_dir: &Path,
    node_name: &str,
    token: &JoinToken,
    seeds: &[SocketAddr],
) -> Result<(), AgentError> {
    if seeds.is_empty() {
        return Err(AgentError::Refused(format!(
            "--token needs --join with a manager's address (IP:{})",
            crate::config::DEFAULT_RPC_PORT
        )));
    }
    let node = node_id(node_name)?;
    let key = NodeKey::generate().map_err(AgentError::keys("cannot generate this node's key"))?;
    let request = JoinRequest {
        manager: token.role() == Role::Manager,
        secret: token.secret().to_vec(),
        node_id: node.as_str().to_owned(),
        csr_der: key
            .csr_der(&node)
            .map_err(AgentError::keys("cannot make a certificate request"))?,
    };
    let request =
        weft_rpc::encode(&request).map_err(AgentError::rpc("cannot encode the join request"))?;
    let client = JoinClient::new(token.fingerprint())
        .map_err(AgentError::rpc("cannot set up the join client"))?;
    let mut last = None;
    for seed in seeds {
        match client.call(*seed, &request, JOIN_TIMEOUT).await {
            Ok(answer) => match weft_rpc::decode::<JoinResponse>(&answer).map_err(
                AgentError::rpc(format!("{seed} answered the join with garbage")),
            )? {
                JoinResponse::Accepted {
                    cert_pem,
                    ca_pem,
                    keys,
                    datapath_keys,
                    gossip_seeds,
                    managers,
                } => {
                    let identity = key
                        .into_identity(&cert_pem, &ca_pem)
                        .map_err(AgentError::keys("the manager sent an unusable certificate"))?;
                    let datapath = to_ring(&datapath_keys)?;
                    keyfile::write_keyring(&data_dir.join(DATAPATH_KEYRING_FILE), &datapath)
                        .map_err(AgentError::keys("cannot store the data-path keyring"))?;
                    let text: String = managers
                        .iter()
                        .map(|m| format!("{} {}\n", m.node_id, m.rpc))
                        .collect();
                    let path = data_dir.join(MANAGERS_FILE);
                    std::fs::write(&path, text).map_err(|e| {
                        AgentError::file("cannot store the managers' addresses in", &path, e)
                    })?;
                    store_joined(data_dir, &identity, &keys, &gossip_seeds)?;
                    info!(via = %seed, "joined the cluster");
                    return Ok(());
                }
                JoinResponse::Refused(reason) => {
                    return Err(AgentError::Join(format!(
                        "{seed} refused to admit this node: {reason}"
                    )));
                }
            },
            Err(RpcError::Refused { .. }) => {
                last = Some(AgentError::Join(format!(
                    "{seed} does not hold the cluster CA named in the token: wrong token or wrong address"
                )));
            }
            Err(e) => last = Some(AgentError::rpc(format!("cannot join through {seed}"))(e)),
        }
    }
    Err(last.unwrap_or_else(|| AgentError::Join("no seed to join through".to_owned())))
}

fn node_id(node_name: &str) -> Result<NodeId, AgentError> {
    NodeId::new(node_name).map_err(AgentError::keys(
        "--node-name is not a valid node id (lower-case letters, digits, '-')",
    ))
}

/// A keyring from the keys a manager sent, primary first.
fn to_ring(keys: &[WireKey]) -> Result<Keyring, AgentError> {
    let mut ring: Option<Keyring> = None;
    for (id, material, created) in keys {
        let bytes: [u8; weft_keys::KEY_LEN] = material
            .as_slice()
            .try_into()
            .map_err(|_| AgentError::Join("the manager sent a malformed key".to_owned()))?;
        let key = SymmetricKey::new(KeyId(*id), bytes).with_created(*created);
        match ring.as_mut() {
            None => ring = Some(Keyring::new(key)),
            Some(r) => r
                .add(key)
                .map_err(AgentError::keys("the manager sent an unusable keyring"))?,
        }
    }
    ring.ok_or_else(|| AgentError::Join("the manager sent an empty keyring".to_owned()))
}

/// The keyring and seeds first, the identity last.
fn store_joined(
    data_dir: &Path,
    identity: &NodeIdentity,
    keys: &[WireKey],
    seeds: &[SocketAddr],
) -> Result<(), AgentError> {
    let ring = to_ring(keys)?;
    keyfile::write_keyring(&data_dir.join(KEYRING_FILE), &ring)
        .map_err(AgentError::keys("cannot store the gossip keyring"))?;
    let text: String = seeds.iter().map(|s| format!("{s}\n")).collect();
    let path = data_dir.join(SEEDS_FILE);
    std::fs::write(&path, text)
        .map_err(|e| AgentError::file("cannot store the gossip seeds in", &path, e))?;
    private_dir(&identity_dir(data_dir))?;
    identity
        .save(&identity_dir(data_dir))
        .map_err(AgentError::keys("cannot store this node's identity"))?;
    Ok(())
}

/// On a manager: serves the join protocol and, for nodes with a certificate, `service`
/// (the allocator), on the RPC port.
pub fn serve(
    data_dir: &Path,
    node_name: &str,
    settings: &ClusterSettings,
    service: RpcHandler,
) -> Result<RpcServer, AgentError> {
    let identity = load_identity(data_dir)?;
    let material = TlsMaterial::from_identity(&identity)
        .map_err(AgentError::rpc("cannot use this node's identity for RPC"))?;
    let admission = Arc::new(Admission {
        ca: ClusterCa::from_files(&data_dir.join(CA_DIR))
            .map_err(AgentError::keys("cannot load the cluster CA"))?,
        tokens: ClusterTokens::load(&data_dir.join(TOKENS_FILE))
            .map_err(AgentError::keys("cannot load the join tokens"))?,
        keyring_file: data_dir.join(KEYRING_FILE),
        gossip: settings.advertise,
        manager: ManagerAddr {
            node_id: node_name.to_owned(),
            rpc: SocketAddr::new(settings.advertise.ip(), settings.rpc_port),
        },
        limiter: Mutex::new(FailureLimiter::new(LimitConfig::default())),
    });
    let join = join_handler(move |from, request| {
        let admission = admission.clone();
        async move { admission.admit(from, &request) }
    });
    let addr = SocketAddr::new(settings.listen.ip(), settings.rpc_port);
    let server = RpcServer::bind_with(
        addr,
        &material,
        ServerOptions::default(),
        service,
        Some(join),
    )
    .map_err(AgentError::rpc(format!("cannot serve RPC on {addr}")))?;
    // An agent serves one RPC port for its whole life; a second set would be a bug, and
    // the first port's counters stay the ones reported.
    if SERVED.set(server.stats()).is_err() {
        warn!(%addr, "a second RPC server started: /metrics reports the first");
    }
    info!(%addr, "serving the allocator and admitting nodes with join tokens");
    Ok(server)
}

/// What a manager needs to admit a node.
struct Admission {
    ca: ClusterCa,
    tokens: ClusterTokens,
    keyring_file: PathBuf,
    gossip: SocketAddr,
    manager: ManagerAddr,
    /// Failed joins per source: guessing the secret costs a second per try after 5.
    limiter: Mutex<FailureLimiter>,
}

/// Why a manager refused a join, as counted (`weft_joins_refused_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// The source failed too often lately; its request was not looked at.
    RateLimited,
    /// The request did not decode.
    Malformed,
    /// The secret is not the token's.
    WrongSecret,
    /// The manager token: a second manager is not supported yet.
    ManagerRole,
    /// A right secret, but an invalid node id or certificate request.
    BadRequest,
    /// This manager could not read its keyring.
    Internal,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::RateLimited,
        Refusal::Malformed,
        Refusal::WrongSecret,
        Refusal::ManagerRole,
        Refusal::BadRequest,
        Refusal::Internal,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate_limited",
            Refusal::Malformed => "malformed",
            Refusal::WrongSecret => "wrong_secret",
            Refusal::ManagerRole => "manager_role",
            Refusal::BadRequest => "bad_request",
            Refusal::Internal => "internal",
        }
    }

    /// Failures that may be someone guessing: they count against the source's limit.
    fn is_guess(self) -> bool {
        matches!(self, Refusal::Malformed | Refusal::WrongSecret)
    }
}

/// Joins answered by this process, by outcome.
struct JoinCounters {
    admitted: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

static JOINS: JoinCounters = JoinCounters {
    admitted: AtomicU64::new(0),
    refused: [const { AtomicU64::new(0) }; Refusal::ALL.len()],
};

/// The counters of the RPC port this process serves (managers only). Process-wide, like
/// the port itself: /metrics and /diag/stats read them without every router carrying them.
static SERVED: OnceLock<StatsHandle> = OnceLock::new();

/// What the RPC port of a manager counted: the transport's counters and the joins.
#[derive(Debug, Clone, Serialize)]
pub struct RpcPortStats {
    pub server: ServerStats,
    pub joins_admitted: u64,
    /// Refused joins by reason (`rate_limited`, `wrong_secret`, `malformed`, ...).
    pub joins_refused: BTreeMap<&'static str, u64>,
}

/// The RPC port's counters; `None` on a node that serves no RPC (a worker).
pub fn rpc_stats() -> Option<RpcPortStats> {
    let server = SERVED.get()?.snapshot();
    let joins_refused = Refusal::ALL
        .iter()
        .zip(&JOINS.refused)
        .map(|(r, n)| (r.label(), n.load(Ordering::Relaxed)))
        .collect();
    Some(RpcPortStats {
        server,
        joins_admitted: JOINS.admitted.load(Ordering::Relaxed),
        joins_refused,
    })
}

impl Admission {
    fn admit(&self, from: SocketAddr, request: &[u8]) -> Vec<u8> {
        let response = match self.decide(from, request, Instant::now()) {
            Ok(r) => {
                JOINS.admitted.fetch_add(1, Ordering::Relaxed);
                r
            }
            Err((refusal, reason)) => {
                let index = Refusal::ALL.iter().position(|r| *r == refusal);
                if let Some(counter) = index.and_then(|i| JOINS.refused.get(i)) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                // Every refusal is logged: a rate-limited flood is bounded by what the
                // handshakes before it cost the sender.
                warn!(%from, reason = %refusal.label(), detail = %reason, "refused a node");
                JoinResponse::Refused(reason)
            }
        };
        weft_rpc::encode(&response).unwrap_or_default()
    }

    fn decide(
        &self,
        from: SocketAddr,
        request: &[u8],
        now: Instant,
    ) -> Result<JoinResponse, (Refusal, String)> {
        let mut limiter = self.limiter.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(wait) = limiter.check(from.ip(), now) {
            let secs = wait.as_millis().div_ceil(1000);
            return Err((
                Refusal::RateLimited,
                format!(
                    "too many failed joins from {}, retry in {secs} s",
                    from.ip().to_canonical()
                ),
            ));
        }
        let result = self.check_request(request);
        if let Err((refusal, _)) = &result
            && refusal.is_guess()
        {
            limiter.failed(from.ip(), now);
        }
        drop(limiter);
        let request = result?;
        let accepted = self.issue(&request)?;
        info!(node = %request.node_id, %from, "admitted a node");
        Ok(accepted)
    }

    /// The request, if it decodes and holds the worker token's secret.
    fn check_request(&self, request: &[u8]) -> Result<JoinRequest, (Refusal, String)> {
        let request: JoinRequest = weft_rpc::decode(request)
            .map_err(|_| (Refusal::Malformed, "malformed join request".to_owned()))?;
        let role = if request.manager {
            Role::Manager
        } else {
            Role::Worker
        };
        if !self.tokens.for_role(role).verify(&request.secret) {
            return Err((Refusal::WrongSecret, "invalid join token".to_owned()));
        }
        if role == Role::Manager {
            // A second manager needs the CA and the allocator replicated, which does not
            // exist yet; admitting it as a worker would hide that.
            return Err((
                Refusal::ManagerRole,
                "joining as a manager is not supported yet: join with the worker token".to_owned(),
            ));
        }
        Ok(request)
    }

    /// Signs the node's certificate and gathers what it needs.
    fn issue(&self, request: &JoinRequest) -> Result<JoinResponse, (Refusal, String)> {
        let bad = |e: String| (Refusal::BadRequest, e);
        let node =
            NodeId::new(&request.node_id).map_err(|e| bad(format!("invalid node id: {e}")))?;
        let cert = self
            .ca
            .sign_csr(&node, &request.csr_der)
            .map_err(|e| bad(format!("invalid certificate request: {e}")))?;
        let internal = |e: String| (Refusal::Internal, e);
        let keys = wire_keys(&self.keyring_file).map_err(internal)?;
        let datapath_keys = wire_keys(&self.keyring_file.with_file_name(DATAPATH_KEYRING_FILE))
            .map_err(internal)?;
        Ok(JoinResponse::Accepted {
            cert_pem: cert.cert_pem,
            ca_pem: self.ca.cert_pem().to_owned(),
            keys,
            datapath_keys,
            gossip_seeds: vec![self.gossip],
            managers: vec![self.manager.clone()],
        })
    }
}

/// A keyring file's keys, primary first, as sent to a joining node.
fn wire_keys(path: &Path) -> Result<Vec<WireKey>, String> {
    let ring = keyfile::read_keyring(path).map_err(|e| format!("manager keyring: {e}"))?;
    let primary = ring.primary_id();
    let ids = std::iter::once(primary).chain(ring.ids().into_iter().filter(|id| *id != primary));
    Ok(ids
        .filter_map(|id| {
            let key = ring.get(id)?;
            Some((id.0, key.material().to_vec(), key.created_s().unwrap_or(0)))
        })
        .collect())
}

/// The keys of this node's keyrings, without their material, for `weft keys ls`.
pub fn key_list(data_dir: &Path) -> Result<Vec<weft_types::api::KeyInfo>, weft_types::Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut out = Vec::new();
    for (subsystem, file) in [
        ("gossip", KEYRING_FILE),
        ("datapath", DATAPATH_KEYRING_FILE),
    ] {
        let path = data_dir.join(file);
        if !path.exists() {
            continue;
        }
        let ring =
            keyfile::read_keyring(&path).map_err(|e| weft_types::Error::internal(e.to_string()))?;
        for id in ring.ids() {
            let created = ring.get(id).and_then(|k| k.created_s());
            out.push(weft_types::api::KeyInfo {
                subsystem: subsystem.to_owned(),
                id: id.0,
                primary: id == ring.primary_id(),
                age_s: created.map(|c| now.saturating_sub(c)),
            });
        }
    }
    Ok(out)
}

/// The join token of `role`, on a manager.
pub fn token(data_dir: &Path, role: Role) -> Result<String, weft_types::Error> {
    if !is_manager(data_dir) {
        return Err(weft_types::Error::forbidden(
            "this node is not a manager: ask a manager for a join token".to_owned(),
        ));
    }
    ClusterTokens::load(&data_dir.join(TOKENS_FILE))
        .map(|t| t.for_role(role).to_string())
        .map_err(|e| weft_types::Error::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_cluster_makes_a_manager_with_tokens_and_keyrings() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_identity(dir.path()) && !is_manager(dir.path()));
        assert!(token(dir.path(), Role::Worker).is_err());
        init(dir.path(), "host-1").unwrap();
        assert!(has_identity(dir.path()) && is_manager(dir.path()));
        load_identity(dir.path()).unwrap();
        let worker = token(dir.path(), Role::Worker).unwrap();
        assert_ne!(worker, token(dir.path(), Role::Manager).unwrap());
        let keys = key_list(dir.path()).unwrap();
        let subsystems: Vec<_> = keys.iter().map(|k| k.subsystem.as_str()).collect();
        assert!(subsystems.contains(&"gossip") && subsystems.contains(&"datapath"));
        assert!(keys.iter().any(|k| k.primary));
        // A manager knows no other manager: it is its own allocator.
        assert!(managers(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn an_invalid_node_name_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let e = init(dir.path(), "Not A Name").unwrap_err().to_string();
        assert!(e.contains("--node-name"), "{e}");
        assert!(!has_identity(dir.path()));
    }

    #[test]
    fn the_managers_file_is_read_back_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANAGERS_FILE);
        std::fs::write(&path, "mgr-1 198.18.0.1:7947\n\nmgr-2 198.18.0.2:7947\n").unwrap();
        let found = managers(dir.path()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].rpc, "198.18.0.2:7947".parse().unwrap());
        for (text, named) in [
            ("mgr-1\n", "expected NODE-ID IP:PORT"),
            ("mgr-1 198.18.0.1:7947 extra\n", "expected NODE-ID IP:PORT"),
            ("mgr-1 nowhere\n", "bad manager address"),
            ("MGR! 198.18.0.1:7947\n", "bad manager id"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = managers(dir.path()).unwrap_err().to_string();
            assert!(e.contains(named), "{text:?}: {e}");
        }
    }

    #[tokio::test]
    async fn a_token_without_a_seed_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let manager = tempfile::tempdir().unwrap();
        init(manager.path(), "mgr").unwrap();
        let token: JoinToken = token(manager.path(), Role::Worker)
            .unwrap()
            .parse()
            .unwrap();
        let e = join(dir.path(), "host-2", &token, &[]).await.unwrap_err();
        assert!(e.to_string().contains("--join"), "{e}");
        assert!(!has_identity(dir.path()));
    }
}
