//! Authoritative DNS behaviour of the real binary over UDP and TCP.

mod support;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use std::time::Duration;
use support::*;

const CONFIG: &str = r#"
[[alias]]
name = "desktop.example.com"
ttl = 20
targets = [ { region = "us-west-2", connection_id = "PDXexampleConnId0001" } ]
"#;

fn zone_with_big_txt() -> String {
    // Ten 250-byte strings: about 2.5 KB, over any UDP limit we allow.
    let strings: Vec<String> = (0..10)
        .map(|i| format!("\"{}\"", i.to_string().repeat(250)))
        .collect();
    format!(
        "{ZONE}big IN TXT {}\nsub.deep IN A 192.0.2.20\nchild IN NS ns.child\nns.child IN A 192.0.2.53\n",
        strings.join(" ")
    )
}

fn server(dir: &tempfile::TempDir) -> Server {
    Server::start(dir.path(), CONFIG, &zone_with_big_txt())
}

fn both(server: &Server, q: &Message) -> [Message; 2] {
    [server.udp(q), server.tcp(q)]
}

#[test]
fn txt_answer_is_one_record_with_one_string() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    for r in both(&s, &plain_query("desktop.example.com.", RecordType::TXT)) {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert!(r.metadata.recursion_desired, "RD echoed");
        assert!(!r.metadata.recursion_available);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].ttl, 20);
        let RData::TXT(txt) = &r.answers[0].data else {
            panic!()
        };
        assert_eq!(txt.txt_data.len(), 1);
        assert_eq!(&*txt.txt_data[0], b"PDXexampleConnId0001");
    }
}

#[test]
fn negative_answers_carry_soa_with_minimum_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    for (name, rtype, rcode) in [
        ("nope.example.com.", RecordType::A, ResponseCode::NXDomain),
        (
            "a.b.nope.example.com.",
            RecordType::TXT,
            ResponseCode::NXDomain,
        ),
        ("desktop.example.com.", RecordType::A, ResponseCode::NoError),
        ("deep.example.com.", RecordType::A, ResponseCode::NoError), // empty non-terminal
    ] {
        for q in [
            plain_query(name, rtype),
            edns_query(name, rtype, 1232, false),
        ] {
            for r in both(&s, &q) {
                assert_eq!(r.metadata.response_code, rcode, "{name} {rtype}");
                assert!(r.metadata.authoritative);
                assert!(r.answers.is_empty());
                assert_eq!(r.authorities.len(), 1, "{name}");
                assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
                assert_eq!(r.authorities[0].ttl, 60, "min(SOA TTL 3600, MINIMUM 60)");
            }
        }
    }
}

#[test]
fn refuses_other_zones_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    let r = s.udp(&plain_query("example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(!r.metadata.authoritative);
    let mut chaos = plain_query("desktop.example.com.", RecordType::TXT);
    chaos.queries[0].set_query_class(DNSClass::CH);
    for r in both(&s, &chaos) {
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert!(r.answers.is_empty(), "no IN data for a CH question");
    }
}

#[test]
fn question_is_echoed_with_its_letter_case() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    for name in ["DeSkToP.ExAmPlE.CoM.", "NoPe.EXAMPLE.com."] {
        for q in [
            plain_query(name, RecordType::TXT),
            edns_query(name, RecordType::TXT, 4096, true),
        ] {
            for r in both(&s, &q) {
                assert_eq!(r.queries[0].name().to_ascii(), name);
            }
        }
    }
}

#[test]
fn edns_is_echoed_with_do_bit_and_our_payload() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    for dnssec_ok in [false, true] {
        for r in both(
            &s,
            &edns_query("desktop.example.com.", RecordType::TXT, 4096, dnssec_ok),
        ) {
            let edns = r.edns.as_ref().expect("OPT in response");
            assert_eq!(edns.max_payload(), 1232);
            assert_eq!(edns.flags().dnssec_ok, dnssec_ok);
            assert_eq!(edns.version(), 0);
        }
    }
    let r = s.udp(&plain_query("desktop.example.com.", RecordType::TXT));
    assert!(r.edns.is_none(), "no OPT without one in the query");
}

#[test]
fn edns_version_above_zero_gets_badvers() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    let mut q = edns_query("desktop.example.com.", RecordType::TXT, 1232, false);
    q.edns.as_mut().unwrap().set_version(1);
    for r in both(&s, &q) {
        // 16 is BADVERS in an OPT context (hickory decodes the number as BADSIG).
        assert_eq!(u16::from(r.metadata.response_code), 16);
        assert_eq!(r.edns.as_ref().unwrap().version(), 0);
        assert!(r.answers.is_empty());
    }
}

