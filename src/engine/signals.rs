//! Alarm states pushed by EventBridge: matched to the `cloudwatch_alarm`
//! checks watching that alarm, ordered on the alarm board against what
//! pulls and earlier events brought, and applied at once.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::Engine;
use crate::config::{OnInsufficientData, ProbeSpec};
use crate::health::Outcome;
use crate::health::alarm::{AlarmState, Order, Seen, board_key};
use crate::health::eventbridge::{AlarmEvent, STALE_AFTER_MS};

/// What one event did, per check it matched: the admin API's answer.
#[derive(Debug, Clone, Serialize)]
pub struct SignalReport {
    pub alarm: String,
    pub region: String,
    pub state: &'static str,
    pub matched: Vec<SignalMatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignalMatch {
    pub check: String,
    /// "applied", "duplicate", "older" (than the state the check holds) or
    /// "stale" (too old to be anything but a replay, and nothing held to
    /// order it against).
    pub result: &'static str,
    /// The check's verdict after the event.
    pub healthy: bool,
    pub detail: String,
}

impl Engine {
    pub(super) fn alarm_event(&mut self, event: &AlarmEvent) -> SignalReport {
        let now = Instant::now();
        let now_ms = i64::try_from(super::unix_now_ms()).unwrap_or(i64::MAX);
        let stale = event.at_ms < now_ms.saturating_sub(STALE_AFTER_MS);
        let mut matched = Vec::new();
        for i in 0..self.config.checks.len() {
            let spec = &self.config.checks[i];
            let ProbeSpec::CloudWatchAlarm(alarm) = &spec.probe else {
                continue;
            };
            let watches = alarm.alarm_name == event.alarm_name
                && alarm.region == event.region
                && alarm.account.as_ref().is_none_or(|a| *a == event.account);
            if !watches {
                continue;
            }
            let name = spec.name.clone();
            let key = board_key(&name, alarm);
            if stale && !self.alarms.holds(&key) {
                let run = &self.core.checks()[i];
                tracing::info!(check = %name, alarm = %event.alarm_name, state = event.state.as_str(), event = %event.id, "EventBridge event too old to be applied with no state to order it against");
                matched.push(SignalMatch {
                    check: name,
                    result: "stale",
                    healthy: run.state.state.healthy(),
                    detail: format!(
                        "event dated {} s ago and no state held yet: not applied; the next pull reads the alarm",
                        now_ms.saturating_sub(event.at_ms) / 1000
                    ),
                });
                continue;
            }
            let seen = Seen {
                state: event.state,
                at_ms: event.at_ms,
            };
            let (order, verdict) = self.alarms.offer(&key, seen, alarm.on_insufficient_data);
            let result = match order {
                Order::Newer => "applied",
                Order::Same => "duplicate",
                Order::Older => "older",
            };
            // Under "last", no data says nothing new: the check keeps the
            // state it has, which may be down from failed pulls the board
            // never saw (an outage silences the API and the metrics alike).
            let keep = event.state == AlarmState::InsufficientData
                && alarm.on_insufficient_data == OnInsufficientData::Last;
            if order == Order::Newer && keep {
                let healthy = self.core.checks()[i].state.state.healthy();
                tracing::info!(check = %name, alarm = %event.alarm_name, state = event.state.as_str(), event = %event.id, healthy, "EventBridge event applied: the check keeps its state");
                let detail = if healthy == verdict.healthy {
                    verdict.detail
                } else {
                    format!(
                        "alarm INSUFFICIENT_DATA (pushed by EventBridge, event {}): keeping the check's state, {}",
                        event.id,
                        if healthy { "healthy" } else { "unhealthy" }
                    )
                };
                matched.push(SignalMatch {
                    check: name,
                    result,
                    healthy,
                    detail,
                });
                continue;
            }
            if order == Order::Newer {
                let outcome = Outcome {
                    ok: verdict.healthy,
                    latency: Duration::ZERO,
                    detail: format!(
                        "{} (pushed by EventBridge, event {})",
                        verdict.detail, event.id
                    ),
                };
                let change = self.core.assert_state(i, outcome, now);
                let healthy = self.core.checks()[i].state.state.healthy();
                self.metrics.probe(&name, 0.0, healthy, change.is_some());
                if let Some((from, to)) = change {
                    tracing::info!(check = %name, from = ?from, to = ?to, alarm = %event.alarm_name, state = event.state.as_str(), "check changed state (EventBridge)");
                }
            } else {
                tracing::info!(check = %name, alarm = %event.alarm_name, state = event.state.as_str(), event = %event.id, result, "EventBridge event ignored");
            }
            matched.push(SignalMatch {
                check: name,
                result,
                healthy: verdict.healthy,
                detail: verdict.detail,
            });
        }
        if matched.is_empty() {
            tracing::info!(alarm = %event.alarm_name, region = %event.region, account = %event.account, "EventBridge event matches no cloudwatch_alarm check");
        }
        SignalReport {
            alarm: event.alarm_name.clone(),
            region: event.region.clone(),
            state: event.state.as_str(),
            matched,
        }
    }
}
