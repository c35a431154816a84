//! Configuration: the TOML file and the zone files it names, validated into
//! typed structs before anything listens. Validation is pure: file reading is
//! passed in, so every rule is unit-tested without touching the disk.

mod admin;
mod alarm;
pub mod error;
mod raw;
mod transfer;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};
use reqwest::header::{HeaderName, HeaderValue};
use toml::Spanned;

use crate::decide::{AllDown, Failback, Policy};
use crate::dns::cookie::CookieSecret;
pub use crate::dns::rrl::RrlConfig;
use crate::logging::LogFormat;
use crate::zone::{StaticZone, parse_zone_with};
pub use admin::AdminLimits;
pub use alarm::{ALARM_TIMING, AlarmSpec, OnInsufficientData, is_region};
use error::SourceMap;
pub use error::{ConfigError, Problem};
use raw::{RawAlias, RawCheck, RawConfig, RawRrl, RawServer};
pub use transfer::{AccessRule, Remote, SecondarySpec, TsigKey, ZonePolicy, allowed, needs_key};

pub const DEFAULT_CONFIG: &str = "config/txtfailover.toml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5353";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8053";
/// Shortest probe interval and timeout accepted: below them a check probes
/// its target back to back (the timer's resolution is 1 ms) or always fails.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(100);
pub const MIN_PROBE_TIMEOUT: Duration = Duration::from_millis(10);

/// Whether two listen addresses need the same socket: the same port and
/// family, and one of them unspecified (0.0.0.0:53 takes port 53 on every
/// IPv4 address). IPv6 sockets are bound IPv6-only, so families never meet.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
pub const DEFAULT_TTL: u32 = 30;
/// Route 53's advice for health-checked records.
pub const TTL_WARN_ABOVE: u32 = 60;
/// The longest duration any setting takes: timers stay far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A validated configuration: everything `serve` needs, nothing left to check.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub server: ServerConfig,
    /// Response rate limiting for UDP.
    pub rrl: RrlConfig,
    /// Where the admin HTTP API listens.
    pub admin_listen: SocketAddr,
    /// Bearer tokens allowed to change things; empty disables mutations.
    pub admin_tokens: Vec<AdminToken>,
    /// Connection, time and size limits of the admin API.
    pub admin_limits: AdminLimits,
    /// Zones served from their files (primary zones).
    pub zones: Vec<StaticZone>,
    /// Zones served from transfers.
    pub secondaries: Vec<SecondarySpec>,
    pub keys: Vec<TsigKey>,
    pub checks: Vec<CheckSpec>,
    pub aliases: Vec<AliasSpec>,
    /// Where answer changes are announced.
    pub webhooks: Vec<WebhookSpec>,
    /// Legal but questionable settings, shown by `check` and logged by `serve`.
    pub warnings: Vec<Problem>,
}

/// A URL told about every answer change; signed when `secret` is set.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub url: reqwest::Url,
    pub secret: Option<String>,
}

impl std::fmt::Debug for WebhookSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebhookSpec({}, signed: {})",
            self.url,
            self.secret.is_some()
        )
    }
}

/// An operator's token; the label names them in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub label: String,
    pub secret: String,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminToken({}, <secret>)", self.label)
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub state_dir: PathBuf,
    /// Threads answering UDP on each listen address.
    pub udp_workers: usize,
    /// A TCP connection idle this long is closed: from its start or its
    /// last answer to the end of the next whole query.
    pub tcp_idle_timeout: Duration,
    /// From `cookie_secret_file`; None: a random one at each start.
    pub cookie_secret: Option<CookieSecret>,
    /// Sent to queries asking for NSID.
    pub nsid: Option<String>,
    /// CH TXT `id.server` / `hostname.bind`.
    pub identity: Option<String>,
    /// CH TXT `version.server` / `version.bind`.
    pub version: Option<String>,
    /// TCP connections open at once; None: derived from the open-files
    /// limit at start (`fdlimit::tcp_cap`).
    pub tcp_max_connections: Option<usize>,
    /// TCP connections open at once from one IPv4 address or IPv6 /64.
    pub tcp_max_per_source: usize,
    /// Queries one TCP connection may send before it is closed.
    pub tcp_max_queries_per_connection: u32,
    /// No new query is read on a TCP connection older than this.
    pub tcp_max_connection_lifetime: Duration,
    /// How often each NOTIFY target is asked for its SOA serial (and soon
    /// after every change).
    pub secondary_check_interval: Duration,
    /// A secondary behind or unreachable this long is warned about.
    pub secondary_lag_warn: Duration,
    /// Unless `serve --log-format` says otherwise.
    pub log_format: LogFormat,
    /// Where NOTIFY, SOA queries and transfers are sent from.
    pub query_source: QuerySource,
}

/// `[server] query_source`: at most one source address per family; the
/// kernel picks one for a family not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuerySource {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl QuerySource {
    /// The source for talking to `peer`, if one is set for its family.
    pub fn for_peer(&self, peer: IpAddr) -> Option<IpAddr> {
        match peer {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }

    /// Every address set.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }
}

/// `tcp_max_per_source` when not set: RFC 7766 §6.2.2 asks clients for one
/// connection per server; 16 leaves room for a resolver farm behind one
/// address while one address holds at most 16 of the connections.
pub const DEFAULT_TCP_MAX_PER_SOURCE: usize = 16;
/// Largest value accepted for the TCP connection caps.
const TCP_MAX_CONNECTIONS_LIMIT: i64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub name: String,
    pub probe: ProbeSpec,
    pub timing: Timing,
    /// Watches something that is not a Region (e.g. the path to AWS); while
    /// it fails, no answer moves.
    pub canary: bool,
}

/// When and how often a check runs, and how many results move its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    /// Attempts per round, back to back; the round fails only when all do,
    /// so one lost packet is not a failed round.
    pub attempts: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            fall: 5,
            rise: 2,
            attempts: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSpec {
    Http(HttpSpec),
    /// Not probed: state pushed through the admin API.
    External {
        stale_after: Duration,
        on_stale: OnStale,
    },
    Tcp {
        address: String,
    },
    /// A local program and its arguments, run without a shell; exit 0 is healthy.
    Command {
        argv: Vec<String>,
    },
    /// A CloudWatch alarm's state, read through the CloudWatch API (and
    /// pushed by EventBridge).
    CloudWatchAlarm(AlarmSpec),
    /// Not probed: healthy when enough of the member checks are.
    Composite {
        rule: Rule,
        members: Vec<usize>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    pub url: reqwest::Url,
    pub method: reqwest::Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Connect here instead of resolving the URL's host (like curl --resolve);
    /// Host header and TLS SNI still come from the URL.
    pub resolve: Option<SocketAddr>,
    pub tls_verify: bool,
    pub expect_status: Vec<RangeInclusive<u16>>,
    pub expect_body: Option<String>,
}

/// What an external check counts as once no report came for `stale_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStale {
    Healthy,
    Unhealthy,
    /// Keep the last reported state.
    Last,
}

/// How a composite check combines its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    All,
    Any,
    AtLeast(usize),
}

impl Rule {
    pub fn holds(self, healthy: usize, members: usize) -> bool {
        match self {
            Rule::All => healthy == members,
            Rule::Any => healthy >= 1,
            Rule::AtLeast(n) => healthy >= n,
        }
    }
}

/// How many bytes of a response body are searched for `expect_body`.
pub const BODY_SCAN_LIMIT: usize = 5120;

