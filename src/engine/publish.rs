//! From decisions to the wire: the alias records of what is decided, the
//! zones' serials (persisted before anything carrying them is visible),
//! the snapshot, and the announcements of what changed (log line, metric,
//! webhook) once it is served.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hickory_proto::rr::{LowerName, Name};

use super::Engine;
use crate::decide::Answer;
use crate::snapshot::{AliasAnswer, AliasRecord, BuildError, Snapshot, ZoneInput};
use crate::state::{Persisted, ZoneState, initial_serial, unix_now, zone_digest};
use crate::webhook::{AnswerChange, Event};
use crate::xfr::journal;

impl Engine {
    /// Sets each zone's serial and digest for what it serves now, from the
    /// zone's last served state (`last`): unchanged data keeps its serial.
    pub(super) fn settle_serials(
        &mut self,
        records: &[AliasRecord],
        last: impl Fn(&Name) -> Option<ZoneState>,
    ) {
        let (mut serials, mut digests) = (Vec::new(), Vec::new());
        for (z, zone) in self.config.zones.iter().enumerate() {
            let in_zone: Vec<&AliasRecord> = records.iter().filter(|r| r.zone == z).collect();
            let digest = zone_digest(zone, &in_zone);
            serials.push(initial_serial(
                zone.soa.serial,
                last(&zone.origin).as_ref(),
                &digest,
                zone.policy.serial,
                unix_now(),
            ));
            digests.push(digest);
        }
        (self.serials, self.digests) = (serials, digests);
    }

    /// Builds the snapshot for `records` and the primary zones' `serials`,
    /// with answer counters labelled by what each alias answers in it. Data
    /// that cannot be encoded is an error naming zone, owner and type.
    pub(super) fn build_snapshot(
        &self,
        records: &[AliasRecord],
        serials: &[u32],
    ) -> Result<Snapshot, BuildError> {
        let counters = records
            .iter()
            .map(|r| {
                let label = match &r.answer {
                    AliasAnswer::Txt(id) => id.as_str(),
                    AliasAnswer::NoData => "NODATA",
                    AliasAnswer::ServFail => "SERVFAIL",
                };
                (
                    LowerName::new(&r.name),
                    self.metrics.answer_counter(&r.name.to_string(), label),
                )
            })
            .collect();
        let mut inputs: Vec<ZoneInput> = self
            .config
            .zones
            .iter()
            .zip(serials)
            .map(|(zone, &serial)| ZoneInput {
                origin: &zone.origin,
                data: Some(zone),
                serial,
                policy: &zone.policy,
                refresh: None,
            })
            .collect();
        for (spec, held) in self.config.secondaries.iter().zip(&self.secondaries) {
            inputs.push(ZoneInput {
                origin: &spec.origin,
                data: held.data.as_ref(),
                serial: held.data.as_ref().map_or(0, |d| d.soa.serial),
                policy: &spec.policy,
                refresh: Some(held.wake.clone()),
            });
        }
        let mut snap = Snapshot::build(&inputs, records, counters, self.keys.clone())?;
        journal::carry(&mut snap, &self.cell.load_full());
        Ok(snap)
    }

    /// Publishes a snapshot built by `build_snapshot`: the store first, then
    /// serial metrics and NOTIFY where a serial moved (a secondary answering
    /// our NOTIFY with a SOA query must see the new serial).
    pub(super) fn publish(&self, snap: Snapshot) {
        let snap = Arc::new(snap);
        let old = self.cell.swap(snap.clone());
        for zone in &snap.zones {
            if !zone.available {
                continue;
            }
            self.metrics.serial(&zone.origin.to_string(), zone.serial);
            let moved = old
                .zone(&zone.origin)
                .is_none_or(|o| !o.available || o.serial != zone.serial);
            if moved && !zone.policy.notify.is_empty() {
                self.watcher.changed(&zone.origin, Instant::now());
                self.notifier.announce(
                    zone.soa.clone(),
                    zone.policy.notify.clone(),
                    self.keys.clone(),
                );
            }
        }
    }

    /// The alias records of what is served now (not what is decided).
    pub(super) fn served_records(&self) -> Vec<AliasRecord> {
        self.records_for(&self.served)
    }

    /// The alias records of what is decided now.
    pub(super) fn alias_records(&self) -> Vec<AliasRecord> {
        self.records_for(&self.decided())
    }

    pub(super) fn records_for(&self, answers: &[Answer]) -> Vec<AliasRecord> {
        self.config
            .aliases
            .iter()
            .zip(answers)
            .map(|(a, answer)| AliasRecord {
                name: a.name.clone(),
                zone: a.zone,
                ttl: a.ttl,
                answer: match *answer {
                    Answer::Target(i) => AliasAnswer::Txt(a.targets[i].connection_id.clone()),
                    Answer::NoData => AliasAnswer::NoData,
                    Answer::ServFail => AliasAnswer::ServFail,
                },
            })
            .collect()
    }

