//! `kind = "cloudwatch_alarm"`: a check whose verdict is a CloudWatch
//! alarm's state. Types and validation; the API side lives in
//! `crate::health::alarm`.

use std::ops::Range;
use std::time::Duration;

use super::raw::RawCheck;
use super::{ProbeSpec, Timing, Validator};

/// What a check counts INSUFFICIENT_DATA as. A Region-wide outage can
/// silence the metrics an alarm watches, so "no data" is not "healthy" by
/// default: it keeps the last verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInsufficientData {
    Healthy,
    Unhealthy,
    /// The last OK or ALARM seen (healthy when none was ever seen, as for
    /// every check without data).
    Last,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmSpec {
    pub alarm_name: String,
    pub region: String,
    /// Where the CloudWatch API is, instead of the Region's public
    /// endpoint: a VPC endpoint, or a local API in tests.
    pub endpoint_url: Option<reqwest::Url>,
    /// Pushed events must come from this account, when set.
    pub account: Option<String>,
    pub on_insufficient_data: OnInsufficientData,
}

/// Defaults of an alarm check. The alarm's own evaluation periods already
/// debounce its state, so two rounds decide; a round is two API calls, so
/// a failed call (throttling, a dropped connection) is retried at once and
/// only two whole failed rounds, 30 s apart, count as the Region failing.
/// 30 s keeps DescribeAlarms calls far below any throttling limit.
pub const ALARM_TIMING: Timing = Timing {
    interval: Duration::from_secs(30),
    timeout: Duration::from_secs(5),
    fall: 2,
    rise: 2,
    attempts: 2,
};

/// An AWS Region name's shape (config and pushed events alike).
pub fn is_region(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Validator<'_> {
    /// The alarm fields, for reporting them on other kinds.
    pub(super) fn alarm_fields(c: &RawCheck) -> Vec<(&'static str, Option<Range<usize>>)> {
        vec![
            ("alarm_name", c.alarm_name.as_ref().map(|s| s.span())),
            ("region", c.region.as_ref().map(|s| s.span())),
            ("endpoint_url", c.endpoint_url.as_ref().map(|s| s.span())),
            ("account", c.account.as_ref().map(|s| s.span())),
            (
                "on_insufficient_data",
                c.on_insufficient_data.as_ref().map(|s| s.span()),
            ),
        ]
    }

    pub(super) fn cloudwatch_alarm(&mut self, c: &RawCheck) -> Option<ProbeSpec> {
        let mut foreign = Self::http_fields(c);
        let own = Self::alarm_fields(c);
        foreign.retain(|(field, _)| !own.iter().any(|(f, _)| f == field));
        foreign.extend([
            ("address", c.address.as_ref().map(|s| s.span())),
            ("command", c.command.as_ref().map(|s| s.span())),
        ]);
        self.foreign("cloudwatch_alarm", &foreign);
        let name = c.name.get_ref();
        let alarm_name = match &c.alarm_name {
            None => {
                self.err(
                    &c.name.span(),
                    format!("cloudwatch_alarm check {name:?} has no `alarm_name`"),
                    "add alarm_name = \"<the alarm's name in CloudWatch>\"",
                );
                None
            }
            Some(a)
                if a.get_ref().is_empty()
                    || a.get_ref().chars().count() > 255
                    || a.get_ref().chars().any(char::is_control) =>
            {
                self.err(
                    &a.span(),
                    format!(
                        "alarm_name {:?} cannot be a CloudWatch alarm name",
                        a.get_ref()
                    ),
                    "an alarm name has 1 to 255 characters, none of them control characters",
                );
                None
            }
            Some(a) => Some(a.get_ref().clone()),
        };
        let region = match &c.region {
            None => {
                self.err(
                    &c.name.span(),
                    format!("cloudwatch_alarm check {name:?} has no `region`"),
                    "add the Region the alarm is in, e.g. region = \"us-west-2\"; there is no default, so the check cannot ask the wrong one",
                );
                None
            }
            Some(r) if !is_region(r.get_ref()) => {
                self.err(
                    &r.span(),
                    format!("region {:?} is not an AWS Region name", r.get_ref()),
                    "write e.g. \"us-west-2\"",
                );
                None
            }
            Some(r) => Some(r.get_ref().clone()),
        };
        let endpoint_url = c.endpoint_url.as_ref().and_then(|u| {
            match reqwest::Url::parse(u.get_ref()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(url)
                }
                _ => {
                    self.err(
                        &u.span(),
                        format!("endpoint_url {:?} is not an http(s) URL", u.get_ref()),
                        "write e.g. \"https://monitoring.us-west-2.amazonaws.com\" or a VPC endpoint's https URL",
                    );
                    None
                }
            }
        });
        let account = c.account.as_ref().and_then(|a| {
            let text = a.get_ref();
            if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
                Some(text.clone())
            } else {
                self.err(
                    &a.span(),
                    format!("account {text:?} is not an AWS account id"),
                    "write the 12 digits, as a string: account = \"123456789012\"",
                );
                None
            }
        });
        let on_insufficient_data = self.choice(
            "on_insufficient_data",
            c.on_insufficient_data.as_ref(),
            &[
                ("last", OnInsufficientData::Last),
                ("healthy", OnInsufficientData::Healthy),
                ("unhealthy", OnInsufficientData::Unhealthy),
            ],
        );
        Some(ProbeSpec::CloudWatchAlarm(AlarmSpec {
            alarm_name: alarm_name?,
            region: region?,
            endpoint_url,
            account,
            on_insufficient_data,
        }))
    }
}
