//! The admin HTTP API (axum): read-only views of what the server answers and
//! why, plus liveness and readiness. It reads the engine's published status;
//! it never touches the DNS query path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/status", get(status))
        .route("/v1/aliases/{name}", get(alias))
        .route("/v1/checks", get(checks))
        .route("/metrics", get(metrics))
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
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

/// Every alias: what it answers, since when and why.
async fn status(State(s): State<AdminState>) -> Response {
    let view = s.status.load();
    let aliases: Vec<_> = view
        .aliases
        .iter()
        .map(|a| {
            json!({
                "name": a.name, "answer": a.answer, "target": a.target, "region": a.region,
                "reason": a.reason, "since": a.since, "serial": a.serial,
            })
        })
        .collect();
    Json(json!({ "aliases": aliases })).into_response()
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
