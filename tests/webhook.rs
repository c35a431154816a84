//! Webhooks: a signed JSON POST per answer change, retried when refused, and
//! one when a secondary falls out of sync and when it is back.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// Head and body of each request received.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// Receives POSTs; refuses the first with 500, accepts the rest.
fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break (String::new(), String::new()),
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
                let text = String::from_utf8_lossy(&data).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_string(), body.to_string());
                    }
                }
            };
            let mut seen = store.lock().unwrap();
            let code = if seen.is_empty() { 500 } else { 200 };
            seen.push((head, body));
            let _ = conn.write_all(
                format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, seen)
}

#[test]
fn answer_changes_are_posted_signed_and_retried() {
    let (url, seen) = receiver();
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.secret"), "s3cret\n").unwrap();
    let config = format!(
        r#"
[[webhook]]
url = "{url}"
secret_file = "hook.secret"

[[check]]
name = "pdx"
kind = "http"
url = "{}"
interval = "100ms"
timeout = "80ms"
attempts = 1
fall = 1

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2" }},
]
"#,
        pdx.url()
    );
    let s = Server::start(dir.path(), &config, ZONE);
    pdx.set_status(500);
    s.wait_for_txt("desktop.example.com.", "IAD2");
    let deadline = Instant::now() + DEADLINE;
    while seen.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "webhook not retried; log:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].1, seen[1].1, "the retry carries the same body");
    let (head, body) = &seen[1];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["event"], "answer_changed");
    assert_eq!(v["alias"], "desktop.example.com.");
    assert!(v["from"].as_str().unwrap().starts_with("PDX1"), "{v}");
    assert!(v["to"].as_str().unwrap().starts_with("IAD2"), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("failover"), "{v}");
    assert!(v["serial"].as_u64().unwrap() > 5);
    let signature = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-txtfailover-signature: ")
                .map(str::to_string)
        })
        .expect("signature header");
    assert_eq!(
        signature,
        txtfailover::webhook::signature(b"s3cret", body.as_bytes())
    );
}

#[test]
fn a_secondary_falling_behind_and_catching_up_is_posted_once_each() {
    let (url, seen) = receiver();
    let fake = FakeSecondary::start(3);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"notify = [{{ address = "{}" }}]

[[webhook]]
url = "{url}"

[[check]]
name = "alarm"
kind = "external"

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["alarm"] }},
  {{ region = "us-east-1", connection_id = "IAD2" }},
]
"#,
        fake.addr
    );
    let port = free_port();
    let path = write_config(dir.path(), port, &config, ZONE);
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[server]\n",
        "[server]\nsecondary_check_interval = \"1s\"\nsecondary_lag_warn = \"1s\"\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let s = Server::start_with(dir.path(), &path, port);
    let event = |kind: &str| -> serde_json::Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let found = seen.lock().unwrap().iter().find_map(|(_, body)| {
                let v: serde_json::Value = serde_json::from_str(body).ok()?;
                (v["event"] == kind).then_some(v)
            });
            if let Some(v) = found {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} event; log:\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let v = event("secondary_out_of_sync");
    assert_eq!(v["zone"], "example.com.");
    assert_eq!(v["secondary"], fake.addr.to_string().as_str());
    assert_eq!(
        (
            v["state"].as_str(),
            v["serial"].as_u64(),
            v["ours"].as_u64(),
            v["lag"].as_u64()
        ),
        (Some("behind"), Some(3), Some(5), Some(2)),
        "{v}"
    );
    assert!(
        v["since"].is_string() && v["time"].is_string() && v["error"].is_null(),
        "{v}"
    );
    // Asked twice more while still behind: no new event.
    for _ in 0..2 {
        let before = wait_secondary(&s, fake.addr, "asked", |r| r["state"] == "behind");
        wait_secondary(&s, fake.addr, "asked again", |r| {
            r["last_checked"] != before["last_checked"]
        });
    }
    fake.set(5);
    let v = event("secondary_in_sync");
    assert_eq!(
        (v["state"].as_str(), v["lag"].as_u64()),
        (Some("in_sync"), Some(0)),
        "{v}"
    );
    // Once each: asked every second meanwhile, nothing more was posted
    // (the first POST was refused and retried with the same body).
    let bodies: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    let mut distinct = bodies.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "{bodies:?}");
}
