//! The local API's services: `weft service create|ls|inspect|rm`. Definitions come from
//! the controller (a manager's answer); backends from the ServiceLb, which sees every
//! host's `endpoint_table`.

use crate::names::Backends;
use crate::server::{Api, ApiError, ApiResult, ask_controller, parse};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::HashMap;
use weft_controller::{CreateService, DeleteService, ListNetworks, ListServices};
use weft_types::api::{CreateServiceRequest, ServiceInfo, ServiceNetworkInfo};
use weft_types::{Error, ErrorKind, Name, ServiceRecord};

/// The service routes, under the API prefix.
pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route("/services", get(list).post(create))
        .route("/services/{service}", get(inspect).delete(remove))
}

async fn create(State(api): State<Api>, body: Bytes) -> ApiResult {
    let request: CreateServiceRequest = parse(&body)?;
    let record = ask_controller(
        &api,
        CreateService {
            name: request.name,
            mode: request.mode,
            networks: request.networks,
        },
    )
    .await?;
    let info = describe(&api, record).await?;
    Ok((StatusCode::CREATED, axum::Json(info)).into_response())
}

async fn list(State(api): State<Api>) -> ApiResult {
    let records = ask_controller(&api, ListServices {}).await?;
    let mut infos = Vec::with_capacity(records.len());
    for record in records {
        infos.push(describe(&api, record).await?);
    }
    Ok(axum::Json(infos).into_response())
}

async fn inspect(State(api): State<Api>, Path(service): Path<String>) -> ApiResult {
    let record = find(&api, &service).await?;
    Ok(axum::Json(describe(&api, record).await?).into_response())
}

async fn remove(State(api): State<Api>, Path(service): Path<String>) -> ApiResult {
    let record = find(&api, &service).await?;
    let backends = backends(&api, record.name.as_str()).await?;
    if !backends.is_empty() {
        let mut named: Vec<String> = backends
            .iter()
            .map(|b| format!("{} on {}", b.endpoint, b.host))
            .collect();
        named.sort();
        return Err(ApiError(Error::new(
            ErrorKind::ActiveEndpoints,
            format!(
                "service {} has {} backend(s) ({}): remove them first",
                record.name,
                backends.len(),
                named.join(", ")
            ),
        )));
    }
    ask_controller(&api, DeleteService { name: record.name }).await?;
    Ok(axum::Json(serde_json::json!({})).into_response())
}

/// The service called `service`, or a not-found error.
async fn find(api: &Api, service: &str) -> Result<ServiceRecord, ApiError> {
    let name: Name = service.parse().map_err(ApiError)?;
    ask_controller(api, ListServices {})
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError(Error::not_found(format!("service {name}"))))
}

async fn backends(api: &Api, service: &str) -> Result<Vec<weft_types::api::BackendInfo>, ApiError> {
    api.names
        .send(Backends {
            service: service.to_owned(),
        })
        .await
        .map_err(|e| {
            ApiError(Error::new(
                ErrorKind::Unavailable,
                format!("service lb: {e}"),
            ))
        })
}

/// The definition with network names and the backends known here.
async fn describe(api: &Api, record: ServiceRecord) -> Result<ServiceInfo, ApiError> {
    let names: HashMap<String, String> = ask_controller(api, ListNetworks {})
        .await?
        .into_iter()
        .map(|n| (n.id.to_string(), n.name.to_string()))
        .collect();
    let networks = record
        .networks
        .iter()
        .map(|n| ServiceNetworkInfo {
            network: names
                .get(n.network.as_str())
                .cloned()
                .unwrap_or_else(|| n.network.short().to_owned()),
            network_id: n.network.to_string(),
            vip: n.vip,
        })
        .collect();
    Ok(ServiceInfo {
        backends: backends(api, record.name.as_str()).await?,
        name: record.name,
        mode: record.mode,
        networks,
    })
}
