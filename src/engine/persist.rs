//! Whether the serials on disk keep up with what the engine wants to serve.
//! A serial is published only once it is durably written; while writing
//! fails, the engine keeps serving the previous snapshot and retries with
//! a doubling backoff, and the failure shows in the log, the metrics,
//! `/readyz` and the status view.

use std::time::{Duration, Instant};

use crate::status::{self, StateView};

/// The first retry after a failed write.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Retries never wait longer than this.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// A run of failed writes, until one succeeds.
#[derive(Debug, Clone)]
pub struct Failing {
    pub error: String,
    pub since: Instant,
    /// Failed attempts in this run.
    pub failures: u64,
    pub backoff: Duration,
    pub retry_at: Instant,
}

#[derive(Debug, Default)]
pub struct PersistHealth {
    failing: Option<Failing>,
}

impl PersistHealth {
    /// Records a failed write at `now`; returns the run so far.
    pub fn failed(&mut self, error: String, now: Instant) -> &Failing {
        let failing = match self.failing.take() {
            Some(mut f) => {
                f.backoff = f.backoff.saturating_mul(2).min(MAX_RETRY);
                f.failures = f.failures.saturating_add(1);
                f.error = error;
                f
            }
            None => Failing {
                error,
                since: now,
                failures: 1,
                backoff: FIRST_RETRY,
                retry_at: now,
            },
        };
        let failing = self.failing.insert(failing);
        failing.retry_at = now.checked_add(failing.backoff).unwrap_or(now);
        failing
    }

    /// Records a successful write; returns the run of failures it ends.
    pub fn succeeded(&mut self) -> Option<Failing> {
        self.failing.take()
    }

    pub fn failing(&self) -> Option<&Failing> {
        self.failing.as_ref()
    }

    /// When the next retry is due, while writes fail.
    pub fn retry_at(&self) -> Option<Instant> {
        self.failing.as_ref().map(|f| f.retry_at)
    }

    pub fn due(&self, now: Instant) -> bool {
        self.retry_at().is_some_and(|at| at <= now)
    }

    pub fn view(&self, now: Instant) -> StateView {
        match &self.failing {
            None => StateView {
                persisted: true,
                ..StateView::default()
            },
            Some(f) => StateView {
                persisted: false,
                error: Some(f.error.clone()),
                failing_since: Some(status::wall(f.since, now)),
                failures: f.failures,
                next_retry_in: Some(status::duration(f.retry_at.saturating_duration_since(now))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_success_resets_it() {
        let mut h = PersistHealth::default();
        let t0 = Instant::now();
        assert!(h.retry_at().is_none() && !h.due(t0));
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(h.failed("disk full".into(), t0).backoff.as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        let f = h.failing().unwrap();
        assert_eq!((f.failures, f.since), (8, t0));
        assert!(!h.due(t0) && h.due(t0 + MAX_RETRY));
        let view = h.view(t0);
        assert!(!view.persisted && view.error.as_deref() == Some("disk full"));
        assert_eq!(h.succeeded().map(|f| f.failures), Some(8));
        assert!(h.view(t0).persisted && h.retry_at().is_none());
        assert_eq!(h.failed("again".into(), t0).backoff, FIRST_RETRY);
    }
}
