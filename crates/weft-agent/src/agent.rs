//! The agent's composition root: opens the store, joins or makes the cluster, starts the
//! drivers, the controller (which finishes whatever a crash interrupted), the cluster
//! plane and watcher, and serves the local API until `shutdown` resolves.

use crate::config::{AgentConfig, ClusterSettings};
use crate::manager::Manager;
use crate::names::{AgentNames, ServiceLb, Upstream};
use crate::plane::{AgentPlane, Allocator};
use crate::watcher::ClusterWatcher;
use crate::{AgentError, join, membership, server};
use actix::Actor;
use std::future::Future;
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

/// Runs the agent until `shutdown` resolves, then leaves the cluster gracefully.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    // The store has a directory of its own; cluster files sit beside it.
    migrate_store_layout(&config.data_dir)?;
    let store = open_store(config.data_dir.join("store")).await?;
    let kernel: Arc<dyn Kernel> = Arc::new(RealKernel::new().map_err(AgentError::Kernel)?);
    if config.cluster.advertise.ip().is_loopback() {
        tracing::warn!(
            advertise = %config.cluster.advertise,
            "advertising a loopback address: nodes on other hosts cannot join this one; give --advertise-addr"
        );
    }
    // Membership first: the controller publishes its endpoints' entries as it starts.
    let gossip = establish_membership(&config).await?;
    let netdb = membership::start(&config.data_dir, &config.node_name, &gossip).await?;
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
    let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstream = Upstream::from_host(config.dns.clone(), &host_resolv_conf);
    if upstream.servers.is_empty() {
        tracing::warn!(
            "no upstream dns server (--dns, or the host's resolv.conf): names the embedded dns does not know get SERVFAIL"
        );
    }
    let names =
        ServiceLb::start(config.node_name.clone(), &netdb, kernel.clone(), upstream).await?;
    let controller_config = ControllerConfig {
        ipam: config.ipam.clone(),
        netns_prefix: config.netns_prefix.clone(),
        cluster: cluster_plane,
        names: Arc::new(AgentNames {
            names: names.clone(),
        }),
    };
    let core = Core::open(controller_config, store, drivers, kernel)
        .await
        .map_err(AgentError::Controller)?;
    // Core::open re-published every entry this node owns (and the manager its
    // definitions): peers may now switch to this generation.
    netdb.do_send(weft_netdb::MarkReady);
    let controller = actix::Actor::start(Controller::new(core));
    crate::plane::spawn_catch_up(plane, controller.clone());
    let watcher = ClusterWatcher::start(
        config.node_name.clone(),
        netdb.clone(),
        controller.clone(),
        events.clone(),
        tables,
    )
    .await?;
    let actors = server::Actors {
        controller,
        netdb: netdb.clone(),
        events,
        watcher,
        names,
        node_name: config.node_name.clone(),
    };
    if let Some(addr) = config.cluster.diagnostic {
        serve_tcp(addr, server::diagnostic_router(&actors), "diagnostics").await?;
    }
    if let Some(addr) = config.cluster.metrics {
        serve_tcp(addr, server::metrics_router(&actors), "metrics").await?;
    }
    let listener = bind(&config.api_socket).await?;
    info!(
        socket = %config.api_socket.display(),
        node = %config.node_name,
        gossip = %config.cluster.advertise,
        "weft agent ready"
    );
    let app = server::router(&actors, config.data_dir.clone());
    crate::serve::serve(listener, app, "api", shutdown).await;
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

/// Serves `app` on TCP `addr` for the agent's life.
async fn serve_tcp(
    addr: std::net::SocketAddr,
    app: axum::Router,
    what: &'static str,
) -> Result<(), AgentError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| AgentError::Refused(format!("cannot serve {what} on {addr}: {e}")))?;
    tokio::spawn(crate::serve::serve(
        listener,
        app,
        what,
        std::future::pending(),
    ));
    Ok(())
}

/// Makes or joins a cluster on a first start; returns the gossip settings to use.
/// A node with an identity ignores --init, --token and --join: it stored what it needs.
async fn establish_membership(config: &AgentConfig) -> Result<ClusterSettings, AgentError> {
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
        ..OverlayConfig::new(
            config.netns_prefix.clone(),
            config.node_name.clone(),
            config.cluster.data_path,
        )
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
) -> Result<(Allocator, Option<weft_rpc::RpcServer>), AgentError> {
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
        .map_err(AgentError::rpc("cannot set up RPC to the managers"))?;
    let managers = join::managers(data_dir)?;
    Ok((Allocator::remote(client, managers), None))
}

/// Moves a store kept directly in the data directory (the first layout) into `store/`:
/// an agent that did not find it would reconcile the kernel against an empty store and
/// remove the sandboxes it holds.
fn migrate_store_layout(data_dir: &Path) -> Result<(), AgentError> {
    let store = data_dir.join("store");
    if store.exists() || !data_dir.join("db").exists() || !data_dir.join("conf").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&store).map_err(|e| AgentError::file("cannot create", &store, e))?;
    let entries =
        std::fs::read_dir(data_dir).map_err(|e| AgentError::file("cannot read", data_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| AgentError::file("cannot read", data_dir, e))?;
        let name = entry.file_name();
        let sled_file = matches!(name.to_str(), Some("db" | "conf" | "blobs"))
            || name.to_str().is_some_and(|n| n.starts_with("snap."));
        if sled_file {
            std::fs::rename(entry.path(), store.join(&name)).map_err(|e| {
                AgentError::file("cannot move into the store directory", entry.path(), e)
            })?;
        }
    }
    info!(store = %store.display(), "moved the store into its own directory");
    Ok(())
}

async fn open_store(dir: PathBuf) -> Result<Store, AgentError> {
    let store = tokio::task::spawn_blocking(move || {
        Store::open(&dir).map_err(|source| AgentError::Store {
            what: format!("cannot open the store in {}", dir.display()),
            source,
        })
    })
    .await
    .map_err(|source| AgentError::Task {
        what: "store open",
        source,
    })??;
    crate::stores::register("controller", store.clone());
    Ok(store)
}

/// Binds the API socket, refusing to take over one another agent still serves.
async fn bind(path: &Path) -> Result<UnixListener, AgentError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| AgentError::file("cannot create", parent, e))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(AgentError::Refused(format!(
                "another agent is serving {}: stop it first or use --api-socket",
                path.display()
            )));
        }
        // A socket left by an agent that died: nobody answers on it.
        std::fs::remove_file(path)
            .map_err(|e| AgentError::file("cannot remove stale socket", path, e))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| AgentError::file("cannot listen on", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| AgentError::file("cannot set permissions of", path, e))?;
    Ok(listener)
}
