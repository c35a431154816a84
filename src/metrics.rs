//! Prometheus metrics (prometheus-client, OpenMetrics text at `/metrics`).
//!
//! The query path only bumps pre-created counter handles (one atomic add);
//! label lookups happen when a snapshot is built or on the rare paths.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::dns::rrl::Class;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    /// Indexed by the header RCODE (low 4 bits).
    udp: Vec<Counter>,
    tcp: Vec<Counter>,
    answers: Family<Labels, Counter>,
    check_up: Family<Labels, Gauge>,
    probe_seconds: Family<Labels, Histogram>,
    check_transitions: Family<Labels, Counter>,
    answer_changes: Family<Labels, Counter>,
    on_failover: Family<Labels, Gauge>,
    last_change: Gauge,
    serial: Family<Labels, Gauge>,
    transfers: Family<Labels, Counter>,
    transfer_messages: Family<Labels, Counter>,
    notifies: Family<Labels, Counter>,
    secondary_lag: Family<Labels, Gauge>,
    secondary_in_sync: Family<Labels, Gauge>,
    /// The admin API's connections and rejected requests.
    pub admin: crate::admin::AdminMetrics,
    pub engine: crate::engine::EngineMetrics,
    persist_failures: Family<Labels, Counter>,
    persist_ok: Gauge,
    /// Rate-limited UDP responses by class: dropped, then slipped.
    rrl_dropped: Vec<Counter>,
    rrl_slipped: Vec<Counter>,
    tcp_open: Gauge,
    /// Indexed by `TcpDrop as usize`.
    tcp_dropped: Vec<Counter>,
    tcp_accept_errors: Counter,
    probe_rounds_late: Family<Labels, Counter>,
    probe_attempts: Family<Labels, Counter>,
}

/// One probe loop's counters, created when the loop starts so they read 0
/// before anything happened.
#[derive(Clone)]
pub struct ProbeCounters {
    /// Rounds that began well after their slot: the prober is overloaded.
    pub late: Counter,
    pub attempts_ok: Counter,
    pub attempts_failed: Counter,
}

/// Why a TCP connection was refused or closed by us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpDrop {
    /// `tcp_max_connections` were open: accepted and closed at once.
    TotalCap,
    /// `tcp_max_per_source` were open from this source.
    SourceCap,
    /// No whole query within `tcp_idle_timeout`.
    IdleTimeout,
    /// `tcp_max_connection_lifetime` reached.
    Lifetime,
    /// `tcp_max_queries_per_connection` answered.
    QueryCap,
    /// The peer did not read an answer within `tcp_idle_timeout`.
    WriteTimeout,
    /// A response (QR=1) or a message too short for a header.
    Malformed,
    /// The connection idle longest when a new one came at the total cap: closed to make
    /// room for a new connection.
    Pressure,
}

impl TcpDrop {
    const ALL: [TcpDrop; 8] = [
        TcpDrop::TotalCap,
        TcpDrop::SourceCap,
        TcpDrop::IdleTimeout,
        TcpDrop::Lifetime,
        TcpDrop::QueryCap,
        TcpDrop::WriteTimeout,
        TcpDrop::Malformed,
        TcpDrop::Pressure,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TcpDrop::TotalCap => "total_cap",
            TcpDrop::SourceCap => "source_cap",
            TcpDrop::IdleTimeout => "idle_timeout",
            TcpDrop::Lifetime => "lifetime",
            TcpDrop::QueryCap => "query_cap",
            TcpDrop::WriteTimeout => "write_timeout",
            TcpDrop::Malformed => "malformed",
            TcpDrop::Pressure => "pressure",
        }
    }
}

