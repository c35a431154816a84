//! CloudWatch alarm checks: the verdict is the alarm's state, pulled with
//! DescribeAlarms through the AWS SDK and pushed by EventBridge. Both paths
//! meet in the `AlarmBoard`, which orders what each check has seen by the
//! alarm's own state time, so a late pull or a replayed event cannot undo
//! a newer state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatch::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};
use tokio::sync::OnceCell;

use crate::config::{AlarmSpec, OnInsufficientData};

/// An alarm's state as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn parse(s: &str) -> Option<AlarmState> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// One observation of an alarm: its state and when it entered it
/// (milliseconds since the epoch, CloudWatch's StateUpdatedTimestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub state: AlarmState,
    pub at_ms: i64,
}

/// How an observation compares with what the check already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Later than anything seen: it is the alarm's state now.
    Newer,
    /// The state already held, at the same time: a duplicate.
    Same,
    /// Earlier than what is held (or a different state at the same
    /// instant, which cannot be ordered): ignored.
    Older,
}

/// Per check: the latest observation, and the last OK/ALARM verdict (what
/// `on_insufficient_data = "last"` keeps).
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    seen: Option<Seen>,
    verdict: Option<bool>,
}

/// A check's entry on the board: its name and the alarm it watches, so a
/// probe loop a reload is replacing cannot write the old alarm's state
/// under the new definition (alarm names hold no control characters).
pub fn board_key(check: &str, spec: &AlarmSpec) -> String {
    format!("{check}\n{}\n{}", spec.region, spec.alarm_name)
}

/// What pulls and pushes have seen, by `board_key`. One small entry per
/// alarm check: bounded by the configuration.
#[derive(Default)]
pub struct AlarmBoard {
    held: Mutex<HashMap<String, Held>>,
}

/// The verdict an observation gives a check, and how to say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    pub detail: String,
}

impl AlarmBoard {
    /// Records `seen` under `key` (`board_key`) if it is newer than what is held; returns
    /// how it ordered and the verdict the check has after it.
    pub fn offer(&self, key: &str, seen: Seen, policy: OnInsufficientData) -> (Order, Verdict) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = held.entry(key.to_string()).or_default();
        let order = match entry.seen {
            None => Order::Newer,
            Some(old) if seen.at_ms > old.at_ms => Order::Newer,
            Some(old) if seen.at_ms == old.at_ms && seen.state == old.state => Order::Same,
            Some(_) => Order::Older,
        };
        if order == Order::Newer {
            entry.seen = Some(seen);
            match seen.state {
                AlarmState::Ok => entry.verdict = Some(true),
                AlarmState::Alarm => entry.verdict = Some(false),
                AlarmState::InsufficientData => {}
            }
        }
        // The check's verdict is that of what it holds, whatever came now.
        let current = entry.seen.unwrap_or(seen);
        (order, verdict(current, policy, entry.verdict))
    }

    /// Whether the entry `key` holds an observation to order others against.
    pub fn holds(&self, key: &str) -> bool {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .is_some_and(|h| h.seen.is_some())
    }

    /// Keeps only the entries of `keys` (after a reload).
    pub fn retain(&self, keys: &[String]) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.retain(|key, _| keys.contains(key));
    }
}

/// The verdict of `seen` under `policy`, `last` being the last OK/ALARM.
pub fn verdict(seen: Seen, policy: OnInsufficientData, last: Option<bool>) -> Verdict {
    let since = since(seen.at_ms);
    match seen.state {
        AlarmState::Ok => Verdict {
            healthy: true,
            detail: format!("alarm OK since {since}"),
        },
        AlarmState::Alarm => Verdict {
            healthy: false,
            detail: format!("alarm in ALARM since {since}"),
        },
        AlarmState::InsufficientData => {
            let (healthy, why) = match (policy, last) {
                (OnInsufficientData::Healthy, _) => (true, "counted healthy".to_string()),
                (OnInsufficientData::Unhealthy, _) => (false, "counted unhealthy".to_string()),
                (OnInsufficientData::Last, Some(true)) => {
                    (true, "keeping the last state, OK".into())
                }
                (OnInsufficientData::Last, Some(false)) => {
                    (false, "keeping the last state, ALARM".into())
                }
                (OnInsufficientData::Last, None) => (
                    true,
                    "no OK or ALARM seen yet: counted healthy, as a check without data".into(),
                ),
            };
            Verdict {
                healthy,
                detail: format!("alarm INSUFFICIENT_DATA since {since}: {why}"),
            }
        }
    }
}

