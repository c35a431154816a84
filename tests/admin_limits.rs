//! The admin API under hostile clients: slow heads, connection floods,
//! bodies without a token, oversized bodies and fields, absurd durations.
//! Every test runs the real binary on loopback.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const ALIAS: &str = r#"
[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDX1" },
  { region = "us-east-1", connection_id = "IAD2" },
]
"#;

const OVERRIDE: &str = "/v1/overrides/desktop.example.com";

/// A server with TOKEN for "alice" and `admin` added to its `[admin]` table.
fn start(dir: &Path, admin: &str) -> Server {
    let port = free_port();
    let path = write_config(dir, port, ALIAS, ZONE);
    std::fs::write(dir.join("tokens"), format!("alice {TOKEN}\n")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[admin]\n",
        &format!("[admin]\ntoken_file = \"tokens\"\n{admin}"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    Server::start_with(dir, &path, port)
}

/// Reads one response (head, then Content-Length bytes): status and body.
fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            other => panic!(
                "connection ended inside a response head ({other:?}): {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// Sends `head` and `body` on a new connection; the response (status, body),
/// or None when the server closed without one.
fn send(addr: SocketAddr, head: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before taking the whole body.
    let _ = s.write_all(body);
    let mut text = Vec::new();
    match s.read_to_end(&mut text) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset && !text.is_empty() => {}
        Err(e) => panic!("no answer: {e}"),
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((code, body))
}

fn put_head(path: &str, auth: Option<&str>, length: usize) -> String {
    head("PUT", path, auth, length)
}

fn head(method: &str, path: &str, auth: Option<&str>, length: usize) -> String {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// True when the server turned the connection away at once: a 503, or
/// closed without an answer.
fn turned_away(s: &mut TcpStream) -> bool {
    let mut text = Vec::new();
    match s.read_to_end(&mut text) {
        Ok(_) => text.is_empty() || text.starts_with(b"HTTP/1.1 503"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(_) => false,
    }
}

#[test]
fn slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "header_timeout = \"1s\"\n");
    let admin = s.admin_addr();

    // A request head sent one byte a second never completes.
    let mut slow = TcpStream::connect(admin).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let start = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Slow: ";
    let closed = head.iter().chain(std::iter::repeat(&b'a')).any(|b| {
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "a head sent a byte a second was still open after {:?}",
            start.elapsed()
        );
        if slow.write_all(&[*b]).is_err() {
            return true;
        }
        // Waiting for more: the read times out; closed: EOF or an error.
        !matches!(
            slow.read(&mut [0u8; 512]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
        )
    });
    assert!(closed);

    // A kept-alive connection waiting for its next request is closed too.
    let mut idle = TcpStream::connect(admin).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle), (200, "ok\n".to_string()));
    wait_closed(&mut idle, Duration::from_secs(5));

    let (_, metrics) = s.get("/metrics");
    assert!(
        metric_in(
            &metrics,
            "txtfailover_admin_requests_rejected_total{reason=\"header_timeout\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

#[test]
fn connections_beyond_the_caps_are_turned_away() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        "max_connections = 8\nmax_per_source = 4\nheader_timeout = \"30s\"\n",
    );
    let admin = s.admin_addr();

    // An operator connected before the flood, kept alive.
    let mut operator = connect_from(Ipv4Addr::new(127, 0, 0, 1), admin).unwrap();
    let pin = |s: &mut TcpStream, reason: &str| {
        let body = format!(r#"{{"target": "us-east-1", "reason": "{reason}"}}"#);
        write!(
            s,
            "PUT {OVERRIDE} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        read_response(s)
    };
    assert_eq!(pin(&mut operator, "before").0, 200);

    // One source may hold 4 connections; its fifth is turned away, while
    // another source is still served.
    let mut flood: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 2), admin).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            c
        })
        .collect();
    let mut fifth = connect_from(Ipv4Addr::new(127, 0, 0, 2), admin).unwrap();
    assert!(
        turned_away(&mut fifth),
        "a fifth connection from one source"
    );
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 3), admin).unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut other), (200, "ok\n".to_string()));

    // 8 in all (operator, 4 from .2, 3 from .3): the next one is turned away.
    flood.push(other);
    for _ in 0..2 {
        let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 3), admin).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        flood.push(c);
    }
    let mut ninth = connect_from(Ipv4Addr::new(127, 0, 0, 4), admin).unwrap();
    assert!(turned_away(&mut ninth), "a ninth connection in all");

    // The operator's connection still works.
    assert_eq!(pin(&mut operator, "during").0, 200);

    // Once the flood ends, new clients are served again.
    drop(flood);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut c = connect_from(Ipv4Addr::new(127, 0, 0, 4), admin).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        if c.read_to_string(&mut text).is_ok() && text.starts_with("HTTP/1.1 200") {
            for reason in ["max_per_source", "max_connections"] {
                let name =
                    format!("txtfailover_admin_connections_refused_total{{reason=\"{reason}\"}}");
                assert!(metric_in(&text, &name) >= 1.0, "{text}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not served after the flood: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bodies_without_a_token_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    let admin = s.admin_addr();
    // Headers promise 1 MiB; only a few bytes follow. The answer comes at
    // once, without waiting for the rest.
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token"),
        Some("Basic YTpi"),
    ] {
        let started = Instant::now();
        let (code, body) = send(admin, &put_head(OVERRIDE, auth, 1 << 20), b"{\"tar")
            .unwrap_or_else(|| panic!("no answer for {auth:?}"));
        assert_eq!(code, 401, "{auth:?}: {body}");
        assert!(started.elapsed() < Duration::from_secs(2), "{auth:?}");
    }
    let (code, _) = send(admin, &head("POST", "/v1/reload", None, 1 << 20), b"x").unwrap();
    assert_eq!(code, 401);
    let (code, _) = send(admin, &put_head("/v1/checks/x", None, 1 << 20), b"x").unwrap();
    assert_eq!(code, 401);
}

#[test]
fn oversized_bodies_and_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    let admin = s.admin_addr();
    let bearer = format!("Bearer {TOKEN}");
    let override_with = |reason: &str| {
        let body = format!(r#"{{"target": "us-east-1", "reason": "{reason}"}}"#);
        send(
            admin,
            &put_head(OVERRIDE, Some(&bearer), body.len()),
            body.as_bytes(),
        )
        .unwrap()
    };
    // Over the body limit (8 KiB by default): 413, said plainly.
    let (code, body) = override_with(&"x".repeat(16 * 1024));
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("max_body_bytes"), "{body}");
    // A 2 MB reason is refused the same way, without reading it all.
    let (code, _) = override_with(&"x".repeat(2_000_000));
    assert_eq!(code, 413);
    // Chunked bodies are counted as they come.
    let mut c = TcpStream::connect(admin).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        c,
        "PUT {OVERRIDE} HTTP/1.1\r\nHost: admin\r\nAuthorization: {bearer}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for _ in 0..4 {
        let _ = write!(c, "1000\r\n{}\r\n", "x".repeat(0x1000));
    }
    assert_eq!(read_response(&mut c).0, 413);

    // Within the body limit, a reason over 512 bytes: 400 with the limit.
    let (code, body) = override_with(&"x".repeat(600));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("`reason` is 600 bytes long; at most 512"),
        "{body}"
    );
    let (code, body) = override_with("two\\nlines");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("control characters"), "{body}");
    // A report's detail likewise.
    let report = format!(r#"{{"healthy": true, "detail": "{}"}}"#, "y".repeat(600));
    let (code, body) = send(
        admin,
        &put_head("/v1/checks/x", Some(&bearer), report.len()),
        report.as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("`detail` is 600 bytes long"), "{body}");

    // Nothing changed, nothing of it was logged.
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    assert!(!s.log_text().contains("xxxxxxxx"), "{}", s.log_text());
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains("txtfailover_admin_requests_rejected_total{reason=\"body_too_large\"} 3"),
        "{metrics}"
    );
}

