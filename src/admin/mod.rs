//! The admin HTTP API (axum): read-only views of what the server answers and
//! why, plus liveness and readiness. It reads the engine's published status;
//! it never touches the DNS query path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::AdminToken;
use crate::engine::Command;
use crate::state::Override;
use axum::{Json, Router};
use serde_json::json;

use crate::engine::StatusCell;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AdminState {
    pub status: StatusCell,
    /// Set once the first probe round is done and the DNS listeners are up.
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    /// Empty: mutations are disabled.
    pub tokens: Arc<Vec<AdminToken>>,
    pub commands: mpsc::Sender<Command>,
    /// Re-read on `POST /v1/reload`.
    pub config_path: std::path::PathBuf,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/status", get(status))
        .route("/v1/aliases/{name}", get(alias))
        .route("/v1/checks", get(checks))
        .route("/v1/checks/{name}", put(report))
        .route("/v1/reload", axum::routing::post(reload))
        .route("/metrics", get(metrics))
        .route("/v1/overrides", get(overrides))
        .route(
            "/v1/overrides/{name}",
            put(set_override).delete(clear_override),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see README.md (Admin API)",
            )
        })
        .with_state(state)
}

/// Binds the admin listener; serving starts when the returned future is polled.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot bind the admin API on {addr}: {e}; change [admin] listen")
    })
}

pub async fn serve(listener: tokio::net::TcpListener, state: AdminState) -> anyhow::Result<()> {
    axum::serve(listener, router(state)).await?;
    Ok(())
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
            })
        })
        .collect();
    Json(json!({ "aliases": aliases, "zones": view.zones, "state": view.state })).into_response()
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
    Json(json!({ "alias": a, "checks": used })).into_response()
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

/// The label of the caller's bearer token, or the response refusing them.
fn authorize(s: &AdminState, headers: &HeaderMap) -> Result<String, (StatusCode, &'static str)> {
    if s.tokens.is_empty() {
        return Err((
            StatusCode::FORBIDDEN,
            "changes are disabled: set [admin] token_file to enable them",
        ));
    }
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(presented) = presented else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <token>",
        ));
    };
    s.tokens
        .iter()
        .find(|t| constant_time_eq(t.secret.as_bytes(), presented.as_bytes()))
        .map(|t| t.label.clone())
        .ok_or((StatusCode::UNAUTHORIZED, "unknown token"))
}

/// Compares without an early exit, so response time says nothing about how
/// much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller's label and their JSON request, or the response refusing them;
/// `example` shows a well-formed body in the error.
fn authorized_body<T: serde::de::DeserializeOwned>(
    s: &AdminState,
    headers: &HeaderMap,
    body: &[u8],
    example: &str,
) -> Result<(String, T), Box<Response>> {
    let by = authorize(s, headers).map_err(|(code, message)| Box::new(error(code, message)))?;
    let req = serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("{e}; send {example}"),
        ))
    })?;
    Ok((by, req))
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
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let example = r#"{"target": "<region>", "reason": "...", "for": "2h"}"#;
    let (by, req): (String, OverrideRequest) = match authorized_body(&s, &headers, &body, example) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    if req.reason.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "say why in `reason`: it is logged with the change",
        );
    }
    let now = std::time::SystemTime::now();
    let until = match (&req.for_, &req.until) {
        (Some(_), Some(_)) => {
            return error(StatusCode::BAD_REQUEST, "give `for` or `until`, not both");
        }
        (Some(d), None) => match humantime::parse_duration(d) {
            Ok(d) => Some(now + d),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("`for` = {d:?}: {e}; write e.g. \"2h\""),
                );
            }
        },
        (None, Some(t)) => match humantime::parse_rfc3339_weak(t) {
            Ok(t) if t > now => Some(t),
            Ok(_) => return error(StatusCode::BAD_REQUEST, "`until` is in the past"),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("`until` = {t:?}: {e}; write e.g. \"2026-12-01T08:00:00Z\""),
                );
            }
        },
        (None, None) => None,
    };
    let secs = |t: std::time::SystemTime| {
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

async fn clear_override(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let by = match authorize(&s, &headers) {
        Ok(by) => by,
        Err((code, message)) => return error(code, message),
    };
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
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let example = r#"{"healthy": true, "detail": "alarm OK"}"#;
    let (by, req): (String, ReportRequest) = match authorized_body(&s, &headers, &body, example) {
        Ok(r) => r,
        Err(r) => return *r,
    };
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
async fn reload(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    let by = match authorize(&s, &headers) {
        Ok(by) => by,
        Err((code, message)) => return error(code, message),
    };
    tracing::info!(by, "reload requested through the API");
    match crate::engine::request_reload(s.config_path.clone(), &s.commands).await {
        Ok(message) => Json(json!({ "ok": message })).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}
