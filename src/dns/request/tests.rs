//! Transfers and NOTIFY on an in-memory snapshot: who is allowed, what the
//! messages hold, and that big zones are split.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::sync::Notify;

use super::*;
use crate::config::{AccessRule, ZonePolicy};
use crate::metrics::Metrics;
use crate::snapshot::{AliasAnswer, AliasRecord, Snapshot, ZoneInput};
use crate::zone::parse_zone;

const ZONE: &str =
    "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n";

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn lan() -> Vec<AccessRule> {
    vec![AccessRule {
        from: vec!["10.0.0.0/8".parse().unwrap()],
        key: None,
    }]
}

/// example.com (primary, transfers from 10/8, `extra` TXT records) and
/// sub.example.org (secondary, NOTIFY from 10/8), with its wake-up.
fn snapshot(extra: usize) -> (Snapshot, Arc<Notify>) {
    let mut text = ZONE.to_string();
    for i in 0..extra {
        text.push_str(&format!("r{i} IN TXT \"{}\"\n", "x".repeat(200)));
    }
    let primary = parse_zone(&text, Path::new("z"), &name("example.com.")).unwrap();
    let secondary = parse_zone(ZONE, Path::new("z"), &name("example.org.")).unwrap();
    let policy = ZonePolicy {
        allow_transfer: lan(),
        allow_notify: lan(),
        ..ZonePolicy::default()
    };
    let wake = Arc::new(Notify::new());
    let inputs = [
        ZoneInput {
            origin: &primary.origin,
            data: Some(&primary),
            serial: 7,
            policy: &policy,
            refresh: None,
        },
        ZoneInput {
            origin: &secondary.origin,
            data: Some(&secondary),
            serial: 7,
            policy: &policy,
            refresh: Some(wake.clone()),
        },
    ];
    let alias = AliasRecord {
        name: name("desktop.example.com."),
        zone: 0,
        ttl: 30,
        answer: AliasAnswer::Txt("PDX1".into()),
    };
    let snap = Snapshot::build(&inputs, &[alias], Default::default(), Default::default())
        .expect("the test zone builds");
    (snap, wake)
}

fn request(zone: &str, rtype: RecordType, op: OpCode) -> Message {
    let mut m = Message::new(7, MessageType::Query, op);
    let mut q = Query::query(name(zone), rtype);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m
}

fn ask(snap: &Snapshot, m: &Message, ip: &str, transport: Transport) -> Vec<Message> {
    let peer = Peer {
        ip: ip.parse::<IpAddr>().unwrap(),
        transport,
    };
    let raw = m.to_vec().unwrap();
    handle(
        snap,
        m,
        &raw,
        &peer,
        &Metrics::new(),
        &crate::dns::options::ServerOptions::default(),
        1_795_000_000,
    )
    .expect("a reply")
    .messages
}

fn rcode(messages: &[Message]) -> ResponseCode {
    messages[0].metadata.response_code
}

#[test]
fn axfr_is_the_whole_zone_between_two_soas_for_allowed_sources_only() {
    let (snap, _) = snapshot(0);
    let q = request("example.com.", RecordType::AXFR, OpCode::Query);
    let out = ask(&snap, &q, "10.1.1.1", Transport::Tcp);
    assert_eq!(out.len(), 1);
    let types: Vec<RecordType> = out[0].answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.first(), Some(&RecordType::SOA));
    assert_eq!(types.last(), Some(&RecordType::SOA));
    assert_eq!(types.len(), 5, "SOA, NS, TXT, A, SOA: {types:?}");
    assert!(out[0].metadata.authoritative);
    assert_eq!(
        rcode(&ask(&snap, &q, "192.0.2.1", Transport::Tcp)),
        ResponseCode::Refused
    );
    assert_eq!(
        rcode(&ask(&snap, &q, "10.1.1.1", Transport::Udp)),
        ResponseCode::Refused
    );
    let below = request("desktop.example.com.", RecordType::AXFR, OpCode::Query);
    assert_eq!(
        rcode(&ask(&snap, &below, "10.1.1.1", Transport::Tcp)),
        ResponseCode::NotAuth
    );
}

#[test]
fn a_big_zone_is_split_into_messages_that_fit_tcp() {
    let (snap, _) = snapshot(1000);
    let q = request("example.com.", RecordType::AXFR, OpCode::Query);
    let out = ask(&snap, &q, "10.0.0.1", Transport::Tcp);
    assert!(
        out.len() > 4,
        "about 230 KB in 32 KiB messages: {}",
        out.len()
    );
    let total: usize = out.iter().map(|m| m.answers.len()).sum();
    assert_eq!(total, 1000 + 5);
    for m in &out {
        assert!(m.to_vec().unwrap().len() < 65_535);
    }
}

