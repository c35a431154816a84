//! Zone data that cannot go on the wire (a TXT character-string over 255
//! bytes, as a DKIM key pasted as one string) never kills the server: start
//! stops with an error naming it, a reload is refused and the running data
//! keeps being answered. Whether `check` or the snapshot builder catches it
//! first, the outcome must be the same.

mod support;

use std::process::Command;
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::*;

const ALIAS: &str = r#"
[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDX1" },
  { region = "us-east-1", connection_id = "IAD2" },
]
"#;

/// The test zone plus a TXT record holding one 300-byte string.
fn zone_with_long_string() -> String {
    format!("{ZONE}dkim IN TXT \"{}\"\n", "k".repeat(300))
}

/// Accepts either catcher: the config checker (file and line) or the
/// snapshot builder (owner and type).
fn names_the_problem(text: &str) -> bool {
    text.contains("example.com.zone:") || text.contains("dkim.example.com. TXT")
}

#[test]
fn serve_refuses_to_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, ALIAS, &zone_with_long_string());
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "a panic: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(names_the_problem(&stderr), "{stderr}");
}

#[test]
fn a_reload_that_cannot_be_served_keeps_the_running_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(dir.path(), ALIAS);
    let serial = s.serial();
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    std::fs::write(
        dir.path().join("zones/example.com.zone"),
        zone_with_long_string(),
    )
    .unwrap();

    // The API says why, as for any refused reload.
    let (code, body) = http(s.admin_addr(), "POST", "/v1/reload", Some(TOKEN), "");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("\"error\"") && body.contains("keeping the running configuration"),
        "{body}"
    );
    assert!(names_the_problem(&body), "{body}");

    // So does the CLI, with a non-zero exit.
    let out = Command::new(bin())
        .args(["reload", "--admin", &format!("http://{}", s.admin_addr())])
        .env("TXTFAILOVER_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("keeping the running configuration") && names_the_problem(&stderr),
        "{stderr}"
    );

    // SIGHUP: refused too, and the server lives on.
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let refusals = |log: &str| log.matches("keeping the running configuration").count();
    while refusals(&s.log_text()) < 3 {
        assert!(
            start.elapsed() < DEADLINE,
            "the SIGHUP reload was not refused; log:\n{}",
            s.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // Still the old data, on both transports, from a live process.
    let mut s = s;
    assert!(s.child.try_wait().unwrap().is_none(), "{}", s.log_text());
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    assert_eq!(s.serial(), serial);
    let tcp = s.tcp(&plain_query("desktop.example.com.", RecordType::TXT));
    assert_eq!(txt_of(&tcp), ["PDX1"]);
    let dkim = s.udp(&plain_query("dkim.example.com.", RecordType::TXT));
    assert_eq!(dkim.metadata.response_code, ResponseCode::NXDomain);
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}
