//! The admin HTTP API (axum): read-only views of what the server answers and
//! why, plus liveness and readiness. It reads the engine's published status;
//! it never touches the DNS query path. Changes need a bearer token, checked
//! on the request head before any body is read (`auth`); `listener` bounds
//! connections and time, the router bounds bodies and field lengths.

mod auth;
mod listener;
mod metrics;
mod signals;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::{AdminLimits, AdminToken};
use crate::engine::Command;
use crate::state::Override;
use axum::{Json, Router};
use serde_json::json;

use crate::engine::StatusCell;
use crate::metrics::Metrics;
use auth::Caller;
pub use metrics::AdminMetrics;
use metrics::Rejected;

/// Longest `reason` of an override, and `detail` of a report, in bytes.
pub const MAX_TEXT_BYTES: usize = 512;
/// Longest `target` (a Region name) of an override, in bytes.
const MAX_TARGET_BYTES: usize = 64;
/// Longest `for` or `until` value, in bytes.
const MAX_TIME_BYTES: usize = 64;
/// The longest an override may last (`for`, or `until` from now).
pub const MAX_OVERRIDE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The admin tokens in force: the engine stores a reloaded set here, so a
/// token removed from `token_file` stops working at the reload.
pub type TokenCell = Arc<arc_swap::ArcSwap<Vec<AdminToken>>>;

#[derive(Clone)]
pub struct AdminState {
    pub status: StatusCell,
    /// Set once the first probe round is done and the DNS listeners are up.
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// Empty: mutations are disabled. Replaced by a reload.
    pub tokens: TokenCell,
    pub commands: mpsc::Sender<Command>,
    /// Re-read on `POST /v1/reload`.
    pub config_path: std::path::PathBuf,
}

pub fn router(state: AdminState, limits: &AdminLimits) -> Router {
    // Changes: the token is checked first, then the body is bounded.
    let guarded = |m: MethodRouter<AdminState>| {
        m.route_layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_token,
            ))
    };
    let explain = {
        let (metrics, limits) = (state.metrics.clone(), *limits);
        move |response: Response| {
            let metrics = metrics.clone();
            async move { explain_limits(response, &limits, &metrics) }
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/status", get(status))
        .route("/v1/aliases/{name}", get(alias))
        .route("/v1/checks", get(checks))
        .route("/v1/checks/{name}", guarded(put(report)))
        .route("/v1/reload", guarded(post(reload)))
        .route(
            "/v1/signals/eventbridge",
            guarded(post(signals::eventbridge)),
        )
        .route("/metrics", get(metrics))
        .route("/v1/overrides", get(overrides))
        .route(
            "/v1/overrides/{name}",
            guarded(put(set_override).delete(clear_override)),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see README.md (Admin API)",
            )
        })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::map_response(explain))
        .with_state(state)
}

/// Gives the answers of the body limit and the request timeout (which
/// come without a body) a message saying which limit it was.
fn explain_limits(response: Response, limits: &AdminLimits, metrics: &Metrics) -> Response {
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            metrics.admin.rejected(Rejected::BodyTooLarge);
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body is over {} bytes ([admin] max_body_bytes)",
                    limits.max_body_bytes
                ),
            )
        }
        StatusCode::REQUEST_TIMEOUT => {
            metrics.admin.rejected(Rejected::RequestTimeout);
            error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request took longer than {} ([admin] request_timeout)",
                    humantime::format_duration(limits.request_timeout)
                ),
            )
        }
        _ => response,
    }
}

/// Binds the admin listener; serving starts when the returned future is polled.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot bind the admin API on {addr}: {e}; change [admin] listen")
    })
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    limits: AdminLimits,
) -> anyhow::Result<()> {
    let metrics = state.metrics.clone();
    listener::serve(listener, router(state, &limits), limits, metrics).await
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if !s.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    // Answers are served but frozen: changes wait for their serial to be
    // persisted. Monitoring must see it.
    match &s.status.load().state.error {
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state not persisted: {e}\n"),
        )
            .into_response(),
        None => (StatusCode::OK, "ready\n").into_response(),
    }
}

