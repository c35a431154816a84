//! The engine joins the pieces: probe results feed the rise/fall machines,
//! the decision picks each alias's answer, and only when some answer changes
//! a new snapshot is built, its serial bumped and persisted, and published.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use hickory_proto::rr::{LowerName, Name};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::config::{OnStale, ProbeSpec};
use crate::decide::Reason;
use crate::decide::{Answer, Decision, TargetHealth, decide};
use crate::health::State;
use crate::health::{self, CheckState, Outcome, ProbeResult};
use crate::metrics::Metrics;
use crate::snapshot::ZoneInput;
use crate::snapshot::{AliasAnswer, AliasRecord, BuildError, Snapshot, SnapshotCell};
use crate::state::{
    Override, Overrides, Persisted, StateStore, ZoneState, initial_serial, unix_now, zone_digest,
};
use crate::status::{
    self, AliasView, CheckView, PolicyView, ResultView, StatusView, TargetView, ZoneView,
};
use crate::webhook::AnswerChange;
use crate::xfr::journal;
use crate::xfr::notify::Notifier;
use crate::xfr::secondary;
use crate::xfr::tsig::Keyring;

mod persist;
mod secondaries;
#[cfg(test)]
mod tests;

use secondaries::SecondaryZone;

pub struct Engine {
    config: Arc<Config>,
    checks: Vec<CheckState>,
    decisions: Vec<Decision>,
    /// What the published snapshot answers, per alias. A decision is
    /// published only once the serial carrying it is persisted.
    served: Vec<Answer>,
    /// Per zone, the serial and digest of the published snapshot.
    serials: Vec<u32>,
    digests: Vec<String>,
    /// The serials file as last written.
    written: Persisted,
    /// Failed writes of the serials, and when to retry.
    persist: persist::PersistHealth,
    store: StateStore,
    cell: SnapshotCell,
    /// When each alias's answer last changed.
    answered_since: Vec<Instant>,
    status: StatusCell,
    /// Where the admin API reads its tokens; a reload replaces them.
    admin_tokens: Option<crate::admin::TokenCell>,
    metrics: Arc<Metrics>,
    /// Operator pins, by alias name; persisted in `state_dir`.
    overrides: Overrides,
    /// An alias an operator just released, decided afresh on the next round.
    release: Option<usize>,
    /// Per check: when an external check last got a report (start time until
    /// then), and whether it has gone stale since.
    reported_at: Vec<Instant>,
    stale: Vec<bool>,
    /// The probe loops of the current config, and their generation.
    loops: Vec<tokio::task::JoinHandle<()>>,
    generation: u64,
    probe_tx: Option<mpsc::Sender<ProbeResult>>,
    /// Queue of the webhook delivery task, when webhooks are configured.
    webhooks: Option<mpsc::Sender<AnswerChange>>,
    keys: Arc<Keyring>,
    /// Per secondary zone (config order): the copy served, and its task.
    secondaries: Vec<SecondaryZone>,
    secondary_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where secondary zone tasks report; set once they are started.
    commands_tx: Option<mpsc::Sender<Command>>,
    notifier: Notifier,
}

