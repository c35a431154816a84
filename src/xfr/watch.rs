//! Whether our secondaries serve the current answer: each NOTIFY target of
//! a zone is asked for the zone's SOA serial (signed with its key) soon
//! after every new serial, again with doubling waits until it has caught
//! up, and every `secondary_check_interval`. One record per (zone, target)
//! on a task of its own; at most `IN_FLIGHT` queries at once, each bounded
//! by the UDP timeout. It reads served serials from the snapshot and sends
//! what it found to the engine as a view, never touching the answer path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::rr::Name;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::client;
use crate::config::{Config, Remote};
use crate::engine::Command;
use crate::metrics::Metrics;
use crate::snapshot::SnapshotCell;
use crate::status::{self, SecondaryView};
use crate::webhook::{Event, SecondaryChange};

pub mod replica;

use replica::{Replica, Standing, Transition};

/// The first question after a change: NOTIFY and IXFR take milliseconds,
/// so a second is plenty for a secondary that is working.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// SOA queries outstanding at once, over all zones.
const IN_FLIGHT: usize = 16;

/// How often to ask, and how long trouble may last before a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub interval: Duration,
    pub warn_after: Duration,
}

impl Settings {
    pub fn of(config: &Config) -> Settings {
        Settings {
            interval: config.server.secondary_check_interval,
            warn_after: config.server.secondary_lag_warn,
        }
    }
}

enum Msg {
    /// A new serial of `origin` was published at `at`.
    Changed { origin: Name, at: Instant },
    /// Sent on every reload: the settings, and a cue to drop targets gone.
    Settings(Settings),
}

/// The engine's side: tells the watcher about new serials; never waits.
#[derive(Clone)]
pub struct Watcher {
    tx: mpsc::UnboundedSender<Msg>,
}

/// The watcher's side, until its task starts.
pub struct Inbox(mpsc::UnboundedReceiver<Msg>);

/// A handle and its inbox: news sent before the task starts waits there.
pub fn channel() -> (Watcher, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Watcher { tx }, Inbox(rx))
}

impl Watcher {
    pub fn changed(&self, origin: &Name, at: Instant) {
        let _ = self.tx.send(Msg::Changed {
            origin: origin.clone(),
            at,
        });
    }

    pub fn settings(&self, settings: Settings) {
        let _ = self.tx.send(Msg::Settings(settings));
    }
}

/// What the watcher reports to the engine after each round: the view of
/// every watched zone, and the transitions to announce by webhook.
pub struct Report {
    pub zones: HashMap<Name, Vec<SecondaryView>>,
    pub events: Vec<Event>,
}

struct Watched {
    remote: Remote,
    replica: Replica,
}

struct Zone {
    next: Instant,
    /// The wait after the next round while some target is not in sync;
    /// None: back to the periodic interval.
    backoff: Option<Duration>,
    targets: Vec<Watched>,
}

