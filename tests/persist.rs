//! Serials never go backwards: while the state directory cannot be written,
//! a failover is held (the previous answer and serial stay served) and said
//! loudly; once writes work again the change goes out with a persisted
//! serial, and a restart serves no lower serial than any served before.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::*;

fn config(pdx: &Endpoint) -> String {
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
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2" }},
]
"#,
        pdx.url()
    )
}

fn persisted_serial(dir: &Path) -> u32 {
    let text = std::fs::read_to_string(dir.join("state/serials.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["zones"]["example.com."]["serial"].as_u64().unwrap() as u32
}

/// The value of a metric line starting with `prefix` (0 when absent).
const FAILURES: &str = "txtfailover_state_persist_failures_total{file=\"serials\"}";

fn wait_until(s: &Server, what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}; log:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_failover_waits_for_its_serial_to_be_persisted() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config(&pdx), ZONE);
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    let serial0 = s.serial();
    assert_eq!(persisted_serial(dir.path()), serial0);
    let (code, _) = s.get("/readyz");
    assert_eq!(code, 200);

    // The store writes a temp file and renames it: make that path a
    // directory and every write fails, even as root.
    let blocker = dir.path().join("state/.serials.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    pdx.set_status(500);
    wait_until(&s, "the failed write", || {
        s.log_text().contains("cannot persist serials")
    });

    // Held: the answer and serial do not move, on either transport.
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    assert_eq!(s.serial(), serial0);
    let tcp = s.tcp(&plain_query("desktop.example.com.", RecordType::TXT));
    assert_eq!(txt_of(&tcp), ["PDX1"]);
    assert_eq!(persisted_serial(dir.path()), serial0);
    // And said loudly: readiness, status, metrics, CLI.
    let (code, body) = s.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("state not persisted: "), "{body}");
    let (_, status) = s.get("/v1/status");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["state"]["persisted"], false, "{status}");
    assert!(v["state"]["error"].as_str().is_some(), "{status}");
    assert_eq!(v["aliases"][0]["answer"], "PDX1", "{status}");
    assert_eq!(v["aliases"][0]["pending"], "IAD2", "{status}");
    assert_eq!(v["aliases"][0]["serial"], serial0, "{status}");
    assert!(s.metric(FAILURES) >= 1.0);
    assert_eq!(s.metric("txtfailover_state_persist_ok"), 0.0);
    let (ok, out, err) = cli(&["status", "--admin", &format!("http://{}", s.admin_addr())]);
    assert!(ok, "{err}");
    assert!(
        out.contains("WARNING: serials not persisted") && out.contains("[pending: IAD2"),
        "{out}"
    );
    // It retries on its own (backoff from 1 s), still holding the change.
    wait_until(&s, "a retry", || s.metric(FAILURES) >= 2.0);
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    assert_eq!(s.serial(), serial0);

    // Writable again: the held failover goes out with a persisted serial.
    std::fs::remove_dir(&blocker).unwrap();
    s.wait_for_txt("desktop.example.com.", "IAD2");
    let serial1 = s.serial();
    assert!(serial1 > serial0, "{serial1} > {serial0}");
    assert_eq!(persisted_serial(dir.path()), serial1);
    let (code, body) = s.get("/readyz");
    assert_eq!(code, 200, "{body}");
    assert_eq!(s.metric("txtfailover_state_persist_ok"), 1.0);
    assert!(s.log_text().contains("serials persisted again"));

    // A restart serves no lower serial than any served before.
    let port = s.addr.port();
    drop(s);
    let s = Server::start_with(dir.path(), &dir.path().join("txtfailover.toml"), port);
    assert!(s.serial() >= serial1, "{} >= {serial1}", s.serial());
    assert_eq!(s.txt("desktop.example.com."), ["IAD2"]);
}
