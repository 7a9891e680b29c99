//! Why the agent cannot start or go on: each variant names the step that failed and keeps
//! the cause as its source, so the binary prints the whole chain in one line.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A cause from one of the key-handling crates (CA, tokens, keyrings, identities).
pub type KeySource = Box<dyn std::error::Error + Send + Sync>;

/// The agent's errors.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file or directory the agent reads or writes.
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file the agent wrote itself holds something it cannot read back.
    #[error("bad {what} {text:?} in {}: {reason}", path.display())]
    Corrupt {
        what: &'static str,
        text: String,
        path: PathBuf,
        reason: String,
    },
    /// Certificates, tokens or keyrings.
    #[error("{what}: {source}")]
    Keys {
        what: &'static str,
        #[source]
        source: KeySource,
    },
    /// The QUIC RPC layer.
    #[error("{what}: {source}")]
    Rpc {
        what: String,
        #[source]
        source: weft_rpc::RpcError,
    },
    /// Gossip would not start.
    #[error("cannot start gossip on {listen}: {source}")]
    Gossip {
        listen: SocketAddr,
        #[source]
        source: Box<weft_netdb::NetDbError>,
    },
    /// A sled store.
    #[error("{what}: {source}")]
    Store {
        what: String,
        #[source]
        source: weft_store::StoreError,
    },
    /// The cluster allocator's store.
    #[error("cannot load the cluster allocator: {0}")]
    Allocator(#[source] weft_manager::ManagerError),
    /// The kernel interface.
    #[error("cannot reach the kernel: {0}")]
    Kernel(#[source] weft_os::Error),
    /// The controller would not start.
    #[error("cannot start the controller: {0}")]
    Controller(#[source] weft_types::Error),
    /// An actor stopped while the agent started.
    #[error("{what}: {source}")]
    Mailbox {
        what: &'static str,
        #[source]
        source: actix::MailboxError,
    },
    /// A blocking task died.
    #[error("{what} task failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// Joining the cluster failed.
    #[error("{0}")]
    Join(String),
    /// The settings or the host do not allow the agent to start.
    #[error("{0}")]
    Refused(String),
}

impl AgentError {
    pub(crate) fn file(
        what: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        AgentError::File {
            what,
            path: path.into(),
            source,
        }
    }

    /// `map_err` for the key crates' errors.
    pub(crate) fn keys<E>(what: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| AgentError::Keys {
            what,
            source: Box::new(e),
        }
    }

    /// `map_err` for the RPC layer's errors.
    pub(crate) fn rpc(what: impl Into<String>) -> impl FnOnce(weft_rpc::RpcError) -> Self {
        move |source| AgentError::Rpc {
            what: what.into(),
            source,
        }
    }
}
