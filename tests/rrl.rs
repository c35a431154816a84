//! Hardening of the UDP front against reflection: response rate limiting
//! (on by default), DNS cookies that lift it, and the identity extras (NSID,
//! CH TXT id.server / version.bind) answered only when configured.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use support::*;

const ALIAS: &str = r#"
[[alias]]
name = "desktop.example.com"
ttl = 20
targets = [ { region = "us-west-2", connection_id = "PDXexampleConnId0001" } ]
"#;

fn start(dir: &tempfile::TempDir, extra: &str) -> Server {
    Server::start(dir.path(), &format!("{ALIAS}\n{extra}"), ZONE)
}

/// What a burst of queries got back.
#[derive(Debug, Default)]
struct Burst {
    answered: usize,
    slipped: usize,
    other: usize,
    elapsed: Duration,
}

/// Sends `n` copies of `query` (fresh IDs) from one socket, in batches small
/// enough for the socket buffers, and sorts what comes back.
fn burst(addr: SocketAddr, query: &Message, n: usize) -> Burst {
    burst_of(addr, n, |_| query.clone(), ResponseCode::NoError)
}

/// Sends `make(i)` for i in 0..n; answers with `rcode` count as answered.
fn burst_of(
    addr: SocketAddr,
    n: usize,
    make: impl Fn(usize) -> Message,
    rcode: ResponseCode,
) -> Burst {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut out = Burst::default();
    let mut buf = [0u8; 65535];
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(100);
        for i in 0..batch {
            let mut q = make(sent + i);
            q.metadata.id = (sent + i) as u16;
            sock.send_to(&q.to_vec().unwrap(), addr).unwrap();
        }
        sent += batch;
        // Drain until the server has been quiet for a while: the answers to
        // this batch are all in (loopback loses nothing at this rate). Late
        // ones are read with the next batch; the last batch waits longer.
        let quiet = if sent == n { 500 } else { 100 };
        sock.set_read_timeout(Some(Duration::from_millis(quiet)))
            .unwrap();
        while let Ok(len) = sock.recv(&mut buf) {
            let m = Message::from_vec(&buf[..len]).unwrap();
            if m.metadata.truncation && m.answers.is_empty() && m.queries.len() == 1 {
                out.slipped += 1;
            } else if m.metadata.response_code == rcode
                && (rcode != ResponseCode::NoError || m.answers.len() == 1)
            {
                out.answered += 1;
            } else {
                out.other += 1;
            }
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// Whole seconds a burst can have spanned on the server's clock.
fn seconds_spanned(elapsed: Duration) -> usize {
    elapsed.as_secs() as usize + 2
}

fn txt_query() -> Message {
    edns_query("desktop.example.com.", RecordType::TXT, 1232, false)
}

fn with_cookie(mut q: Message, cookie: &[u8]) -> Message {
    q.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    q
}

fn cookie_of(m: &Message) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(10, data) => Some(data.clone()),
        _ => None,
    }
}

#[test]
fn a_burst_from_one_address_is_limited_to_the_rate_with_every_second_drop_slipping() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir, "[rrl]\nresponses_per_second = 50\n");
    let n = 2000;
    let b = burst(s.addr, &txt_query(), n);
    let limit = 50 * seconds_spanned(b.elapsed);
    assert!(
        b.answered >= 50 && b.answered <= limit,
        "{b:?}: answered should be within [50, {limit}]"
    );
    assert_eq!(b.other, 0, "{b:?}");
    // slip = 2 (the default): half of what is over the rate goes out
    // truncated, the rest is dropped. One counter per UDP worker (two).
    let over = n - b.answered;
    assert!(
        b.slipped.abs_diff(over / 2) <= 2,
        "{b:?}: about {} should have slipped",
        over / 2
    );
    let slipped =
        s.metric("txtfailover_rrl_limited_responses_total{class=\"answer\",action=\"slipped\"}");
    let dropped =
        s.metric("txtfailover_rrl_limited_responses_total{class=\"answer\",action=\"dropped\"}");
    assert_eq!(slipped as usize, b.slipped, "{b:?}");
    assert_eq!((slipped + dropped) as usize, over, "{b:?}");
    assert!(s.log_text().contains("rate limiting responses"));
}