    /// The serials file for these per-zone serials and digests.
    pub(super) fn persisted(&self, serials: &[u32], digests: &[String]) -> Persisted {
        let mut state = Persisted::default();
        for ((zone, serial), digest) in self.config.zones.iter().zip(serials).zip(digests) {
            state.zones.insert(
                zone.origin.to_string(),
                ZoneState {
                    serial: *serial,
                    digest: digest.clone(),
                },
            );
        }
        state
    }

    /// Writes the serials file; a failure is counted, logged and retried
    /// with backoff from the engine's timer.
    pub(super) fn save_serials(&mut self, state: Persisted, now: Instant) -> Result<(), String> {
        match self.store.save(&state) {
            Ok(()) => {
                self.written = state;
                self.metrics.persist_ok(true);
                if let Some(f) = self.persist.succeeded() {
                    tracing::warn!(
                        failed_attempts = f.failures,
                        "serials persisted again; held answer changes are published now"
                    );
                }
                Ok(())
            }
            Err(e) => {
                let error = format!("{e:#}");
                self.metrics.persist_failed("serials");
                self.metrics.persist_ok(false);
                let decided = self.decided();
                let f = self.persist.failed(error.clone(), now);
                let pending: Vec<String> = self
                    .config
                    .aliases
                    .iter()
                    .zip(self.served.iter().zip(&decided))
                    .filter(|(_, (s, d))| s != d)
                    .map(|(a, _)| a.name.to_string())
                    .collect();
                tracing::error!(
                    error = %error,
                    attempt = f.failures,
                    retry_in = %humantime::format_duration(f.backoff),
                    held = ?pending,
                    "cannot persist serials: serving the previous answers and serials until state_dir is writable again"
                );
                Err(error)
            }
        }
    }

    /// Publishes what is decided, where it differs from what is served: the
    /// zones whose data changed get their next serial, persisted before the
    /// snapshot carrying it is visible. While the write fails nothing new
    /// is published (the timer retries); once it succeeds the held changes
    /// go out.
    pub(super) fn sync(&mut self, now: Instant) {
        let records = self.alias_records();
        let served = self.served_records();
        let (mut serials, mut digests) = (self.serials.clone(), self.digests.clone());
        let mut changed = false;
        for (z, zone) in self.config.zones.iter().enumerate() {
            let differs = records
                .iter()
                .zip(&served)
                .any(|(r, s)| r.zone == z && r != s);
            if !differs {
                continue;
            }
            let in_zone: Vec<&AliasRecord> = records.iter().filter(|r| r.zone == z).collect();
            let digest = zone_digest(zone, &in_zone);
            if digest != self.digests[z] {
                serials[z] = zone.policy.serial.next(self.serials[z], unix_now());
                digests[z] = digest;
                changed = true;
            }
        }
        if !changed && self.persist.failing().is_none() {
            return;
        }
        // Durable before visible: a serial anyone has seen must survive a
        // crash. While writes fail, a retry writes what is served, so a
        // working disk is noticed even when the held change went away.
        let state = self.persisted(&serials, &digests);
        if self.save_serials(state, now).is_err() {
            return;
        }
        if !changed {
            return;
        }
        let snap = match self.build_snapshot(&records, &serials) {
            Ok(snap) => snap,
            Err(e) => {
                // Reload validated this data; should it still fail, keep
                // serving what is served.
                tracing::error!(error = %e, "cannot build the new answers; keeping the previous ones");
                return;
            }
        };
        (self.serials, self.digests) = (serials, digests);
        let before: Vec<Option<String>> = self
            .served
            .iter()
            .enumerate()
            .map(|(i, &a)| Some(self.describe(i, a)))
            .collect();
        self.served = self.decided();
        self.publish(snap);
        self.announce(&before);
    }

    /// Reports every alias whose served answer differs from `before` (its
    /// description; None for an alias that did not exist): a log line, the
    /// change metric, a webhook. Called after the snapshot is published.
    pub(super) fn announce(&self, before: &[Option<String>]) {
        let unix = unix_now() as i64;
        for (i, from) in before.iter().enumerate() {
            let Some(from) = from else {
                continue;
            };
            let to = self.describe(i, self.served[i]);
            if *from == to {
                continue;
            }
            let alias = &self.config.aliases[i];
            let reason = self.core.aliases()[i].decision.reason;
            self.metrics.answer_changed(&alias.name.to_string(), unix);
            self.metrics
                .on_failover(&alias.name.to_string(), self.served[i] != Answer::Target(0));
            tracing::warn!(
                alias = %alias.name,
                from = %from,
                to = %to,
                reason = %reason,
                serial = self.serials[alias.zone],
                "answer changed"
            );
            if let Some(hooks) = &self.webhooks {
                let change = AnswerChange {
                    alias: alias.name.to_string(),
                    from: from.clone(),
                    to,
                    reason: reason.to_string(),
                    serial: self.serials[alias.zone],
                    time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                };
                // Never wait: a slow receiver must not hold up decisions.
                if hooks.try_send(Event::AnswerChanged(change)).is_err() {
                    tracing::warn!(alias = %alias.name, "webhook queue full: change not announced");
                }
            }
        }
    }
}
