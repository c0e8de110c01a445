//! `sheaved`'s HTTP side: the API router on the unix socket and `/metrics` on TCP. Handlers only
//! translate HTTP into [`Request`]s for the control task and its replies back into HTTP.
use std::{net::IpAddr, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::de::DeserializeOwned;

use super::types::{
    AddBackend, AddVip, ConfigRequest, ErrorBody, ExplainRequest, SetBackend, UpdateBackend, VipRef,
};
use crate::{
    control::{ApiError, Handle, Request},
    metrics::DaemonMetrics,
};

#[derive(Clone)]
struct App {
    control: Handle,
    metrics: Arc<DaemonMetrics>,
}

/// The API's routes (see the module docs of [`crate::api`]).
pub fn api_router(control: Handle, metrics: Arc<DaemonMetrics>) -> Router {
    Router::new()
        .route("/v1/vips", get(list_vips).post(add_vip))
        .route(
            "/v1/vips/{proto}/{addr}/{port}",
            get(show_vip).delete(remove_vip),
        )
        .route("/v1/vips/{proto}/{addr}/{port}/backends", post(add_backend))
        .route(
            "/v1/vips/{proto}/{addr}/{port}/backends/{backend}",
            axum::routing::delete(remove_backend).patch(update_backend),
        )
        .route("/v1/backends/{backend}", axum::routing::put(set_backend))
        .route("/v1/status", get(status))
        .route("/v1/stats", get(stats))
        .route("/v1/explain", post(explain))
        .route("/v1/config/diff", post(config_diff))
        .route("/v1/config/apply", post(config_apply))
        .route("/v1/config/reload", post(config_reload))
        .fallback(|| async { error(404, "no such endpoint; see `sheave --help`") })
        .with_state(App { control, metrics })
}

/// `/metrics` for Prometheus: a snapshot from the control task, counters read and text written
/// on a blocking thread, so a scrape never holds up a change.
pub fn metrics_router(
    control: Handle,
    api: std::sync::Arc<crate::metrics::DaemonMetrics>,
    counters: std::sync::Arc<crate::dataplane::counters::Counters>,
) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let (control, api, counters) = (control.clone(), api.clone(), counters.clone());
            async move {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if let Err(e) = control.call(Request::Metrics(tx)).await {
                    return error(e.status, &e.message);
                }
                let Ok(snap) = rx.await else {
                    return error(503, "sheaved is shutting down");
                };
                let text = tokio::task::spawn_blocking(move || {
                    crate::metrics::render(&api, &snap, &counters)
                })
                .await;
                match text {
                    Ok(text) => (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(e) => error(500, &format!("rendering /metrics: {e}")),
                }
            }
        }),
    )
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(ErrorBody {
            error: message.to_string(),
        }),
    )
        .into_response()
}

/// Send `req` (or the error building it) to the control task, count it, answer.
async fn call(app: &App, endpoint: &str, req: Result<Request, ApiError>) -> Response {
    let reply = match req {
        Ok(r) => app.control.call(r).await,
        Err(e) => Err(e),
    };
    let result = match &reply {
        Ok(_) => "ok",
        Err(e) if e.status < 500 => "rejected",
        Err(_) => "error",
    };
    app.metrics
        .requests
        .with_label_values(&[endpoint, result])
        .inc();
    match reply {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => error(e.status, &e.message),
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

fn vip((proto, addr, port): (String, String, String)) -> Result<VipRef, ApiError> {
    Ok(VipRef {
        protocol: proto
            .parse()
            .map_err(|e: anyhow::Error| ApiError::bad_request(e.to_string()))?,
        address: ip(&addr)?,
        port: port
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{port:?} is not a port")))?,
    })
}

fn ip(s: &str) -> Result<IpAddr, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{s:?} is not an IP address")))
}

type VipPath = Path<(String, String, String)>;
type BackendPath = Path<(String, String, String, String)>;

async fn list_vips(State(app): State<App>) -> Response {
    call(&app, "vip_list", Ok(Request::ListVips)).await
}

async fn add_vip(State(app): State<App>, b: Bytes) -> Response {
    call(&app, "vip_add", body::<AddVip>(&b).map(Request::AddVip)).await
}

async fn show_vip(State(app): State<App>, Path(p): VipPath) -> Response {
    call(&app, "vip_show", vip(p).map(Request::ShowVip)).await
}

async fn remove_vip(State(app): State<App>, Path(p): VipPath) -> Response {
    call(&app, "vip_del", vip(p).map(Request::RemoveVip)).await
}

async fn add_backend(State(app): State<App>, Path(p): VipPath, b: Bytes) -> Response {
    let req = vip(p).and_then(|v| Ok(Request::AddBackend(v, body::<AddBackend>(&b)?)));
    call(&app, "backend_add", req).await
}

async fn remove_backend(State(app): State<App>, Path((a, b, c, be)): BackendPath) -> Response {
    let req = vip((a, b, c)).and_then(|v| Ok(Request::RemoveBackend(v, ip(&be)?)));
    call(&app, "backend_del", req).await
}

async fn update_backend(
    State(app): State<App>,
    Path((a, b, c, be)): BackendPath,
    body_bytes: Bytes,
) -> Response {
    let req = vip((a, b, c)).and_then(|v| {
        Ok(Request::UpdateBackend(
            v,
            ip(&be)?,
            body::<UpdateBackend>(&body_bytes)?,
        ))
    });
    call(&app, "backend_update", req).await
}

async fn set_backend(
    State(app): State<App>,
    Path(be): Path<String>,
    body_bytes: Bytes,
) -> Response {
    let req = ip(&be).and_then(|addr| {
        let b = body::<SetBackend>(&body_bytes)?;
        Ok(Request::SetBackendDisabled(addr, b.disabled))
    });
    call(&app, "backend_set", req).await
}

async fn status(State(app): State<App>) -> Response {
    call(&app, "status", Ok(Request::Status)).await
}

async fn stats(State(app): State<App>) -> Response {
    call(&app, "stats", Ok(Request::Stats)).await
}

async fn explain(State(app): State<App>, b: Bytes) -> Response {
    call(
        &app,
        "explain",
        body::<ExplainRequest>(&b).map(Request::Explain),
    )
    .await
}

async fn config_diff(State(app): State<App>, b: Bytes) -> Response {
    call(
        &app,
        "config_diff",
        body::<ConfigRequest>(&b).map(Request::ConfigDiff),
    )
    .await
}

async fn config_reload(State(app): State<App>) -> Response {
    call(&app, "config_reload", Ok(Request::ConfigReload)).await
}

async fn config_apply(State(app): State<App>, b: Bytes) -> Response {
    call(
        &app,
        "config_apply",
        body::<ConfigRequest>(&b).map(Request::ConfigApply),
    )
    .await
}