fn since(at_ms: i64) -> String {
    let t = u64::try_from(at_ms)
        .ok()
        .and_then(|ms| std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
    match t {
        Some(t) => humantime::format_rfc3339_seconds(t).to_string(),
        None => format!("{at_ms} ms"),
    }
}

/// The pulling side of one alarm check.
pub struct AlarmProber {
    /// Its entry on the board (`board_key`).
    key: String,
    spec: AlarmSpec,
    timeout: Duration,
    board: Arc<AlarmBoard>,
    /// Made at the first probe: loading the SDK's configuration (profile
    /// files, the credential chain) is async.
    client: OnceCell<aws_sdk_cloudwatch::Client>,
}

impl AlarmProber {
    pub fn new(check: &str, spec: &AlarmSpec, timeout: Duration, board: Arc<AlarmBoard>) -> Self {
        AlarmProber {
            key: board_key(check, spec),
            spec: spec.clone(),
            timeout,
            board,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &aws_sdk_cloudwatch::Client {
        self.client
            .get_or_init(|| async {
                // ring, as the rest of the binary: no second crypto library.
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(self.spec.region.clone()))
                    .http_client(http)
                    // Our rounds retry; the SDK's own retries would run
                    // past the timeout and hide how often calls fail.
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_timeout(self.timeout)
                            .build(),
                    );
                if let Some(url) = &self.spec.endpoint_url {
                    loader = loader.endpoint_url(url.as_str().trim_end_matches('/'));
                }
                aws_sdk_cloudwatch::Client::new(&loader.load().await)
            })
            .await
    }

    /// One DescribeAlarms call; Ok when the verdict is healthy.
    pub async fn attempt(&self) -> Result<String, String> {
        let seen = self.describe().await?;
        let (order, v) = self
            .board
            .offer(&self.key, seen, self.spec.on_insufficient_data);
        let detail = match order {
            Order::Older => format!(
                "{} (DescribeAlarms said {}, older than a pushed state)",
                v.detail,
                seen.state.as_str()
            ),
            Order::Newer | Order::Same => v.detail,
        };
        if v.healthy { Ok(detail) } else { Err(detail) }
    }

    async fn describe(&self) -> Result<Seen, String> {
        let name = &self.spec.alarm_name;
        let region = &self.spec.region;
        let out = self
            .client()
            .await
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| {
                let chain = DisplayErrorContext(&e).to_string();
                match e.code() {
                    Some(code) => format!(
                        "DescribeAlarms in {region} failed ({code}): {}",
                        bounded(e.message().unwrap_or(&chain))
                    ),
                    // The SDK names no code when the call never left: say
                    // the one cause operators must act on plainly.
                    None if chain.contains("no credentials") => format!(
                        "DescribeAlarms in {region} failed (NoCredentials): no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or give the host an instance or task role"
                    ),
                    None => format!(
                        "DescribeAlarms in {region} failed (no AWS error code): {}",
                        bounded(&chain)
                    ),
                }
            })?;
        let metric = out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .map(|a| (a.state_value(), a.state_updated_timestamp()));
        let composite = out
            .composite_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .map(|a| (a.state_value(), a.state_updated_timestamp()));
        let Some((state, at)) = metric.or(composite) else {
            return Err(format!(
                "alarm {name:?} not found in {region} (ResourceNotFound): check alarm_name, region and the account the credentials belong to"
            ));
        };
        let state = match state {
            Some(StateValue::Ok) => AlarmState::Ok,
            Some(StateValue::Alarm) => AlarmState::Alarm,
            Some(StateValue::InsufficientData) => AlarmState::InsufficientData,
            other => return Err(format!("alarm {name:?} has an unknown state {other:?}")),
        };
        let at_ms = at.and_then(|t| t.to_millis().ok()).unwrap_or(0);
        Ok(Seen { state, at_ms })
    }
}

/// At most 300 characters of an error chain or a parser's message, for a
/// status line or an answer.
pub(super) fn bounded(s: &str) -> String {
    if s.chars().count() <= 300 {
        return s.to_string();
    }
    let mut out: String = s.chars().take(300).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: AlarmState, at_ms: i64) -> Seen {
        Seen { state, at_ms }
    }

    #[test]
    fn later_states_win_and_replays_are_duplicates_or_older() {
        let b = AlarmBoard::default();
        let p = OnInsufficientData::Last;
        let (o, v) = b.offer("c", seen(AlarmState::Alarm, 2_000), p);
        assert_eq!(o, Order::Newer);
        assert!(!v.healthy);
        assert_eq!(
            b.offer("c", seen(AlarmState::Alarm, 2_000), p).0,
            Order::Same
        );
        // An event from before the ALARM, delivered late: ignored, and the
        // verdict stays that of the ALARM.
        let (o, v) = b.offer("c", seen(AlarmState::Ok, 1_000), p);
        assert_eq!(o, Order::Older);
        assert!(!v.healthy, "{v:?}");
        let (o, v) = b.offer("c", seen(AlarmState::Ok, 3_000), p);
        assert_eq!(o, Order::Newer);
        assert!(v.healthy);
        // Checks are independent.
        assert_eq!(b.offer("d", seen(AlarmState::Ok, 1), p).0, Order::Newer);
    }

    #[test]
    fn insufficient_data_follows_the_policy() {
        for (policy, last, healthy) in [
            (OnInsufficientData::Healthy, Some(false), true),
            (OnInsufficientData::Unhealthy, Some(true), false),
            (OnInsufficientData::Last, Some(false), false),
            (OnInsufficientData::Last, Some(true), true),
            (OnInsufficientData::Last, None, true),
        ] {
            let v = verdict(seen(AlarmState::InsufficientData, 0), policy, last);
            assert_eq!(v.healthy, healthy, "{policy:?} {last:?}: {v:?}");
            assert!(v.detail.contains("INSUFFICIENT_DATA"), "{v:?}");
        }
        // The board keeps the last OK/ALARM through INSUFFICIENT_DATA.
        let b = AlarmBoard::default();
        let p = OnInsufficientData::Last;
        b.offer("c", seen(AlarmState::Alarm, 1), p);
        let (_, v) = b.offer("c", seen(AlarmState::InsufficientData, 2), p);
        assert!(
            !v.healthy && v.detail.contains("keeping the last state, ALARM"),
            "{v:?}"
        );
    }

    #[test]
    fn a_different_state_at_the_same_instant_is_not_taken() {
        let b = AlarmBoard::default();
        let p = OnInsufficientData::Last;
        b.offer("c", seen(AlarmState::Ok, 5), p);
        let (o, v) = b.offer("c", seen(AlarmState::Alarm, 5), p);
        assert_eq!(o, Order::Older);
        assert!(v.healthy);
    }
}
