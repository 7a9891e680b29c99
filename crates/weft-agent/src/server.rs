//! The agent's side of the local API: HTTP/JSON on a unix socket, each route one
//! controller message. Bodies are parsed here, so malformed JSON gets the same one-line
//! error shape as every other refusal.

use crate::diag;
use crate::watcher::ClusterWatcher;
use actix::{Addr, Handler, Message};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_controller::events::DriverEvents;
use weft_controller::*;
use weft_netdb::NetworkDb;
use weft_types::api::{API_PREFIX, JoinRequest, VersionInfo};
use weft_types::{Error, ErrorKind, NetworkId};

/// The actors the API talks to.
#[derive(Clone, Debug)]
pub struct Actors {
    pub controller: Addr<Controller>,
    pub netdb: Addr<NetworkDb>,
    pub events: Addr<DriverEvents>,
    pub watcher: Addr<ClusterWatcher>,
    /// The embedded DNS (ServiceLb): its records and resolvers' counters.
    pub names: Addr<crate::names::ServiceLb>,
    pub node_name: String,
}

#[derive(Clone)]
pub(crate) struct Api {
    controller: Addr<Controller>,
    netdb: Addr<NetworkDb>,
    events: Addr<DriverEvents>,
    watcher: Addr<ClusterWatcher>,
    pub(crate) names: Addr<crate::names::ServiceLb>,
    node_name: String,
    data_dir: std::path::PathBuf,
}

impl Api {
    fn new(actors: &Actors, data_dir: std::path::PathBuf) -> Self {
        Api {
            controller: actors.controller.clone(),
            netdb: actors.netdb.clone(),
            events: actors.events.clone(),
            watcher: actors.watcher.clone(),
            names: actors.names.clone(),
            node_name: actors.node_name.clone(),
            data_dir,
        }
    }
}

/// The API's routes, served by `controller` and `netdb`.
pub fn router(actors: &Actors, data_dir: std::path::PathBuf) -> Router {
    let routes = Router::new()
        .route("/version", get(version))
        .route("/networks", get(list_networks).post(create_network))
        .route(
            "/networks/{network}",
            get(inspect_network).delete(delete_network),
        )
        .route(
            "/networks/{network}/endpoints",
            get(list_network_endpoints).post(create_endpoint),
        )
        .route(
            "/networks/{network}/endpoints/{endpoint}",
            axum::routing::delete(delete_endpoint),
        )
        .route("/networks/{network}/endpoints/{endpoint}/join", post(join))
        .route(
            "/networks/{network}/endpoints/{endpoint}/leave",
            post(leave),
        )
        .route("/endpoints", get(list_endpoints))
        .route("/sandboxes", get(list_sandboxes).post(create_sandbox))
        .route(
            "/sandboxes/{sandbox}",
            get(inspect_sandbox).delete(delete_sandbox),
        )
        .route("/sandboxes/{sandbox}/processes", post(start_process))
        .route("/nodes", get(list_nodes))
        .route("/cluster/token/{role}", get(cluster_token))
        .route("/keys", get(list_keys))
        .route("/nodes/{node}", get(inspect_node))
        .merge(crate::service_api::routes())
        .merge(diag_routes())
        .method_not_allowed_fallback(|| async {
            ApiError(Error::invalid("method not allowed on this path".to_owned()))
        });
    Router::new()
        .nest(API_PREFIX, routes)
        .fallback(|| async { ApiError(Error::not_found("API path")) })
        .with_state(Api::new(actors, data_dir))
}

/// The read-only diagnostics, also served alone on `--diagnostic-addr` with `/metrics`.
fn diag_routes() -> Router<Api> {
    Router::new()
        .route("/diag/peers", get(list_nodes))
        .route("/diag/network-peers/{network}", get(network_peers))
        .route("/diag/table/{table}/{network}", get(table))
        .route("/diag/stats", get(stats))
}

/// `--metrics-addr`: `/metrics` alone, for a scraper that should see nothing else.
pub fn metrics_router(actors: &Actors) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError(Error::not_found("path: only /metrics is served here")) })
        .with_state(Api::new(actors, std::path::PathBuf::new()))
}

