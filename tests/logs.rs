//! Packets cannot turn into log volume: hostile queries of every kind that
//! logs something write a bounded number of lines, whatever their number.

mod support;

use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, RecordType};
use support::*;

/// A query for `name`/`qtype` with an OPT record carrying an EDNS DAU option
/// (RFC 6975) of `algorithms` unknown algorithm numbers.
fn with_dau(name: &str, qtype: RecordType, class: DNSClass, algorithms: usize) -> Vec<u8> {
    let mut q = plain_query(name, qtype);
    q.queries[0].set_query_class(class);
    let mut bytes = q.to_vec().unwrap();
    bytes[11] = 1; // ARCOUNT: the OPT record below
    let rdlen = 4 + algorithms;
    bytes.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&(rdlen as u16).to_be_bytes());
    bytes.extend_from_slice(&[0, 5]); // DAU
    bytes.extend_from_slice(&(algorithms as u16).to_be_bytes());
    bytes.extend(std::iter::repeat_n(200u8, algorithms));
    bytes
}

/// A query signed (badly) with a TSIG key the server does not know.
fn with_unknown_tsig(id: u16) -> Vec<u8> {
    let mut q = plain_query("example.com.", RecordType::SOA);
    q.metadata.id = id;
    let mut bytes = q.to_vec().unwrap();
    bytes[11] = 1;
    let mut rdata = Vec::new();
    for label in ["hmac-sha256", ""] {
        rdata.push(label.len() as u8);
        rdata.extend_from_slice(label.as_bytes());
    }
    rdata.extend_from_slice(&[0, 0, 0x60, 0, 0, 0]); // time
    rdata.extend_from_slice(&300u16.to_be_bytes()); // fudge
    rdata.extend_from_slice(&32u16.to_be_bytes());
    rdata.extend_from_slice(&[0xAA; 32]); // MAC
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&[0, 0, 0, 0]); // error, other len
    for label in ["nosuchkey", ""] {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label.as_bytes());
    }
    bytes.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
    bytes.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&rdata);
    bytes
}

#[test]
fn hostile_queries_write_little_log() {
    let dir = tempfile::tempdir().unwrap();
    // Every query must be answered (so its log line is known to be written):
    // rate limiting would drop most of these.
    let s = Server::start(dir.path(), "[rrl]\nexempt = [\"127.0.0.0/8\"]\n", ZONE);
    let before = std::fs::metadata(&s.log).unwrap().len();
    let mut queries = 0u64;
    let mut query_bytes = 0u64;
    // 64 KB DAU options over TCP: hickory-proto once logged a line per byte.
    for _ in 0..5 {
        let q = with_dau("www.example.com.", RecordType::A, DNSClass::IN, 65_000);
        let r = Message::from_vec(&raw_tcp(s.addr, &q)).unwrap();
        assert_eq!(r.queries.len(), 1);
        queries += 1;
        query_bytes += q.len() as u64;
    }
    // The same over UDP, on a query the fast path does not take.
    for _ in 0..20 {
        let q = with_dau("www.example.com.", RecordType::A, DNSClass::CH, 8_000);
        raw_udp(s.addr, &q, Duration::from_secs(2)).expect("REFUSED");
        queries += 1;
        query_bytes += q.len() as u64;
    }
    // Bad TSIGs and refused transfers over UDP, at a fuzzer's pace.
    for i in 0..300u16 {
        let q = with_unknown_tsig(i);
        raw_udp(s.addr, &q, Duration::from_secs(2)).expect("NOTAUTH");
        let ixfr = plain_query("example.com.", RecordType::IXFR);
        s.udp(&ixfr);
        queries += 2;
        query_bytes += q.len() as u64;
    }
    // Every answer above was sent after its log line was written.
    let written = std::fs::metadata(&s.log).unwrap().len() - before;
    let log = s.log_text();
    eprintln!("{queries} hostile queries ({query_bytes} bytes) wrote {written} log bytes");
    assert!(
        log.contains("TSIG with an unknown key"),
        "the first lines are still written:\n{log}"
    );
    assert!(log.contains("transfer refused"), "{log}");
    assert!(
        written < 8 * 1024,
        "{queries} hostile queries ({query_bytes} bytes) wrote {written} log bytes:\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
    // And the server still answers.
    let soa = s.udp(&plain_query("example.com.", RecordType::SOA));
    assert_eq!(soa.answers.len(), 1);
}
