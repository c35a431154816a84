//! The TOML schema exactly as written by users. Unknown keys are errors; the
//! spans kept here let validation point at the offending line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: Option<Spanned<RawServer>>,
    #[serde(default)]
    pub admin: Option<Spanned<RawAdmin>>,
    #[serde(default)]
    pub rrl: Option<Spanned<RawRrl>>,
    #[serde(default, rename = "zone")]
    pub zones: Vec<Spanned<RawZone>>,
    #[serde(default, rename = "check")]
    pub checks: Vec<Spanned<RawCheck>>,
    #[serde(default, rename = "alias")]
    pub aliases: Vec<Spanned<RawAlias>>,
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<Spanned<RawWebhook>>,
    #[serde(default, rename = "key")]
    pub keys: Vec<Spanned<RawKey>>,
}

/// A TSIG key, inline or from a file in BIND's `key` syntax.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: Option<Spanned<String>>,
    pub algorithm: Option<Spanned<String>>,
    pub secret: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
}

/// Who may do something: a source network list and/or a TSIG key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub from: Option<Vec<Spanned<String>>>,
    pub key: Option<Spanned<String>>,
}

/// Another server: where to send NOTIFY, or where to transfer from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemote {
    pub address: Spanned<String>,
    pub key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: Spanned<String>,
    pub secret_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Vec<Spanned<String>>>,
    pub state_dir: Option<Spanned<String>>,
    pub udp_workers: Option<Spanned<usize>>,
    pub tcp_idle_timeout: Option<Spanned<String>>,
    pub tcp_max_connections: Option<Spanned<i64>>,
    pub tcp_max_per_source: Option<Spanned<i64>>,
    pub tcp_max_queries_per_connection: Option<Spanned<i64>>,
    pub tcp_max_connection_lifetime: Option<Spanned<String>>,
    /// How often each NOTIFY target is asked for its serial.
    pub secondary_check_interval: Option<Spanned<String>>,
    /// How long a secondary may lag or be unreachable before a warning.
    pub secondary_lag_warn: Option<Spanned<String>>,
    /// 16 bytes in hex: the DNS cookie secret, shared by a server group.
    pub cookie_secret_file: Option<Spanned<String>>,
    pub nsid: Option<Spanned<String>>,
    pub identity: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    /// "text" or "json".
    pub log_format: Option<Spanned<String>>,
    /// Source addresses of NOTIFY, SOA queries and transfers, one per family.
    pub query_source: Option<Vec<Spanned<String>>>,
}

/// Response rate limiting (UDP).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRrl {
    pub responses_per_second: Option<Spanned<i64>>,
    pub slip: Option<Spanned<i64>>,
    pub ipv4_prefix: Option<Spanned<i64>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    pub exempt: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<usize>>,
    pub max_per_source: Option<Spanned<usize>>,
    pub header_timeout: Option<Spanned<String>>,
    pub request_timeout: Option<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub origin: Spanned<String>,
    pub file: Option<Spanned<String>>,
    pub serial: Option<Spanned<String>>,
    pub allow_transfer: Option<Vec<Spanned<RawAccess>>>,
    pub notify: Option<Vec<Spanned<RawRemote>>>,
    /// Makes this a secondary zone, transferred from these servers.
    pub primaries: Option<Vec<Spanned<RawRemote>>>,
    pub allow_notify: Option<Vec<Spanned<RawAccess>>>,
}

/// One flat record for every check kind; which fields apply depends on
/// `kind`, and validation says so when a field does not belong.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub fall: Option<Spanned<i64>>,
    pub rise: Option<Spanned<i64>>,
    pub attempts: Option<Spanned<i64>>,
    pub canary: Option<Spanned<bool>>,
    // http / https
    pub url: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    pub resolve: Option<Spanned<String>>,
    pub tls_verify: Option<Spanned<bool>>,
    pub expect_status: Option<Spanned<Vec<Spanned<String>>>>,
    pub expect_body: Option<Spanned<String>>,
    // tcp
    pub address: Option<Spanned<String>>,
    // command
    pub command: Option<Spanned<Vec<String>>>,
    // all / any / at_least
    pub checks: Option<Spanned<Vec<Spanned<String>>>>,
    pub at_least: Option<Spanned<i64>>,
    // external
    pub stale_after: Option<Spanned<String>>,
    pub on_stale: Option<Spanned<String>>,
    // cloudwatch_alarm
    pub alarm_name: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub endpoint_url: Option<Spanned<String>>,
    pub account: Option<Spanned<String>>,
    pub on_insufficient_data: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlias {
    pub name: Spanned<String>,
    pub ttl: Option<Spanned<i64>>,
    pub all_down: Option<Spanned<String>>,
    pub failback: Option<Spanned<String>>,
    pub failback_after: Option<Spanned<String>>,
    pub failback_after_max: Option<Spanned<String>>,
    pub failback_reset: Option<Spanned<String>>,
    pub targets: Spanned<Vec<Spanned<RawTarget>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub region: Spanned<String>,
    pub connection_id: Spanned<String>,
    #[serde(default)]
    pub checks: Vec<Spanned<String>>,
}
