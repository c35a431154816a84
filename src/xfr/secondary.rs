//! Secondary zones: one task per zone keeps a copy of it from its
//! primaries, on start, on NOTIFY and on the SOA's refresh, retry and expire
//! timers (RFC 1034 §4.3.5). The task only fetches; the engine owns what is
//! served and publishes it.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::client;
use super::tsig::Keyring;
use crate::config::SecondarySpec;
use crate::engine::Command;
use crate::serial::serial_gt;
use crate::zone::StaticZone;

/// Retry interval until a first copy is in hand (no SOA to say otherwise).
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// What a secondary zone's task reports to the engine.
#[derive(Debug)]
pub enum Event {
    /// A new copy, to serve from now on.
    Loaded(Box<StaticZone>),
    /// The primary still has our serial: the expire timer starts over.
    Current,
    /// No primary reached for longer than the SOA's expire: stop answering.
    Expired,
}

/// Where a zone's copy stands when its task starts.
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub soa: Option<SOA>,
    /// When the copy expires unless a primary confirms it first.
    pub expires: Option<Instant>,
}

impl Held {
    /// A copy with this SOA, just confirmed current at `now`.
    pub fn confirmed(soa: SOA, now: Instant) -> Held {
        Held {
            expires: Some(now + secs(soa.expire)),
            soa: Some(soa),
        }
    }
}

pub fn spawn(
    spec: SecondarySpec,
    keys: Arc<Keyring>,
    wake: Arc<Notify>,
    held: Held,
    commands: mpsc::Sender<Command>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(spec, keys, wake, held, commands))
}

async fn run(
    spec: SecondarySpec,
    keys: Arc<Keyring>,
    wake: Arc<Notify>,
    mut held: Held,
    commands: mpsc::Sender<Command>,
) {
    let origin = spec.origin.clone();
    let report = |event: Event| {
        let commands = commands.clone();
        let origin = origin.clone();
        async move {
            let _ = commands.send(Command::Secondary { origin, event }).await;
        }
    };
    let mut expired = false;
    // Refresh at once: on start, a reload, or after a restart.
    let mut next = Instant::now();
    loop {
        let expire_at = held.expires;
        let wake_at = expire_at.map_or(next, |e| next.min(e));
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            () = wake.notified() => next = Instant::now(),
        }
        let now = Instant::now();
        if !expired && expire_at.is_some_and(|e| now >= e) {
            tracing::error!(zone = %origin, "zone expired: no primary answered within the SOA expire time; answering SERVFAIL");
            expired = true;
            // Whatever serial the primary has when it is back, transfer it.
            held.soa = None;
            report(Event::Expired).await;
        }
        if now < next {
            continue;
        }
        let (refresh, retry) = held.soa.as_ref().map_or((FIRST_RETRY, FIRST_RETRY), |s| {
            (secs(s.refresh), secs(s.retry))
        });
        match refresh_once(&spec, &keys, held.soa.as_ref()).await {
            Ok(Some(zone)) => {
                tracing::info!(zone = %origin, serial = zone.soa.serial, records = zone.records.len(), "zone transferred");
                held = Held::confirmed(zone.soa.clone(), now);
                expired = false;
                next = now + secs(zone.soa.refresh);
                report(Event::Loaded(Box::new(zone))).await;
            }
            Ok(None) => {
                if let Some(soa) = held.soa.take() {
                    held = Held::confirmed(soa, now);
                }
                expired = false;
                next = now + refresh;
                report(Event::Current).await;
            }
            Err(e) => {
                tracing::warn!(zone = %origin, error = format!("{e:#}"), retry_in = ?retry, "zone refresh failed");
                next = now + retry;
            }
        }
    }
}

fn secs(s: i32) -> Duration {
    // SOA timers are unsigned 32-bit on the wire; hickory keeps them as i32.
    // Guard against zero timers in a primary's SOA: at least a second.
    Duration::from_secs(u64::from((s as u32).max(1)))
}

