//! The engine joins the pieces: probe results feed the rise/fall machines,
//! the decision picks each alias's answer, and only when some answer changes
//! a new snapshot is built, its serial bumped and persisted, and published.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::decide::Answer;
use crate::health::alarm::AlarmBoard;
use crate::health::{self, Outcome, ProbeResult};
use crate::metrics::Metrics;
use crate::snapshot::{Snapshot, SnapshotCell};
use crate::state::{Override, Persisted, StateStore, unix_now};
use crate::status::StatusView;
use crate::xfr::notify::Notifier;
use crate::xfr::secondary;
use crate::xfr::tsig::Keyring;
use crate::xfr::watch;

pub mod core;
pub use signals::{SignalMatch, SignalReport};
pub mod memory;
mod operator;
mod persist;
mod publish;
mod reload;
mod secondaries;
mod signals;
#[cfg(test)]
mod sim;
mod telemetry;
#[cfg(test)]
mod tests;
mod view;

pub use self::core::Core;
pub use telemetry::EngineMetrics;

use secondaries::SecondaryZone;

pub struct Engine {
    /// The same configuration the core decides by (replaced together).
    config: Arc<Config>,
    /// Check states, decisions, overrides: the pure part.
    core: Core,
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
    status: StatusCell,
    /// When the operator view is due to be rebuilt (coalesced: at most a
    /// few times a second, however many probe results arrive).
    status_due: Option<Instant>,
    /// How long the last view took to build: the next waits at least ten
    /// times that, so the view never takes more than a tenth of the engine.
    status_cost: Duration,
    /// The decision memory's writer, when to hand it the next capture, the
    /// last capture's cost (as for the view), and the checks' fingerprints
    /// for the configuration they were computed from.
    memory: memory::Writer,
    memory_due: Instant,
    memory_cost: Duration,
    fingerprints: (Arc<Config>, Vec<String>),
    /// Where the admin API reads its tokens; a reload replaces them.
    admin_tokens: Option<crate::admin::TokenCell>,
    /// What alarm checks have seen, pulled or pushed (`health::alarm`).
    alarms: Arc<AlarmBoard>,
    metrics: Arc<Metrics>,
    /// The probe loops of the current config, and their generation.
    loops: Vec<tokio::task::JoinHandle<()>>,
    generation: u64,
    probe_tx: Option<mpsc::Sender<ProbeResult>>,
    /// Queue of the webhook delivery task, when webhooks are configured.
    webhooks: Option<mpsc::Sender<crate::webhook::Event>>,
    keys: Arc<Keyring>,
    /// Per secondary zone (config order): the copy served, and its task.
    secondaries: Vec<SecondaryZone>,
    secondary_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where secondary zone tasks report; set once they are started.
    commands_tx: Option<mpsc::Sender<Command>>,
    notifier: Notifier,
    /// Told of every new serial; asks the NOTIFY targets whether they
    /// have it. Its inbox waits here until `start_watching`.
    watcher: watch::Watcher,
    watch_inbox: Option<watch::Inbox>,
    /// What the watcher last found, per zone.
    replication: std::collections::HashMap<Name, Vec<crate::status::SecondaryView>>,
}

