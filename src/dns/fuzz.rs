//! A fuzz test of every packet path: the UDP fast path, the full path as UDP
//! sends it (`respond_udp`) and as TCP does (`request::handle`), on random
//! and mutated messages: plain queries, EDNS with random options, TSIG,
//! NOTIFY, transfers, compression pointers, garbage. Properties checked on
//! every case: nothing panics; no UDP answer exceeds the requester's limit;
//! answers carry the query's ID and QR; responses are never answered; the
//! fast path says exactly what the full path says; TCP messages encode
//! within 64 KiB.
//!
//! `cargo test` runs a few thousand cases; `scripts/fuzz.sh` runs millions
//! (`TXTFAILOVER_FUZZ_CASES`, `TXTFAILOVER_FUZZ_SEED`).

use std::net::IpAddr;
use std::path::Path;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::Name;

use super::answer::udp_limit;
use super::cookie::{self, CookieSecret};
use super::options::ServerOptions;
use super::request::{self, Peer, Transport};
use super::rrl::{self, Limiter, RrlConfig};
use crate::config::{AccessRule, ZonePolicy};
use crate::metrics::Metrics;
use crate::snapshot::{AliasAnswer, AliasRecord, Snapshot, ZoneInput};
use crate::zone::parse_zone;

/// A small fast generator (xorshift64*); the seed makes every run repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const NAMES: &[&str] = &[
    "desktop.example.com.",
    "DeskTop.EXAMPLE.com.",
    "www.example.com.",
    "example.com.",
    "big.example.com.",
    "mail.example.com.",
    "alias.example.com.",
    "nope.example.com.",
    "a.b.c.example.com.",
    "x.child.example.com.",
    "down.example.com.",
    "example.org.",
    "sub.example.org.",
    "elsewhere.test.",
    ".",
];

/// Types worth asking for, including meta and transfer types.
const TYPES: &[u16] = &[
    1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 43, 250, 251, 252, 255, 0, 65400, 128, 99,
];

fn snapshot() -> Snapshot {
    let mut big = String::new();
    for i in 0..12 {
        big.push_str(&format!(" \"{}\"", (i % 10).to_string().repeat(250)));
    }
    let text = format!(
        "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n@ IN NS ns1\n\
ns1 IN A 127.0.0.1\nwww IN A 192.0.2.1\nwww IN AAAA 2001:db8::1\nalias IN CNAME www\n\
@ IN MX 10 mail\nmail IN A 192.0.2.25\na.b.c IN TXT \"deep\"\nbig IN TXT{big}\n\
child IN NS ns.child\nns.child IN A 192.0.2.53\n"
    );
    let com = parse_zone(
        &text,
        Path::new("z"),
        &Name::from_ascii("example.com.").unwrap(),
    )
    .expect("test zone parses");
    let org = parse_zone(
        "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
        Path::new("z"),
        &Name::from_ascii("example.org.").unwrap(),
    )
    .expect("test zone parses");
    let loopback = vec![AccessRule {
        from: vec!["127.0.0.0/8".parse().expect("a network")],
        key: None,
    }];
    let policy = ZonePolicy {
        allow_transfer: loopback.clone(),
        allow_notify: loopback,
        ..ZonePolicy::default()
    };
    let alias = |name: &str, answer| AliasRecord {
        name: Name::from_ascii(name).expect("a name"),
        zone: 0,
        ttl: 30,
        answer,
    };
    Snapshot::build(
        &[
            ZoneInput {
                origin: &com.origin,
                data: Some(&com),
                serial: 42,
                policy: &policy,
                refresh: None,
            },
            ZoneInput {
                origin: &org.origin,
                data: Some(&org),
                serial: 7,
                policy: &policy,
                refresh: Some(Default::default()),
            },
        ],
        &[
            alias("desktop.example.com.", AliasAnswer::Txt("PDX1".into())),
            alias("down.example.com.", AliasAnswer::ServFail),
        ],
        Default::default(),
        Default::default(),
    )
    .expect("the test zones build")
}

