//! Log lines that packets cause are rate-limited: a sender must not be able
//! to turn queries into disk writes (a fuzzer's rate of bad TSIGs once wrote
//! megabytes a second). Each call site of [`packet_log!`] has its own budget
//! of [`LINES_PER_WINDOW`] lines per [`WINDOW_SECS`]; what it drops is counted
//! and reported in one summary line when the site next writes.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Lines one call site may write per window.
pub const LINES_PER_WINDOW: u32 = 5;
/// The window, in seconds of the wall clock.
pub const WINDOW_SECS: u64 = 10;

/// One call site's budget. Lock-free; races at a window's edge can only
/// shift a line or a count between windows.
pub struct LogLimit {
    window: AtomicU64,
    used: AtomicU32,
    suppressed: AtomicU64,
}

/// What a call site may do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write the line; `suppressed` lines were dropped since the last one.
    Write { suppressed: u64 },
    /// Drop it (counted for the next summary).
    Drop,
}

impl LogLimit {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        LogLimit {
            window: AtomicU64::new(u64::MAX),
            used: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written at `now` (seconds).
    pub fn admit(&self, now: u64) -> Admit {
        let window = now / WINDOW_SECS;
        if self.window.swap(window, Ordering::Relaxed) != window {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < LINES_PER_WINDOW {
            Admit::Write {
                suppressed: self.suppressed.swap(0, Ordering::Relaxed),
            }
        } else {
            // Keep `used` from wrapping under a long flood.
            self.used.store(LINES_PER_WINDOW, Ordering::Relaxed);
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            Admit::Drop
        }
    }
}

/// `tracing::<level>!` behind a per-call-site [`LogLimit`], for lines that
/// packets or peers cause. Suppressed lines are summarised at WARN.
#[macro_export]
macro_rules! packet_log {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: $crate::loglimit::LogLimit = $crate::loglimit::LogLimit::new();
        if let $crate::loglimit::Admit::Write { suppressed } =
            LIMIT.admit($crate::state::unix_now())
        {
            if suppressed > 0 {
                tracing::warn!(suppressed, "dropped {suppressed} similar log lines (at most {} per {}s)",
                    $crate::loglimit::LINES_PER_WINDOW, $crate::loglimit::WINDOW_SECS);
            }
            tracing::$level!($($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_the_budget_then_one_summary() {
        let limit = LogLimit::new();
        let mut written = 0;
        for _ in 0..10_000 {
            if limit.admit(100) != Admit::Drop {
                written += 1;
            }
        }
        assert_eq!(written, LINES_PER_WINDOW);
        // Next window: the first line carries the count of what was dropped.
        assert_eq!(
            limit.admit(100 + WINDOW_SECS),
            Admit::Write {
                suppressed: 10_000 - u64::from(LINES_PER_WINDOW)
            }
        );
        assert_eq!(
            limit.admit(100 + WINDOW_SECS),
            Admit::Write { suppressed: 0 }
        );
    }

    #[test]
    fn a_clock_step_back_starts_a_new_window() {
        let limit = LogLimit::new();
        for _ in 0..LINES_PER_WINDOW {
            assert_ne!(limit.admit(1_000), Admit::Drop);
        }
        assert_eq!(limit.admit(1_000), Admit::Drop);
        assert_eq!(limit.admit(10), Admit::Write { suppressed: 1 });
    }
}
