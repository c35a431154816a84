//! Webhooks: every answer change, and a secondary falling out of sync or
//! back, is POSTed as JSON to each configured URL, signed with HMAC-SHA256
//! when a secret is set. Delivery runs on its own task with bounded
//! retries; the engine only enqueues and never waits.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::config::WebhookSpec;

/// Header carrying `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Txtfailover-Signature";
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// A webhook body: the `event` field names its kind, the rest is the
/// variant's fields (so the answer change keeps its original shape).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    AnswerChanged(AnswerChange),
    /// Behind, ahead or unreachable for `secondary_lag_warn` or more.
    SecondaryOutOfSync(SecondaryChange),
    /// In sync again after a `secondary_out_of_sync`.
    SecondaryInSync(SecondaryChange),
}

#[derive(Debug, Clone, Serialize)]
pub struct AnswerChange {
    pub alias: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub serial: u32,
    /// RFC 3339.
    pub time: String,
}

/// A secondary of one of our zones, as the SOA query found it.
#[derive(Debug, Clone, Serialize)]
pub struct SecondaryChange {
    pub zone: String,
    /// The NOTIFY target's address.
    pub secondary: String,
    /// "in_sync", "behind", "ahead" or "unreachable".
    pub state: String,
    /// Their serial at the last answer.
    pub serial: Option<u32>,
    /// Ours when asked.
    pub ours: u32,
    /// Serials behind (0 unless behind).
    pub lag: u32,
    /// Since when the state holds (RFC 3339).
    pub since: String,
    /// Why there was no answer, when unreachable.
    pub error: Option<String>,
    /// RFC 3339.
    pub time: String,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Starts the delivery task; the sender is what the engine enqueues on.
pub fn start(hooks: Vec<WebhookSpec>) -> Option<mpsc::Sender<Event>> {
    if hooks.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<Event>(256);
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhooks disabled: cannot build the HTTP client");
                return;
            }
        };
        while let Some(change) = rx.recv().await {
            let body = serde_json::to_vec(&change).expect("serializable");
            for hook in &hooks {
                deliver(&client, hook, &body).await;
            }
        }
    });
    Some(tx)
}

async fn deliver(client: &reqwest::Client, hook: &WebhookSpec, body: &[u8]) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let mut request = client
            .post(hook.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(secret) = &hook.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret.as_bytes(), body));
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(url = %hook.url, status = %r.status(), attempt, "webhook refused")
            }
            Err(e) => tracing::warn!(url = %hook.url, error = %e, attempt, "webhook failed"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::error!(url = %hook.url, "webhook given up after {ATTEMPTS} attempts");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_their_event_and_keep_the_answer_change_fields() {
        let change = Event::AnswerChanged(AnswerChange {
            alias: "a.example.com.".into(),
            from: "PDX1 (us-west-2)".into(),
            to: "IAD1 (us-east-1)".into(),
            reason: "r".into(),
            serial: 6,
            time: "2026-01-01T00:00:00Z".into(),
        });
        let v = serde_json::to_value(&change).unwrap();
        assert_eq!(v["event"], "answer_changed");
        assert_eq!(
            (v["alias"].as_str(), v["serial"].as_u64()),
            (Some("a.example.com."), Some(6))
        );
        let secondary = SecondaryChange {
            zone: "example.com.".into(),
            secondary: "192.0.2.1:53".into(),
            state: "behind".into(),
            serial: Some(4),
            ours: 6,
            lag: 2,
            since: "2026-01-01T00:00:00Z".into(),
            error: None,
            time: "2026-01-01T00:02:00Z".into(),
        };
        let v = serde_json::to_value(Event::SecondaryOutOfSync(secondary.clone())).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["lag"].as_u64()),
            (Some("secondary_out_of_sync"), Some(2))
        );
        let v = serde_json::to_value(Event::SecondaryInSync(secondary)).unwrap();
        assert_eq!(v["event"], "secondary_in_sync");
    }

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
