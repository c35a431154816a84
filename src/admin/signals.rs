//! `POST /v1/signals/eventbridge`: an EventBridge API destination delivers
//! CloudWatch alarm state changes here. The answer comes as soon as the
//! engine has applied the event, and says what it matched, so the
//! destination's own logs show whether txtfailover took it.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::auth::Caller;
use super::{AdminState, error};
use crate::engine::Command;
use crate::health::eventbridge;

pub(super) async fn eventbridge(
    State(s): State<AdminState>,
    Extension(Caller(by)): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let now_ms = i64::try_from(crate::engine::unix_now_ms()).unwrap_or(i64::MAX);
    let event = match eventbridge::parse(&body, now_ms) {
        Ok(e) => e,
        // 4xx: EventBridge does not retry it, and its logs show why.
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    tracing::debug!(by, alarm = %event.alarm_name, state = event.state.as_str(), "EventBridge event received");
    let (reply, answer) = oneshot::channel();
    if s.commands
        .send(Command::Signal { event, reply })
        .await
        .is_err()
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    match answer.await {
        Ok(report) => Json(report).into_response(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ),
    }
}
