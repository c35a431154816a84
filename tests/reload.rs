//! Live reload: a bad config changes nothing; a good one swaps atomically;
//! queries keep being answered through reloads and failovers.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::*;

fn config(primary: (&str, &str), secondary: (&str, &str), pdx: &Endpoint) -> String {
    format!(
        r#"
[[check]]
name = "pdx"
kind = "http"
url = "{}"
interval = "100ms"
timeout = "80ms"
attempts = 1
fall = 1
rise = 1

[[alias]]
name = "desktop.example.com"
failback_after = "0s"
targets = [
  {{ region = "{}", connection_id = "{}", checks = ["pdx"] }},
  {{ region = "{}", connection_id = "{}" }},
]
"#,
        pdx.url(),
        primary.0,
        primary.1,
        secondary.0,
        secondary.1
    )
}

/// Rewrites the config body (after the generated header) in place.
fn rewrite(dir: &std::path::Path, body: &str) {
    let path = dir.join("txtfailover.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let head_end = text.find("[[zone]]").unwrap();
    let zone_end = head_end + text[head_end..].find("\n\n").unwrap() + 2;
    std::fs::write(&path, format!("{}{body}", &text[..zone_end])).unwrap();
}

fn reload(s: &Server) -> (u16, String) {
    http(s.admin_addr(), "POST", "/v1/reload", Some(TOKEN), "")
}

#[test]
fn bad_reload_keeps_the_running_config_and_says_why() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(
        dir.path(),
        &config(("us-west-2", "PDX1"), ("us-east-1", "IAD2"), &pdx),
    );
    let serial = s.serial();
    std::fs::write(
        dir.path().join("zones/example.com.zone"),
        format!("{ZONE}broken IN A 999.0.0.1\n"),
    )
    .unwrap();
    let (code, text) = reload(&s);
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("example.com.zone:7") && text.contains("keeping the running configuration"),
        "{text}"
    );
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    assert_eq!(s.serial(), serial);
    assert_eq!(
        s.udp(&plain_query("www.example.com.", RecordType::A))
            .metadata
            .response_code,
        ResponseCode::NoError
    );
}

#[test]
fn reload_swapping_the_primary_changes_answer_and_serial_only_when_needed() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(
        dir.path(),
        &config(("us-west-2", "PDX1"), ("us-east-1", "IAD2"), &pdx),
    );
    let serial = s.serial();
    // Same config again: nothing served changes, so neither does the serial.
    let (code, text) = reload(&s);
    assert_eq!(code, 200, "{text}");
    assert_eq!(s.serial(), serial);
    // Swap the Regions' order: the answer moves at once, the serial forward.
    rewrite(
        dir.path(),
        &config(("us-east-1", "IAD2"), ("us-west-2", "PDX1"), &pdx),
    );
    let (code, text) = reload(&s);
    assert_eq!(code, 200, "{text}");
    assert_eq!(s.txt("desktop.example.com."), ["IAD2"]);
    assert!(s.serial() > serial);
    // SIGHUP reloads too.
    rewrite(
        dir.path(),
        &config(("us-west-2", "PDX9"), ("us-east-1", "IAD2"), &pdx),
    );
    let pid = s.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    s.wait_for_txt("desktop.example.com.", "PDX9");
}

#[test]
fn no_query_is_lost_through_reloads_and_failovers() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    // The loop sends thousands of queries a second from loopback: exempt it
    // from response rate limiting, which is on by default.
    let exempt = "\n[rrl]\nexempt = [\"127.0.0.0/8\"]\n";
    let body_a = config(("us-west-2", "PDX1"), ("us-east-1", "IAD2"), &pdx) + exempt;
    let body_b = config(("us-east-1", "IAD2"), ("us-west-2", "PDX1"), &pdx) + exempt;
    let s = Server::start_with_token(dir.path(), &body_a);
    let addr = s.addr;
    let stop = Arc::new(AtomicBool::new(false));
    // A bounded load loop: sequential queries, each must be answered within 2 s.
    let loader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut sent, mut bad) = (0u32, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && sent < 200_000 {
                sent += 1;
                let q = plain_query("desktop.example.com.", RecordType::TXT);
                match query_udp_timeout(addr, &q, Duration::from_secs(2)) {
                    Some(r)
                        if r.metadata.response_code == ResponseCode::NoError
                            && txt_of(&r).len() == 1 => {}
                    other => bad.push(format!("{other:?}")),
                }
            }
            (sent, bad)
        })
    };
    for round in 0..6 {
        rewrite(dir.path(), if round % 2 == 0 { &body_b } else { &body_a });
        assert_eq!(reload(&s).0, 200);
        pdx.set_status(if round % 2 == 0 { 500 } else { 200 });
        // Pacing, not readiness: let queries run between the events.
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::SeqCst);
    let (sent, bad) = loader.join().unwrap();
    assert!(sent > 100, "the loop ran ({sent} queries)");
    assert!(
        bad.is_empty(),
        "{} of {sent} queries failed: {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
}

