//! A reload: all or nothing. The new configuration is applied in memory,
//! its snapshot built and its serials persisted, else everything is put
//! back. Answers the reload moves are announced like any other change.

use std::sync::Arc;
use std::time::Instant;

use hickory_proto::rr::Name;

use super::core::Core;
use super::secondaries::SecondaryZone;
use super::{Engine, describe};
use crate::config::{Config, ProbeSpec};
use crate::health;
use crate::state::{ZoneState, unix_now};
use crate::xfr::tsig::Keyring;

/// What a reload changes in the engine, kept to put back when the reload
/// is refused after all.
struct Undo {
    config: Arc<Config>,
    core: Core,
    keys: Arc<Keyring>,
    serials: Vec<u32>,
    digests: Vec<String>,
    secondaries: Vec<SecondaryZone>,
}

impl Engine {
    /// Swaps in a new configuration. Checks whose definition did not change
    /// keep their state and probe timing; a changed one keeps its state
    /// until its first new result (probed at once, with quick attempts).
    /// Aliases keep their answer where the Region still exists; serials
    /// move only for zones whose served data changed.
    pub(super) fn reload(&mut self, new: Config) -> Result<String, String> {
        let now = Instant::now();
        let probers =
            health::build_probers(&new.checks, &self.alarms).map_err(|e| format!("{e:#}"))?;
        let new = Arc::new(new);
        let old = self.config.clone();
        // What each alias of the new config served before, by name and Region.
        let served_before: Vec<Option<String>> = new
            .aliases
            .iter()
            .map(|a| {
                let j = old.aliases.iter().position(|o| o.name == a.name)?;
                Some(describe(&old, j, *self.served.get(j)?))
            })
            .collect();
        let undo = Undo {
            config: old.clone(),
            core: self.core.clone(),
            keys: self.keys.clone(),
            serials: self.serials.clone(),
            digests: self.digests.clone(),
            secondaries: self.secondaries.clone(),
        };
        self.config = new.clone();
        let overrides_dropped = self.drop_stale_overrides_in_memory();
        let (probe_now, _) = self.core.reload(new, now, unix_now());
        self.keys = Arc::new(Keyring::new(&self.config.keys));
        self.secondaries = self.carried_secondaries(&old);
        // Serials: by origin, moving only where the served data changed.
        let persisted = self.store.load().unwrap_or_default();
        let records = self.alias_records();
        let in_memory: Vec<(Name, ZoneState)> = old
            .zones
            .iter()
            .zip(undo.serials.iter().zip(&undo.digests))
            .map(|(z, (serial, digest))| {
                (
                    z.origin.clone(),
                    ZoneState {
                        serial: *serial,
                        digest: digest.clone(),
                    },
                )
            })
            .collect();
        self.settle_serials(&records, |origin| {
            in_memory
                .iter()
                .find(|(o, _)| o == origin)
                .map(|(_, state)| state.clone())
                .or_else(|| persisted.zones.get(&origin.to_string()).cloned())
        });
        // All or nothing: a snapshot that cannot be built, or serials that
        // cannot be persisted, leave the running configuration in place.
        let built = self
            .build_snapshot(&records, &self.serials)
            .map_err(|e| e.to_string())
            .and_then(|snap| {
                // Only a serial that moved needs writing; while writes fail,
                // a reload that moves none still goes through.
                let state = self.persisted(&self.serials, &self.digests);
                if state != self.written {
                    self.save_serials(state, now)?;
                }
                Ok(snap)
            });
        let snap = match built {
            Ok(snap) => snap,
            Err(e) => {
                self.config = undo.config;
                self.core = undo.core;
                self.keys = undo.keys;
                self.serials = undo.serials;
                self.digests = undo.digests;
                self.secondaries = undo.secondaries;
                let message = format!("reload refused, keeping the running configuration: {e}");
                tracing::error!("{message}");
                return Err(message);
            }
        };
        // An alarm check keeps what it saw only while it watches the same alarm.
        let kept: Vec<String> = self
            .config
            .checks
            .iter()
            .filter(|c| {
                old.checks
                    .iter()
                    .any(|o| o.name == c.name && o.probe == c.probe)
            })
            .filter_map(|c| match &c.probe {
                ProbeSpec::CloudWatchAlarm(a) => Some(crate::health::alarm::board_key(&c.name, a)),
                _ => None,
            })
            .collect();
        self.alarms.retain(&kept);
        if old.webhooks != self.config.webhooks {
            // The old task finishes what it has queued, then ends with its sender.
            self.webhooks = crate::webhook::start(self.config.webhooks.clone());
        }
        self.settings_changed(&old);
        if overrides_dropped {
            self.save_overrides_or_log();
        }
        self.respawn_secondaries();
        self.served = self.decided();
        self.publish(snap);
        // After the new snapshot is out: the watcher reads its targets there.
        self.watcher
            .settings(crate::xfr::watch::Settings::of(&self.config));
        self.announce(&served_before);
        self.prime_metrics();
        self.remember(now);
        // Probe loops: replaced as a set; results of the old ones are dropped.
        for l in self.loops.drain(..) {
            l.abort();
        }
        self.generation += 1;
        if let Some(tx) = &self.probe_tx {
            self.loops = health::spawn_loops(
                &probers,
                &self.config.checks,
                tx,
                self.generation,
                &probe_now,
                &self.metrics,
            );
        }
        let fresh = probe_now.iter().filter(|p| **p).count();
        tracing::warn!(checks_restarted = fresh, serials = ?self.serials, "configuration reloaded");
        Ok(format!(
            "reloaded: {} zones, {} checks ({fresh} new or changed), {} aliases",
            self.config.zones.len(),
            self.config.checks.len(),
            self.config.aliases.len()
        ))
    }

    /// Tokens are replaced at once; settings a running server cannot take
    /// over are said once per reload.
    fn settings_changed(&self, old: &Config) {
        let new = &self.config;
        if old.server.listen != new.server.listen || old.admin_listen != new.admin_listen {
            tracing::warn!("listen addresses changed: they take effect at the next restart");
        }
        if old.server.state_dir != new.server.state_dir {
            // The store stays where it is: moving it empty would let the
            // next start serve serials older than the secondaries hold.
            tracing::warn!(
                from = %old.server.state_dir.display(),
                to = %new.server.state_dir.display(),
                "state_dir changed: it takes effect at the next restart; copy the files of the old one there first, or the next start serves serials the secondaries already passed"
            );
        }
        if old.server.udp_workers != new.server.udp_workers {
            tracing::warn!("udp_workers changed: it takes effect at the next restart");
        }
        if old.server.log_format != new.server.log_format {
            tracing::warn!("log_format changed: it takes effect at the next restart");
        }
        if old.admin_tokens != new.admin_tokens {
            if let Some(cell) = &self.admin_tokens {
                cell.store(Arc::new(new.admin_tokens.clone()));
            }
            tracing::warn!(tokens = new.admin_tokens.len(), "[admin] tokens replaced");
        }
        if old.admin_limits != new.admin_limits {
            tracing::warn!("[admin] limits changed: they take effect at the next restart");
        }
        if old.rrl != new.rrl
            || old.server.cookie_secret != new.server.cookie_secret
            || (&old.server.nsid, &old.server.identity, &old.server.version)
                != (&new.server.nsid, &new.server.identity, &new.server.version)
        {
            tracing::warn!(
                "[rrl], cookie_secret_file, nsid, identity and version changes take effect at the next restart"
            );
        }
    }
}