#[derive(Debug, Clone, PartialEq)]
pub struct AliasSpec {
    /// Lower-case, fully qualified connection string.
    pub name: Name,
    /// Index into `Config::zones` of the zone that holds it.
    pub zone: usize,
    pub ttl: u32,
    pub policy: Policy,
    pub targets: Vec<TargetSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub region: String,
    pub connection_id: String,
    /// Indices into `Config::checks`; the target is healthy when all are.
    pub checks: Vec<usize>,
}

/// Reads and validates the configuration at `path` and the zone files it names.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let read = |p: &Path| crate::zone::source::read_text(p, crate::zone::source::MAX_ZONE_BYTES);
    let text = read(path).map_err(|e| {
        ConfigError(vec![
            Problem::new(path, 0, 0, format!("cannot read config: {e}")).hint(format!(
                "create it, or pass --config PATH (default {DEFAULT_CONFIG})"
            )),
        ])
    })?;
    // Every file is read bounded and only if regular: a FIFO or a device
    // named by mistake must not hang or exhaust `check`, `serve` or a reload.
    validate(path, &text, &read)
}

/// Validates config text; `read` fetches zone files (relative paths are
/// resolved against the config file's directory before it is called).
pub fn validate(
    path: &Path,
    text: &str,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Config, ConfigError> {
    let map = SourceMap::new(path, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ConfigError(vec![
            map.at(&span, e.message().trim().to_string())
                .hint("see the configuration reference in README.md"),
        ])
    })?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut v = Validator {
        map,
        base,
        problems: Vec::new(),
        warnings: Vec::new(),
        query_source: QuerySource::default(),
    };
    let server = v.server(raw.server.as_ref(), read);
    v.query_source = server.query_source;
    let rrl = v.rrl(raw.rrl.as_ref());
    let (admin_listen, admin_tokens) = v.admin(raw.admin.as_ref(), read, &server.listen);
    let admin_limits = v.admin_limits(raw.admin.as_ref());
    let keys = v.keys(&raw.keys, read);
    let (zones, secondaries) = v.zones(&raw, &keys, read);
    let checks = v.checks(&raw.checks);
    let aliases = v.aliases(&raw.aliases, &zones, &secondaries, &checks);
    let webhooks = v.webhooks(&raw.webhooks, read);
    if !v.problems.is_empty() {
        return Err(ConfigError(v.problems));
    }
    Ok(Config {
        source: path.to_path_buf(),
        server,
        rrl,
        admin_listen,
        admin_tokens,
        admin_limits,
        zones,
        secondaries,
        keys,
        checks: checks.into_iter().map(|(c, _)| c).collect(),
        aliases,
        webhooks,
        warnings: v.warnings,
    })
}

/// Depth-first search from composite `at` for a path back to `start`;
/// `path` ends up holding it.
fn path_back(
    out: &[(CheckSpec, Range<usize>)],
    start: usize,
    at: usize,
    path: &mut Vec<usize>,
) -> bool {
    let ProbeSpec::Composite { members, .. } = &out[at].0.probe else {
        return false;
    };
    for &m in members {
        if m == start {
            path.push(m);
            return true;
        }
        if !path.contains(&m) {
            path.push(m);
            if path_back(out, start, m, path) {
                return true;
            }
            path.pop();
        }
    }
    false
}

/// The AWS Regions where WorkSpaces Personal runs (as of 2026). Only a
/// warning is drawn from it: a Region added later warns, and still works.
const WORKSPACES_REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "af-south-1",
    "il-central-1",
    "us-gov-west-1",
    "us-gov-east-1",
];

/// Whether a `command` check's program can be started: a path is looked
/// at as given (a relative one is resolved against the server's working
/// directory, which `check` cannot know, so it counts as present), a bare
/// name is searched on PATH.
fn program_exists(program: &str) -> bool {
    let path = Path::new(program);
    if program.contains('/') {
        return !path.is_absolute() || path.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|dirs| std::env::split_paths(&dirs).any(|d| d.join(path).is_file()))
}

struct Validator<'a> {
    map: SourceMap<'a>,
    base: PathBuf,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// `[server] query_source`, given to every peer as it is read.
    query_source: QuerySource,
}