#[test]
fn large_answers_truncate_over_udp_and_arrive_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    for q in [
        plain_query("big.example.com.", RecordType::TXT),
        edns_query("big.example.com.", RecordType::TXT, 4096, false),
    ] {
        let udp = s.udp(&q);
        assert!(udp.metadata.truncation, "TC set");
        assert!(udp.answers.is_empty());
        assert_eq!(udp.queries.len(), 1);
        let raw = raw_udp(s.addr, &q.to_vec().unwrap(), Duration::from_secs(2)).unwrap();
        assert!(raw.len() <= 1232);
        let tcp = s.tcp(&q);
        assert!(!tcp.metadata.truncation);
        let RData::TXT(txt) = &tcp.answers[0].data else {
            panic!()
        };
        assert_eq!(txt.txt_data.len(), 10);
    }
    // A small payload advertisement is honoured: 512 at least, never more than asked.
    let q = edns_query("www.example.com.", RecordType::A, 600, false);
    assert!(!s.udp(&q).metadata.truncation);
}

#[test]
fn any_is_answered_minimally() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    for r in both(&s, &plain_query("example.com.", RecordType::ANY)) {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            r.answers.len(),
            1,
            "one RRset, not everything: {:?}",
            r.answers
        );
    }
    let r = s.udp(&plain_query("desktop.example.com.", RecordType::ANY));
    assert_eq!(txt_of(&r), ["PDXexampleConnId0001"]);
}

#[test]
fn delegations_get_referrals_with_glue() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    for r in both(&s, &plain_query("www.child.example.com.", RecordType::A)) {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(!r.metadata.authoritative, "referrals are not authoritative");
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities[0].record_type(), RecordType::NS);
        assert_eq!(r.additionals[0].record_type(), RecordType::A);
    }
}

#[test]
fn malformed_and_unsupported_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    // Garbage after a header: FORMERR with the same ID.
    let garbage = [
        0xAB, 0xCD, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3F, 0xFF,
    ];
    let r = raw_udp(s.addr, &garbage, Duration::from_secs(2)).expect("FORMERR reply");
    let m = Message::from_vec(&r).unwrap();
    assert_eq!(m.metadata.id, 0xABCD);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // Shorter than a header: silently dropped, and the server lives on.
    assert!(raw_udp(s.addr, &[1, 2, 3], Duration::from_millis(300)).is_none());
    // Two questions: FORMERR.
    let mut two = plain_query("desktop.example.com.", RecordType::TXT);
    two.add_query(two.queries[0].clone());
    assert_eq!(s.udp(&two).metadata.response_code, ResponseCode::FormErr);
    // Opcodes not served: NOTIMP, over both transports.
    for op in [OpCode::Status, OpCode::Update] {
        let mut q = plain_query("example.com.", RecordType::SOA);
        q.metadata.op_code = op;
        for r in both(&s, &q) {
            assert_eq!(r.metadata.response_code, ResponseCode::NotImp, "{op:?}");
        }
    }
    // NOTIFY for a zone we are the primary of: not ours to be told about.
    let mut notify = plain_query("example.com.", RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    for r in both(&s, &notify) {
        assert_eq!(r.metadata.response_code, ResponseCode::NotAuth);
    }
    // Zone transfers are refused unless `allow_transfer` says otherwise.
    let r = s.tcp(&plain_query("example.com.", RecordType::AXFR));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    // Still answering.
    assert_eq!(s.txt("desktop.example.com."), ["PDXexampleConnId0001"]);
}

#[test]
fn serves_every_listen_address_including_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(dir.path(), port, CONFIG, ZONE);
    // Add [::1] on the same port: v6-only sockets let both bind.
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("listen = [\"127.0.0.1:{port}\"]"),
        &format!("listen = [\"127.0.0.1:{port}\", \"[::1]:{port}\"]"),
    );
    std::fs::write(&path, text).unwrap();
    let s = Server::start_with(dir.path(), &path, port);
    let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let q = plain_query("desktop.example.com.", RecordType::TXT);
    let sock = std::net::UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&q.to_vec().unwrap(), v6).unwrap();
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).expect("answer over IPv6 UDP");
    assert_eq!(
        txt_of(&Message::from_vec(&buf[..n]).unwrap()),
        ["PDXexampleConnId0001"]
    );
    assert_eq!(txt_of(&query_tcp(v6, &q)), ["PDXexampleConnId0001"]);
    assert_eq!(s.txt("desktop.example.com."), ["PDXexampleConnId0001"]);
}

