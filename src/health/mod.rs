//! Health: probes run as tokio tasks, far from the query path; their results
//! flow over a channel to the engine, which feeds the rise/fall machines.

pub mod machine;
pub mod probe;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::CheckSpec;
pub use machine::{CheckState, Outcome, State};
pub use probe::Prober;

/// One result, tagged with the index of its check in the config.
#[derive(Debug)]
pub struct ProbeResult {
    pub check: usize,
    pub outcome: Outcome,
}

pub fn build_probers(checks: &[CheckSpec]) -> anyhow::Result<Vec<Arc<Prober>>> {
    checks
        .iter()
        .map(|c| Prober::new(&c.probe, c.timing.timeout).map(Arc::new))
        .collect()
}

/// Runs every check once, concurrently; bounded by the longest timeout.
pub async fn first_round(probers: &[Arc<Prober>], checks: &[CheckSpec]) -> Vec<Outcome> {
    join_all(
        probers
            .iter()
            .zip(checks)
            .map(|(p, c)| p.probe(c.timing.timeout)),
    )
    .await
}

/// `interval` stretched or shrunk by up to 10% so probes of many checks, and
/// of several servers, do not align.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::random_range(0.9..1.1))
}

/// Starts one periodic loop per check. The loops end when the receiver is dropped.
pub fn spawn_loops(
    probers: &[Arc<Prober>],
    checks: &[CheckSpec],
    tx: mpsc::Sender<ProbeResult>,
) -> Vec<JoinHandle<()>> {
    probers
        .iter()
        .zip(checks)
        .enumerate()
        .map(|(index, (prober, check))| {
            let prober = Arc::clone(prober);
            let timing = check.timing;
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(jittered(timing.interval)).await;
                    let outcome = prober.probe(timing.timeout).await;
                    if tx
                        .send(ProbeResult {
                            check: index,
                            outcome,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        })
        .collect()
}