#[test]
fn nxdomain_is_limited_per_zone_and_errors_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir, "[rrl]\nresponses_per_second = 50\n");
    // A random-subdomain flood: every name differs, the zone is one flow.
    let nx = |i: usize| plain_query(&format!("nx{i}.example.com."), RecordType::A);
    let b = burst_of(s.addr, 1000, nx, ResponseCode::NXDomain);
    assert!(b.answered <= 50 * seconds_spanned(b.elapsed), "{b:?}");
    assert!(b.slipped > 0 && b.other == 0, "{b:?}");
    // Names of no zone of ours: REFUSED, one flow for the source.
    let refused = |i: usize| plain_query(&format!("q{i}.example.net."), RecordType::A);
    let b = burst_of(s.addr, 1000, refused, ResponseCode::Refused);
    assert!(b.answered <= 50 * seconds_spanned(b.elapsed), "{b:?}");
    assert!(b.slipped > 0 && b.other == 0, "{b:?}");
    assert!(
        s.metric("txtfailover_rrl_limited_responses_total{class=\"nxdomain\",action=\"dropped\"}")
            > 0.0
    );
    assert!(
        s.metric("txtfailover_rrl_limited_responses_total{class=\"error\",action=\"dropped\"}")
            > 0.0
    );
}

#[test]
fn rate_limiting_is_on_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir, "");
    let n = 3000;
    let b = burst(s.addr, &txt_query(), n);
    let limit = 200 * seconds_spanned(b.elapsed);
    assert!(b.answered <= limit, "{b:?}: over the default 200/s");
    assert!(b.slipped > 0, "{b:?}");
    // TCP cannot be spoofed: never limited.
    for _ in 0..20 {
        let r = s.tcp(&plain_query("desktop.example.com.", RecordType::TXT));
        assert_eq!(txt_of(&r), ["PDXexampleConnId0001"]);
    }
}

#[test]
fn exempt_networks_are_fully_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        &dir,
        "[rrl]\nresponses_per_second = 50\nexempt = [\"127.0.0.0/8\", \"::1\"]\n",
    );
    let b = burst(s.addr, &txt_query(), 1000);
    assert_eq!((b.answered, b.slipped, b.other), (1000, 0, 0), "{b:?}");
}

#[test]
fn a_client_presenting_a_valid_server_cookie_is_not_limited() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir, "[rrl]\nresponses_per_second = 50\n");
    let client = *b"\x01\x02\x03\x04\x05\x06\x07\x08";
    let first = s.udp(&with_cookie(txt_query(), &client));
    assert_eq!(txt_of(&first), ["PDXexampleConnId0001"]);
    let cookie = cookie_of(&first).expect("a COOKIE option in the answer");
    assert_eq!(cookie.len(), 24, "client cookie + 16-byte server cookie");
    assert_eq!(cookie[..8], client);
    assert_eq!(cookie[8], 1, "RFC 9018 version 1");
    let b = burst(s.addr, &with_cookie(txt_query(), &cookie), 1000);
    assert_eq!((b.answered, b.slipped, b.other), (1000, 0, 0), "{b:?}");
    // The same source without it, or with a forged one, is limited.
    let mut forged = cookie.clone();
    forged[23] ^= 0xFF;
    for q in [
        txt_query(),
        with_cookie(txt_query(), &client),
        with_cookie(txt_query(), &forged),
    ] {
        let b = burst(s.addr, &q, 1000);
        assert!(b.answered <= 50 * seconds_spanned(b.elapsed), "{b:?}");
        assert!(b.slipped > 0, "{b:?}");
    }
}

#[test]
fn server_cookies_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir, "");
    let client = [9u8; 8];
    for r in [
        s.udp(&with_cookie(txt_query(), &client)),
        s.tcp(&with_cookie(txt_query(), &client)),
    ] {
        let cookie = cookie_of(&r).expect("a server cookie");
        assert_eq!((cookie.len(), &cookie[..8]), (24, &client[..]));
        assert_eq!(txt_of(&r), ["PDXexampleConnId0001"]);
    }
    // Queries without a COOKIE option get none.
    assert_eq!(cookie_of(&s.udp(&txt_query())), None);
}

#[test]
fn a_cookie_option_of_a_bad_length_is_formerr() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir, "");
    for len in [0, 5, 9, 15, 41] {
        let q = with_cookie(txt_query(), &vec![7u8; len]);
        for r in [s.udp(&q), s.tcp(&q)] {
            assert_eq!(
                r.metadata.response_code,
                ResponseCode::FormErr,
                "length {len}"
            );
            assert!(r.answers.is_empty());
        }
    }
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dig_and_kdig_see_a_server_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir, "");
    let (at, port) = (format!("@{}", s.addr.ip()), s.addr.port().to_string());
    let out = tool(
        "dig",
        &[&at, "-p", &port, "+cookie", "desktop.example.com", "TXT"],
    );
    // dig marks a cookie "good" when the server cookie came back with its
    // own client cookie.
    let line = out.lines().find(|l| l.contains("COOKIE:")).unwrap_or("");
    assert!(line.contains("(good)"), "{out}");
    assert_eq!(
        line.split_whitespace().nth(2).map(str::len),
        Some(48),
        "{out}"
    );
    assert!(out.contains("PDXexampleConnId0001"), "{out}");
    let out = tool(
        "kdig",
        &[&at, "-p", &port, "+cookie", "desktop.example.com", "TXT"],
    );
    let line = out.lines().find(|l| l.contains("COOKIE:")).unwrap_or("");
    assert_eq!(
        line.split_whitespace().nth(2).map(str::len),
        Some(48),
        "{out}"
    );
}