/// How often the operator view is rebuilt at most.
const STATUS_EVERY: Duration = Duration::from_millis(250);

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
    /// A CloudWatch alarm's new state, pushed by EventBridge.
    Signal {
        event: crate::health::eventbridge::AlarmEvent,
        reply: oneshot::Sender<SignalReport>,
    },
    /// What the NOTIFY targets serve, from the watcher.
    Replication(Box<watch::Report>),
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
    /// Resumes the decision memory (`memory::load`) for the checks
    /// `resumed` names (`memory::resumable`, found before the first round),
    /// applies the first probe round (which those skipped), decides, and
    /// builds the first snapshot.
    pub fn start(
        status: StatusCell,
        metrics: Arc<Metrics>,
        config: Arc<Config>,
        store: StateStore,
        (remembered, resumed): (memory::Memory, &[bool]),
        first: Vec<Option<Outcome>>,
        now: Instant,
    ) -> anyhow::Result<Engine> {
        let unix_ms = unix_now_ms();
        let mut core = Core::new(config.clone(), now);
        let (previous, resumed) =
            memory::resume_checks(&mut core, &remembered, resumed, now, unix_ms);
        if !remembered.aliases.is_empty() || !remembered.checks.is_empty() {
            let age = unix_ms.saturating_sub(remembered.saved_at_ms);
            tracing::info!(
                age = %humantime::format_duration(Duration::from_millis(age)),
                answers = previous.iter().flatten().count(),
                checks_resumed = resumed,
                checks = config.checks.len(),
                "resuming from decisions.json"
            );
        }
        for (i, outcome) in first.into_iter().enumerate() {
            if let Some(outcome) = outcome {
                let spec = &config.checks[i];
                log_outcome(&spec.name, &outcome);
                let latency = outcome.latency.as_secs_f64();
                core.observe(i, outcome, now);
                let healthy = core.checks()[i].state.state.healthy();
                metrics.probe(&spec.name, latency, healthy, false);
            }
        }
        let overrides = store.load_overrides()?;
        core.set_overrides(overrides);
        let persisted = store.load()?;
        let writer =
            memory::Writer::start(StateStore::open(&config.server.state_dir)?, metrics.clone());
        let (watcher, watch_inbox) = watch::channel();
        let mut engine = Engine {
            core,
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
            watcher,
            watch_inbox: Some(watch_inbox),
            replication: Default::default(),
            metrics,
            loops: Vec::new(),
            generation: 0,
            probe_tx: None,
            webhooks: crate::webhook::start(config.webhooks.clone()),
            admin_tokens: None,
            alarms: Arc::default(),
            status,
            status_due: None,
            status_cost: Duration::ZERO,
            memory: writer,
            memory_due: now,
            memory_cost: Duration::ZERO,
            fingerprints: (config.clone(), memory::fingerprints(&config)),
            config,
            store,
        };
        engine.drop_stale_overrides();
        engine.core.start(&previous, now, unix_now());
        for (i, alias) in engine.config.aliases.iter().enumerate() {
            let d = &engine.core.aliases()[i].decision;
            let was = previous[i].map(|p| engine.describe(i, p));
            tracing::info!(alias = %alias.name, answer = %engine.describe(i, d.answer), before_restart = ?was, reason = %d.reason, "initial answer");
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
        engine.served = engine.decided();
        engine.publish(snap);
        engine.prime_metrics();
        engine.remember(now);
        engine.publish_status(now);
        Ok(engine)
    }

    /// Every series this configuration has, from the first scrape.
    fn prime_metrics(&self) {
        let config = &self.config;
        let aliases: Vec<String> = config.aliases.iter().map(|a| a.name.to_string()).collect();
        let checks: Vec<(String, bool)> = config
            .checks
            .iter()
            .zip(self.core.checks())
            .map(|(c, run)| (c.name.clone(), run.state.state.healthy()))
            .collect();
        let zones: Vec<String> = config
            .zones
            .iter()
            .map(|z| z.origin.to_string())
            .chain(config.secondaries.iter().map(|z| z.origin.to_string()))
            .collect();
        let secondaries: Vec<(String, String)> = config
            .zones
            .iter()
            .map(|z| (&z.origin, &z.policy))
            .chain(config.secondaries.iter().map(|z| (&z.origin, &z.policy)))
            .flat_map(|(origin, policy)| {
                policy
                    .notify
                    .iter()
                    .map(move |n| (origin.to_string(), n.addr.to_string()))
            })
            .collect();
        self.metrics.prime(&aliases, &checks, &zones, &secondaries);
        for (i, alias) in aliases.iter().enumerate() {
            let run = &self.core.aliases()[i];
            self.metrics.engine.isolated(alias, run.isolated);
            self.metrics
                .on_failover(alias, self.served.get(i) != Some(&Answer::Target(0)));
        }
        self.metrics.engine.canary(self.core.canary_failing());
    }

    /// The decision memory's writer, to flush it when stopping.
    pub fn memory_writer(&self) -> memory::Writer {
        self.memory.clone()
    }

    pub fn cell(&self) -> SnapshotCell {
        self.cell.clone()
    }

    /// Where the admin API reads its tokens, so a reload can replace them.
    pub fn set_admin_tokens(&mut self, cell: crate::admin::TokenCell) {
        self.admin_tokens = Some(cell);
    }

    /// The board the probers of the first round were built with: reloads
    /// build theirs with it, and pushed alarm states are ordered on it.
    pub fn set_alarm_board(&mut self, board: Arc<AlarmBoard>) {
        self.alarms = board;
    }

    pub fn status(&self) -> StatusCell {
        self.status.clone()
    }

    /// What the core decided, per alias.
    fn decided(&self) -> Vec<Answer> {
        self.core
            .aliases()
            .iter()
            .map(|a| a.decision.answer)
            .collect()
    }

    fn describe(&self, alias: usize, answer: Answer) -> String {
        describe(&self.config, alias, answer)
    }

    /// Feeds one probe round.
    fn observe(&mut self, result: ProbeResult, now: Instant) {
        let spec = &self.config.checks[result.check];
        let latency = result.outcome.latency.as_secs_f64();
        let change = self.core.observe(result.check, result.outcome, now);
        let run = &self.core.checks()[result.check];
        self.metrics.probe(
            &spec.name,
            latency,
            run.state.state.healthy(),
            change.is_some(),
        );
        let detail = run.state.last.as_ref().map_or("", |o| o.detail.as_str());
        if let Some((from, to)) = change {
            tracing::info!(check = %spec.name, from = ?from, to = ?to, detail, "check changed state");
        } else if let Some(o) = &run.state.last {
            tracing::debug!(check = %spec.name, ok = o.ok, detail = %o.detail, "probe");
        }
    }

    /// Decides again what changed; publishes a
    /// new snapshot if any answer moved (or a held change can now be
    /// persisted). `cause` is when the event that moved it happened.
    fn reevaluate(&mut self, now: Instant, cause: Option<Instant>) {
        let changes = self.core.reevaluate(now, unix_now());
        let mut moved = false;
        for c in &changes {
            let alias = &self.config.aliases[c.alias];
            let run = &self.core.aliases()[c.alias];
            self.metrics
                .engine
                .isolated(&alias.name.to_string(), run.isolated);
            if c.after.answer == c.before.answer {
                // Same answer, new reason: e.g. a failback is now pending.
                tracing::info!(alias = %alias.name, reason = %c.after.reason, "answer kept");
            } else {
                moved = true;
            }
        }
        self.metrics.engine.canary(self.core.canary_failing());
        if moved || self.persist.due(now) {
            self.sync(now);
            // What is served or persisted may have changed: the view at
            // once (readiness reads it), not at the next coalesced rebuild.
            self.publish_status(now);
            if moved {
                if let Some(at) = cause {
                    self.metrics
                        .engine
                        .latency(Instant::now().saturating_duration_since(at));
                }
                self.remember(now);
            }
        }
        if !changes.is_empty() {
            self.status_due = Some(now);
        }
    }

    /// Hands the decision memory to its writer and schedules the next.
    fn remember(&mut self, now: Instant) {
        let clock = Instant::now();
        if !Arc::ptr_eq(&self.fingerprints.0, &self.config) {
            self.fingerprints = (self.config.clone(), memory::fingerprints(&self.config));
        }
        let captured = memory::capture(&self.core, &self.fingerprints.1, now, unix_now_ms());
        self.memory.submit(captured);
        self.memory_cost = clock.elapsed();
        self.memory_due = now
            + self
                .memory_period()
                .max(self.memory_cost.saturating_mul(20));
    }

    /// Often enough that a restart finds check states fresh (younger than
    /// `fall × interval`), at most every 5 s, at least every 500 ms.
    fn memory_period(&self) -> Duration {
        self.config
            .checks
            .iter()
            .map(|c| c.timing.interval.saturating_mul(c.timing.fall.max(1)) / 2)
            .min()
            .unwrap_or(Duration::from_secs(5))
            .clamp(Duration::from_millis(500), Duration::from_secs(5))
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
            Command::Signal { event, reply } => {
                let report = self.alarm_event(&event);
                let now = Instant::now();
                self.reevaluate(now, None);
                self.publish_status(now);
                let _ = reply.send(report);
                return;
            }
            Command::Replication(report) => {
                self.replicated(*report);
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
            self.reevaluate(now, None);
            self.publish_status(now);
        }
        let _ = reply.send(result);
    }

    /// When the engine must wake with no event: a pending failback, an
    /// expiring override or report, a persist retry, the memory, the view.
    fn next_wakeup(&mut self) -> Option<Instant> {
        self.core
            .next_recheck()
            .into_iter()
            .chain(self.persist.retry_at())
            .chain(Some(self.memory_due))
            .chain(self.status_due)
            .min()
    }

    /// Runs for as long as the server does. With no checks configured the
    /// channel closes at once; pending failbacks still need their timer.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<ProbeResult>,
        mut commands: mpsc::Receiver<Command>,
        heartbeat: crate::service::Heartbeat,
    ) {
        let mut probing = true;
        loop {
            heartbeat.beat();
            let wakeup = self.next_wakeup();
            let timer = async {
                match wakeup {
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
                    let cpu = telemetry::thread_cpu();
                    let at = result.at;
                    self.observe(result, now);
                    self.reevaluate(now, Some(at));
                    self.status_due
                        .get_or_insert(now + STATUS_EVERY.max(self.status_cost.saturating_mul(10)));
                    self.metrics.engine.busy(telemetry::thread_cpu().saturating_sub(cpu));
                }
                Some(command) = commands.recv() => {
                    let cpu = telemetry::thread_cpu();
                    self.command(command);
                    self.metrics.engine.busy(telemetry::thread_cpu().saturating_sub(cpu));
                }
                () = timer => {
                    let now = Instant::now();
                    let cpu = telemetry::thread_cpu();
                    self.due(now);
                    if self.memory_due <= now {
                        self.remember(now);
                    }
                    if self.status_due.is_some_and(|at| at <= now) {
                        self.publish_status(now);
                    }
                    self.metrics.engine.busy(telemetry::thread_cpu().saturating_sub(cpu));
                }
            }
        }
    }

    /// What comes due at `now` with no event: expired overrides, pending
    /// failbacks, stale reports, a persist retry.
    fn due(&mut self, now: Instant) {
        if self.core.next_recheck().is_some_and(|at| at <= now) || self.persist.due(now) {
            self.drop_stale_overrides();
            let stale = self.core.fire(now);
            self.log_stale(stale);
            self.reevaluate(now, None);
        }
    }

    /// Starts asking the NOTIFY targets for their serials; what it finds
    /// comes back through `commands`.
    pub fn start_watching(&mut self, commands: mpsc::Sender<Command>) {
        if let Some(inbox) = self.watch_inbox.take() {
            watch::spawn(
                inbox,
                watch::Settings::of(&self.config),
                self.cell.clone(),
                self.metrics.clone(),
                commands,
            );
        }
    }

    /// The watcher's findings: into the operator view, and its transitions
    /// to the webhooks (its task already logged them).
    fn replicated(&mut self, report: watch::Report) {
        self.replication = report.zones;
        if let Some(hooks) = &self.webhooks {
            for event in report.events {
                if hooks.try_send(event).is_err() {
                    tracing::warn!("webhook queue full: secondary event not announced");
                }
            }
        }
        // Coalesced like probe results: the view is no fresher than a round.
        let now = Instant::now();
        self.status_due
            .get_or_insert(now + STATUS_EVERY.max(self.status_cost.saturating_mul(10)));
    }

    /// Starts the periodic probes (after the first round, which `serve` ran);
    /// checks that skipped it (`at_once`) are probed at once.
    pub fn start_probing(
        &mut self,
        probers: &[Option<Arc<health::Prober>>],
        tx: mpsc::Sender<ProbeResult>,
        at_once: &[bool],
    ) {
        self.loops = health::spawn_loops(
            probers,
            &self.config.checks,
            &tx,
            self.generation,
            at_once,
            &self.metrics,
        );
        self.probe_tx = Some(tx);
    }
}

fn describe(config: &Config, alias: usize, answer: Answer) -> String {
    match answer {
        Answer::Target(i) => match config.aliases[alias].targets.get(i) {
            Some(t) => format!("{} ({})", t.connection_id, t.region),
            None => format!("target #{i}"),
        },
        Answer::NoData => "NODATA".to_string(),
        Answer::ServFail => "SERVFAIL".to_string(),
    }
}

/// Wall-clock Unix milliseconds (the decision memory's time base).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
    let refused = |e: String| {
        tracing::error!("reload refused, keeping the running configuration:\n{e}");
        Err(format!(
            "reload refused, keeping the running configuration:\n{e}"
        ))
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return refused(e.to_string()),
    };
    // What only this host can tell: a source address it does not have.
    if let Err(e) = crate::xfr::client::check_sources(&config.server.query_source) {
        return refused(format!("{e:#}"));
    }
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
