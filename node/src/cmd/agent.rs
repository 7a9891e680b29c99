//! `weft agent`: opens the store, starts the controller (which finishes whatever a
//! crash interrupted), and serves the local API until SIGTERM or SIGINT.

use crate::config::{AgentConfig, AgentSettings, ClusterSettings, LogFormat};
use crate::manager::Manager;
use crate::plane::{AgentPlane, Allocator, ClusterWatcher};
use crate::{cluster, join, server};
use actix::Actor;
use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;
use tracing::info;
use weft_controller::events::DriverEvents;
use weft_controller::{Controller, ControllerConfig, Core};
use weft_drivers::DriverRegistry;
use weft_drivers::{BridgeDriver, OverlayConfig, OverlayDriver, PassiveDriver};
use weft_os::{Kernel, RealKernel};
use weft_store::Store;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// TOML configuration file (keys as the long flags).
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: AgentSettings,
}

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    let config = AgentConfig::resolve(args.settings, args.config.as_deref())?;
    init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // actix actors need their System; it runs on this thread, other tasks on the pool.
    actix::System::with_tokio_rt(move || runtime).block_on(serve(config))
}

async fn serve(config: AgentConfig) -> anyhow::Result<()> {
    // The store has a directory of its own; cluster files sit beside it.
    migrate_store_layout(&config.data_dir)?;
    let store = open_store(config.data_dir.join("store")).await?;
    let kernel: Arc<dyn Kernel> =
        Arc::new(RealKernel::new().map_err(|e| anyhow::anyhow!("cannot reach the kernel: {e}"))?);
    if config.cluster.advertise.ip().is_loopback() {
        tracing::warn!(
            advertise = %config.cluster.advertise,
            "advertising a loopback address: nodes on other hosts cannot join this one; give --advertise-addr"
        );
    }
    // Membership first: the controller publishes its endpoints' entries as it starts.
    let gossip = establish_membership(&config).await?;
    let netdb = cluster::start(&config.data_dir, &config.node_name, &gossip).await?;
    let drivers = drivers(&kernel, &config);
    let events = DriverEvents::new(
        drivers.iter().cloned().collect(),
        config.cluster.repair_interval,
    )
    .start();
    let (allocator, _rpc) = allocator(&config, netdb.clone()).await?;
    let plane = Arc::new(AgentPlane {
        allocator,
        netdb: netdb.clone(),
        events: events.clone(),
    });
    let cluster_plane: Arc<dyn weft_controller::ClusterPlane> = plane.clone();
    let tables: Vec<String> = drivers.iter().flat_map(|d| d.watched_tables()).collect();
    let controller_config = ControllerConfig {
        ipam: config.ipam.clone(),
        netns_prefix: config.netns_prefix.clone(),
        cluster: cluster_plane,
    };
    let core = Core::open(controller_config, store, drivers, kernel)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the controller: {e}"))?;
    let controller = actix::Actor::start(Controller::new(core));
    crate::plane::spawn_catch_up(plane, controller.clone());
    let _watcher = ClusterWatcher::start(
        config.node_name.clone(),
        netdb.clone(),
        controller.clone(),
        events.clone(),
        tables,
    )
    .await?;
    if let Some(addr) = config.cluster.diagnostic {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve diagnostics on {addr}"))?;
        let app = server::diagnostic_router(
            controller.clone(),
            netdb.clone(),
            events.clone(),
            config.node_name.clone(),
        );
        let forever = std::future::pending();
        tokio::spawn(crate::serve::serve(listener, app, "diagnostics", forever));
    }
    if let Some(addr) = config.cluster.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        let app = server::metrics_router(
            controller.clone(),
            netdb.clone(),
            events.clone(),
            config.node_name.clone(),
        );
        let forever = std::future::pending();
        tokio::spawn(crate::serve::serve(listener, app, "metrics", forever));
    }
    let listener = bind(&config.api_socket).await?;
    info!(
        socket = %config.api_socket.display(),
        node = %config.node_name,
        gossip = %config.cluster.advertise,
        "weft agent ready"
    );
    let app = server::router(
        controller,
        netdb.clone(),
        events,
        config.node_name.clone(),
        config.data_dir.clone(),
    );
    crate::serve::serve(listener, app, "api", shutdown_signal()).await;
    let _ = std::fs::remove_file(&config.api_socket);
    // Leave the cluster gracefully: peers drop this node's entries at once. Sandboxes
    // and their data plane stay.
    let leave = netdb.send(weft_netdb::Leave);
    if tokio::time::timeout(std::time::Duration::from_secs(5), leave)
        .await
        .is_err()
    {
        tracing::warn!("leaving the cluster took longer than 5 s");
    }
    info!("weft agent stopped");
    Ok(())
}