#[test]
fn a_sighup_during_start_up_is_a_reload_once_ready() {
    // A target that accepts and never answers: the first probe round takes
    // its whole timeout (one attempt here: max(fall, attempts) = 1), the
    // window in which an operator's reload lands.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().take(16) {
            held.push(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "[[check]]\nname = \"pdx\"\nkind = \"http\"\nurl = \"http://{target}/ping\"\n\
         interval = \"10s\"\ntimeout = \"3s\"\nattempts = 1\nfall = 1\n\n\
         [[alias]]\nname = \"desktop.example.com\"\n\
         targets = [ {{ region = \"us-west-2\", connection_id = \"PDX1\", checks = [\"pdx\"] }} ]\n"
    );
    let path = write_config(dir.path(), port, &config, ZONE);
    let log = dir.path().join("serve.log");
    let child = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut s = Server {
        child,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        dir: dir.path().to_path_buf(),
        log,
    };
    let start = Instant::now();
    while !s.log_text().contains("running the first probe round") {
        assert!(
            start.elapsed() < DEADLINE,
            "no start-up; log:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = s.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            panic!("SIGHUP ended the server ({status}); log:\n{}", s.log_text());
        }
        if query_udp_timeout(
            s.addr,
            &plain_query("desktop.example.com.", RecordType::TXT),
            Duration::from_millis(200),
        )
        .is_some()
        {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no answer; log:\n{}",
            s.log_text()
        );
    }
    // The reload asked for during start-up is done once ready.
    let start = Instant::now();
    while !s.log_text().contains("configuration reloaded") {
        assert!(
            start.elapsed() < DEADLINE,
            "no reload; log:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
}

#[test]
fn a_reload_moving_state_dir_says_it_waits_for_a_restart() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(
        dir.path(),
        &config(("us-west-2", "PDX1"), ("us-east-1", "IAD2"), &pdx),
    );
    let path = dir.path().join("txtfailover.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let moved = text.replacen("state_dir = \"state\"", "state_dir = \"state2\"", 1);
    assert_ne!(text, moved);
    std::fs::write(&path, moved).unwrap();
    let (code, text) = reload(&s);
    assert_eq!(code, 200, "{text}");
    let log = s.log_text();
    assert!(
        log.contains("state_dir changed: it takes effect at the next restart"),
        "{log}"
    );
    // Serials still go where they went.
    assert!(dir.path().join("state/serials.json").exists());
    assert!(!dir.path().join("state2").exists());
}

#[test]
fn a_query_source_that_is_not_on_this_host_is_refused_at_reload_and_at_start() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(
        dir.path(),
        &config(("us-west-2", "PDX1"), ("us-east-1", "IAD2"), &pdx),
    );
    let path = dir.path().join("txtfailover.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    // 192.0.2.1 (TEST-NET-1) is no address of a test host.
    let bad = good.replacen(
        "[server]\n",
        "[server]\nquery_source = [\"192.0.2.1\"]\n",
        1,
    );
    std::fs::write(&path, &bad).unwrap();
    let (code, text) = reload(&s);
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("query_source 192.0.2.1 cannot be bound")
            && text.contains("keeping the running configuration"),
        "{text}"
    );
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    drop(s);
    let (ok, _, err) = cli(&["serve", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("query_source 192.0.2.1 cannot be bound"),
        "{err}"
    );
}
