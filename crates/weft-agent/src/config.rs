//! The agent's settled configuration: what the binary resolved from flags, environment and
//! file, checked, with defaults filled in. Nothing here reads a flag or a file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use weft_ipam::IpamConfig;

/// RPC (QUIC) port when none is given.
pub const DEFAULT_RPC_PORT: u16 = 7947;
/// Gossip port when none is given.
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The data directory: the controller's store in `store/`, cluster files beside it.
    pub data_dir: PathBuf,
    /// The local API's Unix socket.
    pub api_socket: PathBuf,
    /// This node's name in the cluster.
    pub node_name: String,
    /// The prefix of every namespace the agent creates.
    pub netns_prefix: String,
    /// Address pools of local and global networks.
    pub ipam: IpamConfig,
    /// Where and how this node gossips.
    pub cluster: ClusterSettings,
    /// Upstream servers of the embedded DNS; empty: the host's resolv.conf nameservers.
    pub dns: Vec<IpAddr>,
}

/// Where and how this node gossips.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub listen: SocketAddr,
    pub advertise: SocketAddr,
    /// Seeds given now (empty on a restart that gives none: the stored ones are used).
    pub join: Vec<SocketAddr>,
    pub key_file: Option<PathBuf>,
    pub init: bool,
    pub token: Option<weft_keys::JoinToken>,
    pub rpc_port: u16,
    pub diagnostic: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub gossip_interval: Duration,
    pub suspicion_window: Duration,
    /// This host's VTEP address.
    pub data_path: Ipv4Addr,
    pub data_path_port: u16,
    /// None: never repair.
    pub repair_interval: Option<Duration>,
}
