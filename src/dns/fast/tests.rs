//! The fast path must say exactly what the full path says.

use std::path::Path;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use std::collections::HashMap;

use hickory_proto::rr::{DNSClass, LowerName, Name, RecordType};
use prometheus_client::metrics::counter::Counter;

use crate::metrics::Metrics;
use crate::snapshot::{AliasAnswer, AliasRecord, Snapshot, ZoneInput};
use crate::zone::parse_zone;

fn snapshot() -> Snapshot {
    snapshot_counting(&Counter::default())
}

fn snapshot_counting(counter: &Counter) -> Snapshot {
    let text = "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n@ IN NS ns1\n\
ns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\nwww IN AAAA 2001:db8::1\nalias IN CNAME www\n\
a.b.c IN TXT \"deep\"\nchild IN NS ns.child\nns.child IN A 192.0.2.53\n";
    let origin = Name::from_ascii("example.com.").unwrap();
    let zone = parse_zone(text, Path::new("z"), &origin).unwrap();
    let alias = |name: &str, answer| AliasRecord {
        name: Name::from_ascii(name).unwrap(),
        zone: 0,
        ttl: 30,
        answer,
    };
    Snapshot::build(
        &[ZoneInput {
            origin: &zone.origin,
            data: Some(&zone),
            serial: 42,
            policy: &zone.policy,
            refresh: None,
        }],
        &[
            alias("desktop.example.com.", AliasAnswer::Txt("PDX1".into())),
            alias("down.example.com.", AliasAnswer::ServFail),
            alias("empty.example.com.", AliasAnswer::NoData),
        ],
        HashMap::from([(
            LowerName::from(Name::from_ascii("desktop.example.com.").unwrap()),
            counter.clone(),
        )]),
        Default::default(),
    )
    .expect("the test zone builds")
}

/// The full path, as a UDP query from loopback sees it.
fn respond_udp(snap: &Snapshot, query: &[u8]) -> Option<Vec<u8>> {
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    crate::dns::request::respond_udp(
        snap,
        query,
        loopback,
        &Metrics::new(),
        &crate::dns::options::ServerOptions::default(),
    )
}

fn query(name: &str, qtype: RecordType, edns: Option<(u16, bool)>, rd: bool) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii(name).unwrap(), qtype);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m.metadata.recursion_desired = rd;
    if let Some((payload, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

#[test]
fn fast_and_full_paths_agree() {
    let snap = snapshot();
    let names = [
        "desktop.example.com.",
        "DESKTOP.Example.com.",
        "www.example.com.",
        "example.com.",
        "nope.example.com.",
        "x.y.NOPE.example.com.",
        "b.c.example.com.",
        "a.b.c.example.com.",
        "down.example.com.",
        "empty.example.com.",
        "alias.example.com.",
        "ns.child.example.com.",
        "x.child.example.com.",
        "example.org.",
    ];
    let types = [
        RecordType::TXT,
        RecordType::A,
        RecordType::AAAA,
        RecordType::SOA,
        RecordType::NS,
        RecordType::MX,
        RecordType::ANY,
    ];
    let mut fast_count = 0;
    let mut out = Vec::new();
    for name in names {
        for qtype in types {
            for edns in [None, Some((512, false)), Some((4096, true))] {
                for rd in [false, true] {
                    let q = query(name, qtype, edns, rd);
                    if !snap.fast.answer(&q, &mut out) {
                        continue;
                    }
                    fast_count += 1;
                    let full = respond_udp(&snap, &q).unwrap();
                    let (a, b) = (
                        Message::from_vec(&out).unwrap(),
                        Message::from_vec(&full).unwrap(),
                    );
                    assert_eq!(a, b, "{name} {qtype} {edns:?} rd={rd}");
                    assert_eq!(a.queries[0].name().to_ascii(), name, "letter case kept");
                }
            }
        }
    }
    assert!(
        fast_count > 100,
        "the fast path takes the common queries ({fast_count})"
    );
}

#[test]
fn common_queries_take_the_fast_path() {
    let snap = snapshot();
    let mut out = Vec::new();
    for (name, qtype) in [
        ("desktop.example.com.", RecordType::TXT),
        ("nope.example.com.", RecordType::A),
        ("down.example.com.", RecordType::TXT),
    ] {
        assert!(
            snap.fast.answer(&query(name, qtype, None, true), &mut out),
            "{name}"
        );
        assert!(
            snap.fast
                .answer(&query(name, qtype, Some((1232, true)), true), &mut out),
            "{name}"
        );
    }
    // And the unusual ones do not.
    for (name, qtype) in [
        ("x.child.example.com.", RecordType::A),
        ("alias.example.com.", RecordType::A),
        ("example.com.", RecordType::ANY),
        ("example.org.", RecordType::A),
    ] {
        assert!(
            !snap.fast.answer(&query(name, qtype, None, true), &mut out),
            "{name}"
        );
    }
}

#[test]
fn malformed_input_never_takes_the_fast_path() {
    let snap = snapshot();
    let good = query(
        "desktop.example.com.",
        RecordType::TXT,
        Some((1232, false)),
        true,
    );
    let mut out = Vec::new();
    for cut in 0..good.len() {
        assert!(
            !snap.fast.answer(&good[..cut], &mut out),
            "truncated at {cut}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(!snap.fast.answer(&trailing, &mut out));
}

#[test]
fn mutated_queries_never_panic_and_paths_still_agree() {
    // Flip bytes of valid queries with a fixed-seed generator: neither path may
    // panic, and whatever the fast path accepts, the full path answers alike.
    let snap = snapshot();
    let seeds = [
        query(
            "desktop.example.com.",
            RecordType::TXT,
            Some((1232, true)),
            true,
        ),
        query("nope.example.com.", RecordType::A, None, false),
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    for round in 0..20_000 {
        let mut q = seeds[round % 2].clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() as usize) % q.len();
            q[at] = next() as u8;
        }
        let full = respond_udp(&snap, &q);
        if snap.fast.answer(&q, &mut out) {
            let full = full.expect("the full path answers what the fast path answers");
            assert_eq!(
                Message::from_vec(&out).unwrap(),
                Message::from_vec(&full).unwrap(),
                "{q:02x?}"
            );
        }
    }
}

#[test]
fn fast_path_counts_alias_txt_answers_only() {
    let counter = Counter::default();
    let snap = snapshot_counting(&counter);
    let mut out = Vec::new();
    assert!(snap.fast.answer(
        &query("desktop.example.com.", RecordType::TXT, None, true),
        &mut out
    ));
    assert!(snap.fast.answer(
        &query(
            "DESKTOP.example.com.",
            RecordType::TXT,
            Some((1232, false)),
            true
        ),
        &mut out
    ));
    assert!(snap.fast.answer(
        &query("desktop.example.com.", RecordType::A, None, true),
        &mut out
    ));
    assert!(snap.fast.answer(
        &query("www.example.com.", RecordType::TXT, None, true),
        &mut out
    ));
    assert_eq!(counter.get(), 2);
}
