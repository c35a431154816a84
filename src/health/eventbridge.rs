//! The "CloudWatch Alarm State Change" event as EventBridge delivers it
//! (an API destination POSTs the whole envelope). Pure: bytes in, the
//! alarm's new state out, or what is wrong with the event.

use serde::Deserialize;

// A parser's message can quote the body: `bounded` cuts it.
use super::alarm::{AlarmState, bounded};

/// Envelope fields this event must carry.
const SOURCE: &str = "aws.cloudwatch";
const DETAIL_TYPE: &str = "CloudWatch Alarm State Change";

/// An alarm state change, as far as matching and ordering need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmEvent {
    pub id: String,
    pub account: String,
    pub region: String,
    pub alarm_name: String,
    pub state: AlarmState,
    /// When the alarm entered `state` (ms since the epoch): the state's own
    /// timestamp, else the event's time.
    pub at_ms: i64,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: String,
    #[serde(rename = "detail-type", default)]
    detail_type: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    region: String,
    detail: Option<Detail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(default)]
    alarm_name: String,
    state: Option<StateField>,
}

#[derive(Deserialize)]
struct StateField {
    #[serde(default)]
    value: String,
    #[serde(default)]
    timestamp: String,
}

/// How far ahead of our clock an event may be dated. The board keeps the
/// newest state by its time, so one event dated far ahead would make every
/// true event after it "older" until a restart.
pub const MAX_AHEAD_MS: i64 = 5 * 60 * 1000;

/// Past this age an event is a replay: CloudWatch sends one per state
/// change, and EventBridge's retries end sooner (the documented rule gives
/// up after 300 s). Such an event is applied only if the board has a state
/// to order it against, so after a restart it cannot undo the present.
pub const STALE_AFTER_MS: i64 = 10 * 60 * 1000;

/// Parses one event received at `now_ms`; the error says what is missing
/// or wrong.
pub fn parse(body: &[u8], now_ms: i64) -> Result<AlarmEvent, String> {
    let e: Envelope = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not an EventBridge event: {}",
            bounded(&e.to_string())
        )
    })?;
    if e.source != SOURCE || e.detail_type != DETAIL_TYPE {
        return Err(format!(
            "not a CloudWatch alarm state change (source {:?}, detail-type {:?}); the rule's pattern should match source {SOURCE:?} and detail-type {DETAIL_TYPE:?}",
            clip(&e.source),
            clip(&e.detail_type)
        ));
    }
    let detail = e.detail.ok_or("the event has no `detail`")?;
    let state = detail.state.ok_or("the event has no `detail.state`")?;
    let value = AlarmState::parse(&state.value).ok_or_else(|| {
        format!(
            "detail.state.value {:?} is not OK, ALARM or INSUFFICIENT_DATA",
            clip(&state.value)
        )
    })?;
    // As the config refuses them: such a name or Region matches no check,
    // and would only reach the logs and the status.
    if detail.alarm_name.is_empty()
        || detail.alarm_name.chars().count() > 255
        || detail.alarm_name.chars().any(char::is_control)
    {
        return Err(
            "detail.alarmName must have 1 to 255 characters, none of them control characters"
                .into(),
        );
    }
    if !crate::config::is_region(&e.region) {
        return Err(format!(
            "the event's `region` {:?} is not an AWS Region name",
            clip(&e.region)
        ));
    }
    let at_ms = parse_time(&state.timestamp)
        .or_else(|| parse_time(&e.time))
        .ok_or("neither detail.state.timestamp nor time is a timestamp")?;
    if at_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
        return Err(format!(
            "the event is dated {} s ahead of this server's clock (at most {} s): check the clocks (NTP)",
            at_ms.saturating_sub(now_ms) / 1000,
            MAX_AHEAD_MS / 1000
        ));
    }
    Ok(AlarmEvent {
        id: clip(&e.id),
        account: clip(&e.account),
        region: e.region,
        alarm_name: detail.alarm_name,
        state: value,
        at_ms,
    })
}

