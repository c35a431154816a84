//! The answer table: an immutable snapshot of every served zone with the
//! failover TXT records filled in and the current serials, plus pre-built
//! wire responses for the common queries. Built off the query path, published
//! with one atomic store; readers see the old table or the new, never a mix.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::rdata::{SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use prometheus_client::metrics::counter::Counter;

use tokio::sync::Notify;

use crate::config::ZonePolicy;
use crate::dns::fast::FastIndex;
use crate::xfr::journal::Journal;
use crate::xfr::tsig::Keyring;
use crate::zone::StaticZone;

/// The published snapshot. The DNS front only ever reads it.
pub type SnapshotCell = Arc<ArcSwap<Snapshot>>;

/// What one alias contributes to its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AliasRecord {
    pub name: Name,
    pub zone: usize,
    pub ttl: u32,
    pub answer: AliasAnswer,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AliasAnswer {
    /// A TXT record holding this connection identifier.
    Txt(String),
    NoData,
    ServFail,
}

/// Data at one owner name. Empty `rrsets` marks an empty non-terminal.
#[derive(Debug, Default, Clone)]
pub struct Node {
    /// Sorted by record type, so "first RRset" (minimal ANY) is stable.
    pub rrsets: Vec<(RecordType, Vec<Record>)>,
    /// Holds NS records below the apex: a zone cut.
    pub delegation: bool,
    /// An alias whose policy answers SERVFAIL right now.
    pub servfail: bool,
}

impl Node {
    pub fn rrset(&self, rtype: RecordType) -> Option<&[Record]> {
        self.rrsets
            .iter()
            .find(|(t, _)| *t == rtype)
            .map(|(_, r)| r.as_slice())
    }

