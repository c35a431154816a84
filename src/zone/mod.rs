//! Static zone data: RFC 1035 master files parsed with hickory-proto's parser
//! and checked for what an authoritative server needs (SOA and NS at the apex,
//! nothing outside the zone, no CNAME beside other data).
//!
//! hickory's parser reports no line numbers, so on a problem we find the line
//! ourselves by re-parsing prefixes of the file cut at record boundaries. That
//! only happens on the error path.

mod lines;

use std::collections::BTreeMap;
use std::path::Path;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;

use crate::config::ZonePolicy;
use crate::config::error::Problem;

/// A zone as loaded from its master file, before any failover answers.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticZone {
    /// Lower-case, fully qualified.
    pub origin: Name,
    pub soa: SOA,
    pub soa_ttl: u32,
    /// Every record of the file except the SOA, in file order per RRset.
    pub records: Vec<Record>,
    /// How it is replicated; set by the configuration, default when parsed.
    pub policy: ZonePolicy,
}

impl StaticZone {
    /// TTL for negative answers (RFC 2308 §5): the lesser of the SOA's own TTL
    /// and its MINIMUM field.
    pub fn negative_ttl(&self) -> u32 {
        self.soa_ttl.min(self.soa.minimum)
    }

    pub fn has_record(&self, name: &Name, rtype: RecordType) -> bool {
        self.records
            .iter()
            .any(|r| r.record_type() == rtype && &r.name == name)
    }

    /// Non-apex names holding NS records: the zone's delegation points.
    pub fn delegations(&self) -> impl Iterator<Item = &Name> {
        self.records
            .iter()
            .filter(|r| r.record_type() == RecordType::NS && r.name != self.origin)
            .map(|r| &r.name)
    }
}

type ParsedRecords = BTreeMap<RrKey, RecordSet>;

fn parse_text(text: &str, file: &Path, origin: &Name) -> Result<(Name, ParsedRecords), String> {
    Parser::new(text, Some(file.to_path_buf()), Some(origin.clone()))
        .parse()
        .map_err(|e| e.to_string())
}