/// Requests from the admin API, answered through `reply`.
pub enum Command {
    SetOverride {
        alias: String,
        override_: Override,
        reply: oneshot::Sender<Result<String, String>>,
    },
    ClearOverride {
        alias: String,
        by: String,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// A new configuration, validated off the engine.
    Reload {
        config: Box<Config>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// News from a secondary zone's transfer task.
    Secondary {
        origin: Name,
        event: secondary::Event,
    },
    /// A state pushed for an external check.
    Report {
        check: String,
        healthy: bool,
        detail: String,
        by: String,
        reply: oneshot::Sender<Result<String, String>>,
    },
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
            served: Vec::new(),
            serials: vec![0; config.zones.len()],
            digests: vec![String::new(); config.zones.len()],
            written: Persisted::default(),
            persist: persist::PersistHealth::default(),
            cell: Arc::new(ArcSwap::from_pointee(Snapshot::empty())),
            keys: Arc::new(Keyring::new(&config.keys)),
            secondaries: secondaries::restore(&config, &store),
            secondary_tasks: Vec::new(),
            commands_tx: None,
            notifier: Notifier::start(metrics.clone()),
            metrics,
            overrides: Overrides::new(),
            release: None,
            loops: Vec::new(),
            generation: 0,
            probe_tx: None,
            webhooks: crate::webhook::start(config.webhooks.clone()),
            reported_at: vec![now; config.checks.len()],
            stale: vec![false; config.checks.len()],
            answered_since: vec![now; config.aliases.len()],
            admin_tokens: None,
            status,
            config,
            checks,
            store,
        };
        engine.overrides = engine.store.load_overrides()?;
        engine.drop_stale_overrides();
        engine.decisions = (0..engine.config.aliases.len())
            .map(|i| engine.decide_alias(i, None, now))
            .collect();
        for (i, alias) in engine.config.aliases.iter().enumerate() {
            let d = &engine.decisions[i];
            tracing::info!(alias = %alias.name, answer = %engine.describe(i, d.answer), reason = %d.reason, "initial answer");
        }
        let records = engine.alias_records();
        engine.settle_serials(&records, |origin| {
            persisted.zones.get(&origin.to_string()).cloned()
        });
        let snap = engine
            .build_snapshot(&records, &engine.serials)
            .map_err(|e| anyhow::anyhow!("cannot build the answers: {e}"))?;
        // Durable before visible.
        let state = engine.persisted(&engine.serials, &engine.digests);
        if let Err(e) = engine.store.save(&state) {
            engine.metrics.persist_failed("serials");
            return Err(
                e.context("cannot persist the serials; [server] state_dir must be writable")
            );
        }
        engine.written = state;
        engine.metrics.persist_ok(true);
        engine.served = engine.decisions.iter().map(|d| d.answer).collect();
        engine.publish(snap);
        engine.publish_status(now);
        Ok(engine)
    }

    /// Sets each zone's serial and digest for what it serves now, from the
    /// zone's last served state (`last`): unchanged data keeps its serial.
    fn settle_serials(
        &mut self,
        records: &[AliasRecord],
        last: impl Fn(&Name) -> Option<ZoneState>,
    ) {
        let (mut serials, mut digests) = (Vec::new(), Vec::new());
        for (z, zone) in self.config.zones.iter().enumerate() {
            let in_zone: Vec<&AliasRecord> = records.iter().filter(|r| r.zone == z).collect();
            let digest = zone_digest(zone, &in_zone);
            serials.push(initial_serial(
                zone.soa.serial,
                last(&zone.origin).as_ref(),
                &digest,
                zone.policy.serial,
                unix_now(),
            ));
            digests.push(digest);
        }
        (self.serials, self.digests) = (serials, digests);
    }

    /// Builds the snapshot for `records` and the primary zones' `serials`,
    /// with answer counters labelled by what each alias answers in it. Data
    /// that cannot be encoded is an error naming zone, owner and type.
    fn build_snapshot(
        &self,
        records: &[AliasRecord],
        serials: &[u32],
    ) -> Result<Snapshot, BuildError> {
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
        let mut inputs: Vec<ZoneInput> = self
            .config
            .zones
            .iter()
            .zip(serials)
            .map(|(zone, &serial)| ZoneInput {
                origin: &zone.origin,
                data: Some(zone),
                serial,
                policy: &zone.policy,
                refresh: None,
            })
            .collect();
        for (spec, held) in self.config.secondaries.iter().zip(&self.secondaries) {
            inputs.push(ZoneInput {
                origin: &spec.origin,
                data: held.data.as_ref(),
                serial: held.data.as_ref().map_or(0, |d| d.soa.serial),
                policy: &spec.policy,
                refresh: Some(held.wake.clone()),
            });
        }
        let mut snap = Snapshot::build(&inputs, records, counters, self.keys.clone())?;
        journal::carry(&mut snap, &self.cell.load_full());
        Ok(snap)
    }

    /// Publishes a snapshot built by `build_snapshot`: the store first, then
    /// serial metrics and NOTIFY where a serial moved (a secondary answering
    /// our NOTIFY with a SOA query must see the new serial).
    fn publish(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        let old = self.cell.swap(snap.clone());
        for zone in &snap.zones {
            if !zone.available {
                continue;
            }
            self.metrics.serial(&zone.origin.to_string(), zone.serial);
            let moved = old
                .zone(&zone.origin)
                .is_none_or(|o| !o.available || o.serial != zone.serial);
            if moved && !zone.policy.notify.is_empty() {
                self.notifier.announce(
                    zone.soa.clone(),
                    zone.policy.notify.clone(),
                    self.keys.clone(),
                );
            }
        }
    }

