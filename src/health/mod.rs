//! Health: probes run as tokio tasks, far from the query path; their results
//! flow over a channel to the engine, which feeds the rise/fall machines.

pub mod alarm;
pub mod eventbridge;
pub mod machine;
pub mod probe;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use std::time::Instant;

use crate::config::{CheckSpec, MIN_PROBE_INTERVAL, ProbeSpec, Timing};
use crate::metrics::{Metrics, ProbeCounters};
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

/// One prober per probed check; None for composites, which are derived,
/// and external checks, which are told. Alarm checks share `alarms`.
pub fn build_probers(
    checks: &[CheckSpec],
    alarms: &Arc<alarm::AlarmBoard>,
) -> anyhow::Result<Vec<Option<Arc<Prober>>>> {
    checks
        .iter()
        .map(|c| match &c.probe {
            ProbeSpec::Composite { .. } | ProbeSpec::External { .. } => Ok(None),
            _ => Prober::for_check(c, alarms).map(|p| Some(Arc::new(p))),
        })
        .collect()
}

/// Runs every check once, concurrently, with `max(fall, attempts)` quick
/// attempts each: the result sets the state directly, so one lost probe must
/// not start a check Down. Bounded by the longest such round.
pub async fn first_round(
    probers: &[Option<Arc<Prober>>],
    checks: &[CheckSpec],
    metrics: &Metrics,
) -> Vec<Option<Outcome>> {
    join_all(probers.iter().zip(checks).map(|(p, c)| async move {
        let p = p.as_ref()?;
        let counters = metrics.probe_counters(&c.name);
        let (outcome, made) = p
            .round_counted(c.timing.timeout, first_attempts(&c.timing))
            .await;
        count(&counters, &outcome, made);
        Some(outcome)
    }))
    .await
}

/// Attempts of a check's first round (at start-up, or new or changed on reload).
fn first_attempts(timing: &Timing) -> u32 {
    timing.fall.max(timing.attempts)
}

/// Bumps the attempt counters for one round that made `made` attempts.
fn count(counters: &ProbeCounters, outcome: &Outcome, made: u32) {
    let failed = if outcome.ok {
        counters.attempts_ok.inc();
        made.saturating_sub(1)
    } else {
        made
    };
    counters.attempts_failed.inc_by(u64::from(failed));
}

/// A fixed offset in [0, interval) for one loop, so probes of many checks,
/// and of several servers, do not align, while each keeps its own pace.
fn phase(interval: Duration) -> Duration {
    match u64::try_from(interval.as_nanos()) {
        Ok(0) => Duration::ZERO,
        Ok(n) => Duration::from_nanos(rand::random_range(0..n)),
        Err(_) => Duration::ZERO,
    }
}

/// The first slot of the grid `base + k × interval` (k ≥ 0) at or after `now`.
fn next_slot(
    base: tokio::time::Instant,
    interval: Duration,
    now: tokio::time::Instant,
) -> tokio::time::Instant {
    let behind = now.saturating_duration_since(base);
    if behind.is_zero() || interval.is_zero() {
        return base.max(now);
    }
    let steps = behind.as_nanos().div_ceil(interval.as_nanos());
    u32::try_from(steps)
        .ok()
        .and_then(|k| interval.checked_mul(k))
        .and_then(|d| base.checked_add(d))
        .unwrap_or(now)
}

/// How far past its slot a round may start before it counts as late.
fn late_after(interval: Duration) -> Duration {
    (interval / 10).max(Duration::from_millis(50))
}

/// Starts one periodic loop per probed check; they end when the receiver is
/// dropped. Rounds run start to start on a grid of `interval` shifted by a
/// random phase fixed per loop, so a round that times out never delays the
/// next. A check with `probe_now` set (new or changed on reload) is probed
/// at once with the quick first round, then joins its grid.
pub fn spawn_loops(
    probers: &[Option<Arc<Prober>>],
    checks: &[CheckSpec],
    tx: &mpsc::Sender<ProbeResult>,
    generation: u64,
    probe_now: &[bool],
    metrics: &Metrics,
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
            let at_once = probe_now.get(index).copied().unwrap_or(false);
            // Validation keeps it above the floor; a zero period would panic.
            let period = timing.interval.max(MIN_PROBE_INTERVAL);
            let counters = metrics.probe_counters(&check.name);
            tokio::spawn(async move {
                let begun = tokio::time::Instant::now();
                let base = begun.checked_add(phase(period)).unwrap_or(begun);
                // One round, counted and sent; false once the engine is gone.
                let round = async |attempts: u32| {
                    let (outcome, made) = prober.round_counted(timing.timeout, attempts).await;
                    count(&counters, &outcome, made);
                    let result = ProbeResult {
                        check: index,
                        outcome,
                        generation,
                        at: Instant::now(),
                    };
                    tx.send(result).await.is_ok()
                };
                if at_once && !round(first_attempts(&timing)).await {
                    return;
                }
                let first = next_slot(base, period, tokio::time::Instant::now());
                let mut slots = tokio::time::interval_at(first, period);
                slots.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    let slot = slots.tick().await;
                    if slot.elapsed() > late_after(period) {
                        counters.late.inc();
                    }
                    if !round(timing.attempts).await {
                        return;
                    }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant as TokioInstant;

    #[test]
    fn the_next_slot_is_on_the_grid_at_or_after_now() {
        let base = TokioInstant::now();
        let s = Duration::from_secs(1);
        assert_eq!(next_slot(base, s, base), base);
        assert_eq!(next_slot(base + s, s, base), base + s, "not yet begun");
        assert_eq!(
            next_slot(base, s, base + Duration::from_millis(1)),
            base + s
        );
        assert_eq!(next_slot(base, s, base + s * 3), base + s * 3);
        assert_eq!(
            next_slot(base, s, base + Duration::from_millis(3200)),
            base + s * 4
        );
    }

    #[test]
    fn the_phase_stays_inside_the_interval() {
        let interval = Duration::from_millis(100);
        for _ in 0..1000 {
            assert!(phase(interval) < interval);
        }
        assert_eq!(phase(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn late_means_a_tenth_of_the_interval_but_at_least_50ms() {
        assert_eq!(
            late_after(Duration::from_secs(5)),
            Duration::from_millis(500)
        );
        assert_eq!(
            late_after(Duration::from_millis(200)),
            Duration::from_millis(50)
        );
    }
}