/// Parses and checks one zone file. `origin` must be fully qualified.
pub fn parse_zone(text: &str, file: &Path, origin: &Name) -> Result<StaticZone, Vec<Problem>> {
    let origin = origin.to_lowercase();
    let records = match parse_text(text, file, &origin) {
        Ok((_, records)) => records,
        Err(message) => {
            let (line, detail) =
                lines::first_failing_record(text, |prefix| parse_text(prefix, file, &origin).err())
                    .unwrap_or((0, message));
            return Err(vec![
                Problem::new(file, line, 1, format!("zone file does not parse: {detail}")).hint(
                    "write RFC 1035 master-file syntax: `name [ttl] [class] type rdata`; \
                     quote TXT strings and close every parenthesis",
                ),
            ]);
        }
    };
    let locate = |pred: &dyn Fn(&ParsedRecords) -> bool| {
        lines::first_record_where(text, |prefix| {
            parse_text(prefix, file, &origin).is_ok_and(|(_, r)| pred(&r))
        })
        .unwrap_or(0)
    };

    let mut problems = Vec::new();
    let mut soa = None;
    let mut out = Vec::new();
    for (key, set) in &records {
        for record in set.records_without_rrsigs() {
            let mut record = record.clone();
            record.name = record.name.to_lowercase();
            if let Some((message, hint)) = unservable(&record, &origin) {
                let name = key.name.clone();
                let rtype = key.record_type;
                let line = locate(&move |r: &ParsedRecords| {
                    r.contains_key(&RrKey::new(name.clone(), rtype))
                });
                problems.push(Problem::new(file, line, 1, message).hint(hint));
                continue;
            }
            match &record.data {
                RData::SOA(s) => soa = Some((s.clone(), record.ttl)),
                _ => out.push(record),
            }
        }
    }

    // CNAME must stand alone at its name (RFC 1034 §3.6.2).
    for cname in out.iter().filter(|r| r.record_type() == RecordType::CNAME) {
        if out
            .iter()
            .any(|r| r.name == cname.name && r.record_type() != RecordType::CNAME)
            || (cname.name == origin)
        {
            problems.push(
                Problem::new(
                    file,
                    locate(&|r: &ParsedRecords| {
                        r.contains_key(&RrKey::new(LowerName::new(&cname.name), RecordType::CNAME))
                    }),
                    1,
                    format!("{} has a CNAME and other data", cname.name),
                )
                .hint("a CNAME must be the only record at its name, and never at the apex"),
            );
        }
    }

    let Some((soa, soa_ttl)) = soa else {
        problems.push(
            Problem::new(
                file,
                0,
                0,
                format!("zone {origin} has no SOA record at its apex"),
            )
            .hint("add `@ 3600 IN SOA ns1.<zone>. hostmaster.<zone>. 1 7200 3600 1209600 60`"),
        );
        return Err(problems);
    };
    if !out
        .iter()
        .any(|r| r.record_type() == RecordType::NS && r.name == origin)
    {
        problems.push(
            Problem::new(
                file,
                0,
                0,
                format!("zone {origin} has no NS record at its apex"),
            )
            .hint("add `@ 3600 IN NS ns1.<zone>.` naming the servers that answer for it"),
        );
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(StaticZone {
        origin,
        soa,
        soa_ttl,
        records: out,
        policy: ZonePolicy::default(),
    })
}

/// Why a parsed record cannot be served, with a hint, if it cannot.
fn unservable(record: &Record, origin: &Name) -> Option<(String, &'static str)> {
    let name = &record.name;
    if !origin.zone_of(name) {
        return Some((
            format!("record {name} is outside the zone {origin}"),
            "use a name relative to the origin, or an absolute name ending in the origin",
        ));
    }
    if record.dns_class != DNSClass::IN {
        return Some((
            format!(
                "record {name} has class {}; only IN is served",
                record.dns_class
            ),
            "write IN or leave the class out",
        ));
    }
    if name.is_wildcard() {
        return Some((
            format!("wildcard record {name} is not supported"),
            "list each name explicitly",
        ));
    }
    match record.record_type() {
        RecordType::DNAME => Some((
            "DNAME records are not supported".into(),
            "use CNAME records for single names",
        )),
        RecordType::SOA if name != origin => Some((
            format!("SOA record at {name} but the zone origin is {origin}"),
            "put the SOA at the apex (`@`)",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.com.").unwrap()
    }

    const GOOD: &str = "$TTL 300\n\
@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n\
@ IN NS ns1\n\
ns1 IN A 127.0.0.1\n\
www 60 IN A 192.0.2.1\n";

    #[test]
    fn good_zone_loads() {
        let z = parse_zone(GOOD, Path::new("z"), &origin()).unwrap();
        assert_eq!(z.soa.serial, 7);
        assert_eq!(z.negative_ttl(), 60);
        assert_eq!(z.records.len(), 3);
    }

    #[test]
    fn parse_error_names_its_line() {
        let text = format!("{GOOD}bad IN A not-an-address\n");
        let err = parse_zone(&text, Path::new("z.zone"), &origin()).unwrap_err();
        assert_eq!(err[0].line, 6, "{err:?}");
        assert!(err[0].message.contains("does not parse"), "{err:?}");
    }

    #[test]
    fn missing_ns_is_reported() {
        let text = "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n";
        let err = parse_zone(text, Path::new("z"), &origin()).unwrap_err();
        assert!(err[0].message.contains("no NS record"), "{err:?}");
    }

    #[test]
    fn out_of_zone_record_points_at_line() {
        let text = format!("{GOOD}elsewhere.org. IN A 192.0.2.9\n");
        let err = parse_zone(&text, Path::new("z"), &origin()).unwrap_err();
        assert_eq!(err[0].line, 6, "{err:?}");
        assert!(err[0].message.contains("outside the zone"));
    }

    #[test]
    fn cname_beside_other_data_is_rejected() {
        let text = format!("{GOOD}www IN CNAME ns1\n");
        let err = parse_zone(&text, Path::new("z"), &origin()).unwrap_err();
        assert!(err[0].message.contains("CNAME and other data"), "{err:?}");
        assert_eq!(err[0].line, 6);
    }

    #[test]
    fn wildcards_and_foreign_classes_are_rejected() {
        let text = format!("{GOOD}*.dyn IN A 192.0.2.7\n");
        let err = parse_zone(&text, Path::new("z"), &origin()).unwrap_err();
        assert!(err[0].message.contains("wildcard"), "{err:?}");
        assert_eq!(err[0].line, 6);
    }
}