    fn add(&mut self, record: Record) {
        let rtype = record.record_type();
        match self.rrsets.binary_search_by_key(&rtype, |(t, _)| *t) {
            Ok(i) => self.rrsets[i].1.push(record),
            Err(i) => self.rrsets.insert(i, (rtype, vec![record])),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServedZone {
    pub origin: Name,
    pub serial: u32,
    /// The SOA as served in answers, carrying `serial`.
    pub soa: Record,
    /// min(SOA TTL, SOA MINIMUM): the TTL of the SOA in negative answers.
    pub negative_ttl: u32,
    pub nodes: HashMap<LowerName, Node>,
    /// False for a secondary zone with no data yet, or expired: SERVFAIL.
    pub available: bool,
    /// Who may transfer it, whom to NOTIFY, who may NOTIFY us.
    pub policy: Arc<ZonePolicy>,
    /// Recent changes, for IXFR.
    pub journal: Arc<Journal>,
    /// For a secondary zone: wakes its transfer task (an incoming NOTIFY).
    pub refresh: Option<Arc<Notify>>,
}

impl ServedZone {
    pub fn node(&self, name: &Name) -> Option<&Node> {
        self.nodes.get(&LowerName::new(name))
    }

    /// The SOA as it goes in the authority section of negative answers.
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        soa.ttl = self.negative_ttl;
        soa
    }

    /// Every record but the SOA, sorted by owner and type: a stable order
    /// for transfers and for differences between versions.
    pub fn records(&self) -> Vec<Record> {
        let mut owners: Vec<(&LowerName, &Node)> = self.nodes.iter().collect();
        owners.sort_by(|a, b| a.0.cmp(b.0));
        owners
            .into_iter()
            .flat_map(|(_, node)| node.rrsets.iter())
            .filter(|(t, _)| *t != RecordType::SOA)
            .flat_map(|(_, records)| records.iter().cloned())
            .collect()
    }

    /// Every record must go on the wire on its own (answers, transfers):
    /// the first that cannot is the error.
    fn check_encodes(&self) -> Result<(), BuildError> {
        let mut buf = Vec::new();
        for node in self.nodes.values() {
            for record in node.rrsets.iter().flat_map(|(_, records)| records) {
                buf.clear();
                let mut encoder = BinEncoder::new(&mut buf);
                if let Err(e) = record.emit(&mut encoder) {
                    return Err(BuildError {
                        zone: self.origin.to_string(),
                        owner: record.name.to_string(),
                        rtype: record.record_type(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The zone cut at or above `name` (below the apex), if any.
    pub fn cut_above(&self, name: &Name) -> Option<&Name> {
        let mut n = name.clone();
        while n.num_labels() > self.origin.num_labels() {
            if let Some((owner, node)) = self.nodes.get_key_value(&LowerName::new(&n))
                && node.delegation
            {
                return Some(&**owner);
            }
            n = n.base_name();
        }
        None
    }
}

pub struct Snapshot {
    /// Deepest origin first, so the first zone containing a name is its zone.
    pub zones: Vec<ServedZone>,
    pub fast: FastIndex,
    /// Per alias name, the counter of TXT answers with its current identifier.
    pub answer_counters: HashMap<LowerName, Counter>,
    /// TSIG keys that may sign requests.
    pub keys: Arc<Keyring>,
}

/// Data a snapshot cannot be built from: a record (or the answer holding it)
/// that cannot be put on the wire. Building never panics on data; start-up
/// stops with this error and a reload is refused with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "zone {zone}: {owner} {rtype} cannot be served: {reason}; hint: a TXT character-string holds \
     at most 255 bytes (split a long value into several quoted strings, as for DKIM keys) and \
     a record's data at most 65,535 bytes"
)]
pub struct BuildError {
    /// Zone origin and owner, fully qualified.
    pub zone: String,
    pub owner: String,
    pub rtype: RecordType,
    /// What the encoder said.
    pub reason: String,
}

/// One zone to serve, whatever its source.
pub struct ZoneInput<'a> {
    pub origin: &'a Name,
    /// None: a secondary zone with nothing (valid) to serve.
    pub data: Option<&'a StaticZone>,
    pub serial: u32,
    pub policy: &'a ZonePolicy,
    pub refresh: Option<Arc<Notify>>,
}

impl Snapshot {
    /// Builds the table; `AliasRecord::zone` indexes `zones`.
    pub fn build(
        zones: &[ZoneInput],
        aliases: &[AliasRecord],
        answer_counters: HashMap<LowerName, Counter>,
        keys: Arc<Keyring>,
    ) -> Result<Snapshot, BuildError> {
        let mut served: Vec<ServedZone> = zones
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let in_zone = aliases.iter().filter(|a| a.zone == i);
                let mut z = match input.data {
                    Some(data) => served_zone(data, input.serial, in_zone),
                    None => unavailable(input.origin),
                };
                z.policy = Arc::new(input.policy.clone());
                z.refresh = input.refresh.clone();
                z
            })
            .collect();
        for zone in &served {
            zone.check_encodes()?;
        }
        served.sort_by_key(|z| std::cmp::Reverse(z.origin.num_labels()));
        let mut snap = Snapshot {
            zones: served,
            fast: FastIndex::default(),
            answer_counters,
            keys,
        };
        snap.fast = FastIndex::build(&snap)?;
        Ok(snap)
    }

    /// A snapshot serving nothing (REFUSED for every name), before the first
    /// real one.
    pub fn empty() -> Snapshot {
        Snapshot {
            zones: Vec::new(),
            fast: FastIndex::default(),
            answer_counters: HashMap::new(),
            keys: Arc::default(),
        }
    }

    /// The zone a name belongs to: the deepest served origin above it.
    pub fn zone_for(&self, name: &Name) -> Option<&ServedZone> {
        self.zones.iter().find(|z| z.origin.zone_of(name))
    }

    /// Counts a TXT answer for an alias that went through the full path (the
    /// fast path counts its own).
    pub fn count_answer(&self, qname: &Name, qtype: RecordType) {
        if qtype == RecordType::TXT
            && let Some(c) = self.answer_counters.get(&LowerName::new(qname))
        {
            c.inc();
        }
    }

    pub fn zone(&self, origin: &Name) -> Option<&ServedZone> {
        self.zones.iter().find(|z| &z.origin == origin)
    }
}

fn served_zone<'a>(
    zone: &StaticZone,
    serial: u32,
    aliases: impl Iterator<Item = &'a AliasRecord>,
) -> ServedZone {
    let mut soa_data: SOA = zone.soa.clone();
    soa_data.serial = serial;
    let soa = Record::from_rdata(zone.origin.clone(), zone.soa_ttl, RData::SOA(soa_data));
    let mut nodes: HashMap<LowerName, Node> = HashMap::new();
    let insert = |nodes: &mut HashMap<LowerName, Node>, record: Record| {
        let key = LowerName::new(&record.name);
        let delegation = record.record_type() == RecordType::NS && record.name != zone.origin;
        let n = nodes.entry(key).or_default();
        n.delegation |= delegation;
        n.add(record);
    };
    insert(&mut nodes, soa.clone());
    for r in &zone.records {
        insert(&mut nodes, r.clone());
    }
    for a in aliases {
        match &a.answer {
            AliasAnswer::Txt(id) => {
                let txt = TXT::from_bytes(vec![id.as_bytes()]);
                insert(
                    &mut nodes,
                    Record::from_rdata(a.name.clone(), a.ttl, RData::TXT(txt)),
                );
            }
            AliasAnswer::NoData => {
                nodes.entry(LowerName::new(&a.name)).or_default();
            }
            AliasAnswer::ServFail => {
                nodes.entry(LowerName::new(&a.name)).or_default().servfail = true;
            }
        }
    }
    // Empty non-terminals: every name between an owner and the apex exists.
    let owners: Vec<Name> = nodes.keys().map(|k| Name::from(k.clone())).collect();
    for owner in owners {
        let mut n = owner.base_name();
        while n.num_labels() > zone.origin.num_labels() {
            nodes.entry(LowerName::new(&n)).or_default();
            n = n.base_name();
        }
    }
    ServedZone {
        origin: zone.origin.clone(),
        serial,
        soa,
        negative_ttl: zone.negative_ttl(),
        nodes,
        available: true,
        policy: Arc::default(),
        journal: Arc::default(),
        refresh: None,
    }
}

/// A zone we answer SERVFAIL for: configured, but without data to serve.
fn unavailable(origin: &Name) -> ServedZone {
    let soa = SOA::new(origin.clone(), origin.clone(), 0, 0, 0, 0, 0);
    ServedZone {
        origin: origin.clone(),
        serial: 0,
        soa: Record::from_rdata(origin.clone(), 0, RData::SOA(soa)),
        negative_ttl: 0,
        nodes: HashMap::new(),
        available: false,
        policy: Arc::default(),
        journal: Arc::default(),
        refresh: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n\
                        @ IN NS ns1\nns1 IN A 127.0.0.1\n";

    fn build_with(record: Record) -> Result<Snapshot, BuildError> {
        let origin = Name::from_ascii("example.com.").unwrap();
        let mut zone = crate::zone::parse_zone(ZONE, std::path::Path::new("z"), &origin).unwrap();
        zone.records.push(record);
        let input = ZoneInput {
            origin: &zone.origin,
            data: Some(&zone),
            serial: 7,
            policy: &zone.policy,
            refresh: None,
        };
        Snapshot::build(&[input], &[], HashMap::new(), Arc::default())
    }

    fn txt(owner: &str, strings: &[&[u8]]) -> Record {
        let name = Name::from_ascii(owner).unwrap();
        Record::from_rdata(name, 300, RData::TXT(TXT::from_bytes(strings.to_vec())))
    }

    #[test]
    fn a_record_that_cannot_be_encoded_is_an_error_naming_it() {
        // A DKIM key pasted as one 300-byte character-string.
        let long = [b'k'; 300];
        let Err(e) = build_with(txt("dkim.example.com.", &[&long])) else {
            panic!("a 300-byte character-string must not build");
        };
        assert_eq!(e.zone, "example.com.");
        assert_eq!(e.owner, "dkim.example.com.");
        assert_eq!(e.rtype, RecordType::TXT);
        let text = e.to_string();
        assert!(
            text.contains("dkim.example.com. TXT") && text.contains("255"),
            "{text}"
        );
        // RDATA over 65,535 bytes: 300 strings of 255 bytes.
        let chunk = [b'x'; 255];
        let many: Vec<&[u8]> = (0..300).map(|_| &chunk[..]).collect();
        let e = build_with(txt("big.example.com.", &many)).err().unwrap();
        assert_eq!(e.owner, "big.example.com.");
        // The same data split into legal strings builds.
        let split: Vec<&[u8]> = long.chunks(255).collect();
        assert!(build_with(txt("dkim.example.com.", &split)).is_ok());
    }
}
