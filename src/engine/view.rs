//! The operator view the admin API reads: rebuilt from the core's state at
//! most a few times a second, and at once after an answer or reason changes.

use std::sync::Arc;
use std::time::Instant;

use super::Engine;
use crate::config::{ProbeSpec, Rule};
use crate::decide::Answer;
use crate::health::State;
use crate::status::{
    self, AliasView, CheckView, PolicyView, ResultView, StatusView, TargetView, ZoneView,
};

impl Engine {
    /// Rebuilds the operator view from the current state.
    pub(super) fn publish_status(&mut self, now: Instant) {
        let clock = Instant::now();
        self.status_due = None;
        let checks = self
            .config
            .checks
            .iter()
            .zip(self.core.checks())
            .map(|(spec, run)| {
                let state = &run.state;
                let composite = matches!(spec.probe, ProbeSpec::Composite { .. });
                CheckView {
                    name: spec.name.clone(),
                    kind: match &spec.probe {
                        ProbeSpec::Http(h) => h.url.scheme().to_string(),
                        ProbeSpec::Tcp { .. } => "tcp".to_string(),
                        ProbeSpec::Command { .. } => "command".to_string(),
                        ProbeSpec::External { .. } => "external".to_string(),
                        ProbeSpec::CloudWatchAlarm(_) => "cloudwatch_alarm".to_string(),
                        ProbeSpec::Composite { rule, .. } => match rule {
                            Rule::All => "all".to_string(),
                            Rule::Any => "any".to_string(),
                            Rule::AtLeast(n) => format!("at_least {n}"),
                        },
                    },
                    state: match state.state {
                        State::Up => "up",
                        State::Down => "down",
                        State::NoData if composite => "up",
                        State::NoData => "no data",
                    }
                    .to_string(),
                    healthy: state.state.healthy(),
                    since: status::wall(state.since, now),
                    interval: status::duration(spec.timing.interval),
                    timeout: status::duration(spec.timing.timeout),
                    fall: spec.timing.fall,
                    rise: spec.timing.rise,
                    last: state.last.as_ref().map(|o| ResultView {
                        ok: o.ok,
                        latency_ms: o.latency.as_secs_f64() * 1000.0,
                        detail: o.detail.clone(),
                    }),
                }
            })
            .collect();
        let aliases = self
            .config
            .aliases
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let run = &self.core.aliases()[i];
                let d = &run.decision;
                let health = self.core.target_health(i);
                // What DNS answers; a decision waiting for its serial to be
                // persisted shows as pending.
                let served = self.served.get(i).copied().unwrap_or(d.answer);
                let label = |answer: Answer| match answer {
                    Answer::Target(t) => a.targets[t].connection_id.clone(),
                    Answer::NoData => "NODATA".into(),
                    Answer::ServFail => "SERVFAIL".into(),
                };
                let target = match served {
                    Answer::Target(t) => Some(t),
                    _ => None,
                };
                AliasView {
                    name: a.name.to_string(),
                    zone: self.config.zones[a.zone].origin.to_string(),
                    serial: self.serials[a.zone],
                    ttl: a.ttl,
                    answer: label(served),
                    pending: (served != d.answer).then(|| label(d.answer)),
                    target,
                    region: target.map(|t| a.targets[t].region.clone()),
                    reason: d.reason.to_string(),
                    since: status::wall(run.since, now),
                    override_: self.core.overrides().get(&a.name.to_string()).cloned(),
                    prober_isolated: run.isolated,
                    policy: PolicyView {
                        all_down: format!("{:?}", a.policy.all_down).to_lowercase(),
                        failback: format!("{:?}", a.policy.failback).to_lowercase(),
                        failback_after: status::duration(a.policy.failback_after),
                        failback_after_now: status::duration(self.core.failback_after(i, now)),
                        failback_after_max: status::duration(a.policy.failback_after_max),
                        failback_reset: status::duration(a.policy.failback_reset),
                    },
                    targets: a
                        .targets
                        .iter()
                        .zip(&health)
                        .map(|(t, h)| TargetView {
                            region: t.region.clone(),
                            connection_id: t.connection_id.clone(),
                            healthy: h.healthy,
                            confirmed: h.confirmed,
                            checks: t
                                .checks
                                .iter()
                                .map(|&c| self.config.checks[c].name.clone())
                                .collect(),
                        })
                        .collect(),
                }
            })
            .collect();
        let snap = self.cell.load();
        let zones = snap
            .zones
            .iter()
            .map(|z| {
                let secondary = self
                    .config
                    .secondaries
                    .iter()
                    .find(|s| s.origin == z.origin);
                ZoneView {
                    origin: z.origin.to_string(),
                    role: if secondary.is_some() {
                        "secondary"
                    } else {
                        "primary"
                    }
                    .to_string(),
                    serial: z.available.then_some(z.serial),
                    available: z.available,
                    primaries: secondary
                        .map(|s| s.primaries.iter().map(|p| p.addr.to_string()).collect())
                        .unwrap_or_default(),
                    notify: z.policy.notify.iter().map(|n| n.addr.to_string()).collect(),
                    secondaries: self.replication.get(&z.origin).cloned().unwrap_or_default(),
                }
            })
            .collect();
        self.status.store(Arc::new(StatusView {
            aliases,
            checks,
            zones,
            state: self.persist.view(now),
            canary_failing: self.core.canary_failing(),
        }));
        self.status_cost = clock.elapsed();
    }
}