    /// The alias records of what is served now (not what is decided).
    fn served_records(&self) -> Vec<AliasRecord> {
        self.records_for(&self.served)
    }

    pub fn cell(&self) -> SnapshotCell {
        self.cell.clone()
    }

    /// Where the admin API reads its tokens, so a reload can replace them.
    pub fn set_admin_tokens(&mut self, cell: crate::admin::TokenCell) {
        self.admin_tokens = Some(cell);
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
                    crate::config::ProbeSpec::External { .. } => "external".to_string(),
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
                    since: status::wall(self.answered_since[i], now),
                    override_: self.overrides.get(&a.name.to_string()).cloned(),
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
                }
            })
            .collect();
        self.status.store(Arc::new(StatusView {
            aliases,
            checks,
            zones,
            state: self.persist.view(now),
        }));
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

    /// The alias records of what is decided now.
    fn alias_records(&self) -> Vec<AliasRecord> {
        let answers: Vec<Answer> = self.decisions.iter().map(|d| d.answer).collect();
        self.records_for(&answers)
    }

    fn records_for(&self, answers: &[Answer]) -> Vec<AliasRecord> {
        self.config
            .aliases
            .iter()
            .zip(answers)
            .map(|(a, answer)| AliasRecord {
                name: a.name.clone(),
                zone: a.zone,
                ttl: a.ttl,
                answer: match *answer {
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

    /// The serials file for these per-zone serials and digests.
    fn persisted(&self, serials: &[u32], digests: &[String]) -> Persisted {
        let mut state = Persisted::default();
        for ((zone, serial), digest) in self.config.zones.iter().zip(serials).zip(digests) {
            state.zones.insert(
                zone.origin.to_string(),
                ZoneState {
                    serial: *serial,
                    digest: digest.clone(),
                },
            );
        }
        state
    }

    /// Writes the serials file; a failure is counted, logged and retried
    /// with backoff from the engine's timer.
    fn save_serials(&mut self, state: Persisted, now: Instant) -> Result<(), String> {
        match self.store.save(&state) {
            Ok(()) => {
                self.written = state;
                self.metrics.persist_ok(true);
                if let Some(f) = self.persist.succeeded() {
                    tracing::warn!(
                        failed_attempts = f.failures,
                        "serials persisted again; held answer changes are published now"
                    );
                }
                Ok(())
            }
            Err(e) => {
                let error = format!("{e:#}");
                self.metrics.persist_failed("serials");
                self.metrics.persist_ok(false);
                let f = self.persist.failed(error.clone(), now);
                let pending: Vec<String> = self
                    .config
                    .aliases
                    .iter()
                    .zip(self.served.iter().zip(&self.decisions))
                    .filter(|(_, (s, d))| **s != d.answer)
                    .map(|(a, _)| a.name.to_string())
                    .collect();
                tracing::error!(
                    error = %error,
                    attempt = f.failures,
                    retry_in = %humantime::format_duration(f.backoff),
                    held = ?pending,
                    "cannot persist serials: serving the previous answers and serials until state_dir is writable again"
                );
                Err(error)
            }
        }
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

    /// Decides every alias again; publishes a new snapshot if any answer
    /// moved (or a held change can now be persisted).
    pub fn reevaluate(&mut self, now: Instant) {
        let mut moved = false;
        for i in 0..self.config.aliases.len() {
            let previous = self.decisions[i].answer;
            // A released alias is decided afresh, as at start.
            let d = if self.release.take_if(|r| *r == i).is_some() {
                self.decide_alias(i, None, now)
            } else {
                self.decide_alias(i, Some(previous), now)
            };
            if d.answer == previous && d.reason != self.decisions[i].reason {
                // Same answer, new reason: e.g. a failback is now pending.
                tracing::info!(alias = %self.config.aliases[i].name, reason = %d.reason, "answer kept");
            }
            if d.answer != previous {
                self.answered_since[i] = now;
                moved = true;
            }
            self.decisions[i] = d;
        }
        if moved || self.persist.due(now) {
            self.sync(now);
        }
    }

    /// Publishes what is decided, where it differs from what is served: the
    /// zones whose data changed get their next serial, persisted before the
    /// snapshot carrying it is visible. While the write fails nothing new
    /// is published (the timer retries); once it succeeds the held changes
    /// go out.
    fn sync(&mut self, now: Instant) {
        let records = self.alias_records();
        let served = self.served_records();
        let (mut serials, mut digests) = (self.serials.clone(), self.digests.clone());
        let mut changed = false;
        for (z, zone) in self.config.zones.iter().enumerate() {
            let differs = records
                .iter()
                .zip(&served)
                .any(|(r, s)| r.zone == z && r != s);
            if !differs {
                continue;
            }
            let in_zone: Vec<&AliasRecord> = records.iter().filter(|r| r.zone == z).collect();
            let digest = zone_digest(zone, &in_zone);
            if digest != self.digests[z] {
                serials[z] = zone.policy.serial.next(self.serials[z], unix_now());
                digests[z] = digest;
                changed = true;
            }
        }
        if !changed && self.persist.failing().is_none() {
            return;
        }
        // Durable before visible: a serial anyone has seen must survive a
        // crash. While writes fail, a retry writes what is served, so a
        // working disk is noticed even when the held change went away.
        let state = self.persisted(&serials, &digests);
        if self.save_serials(state, now).is_err() {
            return;
        }
        if !changed {
            return;
        }
        let snap = match self.build_snapshot(&records, &serials) {
            Ok(snap) => snap,
            Err(e) => {
                // Reload validated this data; should it still fail, keep
                // serving what is served.
                tracing::error!(error = %e, "cannot build the new answers; keeping the previous ones");
                return;
            }
        };
        (self.serials, self.digests) = (serials, digests);
        let answers: Vec<Answer> = self.decisions.iter().map(|d| d.answer).collect();
        let before = std::mem::replace(&mut self.served, answers);
        self.publish(snap);
        let unix = unix_now() as i64;
        for (i, from) in before.into_iter().enumerate() {
            let d = self.decisions[i];
            if d.answer == from {
                continue;
            }
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
            if let Some(hooks) = &self.webhooks {
                let change = AnswerChange {
                    alias: alias.name.to_string(),
                    from: self.describe(i, from),
                    to: self.describe(i, d.answer),
                    reason: d.reason.to_string(),
                    serial: self.serials[alias.zone],
                    time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                };
                // Never wait: a slow receiver must not hold up decisions.
                if hooks.try_send(change).is_err() {
                    tracing::warn!(alias = %alias.name, "webhook queue full: change not announced");
                }
            }
        }
    }

    /// The decision for one alias: an operator's override wins while it lasts.
    fn decide_alias(&self, i: usize, previous: Option<Answer>, now: Instant) -> Decision {
        let alias = &self.config.aliases[i];
        if let Some(o) = self.overrides.get(&alias.name.to_string())
            && let Some(t) = alias.targets.iter().position(|t| t.region == o.region)
        {
            let recheck_at = o.until.and_then(|u| {
                now.checked_add(std::time::Duration::from_secs(u.saturating_sub(unix_now())))
            });
            return Decision {
                answer: Answer::Target(t),
                reason: Reason::Override,
                recheck_at,
            };
        }
        decide(&alias.policy, &self.target_health(i), previous, now)
    }

    /// Removes expired overrides and those whose alias or Region left the
    /// config; returns true if any went.
    fn drop_stale_overrides(&mut self) -> bool {
        let changed = self.drop_stale_overrides_in_memory();
        if changed {
            self.save_overrides_or_log();
        }
        changed
    }

    fn save_overrides_or_log(&mut self) {
        if let Err(e) = self.store.save_overrides(&self.overrides) {
            self.metrics.persist_failed("overrides");
            tracing::error!(error = format!("{e:#}"), "cannot persist overrides");
        }
    }

    /// `drop_stale_overrides` without writing the file.
    fn drop_stale_overrides_in_memory(&mut self) -> bool {
        let now = unix_now();
        let before = self.overrides.len();
        let aliases = &self.config.aliases;
        self.overrides.retain(|name, o| {
            let known = aliases.iter().any(|a| a.name.to_string() == *name && a.targets.iter().any(|t| t.region == o.region));
            let live = o.until.is_none_or(|u| u > now);
            if !live {
                tracing::warn!(alias = %name, region = %o.region, by = %o.by, "override expired");
            } else if !known {
                tracing::warn!(alias = %name, region = %o.region, "override dropped: alias or region no longer configured");
            }
            known && live
        });
        self.overrides.len() != before
    }

    fn command(&mut self, command: Command) {
        let (result, reply) = match command {
            Command::SetOverride {
                alias,
                override_,
                reply,
            } => (self.set_override(&alias, override_), reply),
            Command::ClearOverride { alias, by, reply } => {
                (self.clear_override(&alias, &by), reply)
            }
            Command::Reload { config, reply } => (self.reload(*config), reply),
            Command::Secondary { origin, event } => {
                self.secondary_event(&origin, event);
                return;
            }
            Command::Report {
                check,
                healthy,
                detail,
                by,
                reply,
            } => (self.report(&check, healthy, detail, &by), reply),
        };
        let now = Instant::now();
        if result.is_ok() {
            self.reevaluate(now);
            self.publish_status(now);
        }
        let _ = reply.send(result);
    }

    fn report(
        &mut self,
        name: &str,
        healthy: bool,
        detail: String,
        by: &str,
    ) -> Result<String, String> {
        let Some(i) = self.config.checks.iter().position(|c| c.name == name) else {
            return Err(format!("no check {name:?}"));
        };
        if !matches!(self.config.checks[i].probe, ProbeSpec::External { .. }) {
            return Err(format!(
                "check {name:?} is not external; only external checks take reports"
            ));
        }
        let now = Instant::now();
        self.reported_at[i] = now;
        self.stale[i] = false;
        let outcome = Outcome {
            ok: healthy,
            latency: std::time::Duration::ZERO,
            detail: format!("{detail} (reported by {by})"),
        };
        let generation = self.generation;
        self.observe(
            ProbeResult {
                check: i,
                outcome,
                generation,
                at: now,
            },
            now,
        );
        Ok(format!(
            "{name} reported {}",
            if healthy { "healthy" } else { "unhealthy" }
        ))
    }

    /// When the next external check goes stale, if any.
    fn next_stale(&self) -> Option<Instant> {
        self.config
            .checks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.probe {
                ProbeSpec::External { stale_after, .. } if !self.stale[i] => {
                    self.reported_at[i].checked_add(stale_after)
                }
                _ => None,
            })
            .min()
    }

    /// Applies `on_stale` to external checks whose reports stopped.
    fn expire_reports(&mut self, now: Instant) {
        for i in 0..self.config.checks.len() {
            let ProbeSpec::External {
                stale_after,
                on_stale,
            } = self.config.checks[i].probe
            else {
                continue;
            };
            if self.stale[i]
                || self.reported_at[i]
                    .checked_add(stale_after)
                    .is_none_or(|t| t > now)
            {
                continue;
            }
            self.stale[i] = true;
            let name = &self.config.checks[i].name;
            tracing::warn!(check = %name, policy = ?on_stale, "external check is stale: no report for {}", humantime::format_duration(stale_after));
            let state = match on_stale {
                OnStale::Healthy => Some(State::Up),
                OnStale::Unhealthy => Some(State::Down),
                OnStale::Last => None,
            };
            if let Some(state) = state
                && self.checks[i].force(state, now)
            {
                self.metrics.probe(name, 0.0, state.healthy(), true);
            }
        }
    }

    /// Starts the periodic probes (after the first round, which `serve` ran).
    pub fn start_probing(
        &mut self,
        probers: &[Option<Arc<health::Prober>>],
        tx: mpsc::Sender<ProbeResult>,
    ) {
        let waits = vec![false; probers.len()];
        self.loops = health::spawn_loops(
            probers,
            &self.config.checks,
            &tx,
            self.generation,
            &waits,
            &self.metrics,
        );
        self.probe_tx = Some(tx);
    }

    /// Swaps in a new configuration. Checks whose definition did not change
    /// keep their state and probe loop timing; new or changed ones start
    /// without data (healthy) and are probed at once. Aliases keep their
    /// answer where the Region still exists; serials move only for zones
    /// whose served data changed.
    fn reload(&mut self, new: Config) -> Result<String, String> {
        let now = Instant::now();
        let probers = health::build_probers(&new.checks).map_err(|e| format!("{e:#}"))?;
        let undo = Undo::take(self);
        let old = std::mem::replace(&mut self.config, Arc::new(new));
        let mut checks = Vec::new();
        let mut probe_now = Vec::new();
        let (mut reported_at, mut stale) = (Vec::new(), Vec::new());
        for c in &self.config.checks {
            match old.checks.iter().position(|o| o == c) {
                Some(j) => {
                    checks.push(self.checks[j].clone());
                    reported_at.push(self.reported_at[j]);
                    stale.push(self.stale[j]);
                    probe_now.push(false);
                }
                None => {
                    checks.push(CheckState::new(now));
                    reported_at.push(now);
                    stale.push(false);
                    probe_now.push(true);
                }
            }
        }
        (self.checks, self.reported_at, self.stale) = (checks, reported_at, stale);
        // Previous answers, carried by alias name and Region.
        let previous: Vec<(Option<Answer>, Instant)> = self
            .config
            .aliases
            .iter()
            .map(|a| {
                let Some(j) = old.aliases.iter().position(|o| o.name == a.name) else {
                    return (None, now);
                };
                let answer = match self.decisions[j].answer {
                    Answer::Target(t) => {
                        let region = &old.aliases[j].targets[t].region;
                        a.targets
                            .iter()
                            .position(|n| &n.region == region)
                            .map(Answer::Target)
                    }
                    other => Some(other),
                };
                (answer, self.answered_since[j])
            })
            .collect();
        let old_answers: Vec<Option<Answer>> = previous.iter().map(|p| p.0).collect();
        self.answered_since = previous.iter().map(|p| p.1).collect();
        self.release = None;
        let overrides_dropped = self.drop_stale_overrides_in_memory();
        self.decisions = (0..self.config.aliases.len())
            .map(|i| self.decide_alias(i, old_answers[i], now))
            .collect();
        for (i, d) in self.decisions.iter().enumerate() {
            if Some(d.answer) != old_answers[i] {
                self.answered_since[i] = now;
            }
        }
        self.keys = Arc::new(Keyring::new(&self.config.keys));
        let carried = self.carried_secondaries(&old);
        let old_secondaries = std::mem::replace(&mut self.secondaries, carried);
        // Serials: by origin, moving only where the served data changed.
        let persisted = self.store.load().unwrap_or_default();
        let records = self.alias_records();
        let in_memory: Vec<(Name, ZoneState)> = old
            .zones
            .iter()
            .zip(self.serials.iter().zip(&self.digests))
            .map(|(z, (serial, digest))| {
                (
                    z.origin.clone(),
                    ZoneState {
                        serial: *serial,
                        digest: digest.clone(),
                    },
                )
            })
            .collect();
        self.settle_serials(&records, |origin| {
            in_memory
                .iter()
                .find(|(o, _)| o == origin)
                .map(|(_, state)| state.clone())
                .or_else(|| persisted.zones.get(&origin.to_string()).cloned())
        });
        // All or nothing: a snapshot that cannot be built, or serials that
        // cannot be persisted, leave the running configuration in place.
        let built = self
            .build_snapshot(&records, &self.serials)
            .map_err(|e| e.to_string())
            .and_then(|snap| {
                // Only a serial that moved needs writing; while writes fail,
                // a reload that moves none still goes through.
                let state = self.persisted(&self.serials, &self.digests);
                if state != self.written {
                    self.save_serials(state, now)?;
                }
                Ok(snap)
            });
        let snap = match built {
            Ok(snap) => snap,
            Err(e) => {
                undo.restore(self, old, old_secondaries);
                let message = format!("reload refused, keeping the running configuration: {e}");
                tracing::error!("{message}");
                return Err(message);
            }
        };
        if old.webhooks != self.config.webhooks {
            // The old task finishes what it has queued, then ends with its sender.
            self.webhooks = crate::webhook::start(self.config.webhooks.clone());
        }
        if old.server.listen != self.config.server.listen
            || old.admin_listen != self.config.admin_listen
        {
            tracing::warn!("listen addresses changed: they take effect at the next restart");
        }
        if old.server.state_dir != self.config.server.state_dir {
            // The store stays where it is: moving it empty would let the
            // next start serve serials older than the secondaries hold.
            tracing::warn!(
                from = %old.server.state_dir.display(),
                to = %self.config.server.state_dir.display(),
                "state_dir changed: it takes effect at the next restart; copy the files of the old one there first, or the next start serves serials the secondaries already passed"
            );
        }
        if old.server.udp_workers != self.config.server.udp_workers {
            tracing::warn!("udp_workers changed: it takes effect at the next restart");
        }
        if old.admin_tokens != self.config.admin_tokens {
            if let Some(cell) = &self.admin_tokens {
                cell.store(Arc::new(self.config.admin_tokens.clone()));
            }
            tracing::warn!(
                tokens = self.config.admin_tokens.len(),
                "[admin] tokens replaced"
            );
        }
        if old.admin_limits != self.config.admin_limits {
            tracing::warn!("[admin] limits changed: they take effect at the next restart");
        }
        if old.rrl != self.config.rrl
            || old.server.cookie_secret != self.config.server.cookie_secret
            || (&old.server.nsid, &old.server.identity, &old.server.version)
                != (
                    &self.config.server.nsid,
                    &self.config.server.identity,
                    &self.config.server.version,
                )
        {
            tracing::warn!(
                "[rrl], cookie_secret_file, nsid, identity and version changes take effect at the next restart"
            );
        }
        if overrides_dropped {
            self.save_overrides_or_log();
        }
        self.respawn_secondaries();
        self.served = self.decisions.iter().map(|d| d.answer).collect();
        self.publish(snap);
        // Probe loops: replaced as a set; results of the old ones are dropped.
        for l in self.loops.drain(..) {
            l.abort();
        }
        self.generation += 1;
        if let Some(tx) = &self.probe_tx {
            self.loops = health::spawn_loops(
                &probers,
                &self.config.checks,
                tx,
                self.generation,
                &probe_now,
                &self.metrics,
            );
        }
        let fresh = probe_now.iter().filter(|p| **p).count();
        tracing::warn!(checks_restarted = fresh, serials = ?self.serials, "configuration reloaded");
        Ok(format!(
            "reloaded: {} zones, {} checks ({fresh} new or changed), {} aliases",
            self.config.zones.len(),
            self.config.checks.len(),
            self.config.aliases.len()
        ))
    }

    fn find_alias(&self, name: &str) -> Result<usize, String> {
        let wanted = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        self.config
            .aliases
            .iter()
            .position(|a| a.name.to_string() == wanted)
            .ok_or(format!("no alias {wanted}"))
    }

    fn set_override(&mut self, name: &str, o: Override) -> Result<String, String> {
        let i = self.find_alias(name)?;
        let alias = &self.config.aliases[i];
        if !alias.targets.iter().any(|t| t.region == o.region) {
            let regions: Vec<&str> = alias.targets.iter().map(|t| t.region.as_str()).collect();
            return Err(format!(
                "alias {} has no target {:?}; its targets are {}",
                alias.name,
                o.region,
                regions.join(", ")
            ));
        }
        let previous = self.overrides.clone();
        let key = alias.name.to_string();
        tracing::warn!(alias = %key, region = %o.region, by = %o.by, reason = %o.reason, until = ?o.until, "override set");
        self.overrides.insert(key.clone(), o);
        if let Err(e) = self.store.save_overrides(&self.overrides) {
            self.metrics.persist_failed("overrides");
            self.overrides = previous;
            return Err(format!("cannot persist the override: {e:#}"));
        }
        Ok(format!("{key} pinned"))
    }

    fn clear_override(&mut self, name: &str, by: &str) -> Result<String, String> {
        let i = self.find_alias(name)?;
        let key = self.config.aliases[i].name.to_string();
        let Some(old) = self.overrides.remove(&key) else {
            if self.config.aliases[i].policy.failback == crate::decide::Failback::Manual {
                // Manual failback: clearing with no pin releases the alias.
                self.release = Some(i);
                tracing::warn!(alias = %key, by, "manual failback released");
                return Ok(format!("{key} released"));
            }
            return Err(format!("alias {key} has no override"));
        };
        // Released: decide afresh, as at start, so a manual failback moves too.
        self.release = Some(i);
        if let Err(e) = self.store.save_overrides(&self.overrides) {
            self.metrics.persist_failed("overrides");
            self.overrides.insert(key, old);
            return Err(format!("cannot persist: {e:#}"));
        }
        tracing::warn!(alias = %key, region = %old.region, by, "override cleared");
        Ok(format!("{key} released"))
    }

    /// When a pending failback is due, if any.
    fn next_recheck(&self) -> Option<Instant> {
        self.decisions
            .iter()
            .filter_map(|d| d.recheck_at)
            .chain(self.next_stale())
            .chain(self.persist.retry_at())
            .min()
    }

    /// Runs for as long as the server does. With no checks configured the
    /// channel closes at once; pending failbacks still need their timer.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<ProbeResult>,
        mut commands: mpsc::Receiver<Command>,
    ) {
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
                    if result.generation != self.generation {
                        continue;
                    }
                    let now = Instant::now();
                    if self.observe(result, now) {
                        self.reevaluate(now);
                    }
                    self.publish_status(now);
                }
                Some(command) = commands.recv() => self.command(command),
                () = timer => {
                    let now = Instant::now();
                    self.drop_stale_overrides();
                    self.expire_reports(now);
                    self.reevaluate(now);
                    self.publish_status(now);
                }
            }
        }
    }
}

