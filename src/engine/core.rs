//! The decision core: check states, what each alias answers and why, and the
//! evidence about the prober itself. Events go in (probe rounds, reports,
//! overrides, the clock), decisions come out; no I/O, no clock of its own, so
//! the simulation in `sim.rs` runs the very code the server runs, in virtual
//! time.
//!
//! Work per event is proportional to what the event touches: a probe result
//! re-decides only the aliases whose targets depend on that check.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, OnStale, ProbeSpec};
use crate::decide::{Answer, Decision, Hold, Policy, Reason, TargetHealth, decide};
use crate::health::{CheckState, Outcome, State};
use crate::state::Overrides;

mod evidence;
mod graph;
mod timers;

use graph::{Graph, is_leaf, is_probed};
pub use graph::{attempts, round_span};
use timers::Timer;

/// One check as the core tracks it. For composites, `state` and `round_ok`
/// are derived from the members, and `state.since` is when the composite's
/// rule last changed its result.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub state: CheckState,
    /// Whether the latest round succeeded (true before any result).
    pub round_ok: bool,
    /// When a round last succeeded and last failed.
    pub last_ok: Option<Instant>,
    pub last_fail: Option<Instant>,
    /// New or changed by a reload, or not resumed at start: the next result
    /// sets the state directly (that round makes `fall` quick attempts).
    pub awaiting_first: bool,
    /// External checks: when a report last came, and whether it went stale.
    pub reported_at: Instant,
    pub stale: bool,
}

impl CheckRun {
    fn new(now: Instant) -> CheckRun {
        CheckRun {
            state: CheckState::new(now),
            round_ok: true,
            last_ok: None,
            last_fail: None,
            awaiting_first: true,
            reported_at: now,
            stale: false,
        }
    }
}

/// One alias as the core tracks it.
#[derive(Debug, Clone)]
pub struct AliasRun {
    pub decision: Decision,
    /// When the decided answer last changed.
    pub since: Instant,
    /// Failbacks in a row (each doubles `failback_after`).
    pub level: u32,
    /// Per target: since when its latest rounds fail, and when a round of it
    /// last succeeded.
    failing_since: Vec<Option<Instant>>,
    ok_at: Vec<Option<Instant>>,
    /// Per target: seen succeeding while the answered target was failing.
    witnessed: Vec<bool>,
    /// Every target began failing within one round of each other: the
    /// prober looks cut off. Latched until some target is healthy again.
    pub isolated: bool,
}

impl AliasRun {
    /// An alias not decided yet (decided at `Core::start`).
    fn new(targets: usize, now: Instant) -> AliasRun {
        AliasRun {
            decision: Decision {
                answer: Answer::Target(0),
                reason: Reason::Initial,
                recheck_at: None,
            },
            since: now,
            level: 0,
            failing_since: vec![None; targets],
            ok_at: vec![None; targets],
            witnessed: vec![false; targets],
            isolated: false,
        }
    }
}

/// An alias whose decision changed (answer or reason).
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub alias: usize,
    pub before: Decision,
    pub after: Decision,
}

#[derive(Debug, Clone)]
pub struct Core {
    config: Arc<Config>,
    checks: Vec<CheckRun>,
    aliases: Vec<AliasRun>,
    overrides: Overrides,
    /// An alias an operator released: decided afresh, as at start.
    release: Option<usize>,
    graph: Graph,
    /// Aliases to decide again at the next `reevaluate`.
    dirty: Vec<usize>,
    dirty_mark: Vec<bool>,
    canary_failing: bool,
    /// When the core started (a target without checks is healthy since).
    started: Instant,
    /// Pending wakeups: an alias's `recheck_at`, an external check going
    /// stale. Entries are checked when they come up, so a superseded one
    /// is simply dropped; finding the next wakeup costs no scan.
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Per check: a staleness timer is in the heap. One per check at most:
    /// a report moves the deadline, and the entry re-arms itself when it
    /// comes up superseded (a reporter in a tight loop adds nothing).
    stale_armed: Vec<bool>,
}

