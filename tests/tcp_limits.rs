//! TCP clients cannot cost an answer: with the open-files limit at 1024,
//! 1,100 idle, slowloris and keep-alive connections leave UDP, the admin
//! API, new TCP clients and the health checks alone; idle, slow and
//! long-lived connections are closed; responses sent to us are not answered.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use support::*;

/// Starts `serve` with its open-files limit (soft and hard) at `limit`.
fn start_limited(dir: &Path, config: &str, limit: u32) -> Server {
    let port = free_port();
    let path = write_config(dir, port, config, ZONE);
    Server::launch(dir, &path, port, Some(limit))
}

fn two_checks(pdx: &Endpoint, iad: &Endpoint) -> String {
    format!(
        r#"
[[check]]
name = "pdx"
kind = "http"
url = "{}"
interval = "200ms"
timeout = "150ms"
attempts = 1
fall = 2
rise = 2

[[check]]
name = "iad"
kind = "http"
url = "{}"
interval = "200ms"
timeout = "150ms"
attempts = 1
fall = 2
rise = 2

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2", checks = ["iad"] }},
]
"#,
        pdx.url(),
        iad.url()
    )
}

fn frame(m: &Message) -> Vec<u8> {
    let bytes = m.to_vec().unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&bytes);
    out
}

/// Reads one framed message; None when the server closed (or reset) the
/// connection, or nothing came within the read timeout.
fn read_framed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn txt_query_frame() -> Vec<u8> {
    frame(&plain_query("desktop.example.com.", RecordType::TXT))
}

enum Kind {
    Idle,
    /// Sends a 256-byte message one byte per round.
    Slow,
    /// Sends a whole query every other round and reads what comes back.
    KeepAlive,
}

fn raise_own_fd_limit() {
    // The test itself holds 1,100 sockets.
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    if soft < 4096 {
        rlimit::Resource::NOFILE
            .set(hard.min(8192), hard)
            .expect("the test needs about 1,200 file descriptors");
    }
}

