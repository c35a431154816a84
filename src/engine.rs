//! The engine joins the pieces: probe results feed the rise/fall machines,
//! the decision picks each alias's answer, and only when some answer changes
//! a new snapshot is built, its serial bumped and persisted, and published.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_proto::rr::LowerName;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::decide::{Answer, Decision, TargetHealth, decide};
use crate::health::{self, CheckState, Outcome, ProbeResult};
use crate::metrics::Metrics;
use crate::snapshot::{AliasAnswer, AliasRecord, Snapshot, SnapshotCell};
use crate::state::{Persisted, StateStore, ZoneState, initial_serial, zone_digest};
use crate::status::{self, AliasView, CheckView, PolicyView, ResultView, StatusView, TargetView};

pub struct Engine {
    config: Arc<Config>,
    checks: Vec<CheckState>,
    decisions: Vec<Decision>,
    serials: Vec<u32>,
    digests: Vec<String>,
    store: StateStore,
    cell: SnapshotCell,
    /// When each alias's answer last changed.
    answered_since: Vec<Instant>,
    status: StatusCell,
    metrics: Arc<Metrics>,
}

/// The published operator view; the admin API reads it.
pub type StatusCell = Arc<ArcSwap<StatusView>>;

impl Engine {
    /// Applies the first probe round, decides, and builds the first snapshot.
    pub fn start(
        status: StatusCell,
        metrics: Arc<Metrics>,
        config: Arc<Config>,
        store: StateStore,
        first: Vec<Option<Outcome>>,
        now: Instant,
    ) -> anyhow::Result<Engine> {
        let mut checks: Vec<CheckState> =
            config.checks.iter().map(|_| CheckState::new(now)).collect();
        for ((state, outcome), spec) in checks.iter_mut().zip(first).zip(&config.checks) {
            if let Some(outcome) = outcome {
                log_outcome(&spec.name, &outcome);
                let latency = outcome.latency.as_secs_f64();
                state.observe(outcome, &spec.timing, now);
                metrics.probe(&spec.name, latency, state.state.healthy(), false);
            }
        }
        let persisted = store.load()?;
        let mut engine = Engine {
            decisions: Vec::new(),
            serials: vec![0; config.zones.len()],
            digests: vec![String::new(); config.zones.len()],
            cell: Arc::new(ArcSwap::from_pointee(Snapshot::build(
                &[],
                &[],
                &[],
                HashMap::new(),
            ))),
            metrics,
            answered_since: vec![now; config.aliases.len()],
            status,
            config,
            checks,
            store,
        };
        engine.decisions = (0..engine.config.aliases.len())
            .map(|i| {
                decide(
                    &engine.config.aliases[i].policy,
                    &engine.target_health(i),
                    None,
                    now,
                )
            })
            .collect();
        for (i, alias) in engine.config.aliases.iter().enumerate() {
            let d = &engine.decisions[i];
            tracing::info!(alias = %alias.name, answer = %engine.describe(i, d.answer), reason = %d.reason, "initial answer");
        }
        let records = engine.alias_records();
        for (z, zone) in engine.config.zones.iter().enumerate() {
            let digest = zone_digest(
                zone,
                &records.iter().filter(|r| r.zone == z).collect::<Vec<_>>(),
            );
            let last = persisted.zones.get(&zone.origin.to_string());
            engine.serials[z] = initial_serial(zone.soa.serial, last, &digest);
            engine.digests[z] = digest;
        }
        engine.persist()?;
        engine.publish_snapshot(&records);
        engine.publish_status(now);
        Ok(engine)
    }

    /// Builds the snapshot for the current answers and serials, with answer
    /// counters labelled by what each alias answers now, and publishes it.
    fn publish_snapshot(&self, records: &[AliasRecord]) {
        let counters = records
            .iter()
            .map(|r| {
                let label = match &r.answer {
                    AliasAnswer::Txt(id) => id.as_str(),
                    AliasAnswer::NoData => "NODATA",
                    AliasAnswer::ServFail => "SERVFAIL",
                };
                (
                    LowerName::new(&r.name),
                    self.metrics.answer_counter(&r.name.to_string(), label),
                )
            })
            .collect();
        for (zone, serial) in self.config.zones.iter().zip(&self.serials) {
            self.metrics.serial(&zone.origin.to_string(), *serial);
        }
        self.cell.store(Arc::new(Snapshot::build(
            &self.config.zones,
            &self.serials,
            records,
            counters,
        )));
    }