impl Core {
    /// A core with no data yet; aliases answer nothing until `start`.
    pub fn new(config: Arc<Config>, now: Instant) -> Core {
        let graph = Graph::build(&config);
        let checks = config.checks.iter().map(|_| CheckRun::new(now)).collect();
        let aliases = config
            .aliases
            .iter()
            .map(|a| AliasRun::new(a.targets.len(), now))
            .collect();
        let n = config.aliases.len();
        let n_checks = config.checks.len();
        let mut core = Core {
            config,
            checks,
            aliases,
            overrides: Overrides::new(),
            release: None,
            graph,
            dirty: Vec::new(),
            dirty_mark: vec![false; n],
            canary_failing: false,
            started: now,
            timers: BinaryHeap::new(),
            stale_armed: vec![false; n_checks],
        };
        core.refresh_composites(now);
        core.arm_stale_timers();
        core
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn checks(&self) -> &[CheckRun] {
        &self.checks
    }

    pub fn aliases(&self) -> &[AliasRun] {
        &self.aliases
    }

    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    pub fn canary_failing(&self) -> bool {
        self.canary_failing
    }

    /// Replaces the operator pins (the shell persists them first).
    pub fn set_overrides(&mut self, overrides: Overrides) {
        self.overrides = overrides;
        self.mark_all();
    }

    /// Decides `alias` afresh at the next `reevaluate`, as at start.
    pub fn release(&mut self, alias: usize) {
        self.release = Some(alias);
        self.mark(alias);
    }

    /// Carries a check's state over (a restart or a reload).
    pub fn restore_check(&mut self, i: usize, run: CheckRun) {
        if let Some(slot) = self.checks.get_mut(i) {
            *slot = run;
        }
    }

    /// Carries an alias's answer, damping and isolation latch over;
    /// decided at `start`.
    pub fn restore_alias(
        &mut self,
        i: usize,
        answer: Answer,
        since: Instant,
        level: u32,
        isolated: bool,
    ) {
        if let Some(a) = self.aliases.get_mut(i) {
            a.decision.answer = answer;
            a.since = since;
            a.level = level;
            a.isolated = isolated;
        }
    }

    /// Makes the first decisions. `previous` per alias is what it answered
    /// before a restart or reload (None: decide as new).
    pub fn start(&mut self, previous: &[Option<Answer>], now: Instant, unix: u64) {
        self.refresh_composites(now);
        self.canary_failing = self.canary_check();
        for i in 0..self.aliases.len() {
            self.track_rounds(i, None, now);
            let prev = previous.get(i).copied().flatten();
            self.forget_damping_when_calm(i, now);
            let d = self.decide_alias(i, prev, now, unix);
            let a = &mut self.aliases[i];
            if prev != Some(d.answer) {
                a.since = now;
            }
            a.decision = d;
            if let Some(at) = d.recheck_at {
                self.timers.push(Reverse((at, Timer::Alias(i))));
            }
        }
        self.dirty.clear();
        self.dirty_mark.fill(false);
    }

    /// Feeds one probe round (or report); returns the state change, if any.
    pub fn observe(
        &mut self,
        check: usize,
        outcome: Outcome,
        now: Instant,
    ) -> Option<(State, State)> {
        self.feed(check, outcome, now, false)
    }

    /// A verdict from the checked system itself (an alarm's new state,
    /// pushed): it sets the state at once instead of counting toward
    /// rise/fall, as the first round does.
    pub fn assert_state(
        &mut self,
        check: usize,
        outcome: Outcome,
        now: Instant,
    ) -> Option<(State, State)> {
        self.feed(check, outcome, now, true)
    }

    fn feed(
        &mut self,
        check: usize,
        outcome: Outcome,
        now: Instant,
        decisive: bool,
    ) -> Option<(State, State)> {
        let spec = self.config.checks.get(check)?;
        if !is_leaf(&spec.probe) {
            return None;
        }
        let timing = spec.timing;
        let ok = outcome.ok;
        let run = &mut self.checks[check];
        let before = run.state.state;
        let changed = if run.awaiting_first || decisive {
            run.awaiting_first = false;
            let to = if ok { State::Up } else { State::Down };
            let moved = run.state.force(to, now);
            run.state.last = Some(outcome);
            moved
        } else {
            run.state.observe(outcome, &timing, now)
        };
        run.round_ok = ok;
        if ok {
            run.last_ok = Some(now);
        } else {
            run.last_fail = Some(now);
        }
        self.propagate(check, now);
        self.after_leaf_event(check, Some(ok), now);
        changed.then(|| (before, self.checks[check].state.state))
    }

    /// An external check's report: a round like any other.
    pub fn report(
        &mut self,
        check: usize,
        outcome: Outcome,
        now: Instant,
    ) -> Option<(State, State)> {
        if let Some(run) = self.checks.get_mut(check) {
            run.reported_at = now;
            run.stale = false;
            self.arm_stale(check);
        }
        self.observe(check, outcome, now)
    }

    /// Applies `on_stale` to external checks whose reports stopped; returns
    /// the checks that went stale now.
    fn expire_reports(&mut self, now: Instant) -> Vec<usize> {
        let mut went = Vec::new();
        for i in 0..self.checks.len() {
            let ProbeSpec::External {
                stale_after,
                on_stale,
            } = self.config.checks[i].probe
            else {
                continue;
            };
            let run = &mut self.checks[i];
            if run.stale
                || run
                    .reported_at
                    .checked_add(stale_after)
                    .is_none_or(|t| t > now)
            {
                continue;
            }
            run.stale = true;
            went.push(i);
            let state = match on_stale {
                OnStale::Healthy => State::Up,
                OnStale::Unhealthy => State::Down,
                OnStale::Last => continue,
            };
            if run.state.force(state, now) {
                run.round_ok = state.healthy();
                self.propagate(i, now);
                self.after_leaf_event(i, None, now);
            }
        }
        went
    }

    /// Decides again the aliases something touched (an event, a due timer,
    /// an override or release); returns those whose decision changed.
    pub fn reevaluate(&mut self, now: Instant, unix: u64) -> Vec<Change> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changes = Vec::new();
        for i in dirty {
            self.dirty_mark[i] = false;
            let before = self.aliases[i].decision;
            self.forget_damping_when_calm(i, now);
            let released = self.release.take_if(|r| *r == i).is_some();
            let previous = (!released).then_some(before.answer);
            let mut after = self.decide_alias(i, previous, now, unix);
            // An override's expiry is read through the wall clock's whole
            // seconds: the same expiry seen again keeps its armed timer
            // instead of pushing one per decision.
            if before.reason == Reason::Override
                && after.reason == Reason::Override
                && before.answer == after.answer
                && let (Some(b), Some(a)) = (before.recheck_at, after.recheck_at)
                && b > now
                && a.max(b).saturating_duration_since(a.min(b)) < Duration::from_secs(1)
            {
                after.recheck_at = Some(b);
            }
            if after.answer != before.answer {
                self.moved(i, &before, &after, now);
            }
            self.aliases[i].decision = after;
            if let Some(at) = after.recheck_at
                && after.recheck_at != before.recheck_at
            {
                self.timers.push(Reverse((at, Timer::Alias(i))));
            }
            if after.answer != before.answer || after.reason != before.reason {
                changes.push(Change {
                    alias: i,
                    before,
                    after,
                });
            }
        }
        changes
    }