/// Every alias: what it answers, since when and why; every zone: its role,
/// serial and whether it is served.
async fn status(State(s): State<AdminState>) -> Response {
    let view = s.status.load();
    let aliases: Vec<_> = view
        .aliases
        .iter()
        .map(|a| {
            json!({
                "name": a.name, "answer": a.answer, "pending": a.pending, "target": a.target, "region": a.region,
                "reason": a.reason, "since": a.since, "serial": a.serial, "override": a.override_,
                "prober_isolated": a.prober_isolated,
            })
        })
        .collect();
    Json(json!({
        "aliases": aliases,
        "zones": view.zones,
        "state": view.state,
        "canary_failing": view.canary_failing,
    }))
    .into_response()
}

/// One alias with the full trace: every target, every check it depends on.
async fn alias(State(s): State<AdminState>, Path(name): Path<String>) -> Response {
    let view = s.status.load();
    let wanted = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
    let Some(a) = view.aliases.iter().find(|a| a.name == wanted) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no alias {wanted}; GET /v1/status lists them"),
        );
    };
    let used: Vec<_> = view
        .checks
        .iter()
        .filter(|c| a.targets.iter().any(|t| t.checks.contains(&c.name)))
        .collect();
    Json(json!({ "alias": a, "checks": used, "canary_failing": view.canary_failing }))
        .into_response()
}

async fn checks(State(s): State<AdminState>) -> Response {
    Json(json!({ "checks": s.status.load().checks })).into_response()
}

/// Prometheus scrape endpoint (OpenMetrics text).
async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

/// The JSON request in `body`, or the response refusing it; `example`
/// shows a well-formed body in the error.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    example: &str,
) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("{e}; send {example}"),
        ))
    })
}

/// Refuses a field longer than `max` bytes.
fn bounded(field: &str, value: &str, max: usize) -> Result<(), Box<Response>> {
    if value.len() > max {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!(
                "`{field}` is {} bytes long; at most {max} are accepted",
                value.len()
            ),
        )));
    }
    Ok(())
}