/// Makes or joins a cluster on a first start; returns the gossip settings to use.
/// A node with an identity ignores --init, --token and --join: it stored what it needs.
async fn establish_membership(config: &AgentConfig) -> anyhow::Result<ClusterSettings> {
    let settings = &config.cluster;
    let mut gossip = settings.clone();
    if join::has_identity(&config.data_dir) {
        gossip.join.clear();
        return Ok(gossip);
    }
    match &settings.token {
        Some(token) => {
            join::join(&config.data_dir, &config.node_name, token, &settings.join).await?;
            // --join named managers' RPC addresses; the gossip seeds came with the answer.
            gossip.join.clear();
        }
        None if settings.init || settings.join.is_empty() => {
            join::init(&config.data_dir, &config.node_name)?
        }
        // --join with --gossip-key-file: gossip seeds and a copied keyring, no identity.
        None => {}
    }
    Ok(gossip)
}

/// The drivers this agent offers.
fn drivers(kernel: &Arc<dyn Kernel>, config: &AgentConfig) -> DriverRegistry {
    let mut drivers = DriverRegistry::new();
    drivers.register(Arc::new(BridgeDriver::new(kernel.clone())));
    drivers.register(Arc::new(PassiveDriver::host()));
    drivers.register(Arc::new(PassiveDriver::null()));
    let overlay = OverlayConfig {
        port: config.cluster.data_path_port,
        ..OverlayConfig::new(config.netns_prefix.clone(), config.cluster.data_path)
    };
    drivers.register(Arc::new(OverlayDriver::new(kernel.clone(), overlay)));
    drivers
}

/// Where this node's allocation requests go: its own allocator on a manager (which then
/// also serves it, with the join protocol, on the RPC port), else the managers it joined
/// through.
async fn allocator(
    config: &AgentConfig,
    netdb: actix::Addr<weft_netdb::NetworkDb>,
) -> anyhow::Result<(Allocator, Option<weft_rpc::RpcServer>)> {
    let data_dir = &config.data_dir;
    if join::is_manager(data_dir) {
        let manager = Manager::start(data_dir, &config.ipam, netdb).await?;
        let server = join::serve(
            data_dir,
            &config.node_name,
            &config.cluster,
            manager.rpc_handler(),
        )?;
        return Ok((Allocator::Local(manager), Some(server)));
    }
    if !join::has_identity(data_dir) {
        return Ok((Allocator::Unjoined, None));
    }
    let identity = join::load_identity(data_dir)?;
    let client = weft_rpc::RpcClient::new(&identity)
        .map_err(|e| anyhow::anyhow!("cannot set up RPC to the managers: {e}"))?;
    let managers = join::managers(data_dir)?;
    Ok((Allocator::Remote { client, managers }, None))
}

/// Moves a store kept directly in the data directory (the first layout) into `store/`:
/// an agent that did not find it would reconcile the kernel against an empty store and
/// remove the sandboxes it holds.
fn migrate_store_layout(data_dir: &Path) -> anyhow::Result<()> {
    let store = data_dir.join("store");
    if store.exists() || !data_dir.join("db").exists() || !data_dir.join("conf").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&store)
        .with_context(|| format!("cannot create {}", store.display()))?;
    for entry in std::fs::read_dir(data_dir)
        .with_context(|| format!("cannot read {}", data_dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let sled_file = matches!(name.to_str(), Some("db" | "conf" | "blobs"))
            || name.to_str().is_some_and(|n| n.starts_with("snap."));
        if sled_file {
            std::fs::rename(entry.path(), store.join(&name)).with_context(|| {
                format!(
                    "cannot move {} into {}",
                    entry.path().display(),
                    store.display()
                )
            })?;
        }
    }
    info!(store = %store.display(), "moved the store into its own directory");
    Ok(())
}

async fn open_store(dir: PathBuf) -> anyhow::Result<Store> {
    let store = tokio::task::spawn_blocking(move || {
        Store::open(&dir).with_context(|| format!("cannot open the store in {}", dir.display()))
    })
    .await
    .context("store open task failed")??;
    crate::stores::register("controller", store.clone());
    Ok(store)
}

/// Binds the API socket, refusing to take over one another agent still serves.
async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            anyhow::bail!(
                "another agent is serving {}: stop it first or use --api-socket",
                path.display()
            );
        }
        // A socket left by an agent that died: nobody answers on it.
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent still stops with the process.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = int.recv() => info!("SIGINT: stopping"),
    }
}

fn init_logging(config: &AgentConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {:?}: {e}", config.log_level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