/// The diagnostic server's routes: the diagnostics, `/metrics` and `/ready`; no changes.
pub fn diagnostic_router(actors: &Actors) -> Router {
    Router::new()
        .merge(diag_routes())
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .fallback(|| async { ApiError(Error::not_found("diagnostic path")) })
        .with_state(Api::new(actors, std::path::PathBuf::new()))
}

/// OK while the node can do its work; 503 with the reason while a store cannot be
/// written (a full disk), so that an orchestrator stops sending it work.
async fn ready() -> Response {
    match crate::stores::not_ready().await {
        None => "OK\n".into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// An error answered as JSON with the status its kind maps to.
pub(crate) struct ApiError(pub(crate) Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.kind.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// Sends `msg` to the controller; its answer.
pub(crate) async fn ask_controller<M, T>(api: &Api, msg: M) -> Result<T, ApiError>
where
    M: Message<Result = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
    Controller: Handler<M>,
{
    match api.controller.send(msg).await {
        Ok(result) => result.map_err(ApiError),
        Err(e) => Err(ApiError(Error::new(
            ErrorKind::Unavailable,
            format!("controller is not running: {e}"),
        ))),
    }
}

/// Sends `msg` to the controller and answers with its result as JSON.
async fn ask<M, T>(api: &Api, msg: M, status: StatusCode) -> ApiResult
where
    M: Message<Result = Result<T, Error>> + Send + 'static,
    T: Serialize + Send + 'static,
    Controller: Handler<M>,
{
    match api.controller.send(msg).await {
        Ok(Ok(value)) => Ok((status, axum::Json(value)).into_response()),
        Ok(Err(e)) => Err(ApiError(e)),
        Err(e) => Err(ApiError(Error::new(
            ErrorKind::Unavailable,
            format!("controller is not running: {e}"),
        ))),
    }
}

pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(Error::invalid(format!("invalid request body: {e}"))))
}

/// `force=true|false|1|0` from the query string; anything else is refused.
fn force(query: Option<String>) -> Result<bool, ApiError> {
    let Some(query) = query else { return Ok(false) };
    let mut force = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "true")) {
            ("force", "true" | "1") => force = true,
            ("force", "false" | "0") => force = false,
            (k, v) => {
                return Err(ApiError(Error::invalid(format!(
                    "unexpected query parameter {k}={v}"
                ))));
            }
        }
    }
    Ok(force)
}

fn json<T: Serialize>(result: Result<T, Error>) -> ApiResult {
    result
        .map(|v| axum::Json(v).into_response())
        .map_err(ApiError)
}

async fn cluster_token(State(api): State<Api>, Path(role): Path<String>) -> ApiResult {
    let role = match role.as_str() {
        "worker" => weft_keys::Role::Worker,
        "manager" => weft_keys::Role::Manager,
        other => {
            return Err(ApiError(Error::invalid(format!(
                "unknown role {other:?}: worker or manager"
            ))));
        }
    };
    json(crate::join::token(&api.data_dir, role))
}

async fn list_keys(State(api): State<Api>) -> ApiResult {
    json(crate::join::key_list(&api.data_dir))
}

async fn list_nodes(State(api): State<Api>) -> ApiResult {
    json(diag::nodes(&api.netdb).await)
}

async fn inspect_node(State(api): State<Api>, Path(node): Path<String>) -> ApiResult {
    let nodes = diag::nodes(&api.netdb).await.map_err(ApiError)?;
    let found = nodes
        .into_iter()
        .find(|n| n.id == node || n.name.as_deref() == Some(node.as_str()));
    json(found.ok_or_else(|| Error::not_found(format!("node {node}"))))
}

/// A network by name or id, or `cluster` for the cluster-wide tables.
async fn network_id(api: &Api, network: String) -> Result<NetworkId, ApiError> {
    if network == "cluster" {
        return Ok(NetworkId::cluster());
    }
    match api.controller.send(InspectNetwork { network }).await {
        Ok(Ok(info)) => Ok(info.id),
        Ok(Err(e)) => Err(ApiError(e)),
        Err(e) => Err(ApiError(Error::new(
            ErrorKind::Unavailable,
            format!("controller: {e}"),
        ))),
    }
}

async fn network_peers(State(api): State<Api>, Path(network): Path<String>) -> ApiResult {
    let id = network_id(&api, network).await?;
    json(diag::network_peers(&api.netdb, id).await)
}

