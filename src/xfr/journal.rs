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
