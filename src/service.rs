//! The service manager's side: readiness, stopping and the watchdog through
//! `$NOTIFY_SOCKET` (the `sd-notify` crate). Without systemd every call is a
//! no-op, so `serve` calls them unconditionally.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Tells the manager the server answers: the first probe round is done and
/// the DNS listeners are up.
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status("answering")]) {
        tracing::warn!(error = %e, "cannot tell the service manager we are ready");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// When the decision engine last turned, in milliseconds since `origin`.
#[derive(Clone)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last_ms: Arc::default(),
        }
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn age(&self) -> Duration {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The engine wakes at least this often (its decision memory is captured
/// at most 5 s apart), so a longer silence means it is stuck.
const ENGINE_QUIET_MAX: Duration = Duration::from_secs(6);

/// With `WatchdogSec=` set, pings the manager at half the period while the
/// engine keeps turning; a stuck engine stops the pings and the manager
/// restarts the service.
pub fn spawn_watchdog(heartbeat: Heartbeat) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(10));
    let quiet = period.max(ENGINE_QUIET_MAX);
    tracing::info!(period = %humantime::format_duration(period), "systemd watchdog on");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if heartbeat.age() <= quiet {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            } else {
                tracing::error!(quiet = ?heartbeat.age(), "the decision engine has not turned: no watchdog ping");
            }
        }
    });
}