async fn table(
    State(api): State<Api>,
    Path((table, network)): Path<(String, String)>,
) -> ApiResult {
    let id = network_id(&api, network).await?;
    json(diag::table(&api.netdb, &table, id).await)
}

async fn stats(State(api): State<Api>) -> ApiResult {
    json(diag::stats(&api.netdb, &api.events, &api.watcher, &api.names).await)
}

async fn metrics(State(api): State<Api>) -> ApiResult {
    let sources = diag::MetricSources {
        netdb: &api.netdb,
        controller: &api.controller,
        events: &api.events,
        watcher: &api.watcher,
        names: &api.names,
    };
    let text = diag::metrics(sources).await.map_err(ApiError)?;
    Ok(([("content-type", "text/plain; version=0.0.4")], text).into_response())
}

async fn version(State(api): State<Api>) -> impl IntoResponse {
    axum::Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        api: API_PREFIX.trim_start_matches('/').to_owned(),
        node_name: api.node_name.clone(),
    })
}

async fn list_networks(State(api): State<Api>) -> ApiResult {
    ask(&api, ListNetworks {}, StatusCode::OK).await
}

async fn create_network(State(api): State<Api>, body: Bytes) -> ApiResult {
    ask(
        &api,
        CreateNetwork {
            request: parse(&body)?,
        },
        StatusCode::CREATED,
    )
    .await
}

async fn inspect_network(State(api): State<Api>, Path(network): Path<String>) -> ApiResult {
    ask(&api, InspectNetwork { network }, StatusCode::OK).await
}

async fn delete_network(
    State(api): State<Api>,
    Path(network): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    ask(
        &api,
        DeleteNetwork {
            network,
            force: force(q)?,
        },
        StatusCode::OK,
    )
    .await
}

async fn list_network_endpoints(State(api): State<Api>, Path(network): Path<String>) -> ApiResult {
    ask(
        &api,
        ListEndpoints {
            network: Some(network),
        },
        StatusCode::OK,
    )
    .await
}

async fn list_endpoints(State(api): State<Api>) -> ApiResult {
    ask(&api, ListEndpoints { network: None }, StatusCode::OK).await
}

async fn create_endpoint(
    State(api): State<Api>,
    Path(network): Path<String>,
    body: Bytes,
) -> ApiResult {
    ask(
        &api,
        CreateEndpoint {
            network,
            request: parse(&body)?,
        },
        StatusCode::CREATED,
    )
    .await
}

async fn delete_endpoint(
    State(api): State<Api>,
    Path((network, endpoint)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    ask(
        &api,
        DeleteEndpoint {
            network,
            endpoint,
            force: force(q)?,
        },
        StatusCode::OK,
    )
    .await
}

async fn join(
    State(api): State<Api>,
    Path((network, endpoint)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let JoinRequest { sandbox } = parse(&body)?;
    ask(
        &api,
        JoinEndpoint {
            network,
            endpoint,
            sandbox,
        },
        StatusCode::OK,
    )
    .await
}

async fn leave(
    State(api): State<Api>,
    Path((network, endpoint)): Path<(String, String)>,
) -> ApiResult {
    ask(&api, LeaveEndpoint { network, endpoint }, StatusCode::OK).await
}

async fn list_sandboxes(State(api): State<Api>) -> ApiResult {
    ask(&api, ListSandboxes {}, StatusCode::OK).await
}

async fn create_sandbox(State(api): State<Api>, body: Bytes) -> ApiResult {
    ask(
        &api,
        CreateSandbox {
            request: parse(&body)?,
        },
        StatusCode::CREATED,
    )
    .await
}

async fn start_process(
    State(api): State<Api>,
    Path(sandbox): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request = parse(&body)?;
    ask(&api, StartProcess { sandbox, request }, StatusCode::CREATED).await
}

async fn inspect_sandbox(State(api): State<Api>, Path(sandbox): Path<String>) -> ApiResult {
    ask(&api, InspectSandbox { sandbox }, StatusCode::OK).await
}

async fn delete_sandbox(
    State(api): State<Api>,
    Path(sandbox): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    ask(
        &api,
        DeleteSandbox {
            sandbox,
            force: force(q)?,
        },
        StatusCode::OK,
    )
    .await
}
