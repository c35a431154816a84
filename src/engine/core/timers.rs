//! The core's wakeups: an alias's `recheck_at` (a failback or an override
//! coming due) and an external check going stale, in a heap. An entry is
//! checked when it comes up, so a superseded one is dropped; finding the
//! next wakeup costs no scan, and the heap holds at most one live entry
//! per alias and per external check.

use std::cmp::Reverse;
use std::time::Instant;

use super::Core;
use crate::config::ProbeSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Alias(usize),
    Stale(usize),
}

impl Core {
    /// One timer per external check, at its staleness deadline.
    pub(super) fn arm_stale_timers(&mut self) {
        for i in 0..self.checks.len() {
            self.arm_stale(i);
        }
    }

    pub(super) fn arm_stale(&mut self, i: usize) {
        if self.stale_armed.get(i).copied().unwrap_or(true) {
            return;
        }
        if let ProbeSpec::External { stale_after, .. } = self.config.checks[i].probe
            && let Some(at) = self.checks[i].reported_at.checked_add(stale_after)
        {
            self.timers.push(Reverse((at, Timer::Stale(i))));
            self.stale_armed[i] = true;
        }
    }

    /// Takes the top timer entry off the heap; a superseded staleness
    /// entry re-arms at its check's current deadline.
    pub(super) fn pop_timer(&mut self) {
        let Some(Reverse((at, timer))) = self.timers.pop() else {
            return;
        };
        if let Timer::Stale(i) = timer
            && let Some(armed) = self.stale_armed.get_mut(i)
        {
            *armed = false;
            if !self.live(at, timer) && !self.checks[i].stale {
                self.arm_stale(i);
            }
        }
    }

    /// Whether a timer entry still stands (not superseded since).
    pub(super) fn live(&self, at: Instant, timer: Timer) -> bool {
        match timer {
            Timer::Alias(i) => self
                .aliases
                .get(i)
                .is_some_and(|a| a.decision.recheck_at == Some(at)),
            Timer::Stale(i) => match (self.config.checks.get(i), self.checks.get(i)) {
                (Some(spec), Some(run)) => match spec.probe {
                    ProbeSpec::External { stale_after, .. } => {
                        !run.stale && run.reported_at.checked_add(stale_after) == Some(at)
                    }
                    _ => false,
                },
                _ => false,
            },
        }
    }

    /// Takes the timers due at `now`: their aliases are decided again at
    /// the next `reevaluate`; stale reports are applied (returned, for the
    /// log).
    pub fn fire(&mut self, now: Instant) -> Vec<usize> {
        let mut stale = false;
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > now {
                break;
            }
            let live = self.live(at, timer);
            self.pop_timer();
            if !live {
                continue;
            }
            match timer {
                Timer::Alias(i) => self.mark(i),
                Timer::Stale(_) => stale = true,
            }
        }
        if stale {
            self.expire_reports(now)
        } else {
            Vec::new()
        }
    }

    /// Timer entries held, live or not (a test's view of the heap).
    #[cfg(test)]
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// When some decision could change with no new event.
    pub fn next_recheck(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if self.live(at, timer) {
                return Some(at);
            }
            self.pop_timer();
        }
        None
    }
}