/// Asks each primary in turn; the first that answers decides. A new copy
/// when its serial is later than ours (or we have none), None when ours is
/// current.
async fn refresh_once(
    spec: &SecondarySpec,
    keys: &Keyring,
    ours: Option<&SOA>,
) -> anyhow::Result<Option<StaticZone>> {
    let mut last_error = anyhow::anyhow!("no primaries configured");
    for primary in &spec.primaries {
        let serial = match client::soa_serial(&spec.origin, primary, keys).await {
            Ok(s) => s,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        if ours.is_some_and(|o| !serial_gt(serial, o.serial)) {
            return Ok(None);
        }
        match client::axfr(&spec.origin, primary, keys).await {
            Ok(records) => return zone_from(spec, records).map(Some),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// A transferred zone as the engine serves it; records outside the zone are
/// dropped (a primary has no business sending them).
fn zone_from(spec: &SecondarySpec, mut records: Vec<Record>) -> anyhow::Result<StaticZone> {
    if records.is_empty() {
        anyhow::bail!("the copy holds no records");
    }
    let first = records.remove(0);
    let RData::SOA(soa) = first.data else {
        anyhow::bail!("the transfer does not start with the SOA");
    };
    let origin: &Name = &spec.origin;
    let before = records.len();
    records.retain(|r| {
        origin.zone_of(&r.name) && r.record_type() != hickory_proto::rr::RecordType::SOA
    });
    if records.len() != before {
        tracing::warn!(zone = %origin, dropped = before - records.len(), "transfer held records outside the zone; dropped them");
    }
    Ok(StaticZone {
        origin: origin.clone(),
        soa,
        soa_ttl: first.ttl,
        records,
        policy: spec.policy.clone(),
    })
}

/// The copy as it is stored: each record's wire form in base64, SOA first.
pub fn to_stored(zone: &StaticZone) -> Vec<String> {
    let soa = Record::from_rdata(
        zone.origin.clone(),
        zone.soa_ttl,
        RData::SOA(zone.soa.clone()),
    );
    std::iter::once(&soa)
        .chain(&zone.records)
        .filter_map(|r| r.to_bytes().ok())
        .map(|bytes| data_encoding::BASE64.encode(&bytes))
        .collect()
}

/// A stored copy, if it decodes and has not expired by `unix_now`: the zone
/// and where its timers stand.
pub fn restore(
    spec: &SecondarySpec,
    copy: &crate::state::SecondaryCopy,
    unix_now: u64,
) -> Option<(StaticZone, Held)> {
    let decoded: Result<Vec<Record>, String> = copy
        .records
        .iter()
        .map(|text| {
            let bytes = data_encoding::BASE64
                .decode(text.as_bytes())
                .map_err(|e| e.to_string())?;
            Record::from_bytes(&bytes).map_err(|e| e.to_string())
        })
        .collect();
    let zone = match decoded
        .map_err(|e| anyhow::anyhow!(e))
        .and_then(|r| zone_from(spec, r))
    {
        Ok(z) => z,
        Err(e) => {
            tracing::warn!(zone = %spec.origin, error = format!("{e:#}"), "stored copy is unreadable; transferring afresh");
            return None;
        }
    };
    let age = Duration::from_secs(unix_now.saturating_sub(copy.checked));
    if age >= secs(zone.soa.expire) {
        tracing::warn!(zone = %spec.origin, age = ?age, "stored copy has expired; transferring afresh");
        return None;
    }
    let held = Held {
        soa: Some(zone.soa.clone()),
        expires: Some(Instant::now() + (secs(zone.soa.expire) - age)),
    };
    Some((zone, held))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SecondaryCopy;

    fn spec() -> SecondarySpec {
        SecondarySpec {
            origin: Name::from_ascii("example.com.").unwrap(),
            primaries: vec![],
            policy: Default::default(),
        }
    }

    #[test]
    fn a_stored_copy_round_trips_until_it_expires() {
        let text = "$TTL 300\n@ IN SOA ns1 h 9 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n\
                    t IN TXT \"two words\" \"x;y\"\nm IN MX 10 mail\nmail IN AAAA 2001:db8::1\n";
        let zone =
            crate::zone::parse_zone(text, std::path::Path::new("z"), &spec().origin).unwrap();
        let now = 1_795_000_000;
        let copy = SecondaryCopy {
            checked: now - 100,
            records: to_stored(&zone),
        };
        let (back, held) = restore(&spec(), &copy, now).expect("a fresh copy restores");
        assert_eq!(back.records, zone.records);
        assert_eq!(back.soa, zone.soa);
        assert_eq!(held.soa.unwrap().serial, 9);
        let old = SecondaryCopy {
            checked: now - 86_400,
            ..copy
        };
        assert!(restore(&spec(), &old, now).is_none(), "past the SOA expire");
    }
}
