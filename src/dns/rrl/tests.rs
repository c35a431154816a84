use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;

fn limiter(rate: u32, slip: u32, exempt: &[&str]) -> Limiter {
    let config = RrlConfig {
        responses_per_second: rate,
        slip,
        exempt: exempt.iter().map(|n| n.parse().unwrap()).collect(),
        ..RrlConfig::default()
    };
    Limiter::with_table(&config, 1 << 16, (1, 2)).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn response(qname: &str, qtype: RecordType, rcode: ResponseCode) -> Message {
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(name(qname), qtype));
    m.metadata.response_code = rcode;
    m
}

fn answer(qname: &str) -> Vec<u8> {
    let mut m = response(qname, RecordType::TXT, ResponseCode::NoError);
    m.metadata.authoritative = true;
    m.answers.push(Record::from_rdata(
        name(qname),
        30,
        RData::TXT(TXT::new(vec!["x".into()])),
    ));
    m.to_vec().unwrap()
}

fn nxdomain(qname: &str, zone: &str) -> Vec<u8> {
    let mut m = response(qname, RecordType::A, ResponseCode::NXDomain);
    m.metadata.authoritative = true;
    let soa = SOA::new(name(zone), name(zone), 1, 2, 3, 4, 5);
    m.authorities
        .push(Record::from_rdata(name(zone), 60, RData::SOA(soa)));
    m.to_vec().unwrap()
}

/// Answers passed out of `n` responses of `bytes` from `from` at `now`.
fn passed(l: &Limiter, from: &str, bytes: &[u8], now: u32, n: usize) -> usize {
    (0..n)
        .filter(|_| l.check(ip(from), bytes, now).is_none())
        .count()
}

#[test]
fn a_flow_gets_its_rate_each_second_and_no_more() {
    let l = limiter(50, 2, &[]);
    let a = answer("desktop.example.com.");
    assert_eq!(passed(&l, "192.0.2.1", &a, 1000, 2000), 50);
    assert_eq!(l.check(ip("192.0.2.1"), &a, 1000), Some(Class::Answer));
    // The next second refills; unused seconds do not pile up beyond a second.
    assert_eq!(passed(&l, "192.0.2.1", &a, 1001, 2000), 50);
    assert_eq!(passed(&l, "192.0.2.1", &a, 1100, 2000), 50);
    // A clock reading from before the bucket's stamp refills nothing.
    assert_eq!(passed(&l, "192.0.2.1", &a, 1099, 10), 0);
}

#[test]
fn flows_are_per_prefix() {
    let l = limiter(10, 2, &[]);
    let a = answer("desktop.example.com.");
    assert_eq!(passed(&l, "192.0.2.1", &a, 5, 100), 10);
    // Same /24: the same flow.
    assert_eq!(passed(&l, "192.0.2.200", &a, 5, 100), 0);
    // Another /24: its own.
    assert_eq!(passed(&l, "192.0.3.1", &a, 5, 100), 10);
    // IPv6: a /56 is one source.
    assert_eq!(passed(&l, "2001:db8:0:1::1", &a, 5, 100), 10);
    assert_eq!(passed(&l, "2001:db8:0:ff::2", &a, 5, 100), 0);
    assert_eq!(passed(&l, "2001:db8:0:100::1", &a, 5, 100), 10);
}

#[test]
fn flows_are_per_response_class() {
    let l = limiter(10, 2, &[]);
    let from = "198.51.100.7";
    assert_eq!(passed(&l, from, &answer("a.example.com."), 9, 100), 10);
    // Another name's answers are another flow; letter case is not.
    assert_eq!(passed(&l, from, &answer("b.example.com."), 9, 100), 10);
    assert_eq!(passed(&l, from, &answer("A.EXAMPLE.com."), 9, 100), 0);
    // Every NXDOMAIN of a zone is one flow, whatever the name asked.
    let nx: Vec<Vec<u8>> = (0..100)
        .map(|i| nxdomain(&format!("nx{i}.example.com."), "example.com."))
        .collect();
    let through = nx
        .iter()
        .filter(|b| l.check(ip(from), b, 9).is_none())
        .count();
    assert_eq!(through, 10);
    assert_eq!(
        l.check(ip(from), &nxdomain("x.example.org.", "example.org."), 9),
        None
    );
    // Errors: one flow per prefix, whatever the name.
    let refused: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            response(
                &format!("q{i}.other."),
                RecordType::A,
                ResponseCode::Refused,
            )
            .to_vec()
            .unwrap()
        })
        .collect();
    let through = refused
        .iter()
        .filter(|b| l.check(ip(from), b, 9).is_none())
        .count();
    assert_eq!(through, 10);
    assert_eq!(l.check(ip(from), &refused[0], 9), Some(Class::Error));
}

