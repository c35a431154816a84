//! Secondary zones as the engine holds them: the copy served, where its
//! timers stand, the task that refreshes it. Tasks fetch; the engine stores
//! the copy (for restarts) and publishes it like any other change.

use std::sync::Arc;
use std::time::Instant;

use hickory_proto::rr::Name;
use tokio::sync::{Notify, mpsc};

use super::{Command, Engine};
use crate::config::Config;
use crate::state::{SecondaryCopy, StateStore, unix_now};
use crate::xfr::secondary;
use crate::zone::StaticZone;

/// A secondary zone as the engine holds it.
#[derive(Clone)]
pub(super) struct SecondaryZone {
    /// The copy served; None before the first transfer and after expiry.
    pub(super) data: Option<StaticZone>,
    held: secondary::Held,
    /// Wakes the zone's task: the DNS front rings it on NOTIFY.
    pub(super) wake: Arc<Notify>,
}

impl SecondaryZone {
    fn empty() -> SecondaryZone {
        SecondaryZone {
            data: None,
            held: secondary::Held::default(),
            wake: Arc::new(Notify::new()),
        }
    }
}

/// The secondary zones of `config` at start: each with its stored copy
/// while that has not expired.
pub(super) fn restore(config: &Config, store: &StateStore) -> Vec<SecondaryZone> {
    config
        .secondaries
        .iter()
        .map(|spec| {
            let restored = store
                .load_secondary(&spec.origin.to_string())
                .and_then(|copy| secondary::restore(spec, &copy, unix_now()));
            match restored {
                Some((zone, held)) => {
                    tracing::info!(zone = %spec.origin, serial = zone.soa.serial, "serving the stored copy until the primary is reached");
                    SecondaryZone {
                        data: Some(zone),
                        held,
                        wake: Arc::new(Notify::new()),
                    }
                }
                None => SecondaryZone::empty(),
            }
        })
        .collect()
}

impl Engine {
    /// Applies what a secondary zone's task found.
    pub(super) fn secondary_event(&mut self, origin: &Name, event: secondary::Event) {
        let Some(i) = self
            .config
            .secondaries
            .iter()
            .position(|s| &s.origin == origin)
        else {
            return; // a task of a zone reloaded away
        };
        let z = &mut self.secondaries[i];
        let now = tokio::time::Instant::now();
        let publish = match event {
            secondary::Event::Loaded(zone) => {
                z.held = secondary::Held::confirmed((*zone).clone(), now);
                z.data = Some(*zone);
                true
            }
            secondary::Event::Current => {
                z.held.reconfirm(now);
                z.data.is_none()
            }
            secondary::Event::Expired => {
                // Nothing to serve, nor to build an IXFR on: the next
                // transfer is a whole one.
                z.data = None;
                z.held = secondary::Held::default();
                true
            }
        };
        // Kept for restarts, with the time it was last known current.
        if let Some(data) = &z.data {
            let copy = SecondaryCopy {
                checked: unix_now(),
                records: secondary::to_stored(data),
            };
            if let Err(e) = self.store.save_secondary(&origin.to_string(), &copy) {
                self.metrics.persist_failed("secondary");
                tracing::warn!(zone = %origin, error = format!("{e:#}"), "cannot store the zone copy");
            }
        }
        if !publish {
            return;
        }
        // The primary zones as served: a change held back for its serial
        // stays held.
        let records = self.served_records();
        match self.build_snapshot(&records, &self.serials) {
            Ok(snap) => self.publish(snap),
            Err(e) => {
                tracing::error!(zone = %origin, error = %e, "cannot build the answers with the new copy; keeping the previous ones");
            }
        }
        self.publish_status(Instant::now());
    }

    /// Starts the transfer tasks of secondary zones; they report through
    /// `commands`.
    pub fn start_secondaries(&mut self, commands: mpsc::Sender<Command>) {
        self.commands_tx = Some(commands);
        self.respawn_secondaries();
    }

    pub(super) fn respawn_secondaries(&mut self) {
        for t in self.secondary_tasks.drain(..) {
            t.abort();
        }
        let Some(tx) = &self.commands_tx else {
            return;
        };
        self.secondary_tasks = self
            .config
            .secondaries
            .iter()
            .zip(&self.secondaries)
            .map(|(spec, z)| {
                secondary::spawn(
                    spec.clone(),
                    self.keys.clone(),
                    z.wake.clone(),
                    z.held.clone(),
                    tx.clone(),
                )
            })
            .collect();
    }

    /// For a reload: the secondary zones of the new config, each keeping its
    /// copy by origin, under the new policy. The current ones stay as they
    /// are until the reload is committed (then `respawn_secondaries`
    /// restarts the tasks with the new settings).
    pub(super) fn carried_secondaries(&self, old: &Config) -> Vec<SecondaryZone> {
        self.config
            .secondaries
            .iter()
            .map(|spec| {
                let Some(z) = old
                    .secondaries
                    .iter()
                    .position(|o| o.origin == spec.origin)
                    .and_then(|j| self.secondaries.get(j))
                else {
                    return SecondaryZone::empty();
                };
                let mut z = z.clone();
                if let Some(d) = &mut z.data {
                    d.policy = spec.policy.clone();
                }
                z
            })
            .collect()
    }
}
