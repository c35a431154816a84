//! The rise/fall machine: turns a stream of probe results into a state that
//! changes only after `fall` consecutive failures or `rise` consecutive
//! successes, so one lost packet does not move users between Regions.

use std::time::{Duration, Instant};

use crate::config::Timing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No result yet; counts as healthy (Route 53 rule).
    NoData,
    Up,
    Down,
}

impl State {
    pub fn healthy(self) -> bool {
        self != State::Down
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub latency: Duration,
    /// What was seen: "200 OK", "connect refused", "timed out after 4s" ...
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct CheckState {
    pub state: State,
    /// When `state` last changed.
    pub since: Instant,
    consecutive_ok: u32,
    consecutive_fail: u32,
    pub last: Option<Outcome>,
}

impl CheckState {
    pub fn new(now: Instant) -> Self {
        CheckState {
            state: State::NoData,
            since: now,
            consecutive_ok: 0,
            consecutive_fail: 0,
            last: None,
        }
    }

    /// A state carried over a restart, counters included.
    pub fn restored(
        state: State,
        since: Instant,
        consecutive_ok: u32,
        consecutive_fail: u32,
    ) -> Self {
        CheckState {
            state,
            since,
            consecutive_ok,
            consecutive_fail,
            last: None,
        }
    }

    /// Consecutive successes and failures so far.
    pub fn streaks(&self) -> (u32, u32) {
        (self.consecutive_ok, self.consecutive_fail)
    }

    /// Sets the state outright (a stale external check following its
    /// policy); returns true when it changed.
    pub fn force(&mut self, state: State, now: Instant) -> bool {
        self.consecutive_ok = 0;
        self.consecutive_fail = 0;
        if self.state == state {
            return false;
        }
        self.state = state;
        self.since = now;
        true
    }

    /// Records a result; returns true when the state changed. The first result
    /// sets the state directly: at start-up one probe round decides.
    pub fn observe(&mut self, outcome: Outcome, timing: &Timing, now: Instant) -> bool {
        if outcome.ok {
            self.consecutive_ok = self.consecutive_ok.saturating_add(1);
            self.consecutive_fail = 0;
        } else {
            self.consecutive_fail = self.consecutive_fail.saturating_add(1);
            self.consecutive_ok = 0;
        }
        let next = match (self.state, outcome.ok) {
            (State::NoData, true) => State::Up,
            (State::NoData, false) => State::Down,
            (State::Down, true) if self.consecutive_ok >= timing.rise => State::Up,
            (State::Up, false) if self.consecutive_fail >= timing.fall => State::Down,
            (s, _) => s,
        };
        self.last = Some(outcome);
        if next != self.state {
            self.state = next;
            self.since = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: bool) -> Outcome {
        Outcome {
            ok,
            latency: Duration::from_millis(1),
            detail: String::new(),
        }
    }

    #[test]
    fn first_result_decides_then_thresholds_apply() {
        let timing = Timing {
            fall: 3,
            rise: 2,
            ..Timing::default()
        };
        let t0 = Instant::now();
        let mut s = CheckState::new(t0);
        assert!(s.state.healthy());
        assert!(s.observe(outcome(true), &timing, t0));
        assert_eq!(s.state, State::Up);
        assert!(!s.observe(outcome(false), &timing, t0));
        assert!(!s.observe(outcome(false), &timing, t0));
        let t1 = t0 + Duration::from_secs(1);
        assert!(s.observe(outcome(false), &timing, t1));
        assert_eq!((s.state, s.since), (State::Down, t1));
        assert!(!s.observe(outcome(true), &timing, t1));
        assert!(
            !s.observe(outcome(false), &timing, t1),
            "a failure resets the rise count"
        );
        assert!(!s.observe(outcome(true), &timing, t1));
        assert!(s.observe(outcome(true), &timing, t1));
        assert_eq!(s.state, State::Up);
    }

    #[test]
    fn first_failure_marks_down_at_once() {
        let mut s = CheckState::new(Instant::now());
        assert!(s.observe(outcome(false), &Timing::default(), Instant::now()));
        assert_eq!(s.state, State::Down);
    }
}
