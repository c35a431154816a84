//! What the engine knows, as operators read it: every alias's answer and the
//! reason, every check's state and last result. The engine publishes a new
//! view after each change; the admin API only reads it.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusView {
    pub aliases: Vec<AliasView>,
    pub checks: Vec<CheckView>,
    pub zones: Vec<ZoneView>,
    /// Whether the served serials are on disk; answer changes wait while not.
    pub state: StateView,
    /// A canary check fails: no answer moves.
    pub canary_failing: bool,
}

/// Persistence of serials in `state_dir`. While a write fails nothing new is
/// published: the previous answers and serials stay, and the engine retries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StateView {
    /// False while the last write of the serials failed.
    pub persisted: bool,
    pub error: Option<String>,
    /// When the current run of failures began (RFC 3339).
    pub failing_since: Option<String>,
    /// Failed writes in the current run.
    pub failures: u64,
    pub next_retry_in: Option<String>,
}

/// A served zone: where its data comes from and what it serves now.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneView {
    pub origin: String,
    /// "primary" (from its file) or "secondary" (transferred).
    pub role: String,
    /// None while a secondary has no copy.
    pub serial: Option<u32>,
    /// False: SERVFAIL (a secondary without a copy, or expired).
    pub available: bool,
    /// Secondary zones: where they transfer from.
    pub primaries: Vec<String>,
    /// Where NOTIFY goes on every new serial.
    pub notify: Vec<String>,
    /// What each NOTIFY target serves, as its SOA serial says (empty
    /// until first asked).
    pub secondaries: Vec<SecondaryView>,
}

/// One secondary (NOTIFY target) of a zone, as the last SOA query found it.
#[derive(Debug, Clone, Serialize)]
pub struct SecondaryView {
    pub address: String,
    /// "unknown" (not asked yet), "in_sync", "behind", "ahead" (a later
    /// serial than ours: it will not transfer from us) or "unreachable".
    pub state: String,
    /// Their serial at the last answer.
    pub serial: Option<u32>,
    /// Ours when last asked.
    pub ours: Option<u32>,
    /// Serials behind (RFC 1982 distance); 0 unless behind.
    pub lag: u32,
    /// Since when the state holds (RFC 3339). Behind: since we published
    /// the first serial it lacks.
    pub since: String,
    pub last_checked: Option<String>,
    /// Why the last query got no usable answer.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AliasView {
    pub name: String,
    pub zone: String,
    pub serial: u32,
    pub ttl: u32,
    /// The identifier answered, or "NODATA" / "SERVFAIL".
    pub answer: String,
    /// A new answer decided but not yet served: it waits until its serial
    /// can be persisted.
    pub pending: Option<String>,
    /// Index and Region of the answered target, when a target is answered.
    pub target: Option<usize>,
    pub region: Option<String>,
    pub reason: String,
    /// When the answer last changed (RFC 3339).
    pub since: String,
    pub policy: PolicyView,
    /// The operator's pin, if any.
    #[serde(rename = "override")]
    pub override_: Option<crate::state::Override>,
    /// Every target began failing together: the answer is held.
    pub prober_isolated: bool,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    pub all_down: String,
    pub failback: String,
    pub failback_after: String,
    /// The wait a failback is under now: doubled by each failback in a
    /// row, up to `failback_after_max`, back after `failback_reset` of calm.
    pub failback_after_now: String,
    pub failback_after_max: String,
    pub failback_reset: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    pub region: String,
    pub connection_id: String,
    pub healthy: bool,
    /// Seen working while the answered target failed (or nothing to judge
    /// by): only a confirmed target may take over from a failed one.
    pub confirmed: bool,
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    pub name: String,
    pub kind: String,
    /// "up", "down" or "no data" (which counts as healthy).
    pub state: String,
    pub healthy: bool,
    pub since: String,
    pub interval: String,
    pub timeout: String,
    pub fall: u32,
    pub rise: u32,
    pub last: Option<ResultView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultView {
    pub ok: bool,
    pub latency_ms: f64,
    pub detail: String,
}

/// Wall-clock time of a monotonic instant, for people to read.
pub fn wall(at: Instant, now: Instant) -> String {
    let ago = now.saturating_duration_since(at);
    let t = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
