//! What the decision core remembers across a restart (`decisions.json` in
//! `state_dir`): per alias the answer, since when and its failback damping;
//! per check its state, streaks and last results. Answers are always
//! resumed (a manual failback stays parked, `all_down = "last"` keeps its
//! answer); check states only while fresh (a probed check's latest round
//! younger than `fall × interval`), else the check starts over with a
//! first round of quick attempts.
//!
//! The engine hands snapshots to a writer thread, newest wins, so a slow
//! disk never holds up a decision.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::core::{CheckRun, Core};
use crate::config::{CheckSpec, Config, ProbeSpec};
use crate::decide::Answer;
use crate::health::{CheckState, State};
use crate::metrics::Metrics;
use crate::state::StateStore;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Unix milliseconds of the capture.
    pub saved_at_ms: u64,
    pub aliases: BTreeMap<String, AliasMemory>,
    pub checks: BTreeMap<String, CheckMemory>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasMemory {
    /// "region:<Region>", "NODATA" or "SERVFAIL".
    pub answer: String,
    pub since_ms: u64,
    /// Failbacks in a row (damping).
    pub level: u32,
    /// The prober-isolation latch: a restart while the targets come back
    /// from a prober outage must not answer `all_down` meanwhile.
    #[serde(default)]
    pub isolated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckMemory {
    /// Of the check's definition: a changed check does not resume.
    pub fingerprint: String,
    /// "up", "down" or "no data".
    pub state: String,
    pub since_ms: u64,
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    pub round_ok: bool,
    pub last_ok_ms: Option<u64>,
    pub last_fail_ms: Option<u64>,
}

/// Every check's fingerprint, computed once per configuration.
pub fn fingerprints(config: &Config) -> Vec<String> {
    config.checks.iter().map(fingerprint).collect()
}

/// FNV-1a over the check's definition: stable for one build, and a
/// different build at worst starts the check afresh.
fn fingerprint(spec: &CheckSpec) -> String {
    let text = format!("{spec:?}");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn to_ms(at: Instant, now: Instant, unix_ms: u64) -> u64 {
    let age = u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
    unix_ms.saturating_sub(age)
}

/// An instant `unix_ms - ms` before `now`; one older than the clock can
/// hold becomes `now` (it then looks recent: the cautious side).
fn from_ms(ms: u64, now: Instant, unix_ms: u64) -> Instant {
    now.checked_sub(Duration::from_millis(unix_ms.saturating_sub(ms)))
        .unwrap_or(now)
}

fn answer_label(config: &Config, alias: usize, answer: Answer) -> String {
    match answer {
        Answer::Target(t) => config.aliases[alias]
            .targets
            .get(t)
            .map_or_else(|| "NODATA".to_string(), |t| format!("region:{}", t.region)),
        Answer::NoData => "NODATA".to_string(),
        Answer::ServFail => "SERVFAIL".to_string(),
    }
}

/// What the core knows now, in wall-clock time; `fingerprints` from
/// `fingerprints` for the core's configuration.
pub fn capture(core: &Core, fingerprints: &[String], now: Instant, unix_ms: u64) -> Memory {
    let config = core.config();
    let mut memory = Memory {
        saved_at_ms: unix_ms,
        ..Memory::default()
    };
    for (i, (spec, run)) in config.aliases.iter().zip(core.aliases()).enumerate() {
        memory.aliases.insert(
            spec.name.to_string(),
            AliasMemory {
                answer: answer_label(config, i, run.decision.answer),
                since_ms: to_ms(run.since, now, unix_ms),
                level: run.level,
                isolated: run.isolated,
            },
        );
    }
    for ((spec, run), print) in config.checks.iter().zip(core.checks()).zip(fingerprints) {
        if matches!(spec.probe, ProbeSpec::Composite { .. }) || run.awaiting_first {
            continue;
        }
        let (ok, fail) = run.state.streaks();
        memory.checks.insert(
            spec.name.clone(),
            CheckMemory {
                fingerprint: print.clone(),
                state: match run.state.state {
                    State::Up => "up",
                    State::Down => "down",
                    State::NoData => "no data",
                }
                .to_string(),
                since_ms: to_ms(run.state.since, now, unix_ms),
                consecutive_ok: ok,
                consecutive_fail: fail,
                round_ok: run.round_ok,
                last_ok_ms: run.last_ok.map(|t| to_ms(t, now, unix_ms)),
                last_fail_ms: run.last_fail.map(|t| to_ms(t, now, unix_ms)),
            },
        );
    }
    memory
}

/// Per check of `config`: whether `memory` holds a state for it that is
/// fresh (its latest round, or for an external check the file, younger
/// than `fall × interval`) and of the same definition. Such
/// a check needs no first round before the server answers.
pub fn resumable(config: &Config, memory: &Memory, unix_ms: u64) -> Vec<bool> {
    config
        .checks
        .iter()
        .map(|spec| {
            let Some(m) = memory.checks.get(&spec.name) else {
                return false;
            };
            // A probed check's state is as old as its latest result: each
            // start saves the resumed states anew, and restarts faster
            // than a round would otherwise keep them fresh unprobed.
            let mut from = memory.saved_at_ms;
            if !matches!(spec.probe, ProbeSpec::External { .. }) {
                from = from.min(m.last_ok_ms.max(m.last_fail_ms).unwrap_or(0));
            }
            // Saved "in the future" (the wall clock was stepped back since):
            // its age is unknown, so no check state counts as fresh.
            let age = unix_ms
                .checked_sub(memory.saved_at_ms)
                .and_then(|_| unix_ms.checked_sub(from));
            let fresh_for = spec.timing.interval.saturating_mul(spec.timing.fall.max(1));
            let fresh = age.is_some_and(|age| u128::from(age) < fresh_for.as_millis());
            fresh && m.fingerprint == fingerprint(spec) && matches!(m.state.as_str(), "up" | "down")
        })
        .collect()
}

/// Reads `decisions.json`; an unreadable one is logged and ignored (the
/// server then starts as new: answers decided afresh).
pub fn load(store: &StateStore) -> Memory {
    store.load_decisions().unwrap_or_else(|e| {
        tracing::warn!(
            error = format!("{e:#}"),
            "decision memory unreadable: starting without it"
        );
        Memory::default()
    })
}

/// Puts what `memory` holds back into a fresh core; returns per alias the
/// answer it had (None when unknown or its Region is gone) and how many
/// checks resumed.
pub fn resume(
    core: &mut Core,
    memory: &Memory,
    now: Instant,
    unix_ms: u64,
) -> (Vec<Option<Answer>>, usize) {
    let usable = resumable(core.config(), memory, unix_ms);
    resume_checks(core, memory, &usable, now, unix_ms)
}

/// `resume` for the checks `usable` names, as `resumable` found them when
/// the first round was skipped for them: asked again after that round, a
/// check may have aged past fresh and would be left with no state at all.
pub fn resume_checks(
    core: &mut Core,
    memory: &Memory,
    usable: &[bool],
    now: Instant,
    unix_ms: u64,
) -> (Vec<Option<Answer>>, usize) {
    let config = core.config().clone();
    let mut resumed = 0;
    for (i, spec) in config.checks.iter().enumerate() {
        let usable = usable.get(i).copied().unwrap_or(false);
        let Some(m) = memory.checks.get(&spec.name).filter(|_| usable) else {
            continue;
        };
        let state = match m.state.as_str() {
            "up" => State::Up,
            "down" => State::Down,
            _ => continue,
        };
        let run = CheckRun {
            state: CheckState::restored(
                state,
                from_ms(m.since_ms, now, unix_ms),
                m.consecutive_ok,
                m.consecutive_fail,
            ),
            round_ok: m.round_ok,
            last_ok: m.last_ok_ms.map(|t| from_ms(t, now, unix_ms)),
            last_fail: m.last_fail_ms.map(|t| from_ms(t, now, unix_ms)),
            awaiting_first: false,
            reported_at: now,
            stale: false,
        };
        core.restore_check(i, run);
        resumed += 1;
    }
    let mut previous = Vec::new();
    for (i, alias) in config.aliases.iter().enumerate() {
        let Some(m) = memory.aliases.get(&alias.name.to_string()) else {
            previous.push(None);
            continue;
        };
        let answer = match m.answer.as_str() {
            "NODATA" => Some(Answer::NoData),
            "SERVFAIL" => Some(Answer::ServFail),
            other => other.strip_prefix("region:").and_then(|r| {
                alias
                    .targets
                    .iter()
                    .position(|t| t.region == r)
                    .map(Answer::Target)
            }),
        };
        if let Some(answer) = answer {
            core.restore_alias(
                i,
                answer,
                from_ms(m.since_ms, now, unix_ms),
                m.level.min(32),
                m.isolated,
            );
        }
        previous.push(answer);
    }
    (previous, resumed)
}

/// Writes memories on its own thread; the newest pending one wins.
#[derive(Clone)]
pub struct Writer {
    slot: Arc<(Mutex<Slot>, Condvar)>,
}

/// The memory waiting to be written, and whether one is being written.
#[derive(Default)]
struct Slot {
    pending: Option<Memory>,
    writing: bool,
}

impl Writer {
    pub fn start(store: StateStore, metrics: Arc<Metrics>) -> Writer {
        let slot: Arc<(Mutex<Slot>, Condvar)> = Arc::default();
        let shared = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("decision-memory".into())
            .spawn(move || write_loop(&shared, &store, &metrics));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the decision memory writer: decisions are not remembered across restarts");
        }
        Writer { slot }
    }

    /// Hands over the newest memory; never waits for the disk.
    pub fn submit(&self, memory: Memory) {
        let (lock, ready) = &*self.slot;
        if let Ok(mut slot) = lock.lock() {
            slot.pending = Some(memory);
            ready.notify_all();
        }
    }

    /// Waits (at most `limit`) until what was submitted is on disk: a
    /// change made just before a stop must not be forgotten, or the
    /// restart answers what was answered before it and moves users twice.
    pub fn flush(&self, limit: Duration) -> bool {
        let (lock, ready) = &*self.slot;
        let Some(deadline) = Instant::now().checked_add(limit) else {
            return false;
        };
        let Ok(mut slot) = lock.lock() else {
            return false;
        };
        while slot.pending.is_some() || slot.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            slot = match ready.wait_timeout(slot, left) {
                Ok((s, _)) => s,
                Err(_) => return false,
            };
        }
        true
    }
}