const RCODES: [&str; 16] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("txtfailover");
        let queries: Family<Labels, Counter> = Family::default();
        registry.register(
            "queries",
            "DNS responses sent, by transport and RCODE",
            queries.clone(),
        );
        let handles = |transport: &'static str| -> Vec<Counter> {
            RCODES
                .iter()
                .map(|r| {
                    queries
                        .get_or_create(&vec![
                            ("transport", transport.to_string()),
                            ("rcode", r.to_string()),
                        ])
                        .clone()
                })
                .collect()
        };
        let (udp, tcp) = (handles("udp"), handles("tcp"));
        let answers = Family::default();
        registry.register(
            "alias_answers",
            "TXT answers sent per alias, by the identifier answered",
            answers.clone(),
        );
        let check_up = Family::default();
        registry.register(
            "check_up",
            "1 when a check counts as healthy, else 0",
            check_up.clone(),
        );
        let probe_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register(
            "probe_duration_seconds",
            "Probe latency",
            probe_seconds.clone(),
        );
        let check_transitions = Family::default();
        registry.register(
            "check_transitions",
            "Check state changes",
            check_transitions.clone(),
        );
        let answer_changes = Family::default();
        registry.register(
            "answer_changes",
            "Answer changes per alias",
            answer_changes.clone(),
        );
        let on_failover = Family::default();
        registry.register(
            "alias_on_failover",
            "1 while the alias answers something other than its primary (a failover target, NODATA or SERVFAIL)",
            on_failover.clone(),
        );
        let last_change = Gauge::default();
        registry.register(
            "last_answer_change_timestamp_seconds",
            "Unix time of the last answer change",
            last_change.clone(),
        );
        let serial = Family::default();
        registry.register("zone_serial", "SOA serial served per zone", serial.clone());
        let secondary_lag = Family::default();
        registry.register(
            "secondary_serial_lag",
            "Serials a NOTIFY target was behind ours at its last answer (0 in sync)",
            secondary_lag.clone(),
        );
        let secondary_in_sync = Family::default();
        registry.register(
            "secondary_in_sync",
            "1 when a NOTIFY target's last answer had our serial",
            secondary_in_sync.clone(),
        );
        let transfers = Family::default();
        registry.register(
            "transfers",
            "Zone transfer requests by zone, kind (axfr, ixfr, ixfr_full, ixfr_current, soa_only) and result",
            transfers.clone(),
        );
        let transfer_messages = Family::default();
        registry.register(
            "transfer_messages",
            "DNS messages sent in zone transfer responses, by zone",
            transfer_messages.clone(),
        );
        let notifies = Family::default();
        registry.register(
            "notify_messages",
            "NOTIFY messages by zone, direction (sent, received) and result",
            notifies.clone(),
        );
        let admin = crate::admin::AdminMetrics::register(&mut registry);
        let engine = crate::engine::EngineMetrics::register(&mut registry);
        let persist_failures = Family::default();
        registry.register(
            "state_persist_failures",
            "Failed writes to state_dir, by file (serials, overrides, secondary)",
            persist_failures.clone(),
        );
        let persist_ok = Gauge::default();
        registry.register(
            "state_persist_ok",
            "1 when the served serials are persisted, 0 while writing them fails (answer changes wait)",
            persist_ok.clone(),
        );
        let limited: Family<Labels, Counter> = Family::default();
        registry.register(
            "rrl_limited_responses",
            "UDP responses over their flow's rate (response rate limiting), by class and action (dropped, or slipped: sent truncated)",
            limited.clone(),
        );
        let rrl_handles = |action: &'static str| -> Vec<Counter> {
            Class::ALL
                .iter()
                .map(|c| {
                    limited
                        .get_or_create(&vec![
                            ("class", c.label().to_string()),
                            ("action", action.to_string()),
                        ])
                        .clone()
                })
                .collect()
        };
        let (rrl_dropped, rrl_slipped) = (rrl_handles("dropped"), rrl_handles("slipped"));
        let tcp_open = Gauge::default();
        registry.register(
            "tcp_connections",
            "DNS TCP connections open now",
            tcp_open.clone(),
        );
        let dropped: Family<Labels, Counter> = Family::default();
        registry.register(
            "tcp_connections_dropped",
            "DNS TCP connections refused at a cap (total_cap, source_cap) or closed by us (idle_timeout, lifetime, query_cap, write_timeout, malformed, pressure: idle longest when a new one came at the total cap)",
            dropped.clone(),
        );
        let tcp_dropped = TcpDrop::ALL
            .iter()
            .map(|r| {
                dropped
                    .get_or_create(&vec![("reason", r.label().to_string())])
                    .clone()
            })
            .collect();
        let tcp_accept_errors = Counter::default();
        registry.register(
            "tcp_accept_errors",
            "Failed accept() calls on DNS TCP listeners (e.g. out of file descriptors)",
            tcp_accept_errors.clone(),
        );
        let probe_rounds_late = Family::default();
        registry.register(
            "probe_rounds_late",
            "Probe rounds that started more than max(10% of the interval, 50 ms) after their slot (the prober is overloaded)",
            probe_rounds_late.clone(),
        );
        let probe_attempts = Family::default();
        registry.register(
            "probe_attempts",
            "Probe attempts by check and result (ok, fail); a round makes up to `attempts` of them",
            probe_attempts.clone(),
        );
        let build: Family<Labels, Gauge> = Family::default();
        registry.register("build_info", "Version of the running binary", build.clone());
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        Metrics {
            registry,
            udp,
            tcp,
            answers,
            check_up,
            probe_seconds,
            check_transitions,
            answer_changes,
            on_failover,
            last_change,
            serial,
            transfers,
            transfer_messages,
            notifies,
            secondary_lag,
            secondary_in_sync,
            admin,
            engine,
            persist_failures,
            persist_ok,
            rrl_dropped,
            rrl_slipped,
            tcp_open,
            tcp_dropped,
            tcp_accept_errors,
            probe_rounds_late,
            probe_attempts,
        }
    }

    /// The counters a probe loop of `check` bumps.
    pub fn probe_counters(&self, check: &str) -> ProbeCounters {
        let attempts = |result: &str| {
            self.probe_attempts
                .get_or_create(&vec![
                    ("check", check.to_string()),
                    ("result", result.to_string()),
                ])
                .clone()
        };
        ProbeCounters {
            late: self
                .probe_rounds_late
                .get_or_create(&vec![("check", check.to_string())])
                .clone(),
            attempts_ok: attempts("ok"),
            attempts_failed: attempts("fail"),
        }
    }

    /// One response over its rate: dropped, or sent truncated (slipped).
    pub fn rrl(&self, class: Class, slipped: bool) {
        let counters = if slipped {
            &self.rrl_slipped
        } else {
            &self.rrl_dropped
        };
        if let Some(c) = counters.get(class as usize) {
            c.inc();
        }
    }

    /// One more (`delta` 1) or one fewer (-1) TCP connection open.
    pub fn tcp_open(&self, delta: i64) {
        self.tcp_open.inc_by(delta);
    }

    pub fn tcp_dropped(&self, reason: TcpDrop) {
        if let Some(c) = self.tcp_dropped.get(reason as usize) {
            c.inc();
        }
    }

    pub fn tcp_accept_error(&self) {
        self.tcp_accept_errors.inc();
    }

    pub fn response(&self, tcp: bool, rcode: u8) {
        let counters = if tcp { &self.tcp } else { &self.udp };
        counters[usize::from(rcode & 0x0F)].inc();
    }

    /// The counter for TXT answers of `alias` carrying `answer`.
    pub fn answer_counter(&self, alias: &str, answer: &str) -> Counter {
        self.answers
            .get_or_create(&vec![
                ("alias", alias.to_string()),
                ("answer", answer.to_string()),
            ])
            .clone()
    }

    pub fn probe(&self, check: &str, seconds: f64, healthy: bool, changed: bool) {
        let labels = vec![("check", check.to_string())];
        self.probe_seconds.get_or_create(&labels).observe(seconds);
        self.check_up.get_or_create(&labels).set(i64::from(healthy));
        if changed {
            self.check_transitions.get_or_create(&labels).inc();
        }
    }

    pub fn answer_changed(&self, alias: &str, unix_seconds: i64) {
        self.answer_changes
            .get_or_create(&vec![("alias", alias.to_string())])
            .inc();
        self.last_change.set(unix_seconds);
    }

    /// Whether `alias` answers something other than its primary.
    pub fn on_failover(&self, alias: &str, away: bool) {
        self.on_failover
            .get_or_create(&vec![("alias", alias.to_string())])
            .set(i64::from(away));
    }

    /// Creates every labelled series a configuration will have, at zero,
    /// so the first scrape shows each documented metric (an alert on a
    /// rate needs its series before the first event).
    pub fn prime(
        &self,
        aliases: &[String],
        checks: &[(String, bool)],
        zones: &[String],
        secondaries: &[(String, String)],
    ) {
        for (zone, secondary) in secondaries {
            let labels = secondary_labels(zone, secondary);
            let _ = self.secondary_lag.get_or_create(&labels);
            let _ = self.secondary_in_sync.get_or_create(&labels);
        }
        for alias in aliases {
            let labels = vec![("alias", alias.clone())];
            let _ = self.answer_changes.get_or_create(&labels);
            let _ = self.on_failover.get_or_create(&labels);
        }
        for (check, healthy) in checks {
            let labels = vec![("check", check.clone())];
            let _ = self.check_transitions.get_or_create(&labels);
            let _ = self.probe_seconds.get_or_create(&labels);
            self.check_up
                .get_or_create(&labels)
                .set(i64::from(*healthy));
        }
        for zone in zones {
            let z = || ("zone", zone.clone());
            let _ = self.transfers.get_or_create(&vec![
                z(),
                ("kind", "axfr".into()),
                ("result", "ok".into()),
            ]);
            let _ = self.transfer_messages.get_or_create(&vec![z()]);
            for direction in ["sent", "received"] {
                let _ = self.notifies.get_or_create(&vec![
                    z(),
                    ("direction", direction.into()),
                    (
                        "result",
                        if direction == "sent" {
                            "acknowledged"
                        } else {
                            "accepted"
                        }
                        .into(),
                    ),
                ]);
            }
        }
        for file in ["serials", "overrides", "secondary", "decisions"] {
            let _ = self
                .persist_failures
                .get_or_create(&vec![("file", file.to_string())]);
        }
    }

    pub fn serial(&self, zone: &str, serial: u32) {
        self.serial
            .get_or_create(&vec![("zone", zone.to_string())])
            .set(i64::from(serial));
    }

    /// What a NOTIFY target of `zone` answered last.
    pub fn secondary(&self, zone: &str, secondary: &str, in_sync: bool, lag: u32) {
        let labels = secondary_labels(zone, secondary);
        self.secondary_in_sync
            .get_or_create(&labels)
            .set(i64::from(in_sync));
        self.secondary_lag
            .get_or_create(&labels)
            .set(i64::from(lag));
    }

    /// A NOTIFY target no longer configured: its series go.
    pub fn secondary_forget(&self, zone: &str, secondary: &str) {
        let labels = secondary_labels(zone, secondary);
        self.secondary_in_sync.remove(&labels);
        self.secondary_lag.remove(&labels);
    }

    /// One transfer request answered (or refused), and how many messages
    /// the answer took.
    pub fn transfer(&self, zone: &str, kind: &str, result: &str, messages: usize) {
        self.transfers
            .get_or_create(&vec![
                ("zone", zone.to_string()),
                ("kind", kind.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
        self.transfer_messages
            .get_or_create(&vec![("zone", zone.to_string())])
            .inc_by(messages as u64);
    }

    pub fn notify(&self, zone: &str, direction: &str, result: &str) {
        self.notifies
            .get_or_create(&vec![
                ("zone", zone.to_string()),
                ("direction", direction.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    /// A write to `state_dir` failed; `file` is serials, overrides or secondary.
    pub fn persist_failed(&self, file: &str) {
        self.persist_failures
            .get_or_create(&vec![("file", file.to_string())])
            .inc();
    }

    /// Whether the served serials are on disk.
    pub fn persist_ok(&self, ok: bool) {
        self.persist_ok.set(i64::from(ok));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

fn secondary_labels(zone: &str, secondary: &str) -> Labels {
    vec![
        ("zone", zone.to_string()),
        ("secondary", secondary.to_string()),
    ]
}
