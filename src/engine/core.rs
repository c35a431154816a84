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

use crate::config::{Config, OnStale, ProbeSpec, Timing};
use crate::decide::{Answer, Decision, Hold, Policy, Reason, TargetHealth, decide};
use crate::health::{CheckState, Outcome, State};
use crate::state::Overrides;

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

/// Who depends on whom, computed once per configuration.
#[derive(Debug, Clone, Default)]
struct Graph {
    /// Per check: the composites it is a member of.
    parents: Vec<Vec<usize>>,
    /// Per leaf check: the aliases whose targets depend on it.
    aliases_of: Vec<Vec<usize>>,
    /// Per alias, per target: the leaf checks under its checks.
    leaves: Vec<Vec<Vec<usize>>>,
    /// Per alias: how far apart the targets' first failures may be and
    /// still be one event (a round's interval plus its longest duration).
    window: Vec<Duration>,
    canaries: Vec<usize>,
}

fn is_leaf(spec: &ProbeSpec) -> bool {
    !matches!(spec, ProbeSpec::Composite { .. })
}

/// Probed here (not pushed from elsewhere): its results say something
/// about this prober's view of the network.
fn is_probed(spec: &ProbeSpec) -> bool {
    !matches!(
        spec,
        ProbeSpec::Composite { .. } | ProbeSpec::External { .. }
    )
}

/// How long one round can take: every attempt may run into its timeout.
pub fn round_span(timing: &Timing) -> Duration {
    timing.timeout.saturating_mul(attempts(timing))
}

pub fn attempts(timing: &Timing) -> u32 {
    timing.attempts.max(1)
}

fn is_canary(spec: &crate::config::CheckSpec) -> bool {
    spec.canary
}

impl Graph {
    fn build(config: &Config) -> Graph {
        let n = config.checks.len();
        let mut parents = vec![Vec::new(); n];
        for (i, c) in config.checks.iter().enumerate() {
            if let ProbeSpec::Composite { members, .. } = &c.probe {
                for &m in members {
                    if m < n && !parents[m].contains(&i) {
                        parents[m].push(i);
                    }
                }
            }
        }
        let mut aliases_of = vec![Vec::new(); n];
        let mut leaves = Vec::new();
        let mut window = Vec::new();
        for (a, alias) in config.aliases.iter().enumerate() {
            let mut per_target = Vec::new();
            let mut widest = Duration::ZERO;
            for t in &alias.targets {
                let mut found = Vec::new();
                for &c in &t.checks {
                    collect_leaves(config, c, &mut found, 0);
                }
                for &l in &found {
                    if !aliases_of[l].contains(&a) {
                        aliases_of[l].push(a);
                    }
                    let timing = &config.checks[l].timing;
                    widest = widest.max(timing.interval.saturating_add(round_span(timing)));
                }
                per_target.push(found);
            }
            leaves.push(per_target);
            window.push(widest);
        }
        let canaries = (0..n).filter(|&i| is_canary(&config.checks[i])).collect();
        Graph {
            parents,
            aliases_of,
            leaves,
            window,
            canaries,
        }
    }
}

