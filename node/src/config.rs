//! The agent's configuration: flags, then `WEFT_*` environment variables, then a TOML
//! file, then documented defaults, in that precedence.

use anyhow::Context;
use ipnet::IpNet;
use serde::Deserialize;
use std::path::{Path, PathBuf};
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
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, env = "WEFT_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, env = "WEFT_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The settled configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    pub api_socket: PathBuf,
    pub node_name: String,
    pub netns_prefix: String,
    pub ipam: IpamConfig,
    pub log_level: String,
    pub log_format: LogFormat,
}

impl AgentConfig {
    /// Merges flags/environment (already merged by clap) over the file, over defaults.
    pub fn resolve(cli: AgentSettings, file: Option<&Path>) -> anyhow::Result<Self> {
        let file = match file {
            Some(path) => read_file(path)?,
            None => AgentSettings::default(),
        };
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
        Ok(AgentConfig {
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
        let c = AgentConfig::resolve(cli, Some(&path)).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.node_name, "from-file");
        assert_eq!(c.api_socket, PathBuf::from(DEFAULT_API_SOCKET));
        assert_eq!(c.ipam.local[0].base.to_string(), "198.19.0.0/16");
        assert_eq!(c.ipam.local[0].size, DEFAULT_POOL_SIZE);
        assert_eq!(c.ipam.global, IpamConfig::default().global);
    }

    #[test]
    fn bad_files_and_values_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, "colour = 3\n").unwrap();
        let e = AgentConfig::resolve(AgentSettings::default(), Some(&path))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && !e.contains('\n'), "{e}");
        let cli = AgentSettings {
            local_addr_pool: vec!["198.19.0.0/16".parse().unwrap()],
            local_addr_pool_size: Some(8),
            ..Default::default()
        };
        assert!(
            AgentConfig::resolve(cli, None).is_err(),
            "size shorter than the pool"
        );
        let cli = AgentSettings {
            netns_prefix: Some("has/slash".into()),
            ..Default::default()
        };
        assert!(AgentConfig::resolve(cli, None).is_err());
        let cli = AgentSettings {
            local_addr_pool_size: Some(24),
            ..Default::default()
        };
        assert!(AgentConfig::resolve(cli, None).is_err());
    }
}