fn is_connection_id(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_connection_string(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn parse_status_range(s: &str) -> Option<RangeInclusive<u16>> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    ((100..=599).contains(&lo) && (lo..=599).contains(&hi)).then_some(lo..=hi)
}

impl Validator<'_> {
    fn err(&mut self, span: &Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let p = self.map.at(span, message).hint(hint);
        self.problems.push(p);
    }

    /// Reads a file the config names (relative to the config's directory);
    /// None after reporting `what` could not be read, with `hint`.
    fn read_named(
        &mut self,
        file: &Spanned<String>,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
        what: &str,
        hint: &str,
    ) -> Option<(PathBuf, String)> {
        let path = self.resolve_path(file.get_ref());
        match read(&path) {
            Ok(text) => Some((path, text)),
            Err(e) => {
                // The bounded reader's refusals (not a regular file, too large,
                // not UTF-8) are not about the path.
                let hint = match e.kind() {
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                        "txtfailover reads only regular UTF-8 files of at most 64 MiB: point it at one"
                    }
                    _ => hint,
                };
                self.err(
                    &file.span(),
                    format!("cannot read {what} {}: {e}", path.display()),
                    hint,
                );
                None
            }
        }
    }

    fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// One of a fixed set of words; the first option is the default.
    fn choice<T: Copy>(
        &mut self,
        field: &str,
        value: Option<&Spanned<String>>,
        options: &[(&str, T)],
    ) -> T {
        let Some(value) = value else {
            return options[0].1;
        };
        if let Some((_, v)) = options.iter().find(|(word, _)| word == value.get_ref()) {
            return *v;
        }
        let words: Vec<String> = options.iter().map(|(w, _)| format!("{w:?}")).collect();
        self.err(
            &value.span(),
            format!("{field} {:?} is not known", value.get_ref()),
            format!("use one of {}", words.join(", ")),
        );
        options[0].1
    }

    /// Every duration is bounded, so timer arithmetic on it cannot overflow.
    fn duration(
        &mut self,
        field: &str,
        value: Option<&Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if d > MAX_DURATION => {
                self.err(
                    &value.span(),
                    format!(
                        "`{field}` = {:?} is longer than the longest duration accepted (366 days)",
                        value.get_ref()
                    ),
                    "write a duration of at most \"1y\"; for \"never\", use the setting's own word if it has one (e.g. failback = \"manual\")",
                );
                default
            }
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.err(
                    &value.span(),
                    format!("`{field}` must be greater than zero"),
                    "write e.g. \"10s\"",
                );
                default
            }
            Err(e) => {
                self.err(
                    &value.span(),
                    format!("`{field}` = {:?} is not a duration: {e}", value.get_ref()),
                    "write a duration such as \"500ms\", \"10s\", \"2m\" or \"1h 30m\"",
                );
                default
            }
        }
    }

    fn server(
        &mut self,
        raw: Option<&Spanned<RawServer>>,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> ServerConfig {
        let empty = RawServer::default();
        let raw = raw.map_or(&empty, |s| s.get_ref());
        let mut listen = Vec::new();
        match &raw.listen {
            None => listen.push(DEFAULT_LISTEN.parse().expect("default listen address")),
            Some(list) => {
                for item in list {
                    match item.get_ref().parse::<SocketAddr>() {
                        Ok(a) if listen.contains(&a) => self.err(
                            &item.span(),
                            format!("listen address {a} is given twice"),
                            "list each address once",
                        ),
                        Ok(a) if let Some(b) = listen.iter().find(|b| same_socket(**b, a)) => {
                            self.err(
                                &item.span(),
                                format!(
                                    "listen address {a} overlaps {b}: the same port, and an unspecified address (0.0.0.0 or [::]) takes it on every address, so `serve` could not bind both"
                                ),
                                "list either the unspecified address or the specific ones",
                            )
                        }
                        Ok(a) => listen.push(a),
                        Err(_) => self.err(
                            &item.span(),
                            format!("listen address {:?} is not IP:port", item.get_ref()),
                            "write e.g. \"127.0.0.1:5353\" or \"[::1]:53\"",
                        ),
                    }
                }
            }
        }
        let udp_workers = match &raw.udp_workers {
            Some(n) if *n.get_ref() == 0 || *n.get_ref() > 64 => {
                self.err(
                    &n.span(),
                    "`udp_workers` must be between 1 and 64",
                    "leave it out for one per CPU",
                );
                1
            }
            Some(n) => *n.get_ref(),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        ServerConfig {
            listen,
            state_dir: self.resolve_path(raw.state_dir.as_ref().map_or("state", |s| s.get_ref())),
            udp_workers,
            tcp_idle_timeout: self.bounded_duration(
                "tcp_idle_timeout",
                raw.tcp_idle_timeout.as_ref(),
                Duration::from_secs(10),
                (Duration::from_millis(100), Duration::from_secs(3600)),
            ),
            tcp_max_connections: self
                .tcp_count(
                    "tcp_max_connections",
                    raw.tcp_max_connections.as_ref(),
                    TCP_MAX_CONNECTIONS_LIMIT,
                    "leave it out to derive it from the open-files limit",
                )
                .and_then(|n| usize::try_from(n).ok()),
            tcp_max_per_source: self.tcp_per_source(raw),
            tcp_max_queries_per_connection: self
                .tcp_count(
                    "tcp_max_queries_per_connection",
                    raw.tcp_max_queries_per_connection.as_ref(),
                    1_000_000,
                    "the default is 1000",
                )
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1000),
            tcp_max_connection_lifetime: self.bounded_duration(
                "tcp_max_connection_lifetime",
                raw.tcp_max_connection_lifetime.as_ref(),
                Duration::from_secs(120),
                (Duration::from_secs(1), Duration::from_secs(86_400)),
            ),
            secondary_check_interval: self.bounded_duration(
                "secondary_check_interval",
                raw.secondary_check_interval.as_ref(),
                Duration::from_secs(60),
                (Duration::from_secs(1), Duration::from_secs(3600)),
            ),
            secondary_lag_warn: self.bounded_duration(
                "secondary_lag_warn",
                raw.secondary_lag_warn.as_ref(),
                Duration::from_secs(120),
                (Duration::from_secs(1), Duration::from_secs(86_400)),
            ),
            cookie_secret: raw
                .cookie_secret_file
                .as_ref()
                .and_then(|f| self.cookie_secret(f, read)),
            nsid: self.short_text("nsid", raw.nsid.as_ref()),
            identity: self.short_text("identity", raw.identity.as_ref()),
            version: self.short_text("version", raw.version.as_ref()),
            log_format: self.choice(
                "log_format",
                raw.log_format.as_ref(),
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            ),
            query_source: self.query_source(raw.query_source.as_deref()),
        }
    }

    /// `[server] query_source`: IP addresses, one per family, each a unicast
    /// address a socket can be bound to.
    fn query_source(&mut self, raw: Option<&[Spanned<String>]>) -> QuerySource {
        let mut out = QuerySource::default();
        for item in raw.unwrap_or(&[]) {
            let text = item.get_ref();
            let Ok(ip) = text.parse::<IpAddr>() else {
                self.err(
                    &item.span(),
                    format!("query_source {text:?} is not an IP address"),
                    "write one address per family, without a port: e.g. [\"192.0.2.1\", \"2001:db8::1\"]",
                );
                continue;
            };
            if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
                self.err(
                    &item.span(),
                    format!("query_source {ip} cannot be a source address"),
                    "name one of this host's unicast addresses, or leave the family out to let the kernel choose",
                );
                continue;
            }
            if let IpAddr::V6(a) = ip {
                // A mapped address is given to IPv6 peers only: the IPv4
                // ones would silently go without their source.
                if let Some(v4) = a.to_ipv4_mapped() {
                    self.err(
                        &item.span(),
                        format!("query_source {ip} is an IPv4 address written as IPv6"),
                        format!("write it as {v4}: it is the source for IPv4 peers"),
                    );
                    continue;
                }
                // Binding one needs an interface, which an address cannot name.
                if a.is_unicast_link_local() {
                    self.err(
                        &item.span(),
                        format!("query_source {ip} is link-local: it cannot be bound without naming an interface"),
                        "name a global or unique-local IPv6 address of this host",
                    );
                    continue;
                }
            }
            let taken = match ip {
                IpAddr::V4(a) => out.v4.replace(a).is_some(),
                IpAddr::V6(a) => out.v6.replace(a).is_some(),
            };
            if taken {
                self.err(
                    &item.span(),
                    format!(
                        "query_source has a second {} address, {ip}",
                        if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                    ),
                    "give at most one IPv4 and one IPv6 address",
                );
            }
        }
        out
    }

    /// `[server] cookie_secret_file`: 32 hex digits (16 bytes).
    fn cookie_secret(
        &mut self,
        file: &Spanned<String>,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Option<CookieSecret> {
        let hint = "write 16 random bytes as 32 hex digits into it, e.g. `openssl rand -hex 16 > cookie.secret`";
        let (path, text) = self.read_named(file, read, "cookie_secret_file", hint)?;
        let bytes: Option<[u8; 16]> = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok());
        if bytes.is_none() {
            self.err(
                &file.span(),
                format!(
                    "cookie_secret_file {} does not hold 32 hex digits (16 bytes)",
                    path.display()
                ),
                hint,
            );
        }
        bytes.map(CookieSecret::new)
    }

    /// An optional text of 1 to 255 bytes (one TXT character-string).
    fn short_text(&mut self, field: &str, value: Option<&Spanned<String>>) -> Option<String> {
        let value = value?;
        let text = value.get_ref();
        if text.is_empty() || text.len() > 255 {
            self.err(
                &value.span(),
                format!(
                    "`{field}` must be 1 to 255 bytes long (it is {})",
                    text.len()
                ),
                format!("leave `{field}` out to answer nothing, or shorten it"),
            );
            return None;
        }
        Some(text.clone())
    }

    /// An integer setting within `range`, or `default` when left out.
    fn int_in(
        &mut self,
        field: &str,
        value: Option<&Spanned<i64>>,
        range: RangeInclusive<i64>,
        default: u32,
        hint: &str,
    ) -> u32 {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        match u32::try_from(n) {
            Ok(v) if range.contains(&n) => v,
            _ => {
                self.err(
                    &value.span(),
                    format!(
                        "`{field}` = {n} is out of range ({} to {})",
                        range.start(),
                        range.end()
                    ),
                    hint,
                );
                default
            }
        }
    }

    /// `[rrl]`: response rate limiting.
    fn rrl(&mut self, raw: Option<&Spanned<RawRrl>>) -> RrlConfig {
        let d = RrlConfig::default();
        let Some(raw) = raw.map(|r| r.get_ref()) else {
            return d;
        };
        let mut exempt = Vec::new();
        for net in raw.exempt.iter().flatten() {
            let text = net.get_ref();
            match text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(n) => exempt.push(n.trunc()),
                Err(_) => self.err(
                    &net.span(),
                    format!("{text:?} is neither an IP address nor a network"),
                    "write e.g. \"192.0.2.10\", \"10.0.0.0/8\" or \"2001:db8::/32\"",
                ),
            }
        }
        RrlConfig {
            responses_per_second: self.int_in(
                "responses_per_second",
                raw.responses_per_second.as_ref(),
                0..=1_000_000,
                d.responses_per_second,
                "0 turns rate limiting off; Knot and BIND use tens to hundreds",
            ),
            slip: self.int_in(
                "slip",
                raw.slip.as_ref(),
                0..=100,
                d.slip,
                "1 sends every limited answer truncated, 2 every second one, 0 none",
            ),
            ipv4_prefix: self.int_in(
                "ipv4_prefix",
                raw.ipv4_prefix.as_ref(),
                1..=32,
                u32::from(d.ipv4_prefix),
                "the default, 24, counts a /24 as one source",
            ) as u8,
            ipv6_prefix: self.int_in(
                "ipv6_prefix",
                raw.ipv6_prefix.as_ref(),
                1..=128,
                u32::from(d.ipv6_prefix),
                "the default, 56, counts a /56 as one source",
            ) as u8,
            exempt,
        }
    }

    /// A duration within `[min, max]`; outside, reported with the bounds.
    fn bounded_duration(
        &mut self,
        field: &str,
        value: Option<&Spanned<String>>,
        default: Duration,
        (min, max): (Duration, Duration),
    ) -> Duration {
        let d = self.duration(field, value, default);
        match value {
            Some(v) if d < min || d > max => {
                self.err(
                    &v.span(),
                    format!(
                        "`{field}` must be between {} and {}, not {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max),
                        v.get_ref()
                    ),
                    format!("the default is {}", humantime::format_duration(default)),
                );
                default
            }
            _ => d,
        }
    }

    /// A count between 1 and `max`, or None when absent or reported.
    fn tcp_count(
        &mut self,
        field: &str,
        value: Option<&Spanned<i64>>,
        max: i64,
        hint: &str,
    ) -> Option<i64> {
        let v = value?;
        if (1..=max).contains(v.get_ref()) {
            return Some(*v.get_ref());
        }
        self.err(
            &v.span(),
            format!("`{field}` must be between 1 and {max}, not {}", v.get_ref()),
            hint,
        );
        None
    }

    /// `tcp_max_per_source`: no more than `tcp_max_connections` when both
    /// are given.
    fn tcp_per_source(&mut self, raw: &RawServer) -> usize {
        let Some(v) = raw.tcp_max_per_source.as_ref() else {
            return DEFAULT_TCP_MAX_PER_SOURCE;
        };
        let Some(n) = self.tcp_count(
            "tcp_max_per_source",
            Some(v),
            TCP_MAX_CONNECTIONS_LIMIT,
            "the default is 16",
        ) else {
            return DEFAULT_TCP_MAX_PER_SOURCE;
        };
        if let Some(total) = raw.tcp_max_connections.as_ref()
            && (1..n).contains(total.get_ref())
        {
            self.err(
                &v.span(),
                format!(
                    "`tcp_max_per_source` ({n}) is larger than `tcp_max_connections` ({})",
                    total.get_ref()
                ),
                "lower tcp_max_per_source, or raise tcp_max_connections",
            );
        }
        usize::try_from(n).unwrap_or(DEFAULT_TCP_MAX_PER_SOURCE)
    }

    fn admin(
        &mut self,
        raw: Option<&Spanned<raw::RawAdmin>>,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
        dns_listen: &[SocketAddr],
    ) -> (SocketAddr, Vec<AdminToken>) {
        let default = DEFAULT_ADMIN_LISTEN.parse().expect("default admin address");
        let raw = raw.map(|a| a.get_ref());
        let tokens = match raw.and_then(|a| a.token_file.as_ref()) {
            None => Vec::new(),
            Some(f) => self.tokens(f, read),
        };
        let Some(listen) = raw.and_then(|a| a.listen.as_ref()) else {
            return (default, tokens);
        };
        let addr = match listen.get_ref().parse::<SocketAddr>() {
            Ok(a) if let Some(b) = dns_listen.iter().find(|b| **b == a || same_socket(**b, a)) => {
                self.err(
                    &listen.span(),
                    format!(
                        "admin listen address {a} takes the TCP port of the DNS listen address {b}, so `serve` could not bind both"
                    ),
                    "give the admin API a port of its own, e.g. \"127.0.0.1:8053\"",
                );
                default
            }
            Ok(a) if a.ip().is_loopback() || !tokens.is_empty() => a,
            Ok(a) => {
                self.err(
                    &listen.span(),
                    format!("admin API on {a} would be reachable from other hosts without a token"),
                    "set token_file, or listen on a loopback address (127.0.0.1 or [::1])",
                );
                default
            }
            Err(_) => {
                self.err(
                    &listen.span(),
                    format!("admin listen address {:?} is not IP:port", listen.get_ref()),
                    "write e.g. \"127.0.0.1:8053\"",
                );
                default
            }
        };
        (addr, tokens)
    }

    fn webhooks(
        &mut self,
        raw: &[Spanned<raw::RawWebhook>],
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Vec<WebhookSpec> {
        let mut out = Vec::new();
        for w in raw {
            let w = w.get_ref();
            let url = match reqwest::Url::parse(w.url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                _ => {
                    self.err(
                        &w.url.span(),
                        format!("webhook url {:?} is not an http(s) URL", w.url.get_ref()),
                        "write e.g. \"https://hooks.example.net/txtfailover\"",
                    );
                    continue;
                }
            };
            let secret = match &w.secret_file {
                None => None,
                Some(f) => match self.read_named(
                    f,
                    read,
                    "secret_file",
                    "create it with the shared secret, readable by txtfailover only",
                ) {
                    Some((_, s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    Some((path, _)) => {
                        self.err(
                            &f.span(),
                            format!("secret_file {} is empty", path.display()),
                            "put the shared secret on its first line",
                        );
                        None
                    }
                    None => None,
                },
            };
            out.push(WebhookSpec { url, secret });
        }
        out
    }

    /// Reads `label token` lines; `#` starts a comment.
    fn tokens(
        &mut self,
        file: &Spanned<String>,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Vec<AdminToken> {
        let Some((path, text)) = self.read_named(
            file,
            read,
            "token_file",
            "create it with one `label token` line per operator",
        ) else {
            return Vec::new();
        };
        // Each token with the line it is on.
        let mut tokens: Vec<(AdminToken, usize)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let here = n.saturating_add(1);
            if line.is_empty() {
                continue;
            }
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                [label, secret] if secret.len() >= 16 => {
                    if let Some((_, first)) = tokens.iter().find(|(t, _)| t.label == *label) {
                        self.problems.push(
                            Problem::new(&path, here, 1, format!("token label {label:?} is given twice (first on line {first})"))
                                .hint("give every operator one line with a label of their own: the label names them in the logs"),
                        );
                    } else if let Some((t, first)) = tokens.iter().find(|(t, _)| t.secret == *secret) {
                        self.problems.push(
                            Problem::new(&path, here, 1, format!("this token is already on line {first} (label {:?})", t.label))
                                .hint("generate a token of its own for every operator (`txtfailover token new LABEL`)"),
                        );
                    } else {
                        tokens.push((AdminToken { label: label.to_string(), secret: secret.to_string() }, here));
                    }
                }
                _ => self.problems.push(
                    Problem::new(&path, here, 1, "token line is not `label token` with a token of 16 characters or more")
                        .hint("write e.g. `alice 3f9c0b7e51d24a8e9d6b` (`txtfailover token new alice` prints such a line)"),
                ),
            }
        }
        if tokens.is_empty() && self.problems.is_empty() {
            self.err(
                &file.span(),
                format!("token_file {} holds no tokens", path.display()),
                "add one `label token` line per operator",
            );
        }
        tokens.into_iter().map(|(t, _)| t).collect()
    }

    fn zones(
        &mut self,
        raw: &RawConfig,
        keys: &[TsigKey],
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> (Vec<StaticZone>, Vec<SecondarySpec>) {
        let mut zones: Vec<StaticZone> = Vec::new();
        let mut secondaries: Vec<SecondarySpec> = Vec::new();
        let mut origins: Vec<Name> = Vec::new();
        if raw.zones.is_empty() {
            self.problems.push(
                Problem::new(self.map.file, 0, 0, "no [[zone]] is configured")
                    .hint("add [[zone]] with `origin` and `file` for each zone to serve"),
            );
        }
        for z in &raw.zones {
            let z = z.get_ref();
            let origin = match Name::from_ascii(z.origin.get_ref()) {
                Ok(mut n) if !z.origin.get_ref().is_empty() => {
                    n.set_fqdn(true);
                    n.to_lowercase()
                }
                _ => {
                    self.err(
                        &z.origin.span(),
                        format!("zone origin {:?} is not a domain name", z.origin.get_ref()),
                        "write e.g. \"example.com\"",
                    );
                    continue;
                }
            };
            if origins.contains(&origin) {
                self.err(
                    &z.origin.span(),
                    format!("zone {origin} is configured twice"),
                    "keep one [[zone]] per origin",
                );
                continue;
            }
            origins.push(origin.clone());
            let primaries = self.remotes(z.primaries.as_deref().unwrap_or(&[]), keys, "primaries");
            let policy = self.zone_policy(z, keys, &primaries);
            let file = match (&z.file, &z.primaries) {
                (Some(file), None) => file,
                (None, Some(p)) if !p.is_empty() => {
                    secondaries.push(SecondarySpec {
                        origin,
                        primaries,
                        policy,
                    });
                    continue;
                }
                (Some(_), Some(_)) => {
                    self.err(
                        &z.origin.span(),
                        format!("zone {origin} has both `file` and `primaries`"),
                        "a zone is served from its file (primary) or transferred from `primaries` (secondary), not both",
                    );
                    continue;
                }
                _ => {
                    self.err(
                        &z.origin.span(),
                        format!("zone {origin} has neither `file` nor `primaries`"),
                        "add `file` to serve it from a zone file, or `primaries` to transfer it from another server",
                    );
                    continue;
                }
            };
            let Some((file, text)) = self.read_named(
                file,
                read,
                "zone file",
                "check the path; relative paths start at the config file's directory",
            ) else {
                continue;
            };
            match parse_zone_with(&text, &file, &origin, read) {
                Ok(zone) => zones.push(StaticZone { policy, ..zone }),
                Err(problems) => self.problems.extend(problems),
            }
        }
        (zones, secondaries)
    }

    fn checks(&mut self, raw: &[Spanned<RawCheck>]) -> Vec<(CheckSpec, Range<usize>)> {
        let mut out: Vec<(CheckSpec, Range<usize>)> = Vec::new();
        // Composite members are resolved once every name is known.
        let mut pending: Vec<(usize, &RawCheck)> = Vec::new();
        for c in raw {
            let span = c.span();
            let c = c.get_ref();
            let name = c.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                self.err(
                    &c.name.span(),
                    format!("check name {name:?} is not valid"),
                    "use letters, digits, '-', '_' and '.'",
                );
            }
            if out.iter().any(|(o, _)| o.name == name) {
                self.err(
                    &c.name.span(),
                    format!("check {name:?} is defined twice"),
                    "give every [[check]] its own name",
                );
                continue;
            }
            let kind = c.kind.get_ref().as_str();
            let defaults = if kind == "cloudwatch_alarm" {
                ALARM_TIMING
            } else {
                Timing::default()
            };
            let mut timing = self.timing(c, defaults);
            if kind == "external" {
                // Reports come from systems that debounce already: one report moves it.
                timing.fall = c.fall.as_ref().map_or(1, |_| timing.fall);
                timing.rise = c.rise.as_ref().map_or(1, |_| timing.rise);
            }
            if matches!(kind, "external" | "all" | "any" | "at_least") {
                // Nothing is probed, so a round is one result.
                timing.attempts = 1;
            }
            let canary = c.canary.as_ref().is_some_and(|v| *v.get_ref());
            if let Some(v) = c
                .canary
                .as_ref()
                .filter(|v| *v.get_ref() && matches!(kind, "all" | "any" | "at_least"))
            {
                self.err(
                    &v.span(),
                    format!(
                        "{kind} check {:?} cannot be a canary: a composite is derived from its members, not probed",
                        c.name.get_ref()
                    ),
                    "set canary = true on a probed check (http, https, tcp, command or external) instead",
                );
            }
            let probe = match c.kind.get_ref().as_str() {
                kind @ ("http" | "https") => self.http(c, kind).map(ProbeSpec::Http),
                "tcp" => self.tcp(c),
                "command" => self.command(c),
                "external" => self.external(c),
                "cloudwatch_alarm" => self.cloudwatch_alarm(c),
                kind @ ("all" | "any" | "at_least") => {
                    pending.push((out.len(), c));
                    self.composite(c, kind)
                }
                other => {
                    self.err(
                        &c.kind.span(),
                        format!("check kind {other:?} is not known"),
                        "use \"http\", \"https\", \"tcp\", \"command\", \"external\", \"cloudwatch_alarm\", \"all\", \"any\" or \"at_least\"",
                    );
                    None
                }
            };
            if let Some(probe) = probe {
                out.push((
                    CheckSpec {
                        name,
                        probe,
                        timing,
                        canary,
                    },
                    span,
                ));
            } else if pending.last().is_some_and(|(i, _)| *i == out.len()) {
                pending.pop();
            }
        }
        self.resolve_members(&mut out, &pending);
        out
    }

    fn external(&mut self, c: &RawCheck) -> Option<ProbeSpec> {
        let mut foreign = Self::http_fields(c);
        foreign.retain(|(field, _)| !["stale_after", "on_stale"].contains(field));
        foreign.extend([
            ("address", c.address.as_ref().map(|s| s.span())),
            ("command", c.command.as_ref().map(|s| s.span())),
            ("interval", c.interval.as_ref().map(|s| s.span())),
            ("timeout", c.timeout.as_ref().map(|s| s.span())),
            ("attempts", c.attempts.as_ref().map(|s| s.span())),
        ]);
        self.foreign("external", &foreign);
        let stale_after = self.duration(
            "stale_after",
            c.stale_after.as_ref(),
            Duration::from_secs(120),
        );
        let on_stale = self.choice(
            "on_stale",
            c.on_stale.as_ref(),
            &[
                ("unhealthy", OnStale::Unhealthy),
                ("healthy", OnStale::Healthy),
                ("last", OnStale::Last),
            ],
        );
        Some(ProbeSpec::External {
            stale_after,
            on_stale,
        })
    }

    fn composite(&mut self, c: &RawCheck, kind: &str) -> Option<ProbeSpec> {
        let mut foreign = Self::http_fields(c);
        foreign.extend([
            ("address", c.address.as_ref().map(|s| s.span())),
            ("command", c.command.as_ref().map(|s| s.span())),
            ("interval", c.interval.as_ref().map(|s| s.span())),
            ("timeout", c.timeout.as_ref().map(|s| s.span())),
            ("fall", c.fall.as_ref().map(|s| s.span())),
            ("rise", c.rise.as_ref().map(|s| s.span())),
            ("attempts", c.attempts.as_ref().map(|s| s.span())),
        ]);
        if kind != "at_least" {
            foreign.push(("at_least", c.at_least.as_ref().map(|s| s.span())));
        }
        self.foreign(kind, &foreign);
        let Some(members) = &c.checks else {
            self.err(
                &c.name.span(),
                format!("{kind} check {:?} has no `checks`", c.name.get_ref()),
                "list the checks it combines: checks = [\"a\", \"b\"]",
            );
            return None;
        };
        let n = members.get_ref().len();
        if n == 0 {
            self.err(
                &members.span(),
                "`checks` is empty",
                "list at least one check",
            );
            return None;
        }
        let rule = match (kind, &c.at_least) {
            ("all", _) => Rule::All,
            ("any", _) => Rule::Any,
            (_, Some(k)) if (1..=n as i64).contains(k.get_ref()) => {
                Rule::AtLeast(*k.get_ref() as usize)
            }
            (_, Some(k)) => {
                self.err(
                    &k.span(),
                    format!("at_least = {} but the check combines {n}", k.get_ref()),
                    format!("use a number from 1 to {n}"),
                );
                return None;
            }
            (_, None) => {
                self.err(
                    &c.name.span(),
                    "at_least check has no `at_least`",
                    "add at_least = N: how many members must be healthy",
                );
                return None;
            }
        };
        Some(ProbeSpec::Composite {
            rule,
            members: Vec::new(),
        })
    }

    /// Fills composite members with indices, then rejects cycles.
    fn resolve_members(
        &mut self,
        out: &mut [(CheckSpec, Range<usize>)],
        pending: &[(usize, &RawCheck)],
    ) {
        for &(i, raw) in pending {
            let names = raw.checks.as_ref().expect("validated");
            let mut idx = Vec::new();
            for n in names.get_ref() {
                match out.iter().position(|(c, _)| &c.name == n.get_ref()) {
                    Some(j) => idx.push(j),
                    None => self.err(
                        &n.span(),
                        format!("check {:?} is not defined", n.get_ref()),
                        "define it with [[check]], or remove it from `checks`",
                    ),
                }
            }
            if let ProbeSpec::Composite { members, .. } = &mut out[i].0.probe {
                *members = idx;
            }
        }
        for &(i, _) in pending {
            let mut path = vec![i];
            if path_back(out, i, i, &mut path) {
                let names: Vec<&str> = path.iter().map(|&j| out[j].0.name.as_str()).collect();
                let span = out[i].1.clone();
                self.err(
                    &span,
                    format!(
                        "check {:?} depends on itself: {}",
                        out[i].0.name,
                        names.join(" -> ")
                    ),
                    "break the cycle: a composite may only combine checks that do not include it",
                );
                return;
            }
        }
    }

    /// The check's timing; `d` holds its kind's defaults.
    fn timing(&mut self, c: &RawCheck, d: Timing) -> Timing {
        let attempts = self.int_in(
            "attempts",
            c.attempts.as_ref(),
            1..=10,
            d.attempts,
            &format!(
                "attempts per probe round, back to back; the default is {}",
                d.attempts
            ),
        );
        let interval = self.duration("interval", c.interval.as_ref(), d.interval);
        // Unset, the timeout shrinks so that a whole round fits the interval.
        let timeout = self.duration(
            "timeout",
            c.timeout.as_ref(),
            d.timeout.min(interval / 2).min(interval / attempts),
        );
        if let Some(v) = c
            .interval
            .as_ref()
            .filter(|_| interval < MIN_PROBE_INTERVAL)
        {
            self.err(
                &v.span(),
                format!(
                    "check {:?}: interval ({}) is shorter than {}: probes would run back to back against the target",
                    c.name.get_ref(),
                    humantime::format_duration(interval),
                    humantime::format_duration(MIN_PROBE_INTERVAL)
                ),
                "write e.g. \"10s\" (Route 53 probes every 10 or 30 s)",
            );
        }
        if let Some(v) = c.timeout.as_ref().filter(|_| timeout < MIN_PROBE_TIMEOUT) {
            self.err(
                &v.span(),
                format!(
                    "check {:?}: timeout ({}) is shorter than {}: no probe beyond this host could answer in time",
                    c.name.get_ref(),
                    humantime::format_duration(timeout),
                    humantime::format_duration(MIN_PROBE_TIMEOUT)
                ),
                "write e.g. \"4s\"",
            );
        }
        if timeout >= interval {
            let span = c
                .timeout
                .as_ref()
                .or(c.interval.as_ref())
                .map_or(c.name.span(), |s| s.span());
            self.err(
                &span,
                format!(
                    "check {:?}: timeout ({}) must be shorter than interval ({})",
                    c.name.get_ref(),
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
                "lower `timeout` or raise `interval` so probes never overlap",
            );
        } else if timeout.saturating_mul(attempts) > interval {
            let span = c
                .attempts
                .as_ref()
                .map(|s| s.span())
                .or(c.timeout.as_ref().map(|s| s.span()))
                .or(c.interval.as_ref().map(|s| s.span()))
                .unwrap_or(c.name.span());
            self.err(
                &span,
                format!(
                    "check {:?}: a round of {attempts} attempts can last {attempts} × timeout ({}), longer than the interval ({})",
                    c.name.get_ref(),
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
                "lower `timeout` or `attempts`, or raise `interval`, so a round fits in the interval",
            );
        }
        let mut threshold = |field: &str, v: &Option<Spanned<i64>>, default: u32| match v {
            None => default,
            Some(v) if (1..=100).contains(v.get_ref()) => *v.get_ref() as u32,
            Some(v) => {
                self.err(
                    &v.span(),
                    format!("`{field}` must be between 1 and 100, not {}", v.get_ref()),
                    format!("{field} counts consecutive probe results; the default is {default}"),
                );
                default
            }
        };
        let fall = threshold("fall", &c.fall, d.fall);
        let rise = threshold("rise", &c.rise, d.rise);
        Timing {
            interval,
            timeout,
            fall,
            rise,
            attempts,
        }
    }

    /// Reports fields that belong to another kind of check.
    fn foreign(&mut self, kind: &str, fields: &[(&str, Option<Range<usize>>)]) {
        for (field, span) in fields {
            if let Some(span) = span {
                self.err(
                    span,
                    format!("`{field}` does not apply to {kind} checks"),
                    "remove it, or change `kind`",
                );
            }
        }
    }

    fn http(&mut self, c: &RawCheck, kind: &str) -> Option<HttpSpec> {
        self.foreign(
            kind,
            &[
                ("address", c.address.as_ref().map(|s| s.span())),
                ("command", c.command.as_ref().map(|s| s.span())),
                ("stale_after", c.stale_after.as_ref().map(|s| s.span())),
                ("on_stale", c.on_stale.as_ref().map(|s| s.span())),
            ],
        );
        self.foreign(kind, &Self::alarm_fields(c));
        let Some(url_raw) = &c.url else {
            self.err(
                &c.name.span(),
                format!("{kind} check {:?} has no `url`", c.name.get_ref()),
                "add url = \"https://host/path\"",
            );
            return None;
        };
        let url = match reqwest::Url::parse(url_raw.get_ref()) {
            Ok(u) if u.scheme() == kind && u.host().is_some() => u,
            Ok(u) => {
                self.err(
                    &url_raw.span(),
                    format!("url scheme {:?} does not match kind {kind:?}", u.scheme()),
                    format!("write a {kind}:// URL or change `kind`"),
                );
                return None;
            }
            Err(e) => {
                self.err(
                    &url_raw.span(),
                    format!("url {:?} is not valid: {e}", url_raw.get_ref()),
                    "write e.g. \"https://ws-broker-service.us-west-2.amazonaws.com/ping\"",
                );
                return None;
            }
        };
        let method = match &c.method {
            None => reqwest::Method::GET,
            Some(m) => {
                match reqwest::Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
                    Ok(m) => m,
                    Err(_) => {
                        self.err(
                            &m.span(),
                            format!("method {:?} is not an HTTP method", m.get_ref()),
                            "use GET, HEAD or POST",
                        );
                        reqwest::Method::GET
                    }
                }
            }
        };
        let mut headers = Vec::new();
        if let Some(h) = &c.headers {
            for (k, val) in h.get_ref() {
                match (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(val),
                ) {
                    (Ok(k), Ok(val)) => headers.push((k, val)),
                    _ => self.err(
                        &h.span(),
                        format!("header {k:?}: {val:?} is not a valid HTTP header"),
                        "use token names and visible ASCII values",
                    ),
                }
            }
        }
        let resolve = c
            .resolve
            .as_ref()
            .and_then(|r| match r.get_ref().parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.err(
                        &r.span(),
                        format!("resolve {:?} is not IP:port", r.get_ref()),
                        "write the address to connect to, e.g. \"192.0.2.10:443\"",
                    );
                    None
                }
            });
        let mut expect_status = Vec::new();
        match &c.expect_status {
            None => expect_status.push(200..=399),
            Some(list) => {
                for s in list.get_ref() {
                    match parse_status_range(s.get_ref()) {
                        Some(r) => expect_status.push(r),
                        None => self.err(
                            &s.span(),
                            format!("status {:?} is not a status code or range", s.get_ref()),
                            "write e.g. \"200\" or \"200-399\"",
                        ),
                    }
                }
                if list.get_ref().is_empty() {
                    self.err(
                        &list.span(),
                        "`expect_status` is empty",
                        "leave it out for 200-399",
                    );
                }
            }
        }
        let expect_body = c.expect_body.as_ref().map(|b| b.get_ref().clone());
        if let Some(b) = &c.expect_body
            && (b.get_ref().is_empty() || b.get_ref().len() > BODY_SCAN_LIMIT)
        {
            self.err(
                &b.span(),
                format!("`expect_body` must be 1 to {BODY_SCAN_LIMIT} bytes"),
                "use a short substring such as \"healthy\"",
            );
        }
        if method == reqwest::Method::HEAD
            && let Some(b) = &c.expect_body
        {
            self.warnings.push(
                self.map
                    .at(&b.span(), format!("check {:?}: a HEAD response has no body, so `expect_body` never matches and the check never passes", c.name.get_ref()))
                    .hint("use method = \"GET\", or remove `expect_body`"),
            );
        }
        if kind == "http"
            && let Some(t) = &c.tls_verify
        {
            self.err(
                &t.span(),
                "`tls_verify` applies only to https checks",
                "remove it",
            );
        }
        Some(HttpSpec {
            url,
            method,
            headers,
            resolve,
            tls_verify: c.tls_verify.as_ref().is_none_or(|t| *t.get_ref()),
            expect_status,
            expect_body,
        })
    }

    /// The HTTP-only fields (and the external and alarm ones), for
    /// reporting them on other kinds.
    fn http_fields(c: &RawCheck) -> Vec<(&'static str, Option<Range<usize>>)> {
        let mut fields = Self::alarm_fields(c);
        fields.extend([
            ("stale_after", c.stale_after.as_ref().map(|s| s.span())),
            ("on_stale", c.on_stale.as_ref().map(|s| s.span())),
            ("url", c.url.as_ref().map(|s| s.span())),
            ("method", c.method.as_ref().map(|s| s.span())),
            ("headers", c.headers.as_ref().map(|s| s.span())),
            ("resolve", c.resolve.as_ref().map(|s| s.span())),
            ("tls_verify", c.tls_verify.as_ref().map(|s| s.span())),
            ("expect_status", c.expect_status.as_ref().map(|s| s.span())),
            ("expect_body", c.expect_body.as_ref().map(|s| s.span())),
        ]);
        fields
    }

    fn command(&mut self, c: &RawCheck) -> Option<ProbeSpec> {
        let mut foreign = Self::http_fields(c);
        foreign.push(("address", c.address.as_ref().map(|s| s.span())));
        self.foreign("command", &foreign);
        let Some(cmd) = &c.command else {
            self.err(
                &c.name.span(),
                format!("command check {:?} has no `command`", c.name.get_ref()),
                "add command = [\"/path/to/program\", \"arg\"] (run directly, not through a shell)",
            );
            return None;
        };
        if cmd.get_ref().first().is_none_or(|p| p.is_empty()) {
            self.err(
                &cmd.span(),
                "`command` must name a program",
                "write the program first, then its arguments: [\"/usr/local/bin/check-region\", \"us-west-2\"]",
            );
            return None;
        }
        if let Some(program) = cmd.get_ref().first()
            && !program_exists(program)
        {
            self.warnings.push(
                self.map
                    .at(&cmd.span(), format!("check {:?}: program {program:?} is not found{}; the check will fail until it is installed", c.name.get_ref(), if program.contains('/') { "" } else { " on PATH" }))
                    .hint("install it, or give its absolute path"),
            );
        }
        Some(ProbeSpec::Command {
            argv: cmd.get_ref().clone(),
        })
    }

    fn tcp(&mut self, c: &RawCheck) -> Option<ProbeSpec> {
        let mut foreign = Self::http_fields(c);
        foreign.push(("command", c.command.as_ref().map(|s| s.span())));
        self.foreign("tcp", &foreign);
        let Some(addr) = &c.address else {
            self.err(
                &c.name.span(),
                format!("tcp check {:?} has no `address`", c.name.get_ref()),
                "add address = \"host:port\"",
            );
            return None;
        };
        let ok = addr.get_ref().rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            self.err(
                &addr.span(),
                format!("address {:?} is not host:port", addr.get_ref()),
                "write e.g. \"drp-iad.amazonworkspaces.com:4172\" or \"[::1]:4172\"",
            );
            return None;
        }
        Some(ProbeSpec::Tcp {
            address: addr.get_ref().clone(),
        })
    }

    fn aliases(
        &mut self,
        raw: &[Spanned<RawAlias>],
        zones: &[StaticZone],
        secondaries: &[SecondarySpec],
        checks: &[(CheckSpec, Range<usize>)],
    ) -> Vec<AliasSpec> {
        let mut out: Vec<AliasSpec> = Vec::new();
        let mut used_checks = HashSet::new();
        for a in raw {
            let a = a.get_ref();
            let text = a.name.get_ref();
            let span = a.name.span();
            let name = match Name::from_ascii(text) {
                Ok(mut n) if is_connection_string(text) => {
                    n.set_fqdn(true);
                    n.to_lowercase()
                }
                _ => {
                    self.err(&span, format!("alias name {text:?} is not a valid connection string"), "use 1-255 letters, digits, '-' and '.', forming a DNS name such as \"desktop.example.com\"");
                    continue;
                }
            };
            if out.iter().any(|o| o.name == name) {
                self.err(
                    &span,
                    format!("alias {name} is defined twice"),
                    "keep one [[alias]] per connection string",
                );
                continue;
            }
            let zone = zones
                .iter()
                .enumerate()
                .filter(|(_, z)| z.origin.zone_of(&name))
                .max_by_key(|(_, z)| z.origin.num_labels())
                .map(|(i, _)| i);
            let depth = zone.map_or(0, |i| zones[i].origin.num_labels());
            if let Some(s) = secondaries
                .iter()
                .find(|s| s.origin.zone_of(&name) && s.origin.num_labels() > depth)
            {
                self.err(
                    &span,
                    format!("alias {name} is inside {}, a secondary zone here", s.origin),
                    "define the alias on the zone's primary; a secondary serves what it transfers",
                );
                continue;
            }
            let Some(zone) = zone else {
                if !zones.is_empty() {
                    let served: Vec<String> = zones.iter().map(|z| z.origin.to_string()).collect();
                    self.err(
                        &span,
                        format!("alias {name} is not inside any served zone"),
                        format!(
                            "add a [[zone]] that contains it; served zones: {}",
                            served.join(", ")
                        ),
                    );
                }
                continue;
            };
            let z = &zones[zone];
            if let Some(cut) = z.delegations().find(|d| d.zone_of(&name)) {
                self.err(
                    &span,
                    format!(
                        "alias {name} is at or below the delegation {cut} in zone {}",
                        z.origin
                    ),
                    "move the alias, or remove the NS records that delegate it away",
                );
                continue;
            }
            for (rtype, what) in [
                (RecordType::TXT, "a static TXT"),
                (RecordType::CNAME, "a CNAME"),
            ] {
                if z.has_record(&name, rtype) {
                    self.err(
                        &span,
                        format!(
                            "alias {name} collides with {what} record in the zone file of {}",
                            z.origin
                        ),
                        "remove that record from the zone file: the alias answers TXT at this name",
                    );
                }
            }
            let ttl = match &a.ttl {
                None => DEFAULT_TTL,
                Some(t) if (0..=i64::from(i32::MAX)).contains(t.get_ref()) => *t.get_ref() as u32,
                Some(t) => {
                    self.err(
                        &t.span(),
                        format!("ttl {} is out of range", t.get_ref()),
                        "use seconds from 0 to 2147483647; 60 or less is advised",
                    );
                    DEFAULT_TTL
                }
            };
            if ttl > TTL_WARN_ABOVE {
                let t = a.ttl.as_ref().expect("ttl above default was written");
                self.warnings.push(self.map.at(&t.span(), format!("alias {name}: ttl {ttl} is above {TTL_WARN_ABOVE} s: resolvers keep the old Region that long after a failover")).hint("use 60 or less, as Route 53 advises for health-checked records"));
            }
            let all_down = self.choice(
                "all_down",
                a.all_down.as_ref(),
                &[
                    ("primary", AllDown::Primary),
                    ("last", AllDown::Last),
                    ("nodata", AllDown::NoData),
                    ("servfail", AllDown::ServFail),
                ],
            );
            let replicated = !zones[zone].policy.allow_transfer.is_empty()
                || !zones[zone].policy.notify.is_empty();
            if all_down == AllDown::ServFail
                && replicated
                && let Some(w) = &a.all_down
            {
                self.warnings.push(self.map.at(&w.span(), format!("alias {name}: all_down = \"servfail\" cannot travel by zone transfer: secondaries will answer NXDOMAIN while every Region is down")).hint("use \"primary\", \"last\" or \"nodata\" for zones served through secondaries"));
            }
            let failback = self.choice(
                "failback",
                a.failback.as_ref(),
                &[("auto", Failback::Auto), ("manual", Failback::Manual)],
            );
            let failback_after = match &a.failback_after {
                Some(s) if s.get_ref().trim() == "0s" || s.get_ref().trim() == "0" => {
                    Duration::ZERO
                }
                other => self.duration(
                    "failback_after",
                    other.as_ref(),
                    crate::decide::DEFAULT_FAILBACK_AFTER,
                ),
            };
            // The wait doubles for a flapping target up to this bound.
            let failback_after_max = self.duration(
                "failback_after_max",
                a.failback_after_max.as_ref(),
                failback_after.saturating_mul(16).min(MAX_DURATION),
            );
            if let Some(m) = a
                .failback_after_max
                .as_ref()
                .filter(|_| failback_after_max < failback_after)
            {
                self.err(
                    &m.span(),
                    format!(
                        "alias {name}: failback_after_max ({}) is shorter than failback_after ({})",
                        humantime::format_duration(failback_after_max),
                        humantime::format_duration(failback_after)
                    ),
                    "raise failback_after_max to at least failback_after, or leave it out (16 × failback_after)",
                );
            }
            let failback_reset = self.duration(
                "failback_reset",
                a.failback_reset.as_ref(),
                Duration::from_secs(3600),
            );
            let mut targets: Vec<TargetSpec> = Vec::new();
            if a.targets.get_ref().is_empty() {
                self.err(
                    &a.targets.span(),
                    format!("alias {name} has no targets"),
                    "list at least the primary Region's target",
                );
            }
            for t in a.targets.get_ref() {
                let t = t.get_ref();
                let id = t.connection_id.get_ref();
                if !is_connection_id(id) {
                    self.err(&t.connection_id.span(), format!("connection_id {id:?} is not a WorkSpaces connection identifier"), "copy the connection identifier of the Region's connection alias association: 1-20 letters and digits");
                }
                let region = t.region.get_ref();
                if region.is_empty() {
                    self.err(
                        &t.region.span(),
                        "region is empty",
                        "name the Region, e.g. \"us-east-1\"",
                    );
                }
                if !region.is_empty() && !WORKSPACES_REGIONS.contains(&region.as_str()) {
                    self.warnings.push(self.map.at(&t.region.span(), format!("alias {name}: region {region:?} is not a Region where WorkSpaces runs")).hint(format!("check the spelling; known Regions: {}", WORKSPACES_REGIONS.join(", "))));
                }
                if targets.iter().any(|o| &o.region == region) {
                    self.err(
                        &t.region.span(),
                        format!("region {region:?} appears twice in alias {name}"),
                        "list each Region once, in priority order",
                    );
                }
                let mut idx = Vec::new();
                for c in &t.checks {
                    match checks
                        .iter()
                        .position(|(spec, _)| &spec.name == c.get_ref())
                    {
                        Some(i) => {
                            used_checks.insert(i);
                            idx.push(i);
                        }
                        None => {
                            let known: Vec<&str> =
                                checks.iter().map(|(s, _)| s.name.as_str()).collect();
                            self.err(
                                &c.span(),
                                format!("check {:?} is not defined", c.get_ref()),
                                if known.is_empty() {
                                    "define it with [[check]]".to_string()
                                } else {
                                    format!(
                                        "define it with [[check]], or use one of: {}",
                                        known.join(", ")
                                    )
                                },
                            );
                        }
                    }
                }
                if t.checks.is_empty() {
                    self.warnings.push(self.map.at(&t.region.span(), format!("alias {name}: target {region} has no checks and always counts as healthy")).hint("name the checks that judge this Region in `checks`"));
                }
                targets.push(TargetSpec {
                    region: region.clone(),
                    connection_id: id.clone(),
                    checks: idx,
                });
            }
            out.push(AliasSpec {
                name,
                zone,
                ttl,
                policy: Policy {
                    all_down,
                    failback,
                    failback_after,
                    failback_after_max,
                    failback_reset,
                },
                targets,
            });
        }
        // Members of a used composite are used too.
        let mut stack: Vec<usize> = used_checks.iter().copied().collect();
        while let Some(i) = stack.pop() {
            if let ProbeSpec::Composite { members, .. } = &checks[i].0.probe {
                stack.extend(members.iter().filter(|&&m| used_checks.insert(m)));
            }
        }
        for (i, (c, span)) in checks.iter().enumerate() {
            // While a canary fails no answer moves: one under a target would
            // stop that Region's own outage from ever failing over.
            if used_checks.contains(&i) && c.canary {
                self.err(
                    span,
                    format!(
                        "check {:?} is a canary, but a target depends on it: that Region's outage would hold every answer instead of failing over",
                        c.name
                    ),
                    "a canary checks something that is not a Region (the VPN gateway, a resolver); give the target a check of its own",
                );
            }
            // A canary judges no Region: it is meant to stand alone.
            if !used_checks.contains(&i) && !c.canary {
                self.warnings.push(
                    self.map
                        .at(span, format!("check {:?} is not used by any alias", c.name))
                        .hint("remove it, or name it in a target's `checks`"),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
