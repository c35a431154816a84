//! The admin API's accept loop. hyper serves each connection (HTTP/1.1,
//! with its header-read timeout); this loop decides which connections are
//! served at all: at most `max_connections` at once, `max_per_source` from
//! one address, each for a bounded lifetime. Accept errors (such as running
//! out of file descriptors) back off instead of spinning.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::{Refused, Rejected};
use crate::config::AdminLimits;
use crate::metrics::Metrics;

/// The request line and headers may take this many bytes (hyper's floor is
/// 8 KiB); beyond it hyper answers 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// After this long a connection finishes its current request and closes,
/// so a client that keeps one busy forever still gives its slot back.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// How long accepting pauses after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until the listener fails for good (never, in
/// practice: every accept error is retried after a pause).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: AdminLimits,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let sources: Arc<Sources> = Arc::default();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                metrics.admin.accept_error();
                // A client that gave up before we accepted: nothing to wait for.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) {
                    crate::packet_log!(
                        error,
                        error = %e,
                        "cannot accept admin API connections; pausing {}ms",
                        ACCEPT_BACKOFF.as_millis()
                    );
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            metrics.admin.refused(Refused::MaxConnections);
            refuse(
                stream,
                &format!(
                    "too many admin API connections (max_connections = {}); retry later",
                    limits.max_connections
                ),
            );
            continue;
        };
        let Some(held) = Held::take(&sources, peer.ip(), limits.max_per_source, permit, &metrics)
        else {
            metrics.admin.refused(Refused::MaxPerSource);
            refuse(
                stream,
                &format!(
                    "too many admin API connections from {} (max_per_source = {}); retry later",
                    peer.ip(),
                    limits.max_per_source
                ),
            );
            continue;
        };
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let metrics = metrics.clone();
        let request_timeout = limits.request_timeout;
        tokio::spawn(async move {
            let _held = held;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = tokio::time::sleep(CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(request_timeout, conn).await {
                        Ok(r) => r,
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    metrics.admin.rejected(Rejected::HeaderTimeout);
                }
                tracing::debug!(%peer, error = %e, "admin API connection ended");
            }
        });
    }
}

/// Open connections per source (`peer::source_key`).
#[derive(Default)]
struct Sources(Mutex<HashMap<IpAddr, usize>>);

/// What a served connection holds; given back when it ends.
struct Held {
    sources: Arc<Sources>,
    key: IpAddr,
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Held {
    fn take(
        sources: &Arc<Sources>,
        ip: IpAddr,
        max_per_source: usize,
        permit: OwnedSemaphorePermit,
        metrics: &Arc<Metrics>,
    ) -> Option<Held> {
        let key = crate::peer::source_key(ip);
        let mut map = sources.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_insert(0);
        if *n >= max_per_source {
            return None;
        }
        *n = n.saturating_add(1);
        metrics.admin.opened();
        Some(Held {
            sources: sources.clone(),
            key,
            _permit: permit,
            metrics: metrics.clone(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.metrics.admin.closed();
        let mut map = self.sources.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Answers 503 without reading anything, then closes. Best effort: the
/// answer is written only if the socket takes it at once.
fn refuse(stream: TcpStream, message: &str) {
    let body = serde_json::json!({ "error": message }).to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(reply.as_bytes());
}
