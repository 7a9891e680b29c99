//! The agent's configuration: flags, then `WEFT_*` environment variables, then a TOML
//! file, then documented defaults, in that precedence.

use anyhow::Context;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use weft_agent::config::{AgentConfig, ClusterSettings, DEFAULT_GOSSIP_PORT, DEFAULT_RPC_PORT};
use weft_ipam::{IpamConfig, PredefinedPool};

/// Where the agent keeps its store by default.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/weft";
/// Where the agent serves its API by default.
pub const DEFAULT_API_SOCKET: &str = "/run/weft/weft.sock";
/// Prefix of every namespace the agent creates, by default.
pub const DEFAULT_NETNS_PREFIX: &str = "weft-";
/// Subnet size cut from a pool given without one.
pub const DEFAULT_POOL_SIZE: u8 = 24;

/// The settings as read from flags, environment or file: every field optional.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgentSettings {
    /// Directory of the agent's store.
    #[arg(long, env = "WEFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Unix socket of the local API.
    #[arg(long, env = "WEFT_API_SOCKET")]
    pub api_socket: Option<PathBuf>,
    /// This node's name (default: the hostname).
    #[arg(long, env = "WEFT_NODE_NAME")]
    pub node_name: Option<String>,
    /// Prefix of every namespace the agent creates, so several agents can share a host.
    #[arg(long, env = "WEFT_NETNS_PREFIX")]
    pub netns_prefix: Option<String>,
    /// Pool for automatic subnets of local networks; repeat for several.
    #[arg(
        long = "local-addr-pool",
        env = "WEFT_LOCAL_ADDR_POOL",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub local_addr_pool: Vec<IpNet>,
    /// Prefix length of subnets cut from --local-addr-pool.
    #[arg(long, env = "WEFT_LOCAL_ADDR_POOL_SIZE")]
    pub local_addr_pool_size: Option<u8>,
    /// Pool for automatic subnets of global networks; repeat for several.
    #[arg(
        long = "default-addr-pool",
        env = "WEFT_DEFAULT_ADDR_POOL",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub default_addr_pool: Vec<IpNet>,
    /// Prefix length of subnets cut from --default-addr-pool.
    #[arg(long, env = "WEFT_DEFAULT_ADDR_POOL_SIZE")]
    pub default_addr_pool_size: Option<u8>,
    /// Gossip address to bind (default 0.0.0.0:7946).
    #[arg(long, env = "WEFT_LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,
    /// Address other nodes reach this one at (default: the listen address, or
    /// 127.0.0.1 for a single node listening on every address).
    #[arg(long, env = "WEFT_ADVERTISE_ADDR")]
    pub advertise_addr: Option<IpAddr>,
    /// Gossip addresses of nodes already in the cluster; repeat or comma-separate.
    #[arg(long, env = "WEFT_JOIN", value_delimiter = ',')]
    #[serde(default)]
    pub join: Vec<SocketAddr>,
    /// Create a new cluster (the default for a first start without --join).
    #[arg(long)]
    #[serde(default)]
    pub init: bool,
    /// Join token (from `weft cluster token worker|manager` on a manager); with it,
    /// --join names managers' RPC addresses (IP:7947).
    #[arg(long, env = "WEFT_TOKEN")]
    pub token: Option<String>,
    /// UDP port of the QUIC RPC service (join protocol on managers).
    #[arg(long, env = "WEFT_RPC_PORT")]
    pub rpc_port: Option<u16>,
    /// The cluster's gossip keyring file (copied into the data dir; a node that starts a
    /// cluster writes one there).
    #[arg(long, env = "WEFT_GOSSIP_KEY_FILE")]
    pub gossip_key_file: Option<PathBuf>,
    /// HTTP diagnostics and Prometheus metrics (default 127.0.0.1:7948; "off" disables).
    #[arg(long, env = "WEFT_DIAGNOSTIC_ADDR")]
    pub diagnostic_addr: Option<String>,
    /// Prometheus metrics alone, on their own address (they are also on the diagnostic
    /// address, path /metrics). Default: off.
    #[arg(long, env = "WEFT_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Gossip round period, e.g. 200ms.
    #[arg(long, env = "WEFT_GOSSIP_INTERVAL")]
    pub gossip_interval: Option<String>,
    /// How long a silent node's entries are kept before it is declared dead, e.g. 60s.
    #[arg(long, env = "WEFT_SUSPICION_WINDOW")]
    pub suspicion_window: Option<String>,
    /// This host's address for the VXLAN data path (its VTEP), if not the advertise address
    /// (e.g. a separate network for container traffic). IPv4.
    #[arg(long, env = "WEFT_DATA_PATH_ADDR")]
    pub data_path_addr: Option<IpAddr>,
    /// UDP port of the VXLAN data path (overlay networks).
    #[arg(long, env = "WEFT_DATA_PATH_PORT")]
    pub data_path_port: Option<u16>,
    /// How often drivers compare the kernel with their tables and repair it, e.g. 5s
    /// ("off" disables).
    #[arg(long, env = "WEFT_REPAIR_INTERVAL")]
    pub repair_interval: Option<String>,
    /// Upstream DNS server for names the embedded DNS does not know; repeat for up to 3
    /// (default: the nameservers of the host's /etc/resolv.conf).
    #[arg(long, env = "WEFT_DNS", value_delimiter = ',')]
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, env = "WEFT_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, env = "WEFT_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Upstream DNS servers: the flags', else the file's; at most 3 (a resolver tries them
/// in order, 4 s each, and a client gives up after about 5 s).
fn pick_dns(cli: Vec<IpAddr>, file: Vec<IpAddr>) -> anyhow::Result<Vec<IpAddr>> {
    let dns = if cli.is_empty() { file } else { cli };
    if dns.len() > 3 {
        anyhow::bail!("--dns: at most 3 upstream servers, got {}", dns.len());
    }
    if let Some(bad) = dns
        .iter()
        .find(|ip| ip.is_unspecified() || ip.is_multicast())
    {
        anyhow::bail!("--dns {bad}: not a unicast address");
    }
    Ok(dns)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The settled configuration: the agent's, and how the binary logs.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub agent: AgentConfig,
    pub log_level: String,
    pub log_format: LogFormat,
}

impl Resolved {
    /// Merges flags/environment (already merged by clap) over the file, over defaults.
    pub fn resolve(cli: AgentSettings, file: Option<&Path>) -> anyhow::Result<Self> {
        let file = match file {
            Some(path) => read_file(path)?,
            None => AgentSettings::default(),
        };
        let cluster = cluster_settings(&cli, &file)?;
        let pick_vec = |a: Vec<IpNet>, b: Vec<IpNet>| if a.is_empty() { b } else { a };
        let local = pick_vec(cli.local_addr_pool, file.local_addr_pool);
        let global = pick_vec(cli.default_addr_pool, file.default_addr_pool);
        let ipam = ipam_config(
            local,
            cli.local_addr_pool_size.or(file.local_addr_pool_size),
            global,
            cli.default_addr_pool_size.or(file.default_addr_pool_size),
        )?;
        let netns_prefix = cli
            .netns_prefix
            .or(file.netns_prefix)
            .unwrap_or_else(|| DEFAULT_NETNS_PREFIX.to_owned());
        validate_prefix(&netns_prefix)?;
        let dns = pick_dns(cli.dns, file.dns)?;
        let agent = AgentConfig {
            dns,
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            api_socket: cli
                .api_socket
                .or(file.api_socket)
                .unwrap_or_else(|| DEFAULT_API_SOCKET.into()),
            netns_prefix,
            node_name: cli.node_name.or(file.node_name).map_or_else(hostname, Ok)?,
            ipam,
            cluster,
        };
        Ok(Resolved {
            agent,
            log_level: cli
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".to_owned()),
            log_format: cli
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<AgentSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "invalid config file {}: {}",
            path.display(),
            e.to_string().replace('\n', " ")
        )
    })
}

/// Docker's predefined pools unless pools are given.
fn ipam_config(
    local: Vec<IpNet>,
    local_size: Option<u8>,
    global: Vec<IpNet>,
    global_size: Option<u8>,
) -> anyhow::Result<IpamConfig> {
    let defaults = IpamConfig::default();
    let pools =
        |bases: Vec<IpNet>, size: Option<u8>, what: &str| -> anyhow::Result<Vec<PredefinedPool>> {
            bases
                .into_iter()
                .map(|b| {
                    PredefinedPool::new(b, size.unwrap_or(DEFAULT_POOL_SIZE))
                        .map_err(|e| anyhow::anyhow!("invalid --{what} {b}: {e}"))
                })
                .collect()
        };
    anyhow::ensure!(
        local_size.is_none() || !local.is_empty(),
        "--local-addr-pool-size needs --local-addr-pool"
    );
    anyhow::ensure!(
        global_size.is_none() || !global.is_empty(),
        "--default-addr-pool-size needs --default-addr-pool"
    );
    let config = IpamConfig {
        local: if local.is_empty() {
            defaults.local
        } else {
            pools(local, local_size, "local-addr-pool")?
        },
        global: if global.is_empty() {
            defaults.global
        } else {
            pools(global, global_size, "default-addr-pool")?
        },
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid address pools: {e}"))?;
    Ok(config)
}

/// Diagnostics address when none is given.
pub const DEFAULT_DIAGNOSTIC_ADDR: &str = "127.0.0.1:7948";

fn cluster_settings(cli: &AgentSettings, file: &AgentSettings) -> anyhow::Result<ClusterSettings> {
    let listen = cli
        .listen_addr
        .or(file.listen_addr)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_GOSSIP_PORT)));
    let join = if cli.join.is_empty() {
        file.join.clone()
    } else {
        cli.join.clone()
    };
    let advertise_ip = match cli.advertise_addr.or(file.advertise_addr) {
        Some(ip) => ip,
        None if !listen.ip().is_unspecified() => listen.ip(),
        None if join.is_empty() => IpAddr::from([127, 0, 0, 1]),
        None => anyhow::bail!(
            "--join needs --advertise-addr (or a --listen-addr on one address): other nodes must know where to reach this one"
        ),
    };
    anyhow::ensure!(
        !advertise_ip.is_unspecified(),
        "--advertise-addr {advertise_ip} is not an address other nodes can reach"
    );
    let diagnostic = match cli
        .diagnostic_addr
        .clone()
        .or(file.diagnostic_addr.clone())
        .as_deref()
    {
        Some("off") => None,
        Some(addr) => Some(addr.parse().map_err(|_| {
            anyhow::anyhow!("invalid --diagnostic-addr {addr:?}: expected IP:PORT or off")
        })?),
        None => Some(DEFAULT_DIAGNOSTIC_ADDR.parse()?),
    };
    let duration =
        |value: Option<String>, flag: &str, default: Duration| -> anyhow::Result<Duration> {
            match value {
                None => Ok(default),
                Some(v) => humantime::parse_duration(&v)
                    .map_err(|e| anyhow::anyhow!("invalid --{flag} {v:?}: {e} (e.g. 200ms, 5s)")),
            }
        };
    let gossip_interval = duration(
        cli.gossip_interval.clone().or(file.gossip_interval.clone()),
        "gossip-interval",
        Duration::from_millis(200),
    )?;
    anyhow::ensure!(
        (Duration::from_millis(10)..=Duration::from_secs(10)).contains(&gossip_interval),
        "--gossip-interval must be between 10ms and 10s"
    );
    let suspicion_window = duration(
        cli.suspicion_window
            .clone()
            .or(file.suspicion_window.clone()),
        "suspicion-window",
        Duration::from_secs(60),
    )?;
    let repair_interval = match cli.repair_interval.clone().or(file.repair_interval.clone()) {
        Some(v) if v == "off" => None,
        v => {
            let every = duration(v, "repair-interval", Duration::from_secs(5))?;
            anyhow::ensure!(
                every >= Duration::from_millis(100),
                "--repair-interval must be at least 100ms (or off)"
            );
            Some(every)
        }
    };
    let data_path_port = cli
        .data_path_port
        .or(file.data_path_port)
        .unwrap_or(weft_os::VXLAN_PORT);
    anyhow::ensure!(data_path_port != 0, "--data-path-port must not be 0");
    let data_path = match cli.data_path_addr.or(file.data_path_addr) {
        Some(IpAddr::V4(ip)) if !ip.is_unspecified() && !ip.is_multicast() => ip,
        Some(ip) => anyhow::bail!(
            "--data-path-addr {ip}: the VXLAN data path needs a unicast IPv4 address of this host"
        ),
        None => match advertise_ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => anyhow::bail!(
                "--advertise-addr {ip} is IPv6: give --data-path-addr with an IPv4 address for the VXLAN data path"
            ),
        },
    };
    Ok(ClusterSettings {
        listen,
        advertise: SocketAddr::new(advertise_ip, listen.port()),
        join,
        key_file: cli.gossip_key_file.clone().or(file.gossip_key_file.clone()),
        init: cli.init || file.init,
        token: match cli.token.clone().or(file.token.clone()) {
            // The token is a secret: the error names its problem, never its text.
            Some(t) => Some(
                t.trim()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("invalid --token: {e}"))?,
            ),
            None => None,
        },
        rpc_port: cli.rpc_port.or(file.rpc_port).unwrap_or(DEFAULT_RPC_PORT),
        diagnostic,
        metrics: cli.metrics_addr.or(file.metrics_addr),
        gossip_interval,
        suspicion_window,
        data_path,
        data_path_port,
        repair_interval,
    })
}

