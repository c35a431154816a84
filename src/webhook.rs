//! Webhooks: every answer change is POSTed as JSON to each configured URL,
//! signed with HMAC-SHA256 when a secret is set. Delivery runs on its own
//! task with bounded retries; the engine only enqueues and never waits.

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

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Starts the delivery task; the sender is what the engine enqueues on.
pub fn start(hooks: Vec<WebhookSpec>) -> Option<mpsc::Sender<AnswerChange>> {
    if hooks.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<AnswerChange>(256);
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
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
