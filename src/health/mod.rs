//! Health: probes run as tokio tasks, far from the query path; their results
//! flow over a channel to the engine, which feeds the rise/fall machines.

pub mod machine;
pub mod probe;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use std::time::Instant;

use crate::config::{CheckSpec, ProbeSpec};
pub use machine::{CheckState, Outcome, State};
pub use probe::Prober;

/// One result, tagged with the index of its check in the config.
#[derive(Debug)]
pub struct ProbeResult {
    pub check: usize,
    pub outcome: Outcome,
    /// Which set of probe loops sent it; results of loops replaced by a
    /// reload are dropped.
    pub generation: u64,
    /// When the round finished.
    pub at: Instant,
}

/// One prober per probed check; None for composites, which are derived.
pub fn build_probers(checks: &[CheckSpec]) -> anyhow::Result<Vec<Option<Arc<Prober>>>> {
    checks
        .iter()
        .map(|c| match &c.probe {
            ProbeSpec::Composite { .. } | ProbeSpec::External { .. } => Ok(None),
            probe => Prober::new(probe, c.timing.timeout).map(|p| Some(Arc::new(p))),
        })
        .collect()
}

/// A check's health and since when it holds, composites evaluated over their
/// members (config validation guarantees there are no cycles).
pub fn effective(specs: &[CheckSpec], states: &[CheckState], i: usize) -> (bool, Instant) {
    match &specs[i].probe {
        ProbeSpec::Composite { rule, members } => {
            let results: Vec<(bool, Instant)> = members
                .iter()
                .map(|&m| effective(specs, states, m))
                .collect();
            let healthy = results.iter().filter(|r| r.0).count();
            let since = results.iter().map(|r| r.1).max().unwrap_or(states[i].since);
            (rule.holds(healthy, members.len()), since)
        }
        _ => (states[i].state.healthy(), states[i].since),
    }
}

/// Runs every check once, concurrently; bounded by the longest timeout.
pub async fn first_round(
    probers: &[Option<Arc<Prober>>],
    checks: &[CheckSpec],
) -> Vec<Option<Outcome>> {
    join_all(probers.iter().zip(checks).map(|(p, c)| async move {
        match p {
            Some(p) => Some(p.probe(c.timing.timeout).await),
            None => None,
        }
    }))
    .await
}

/// `interval` stretched or shrunk by up to 10% so probes of many checks, and
/// of several servers, do not align.
fn jittered(interval: Duration) -> Duration {
    // `mul_f64` panics past Duration's range; such an interval stays as is.
    Duration::try_from_secs_f64(interval.as_secs_f64() * rand::random_range(0.9..1.1))
        .unwrap_or(interval)
}

/// Starts one periodic loop per check. The loops end when the receiver is dropped.
pub fn spawn_loops(
    probers: &[Option<Arc<Prober>>],
    checks: &[CheckSpec],
    tx: &mpsc::Sender<ProbeResult>,
    generation: u64,
    probe_now: &[bool],
) -> Vec<JoinHandle<()>> {
    probers
        .iter()
        .zip(checks)
        .enumerate()
        .filter_map(|(index, (prober, check))| prober.as_ref().map(|p| (index, p, check)))
        .map(|(index, prober, check)| {
            let prober = Arc::clone(prober);
            let timing = check.timing;
            let tx = tx.clone();
            let mut wait = !probe_now[index];
            tokio::spawn(async move {
                loop {
                    if wait {
                        tokio::time::sleep(jittered(timing.interval)).await;
                    }
                    wait = true;
                    let outcome = prober.probe(timing.timeout).await;
                    let result = ProbeResult {
                        check: index,
                        outcome,
                        generation,
                        at: Instant::now(),
                    };
                    if tx.send(result).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect()
}
