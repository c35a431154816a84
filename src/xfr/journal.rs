//! The IXFR history (RFC 1995): for each zone, the differences between its
//! last few versions, carried from one snapshot to the next. Pure data; the
//! engine extends it when it publishes, the DNS front reads it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use hickory_proto::rr::{RData, Record};
use hickory_proto::serialize::binary::BinEncodable;

use crate::serial::serial_gt;
use crate::snapshot::{ServedZone, Snapshot};

/// Versions kept per zone; a secondary further behind gets a full transfer.
pub const DEPTH: usize = 64;

/// One step from one serial to the next.
#[derive(Debug, PartialEq, Eq)]
pub struct Delta {
    /// The SOA before and after, as sent in the IXFR.
    pub from: Record,
    pub to: Record,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

/// Recent deltas of one zone, oldest first, each starting where the
/// previous one ended.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    deltas: VecDeque<Arc<Delta>>,
}

impl Journal {
    /// The deltas that bring a copy at `serial` up to date, or None when the
    /// journal does not reach back to exactly that serial.
    pub fn since(&self, serial: u32) -> Option<impl Iterator<Item = &Delta>> {
        let start = self
            .deltas
            .iter()
            .position(|d| soa_serial(&d.from) == serial)?;
        Some(self.deltas.iter().skip(start).map(|d| &**d))
    }

    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }

    fn extended(&self, delta: Delta) -> Journal {
        let mut deltas = self.deltas.clone();
        // A serial cannot start two deltas: a history that went round (e.g. a
        // zone file reset) starts over.
        if deltas.back().is_some_and(|d| d.to != delta.from) {
            deltas.clear();
        }
        deltas.push_back(Arc::new(delta));
        while deltas.len() > DEPTH {
            deltas.pop_front();
        }
        Journal { deltas }
    }
}

pub fn soa_serial(soa: &Record) -> u32 {
    match &soa.data {
        RData::SOA(s) => s.serial,
        _ => 0,
    }
}

/// Gives each zone of `new` its history: the old one, extended by the
/// difference when the serial moved forward; none when the zone is new, or
/// was unavailable on either side.
pub fn carry(new: &mut Snapshot, old: &Snapshot) {
    for zone in &mut new.zones {
        let Some(before) = old.zone(&zone.origin) else {
            continue;
        };
        if !zone.available || !before.available {
            continue;
        }
        if zone.serial == before.serial {
            zone.journal = before.journal.clone();
        } else if serial_gt(zone.serial, before.serial) {
            let old_records = before.records();
            let new_records = zone.records();
            let (removed, added) = diff(&old_records, &new_records);
            zone.journal = Arc::new(before.journal.extended(Delta {
                from: before.soa.clone(),
                to: zone.soa.clone(),
                removed,
                added,
            }));
        }
    }
}

/// Records only in `old`, and records only in `new`, each in their order.
pub fn diff(old: &[Record], new: &[Record]) -> (Vec<Record>, Vec<Record>) {
    // Records are compared by their wire form (hickory's Record has no Hash).
    let wire = |r: &Record| r.to_bytes().unwrap_or_default();
    let in_old: HashSet<Vec<u8>> = old.iter().map(wire).collect();
    let in_new: HashSet<Vec<u8>> = new.iter().map(wire).collect();
    let removed = old
        .iter()
        .filter(|r| !in_new.contains(&wire(r)))
        .cloned()
        .collect();
    let added = new
        .iter()
        .filter(|r| !in_old.contains(&wire(r)))
        .cloned()
        .collect();
    (removed, added)
}

/// An IXFR answer in difference form: a second SOA, of another serial,
/// right after the first (the AXFR form has zone data there).
pub fn is_incremental(records: &[Record]) -> bool {
    match (
        records.first().map(|r| &r.data),
        records.get(1).map(|r| &r.data),
    ) {
        (Some(RData::SOA(new)), Some(RData::SOA(old))) => new.serial != old.serial,
        _ => false,
    }
}

/// The whole zone as AXFR sends it: SOA, every other record, SOA again.
pub fn axfr(zone: &ServedZone) -> Vec<Record> {
    let mut out = vec![zone.soa.clone()];
    out.extend(zone.records());
    out.push(zone.soa.clone());
    out
}