/// What a reload changes in the engine, kept to put back when the reload
/// is refused after all (its snapshot cannot be built or its serials
/// cannot be persisted).
struct Undo {
    checks: Vec<CheckState>,
    reported_at: Vec<Instant>,
    stale: Vec<bool>,
    answered_since: Vec<Instant>,
    release: Option<usize>,
    decisions: Vec<Decision>,
    overrides: Overrides,
    keys: Arc<Keyring>,
    serials: Vec<u32>,
    digests: Vec<String>,
}

impl Undo {
    fn take(e: &Engine) -> Undo {
        Undo {
            checks: e.checks.clone(),
            reported_at: e.reported_at.clone(),
            stale: e.stale.clone(),
            answered_since: e.answered_since.clone(),
            release: e.release,
            decisions: e.decisions.clone(),
            overrides: e.overrides.clone(),
            keys: e.keys.clone(),
            serials: e.serials.clone(),
            digests: e.digests.clone(),
        }
    }

    fn restore(self, e: &mut Engine, config: Arc<Config>, secondaries: Vec<SecondaryZone>) {
        e.config = config;
        e.secondaries = secondaries;
        e.checks = self.checks;
        e.reported_at = self.reported_at;
        e.stale = self.stale;
        e.answered_since = self.answered_since;
        e.release = self.release;
        e.decisions = self.decisions;
        e.overrides = self.overrides;
        e.keys = self.keys;
        e.serials = self.serials;
        e.digests = self.digests;
    }
}