fn push_name(rng: &mut Rng, out: &mut Vec<u8>) {
    if rng.chance(8) && out.len() > 12 {
        // A compression pointer, anywhere (forward, looping, out of range).
        let at = rng.below(out.len() + 8) as u16;
        out.extend_from_slice(&(0xC000 | at).to_be_bytes());
        return;
    }
    if rng.chance(10) {
        // Random labels, possibly over-long.
        for _ in 0..rng.below(6) {
            let len = rng.below(70);
            out.push(len as u8);
            out.extend((0..len).map(|_| rng.byte()));
        }
        out.push(0);
        return;
    }
    let name = NAMES[rng.below(NAMES.len())];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// One OPT record with random options (cookies, DAU, padding, garbage).
fn push_opt(rng: &mut Rng, out: &mut Vec<u8>, plain: bool) {
    out.push(0);
    out.extend_from_slice(&[0, 41]);
    let payload: u16 = match rng.below(4) {
        0 => 0,
        1 => 512,
        2 => 1232,
        _ => rng.next() as u16,
    };
    out.extend_from_slice(&payload.to_be_bytes());
    let version = if !plain && rng.chance(6) {
        rng.byte()
    } else {
        0
    };
    out.extend_from_slice(&[0, version, rng.byte() & 0x80, 0]);
    let mut options = Vec::new();
    for _ in 0..rng.below(if plain { 2 } else { 4 }) {
        let code: u16 = [3, 5, 6, 7, 8, 10, 12, 15, rng.next() as u16][rng.below(9)];
        let len = match code {
            10 => [8, 16, 24, 40, 41, 7, 0][rng.below(7)],
            5..=7 => rng.below(3000),
            _ => rng.below(40),
        };
        options.extend_from_slice(&code.to_be_bytes());
        options.extend_from_slice(&(len as u16).to_be_bytes());
        options.extend((0..len).map(|_| rng.byte()));
    }
    out.extend_from_slice(&(options.len() as u16).to_be_bytes());
    out.extend_from_slice(&options);
}

/// A TSIG record, with a random key name (sometimes the configured one).
fn push_tsig(rng: &mut Rng, out: &mut Vec<u8>) {
    push_name(rng, out);
    out.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
    let mut rdata = Vec::new();
    for label in ["hmac-sha256", ""] {
        rdata.push(label.len() as u8);
        rdata.extend_from_slice(label.as_bytes());
    }
    rdata.extend((0..6).map(|_| rng.byte()));
    rdata.extend_from_slice(&300u16.to_be_bytes());
    let mac = rng.below(80);
    rdata.extend_from_slice(&(mac as u16).to_be_bytes());
    rdata.extend((0..mac).map(|_| rng.byte()));
    rdata.extend((0..6).map(|_| rng.byte()));
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
}

/// A message built from parts, most of them plausible; a third are plain
/// queries (what the fast path takes), lightly mutated.
fn generate(rng: &mut Rng) -> Vec<u8> {
    let plain = rng.chance(3);
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&(rng.next() as u16).to_be_bytes());
    let opcode = if plain {
        0
    } else {
        [0u8, 0, 0, 0, 4, 5, 2, 1, 15][rng.below(9)]
    };
    let mut flags = opcode << 3;
    if rng.chance(2) {
        flags |= 0x01; // RD
    }
    if !plain && rng.chance(20) {
        flags |= 0x80; // QR
    }
    if !plain && rng.chance(20) {
        flags |= 0x02; // TC
    }
    out.push(flags);
    out.push(if plain || rng.chance(2) {
        rng.byte() & 0x10 // CD or nothing
    } else {
        rng.byte()
    });
    let qd = if plain {
        1
    } else {
        [1usize, 1, 1, 1, 0, 2, 5][rng.below(7)]
    };
    let an = usize::from(!plain && rng.chance(15));
    let ns = usize::from(!plain && rng.chance(6));
    let opt = rng.chance(2);
    let tsig = !plain && rng.chance(10);
    let ar = usize::from(opt) + usize::from(tsig);
    for count in [qd, an, ns, ar] {
        out.extend_from_slice(&(count as u16).to_be_bytes());
    }
    for _ in 0..qd {
        push_name(rng, &mut out);
        out.extend_from_slice(&TYPES[rng.below(TYPES.len())].to_be_bytes());
        let class: u16 = if plain {
            1
        } else {
            [1, 1, 1, 1, 3, 4, 255, 254][rng.below(8)]
        };
        out.extend_from_slice(&class.to_be_bytes());
    }
    for _ in 0..an + ns {
        // An SOA-shaped record (IXFR's client serial), or garbage.
        push_name(rng, &mut out);
        out.extend_from_slice(&[0, 6, 0, 1, 0, 0, 1, 0]);
        let rdata: Vec<u8> = (0..rng.below(40)).map(|_| rng.byte()).collect();
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    if opt {
        push_opt(rng, &mut out, plain);
    }
    if tsig {
        push_tsig(rng, &mut out);
    }
    if !plain || rng.chance(4) {
        mutate(rng, &mut out);
    }
    out
}

/// Sometimes flips, cuts or extends a message.
fn mutate(rng: &mut Rng, msg: &mut Vec<u8>) {
    match rng.below(6) {
        0 if !msg.is_empty() => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(msg.len());
                msg[at] = rng.byte();
            }
        }
        1 => msg.truncate(rng.below(msg.len() + 1)),
        2 => msg.extend((0..rng.below(16)).map(|_| rng.byte())),
        _ => {}
    }
}

