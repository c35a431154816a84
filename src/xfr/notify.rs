//! Outgoing NOTIFY (RFC 1996): every new serial of a zone is announced to
//! each of its configured secondaries, retried with doubling waits until
//! acknowledged or `ATTEMPTS` are spent. A newer serial replaces an
//! announcement still being retried for the same secondary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, Record};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client;
use super::journal::soa_serial;
use super::tsig::Keyring;
use crate::config::Remote;
use crate::metrics::Metrics;

/// Sends per secondary and serial before giving up (the secondary's own
/// refresh timer still brings it up to date).
pub const ATTEMPTS: u32 = 5;
/// Wait for an acknowledgement after the first send; doubles after each.
const FIRST_WAIT: Duration = Duration::from_secs(1);

struct Announce {
    soa: Record,
    targets: Vec<Remote>,
    keys: Arc<Keyring>,
}

/// Tests: a hook called at each announcement.
#[cfg(test)]
pub type AnnounceHook = Arc<dyn Fn(&Record) + Send + Sync>;

/// The handle the engine announces new serials through.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Announce>,
    /// Tests: sees every announcement as it is made (what is served at
    /// that instant is what a fast secondary would find).
    #[cfg(test)]
    pub on_announce: Option<AnnounceHook>,
}

impl Notifier {
    /// Starts the sending task.
    pub fn start(metrics: Arc<Metrics>) -> Notifier {
        let (tx, mut rx) = mpsc::unbounded_channel::<Announce>();
        tokio::spawn(async move {
            let mut running: HashMap<(Name, SocketAddr), JoinHandle<()>> = HashMap::new();
            while let Some(a) = rx.recv().await {
                running.retain(|_, task| !task.is_finished());
                for target in a.targets {
                    let key = (a.soa.name.clone(), target.addr);
                    if let Some(old) = running.remove(&key) {
                        old.abort();
                    }
                    let task =
                        tokio::spawn(send(a.soa.clone(), target, a.keys.clone(), metrics.clone()));
                    running.insert(key, task);
                }
            }
        });
        Notifier {
            tx,
            #[cfg(test)]
            on_announce: None,
        }
    }

    /// Queues NOTIFY of `soa`'s serial to `targets`; never waits.
    pub fn announce(&self, soa: Record, targets: Vec<Remote>, keys: Arc<Keyring>) {
        #[cfg(test)]
        if let Some(seen) = &self.on_announce {
            seen(&soa);
        }
        let _ = self.tx.send(Announce { soa, targets, keys });
    }
}

async fn send(soa: Record, target: Remote, keys: Arc<Keyring>, metrics: Arc<Metrics>) {
    let zone = soa.name.to_string();
    let serial = soa_serial(&soa);
    let mut wait = FIRST_WAIT;
    for attempt in 1..=ATTEMPTS {
        let started = tokio::time::Instant::now();
        match client::notify(&soa, &target, &keys).await {
            Ok(()) => {
                metrics.notify(&zone, "sent", "acknowledged");
                tracing::info!(%zone, serial, to = %target.addr, attempt, "NOTIFY acknowledged");
                return;
            }
            Err(client::NotifyError::Answered(rcode)) => {
                // A refusal is configuration (ACLs, keys, a peer that is
                // not a secondary of the zone): say it, and stop asking.
                metrics.notify(&zone, "sent", "refused");
                // REFUSED, NOTAUTH …: the mnemonic operators grep for.
                let rcode = format!("{rcode:?}").to_uppercase();
                tracing::warn!(%zone, serial, to = %target.addr, %rcode, "NOTIFY refused by the peer: check that it is a secondary of this zone and allows NOTIFY from this address (and key)");
                return;
            }
            Err(client::NotifyError::Unanswered(e)) => {
                metrics.notify(&zone, "sent", "unanswered");
                tracing::debug!(%zone, serial, to = %target.addr, attempt, error = format!("{e:#}"), "NOTIFY not acknowledged");
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep_until(started + wait).await;
            wait *= 2;
        }
    }
    metrics.notify(&zone, "sent", "gave_up");
    tracing::warn!(%zone, serial, to = %target.addr, attempts = ATTEMPTS, "NOTIFY never acknowledged; the secondary will catch up on its SOA refresh timer");
}
