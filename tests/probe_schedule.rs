//! Probe rounds against the real binary: rounds are paced start to start
//! (a round that times out does not stretch the next), and a round retries
//! a failed attempt at once, so a target that drops one probe in every
//! round stays Up.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{DEADLINE, Server, ZONE};

/// A TCP endpoint that accepts connections and never answers.
fn hang() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    addr
}

/// An HTTP endpoint that answers 503 to every odd-numbered connection and
/// 200 to every even one: the first attempt of each round fails, the
/// retry succeeds. Counts the connections.
fn every_other() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let code = if n.is_multiple_of(2) { 503 } else { 200 };
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match std::io::Read::read(&mut conn, &mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let reply =
                    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = conn.write_all(reply.as_bytes());
            });
        }
    });
    (addr, seen)
}

/// Polls `read` until it differs from `from`; returns the new value.
fn wait_change(read: &dyn Fn() -> f64, from: f64, server: &Server) -> f64 {
    let start = Instant::now();
    loop {
        let now = read();
        if now != from {
            return now;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no probe round finished; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn rounds_that_time_out_keep_the_interval_start_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let addr = hang();
    let config = format!(
        "[[check]]\nname = \"hang\"\nkind = \"http\"\nurl = \"http://{addr}/\"\n\
         interval = \"1s\"\ntimeout = \"300ms\"\nattempts = 2\nfall = 2\ncanary = true\n"
    );
    let server = Server::start(dir.path(), &config, ZONE);
    let (code, text) = server.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        text.contains("txtfailover_probe_rounds_late_total{check=\"hang\"}"),
        "the late counter exists from the start: {text}"
    );
    let failed =
        || server.metric("txtfailover_probe_attempts_total{check=\"hang\",result=\"fail\"}");
    // Every round here is two attempts that each time out (600 ms).
    // Start counting right after a round ended.
    let before = wait_change(&failed, failed(), &server);
    let t0 = Instant::now();
    let window = Duration::from_millis(6500);
    std::thread::sleep(window);
    let after = failed();
    assert!(t0.elapsed() < window + Duration::from_millis(400));
    let rounds = (after - before) / 2.0;
    // Start to start: rounds end at t0 + 1 s, 2 s, ... 6 s. Slept between
    // rounds (1 s after 600 ms of timeouts) they would end every ~1.6 s: 3 or 4.
    assert!(
        (5.0..=7.0).contains(&rounds),
        "{rounds} rounds in {window:?}; log:\n{}",
        server.log_text()
    );
    assert_eq!(
        server.metric("txtfailover_probe_attempts_total{check=\"hang\",result=\"ok\"}"),
        0.0
    );
}

#[test]
fn a_target_that_fails_the_first_attempt_of_every_round_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, seen) = every_other();
    let config = format!(
        "[rrl]\nexempt = [\"127.0.0.0/8\"]\n\n\
         [[check]]\nname = \"pdx\"\nkind = \"http\"\nurl = \"http://{addr}/ping\"\n\
         interval = \"300ms\"\ntimeout = \"150ms\"\nattempts = 2\nfall = 1\nrise = 1\n\n\
         [[alias]]\nname = \"desktop.example.com\"\nfailback_after = \"0s\"\ntargets = [\n\
         {{ region = \"us-west-2\", connection_id = \"PDX1\", checks = [\"pdx\"] }},\n\
         {{ region = \"us-east-1\", connection_id = \"IAD2\" }},\n]\n"
    );
    let server = Server::start(dir.path(), &config, ZONE);
    let ok = || server.metric("txtfailover_probe_attempts_total{check=\"pdx\",result=\"ok\"}");
    // With fall = 1, any failed round would move the answer to IAD2.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            server.txt("desktop.example.com."),
            ["PDX1"],
            "log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rounds = ok();
    let failed = server.metric("txtfailover_probe_attempts_total{check=\"pdx\",result=\"fail\"}");
    assert!(rounds >= 6.0, "{rounds} successful rounds in 3 s");
    assert!(
        failed >= rounds - 1.0 && failed <= rounds + 1.0,
        "each round failed its first attempt: {failed} failed, {rounds} ok"
    );
    assert!(seen.load(Ordering::SeqCst) >= 12);
    assert_eq!(
        server.metric("txtfailover_check_up{check=\"pdx\"}"),
        1.0,
        "log:\n{}",
        server.log_text()
    );
    assert_eq!(
        server.metric("txtfailover_check_transitions_total{check=\"pdx\"}"),
        0.0
    );
    let (_, checks) = server.get("/v1/checks");
    assert!(checks.contains("(attempt 2 of 2)"), "{checks}");
}