#[test]
fn classes_are_read_from_the_response() {
    let mut buf = [0u8; 255];
    let (class, len, qtype) = classify(&answer("Desktop.Example.com."), &mut buf);
    assert_eq!((class, qtype), (Class::Answer, 16));
    assert_eq!(&buf[..len], b"\x07desktop\x07example\x03com\x00");
    let (class, len, _) = classify(&nxdomain("nope.example.com.", "example.com."), &mut buf);
    assert_eq!(class, Class::NxDomain);
    assert_eq!(&buf[..len], b"\x07example\x03com\x00");
    let mut nodata = response("www.example.com.", RecordType::MX, ResponseCode::NoError);
    nodata.metadata.authoritative = true;
    let (class, len, _) = classify(&nodata.to_vec().unwrap(), &mut buf);
    assert_eq!(class, Class::NoData);
    assert_eq!(&buf[..len], b"\x03www\x07example\x03com\x00");
    let mut referral = response("a.sub.example.com.", RecordType::A, ResponseCode::NoError);
    referral.authorities.push(Record::from_rdata(
        name("sub.example.com."),
        60,
        RData::NS(NS(name("ns.sub.example.com."))),
    ));
    let (class, len, _) = classify(&referral.to_vec().unwrap(), &mut buf);
    assert_eq!(class, Class::Referral);
    assert_eq!(&buf[..len], b"\x03sub\x07example\x03com\x00");
    let formerr = [0u8, 7, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(classify(&formerr, &mut buf).0, Class::Error);
    // Garbage never panics and counts as an error.
    for cut in 0..answer("a.example.com.").len() {
        let _ = classify(&answer("a.example.com.")[..cut], &mut buf);
    }
    let looping = [
        0u8, 7, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1,
    ];
    assert_eq!(classify(&looping, &mut buf).0, Class::Error);
}

#[test]
fn exempt_sources_are_never_limited() {
    let l = limiter(5, 2, &["127.0.0.0/8", "2001:db8::/32"]);
    let a = answer("desktop.example.com.");
    assert_eq!(passed(&l, "127.0.0.1", &a, 1, 1000), 1000);
    assert_eq!(passed(&l, "2001:db8::53", &a, 1, 1000), 1000);
    assert_eq!(passed(&l, "128.0.0.1", &a, 1, 1000), 5);
}

#[test]
fn every_slip_th_dropped_answer_slips() {
    let actions = |slip| {
        let l = limiter(1, slip, &[]);
        let mut dropped = 0;
        (0..6).map(|_| l.action(&mut dropped)).collect::<Vec<_>>()
    };
    use Action::{Drop, Slip};
    assert_eq!(actions(2), [Drop, Slip, Drop, Slip, Drop, Slip]);
    assert_eq!(actions(1), [Slip; 6]);
    assert_eq!(actions(0), [Drop; 6]);
    assert_eq!(actions(3), [Drop, Drop, Slip, Drop, Drop, Slip]);
}

#[test]
fn a_slip_is_header_and_question_only() {
    let mut bytes = nxdomain("nope.example.com.", "example.com.");
    let question_end = 12 + "nope.example.com.".len() + 1 + 4;
    let before = bytes.clone();
    truncate_to_question(&mut bytes);
    assert_eq!(bytes.len(), question_end);
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    assert_eq!(m.metadata.id, 7);
    assert_eq!(m.queries.len(), 1);
    assert!(m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty());
    assert_eq!(bytes[12..], before[12..question_end]);
    let mut header_only = vec![0u8, 7, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    truncate_to_question(&mut header_only);
    assert_eq!(header_only.len(), 12);
    let mut runt = vec![1u8, 2, 3];
    truncate_to_question(&mut runt);
    assert!(runt.is_empty());
}

#[test]
fn memory_is_bounded_whatever_the_sources() {
    let l = limiter(1, 2, &[]);
    let before = l.buckets.len();
    let a = answer("desktop.example.com.");
    for i in 0..200_000u32 {
        let from = IpAddr::from(std::net::Ipv4Addr::from(i << 8));
        let _ = l.check(from, &a, 3);
    }
    assert_eq!(l.buckets.len(), before);
}

#[test]
fn zero_rate_means_off() {
    let config = RrlConfig {
        responses_per_second: 0,
        ..RrlConfig::default()
    };
    assert!(Limiter::new(&config).is_none());
}

#[test]
fn limiting_is_logged_once_a_second_at_most() {
    let l = limiter(1, 2, &[]);
    assert!(l.should_log(10));
    assert!(!l.should_log(10));
    assert!(!l.should_log(10));
    assert!(l.should_log(11));
    assert!(!l.should_log(11));
}

/// What one `check` costs (run with `cargo test --release -- --ignored`).
#[test]
#[ignore]
fn cost_of_a_check() {
    let config = RrlConfig {
        responses_per_second: 1_000_000,
        ..RrlConfig::default()
    };
    let l = Limiter::new(&config).unwrap();
    let a = answer("desktop.example.com.");
    let n = 5_000_000u32;
    let start = std::time::Instant::now();
    let mut passed = 0u32;
    for i in 0..n {
        // 2^20 prefixes: the table (2^18 buckets) is used all over.
        let from = IpAddr::from(std::net::Ipv4Addr::from((i & 0xF_FFFF) << 8));
        passed += u32::from(l.check(from, &a, 7).is_none());
    }
    let per = start.elapsed().as_nanos() as f64 / f64::from(n);
    eprintln!("{per:.1} ns per check ({passed} passed)");
}