/// Namespace names are file names under /run/netns: keep the prefix short and plain.
fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 16
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    anyhow::ensure!(
        ok,
        "invalid --netns-prefix {prefix:?}: 1 to 16 letters, digits, '-' or '_'"
    );
    Ok(())
}

fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot read the hostname; give --node-name")?;
    Ok(name.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, "data-dir = \"/file\"\nnode-name = \"from-file\"\nlocal-addr-pool = [\"198.19.0.0/16\"]\n").unwrap();
        let cli = AgentSettings {
            data_dir: Some("/flag".into()),
            ..Default::default()
        };
        let c = Resolved::resolve(cli, Some(&path)).unwrap();
        assert_eq!(c.agent.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.agent.node_name, "from-file");
        assert_eq!(c.agent.api_socket, PathBuf::from(DEFAULT_API_SOCKET));
        assert_eq!(c.agent.ipam.local[0].base.to_string(), "198.19.0.0/16");
        assert_eq!(c.agent.ipam.local[0].size, DEFAULT_POOL_SIZE);
        assert_eq!(c.agent.ipam.global, IpamConfig::default().global);
    }

    #[test]
    fn bad_files_and_values_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, "colour = 3\n").unwrap();
        let e = Resolved::resolve(AgentSettings::default(), Some(&path))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && !e.contains('\n'), "{e}");
        let cli = AgentSettings {
            local_addr_pool: vec!["198.19.0.0/16".parse().unwrap()],
            local_addr_pool_size: Some(8),
            ..Default::default()
        };
        assert!(
            Resolved::resolve(cli, None).is_err(),
            "size shorter than the pool"
        );
        let cli = AgentSettings {
            netns_prefix: Some("has/slash".into()),
            ..Default::default()
        };
        assert!(Resolved::resolve(cli, None).is_err());
        let cli = AgentSettings {
            local_addr_pool_size: Some(24),
            ..Default::default()
        };
        assert!(Resolved::resolve(cli, None).is_err());
        for bad in [
            AgentSettings {
                data_path_addr: Some("2001:db8::1".parse().unwrap()),
                ..Default::default()
            },
            AgentSettings {
                data_path_port: Some(0),
                ..Default::default()
            },
            AgentSettings {
                repair_interval: Some("1ms".into()),
                ..Default::default()
            },
        ] {
            let e = Resolved::resolve(bad, None).unwrap_err().to_string();
            assert!(e.starts_with("--") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_data_path_defaults_to_the_advertise_address() {
        let cli = AgentSettings {
            listen_addr: Some("198.18.0.1:7946".parse().unwrap()),
            ..Default::default()
        };
        let c = Resolved::resolve(cli, None).unwrap();
        assert_eq!(c.agent.cluster.data_path.to_string(), "198.18.0.1");
        assert_eq!(c.agent.cluster.data_path_port, 4789);
        assert_eq!(
            c.agent.cluster.repair_interval,
            Some(Duration::from_secs(5))
        );
        let cli = AgentSettings {
            listen_addr: Some("198.18.0.1:7946".parse().unwrap()),
            data_path_addr: Some("198.18.1.1".parse().unwrap()),
            repair_interval: Some("off".into()),
            ..Default::default()
        };
        let c = Resolved::resolve(cli, None).unwrap();
        assert_eq!(c.agent.cluster.data_path.to_string(), "198.18.1.1");
        assert_eq!(c.agent.cluster.repair_interval, None);
    }
}
