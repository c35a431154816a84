//! What operators and reporters ask of the engine: overrides (persisted
//! before they apply), the release of a manual failback, external checks'
//! reports, and the expiry of both.

use std::time::{Duration, Instant};

use super::Engine;
use crate::config::ProbeSpec;
use crate::health::Outcome;
use crate::state::{Override, Overrides, unix_now};

impl Engine {
    /// Removes expired overrides and those whose alias or Region left the
    /// config; returns true if any went.
    pub(super) fn drop_stale_overrides(&mut self) -> bool {
        let changed = self.drop_stale_overrides_in_memory();
        if changed {
            self.save_overrides_or_log();
        }
        changed
    }

    pub(super) fn save_overrides_or_log(&mut self) {
        if let Err(e) = self.store.save_overrides(self.core.overrides()) {
            self.metrics.persist_failed("overrides");
            tracing::error!(error = format!("{e:#}"), "cannot persist overrides");
        }
    }

    /// `drop_stale_overrides` without writing the file.
    pub(super) fn drop_stale_overrides_in_memory(&mut self) -> bool {
        let now = unix_now();
        let mut overrides = self.core.overrides().clone();
        let before = overrides.len();
        let aliases = &self.config.aliases;
        overrides.retain(|name, o| {
            let known = aliases.iter().any(|a| a.name.to_string() == *name && a.targets.iter().any(|t| t.region == o.region));
            let live = o.until.is_none_or(|u| u > now);
            if !live {
                tracing::warn!(alias = %name, region = %o.region, by = %o.by, "override expired");
            } else if !known {
                tracing::warn!(alias = %name, region = %o.region, "override dropped: alias or region no longer configured");
            }
            known && live
        });
        let changed = overrides.len() != before;
        if changed {
            self.core.set_overrides(overrides);
        }
        changed
    }

    pub(super) fn report(
        &mut self,
        name: &str,
        healthy: bool,
        detail: String,
        by: &str,
    ) -> Result<String, String> {
        let Some(i) = self.config.checks.iter().position(|c| c.name == name) else {
            return Err(format!("no check {name:?}"));
        };
        if !matches!(self.config.checks[i].probe, ProbeSpec::External { .. }) {
            return Err(format!(
                "check {name:?} is not external; only external checks take reports"
            ));
        }
        let now = Instant::now();
        let outcome = Outcome {
            ok: healthy,
            latency: Duration::ZERO,
            detail: format!("{detail} (reported by {by})"),
        };
        let change = self.core.report(i, outcome, now);
        self.metrics.probe(
            name,
            0.0,
            self.core.checks()[i].state.state.healthy(),
            change.is_some(),
        );
        if let Some((from, to)) = change {
            tracing::info!(check = %name, from = ?from, to = ?to, by, "check changed state");
        }
        Ok(format!(
            "{name} reported {}",
            if healthy { "healthy" } else { "unhealthy" }
        ))
    }

    /// Logs external checks whose reports stopped (the core applied
    /// `on_stale`).
    pub(super) fn log_stale(&mut self, went: Vec<usize>) {
        for i in went {
            let spec = &self.config.checks[i];
            if let ProbeSpec::External {
                stale_after,
                on_stale,
            } = spec.probe
            {
                tracing::warn!(check = %spec.name, policy = ?on_stale, "external check is stale: no report for {}", humantime::format_duration(stale_after));
            }
            let healthy = self.core.checks()[i].state.state.healthy();
            self.metrics.probe(&spec.name, 0.0, healthy, true);
        }
    }

    pub(super) fn find_alias(&self, name: &str) -> Result<usize, String> {
        let wanted = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        self.config
            .aliases
            .iter()
            .position(|a| a.name.to_string() == wanted)
            .ok_or(format!("no alias {wanted}"))
    }

    pub(super) fn set_override(&mut self, name: &str, o: Override) -> Result<String, String> {
        let i = self.find_alias(name)?;
        let alias = &self.config.aliases[i];
        if !alias.targets.iter().any(|t| t.region == o.region) {
            let regions: Vec<&str> = alias.targets.iter().map(|t| t.region.as_str()).collect();
            return Err(format!(
                "alias {} has no target {:?}; its targets are {}",
                alias.name,
                o.region,
                regions.join(", ")
            ));
        }
        let key = alias.name.to_string();
        tracing::warn!(alias = %key, region = %o.region, by = %o.by, reason = %o.reason, until = ?o.until, "override set");
        let mut overrides = self.core.overrides().clone();
        overrides.insert(key.clone(), o);
        if let Err(e) = self.store.save_overrides(&overrides) {
            self.metrics.persist_failed("overrides");
            return Err(format!("cannot persist the override: {e:#}"));
        }
        self.core.set_overrides(overrides);
        Ok(format!("{key} pinned"))
    }

    pub(super) fn clear_override(&mut self, name: &str, by: &str) -> Result<String, String> {
        let i = self.find_alias(name)?;
        let key = self.config.aliases[i].name.to_string();
        let mut overrides: Overrides = self.core.overrides().clone();
        let Some(old) = overrides.remove(&key) else {
            if self.config.aliases[i].policy.failback == crate::decide::Failback::Manual {
                // Manual failback: clearing with no pin releases the alias.
                self.core.release(i);
                tracing::warn!(alias = %key, by, "manual failback released");
                return Ok(format!("{key} released"));
            }
            return Err(format!("alias {key} has no override"));
        };
        if let Err(e) = self.store.save_overrides(&overrides) {
            self.metrics.persist_failed("overrides");
            return Err(format!("cannot persist: {e:#}"));
        }
        self.core.set_overrides(overrides);
        // Released: decide afresh, as at start, so a manual failback moves too.
        self.core.release(i);
        tracing::warn!(alias = %key, region = %old.region, by, "override cleared");
        Ok(format!("{key} released"))
    }
}
