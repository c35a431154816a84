//! Secondary zones: one task per zone keeps a copy of it from its
//! primaries, on start, on NOTIFY and on the SOA's refresh, retry and expire
//! timers (RFC 1034 §4.3.5). The task only fetches; the engine owns what is
//! served and publishes it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::tsig::Keyring;
use super::{client, journal};
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

/// A zone's copy, as its task works from it (IXFR applies to it).
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub copy: Option<StaticZone>,
    /// When the copy expires unless a primary confirms it first.
    pub expires: Option<Instant>,
}

impl Held {
    /// A copy just confirmed current at `now`.
    pub fn confirmed(copy: StaticZone, now: Instant) -> Held {
        Held {
            expires: Some(now + secs(copy.soa.expire)),
            copy: Some(copy),
        }
    }

    /// The copy (if any) is current as of `now`: the expire timer restarts.
    pub fn reconfirm(&mut self, now: Instant) {
        if let Some(c) = &self.copy {
            self.expires = Some(now + secs(c.soa.expire));
        }
    }

    fn soa(&self) -> Option<&SOA> {
        self.copy.as_ref().map(|c| &c.soa)
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
    // Refresh at once: on start, a reload, or after a restart.
    let mut next = Instant::now();
    loop {
        let wake_at = held.expires.map_or(next, |e| next.min(e));
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            () = wake.notified() => next = Instant::now(),
        }
        let now = Instant::now();
        if held.expires.is_some_and(|e| now >= e) {
            tracing::error!(zone = %origin, "zone expired: no primary answered within the SOA expire time; answering SERVFAIL");
            // Nothing held, no timer left: whatever serial the primary has
            // when it is back is transferred whole.
            held = Held::default();
            report(Event::Expired).await;
        }
        if now < next {
            continue;
        }
        let (refresh, retry) = held.soa().map_or((FIRST_RETRY, FIRST_RETRY), |s| {
            (secs(s.refresh), secs(s.retry))
        });
        match refresh_once(&spec, &keys, held.copy.as_ref()).await {
            Ok(Some(zone)) => {
                tracing::info!(zone = %origin, serial = zone.soa.serial, records = zone.records.len(), "zone transferred");
                held = Held::confirmed(zone.clone(), now);
                next = now + secs(zone.soa.refresh);
                report(Event::Loaded(Box::new(zone))).await;
            }
            Ok(None) => {
                held.reconfirm(now);
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
/// current. With a copy in hand, IXFR brings it up to date.
async fn refresh_once(
    spec: &SecondarySpec,
    keys: &Keyring,
    ours: Option<&StaticZone>,
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
        if ours.is_some_and(|o| !serial_gt(serial, o.soa.serial)) {
            return Ok(None);
        }
        let our_soa = ours
            .map(|o| Record::from_rdata(o.origin.clone(), o.soa_ttl, RData::SOA(o.soa.clone())));
        let applied = match client::transfer(&spec.origin, primary, keys, our_soa.as_ref()).await {
            Ok(records) => match ours {
                Some(o) if journal::is_incremental(&records) => apply(o, &records),
                Some(_) if records.len() == 1 => return Ok(None),
                _ => zone_from(spec, records),
            },
            Err(e) => Err(e),
        };
        match applied {
            Ok(zone) => return Ok(Some(zone)),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Applies an IXFR chain (RFC 1995 §4) to `ours`: for each difference, the
/// old SOA (which must be the serial we hold), the records to delete, the
/// new SOA, the records to add; the final SOA closes it.
pub fn apply(ours: &StaticZone, records: &[Record]) -> anyhow::Result<StaticZone> {
    let soa_of = |r: &Record| match &r.data {
        RData::SOA(s) => Some(s.clone()),
        _ => None,
    };
    let final_soa = records
        .first()
        .and_then(soa_of)
        .context("IXFR does not start with the SOA")?;
    let wire = |r: &Record| r.to_bytes().unwrap_or_default();
    let mut zone = ours.clone();
    let mut at = 1;
    loop {
        let old = records
            .get(at)
            .and_then(soa_of)
            .context("IXFR ends inside a difference")?;
        if old.serial == final_soa.serial && at + 1 == records.len() {
            break; // the closing SOA
        }
        anyhow::ensure!(
            old.serial == zone.soa.serial,
            "IXFR difference starts at serial {}, we hold {}",
            old.serial,
            zone.soa.serial
        );
        at += 1;
        while let Some(r) = records.get(at).filter(|r| soa_of(r).is_none()) {
            let gone = wire(r);
            let before = zone.records.len();
            zone.records.retain(|x| wire(x) != gone);
            anyhow::ensure!(
                zone.records.len() < before,
                "IXFR deletes a record we do not hold: {r}"
            );
            at += 1;
        }
        let new = records
            .get(at)
            .and_then(soa_of)
            .context("IXFR difference has no new SOA")?;
        zone.soa_ttl = records[at].ttl;
        zone.soa = new;
        at += 1;
        while let Some(r) = records.get(at).filter(|r| soa_of(r).is_none()) {
            if ours.origin.zone_of(&r.name) {
                zone.records.push(r.clone());
            }
            at += 1;
        }
    }
    anyhow::ensure!(
        zone.soa.serial == final_soa.serial,
        "IXFR chain stops short of serial {}",
        final_soa.serial
    );
    Ok(zone)
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
    // An AXFR repeats the SOA at its end: that one is expected, not dropped
    // data; only names outside the zone are worth a warning.
    records.retain(|r| r.record_type() != hickory_proto::rr::RecordType::SOA);
    let before = records.len();
    records.retain(|r| origin.zone_of(&r.name));
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
        expires: Some(Instant::now() + (secs(zone.soa.expire) - age)),
        copy: Some(zone.clone()),
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

    /// A primary's zone answering `id`, at `serial`, as its snapshot.
    fn version(
        serial: u32,
        id: &str,
        base: Option<&crate::snapshot::Snapshot>,
    ) -> crate::snapshot::Snapshot {
        let text =
            "$TTL 300\n@ IN SOA ns1 h 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";
        let zone =
            crate::zone::parse_zone(text, std::path::Path::new("z"), &spec().origin).unwrap();
        let alias = crate::snapshot::AliasRecord {
            name: Name::from_ascii("desktop.example.com.").unwrap(),
            zone: 0,
            ttl: 30,
            answer: crate::snapshot::AliasAnswer::Txt(id.into()),
        };
        let input = crate::snapshot::ZoneInput {
            origin: &zone.origin,
            data: Some(&zone),
            serial,
            policy: &zone.policy,
            refresh: None,
        };
        let mut snap = crate::snapshot::Snapshot::build(
            &[input],
            &[alias],
            Default::default(),
            Default::default(),
        )
        .expect("the test zone builds");
        if let Some(base) = base {
            crate::xfr::journal::carry(&mut snap, base);
        }
        snap
    }

    /// The zone a secondary would hold after transferring `snap` whole.
    fn copy_of(snap: &crate::snapshot::Snapshot) -> StaticZone {
        zone_from(&spec(), crate::xfr::journal::axfr(&snap.zones[0])).unwrap()
    }

    #[test]
    fn an_ixfr_chain_brings_a_copy_to_the_primarys_version() {
        let v5 = version(5, "PDX1", None);
        let v6 = version(6, "IAD1", Some(&v5));
        let v7 = version(7, "DUB1", Some(&v6));
        let ours = copy_of(&v5);
        let chain = crate::xfr::journal::ixfr(&v7.zones[0], 5);
        assert!(journal::is_incremental(&chain));
        let updated = apply(&ours, &chain).unwrap();
        let want = copy_of(&v7);
        assert_eq!(updated.soa.serial, 7);
        let mut got: Vec<String> = updated.records.iter().map(|r| r.to_string()).collect();
        let mut expected: Vec<String> = want.records.iter().map(|r| r.to_string()).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        // A chain that starts at a serial we do not hold is an error, not a
        // silently wrong copy.
        let from_6 = crate::xfr::journal::ixfr(&v7.zones[0], 6);
        let err = apply(&ours, &from_6).unwrap_err();
        assert!(
            err.to_string().contains("starts at serial 6, we hold 5"),
            "{err}"
        );
        // The AXFR form is not a chain.
        assert!(!journal::is_incremental(&crate::xfr::journal::ixfr(
            &v7.zones[0],
            1
        )));
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
        assert_eq!(held.copy.unwrap().soa.serial, 9);
        let old = SecondaryCopy {
            checked: now - 86_400,
            ..copy
        };
        assert!(restore(&spec(), &old, now).is_none(), "past the SOA expire");
    }
}
