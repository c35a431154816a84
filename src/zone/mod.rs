//! Static zone data: RFC 1035 master files parsed with hickory-proto's parser
//! and checked for what an authoritative server needs (SOA and NS at the apex,
//! nothing outside the zone, no CNAME beside other data, every record and
//! RRset encodable in a DNS message).
//!
//! hickory's parser reports no line numbers, so `load.rs` cuts the file into
//! entries itself, in one pass, and parses each entry on its own: every record
//! keeps its file and line, and checking stays linear in the zone's size.
//! Zone files are read only if regular and at most `source::MAX_ZONE_BYTES`
//! long, includes counted.

mod entries;
mod load;
pub mod source;
mod wire;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType, RrKey};

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

/// Parses and checks one zone file. `origin` must be fully qualified.
/// Included files are read from the file system, bounded like the zone file.
pub fn parse_zone(text: &str, file: &Path, origin: &Name) -> Result<StaticZone, Vec<Problem>> {
    parse_zone_with(text, file, origin, &|p: &Path| {
        source::read_text(p, source::MAX_ZONE_BYTES)
    })
}

/// Parses and checks one zone file whose text is `text`; `read` fetches the
/// files it includes (it should refuse what `source::read_text` refuses).
pub fn parse_zone_with(
    text: &str,
    file: &Path,
    origin: &Name,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<StaticZone, Vec<Problem>> {
    let origin = origin.to_lowercase();
    let mut problems = load::Problems::default();
    let load::Loaded { files, records } = load::load(text, file, &origin, read, &mut problems);
    let path = |place: &load::Place| files.get(place.file).map_or(file, |p| p.as_path());

    // Each record alone: in the zone, class IN, a supported type, encodable.
    let mut soa: Option<(SOA, u32, load::Place)> = None;
    let mut kept: Vec<(Record, load::Place, usize)> = Vec::with_capacity(records.len());
    for (mut record, place) in records {
        let place = &place;
        record.name = record.name.to_lowercase();
        if let Some((message, hint)) = unservable(&record, &origin) {
            problems.push(Problem::new(path(place), place.line, 1, message).hint(hint));
            continue;
        }
        let len = match wire::rdata_len(&record) {
            Ok(len) => len,
            Err((message, hint)) => {
                problems.push(Problem::new(path(place), place.line, 1, message).hint(hint));
                continue;
            }
        };
        if let RData::SOA(s) = &record.data {
            if let Some((_, _, first)) = &soa {
                problems.push(
                    Problem::new(
                        path(place),
                        place.line,
                        1,
                        format!(
                            "a second SOA record for {origin} (the first is at {}:{})",
                            path(first).display(),
                            first.line
                        ),
                    )
                    .hint("keep one SOA record, at the apex"),
                );
            } else {
                soa = Some((s.clone(), record.ttl, *place));
            }
            continue;
        }
        kept.push((record, *place, len));
    }

    // RRsets: identical records collapse into one; sorted by owner and type,
    // so the RRsets of one owner are next to each other.
    let mut sets: BTreeMap<RrKey, Vec<usize>> = BTreeMap::new();
    for (i, (record, _, _)) in kept.iter().enumerate() {
        sets.entry(RrKey::new(
            LowerName::new(&record.name),
            record.record_type(),
        ))
        .or_default()
        .push(i);
    }
    // Indices into `kept` in the order served: by RRset, file order within.
    let mut order: Vec<usize> = Vec::with_capacity(kept.len());
    let mut owner: Option<(&LowerName, Option<usize>, bool)> = None;
    let cname_beside_data = |owner: Option<(&LowerName, Option<usize>, bool)>,
                             problems: &mut load::Problems| {
        // CNAME must stand alone at its name (RFC 1034 §3.6.2).
        if let Some((name, Some(cname), other)) = owner
            && (other || Name::from(name) == origin)
            && let Some((_, place, _)) = kept.get(cname)
        {
            problems.push(
                Problem::new(
                    path(place),
                    place.line,
                    1,
                    format!("{name} has a CNAME and other data"),
                )
                .hint("a CNAME must be the only record at its name, and never at the apex"),
            );
        }
    };
    for (key, indices) in &sets {
        let mut seen: HashSet<&RData> = HashSet::with_capacity(indices.len());
        let unique: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| kept.get(i).is_some_and(|(r, _, _)| seen.insert(&r.data)))
            .collect();
        let same_owner = owner.is_some_and(|(name, _, _)| *name == key.name);
        if !same_owner {
            cname_beside_data(owner.take(), &mut problems);
            owner = Some((&key.name, None, false));
        }
        if let Some((_, cname, other)) = &mut owner {
            if key.record_type == RecordType::CNAME {
                *cname = unique.first().copied();
            } else {
                *other = true;
            }
        }
        if key.record_type == RecordType::CNAME
            && let Some((_, place, _)) = unique.get(1).and_then(|&i| kept.get(i))
        {
            problems.push(
                Problem::new(
                    path(place),
                    place.line,
                    1,
                    format!("{} has more than one CNAME record", key.name),
                )
                .hint("a name can be an alias of one name only: keep one CNAME"),
            );
        }
        let records: Vec<&Record> = unique
            .iter()
            .filter_map(|&i| kept.get(i))
            .map(|(r, _, _)| r)
            .collect();
        let lens: Vec<usize> = unique
            .iter()
            .filter_map(|&i| kept.get(i))
            .map(|(_, _, l)| *l)
            .collect();
        if let Some(message) =
            wire::rrset_problem(&Name::from(&key.name), key.record_type, &records, &lens)
            && let Some((_, place, _)) = unique.first().and_then(|&i| kept.get(i))
        {
            problems.push(
                Problem::new(path(place), place.line, 1, message)
                    .hint("spread the data over several names, or remove records"),
            );
        }
        order.extend(unique);
    }
    cname_beside_data(owner.take(), &mut problems);
    let mut slots: Vec<Option<Record>> = kept.into_iter().map(|(r, _, _)| Some(r)).collect();
    let out: Vec<Record> = order
        .iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect();

    let Some((soa, soa_ttl, _)) = soa else {
        problems.push(
            Problem::new(
                file,
                0,
                0,
                format!("zone {origin} has no SOA record at its apex"),
            )
            .hint("add `@ 3600 IN SOA ns1.<zone>. hostmaster.<zone>. 1 7200 3600 1209600 60`"),
        );
        return Err(problems.into_vec(file));
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
        return Err(problems.into_vec(file));
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
    use hickory_proto::serialize::txt::Parser;

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
    fn words_after_fixed_record_data_are_refused() {
        for (extra, line) in [
            ("www2 IN A 192.0.2.1 300", "A record"),
            ("www3 A 192.0.2.1 192.0.2.2", "A record"),
            ("mx 300 IN MX 10 mail.example.com. 20 backup", "MX record"),
            ("   IN AAAA ::1 ::2", "AAAA record"),
            (
                "alias IN CNAME www ; a comment is fine\nalias2 CNAME www extra",
                "CNAME record",
            ),
        ] {
            let text = format!("{GOOD}{extra}\n");
            let err = parse_zone(&text, Path::new("z"), &origin()).unwrap_err();
            assert!(err[0].message.contains(line), "{extra}: {err:?}");
            assert!(
                err[0].message.contains("after its data"),
                "{extra}: {err:?}"
            );
        }
        // What a fixed type allows, written every usual way, still loads.
        let fine = format!(
            "{GOOD}a2 IN A 192.0.2.3 ; comment\nIN 60 A 192.0.2.4\n\
             m IN MX ( 10\n mail.example.com. ) ; x\n\
             s 60 IN SRV 0 5 443 www\n\
             t IN TXT \"a\" b c\n"
        );
        parse_zone(&fine, Path::new("z"), &origin()).unwrap();
    }

    #[test]
    fn a_txt_record_without_a_string_is_refused() {
        let text = format!("{GOOD}note IN TXT\n");
        let err = parse_zone(&text, Path::new("z"), &origin()).unwrap_err();
        assert_eq!(err[0].line, 6, "{err:?}");
        assert!(
            err[0].message.contains("holds no character-string"),
            "{err:?}"
        );
        let text = format!("{GOOD}note IN TXT \"\"\n");
        parse_zone(&text, Path::new("z"), &origin()).unwrap();
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

    /// Records as comparable text: owner, TTL, class, type, data.
    fn flat(records: impl IntoIterator<Item = Record>) -> Vec<String> {
        let mut v: Vec<String> = records
            .into_iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    r.name.to_lowercase(),
                    r.ttl,
                    r.dns_class,
                    r.record_type(),
                    r.data
                )
            })
            .collect();
        v.sort();
        v
    }

    fn no_includes(p: &Path) -> std::io::Result<String> {
        Err(std::io::Error::other(format!("no {}", p.display())))
    }

    /// Entry by entry, the records are those hickory reads from the whole file.
    #[test]
    fn entries_read_like_the_whole_file() {
        let zones = [
            GOOD,
            "$ORIGIN example.com.\n$TTL 1h\n@ IN SOA ns1 hostmaster ( 5 ; serial\n\t7200 3600\n 1209600 60 )\n\
             @ NS ns1\n  NS ns2.example.net.\nns1 A 127.0.0.1\n\t300 AAAA ::1\n",
            // No $TTL: each record takes the last one written.
            "@ 100 IN SOA ns1 h 1 2 3 4 5\n@ NS ns1\nwww 60 A 192.0.2.1\n A 192.0.2.2\nmail MX 10 www\n",
            "@ 3600 IN SOA ns1 h 1 2 3 4 5\r\n@ NS ns1\r\ntxt TXT \"a b\" \"c;d\" \"e\\\"f\" plain\r\n\
             multi TXT \"line one\nline two\"\n$ORIGIN sub.example.com.\nx CNAME y\ny A 192.0.2.3\n$ORIGIN example.com.\nz 5 IN A 192.0.2.4\n",
            "@ 60 SOA ns1 h 1 2 3 4 5\n@ NS ns1\na\\.b A 192.0.2.1\nsrv._tcp SRV 0 5 5060 sip\n  ; comment\n\ncaa CAA 0 issue \"ca.example.net\"\n",
        ];
        for text in zones {
            let (_, whole) = Parser::new(text, None, Some(origin())).parse().unwrap();
            let whole = flat(
                whole
                    .into_values()
                    .flat_map(|s| s.records_without_rrsigs().cloned().collect::<Vec<_>>()),
            );
            let mut problems = load::Problems::default();
            let loaded = load::load(text, Path::new("z"), &origin(), &no_includes, &mut problems);
            assert!(problems.is_empty(), "{:?}", problems.kept);
            assert_eq!(
                flat(loaded.records.into_iter().map(|(r, _)| r)),
                whole,
                "{text}"
            );
        }
        // Unlike hickory, a relative $ORIGIN is relative to the current origin, as in BIND.
        let text = format!("{GOOD}$ORIGIN sub\nx CNAME y\n");
        let z = parse_zone(&text, Path::new("z"), &origin()).unwrap();
        let x = Name::from_ascii("x.sub.example.com.").unwrap();
        assert!(z.has_record(&x, RecordType::CNAME), "{:?}", z.records);
    }

    fn big_zone(n: usize) -> String {
        let mut text = String::from(GOOD);
        for i in 0..n {
            text.push_str(&format!("h{i} IN A 192.0.2.{}\n", i % 250));
        }
        text
    }

    #[test]
    fn an_error_on_the_last_line_of_a_big_zone_names_that_line() {
        let mut text = big_zone(20_000);
        text.push_str("broken IN A 999.1.1.1\n");
        let err = parse_zone(&text, Path::new("z"), &origin()).unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        assert_eq!(err[0].line, 20_006, "{err:?}");
        assert!(err[0].message.contains("does not parse"), "{err:?}");
    }

    #[test]
    fn every_bad_line_is_reported_up_to_a_cap() {
        let mut text = String::from(GOOD);
        for i in 0..(load::MAX_PROBLEMS + 5) {
            text.push_str(&format!("o{i}.elsewhere.org. IN A 192.0.2.1\n"));
        }
        let err = parse_zone(&text, Path::new("z"), &origin()).unwrap_err();
        assert_eq!(err.len(), load::MAX_PROBLEMS + 1, "{err:?}");
        assert_eq!(err[0].line, 6);
        assert_eq!(err[load::MAX_PROBLEMS - 1].line, 5 + load::MAX_PROBLEMS);
        assert!(
            err[load::MAX_PROBLEMS]
                .message
                .contains("5 more problem(s)"),
            "{err:?}"
        );
    }

    #[test]
    fn many_cnames_load_and_cnames_are_checked_per_name() {
        let mut text = String::from(GOOD);
        for i in 0..20_000 {
            text.push_str(&format!("c{i} IN CNAME www\n"));
        }
        let z = parse_zone(&text, Path::new("z"), &origin()).unwrap();
        assert_eq!(z.records.len(), 20_003);
        let err = parse_zone(
            &format!("{text}c7 IN CNAME ns1\n@ CNAME www\n"),
            Path::new("z"),
            &origin(),
        )
        .unwrap_err();
        assert!(
            err.iter()
                .any(|p| p.line == 20_006 && p.message.contains("more than one CNAME")),
            "{err:?}"
        );
        assert!(
            err.iter()
                .any(|p| p.line == 20_007 && p.message.contains("CNAME and other data")),
            "{err:?}"
        );
    }

    #[test]
    fn a_blank_owner_is_the_previous_owner() {
        let text = format!("{GOOD}multi 30 IN A 192.0.2.1\n\t\tIN AAAA 2001:db8::1\n  TXT \"x\"\n");
        let z = parse_zone(&text, Path::new("z"), &origin()).unwrap();
        let multi = Name::from_ascii("multi.example.com.").unwrap();
        assert!(z.has_record(&multi, RecordType::AAAA));
        assert!(z.has_record(&multi, RecordType::TXT));
        assert!(
            z.records
                .iter()
                .all(|r| r.record_type() != RecordType::TXT || r.ttl == 300)
        );
    }

    #[test]
    fn identical_records_collapse() {
        let text = format!("{GOOD}www 60 IN A 192.0.2.1\n");
        let z = parse_zone(&text, Path::new("z"), &origin()).unwrap();
        assert_eq!(z.records.len(), 3);
    }

    #[test]
    fn a_long_txt_string_is_refused_at_its_line() {
        let key = "k".repeat(300);
        let text = format!("{GOOD}dkim TXT \"v=DKIM1; p={key}\"\n");
        let err = parse_zone(&text, Path::new("z.zone"), &origin()).unwrap_err();
        assert_eq!(err[0].line, 6, "{err:?}");
        assert!(
            err[0].message.contains("character-string of 311 bytes"),
            "{err:?}"
        );
        assert_eq!(err[0].hint.as_deref(), Some(wire::SPLIT_HINT));
    }

    #[test]
    fn a_dkim_key_split_over_lines_in_parentheses_reads_as_written() {
        let text = format!(
            "{GOOD}mail._domainkey IN TXT ( \"v=DKIM1; h=sha256; k=rsa; \" ; the key\n\t\"p=MIIBIjAN)\"\n\t\"IDAQAB\" )  ; end\n"
        );
        let z = parse_zone(&text, Path::new("z"), &origin()).unwrap();
        let txt = z
            .records
            .iter()
            .find_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.clone()),
                _ => None,
            })
            .unwrap();
        let strings: Vec<&[u8]> = txt.iter().map(|s| &s[..]).collect();
        assert_eq!(
            strings,
            [
                &b"v=DKIM1; h=sha256; k=rsa; "[..],
                b"p=MIIBIjAN)",
                b"IDAQAB"
            ]
        );
    }

    #[test]
    fn txt_data_over_64k_is_refused_at_its_line() {
        let part = format!("\"{}\" ", "x".repeat(255));
        let text = format!("{GOOD}big TXT {}\nsmall TXT \"ok\"\n", part.repeat(260));
        let err = parse_zone(&text, Path::new("z.zone"), &origin()).unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        assert_eq!(err[0].line, 6, "{err:?}");
        assert!(err[0].message.contains("66560 bytes of data"), "{err:?}");
    }

    #[test]
    fn an_rrset_too_big_for_one_message_is_refused() {
        let part = format!("\"{}\" ", "x".repeat(255));
        let text = format!(
            "{GOOD}big TXT {}\nbig TXT {} \"y\"\n",
            part.repeat(200),
            part.repeat(200)
        );
        let err = parse_zone(&text, Path::new("z.zone"), &origin()).unwrap_err();
        assert!(
            err[0].message.contains("a DNS message holds at most 65535"),
            "{err:?}"
        );
        assert_eq!(err[0].line, 6);
    }

    #[test]
    fn a_second_soa_and_a_typeless_line_are_refused() {
        let text = format!(
            "{GOOD}@ IN SOA ns1 hostmaster 8 7200 3600 1209600 60\nlonely 300\n$GENERATE 1-3 h$ A 1.2.3.$\n"
        );
        let err = parse_zone(&text, Path::new("z"), &origin()).unwrap_err();
        assert_eq!(err.len(), 3, "{err:?}");
        assert_eq!(
            (err[0].line, err[1].line, err[2].line),
            (6, 7, 8),
            "{err:?}"
        );
        assert!(err[0].message.contains("second SOA"), "{err:?}");
        assert!(err[1].message.contains("no record type"), "{err:?}");
        assert!(
            err[2].message.contains("unknown control entry $GENERATE"),
            "{err:?}"
        );
    }

    #[test]
    fn includes_are_read_through_the_reader_with_their_own_lines_and_origin() {
        let read = |p: &Path| -> std::io::Result<String> {
            match p.to_str() {
                Some("zones/hosts.inc") => Ok(
                    "; hosts\nh1 A 192.0.2.1\n$ORIGIN other.example.com.\nh2 A 192.0.2.2\n".into(),
                ),
                Some("zones/sub.inc") => Ok("s1 A 192.0.2.3\nbad A 1.2.3\n".into()),
                _ => no_includes(p),
            }
        };
        let text =
            format!("{GOOD}$INCLUDE hosts.inc\nafter A 192.0.2.9\n$INCLUDE \"sub.inc\" sub\n");
        let err =
            parse_zone_with(&text, Path::new("zones/main.zone"), &origin(), &read).unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        assert_eq!(err[0].file, Path::new("zones/sub.inc"));
        assert_eq!(err[0].line, 2);
        let text =
            format!("{GOOD}$INCLUDE hosts.inc\nafter A 192.0.2.9\n$INCLUDE \"sub.inc\" sub\n")
                .replace("$INCLUDE \"sub.inc\" sub\n", "");
        let z = parse_zone_with(&text, Path::new("zones/main.zone"), &origin(), &read).unwrap();
        for name in [
            "h1.example.com.",
            "h2.other.example.com.",
            "after.example.com.",
        ] {
            assert!(
                z.has_record(&Name::from_ascii(name).unwrap(), RecordType::A),
                "{name}"
            );
        }
    }

    #[test]
    fn includes_are_bounded() {
        // A file including itself stops at the depth limit.
        let looping = |_: &Path| -> std::io::Result<String> { Ok("$INCLUDE self.inc\n".into()) };
        let text = format!("{GOOD}$INCLUDE self.inc\n");
        let err = parse_zone_with(&text, Path::new("z"), &origin(), &looping).unwrap_err();
        assert!(
            err[0].message.contains("nested more than 16 deep"),
            "{err:?}"
        );
        // Wide fan-out stops at the count limit.
        let wide = |p: &Path| -> std::io::Result<String> {
            Ok(if p.ends_with("leaf.inc") {
                String::new()
            } else {
                "$INCLUDE leaf.inc\n".repeat(100)
            })
        };
        let text = format!("{GOOD}{}", "$INCLUDE mid.inc\n".repeat(20));
        let err = parse_zone_with(&text, Path::new("z"), &origin(), &wide).unwrap_err();
        assert!(
            err[0].message.contains("more than 1024 $INCLUDE"),
            "{err:?}"
        );
        // All files together hold at most MAX_ZONE_BYTES.
        let text = format!("{GOOD}$INCLUDE a.inc\n$INCLUDE b.inc\n");
        let rest = usize::try_from(source::MAX_ZONE_BYTES).unwrap() - text.len();
        let big = |p: &Path| -> std::io::Result<String> {
            Ok(if p.ends_with("a.inc") {
                "\n".into()
            } else {
                " ".repeat(rest)
            })
        };
        let err = parse_zone_with(&text, Path::new("z"), &origin(), &big).unwrap_err();
        assert!(err[0].message.contains("larger than 64 MiB"), "{err:?}");
        assert_eq!(err[0].line, 7, "{err:?}");
    }
}