fn log_outcome(check: &str, outcome: &Outcome) {
    if outcome.ok {
        tracing::info!(check, detail = %outcome.detail, latency_ms = outcome.latency.as_millis() as u64, "first probe: up");
    } else {
        tracing::warn!(check, detail = %outcome.detail, latency_ms = outcome.latency.as_millis() as u64, "first probe: down");
    }
}

/// Loads and validates the configuration at `path` off the engine (file I/O
/// on a blocking thread), then hands it over. A bad config changes nothing
/// and comes back as the error, with every problem listed.
pub async fn request_reload(
    path: std::path::PathBuf,
    commands: &mpsc::Sender<Command>,
) -> Result<String, String> {
    let loaded = tokio::task::spawn_blocking(move || crate::config::load(&path))
        .await
        .map_err(|e| format!("reload task failed: {e}"))?;
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, keeping the running configuration:\n{e}");
            return Err(format!(
                "reload refused, keeping the running configuration:\n{e}"
            ));
        }
    };
    let (reply, answer) = oneshot::channel();
    commands
        .send(Command::Reload {
            config: Box::new(config),
            reply,
        })
        .await
        .map_err(|_| "the server is shutting down".to_string())?;
    answer
        .await
        .map_err(|_| "the server is shutting down".to_string())?
}