    pub fn cell(&self) -> SnapshotCell {
        self.cell.clone()
    }

    pub fn status(&self) -> StatusCell {
        self.status.clone()
    }

    /// Rebuilds the operator view from the current state.
    fn publish_status(&self, now: Instant) {
        let checks = self
            .config
            .checks
            .iter()
            .zip(&self.checks)
            .enumerate()
            .map(|(i, (spec, state))| CheckView {
                name: spec.name.clone(),
                kind: match &spec.probe {
                    crate::config::ProbeSpec::Http(h) => h.url.scheme().to_string(),
                    crate::config::ProbeSpec::Tcp { .. } => "tcp".to_string(),
                    crate::config::ProbeSpec::Command { .. } => "command".to_string(),
                    crate::config::ProbeSpec::Composite { rule, .. } => match rule {
                        crate::config::Rule::All => "all".to_string(),
                        crate::config::Rule::Any => "any".to_string(),
                        crate::config::Rule::AtLeast(n) => format!("at_least {n}"),
                    },
                },
                state: match (&spec.probe, state.state) {
                    (crate::config::ProbeSpec::Composite { .. }, _) => {
                        if health::effective(&self.config.checks, &self.checks, i).0 {
                            "up"
                        } else {
                            "down"
                        }
                    }
                    (_, crate::health::State::Up) => "up",
                    (_, crate::health::State::Down) => "down",
                    (_, crate::health::State::NoData) => "no data",
                }
                .to_string(),
                healthy: health::effective(&self.config.checks, &self.checks, i).0,
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
            })
            .collect();
        let aliases = self
            .config
            .aliases
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let d = &self.decisions[i];
                let health = self.target_health(i);
                let target = match d.answer {
                    Answer::Target(t) => Some(t),
                    _ => None,
                };
                AliasView {
                    name: a.name.to_string(),
                    zone: self.config.zones[a.zone].origin.to_string(),
                    serial: self.serials[a.zone],
                    ttl: a.ttl,
                    answer: match d.answer {
                        Answer::Target(t) => a.targets[t].connection_id.clone(),
                        Answer::NoData => "NODATA".into(),
                        Answer::ServFail => "SERVFAIL".into(),
                    },
                    target,
                    region: target.map(|t| a.targets[t].region.clone()),
                    reason: d.reason.to_string(),
                    since: status::wall(self.answered_since[i], now),
                    policy: PolicyView {
                        all_down: format!("{:?}", a.policy.all_down).to_lowercase(),
                        failback: format!("{:?}", a.policy.failback).to_lowercase(),
                        failback_after: status::duration(a.policy.failback_after),
                    },
                    targets: a
                        .targets
                        .iter()
                        .zip(&health)
                        .map(|(t, h)| TargetView {
                            region: t.region.clone(),
                            connection_id: t.connection_id.clone(),
                            healthy: h.healthy,
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
        self.status.store(Arc::new(StatusView { aliases, checks }));
    }

    fn target_health(&self, alias: usize) -> Vec<TargetHealth> {
        let start = self.checks.iter().map(|c| c.since).min();
        self.config.aliases[alias]
            .targets
            .iter()
            .map(|t| {
                let checks: Vec<(bool, Instant)> = t
                    .checks
                    .iter()
                    .map(|&c| health::effective(&self.config.checks, &self.checks, c))
                    .collect();
                TargetHealth {
                    healthy: checks.iter().all(|c| c.0),
                    since: checks
                        .iter()
                        .map(|c| c.1)
                        .max()
                        .or(start)
                        .unwrap_or_else(Instant::now),
                }
            })
            .collect()
    }

    fn alias_records(&self) -> Vec<AliasRecord> {
        self.config
            .aliases
            .iter()
            .zip(&self.decisions)
            .map(|(a, d)| AliasRecord {
                name: a.name.clone(),
                zone: a.zone,
                ttl: a.ttl,
                answer: match d.answer {
                    Answer::Target(i) => AliasAnswer::Txt(a.targets[i].connection_id.clone()),
                    Answer::NoData => AliasAnswer::NoData,
                    Answer::ServFail => AliasAnswer::ServFail,
                },
            })
            .collect()
    }

    fn describe(&self, alias: usize, answer: Answer) -> String {
        match answer {
            Answer::Target(i) => {
                let t = &self.config.aliases[alias].targets[i];
                format!("{} ({})", t.connection_id, t.region)
            }
            Answer::NoData => "NODATA".to_string(),
            Answer::ServFail => "SERVFAIL".to_string(),
        }
    }

    fn persist(&self) -> anyhow::Result<()> {
        let mut state = Persisted::default();
        for (z, zone) in self.config.zones.iter().enumerate() {
            state.zones.insert(
                zone.origin.to_string(),
                ZoneState {
                    serial: self.serials[z],
                    digest: self.digests[z].clone(),
                },
            );
        }
        self.store.save(&state)
    }

    /// Feeds one probe result; returns true when the check changed state.
    pub fn observe(&mut self, result: ProbeResult, now: Instant) -> bool {
        let spec = &self.config.checks[result.check];
        let state = &mut self.checks[result.check];
        let before = state.state;
        let latency = result.outcome.latency.as_secs_f64();
        let changed = state.observe(result.outcome, &spec.timing, now);
        self.metrics
            .probe(&spec.name, latency, state.state.healthy(), changed);
        if changed {
            let last = state.last.as_ref().map_or("", |o| o.detail.as_str());
            tracing::info!(check = %spec.name, from = ?before, to = ?state.state, detail = last, "check changed state");
        } else if let Some(o) = &state.last {
            tracing::debug!(check = %spec.name, ok = o.ok, detail = %o.detail, "probe");
        }
        changed
    }

    /// Decides every alias again; publishes a new snapshot if any answer moved.
    pub fn reevaluate(&mut self, now: Instant) {
        let mut changed_zones = vec![false; self.config.zones.len()];
        let mut changes = Vec::new();
        for i in 0..self.config.aliases.len() {
            let previous = self.decisions[i].answer;
            let d = decide(
                &self.config.aliases[i].policy,
                &self.target_health(i),
                Some(previous),
                now,
            );
            if d.answer == previous && d.reason != self.decisions[i].reason {
                // Same answer, new reason: e.g. a failback is now pending.
                tracing::info!(alias = %self.config.aliases[i].name, reason = %d.reason, "answer kept");
            }
            if d.answer != previous {
                self.answered_since[i] = now;
                changed_zones[self.config.aliases[i].zone] = true;
                changes.push((i, previous, d));
            }
            self.decisions[i] = d;
        }
        if changes.is_empty() {
            return;
        }
        let records = self.alias_records();
        for (z, changed) in changed_zones.iter().enumerate() {
            if *changed {
                self.serials[z] = self.serials[z].wrapping_add(1);
                let in_zone: Vec<&AliasRecord> = records.iter().filter(|r| r.zone == z).collect();
                self.digests[z] = zone_digest(&self.config.zones[z], &in_zone);
            }
        }
        self.publish_snapshot(&records);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for (i, from, d) in changes {
            let alias = &self.config.aliases[i];
            self.metrics.answer_changed(&alias.name.to_string(), unix);
            tracing::warn!(
                alias = %alias.name,
                from = %self.describe(i, from),
                to = %self.describe(i, d.answer),
                reason = %d.reason,
                serial = self.serials[alias.zone],
                "answer changed"
            );
        }
        if let Err(e) = self.persist() {
            // Keep serving: the serial lives on in memory; the next change retries.
            tracing::error!(error = format!("{e:#}"), "cannot persist serials");
        }
    }

    /// When a pending failback is due, if any.
    fn next_recheck(&self) -> Option<Instant> {
        self.decisions.iter().filter_map(|d| d.recheck_at).min()
    }

    /// Runs for as long as the server does. With no checks configured the
    /// channel closes at once; pending failbacks still need their timer.
    pub async fn run(mut self, mut rx: mpsc::Receiver<ProbeResult>) {
        let mut probing = true;
        loop {
            let recheck = self.next_recheck();
            let timer = async {
                match recheck {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = rx.recv(), if probing => {
                    let Some(result) = result else {
                        probing = false;
                        continue;
                    };
                    let now = Instant::now();
                    if self.observe(result, now) {
                        self.reevaluate(now);
                    }
                    self.publish_status(now);
                }
                () = timer => {
                    let now = Instant::now();
                    self.reevaluate(now);
                    self.publish_status(now);
                }
            }
        }
    }
}

fn log_outcome(check: &str, outcome: &Outcome) {
    if outcome.ok {
        tracing::info!(check, detail = %outcome.detail, latency_ms = outcome.latency.as_millis() as u64, "first probe: up");
    } else {
        tracing::warn!(check, detail = %outcome.detail, latency_ms = outcome.latency.as_millis() as u64, "first probe: down");
    }
}