    /// Bookkeeping of an answer change: damping and confirmation start over.
    fn moved(&mut self, i: usize, before: &Decision, after: &Decision, now: Instant) {
        let reset = self.config.aliases[i].policy.failback_reset;
        let a = &mut self.aliases[i];
        let calm = now.saturating_duration_since(a.since) >= reset
            && !matches!(before.reason, Reason::FailbackPending { .. });
        if calm {
            a.level = 0;
        }
        if matches!(after.reason, Reason::Failback { .. }) {
            a.level = a.level.saturating_add(1).min(32);
        }
        a.since = now;
        a.witnessed.fill(false);
    }

    /// Drops the damping once the alias has been calm for `failback_reset`,
    /// before a failback becomes pending: otherwise the pending failback
    /// itself ends the calm and the wait jumps back to the damped value.
    fn forget_damping_when_calm(&mut self, i: usize, now: Instant) {
        let reset = self.config.aliases[i].policy.failback_reset;
        let a = &mut self.aliases[i];
        if now.saturating_duration_since(a.since) >= reset
            && !matches!(a.decision.reason, Reason::FailbackPending { .. })
        {
            a.level = 0;
        }
    }

    /// The failback wait the alias is under now.
    pub fn failback_after(&self, i: usize, now: Instant) -> Duration {
        let policy = &self.config.aliases[i].policy;
        let a = &self.aliases[i];
        let calm = now.saturating_duration_since(a.since) >= policy.failback_reset
            && !matches!(a.decision.reason, Reason::FailbackPending { .. });
        policy.damped(if calm { 0 } else { a.level })
    }

    /// Health of an alias's targets as the decision sees it.
    pub fn target_health(&self, i: usize) -> Vec<TargetHealth> {
        let alias = &self.config.aliases[i];
        let run = &self.aliases[i];
        alias
            .targets
            .iter()
            .enumerate()
            .map(|(t, target)| {
                let healthy = target
                    .checks
                    .iter()
                    .all(|&c| self.checks[c].state.state.healthy());
                let since = target
                    .checks
                    .iter()
                    .map(|&c| self.checks[c].state.since)
                    .max()
                    .unwrap_or(self.started);
                // A target with no probe results here has nothing to confirm.
                let evidence = self.graph.leaves[i][t].iter().any(|&l| {
                    is_probed(&self.config.checks[l].probe)
                        && (self.checks[l].last_ok.is_some() || self.checks[l].last_fail.is_some())
                });
                // Witnessed once is not enough if its latest rounds fail:
                // the prober may be losing its paths one after the other.
                let failing = run.failing_since[t].is_some();
                TargetHealth {
                    healthy,
                    since,
                    confirmed: (run.witnessed[t] && !failing) || !evidence,
                    pending: run.witnessed[t] && failing && evidence,
                }
            })
            .collect()
    }