#[test]
fn nsid_is_answered_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let with = start_with_server_lines(&dir, "nsid = \"ns1.pdx\"\n");
    let mut q = txt_query();
    q.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
    for r in [with.udp(&q), with.tcp(&q)] {
        let nsid = r.edns.as_ref().and_then(|e| e.option(EdnsCode::NSID));
        assert!(
            matches!(nsid, Some(EdnsOption::NSID(p)) if p.as_ref() == b"ns1.pdx"),
            "{r:?}"
        );
        assert_eq!(txt_of(&r), ["PDXexampleConnId0001"]);
    }
    let (at, port) = (format!("@{}", with.addr.ip()), with.addr.port().to_string());
    let out = tool(
        "dig",
        &[&at, "-p", &port, "+nsid", "desktop.example.com", "TXT"],
    );
    assert!(
        out.contains("NSID:") && out.contains("\"ns1.pdx\""),
        "{out}"
    );
    // Not asked: not sent. Not configured: not sent.
    let r = with.udp(&txt_query());
    assert!(r.edns.as_ref().unwrap().option(EdnsCode::NSID).is_none());
    let dir2 = tempfile::tempdir().unwrap();
    let without = start(&dir2, "");
    let r = without.udp(&q);
    assert!(r.edns.as_ref().unwrap().option(EdnsCode::NSID).is_none());
}

/// A server whose `[server]` table gets `lines`.
fn start_with_server_lines(dir: &tempfile::TempDir, lines: &str) -> Server {
    let port = free_port();
    let path = write_config(dir.path(), port, ALIAS, ZONE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("[server]\n", &format!("[server]\n{lines}"), 1),
    )
    .unwrap();
    Server::start_with(dir.path(), &path, port)
}

fn chaos_txt(name: &str) -> Message {
    let mut q = plain_query(name, RecordType::TXT);
    q.queries[0].set_query_class(DNSClass::CH);
    q
}

#[test]
fn ch_txt_identity_and_version_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_with_server_lines(&dir, "identity = \"pdx-1\"\nversion = \"txtfailover\"\n");
    for (name, want) in [
        ("id.server.", "pdx-1"),
        ("HOSTNAME.bind.", "pdx-1"),
        ("version.bind.", "txtfailover"),
        ("version.server.", "txtfailover"),
    ] {
        for r in [s.udp(&chaos_txt(name)), s.tcp(&chaos_txt(name))] {
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
            assert_eq!(txt_of(&r), [want], "{name}");
            assert_eq!(r.answers[0].dns_class, DNSClass::CH);
            assert!(matches!(r.answers[0].data, RData::TXT(_)));
        }
    }
    // Malformed questions get what they get in class IN: FORMERR for a
    // record in the answer section, BADVERS for EDNS version 1.
    let mut with_answer = chaos_txt("id.server.");
    with_answer
        .answers
        .push(hickory_proto::rr::Record::from_rdata(
            hickory_proto::rr::Name::from_ascii("id.server.").unwrap(),
            0,
            RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["x".into()])),
        ));
    let mut version1 = chaos_txt("id.server.");
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_version(1);
    version1.set_edns(edns);
    for r in [s.udp(&with_answer), s.tcp(&with_answer)] {
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        assert!(r.answers.is_empty());
    }
    for r in [s.udp(&version1), s.tcp(&version1)] {
        // 16 is BADVERS in an OPT context (hickory decodes it as BADSIG).
        assert_eq!(u16::from(r.metadata.response_code), 16);
        assert!(r.answers.is_empty());
    }
    // Other CH names, and everything when nothing is configured: REFUSED.
    let r = s.udp(&chaos_txt("authors.bind."));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let dir2 = tempfile::tempdir().unwrap();
    let plain = start(&dir2, "");
    for name in ["id.server.", "hostname.bind.", "version.bind."] {
        let r = plain.udp(&chaos_txt(name));
        assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(r.answers.is_empty());
    }
}