#[test]
fn held_connections_cost_no_answer() {
    raise_own_fd_limit();
    let (pdx, iad) = (Endpoint::start("healthy"), Endpoint::start("healthy"));
    let dir = tempfile::tempdir().unwrap();
    let server = start_limited(dir.path(), &two_checks(&pdx, &iad), 1024);
    server.wait_for_txt("desktop.example.com.", "PDX1");
    let addr = server.addr;

    // 100 from 127.0.0.1 (over the per-source cap), then 1,000 from 125
    // other addresses, eight each (over the total cap): idle, slowloris
    // and keep-alive in turn.
    let mut held: Vec<(TcpStream, Kind)> = Vec::new();
    let sources = std::iter::repeat_n(Ipv4Addr::LOCALHOST, 100)
        .chain((1..=125u8).flat_map(|i| std::iter::repeat_n(Ipv4Addr::new(127, 0, 1, i), 8)));
    let mut reset = 0;
    for (i, from) in sources.enumerate() {
        // One refused at a cap may already be reset when connect returns.
        let Ok(s) = connect_from(from, addr) else {
            reset += 1;
            continue;
        };
        s.set_nonblocking(true).unwrap();
        let kind = match i % 3 {
            0 => Kind::Idle,
            1 => Kind::Slow,
            _ => Kind::KeepAlive,
        };
        held.push((s, kind));
    }
    assert_eq!(held.len() + reset, 1100);

    let hold = Duration::from_secs(8);
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut round = 0u32;
    let mut next_round = Instant::now();
    let mut checked_clients = false;
    let mut junk = [0u8; 4096];
    while start.elapsed() < hold {
        let q = plain_query("desktop.example.com.", RecordType::TXT);
        let t = Instant::now();
        let answer = query_udp_timeout(addr, &q, Duration::from_secs(1))
            .unwrap_or_else(|| panic!("no UDP answer within 1s; log:\n{}", server.log_text()));
        latencies.push(t.elapsed());
        assert_eq!(txt_of(&answer), ["PDX1"], "the answer moved");

        if Instant::now() >= next_round {
            next_round += Duration::from_secs(1);
            round += 1;
            for (s, kind) in &mut held {
                match kind {
                    Kind::Idle => {}
                    Kind::Slow if round == 1 => {
                        let _ = s.write(&[1]);
                    }
                    Kind::Slow => {
                        let _ = s.write(&[0]);
                    }
                    Kind::KeepAlive => {
                        while matches!(s.read(&mut junk), Ok(n) if n > 0) {}
                        if round.is_multiple_of(2) {
                            let _ = s.write(&txt_query_frame());
                        }
                    }
                }
            }
        }
        if !checked_clients && start.elapsed() > Duration::from_secs(3) {
            checked_clients = true;
            // A new client from another address is served over TCP...
            let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr).unwrap();
            c.write_all(&txt_query_frame()).unwrap();
            let reply = read_framed(&mut c).unwrap_or_else(|| {
                panic!(
                    "no TCP answer for a new client; log:\n{}",
                    server.log_text()
                )
            });
            assert_eq!(txt_of(&Message::from_vec(&reply).unwrap()), ["PDX1"]);
            // ... and so is the admin API.
            assert_eq!(server.get("/healthz").0, 200);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(checked_clients);
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "{} UDP queries while holding 1,100 connections: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        p99,
        latencies.last().unwrap()
    );

    let (code, metrics) = server.get("/metrics");
    assert_eq!(code, 200);
    let open = metric_in(&metrics, "txtfailover_tcp_connections ");
    assert!(open <= 1024.0 - 256.0, "{open} connections open");
    assert!(
        metric_in(
            &metrics,
            "txtfailover_tcp_connections_dropped_total{reason=\"source_cap\"}"
        ) >= 84.0,
        "{metrics}"
    );
    // 1,016 connections within the per-source caps, 761 places: the rest
    // were refused, or closed the connection idle longest.
    let at_total_cap = metric_in(
        &metrics,
        "txtfailover_tcp_connections_dropped_total{reason=\"total_cap\"}",
    ) + metric_in(
        &metrics,
        "txtfailover_tcp_connections_dropped_total{reason=\"pressure\"}",
    );
    assert!(at_total_cap >= 255.0, "{metrics}");
    let log = server.log_text();
    assert!(!log.contains("to=Down"), "a check went down:\n{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert_eq!(metric_in(&metrics, "txtfailover_check_up{"), 2.0);
    drop(held);
}

/// CPU seconds the process has used (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ: 100 on Linux
}

#[test]
fn accept_pauses_when_file_descriptors_run_out() {
    let dir = tempfile::tempdir().unwrap();
    // 24 descriptors: the cap falls back to 16 connections, and the
    // process runs out of descriptors before that.
    let server = start_limited(dir.path(), ONE_ALIAS, 24);
    let held: Vec<TcpStream> = (0..30)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    let pid = server.child.id();
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let deadline = Instant::now() + DEADLINE;
    while fds() < 22 {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (cpu, start) = (cpu_seconds(pid), Instant::now());
    while start.elapsed() < Duration::from_secs(2) {
        let answer = query_udp(
            server.addr,
            &plain_query("desktop.example.com.", RecordType::TXT),
        );
        assert_eq!(txt_of(&answer), ["A1"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_seconds(pid) - cpu;
    assert!(
        used < 0.25,
        "the server used {used:.2} s of CPU in 2 s while out of descriptors (spinning)"
    );
    assert!(
        server.log_text().contains("TCP accept failed; pausing"),
        "{}",
        server.log_text()
    );
    drop(held);
}

#[test]
fn idle_and_slow_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_keys(dir.path(), "tcp_idle_timeout = \"1s\"\n");
    let addr = server.addr;
    let limit = Duration::from_secs(5);

    // Silent from the start.
    let mut idle = TcpStream::connect(addr).unwrap();
    let (took, sent) = wait_closed(&mut idle, limit);
    assert_eq!(sent, 0, "the server sent {sent} bytes");
    assert!(took >= Duration::from_millis(700), "closed after {took:?}");

    // Silent after an answer.
    let mut after = TcpStream::connect(addr).unwrap();
    after.write_all(&txt_query_frame()).unwrap();
    assert!(read_framed(&mut after).is_some());
    let (_, sent) = wait_closed(&mut after, limit);
    assert_eq!(sent, 0, "the server sent {sent} bytes");

    // A byte every 300 ms never makes a whole query: closed all the same.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let start = Instant::now();
    let mut bytes = txt_query_frame().into_iter().cycle();
    let closed = loop {
        if slow.write_all(&[bytes.next().unwrap()]).is_err() {
            break true;
        }
        let mut buf = [0u8; 64];
        match slow.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => panic!("answered {n} bytes to a query never completed"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break true,
        }
        if start.elapsed() > limit {
            break false;
        }
    };
    assert!(
        closed,
        "a slowloris connection was still open after {limit:?}"
    );
    let (_, metrics) = server.get("/metrics");
    assert!(
        metric_in(
            &metrics,
            "txtfailover_tcp_connections_dropped_total{reason=\"idle_timeout\"}"
        ) >= 3.0,
        "{metrics}"
    );
}

#[test]
fn keep_alive_connections_are_closed_at_the_lifetime_and_query_caps() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_keys(
        dir.path(),
        "tcp_idle_timeout = \"2s\"\ntcp_max_connection_lifetime = \"2500ms\"\ntcp_max_queries_per_connection = 5\n",
    );
    let addr = server.addr;

    // One query a second: answered until the connection is 2.5 s old.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let start = Instant::now();
    let mut answered = 0;
    loop {
        if s.write_all(&frame(&plain_query("example.com.", RecordType::SOA)))
            .is_err()
        {
            break;
        }
        match read_framed(&mut s) {
            Some(_) => answered += 1,
            None => break,
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "still answering after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(1000));
    }
    assert_eq!(answered, 3, "answers before the close");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(2400), "closed after {took:?}");

    // Seven pipelined queries: the first five answered, in order, then closed.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let queries: Vec<Message> = (0..7u16)
        .map(|i| {
            let mut q = plain_query("desktop.example.com.", RecordType::TXT);
            q.metadata.id = 1000 + i;
            q
        })
        .collect();
    let all: Vec<u8> = queries.iter().flat_map(frame).collect();
    s.write_all(&all).unwrap();
    for i in 0..5u16 {
        let reply = read_framed(&mut s).expect("an answer");
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.id, 1000 + i, "answers in order");
        assert_eq!(txt_of(&reply), ["A1"]);
    }
    assert!(read_framed(&mut s).is_none(), "a sixth answer");
    let (_, metrics) = server.get("/metrics");
    for reason in ["lifetime", "query_cap"] {
        assert!(
            metric_in(
                &metrics,
                &format!("txtfailover_tcp_connections_dropped_total{{reason=\"{reason}\"}}")
            ) >= 1.0,
            "{reason}: {metrics}"
        );
    }
}

#[test]
fn responses_sent_over_tcp_get_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), ONE_ALIAS, ZONE);
    let addr = server.addr;
    // A readable response, and an unreadable one (a truncated question).
    let mut response = plain_query("desktop.example.com.", RecordType::TXT);
    response.metadata.message_type = MessageType::Response;
    let readable = response.to_vec().unwrap();
    let mut unreadable = readable.clone();
    unreadable.truncate(readable.len() - 3);
    for bytes in [readable, unreadable, vec![0x12, 0x34, 0x80]] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&bytes).unwrap();
        let (_, sent) = wait_closed(&mut s, Duration::from_secs(3));
        assert_eq!(sent, 0, "the server sent {sent} bytes");
    }
    // An unreadable query still gets FORMERR, and the connection stays
    // usable.
    let mut query = plain_query("desktop.example.com.", RecordType::TXT)
        .to_vec()
        .unwrap();
    query.truncate(query.len() - 3);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(&(query.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&query).unwrap();
    let reply = read_framed(&mut s).expect("FORMERR");
    assert_eq!(reply[3] & 0x0F, ResponseCode::FormErr.low());
    assert_eq!(reply[0..2], query[0..2]);
    s.write_all(&txt_query_frame()).unwrap();
    let reply = Message::from_vec(&read_framed(&mut s).expect("an answer")).unwrap();
    assert_eq!(txt_of(&reply), ["A1"]);
}

#[test]
fn sigterm_with_open_connections_stops_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), ONE_ALIAS, ZONE);
    let held: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(&[0, 40, 1]).unwrap();
    let start = Instant::now();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        server.log_text().contains("stopped"),
        "{}",
        server.log_text()
    );
    drop(held);
}

const ONE_ALIAS: &str = "[[alias]]\nname = \"desktop.example.com\"\ntargets = [{ region = \"r\", connection_id = \"A1\" }]\n";

/// Starts `serve` with one static alias and `keys` in its `[server]` table.
fn start_with_keys(dir: &Path, keys: &str) -> Server {
    let port = free_port();
    let path = write_config(dir, port, ONE_ALIAS, ZONE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("[server]\n", &format!("[server]\n{keys}"), 1),
    )
    .unwrap();
    Server::start_with(dir, &path, port)
}