async fn overrides(State(s): State<AdminState>) -> Response {
    let view = s.status.load();
    let list: Vec<_> = view
        .aliases
        .iter()
        .filter_map(|a| {
            a.override_
                .as_ref()
                .map(|o| json!({ "alias": a.name, "override": o }))
        })
        .collect();
    Json(json!({ "overrides": list })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRequest {
    /// The Region of the target to pin.
    target: String,
    reason: String,
    /// A duration ("2h"); or `until`, an RFC 3339 time. Neither: until cleared.
    #[serde(rename = "for")]
    for_: Option<String>,
    until: Option<String>,
}

async fn set_override(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Extension(Caller(by)): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let example = r#"{"target": "<region>", "reason": "...", "for": "2h"}"#;
    let req: OverrideRequest = match parse_body(&body, example) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let now = SystemTime::now();
    let until = match override_until(&req, now) {
        Ok(until) => until,
        Err(r) => return *r,
    };
    let secs = |t: SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let override_ = Override {
        region: req.target,
        reason: req.reason,
        by,
        set_at: secs(now),
        until: until.map(secs),
    };
    let (reply, answer) = oneshot::channel();
    send(
        &s,
        Command::SetOverride {
            alias: name,
            override_,
            reply,
        },
        answer,
    )
    .await
}

/// Checks an override request's fields; returns when it ends (None: when
/// cleared), at most `MAX_OVERRIDE` after `now`.
fn override_until(
    req: &OverrideRequest,
    now: SystemTime,
) -> Result<Option<SystemTime>, Box<Response>> {
    let bad = |message: String| Box::new(error(StatusCode::BAD_REQUEST, &message));
    bounded("target", &req.target, MAX_TARGET_BYTES)?;
    bounded("reason", &req.reason, MAX_TEXT_BYTES)?;
    if req.reason.trim().is_empty() {
        return Err(bad(
            "say why in `reason`: it is logged with the change".to_string()
        ));
    }
    if req.reason.chars().any(char::is_control) {
        return Err(bad(
            "`reason` must be one line without control characters".to_string()
        ));
    }
    let latest = now.checked_add(MAX_OVERRIDE);
    let too_late = |t: SystemTime| latest.is_none_or(|latest| t > latest);
    match (&req.for_, &req.until) {
        (Some(_), Some(_)) => Err(bad("give `for` or `until`, not both".to_string())),
        (Some(text), None) => {
            bounded("for", text, MAX_TIME_BYTES)?;
            match humantime::parse_duration(text) {
                Ok(d) if d.is_zero() => Err(bad(
                    "`for` must be longer than zero; to end an override, DELETE it".to_string(),
                )),
                Ok(d) => match now.checked_add(d) {
                    Some(t) if !too_late(t) => Ok(Some(t)),
                    _ => Err(bad(format!(
                        "`for` = {text:?} is longer than an override may last (1 year); \
                         set a shorter one and renew it when it ends"
                    ))),
                },
                Err(e) => Err(bad(format!("`for` = {text:?}: {e}; write e.g. \"2h\""))),
            }
        }
        (None, Some(text)) => {
            bounded("until", text, MAX_TIME_BYTES)?;
            match humantime::parse_rfc3339_weak(text) {
                Ok(t) if t <= now => Err(bad(format!("`until` = {text:?} is in the past"))),
                Ok(t) if too_late(t) => Err(bad(format!(
                    "`until` = {text:?} is more than a year away, longer than an override \
                     may last; set an earlier time and renew it when it ends"
                ))),
                Ok(t) => Ok(Some(t)),
                Err(e) => Err(bad(format!(
                    "`until` = {text:?}: {e}; write e.g. \"2026-12-01T08:00:00Z\""
                ))),
            }
        }
        (None, None) => Ok(None),
    }
}

async fn clear_override(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Extension(Caller(by)): Extension<Caller>,
) -> Response {
    let (reply, answer) = oneshot::channel();
    send(
        &s,
        Command::ClearOverride {
            alias: name,
            by,
            reply,
        },
        answer,
    )
    .await
}

async fn send(
    s: &AdminState,
    command: Command,
    answer: oneshot::Receiver<Result<String, String>>,
) -> Response {
    if s.commands.send(command).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    match answer.await {
        Ok(Ok(message)) => Json(json!({ "ok": message })).into_response(),
        Ok(Err(message)) if message.starts_with("no alias") || message.starts_with("no check") => {
            error(StatusCode::NOT_FOUND, &message)
        }
        Ok(Err(message)) => error(StatusCode::BAD_REQUEST, &message),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportRequest {
    healthy: bool,
    #[serde(default)]
    detail: String,
}

/// An external system reports the state of an `external` check.
async fn report(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    Extension(Caller(by)): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let example = r#"{"healthy": true, "detail": "alarm OK"}"#;
    let req: ReportRequest = match parse_body(&body, example) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    if let Err(r) = bounded("detail", &req.detail, MAX_TEXT_BYTES) {
        return *r;
    }
    let (reply, answer) = oneshot::channel();
    let command = Command::Report {
        check: name,
        healthy: req.healthy,
        detail: req.detail,
        by,
        reply,
    };
    send(&s, command, answer).await
}

/// Re-reads the configuration file and zones; a bad config changes nothing.
async fn reload(State(s): State<AdminState>, Extension(Caller(by)): Extension<Caller>) -> Response {
    tracing::info!(by, "reload requested through the API");
    match crate::engine::request_reload(s.config_path.clone(), &s.commands).await {
        Ok(message) => Json(json!({ "ok": message })).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}