/// The IXFR answer for a client at `client_serial`: the current SOA alone
/// when it is up to date, the chain of deltas when the journal reaches back
/// to it, the whole zone otherwise.
pub fn ixfr(zone: &ServedZone, client_serial: u32) -> Vec<Record> {
    if !serial_gt(zone.serial, client_serial) {
        return vec![zone.soa.clone()];
    }
    let Some(deltas) = zone.journal.since(client_serial) else {
        return axfr(zone);
    };
    let mut out = vec![zone.soa.clone()];
    for d in deltas {
        out.push(d.from.clone());
        out.extend(d.removed.iter().cloned());
        out.push(d.to.clone());
        out.extend(d.added.iter().cloned());
    }
    out.push(zone.soa.clone());
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::snapshot::{AliasAnswer, AliasRecord, ZoneInput};
    use crate::zone::{StaticZone, parse_zone};

    fn zone() -> StaticZone {
        let text =
            "$TTL 300\n@ IN SOA ns1 h 5 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";
        parse_zone(
            text,
            Path::new("z"),
            &Name::from_ascii("example.com.").unwrap(),
        )
        .unwrap()
    }

    /// The zone with the alias answering `id`, at `serial`.
    fn version(zone: &StaticZone, serial: u32, id: &str) -> Snapshot {
        let alias = AliasRecord {
            name: Name::from_ascii("desktop.example.com.").unwrap(),
            zone: 0,
            ttl: 30,
            answer: AliasAnswer::Txt(id.into()),
        };
        let input = ZoneInput {
            origin: &zone.origin,
            data: Some(zone),
            serial,
            policy: &zone.policy,
            refresh: None,
        };
        Snapshot::build(&[input], &[alias], Default::default(), Default::default())
            .expect("the test zone builds")
    }

    /// A snapshot history: serial 5 answers ids[0], 6 ids[1], and so on.
    fn history(ids: &[&str]) -> Snapshot {
        let z = zone();
        let mut snap = version(&z, 5, ids[0]);
        for (i, id) in ids.iter().enumerate().skip(1) {
            let mut next = version(&z, 5 + i as u32, id);
            carry(&mut next, &snap);
            snap = next;
        }
        snap
    }

    fn summary(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| match &r.data {
                RData::SOA(s) => format!("SOA {}", s.serial),
                RData::TXT(t) => format!("TXT {t}"),
                _ => r.record_type().to_string(),
            })
            .collect()
    }

    #[test]
    fn ixfr_chains_every_step_since_the_clients_serial() {
        let snap = history(&["PDX1", "IAD1", "PDX1"]);
        let z = &snap.zones[0];
        assert_eq!(z.journal.len(), 2);
        assert_eq!(
            summary(&ixfr(z, 5)),
            [
                "SOA 7", "SOA 5", "TXT PDX1", "SOA 6", "TXT IAD1", "SOA 6", "TXT IAD1", "SOA 7",
                "TXT PDX1", "SOA 7"
            ]
        );
        assert_eq!(
            summary(&ixfr(z, 6)),
            ["SOA 7", "SOA 6", "TXT IAD1", "SOA 7", "TXT PDX1", "SOA 7"]
        );
        assert_eq!(summary(&ixfr(z, 7)), ["SOA 7"], "up to date");
        assert_eq!(
            summary(&ixfr(z, 9)),
            ["SOA 7"],
            "ahead of us: nothing newer to send"
        );
        let full = summary(&ixfr(z, 4));
        assert_eq!(full, summary(&axfr(z)), "unknown serial: the whole zone");
        assert_eq!(full.first(), full.last());
        assert!(full.contains(&"TXT PDX1".to_string()) && full.contains(&"NS".to_string()));
    }

    #[test]
    fn the_journal_keeps_only_the_last_depth_versions() {
        let ids: Vec<&str> = (0..DEPTH + 10)
            .map(|i| if i % 2 == 0 { "A1" } else { "B2" })
            .collect();
        let snap = history(&ids);
        let z = &snap.zones[0];
        assert_eq!(z.journal.len(), DEPTH);
        let newest = z.serial;
        let oldest_kept = newest - DEPTH as u32;
        assert!(z.journal.since(oldest_kept).is_some());
        assert!(z.journal.since(oldest_kept - 1).is_none());
        assert_eq!(
            ixfr(z, oldest_kept - 1).first().map(|r| r.record_type()),
            Some(RecordType::SOA)
        );
        assert_eq!(ixfr(z, oldest_kept - 1).len(), axfr(z).len());
    }

    #[test]
    fn an_unchanged_serial_keeps_the_history_and_a_gap_starts_it_over() {
        let z = zone();
        let snap = history(&["PDX1", "IAD1"]);
        let mut same = version(&z, 6, "IAD1");
        carry(&mut same, &snap);
        assert_eq!(same.zones[0].journal.len(), 1);
        // A delta that does not start where the last one ended cannot be
        // chained: the history starts over from it.
        let gap = same.zones[0].journal.extended(Delta {
            from: version(&z, 50, "X").zones[0].soa.clone(),
            to: version(&z, 51, "Y").zones[0].soa.clone(),
            removed: vec![],
            added: vec![],
        });
        assert_eq!(gap.len(), 1, "the old chain is dropped");
        assert!(gap.since(5).is_none() && gap.since(50).is_some());
    }
}