#[test]
fn ixfr_needs_the_clients_soa_and_answers_up_to_date_clients_with_one_soa() {
    let (snap, _) = snapshot(0);
    let q = request("example.com.", RecordType::IXFR, OpCode::Query);
    assert_eq!(
        rcode(&ask(&snap, &q, "10.0.0.1", Transport::Tcp)),
        ResponseCode::FormErr
    );
    let mut with_soa = q.clone();
    let soa = SOA::new(
        name("ns1.example.com."),
        name("h.example.com."),
        7,
        1,
        1,
        1,
        1,
    );
    with_soa
        .authorities
        .push(Record::from_rdata(name("example.com."), 0, RData::SOA(soa)));
    let out = ask(&snap, &with_soa, "10.0.0.1", Transport::Udp);
    assert_eq!(out[0].answers.len(), 1);
    assert_eq!(out[0].answers[0].record_type(), RecordType::SOA);
}

#[test]
fn notify_wakes_a_secondary_zone_only_from_allowed_sources() {
    let (snap, wake) = snapshot(0);
    let q = request("example.org.", RecordType::SOA, OpCode::Notify);
    assert_eq!(
        rcode(&ask(&snap, &q, "192.0.2.1", Transport::Udp)),
        ResponseCode::Refused
    );
    let out = ask(&snap, &q, "10.0.0.9", Transport::Udp);
    assert_eq!(rcode(&out), ResponseCode::NoError);
    assert!(out[0].metadata.authoritative);
    // The permit is stored: the zone's task refreshes when it next waits.
    let woken = futures_util::FutureExt::now_or_never(wake.notified());
    assert!(woken.is_some(), "NOTIFY must wake the refresh");
    let primary = request("example.com.", RecordType::SOA, OpCode::Notify);
    assert_eq!(
        rcode(&ask(&snap, &primary, "10.0.0.9", Transport::Udp)),
        ResponseCode::NotAuth
    );
    let not_soa = request("example.org.", RecordType::A, OpCode::Notify);
    assert_eq!(
        rcode(&ask(&snap, &not_soa, "10.0.0.9", Transport::Udp)),
        ResponseCode::FormErr
    );
}

#[test]
fn a_secondary_without_a_copy_answers_servfail_on_both_paths() {
    let primary = parse_zone(ZONE, Path::new("z"), &name("example.com.")).unwrap();
    let origin = name("sub.example.com.");
    let policy = ZonePolicy::default();
    let inputs = [
        ZoneInput {
            origin: &primary.origin,
            data: Some(&primary),
            serial: 1,
            policy: &policy,
            refresh: None,
        },
        ZoneInput {
            origin: &origin,
            data: None,
            serial: 0,
            policy: &policy,
            refresh: None,
        },
    ];
    let snap = Snapshot::build(&inputs, &[], Default::default(), Default::default())
        .expect("the test zone builds");
    for qname in ["sub.example.com.", "www.sub.example.com."] {
        let q = request(qname, RecordType::A, OpCode::Query)
            .to_vec()
            .unwrap();
        let mut out = Vec::new();
        assert!(
            !snap.fast.answer(&q, &mut out),
            "{qname} must take the full path"
        );
        let r = respond_udp(
            &snap,
            &q,
            "127.0.0.1".parse().unwrap(),
            &Metrics::new(),
            &crate::dns::options::ServerOptions::default(),
        )
        .unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "{qname}");
    }
}

#[test]
fn an_unsigned_transfer_where_a_key_is_required_is_notauth() {
    let zone = parse_zone(ZONE, Path::new("z"), &name("example.com.")).unwrap();
    let policy = ZonePolicy {
        allow_transfer: vec![
            AccessRule {
                from: vec!["10.0.0.0/8".parse().unwrap()],
                key: Some(name("xfr.")),
            },
            AccessRule {
                from: vec!["192.0.2.0/24".parse().unwrap()],
                key: None,
            },
        ],
        ..ZonePolicy::default()
    };
    let input = ZoneInput {
        origin: &zone.origin,
        data: Some(&zone),
        serial: 1,
        policy: &policy,
        refresh: None,
    };
    let snap = Snapshot::build(&[input], &[], Default::default(), Default::default())
        .expect("the test zone builds");
    let q = request("example.com.", RecordType::AXFR, OpCode::Query);
    assert_eq!(
        rcode(&ask(&snap, &q, "10.0.0.1", Transport::Tcp)),
        ResponseCode::NotAuth
    );
    assert_eq!(
        rcode(&ask(&snap, &q, "198.51.100.1", Transport::Tcp)),
        ResponseCode::Refused
    );
    assert_eq!(
        rcode(&ask(&snap, &q, "192.0.2.1", Transport::Tcp)),
        ResponseCode::NoError
    );
}