/// The leaf checks under check `c`; config validation rules out cycles, the
/// depth bound keeps a bad config from recursing without end.
fn collect_leaves(config: &Config, c: usize, out: &mut Vec<usize>, depth: usize) {
    let Some(spec) = config.checks.get(c) else {
        return;
    };
    match &spec.probe {
        ProbeSpec::Composite { members, .. } if depth < 64 => {
            for &m in members {
                collect_leaves(config, m, out, depth + 1);
            }
        }
        ProbeSpec::Composite { .. } => {}
        _ => {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Alias(usize),
    Stale(usize),
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

    /// One timer per external check, at its staleness deadline.
    fn arm_stale_timers(&mut self) {
        for i in 0..self.checks.len() {
            self.arm_stale(i);
        }
    }

    fn arm_stale(&mut self, i: usize) {
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
    fn pop_timer(&mut self) {
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
    fn live(&self, at: Instant, timer: Timer) -> bool {
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

    /// Feeds one probe round (or report); returns the state change, if any.
    pub fn observe(
        &mut self,
        check: usize,
        outcome: Outcome,
        now: Instant,
    ) -> Option<(State, State)> {
        let spec = self.config.checks.get(check)?;
        if !is_leaf(&spec.probe) {
            return None;
        }
        let timing = spec.timing;
        let ok = outcome.ok;
        let run = &mut self.checks[check];
        let before = run.state.state;
        let changed = if run.awaiting_first {
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
    pub fn expire_reports(&mut self, now: Instant) -> Vec<usize> {
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

    /// Decides again the aliases something touched (or, with `sweep`, all of
    /// them: timers and commands); returns those whose decision changed.
    pub fn reevaluate(&mut self, now: Instant, unix: u64, sweep: bool) -> Vec<Change> {
        if sweep {
            self.mark_all();
        }
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
            Hold::Canary
        } else if self.aliases[i].isolated {
            Hold::Isolated
        } else {
            Hold::None
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

    /// Recomputes the composites above `check`, bottom-up.
    fn propagate(&mut self, check: usize, now: Instant) {
        let mut stack: Vec<(usize, usize)> =
            self.graph.parents[check].iter().map(|&p| (p, 0)).collect();
        while let Some((p, depth)) = stack.pop() {
            if depth > 64 {
                continue;
            }
            if self.refresh_composite(p, now) {
                stack.extend(self.graph.parents[p].iter().map(|&q| (q, depth + 1)));
            }
        }
    }

    /// Re-derives composite `i` from its members; true when it changed.
    fn refresh_composite(&mut self, i: usize, now: Instant) -> bool {
        let ProbeSpec::Composite { rule, members } = &self.config.checks[i].probe else {
            return false;
        };
        let healthy = members
            .iter()
            .filter(|&&m| self.checks[m].state.state.healthy())
            .count();
        let round = members.iter().filter(|&&m| self.checks[m].round_ok).count();
        let state = if rule.holds(healthy, members.len()) {
            State::Up
        } else {
            State::Down
        };
        let round_ok = rule.holds(round, members.len());
        let run = &mut self.checks[i];
        let moved = run.state.force(state, now);
        let round_moved = run.round_ok != round_ok;
        run.round_ok = round_ok;
        run.awaiting_first = false;
        moved || round_moved
    }

    /// Derives every composite, members first (at start and after a reload).
    fn refresh_composites(&mut self, now: Instant) {
        let n = self.checks.len();
        let mut done = vec![false; n];
        for i in 0..n {
            self.refresh_tree(i, now, &mut done, 0);
        }
    }

    fn refresh_tree(&mut self, i: usize, now: Instant, done: &mut [bool], depth: usize) {
        if done[i] || depth > 64 {
            return;
        }
        if let ProbeSpec::Composite { members, .. } = &self.config.checks[i].probe {
            for m in members.clone() {
                self.refresh_tree(m, now, done, depth + 1);
            }
            self.refresh_composite(i, now);
        }
        done[i] = true;
    }

    fn canary_check(&self) -> bool {
        self.graph.canaries.iter().any(|&c| {
            let run = &self.checks[c];
            !run.round_ok || !run.state.state.healthy()
        })
    }

    /// After a leaf's round (or forced state): the rounds of the aliases
    /// that depend on it, and the canary.
    fn after_leaf_event(&mut self, leaf: usize, ok: Option<bool>, now: Instant) {
        if self.graph.canaries.contains(&leaf) {
            let failing = self.canary_check();
            if failing != self.canary_failing {
                self.canary_failing = failing;
                self.mark_all();
            }
        }
        for k in 0..self.graph.aliases_of[leaf].len() {
            let a = self.graph.aliases_of[leaf][k];
            self.track_rounds(a, Some((leaf, ok)), now);
            self.mark(a);
        }
    }

    /// Updates an alias's view of its targets' latest rounds: since when
    /// each fails, when each last succeeded, which ones were seen to work
    /// while the answered one failed, and whether all failed together.
    fn track_rounds(&mut self, i: usize, event: Option<(usize, Option<bool>)>, now: Instant) {
        let alias = &self.config.aliases[i];
        let leaves = &self.graph.leaves[i];
        let run = &mut self.aliases[i];
        for (t, target) in alias.targets.iter().enumerate() {
            let ok = target.checks.iter().all(|&c| self.checks[c].round_ok);
            if ok {
                run.failing_since[t] = None;
                if let Some((leaf, Some(true))) = event
                    && leaves[t].contains(&leaf)
                {
                    run.ok_at[t] = Some(now);
                }
            } else if run.failing_since[t].is_none() {
                // At start (no event) a target may have been failing long
                // before: it began after its failing leaves' latest
                // success. Unknown when any never succeeded: now.
                let mut began = Some(now);
                if event.is_none() {
                    let mut latest: Option<Instant> = None;
                    for &l in &leaves[t] {
                        let c = &self.checks[l];
                        if c.round_ok {
                            continue;
                        }
                        match c.last_ok {
                            Some(at) => latest = Some(latest.map_or(at, |x| x.max(at))),
                            None => {
                                latest = None;
                                break;
                            }
                        }
                    }
                    began = latest.map(|at| at.min(now)).or(began);
                }
                run.failing_since[t] = began;
            }
        }
        if let Answer::Target(c) = run.decision.answer
            && c < alias.targets.len()
        {
            match run.failing_since[c] {
                None => run.witnessed.fill(false),
                Some(from) => {
                    // The answered target failed again: every target that
                    // succeeded since it began failing is reachable. A stale
                    // report fails at every instant (no report will fail
                    // "again"), so a success alone is enough then.
                    let failed_again =
                        matches!(event, Some((leaf, Some(false))) if leaves[c].contains(&leaf));
                    let stale = leaves[c]
                        .iter()
                        .any(|&l| self.checks[l].stale && !self.checks[l].round_ok);
                    if failed_again || stale {
                        for d in 0..alias.targets.len() {
                            if d != c && run.ok_at[d].is_some_and(|at| at >= from) {
                                run.witnessed[d] = true;
                            }
                        }
                    }
                }
            }
        }
        if run.isolated {
            // Over once some target is healthy and its latest round worked.
            let recovered = alias.targets.iter().enumerate().any(|(t, target)| {
                run.failing_since[t].is_none()
                    && target
                        .checks
                        .iter()
                        .all(|&c| self.checks[c].state.state.healthy())
            });
            if recovered {
                run.isolated = false;
            }
        } else if alias.targets.len() > 1 {
            // One target failing alone says nothing about the prober: the
            // all_down policy decides, as configured.
            // Every target fails, and the latest failure began within one
            // round of another: working targets went down together. One
            // that died long before does not count against it.
            let starts: Option<Vec<Instant>> = run.failing_since.iter().copied().collect();
            if let Some(starts) = starts
                && let Some(&last) = starts.iter().max()
                && starts
                    .iter()
                    .filter(|s| last.saturating_duration_since(**s) <= self.graph.window[i])
                    .count()
                    >= 2
            {
                run.isolated = true;
            }
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