#[test]
fn absurd_override_durations_get_400_and_the_server_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), "");
    let admin = s.admin_addr();
    let put = |extra: &str| {
        let body = format!(r#"{{"target": "us-east-1", "reason": "drill"{extra}}}"#);
        http(admin, "PUT", OVERRIDE, Some(TOKEN), &body)
    };
    for (extra, says) in [
        (
            r#", "for": "500000000000y""#,
            "longer than an override may last (1 year)",
        ),
        (
            r#", "for": "366d""#,
            "longer than an override may last (1 year)",
        ),
        (r#", "for": "0s""#, "longer than zero"),
        (
            r#", "until": "9999-12-31T23:59:59Z""#,
            "more than a year away",
        ),
        (r#", "until": "1970-01-01T00:00:00Z""#, "in the past"),
        (r#", "until": "0000-01-01T00:00:00Z""#, "`until`"),
    ] {
        let (code, body) = put(extra);
        assert_eq!(code, 400, "{extra}: {body}");
        assert!(body.contains(says), "{extra}: {body}");
    }
    assert_eq!(s.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"], "nothing changed");
    // A sane one still works.
    let (code, body) = put(r#", "for": "364d""#);
    assert_eq!(code, 200, "{body}");
    assert_eq!(s.txt("desktop.example.com."), ["IAD2"]);
    assert!(s.child.try_wait().unwrap().is_none(), "{}", s.log_text());
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    let admin = s.admin_addr();
    for (scheme, target) in [("bearer", "us-east-1"), ("BEARER", "us-west-2")] {
        let body = format!(r#"{{"target": "{target}", "reason": "drill"}}"#);
        let (code, text) = send(
            admin,
            &put_head(OVERRIDE, Some(&format!("{scheme} {TOKEN}")), body.len()),
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(code, 200, "{scheme}: {text}");
    }
}

#[test]
fn duplicate_token_labels_or_tokens_stop_check_and_serve() {
    for (tokens, says) in [
        (
            "alice 0123456789abcdef0123\n# comment\nalice fedcba9876543210fedc\n",
            "tokens:3:1: token label \"alice\" is given twice (first on line 1)",
        ),
        (
            "alice 0123456789abcdef0123\nbob 0123456789abcdef0123\n",
            "tokens:2:1: this token is already on line 1 (label \"alice\")",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), free_port(), ALIAS, ZONE);
        std::fs::write(dir.path().join("tokens"), tokens).unwrap();
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "[admin]\n",
            "[admin]\ntoken_file = \"tokens\"\n",
            1,
        );
        std::fs::write(&path, text).unwrap();
        let config = path.to_str().unwrap();
        let (ok, _, err) = cli(&["check", "--config", config]);
        assert!(!ok, "check accepted {tokens:?}");
        assert!(err.contains(says) && err.contains("hint:"), "{err}");
        // On a config it accepts, serve would run: bound the wait.
        let mut serve = std::process::Command::new(bin())
            .args(["serve", "--config", config])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = serve.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = serve.kill();
                panic!("serve started with {tokens:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = serve.wait_with_output().unwrap();
        assert!(!status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
    }
}

#[test]
fn a_request_slower_than_request_timeout_gets_408() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "request_timeout = \"1s\"\n");
    // A token, then a body that never arrives in full.
    let mut c = TcpStream::connect(s.admin_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    c.write_all(put_head(OVERRIDE, Some(&format!("Bearer {TOKEN}")), 100).as_bytes())
        .unwrap();
    c.write_all(b"{\"target\": ").unwrap();
    let (code, body) = read_response(&mut c);
    assert_eq!(code, 408, "{body}");
    assert!(body.contains("request_timeout"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.get("/healthz").0, 200);
}