/// At most 64 characters of a field, for messages and ids; control
/// characters become '?', so a field cannot forge a log line.
fn clip(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Milliseconds since the epoch of an event timestamp: RFC 3339
/// (`2026-12-06T10:00:00Z`, the envelope's `time`) or CloudWatch's
/// `2026-12-06T10:00:00.123+0000` (the state's). Other offsets than UTC
/// are not used by either, and are refused rather than guessed.
pub fn parse_time(s: &str) -> Option<i64> {
    let utc = s
        .strip_suffix("+0000")
        .or_else(|| s.strip_suffix("+00:00"))
        .or_else(|| s.strip_suffix('Z'))?;
    let t = humantime::parse_rfc3339_weak(utc).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock an hour after the events below.
    const NOW: i64 = 1_796_554_800_000;

    /// The example event of the CloudWatch documentation's shape.
    fn event(value: &str, timestamp: &str) -> String {
        format!(
            r#"{{
  "version": "0",
  "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
  "detail-type": "CloudWatch Alarm State Change",
  "source": "aws.cloudwatch",
  "account": "123456789012",
  "time": "2026-12-06T10:00:00Z",
  "region": "us-west-2",
  "resources": ["arn:aws:cloudwatch:us-west-2:123456789012:alarm:ws-pdx"],
  "detail": {{
    "alarmName": "ws-pdx",
    "state": {{ "value": "{value}", "reason": "Threshold Crossed", "timestamp": "{timestamp}" }},
    "previousState": {{ "value": "OK", "reason": "", "timestamp": "2026-12-06T09:00:00.000+0000" }},
    "configuration": {{ "metrics": [] }}
  }}
}}"#
        )
    }

    #[test]
    fn a_documented_event_parses() {
        let e = parse(
            event("ALARM", "2026-12-06T10:00:00.250+0000").as_bytes(),
            NOW,
        )
        .unwrap();
        assert_eq!(e.alarm_name, "ws-pdx");
        assert_eq!(e.region, "us-west-2");
        assert_eq!(e.account, "123456789012");
        assert_eq!(e.state, AlarmState::Alarm);
        assert_eq!(e.at_ms, parse_time("2026-12-06T10:00:00Z").unwrap() + 250);
    }

    #[test]
    fn the_event_time_stands_in_for_a_missing_state_timestamp() {
        let e = parse(event("OK", "").as_bytes(), NOW).unwrap();
        assert_eq!(e.at_ms, parse_time("2026-12-06T10:00:00Z").unwrap());
    }

    #[test]
    fn hostile_fields_cannot_reach_logs_or_answers_unbounded() {
        // A parser message quotes what it refused: not all 100 kB of it.
        let big = "A".repeat(100_000);
        let body = event("OK", "").replace(
            r#""configuration": { "metrics": [] }"#,
            &format!(r#""configuration": {{ "metrics": [] }}, "state": "{big}""#),
        );
        let message = parse(body.replace("\"state\": {", "\"x\": {").as_bytes(), NOW);
        let message = message.unwrap_err();
        assert!(message.len() < 1_000, "{} bytes", message.len());
        // Newlines in what is logged: refused, or made harmless.
        let forged = event("ALARM", "").replace("\"ws-pdx\",", "\"ws-pdx\\nINFO forged\",");
        assert!(
            parse(forged.as_bytes(), NOW)
                .unwrap_err()
                .contains("control characters")
        );
        let id = event("ALARM", "")
            .replace("c4c1c1c9-6542", "c4c1\\nINFO forged")
            .replace("\"123456789012\",", "\"1234\\n56789012\",");
        let e = parse(id.as_bytes(), NOW).unwrap();
        assert!(!e.id.contains('\n') && !e.account.contains('\n'), "{e:?}");
    }

    #[test]
    fn other_events_and_broken_ones_say_what_is_wrong() {
        let other = event("ALARM", "").replace("aws.cloudwatch", "aws.ec2");
        assert!(
            parse(other.as_bytes(), NOW)
                .unwrap_err()
                .contains("not a CloudWatch alarm state change")
        );
        let bad = event("MAYBE", "");
        assert!(
            parse(bad.as_bytes(), NOW)
                .unwrap_err()
                .contains("\"MAYBE\" is not OK")
        );
        assert!(
            parse(b"[]", NOW)
                .unwrap_err()
                .contains("not an EventBridge event")
        );
        let no_time = event("OK", "yesterday").replace("2026-12-06T10:00:00Z", "soon");
        assert!(
            parse(no_time.as_bytes(), NOW)
                .unwrap_err()
                .contains("timestamp")
        );
        assert_eq!(parse_time("2026-12-06T10:00:00+0200"), None);
        let region = event("OK", "").replace("us-west-2\",", "us-west-2\\n\",");
        assert!(
            parse(region.as_bytes(), NOW)
                .unwrap_err()
                .contains("is not an AWS Region name")
        );
        let ahead = event("ALARM", "2027-01-01T00:00:00.000+0000");
        assert!(
            parse(ahead.as_bytes(), NOW)
                .unwrap_err()
                .contains("ahead of this server's clock")
        );
    }
}
