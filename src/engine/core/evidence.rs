//! What the rounds say beyond each check's state: composites re-derived
//! from their members, the canary, and per alias the evidence about the
//! prober (since when each target fails, when each last worked, which
//! targets were seen working while the answered one failed, and the
//! isolation latch).

use std::time::Instant;

use super::Core;
use crate::config::ProbeSpec;
use crate::decide::Answer;
use crate::health::State;

impl Core {
    /// Recomputes the composites above `check`, bottom-up.
    pub(super) fn propagate(&mut self, check: usize, now: Instant) {
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
    pub(super) fn refresh_composite(&mut self, i: usize, now: Instant) -> bool {
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
    pub(super) fn refresh_composites(&mut self, now: Instant) {
        let n = self.checks.len();
        let mut done = vec![false; n];
        for i in 0..n {
            self.refresh_tree(i, now, &mut done, 0);
        }
    }

    pub(super) fn refresh_tree(&mut self, i: usize, now: Instant, done: &mut [bool], depth: usize) {
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

    pub(super) fn canary_check(&self) -> bool {
        self.graph.canaries.iter().any(|&c| {
            let run = &self.checks[c];
            !run.round_ok || !run.state.state.healthy()
        })
    }

    /// After a leaf's round (or forced state): the rounds of the aliases
    /// that depend on it, and the canary.
    pub(super) fn after_leaf_event(&mut self, leaf: usize, ok: Option<bool>, now: Instant) {
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
    pub(super) fn track_rounds(
        &mut self,
        i: usize,
        event: Option<(usize, Option<bool>)>,
        now: Instant,
    ) {
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
}