/// What the paths share: the snapshot, metrics, server options (NSID and
/// identity on, so their code is reached) and a rate limiter.
struct World {
    snap: Snapshot,
    metrics: Metrics,
    opts: ServerOptions,
    limiter: Limiter,
}

/// The checks on one case. Returns whether the fast path answered it.
fn case(w: &World, query: &[u8], out: &mut Vec<u8>) -> bool {
    let (snap, metrics, opts) = (&w.snap, &w.metrics, &w.opts);
    let ip = IpAddr::from([127, 0, 0, 1]);
    let decoded = Message::from_vec(query).ok();
    // The raw cookie scan of the rate-limited path reads the query itself.
    let _ = cookie::query_has_valid_cookie(&opts.cookie_secret, query, ip, 1_000);
    let full = request::respond_udp(snap, query, ip, metrics, opts);
    if let Some(bytes) = &full {
        // The limiter classifies every response by its bytes.
        let _ = w.limiter.check(ip, bytes, 1_000);
        let mut slipped = bytes.clone();
        rrl::truncate_to_question(&mut slipped);
        assert!(slipped.len() <= bytes.len());
    }
    if let Some(bytes) = &full {
        let limit = decoded
            .as_ref()
            .map_or(512, |m| udp_limit(m.edns.as_ref().map(|e| e.max_payload())));
        assert!(
            bytes.len() <= limit,
            "{} > {limit}: {query:02x?}",
            bytes.len()
        );
        assert!(bytes.len() >= 12, "{query:02x?}");
        assert_eq!(bytes[..2], query[..2], "ID echoed: {query:02x?}");
        assert_ne!(bytes[2] & 0x80, 0, "QR set: {query:02x?}");
        assert_eq!(query[2] & 0x80, 0, "a response was answered: {query:02x?}");
    }
    let fast = snap.fast.answer(query, out);
    if fast {
        let full = full.unwrap_or_else(|| panic!("fast path alone answered {query:02x?}"));
        let (a, b) = (Message::from_vec(out), Message::from_vec(&full));
        assert_eq!(a.ok(), b.ok(), "paths disagree on {query:02x?}");
        assert!(out.len() <= udp_limit(decoded.and_then(|m| m.edns.map(|e| e.max_payload()))));
    }
    if let Ok(m) = Message::from_vec(query) {
        let peer = Peer {
            ip,
            transport: Transport::Tcp,
        };
        if let Some(reply) = request::handle(snap, &m, query, &peer, metrics, opts, 1_700_000_000) {
            assert_ne!(m.metadata.message_type, MessageType::Response);
            for message in reply.messages {
                let bytes = message.to_vec().expect("our answers encode");
                assert!(bytes.len() <= 65_535);
            }
        }
    }
    fast
}

#[test]
fn packet_paths_survive_random_and_mutated_messages() {
    let cases: u64 = std::env::var("TXTFAILOVER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("TXTFAILOVER_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_CAFE_F00D_0001);
    let world = World {
        snap: snapshot(),
        metrics: Metrics::new(),
        opts: ServerOptions {
            cookie_secret: CookieSecret::new([7; 16]),
            nsid: Some(b"fuzz-1".to_vec()),
            identity: Some("fuzz".into()),
            version: Some("txtfailover".into()),
        },
        limiter: Limiter::new(&RrlConfig::default()).expect("RRL is on by default"),
    };
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(4096);
    let mut fast = 0u64;
    for _ in 0..cases {
        let query = generate(&mut rng);
        if case(&world, &query, &mut out) {
            fast += 1;
        }
    }
    eprintln!("fuzz: {cases} cases ran clean (seed {seed}), {fast} through the fast path");
    assert!(
        fast > cases / 50,
        "the generator reaches the fast path: {fast}"
    );
}