pub fn spawn(
    inbox: Inbox,
    settings: Settings,
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
    commands: mpsc::Sender<Command>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(inbox.0, settings, cell, metrics, commands))
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut settings: Settings,
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
    commands: mpsc::Sender<Command>,
) {
    let mut zones: HashMap<Name, Zone> = HashMap::new();
    loop {
        let wakeup = zones.values().map(|z| z.next).min();
        let timer = async {
            match wakeup {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                reconcile(&mut zones, &cell, &metrics, settings, Instant::now());
                match msg {
                    Msg::Changed { origin, at } => {
                        if let Some(z) = zones.get_mut(&origin) {
                            for t in &mut z.targets {
                                t.replica.changed(at);
                            }
                            z.next = at + FIRST_WAIT;
                            z.backoff = Some(FIRST_WAIT * 2);
                        }
                    }
                    Msg::Settings(s) => {
                        // A shorter interval applies now, not after the old one.
                        let latest = Instant::now() + s.interval;
                        for z in zones.values_mut() {
                            z.next = z.next.min(latest);
                        }
                        settings = s;
                        // A reload: the view without the targets it removed.
                        let report = Report { zones: view(&zones, Instant::now()), events: Vec::new() };
                        if commands.send(Command::Replication(Box::new(report))).await.is_err() {
                            return;
                        }
                    }
                }
            }
            () = timer => {
                reconcile(&mut zones, &cell, &metrics, settings, Instant::now());
                let events = round(&mut zones, &cell, &metrics, settings).await;
                let report = Report { zones: view(&zones, Instant::now()), events };
                if commands.send(Command::Replication(Box::new(report))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The zones and targets the snapshot has: new ones added, gone ones (and
/// their metric series) dropped, so records never outnumber targets.
fn reconcile(
    zones: &mut HashMap<Name, Zone>,
    cell: &SnapshotCell,
    metrics: &Metrics,
    settings: Settings,
    now: Instant,
) {
    let snap = cell.load();
    zones.retain(|origin, z| {
        let notify = snap
            .zone(origin)
            .map(|s| &s.policy.notify[..])
            .unwrap_or(&[]);
        z.targets.retain(|t| {
            let kept = notify.iter().any(|r| r.addr == t.remote.addr);
            if !kept {
                metrics.secondary_forget(&origin.to_string(), &t.remote.addr.to_string());
            }
            kept
        });
        !notify.is_empty()
    });
    for served in &snap.zones {
        if served.policy.notify.is_empty() {
            continue;
        }
        let z = zones.entry(served.origin.clone()).or_insert_with(|| Zone {
            next: now + settings.interval,
            backoff: None,
            targets: Vec::new(),
        });
        for remote in &served.policy.notify {
            match z.targets.iter_mut().find(|t| t.remote.addr == remote.addr) {
                Some(t) => t.remote = remote.clone(), // a reload may change its key
                None => z.targets.push(Watched {
                    remote: remote.clone(),
                    replica: Replica::new(now),
                }),
            }
        }
    }
}

/// Asks every target of the zones now due; records, logs and meters the
/// answers; schedules the zones' next rounds. Returns the webhook events.
async fn round(
    zones: &mut HashMap<Name, Zone>,
    cell: &SnapshotCell,
    metrics: &Metrics,
    settings: Settings,
) -> Vec<Event> {
    let start = Instant::now();
    let snap = cell.load_full();
    let mut jobs = Vec::new();
    for (origin, z) in zones.iter() {
        if z.next > start {
            continue;
        }
        // A secondary zone of ours without a copy has no serial to compare.
        let Some(served) = snap.zone(origin).filter(|s| s.available) else {
            continue;
        };
        for t in &z.targets {
            jobs.push((origin.clone(), t.remote.clone(), served.serial));
        }
    }
    let answers = ask_all(jobs, snap.keys.clone()).await;
    let now = Instant::now();
    let mut events = Vec::new();
    for (origin, addr, ours, answer) in answers {
        let Some(t) = zones
            .get_mut(&origin)
            .and_then(|z| z.targets.iter_mut().find(|t| t.remote.addr == addr))
        else {
            continue;
        };
        let r = &mut t.replica;
        let transition = r.observe(answer, ours, now, settings.warn_after);
        let (zone, secondary) = (origin.to_string(), addr.to_string());
        metrics.secondary(
            &zone,
            &secondary,
            r.standing == Standing::InSync,
            r.standing.lag(),
        );
        tracing::debug!(%zone, %secondary, state = r.standing.word(), serial = ?r.theirs, ours, "secondary asked");
        if let Some(transition) = transition {
            events.push(announce(&zone, &secondary, r, ours, transition, now));
        }
    }
    for z in zones.values_mut() {
        if z.next > start {
            continue;
        }
        let all_in_sync = z
            .targets
            .iter()
            .all(|t| t.replica.standing == Standing::InSync);
        let (wait, backoff) = schedule(z.backoff, all_in_sync, settings.interval);
        z.next = now + wait;
        z.backoff = backoff;
    }
    events
}

/// After a round: the wait until the next, and the backoff after that.
/// Following a change (`backoff` set) a zone not yet in sync everywhere is
/// asked again after doubling waits up to `interval`; otherwise, and once
/// in sync, every `interval`.
fn schedule(
    backoff: Option<Duration>,
    all_in_sync: bool,
    interval: Duration,
) -> (Duration, Option<Duration>) {
    match backoff {
        Some(wait) if !all_in_sync => (
            wait.min(interval),
            Some(wait.saturating_mul(2).min(interval)),
        ),
        _ => (interval, None),
    }
}

/// The SOA serial of each job's zone at its target, `IN_FLIGHT` at a time.
async fn ask_all(
    jobs: Vec<(Name, Remote, u32)>,
    keys: Arc<super::tsig::Keyring>,
) -> Vec<(Name, SocketAddr, u32, Result<u32, String>)> {
    let mut pending = jobs.into_iter();
    let mut running = JoinSet::new();
    let mut done = Vec::new();
    loop {
        while running.len() < IN_FLIGHT {
            let Some((origin, remote, ours)) = pending.next() else {
                break;
            };
            let keys = keys.clone();
            running.spawn(async move {
                // The exchange has its own timeout; this one also covers
                // the socket set-up.
                let limit = client::UDP_TIMEOUT + Duration::from_secs(1);
                let answer =
                    match tokio::time::timeout(limit, client::soa_serial(&origin, &remote, &keys))
                        .await
                    {
                        Ok(Ok(serial)) => Ok(serial),
                        Ok(Err(e)) => Err(format!("{e:#}")),
                        Err(_) => Err(format!("no answer from {} within {limit:?}", remote.addr)),
                    };
                (origin, remote.addr, ours, answer)
            });
        }
        match running.join_next().await {
            Some(Ok(answer)) => done.push(answer),
            Some(Err(_)) => {} // a panicked query: that target is asked next round
            None => return done,
        }
    }
}

/// One log line for a transition, and its webhook event.
fn announce(
    zone: &str,
    secondary: &str,
    r: &Replica,
    ours: u32,
    transition: Transition,
    now: Instant,
) -> Event {
    let lasted = humantime::format_duration(Duration::from_secs(r.lasted(now).as_secs()));
    let theirs = r.theirs.map_or_else(|| "-".to_string(), |t| t.to_string());
    let error = match &r.standing {
        Standing::Unreachable { error } => Some(error.clone()),
        _ => None,
    };
    match (&transition, &r.standing) {
        (Transition::InSync, _) => {
            tracing::info!(%zone, %secondary, serial = ours, "secondary in sync again")
        }
        (_, Standing::Unreachable { error }) => tracing::warn!(
            %zone, %secondary, %error, ours, lasted = %lasted,
            "secondary unreachable: no answer to our SOA query for secondary_lag_warn or more"
        ),
        (_, Standing::Ahead) => tracing::warn!(
            %zone, %secondary, serial = %theirs, ours, lasted = %lasted,
            "secondary ahead: it serves a later serial than ours and will not transfer from us until ours passes it"
        ),
        _ => tracing::warn!(
            %zone, %secondary, serial = %theirs, ours, lag = r.standing.lag(), lasted = %lasted,
            "secondary behind: it has not taken our serial for secondary_lag_warn or more"
        ),
    }
    let change = SecondaryChange {
        zone: zone.to_string(),
        secondary: secondary.to_string(),
        state: r.standing.word().to_string(),
        serial: r.theirs,
        ours,
        lag: r.standing.lag(),
        since: status::wall(r.since, now),
        error,
        time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    };
    match transition {
        Transition::OutOfSync => Event::SecondaryOutOfSync(change),
        Transition::InSync => Event::SecondaryInSync(change),
    }
}

fn view(zones: &HashMap<Name, Zone>, now: Instant) -> HashMap<Name, Vec<SecondaryView>> {
    zones
        .iter()
        .map(|(origin, z)| {
            let views = z
                .targets
                .iter()
                .map(|t| {
                    let r = &t.replica;
                    SecondaryView {
                        address: t.remote.addr.to_string(),
                        state: r.standing.word().to_string(),
                        serial: r.theirs,
                        ours: r.ours,
                        lag: r.standing.lag(),
                        since: status::wall(r.since, now),
                        last_checked: r.checked.map(|c| status::wall(c, now)),
                        error: match &r.standing {
                            Standing::Unreachable { error } => Some(error.clone()),
                            _ => None,
                        },
                    }
                })
                .collect();
            (origin.clone(), views)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_change_the_waits_double_up_to_the_interval_until_in_sync() {
        let minute = Duration::from_secs(60);
        let mut backoff = Some(FIRST_WAIT * 2);
        let mut waits = Vec::new();
        for _ in 0..8 {
            let (wait, next) = schedule(backoff, false, minute);
            waits.push(wait.as_secs());
            backoff = next;
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        // In sync: back to the interval, no backoff left.
        assert_eq!(schedule(Some(FIRST_WAIT * 4), true, minute), (minute, None));
        assert_eq!(schedule(None, false, minute), (minute, None));
        // An interval shorter than the first wait caps it.
        let second = Duration::from_secs(1);
        assert_eq!(
            schedule(Some(FIRST_WAIT * 2), false, second),
            (second, Some(second))
        );
    }
}