    /// The decision for one alias: an operator's override wins while it lasts.
    fn decide_alias(
        &self,
        i: usize,
        previous: Option<Answer>,
        now: Instant,
        unix: u64,
    ) -> Decision {
        let alias = &self.config.aliases[i];
        if !self.overrides.is_empty()
            && let Some(o) = self.overrides.get(&alias.name.to_string())
            && let Some(t) = alias.targets.iter().position(|t| t.region == o.region)
        {
            let recheck_at = o
                .until
                .and_then(|u| now.checked_add(Duration::from_secs(u.saturating_sub(unix))));
            return Decision {
                answer: Answer::Target(t),
                reason: Reason::Override,
                recheck_at,
            };
        }
        let hold = if self.canary_failing {
            Some(Hold::Canary)
        } else if self.aliases[i].isolated {
            Some(Hold::Isolated)
        } else {
            None
        };
        let policy = Policy {
            failback_after: self.failback_after(i, now),
            ..alias.policy
        };
        decide(&policy, &self.target_health(i), previous, hold, now)
    }

    fn mark(&mut self, i: usize) {
        if let Some(m) = self.dirty_mark.get_mut(i)
            && !*m
        {
            *m = true;
            self.dirty.push(i);
        }
    }

    fn mark_all(&mut self) {
        for i in 0..self.aliases.len() {
            self.mark(i);
        }
    }

    /// Swaps in a new configuration. Checks keep their state by name (a
    /// changed one until its first new result); aliases keep their answer
    /// where the Region still exists. Returns per check whether it is new
    /// or changed (to be probed at once) and per alias the carried answer.
    pub fn reload(
        &mut self,
        new: Arc<Config>,
        now: Instant,
        unix: u64,
    ) -> (Vec<bool>, Vec<Option<Answer>>) {
        let old = std::mem::replace(&mut self.config, new);
        let mut checks = Vec::new();
        let mut probe_now = Vec::new();
        for c in &self.config.checks {
            match old.checks.iter().position(|o| o.name == c.name) {
                Some(j) => {
                    let mut run = self.checks[j].clone();
                    let changed = old.checks[j] != *c;
                    if changed {
                        // The old state stands until the new check says otherwise.
                        run.awaiting_first = true;
                        run.stale = false;
                        run.reported_at = now;
                    }
                    checks.push(run);
                    probe_now.push(changed);
                }
                None => {
                    checks.push(CheckRun::new(now));
                    probe_now.push(true);
                }
            }
        }
        let mut aliases = Vec::new();
        let mut previous = Vec::new();
        for a in &self.config.aliases {
            let Some(j) = old.aliases.iter().position(|o| o.name == a.name) else {
                previous.push(None);
                aliases.push(AliasRun::new(a.targets.len(), now));
                continue;
            };
            let was = &self.aliases[j];
            let region_of = |t: usize| old.aliases[j].targets.get(t).map(|t| &t.region);
            let map =
                |t: usize| region_of(t).and_then(|r| a.targets.iter().position(|n| &n.region == r));
            let answer = match was.decision.answer {
                Answer::Target(t) => map(t).map(Answer::Target),
                other => Some(other),
            };
            let mut run = AliasRun {
                decision: was.decision,
                since: was.since,
                level: was.level,
                isolated: was.isolated,
                ..AliasRun::new(a.targets.len(), now)
            };
            for t in 0..old.aliases[j].targets.len() {
                if let Some(n) = map(t) {
                    run.failing_since[n] = was.failing_since[t];
                    run.ok_at[n] = was.ok_at[t];
                    run.witnessed[n] = was.witnessed[t];
                }
            }
            if let Some(answer) = answer {
                run.decision.answer = answer;
            }
            previous.push(answer);
            aliases.push(run);
        }
        self.checks = checks;
        self.aliases = aliases;
        self.graph = Graph::build(&self.config);
        self.dirty.clear();
        self.dirty_mark = vec![false; self.aliases.len()];
        self.release = None;
        self.timers.clear();
        self.stale_armed = vec![false; self.checks.len()];
        self.arm_stale_timers();
        self.start(&previous, now, unix);
        (probe_now, previous)
    }
}
