//! The engine's own metrics: how busy it is, how long a probe result takes
//! to reach the answers, and when it holds answers because the prober
//! looks cut off.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct EngineMetrics {
    busy: Counter<f64, AtomicU64>,
    latency: Histogram,
    isolated: Family<Labels, Gauge>,
    canary: Gauge,
}

impl EngineMetrics {
    pub fn register(registry: &mut Registry) -> EngineMetrics {
        let busy = Counter::<f64, AtomicU64>::default();
        registry.register(
            "engine_busy_seconds",
            "CPU time the decision engine spent handling events (probe results, commands, timers)",
            busy.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "decision_latency_seconds",
            "From the end of the probe round that moved an answer to the new snapshot being served",
            latency.clone(),
        );
        let isolated = Family::default();
        registry.register(
            "prober_isolated",
            "1 while every target of the alias began failing together: the prober looks cut off and the answer is held",
            isolated.clone(),
        );
        let canary = Gauge::default();
        registry.register(
            "canary_failing",
            "1 while a canary check fails: no answer moves",
            canary.clone(),
        );
        EngineMetrics {
            busy,
            latency,
            isolated,
            canary,
        }
    }

    pub fn busy(&self, spent: Duration) {
        self.busy.inc_by(spent.as_secs_f64());
    }

    pub fn latency(&self, took: Duration) {
        self.latency.observe(took.as_secs_f64());
    }

    pub fn isolated(&self, alias: &str, isolated: bool) {
        self.isolated
            .get_or_create(&vec![("alias", alias.to_string())])
            .set(i64::from(isolated));
    }

    pub fn canary(&self, failing: bool) {
        self.canary.set(i64::from(failing));
    }
}

/// CPU time this thread has used: the engine's cost, without the time it
/// sat preempted by probes or other processes.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(t.tv_nsec).unwrap_or(0).min(999_999_999);
    Duration::new(secs, nanos)
}