#[test]
fn no_udp_answer_is_larger_than_the_requester_allows() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    // Many questions with long, distinct names: the answer must not echo them.
    let long = |i: usize| format!("{}.example.com.", vec![format!("{i:a>60}"); 3].join("."));
    let mut many = plain_query(&long(0), RecordType::TXT);
    for i in 1..12 {
        let mut q = many.queries[0].clone();
        q.set_name(hickory_proto::rr::Name::from_ascii(long(i)).unwrap());
        many.add_query(q);
    }
    let edns = {
        let mut q = edns_query(&long(0), RecordType::TXT, 512, false);
        q.queries = many.queries.clone();
        q
    };
    for q in [&many, &edns] {
        let bytes = q.to_vec().unwrap();
        assert!(bytes.len() > 2000, "a big query: {}", bytes.len());
        let raw = raw_udp(s.addr, &bytes, Duration::from_secs(2)).expect("an answer");
        assert_eq!(raw.len(), 12, "a bare header, as NSD answers it");
        let m = Message::from_vec(&raw).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.id, q.metadata.id);
    }
    // No question at all: the same bare header.
    let mut none = plain_query("example.com.", RecordType::SOA);
    none.queries.clear();
    let raw = raw_udp(s.addr, &none.to_vec().unwrap(), Duration::from_secs(2)).unwrap();
    assert_eq!(raw.len(), 12);
    // A NOTIFY with many questions: no echo either.
    let mut notify = many.clone();
    notify.metadata.op_code = OpCode::Notify;
    let raw = raw_udp(s.addr, &notify.to_vec().unwrap(), Duration::from_secs(2)).unwrap();
    assert!(raw.len() <= 12 + 11, "{} bytes", raw.len());
    // Every answer of the big zone stays within 512 bytes without EDNS.
    for (name, t) in [
        ("big.example.com.", RecordType::TXT),
        ("example.com.", RecordType::ANY),
        ("www.child.example.com.", RecordType::A),
    ] {
        let raw = raw_udp(
            s.addr,
            &plain_query(name, t).to_vec().unwrap(),
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(raw.len() <= 512, "{name} {t}: {} bytes", raw.len());
    }
}

/// Wire form of a name made of labels of `c`, 253 bytes long.
fn long_wire_name(c: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..4 {
        out.push(62);
        out.extend(std::iter::repeat_n(c, 62));
    }
    out.push(0);
    out
}

#[test]
fn a_tsig_error_answer_stays_within_the_requesters_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    // No EDNS (512 bytes), a long question, and a TSIG with an unknown, long
    // key name: the BADKEY answer repeats that name in its TSIG record.
    let mut q = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend(long_wire_name(b'q'));
    q.extend([0, 16, 0, 1]);
    q.extend(long_wire_name(b'k'));
    q.extend([0, 250, 0, 255, 0, 0, 0, 0]); // TSIG, ANY, TTL 0
    let mut rdata = vec![2, b'a', b'b', 0]; // a short algorithm name
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    rdata.extend(&now.to_be_bytes()[2..]);
    rdata.extend([1, 44, 0, 0, 0x12, 0x34, 0, 0, 0, 0]); // fudge, no MAC, no other data
    q.extend((rdata.len() as u16).to_be_bytes());
    q.extend(rdata);
    assert!(q.len() < 600, "{}", q.len());
    let raw = raw_udp(s.addr, &q, Duration::from_secs(2)).expect("an answer");
    assert!(
        raw.len() <= 512,
        "a {}-byte answer to a 512-byte requester",
        raw.len()
    );
    let m = Message::from_vec(&raw).unwrap();
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::NotAuth);
    assert!(
        m.signature().is_some(),
        "the TSIG error travels in a TSIG record"
    );
}

#[test]
fn notimp_does_not_copy_rd_or_cd() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir);
    let mut q = plain_query("example.com.", RecordType::SOA);
    q.metadata.op_code = OpCode::Status;
    q.metadata.recursion_desired = true;
    q.metadata.checking_disabled = true;
    let r = s.udp(&q);
    assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
    assert!(!r.metadata.recursion_desired, "RD cleared");
    assert!(!r.metadata.checking_disabled, "CD cleared");
}

#[test]
fn ns_and_mx_answers_carry_addresses_of_in_zone_targets() {
    let dir = tempfile::tempdir().unwrap();
    let zone = format!(
        "{ZONE}@ IN MX 10 mail\nmail IN A 192.0.2.25\nmail IN AAAA 2001:db8::25\n@ IN MX 20 mx.elsewhere.test.\n"
    );
    let s = Server::start(dir.path(), CONFIG, &zone);
    for r in both(&s, &plain_query("example.com.", RecordType::NS)) {
        assert_eq!(r.answers.len(), 1);
        let glue: Vec<_> = r.additionals.iter().map(|r| r.data.clone()).collect();
        assert_eq!(glue.len(), 1, "{glue:?}");
        assert_eq!(r.additionals[0].name.to_ascii(), "ns1.example.com.");
    }
    for r in both(&s, &plain_query("example.com.", RecordType::MX)) {
        assert_eq!(r.answers.len(), 2);
        let mut types: Vec<_> = r
            .additionals
            .iter()
            .map(|a| (a.name.to_ascii(), a.record_type()))
            .collect();
        types.sort();
        assert_eq!(
            types,
            [
                ("mail.example.com.".to_string(), RecordType::A),
                ("mail.example.com.".to_string(), RecordType::AAAA)
            ]
        );
    }
}
