//! The agent's side of the local API: HTTP/JSON on a unix socket, each route one
//! controller message. Bodies are parsed here, so malformed JSON gets the same one-line
//! error shape as every other refusal.

use actix::{Addr, Handler, Message};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_controller::*;
use weft_types::api::{API_PREFIX, JoinRequest, VersionInfo};
use weft_types::{Error, ErrorKind};

#[derive(Clone)]
struct Api {
    controller: Addr<Controller>,
    node_name: String,
}

/// The API's routes, served by `controller`.
pub fn router(controller: Addr<Controller>, node_name: String) -> Router {
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
        .method_not_allowed_fallback(|| async {
            ApiError(Error::invalid("method not allowed on this path".to_owned()))
        });
    Router::new()
        .nest(API_PREFIX, routes)
        .fallback(|| async { ApiError(Error::not_found("API path")) })
        .with_state(Api {
            controller,
            node_name,
        })
}

/// An error answered as JSON with the status its kind maps to.
struct ApiError(Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.kind.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

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

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
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