fn write_loop(slot: &(Mutex<Slot>, Condvar), store: &StateStore, metrics: &Metrics) {
    let (lock, ready) = slot;
    let mut failing = false;
    loop {
        let memory = {
            let Ok(mut slot) = lock.lock() else {
                return;
            };
            slot.writing = false;
            ready.notify_all();
            loop {
                if let Some(m) = slot.pending.take() {
                    slot.writing = true;
                    break m;
                }
                slot = match ready.wait(slot) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
        };
        match store.save_decisions(&memory) {
            Ok(()) => {
                if failing {
                    tracing::warn!("decisions.json written again");
                }
                failing = false;
            }
            Err(e) => {
                metrics.persist_failed("decisions");
                if !failing {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "cannot write decisions.json: a restart now would forget answers, failback parking and check states"
                    );
                }
                failing = true;
                // Do not spin on a broken disk; the next memory retries.
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_returns_once_the_latest_memory_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(
            StateStore::open(dir.path()).unwrap(),
            Arc::new(Metrics::new()),
        );
        for saved_at_ms in 1..=50 {
            writer.submit(Memory {
                saved_at_ms,
                ..Memory::default()
            });
        }
        assert!(writer.flush(Duration::from_secs(10)));
        let on_disk: Memory = StateStore::open(dir.path())
            .unwrap()
            .load_decisions()
            .unwrap();
        assert_eq!(on_disk.saved_at_ms, 50);
    }
}
