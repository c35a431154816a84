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
                tracing::warn!(zone = %origin, error = format!("{e:#}"), "cannot store the zone copy");
            }
        }
        if !publish {
            return;
        }
        let records = self.alias_records();
        self.publish_snapshot(&records);
        self.publish_status(Instant::now());
    }

    /// Starts the transfer tasks of secondary zones; they report through
    /// `commands`.
    pub fn start_secondaries(&mut self, commands: mpsc::Sender<Command>) {
        self.commands_tx = Some(commands);
        self.respawn_secondaries();
    }

    fn respawn_secondaries(&mut self) {
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

    /// After a reload: secondary zones keep their copy by origin, under the
    /// new policy; their tasks restart with the new settings.
    pub(super) fn carry_secondaries(&mut self, old: &Config) {
        let mut previous = std::mem::take(&mut self.secondaries);
        self.secondaries = self
            .config
            .secondaries
            .iter()
            .map(|spec| {
                let Some(j) = old.secondaries.iter().position(|o| o.origin == spec.origin) else {
                    return SecondaryZone::empty();
                };
                let mut z = std::mem::replace(&mut previous[j], SecondaryZone::empty());
                if let Some(d) = &mut z.data {
                    d.policy = spec.policy.clone();
                }
                z
            })
            .collect();
        self.respawn_secondaries();
    }
}
