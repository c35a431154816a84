//! Failover and failback end to end: the real binary, real local HTTP and TCP
//! endpoints, answers read over UDP and TCP.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::*;

fn two_region_config(primary: &str, secondary: &str, extra_alias: &str) -> String {
    format!(
        r#"
[[check]]
name = "pdx"
kind = "http"
url = "{primary}"
interval = "150ms"
timeout = "100ms"
attempts = 1
fall = 2
rise = 2

[[check]]
name = "iad"
kind = "http"
url = "{secondary}"
interval = "150ms"
timeout = "100ms"
attempts = 1
fall = 2
rise = 2

[[alias]]
name = "desktop.example.com"
failback_after = "1s"
{extra_alias}
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2", checks = ["iad"] }},
]
"#
    )
}

#[test]
fn fails_over_and_back_with_failback_delay() {
    let (pdx, iad) = (Endpoint::start("healthy"), Endpoint::start("healthy"));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &two_region_config(&pdx.url(), &iad.url(), ""),
        ZONE,
    );
    assert_eq!(server.txt("desktop.example.com."), ["PDX1"]);
    let serial0 = server.serial();

    pdx.set_status(503);
    server.wait_for_txt("desktop.example.com.", "IAD2");
    let tcp = server.tcp(&plain_query("desktop.example.com.", RecordType::TXT));
    assert_eq!(txt_of(&tcp), ["IAD2"], "TCP sees the same answer");
    assert!(
        server.serial() > serial0,
        "serial moves forward on failover"
    );
    assert!(
        server.log_text().contains("answer changed"),
        "the change is logged"
    );

    let recovered = Instant::now();
    pdx.set_status(200);
    server.wait_for_txt("desktop.example.com.", "PDX1");
    assert!(
        recovered.elapsed() >= Duration::from_secs(1),
        "failback waited for failback_after (took {:?})",
        recovered.elapsed()
    );
    assert!(server.serial() > serial0 + 1);
}

#[test]
fn unexpected_body_counts_as_failure() {
    let (pdx, iad) = (Endpoint::start("maintenance"), Endpoint::start("healthy"));
    let dir = tempfile::tempdir().unwrap();
    // The first round decides this test, so its probes get a timeout no
    // loaded machine runs into (100 ms once timed out the healthy one).
    let config = two_region_config(&pdx.url(), &iad.url(), "")
        .replace(
            "fall = 2\nrise = 2\n\n[[check]]",
            "fall = 2\nrise = 2\nexpect_body = \"healthy\"\n\n[[check]]",
        )
        .replace(
            "interval = \"150ms\"\ntimeout = \"100ms\"",
            "interval = \"10s\"\ntimeout = \"5s\"",
        );
    let server = Server::start(dir.path(), &config, ZONE);
    // The first probe round already saw the wrong body: secondary from the start.
    assert_eq!(server.txt("desktop.example.com."), ["IAD2"]);
    assert!(server.log_text().contains("is not in the first 5120 bytes"));
}

#[test]
fn tcp_check_follows_a_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = std::thread::spawn(move || {
        // Accept for a while, then close the port.
        let deadline = Instant::now() + Duration::from_millis(300);
        listener.set_nonblocking(true).unwrap();
        while Instant::now() < deadline {
            let _ = listener.accept();
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[[check]]
name = "pcoip"
kind = "tcp"
address = "{addr}"
interval = "100ms"
timeout = "50ms"
fall = 1
rise = 1

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pcoip"] }},
  {{ region = "us-east-1", connection_id = "IAD2" }},
]
"#
    );
    let server = Server::start(dir.path(), &config, ZONE);
    accept.join().unwrap();
    server.wait_for_txt("desktop.example.com.", "IAD2");
}

#[test]
fn all_down_policies_answer_as_configured() {
    let (pdx, iad) = (Endpoint::start("x"), Endpoint::start("x"));
    pdx.set_status(500);
    iad.set_status(500);
    let dir = tempfile::tempdir().unwrap();
    let config = two_region_config(&pdx.url(), &iad.url(), "all_down = \"servfail\"");
    let server = Server::start(dir.path(), &config, ZONE);
    let r = server.udp(&plain_query("desktop.example.com.", RecordType::TXT));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    // Other names are unaffected.
    let www = server.udp(&plain_query("www.example.com.", RecordType::A));
    assert_eq!(www.metadata.response_code, ResponseCode::NoError);
    // Recovery: any healthy target answers at once.
    iad.set_status(200);
    server.wait_for_txt("desktop.example.com.", "IAD2");

    iad.set_status(500);
    let dir = tempfile::tempdir().unwrap();
    let config = two_region_config(&pdx.url(), &iad.url(), "all_down = \"nodata\"");
    let server = Server::start(dir.path(), &config, ZONE);
    let r = server.udp(&plain_query("desktop.example.com.", RecordType::TXT));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn serial_never_goes_back_across_restarts() {
    let (pdx, iad) = (Endpoint::start("ok"), Endpoint::start("ok"));
    let dir = tempfile::tempdir().unwrap();
    let config = two_region_config(&pdx.url(), &iad.url(), "");
    let first = Server::start(dir.path(), &config, ZONE);
    pdx.set_status(503);
    first.wait_for_txt("desktop.example.com.", "IAD2");
    let serial = first.serial();
    drop(first);

    // Primary healthy again: the restarted server resumes the secondary
    // and fails back after failback_after, as it would have without the
    // restart; the serial must move past the last one served.
    pdx.set_status(200);
    let port = free_port();
    let path = write_config(dir.path(), port, &config, ZONE);
    let second = Server::start_with(dir.path(), &path, port);
    second.wait_for_txt("desktop.example.com.", "PDX1");
    assert!(second.serial() > serial, "{} > {serial}", second.serial());
    let again = second.serial();
    drop(second);

    // Same data again: same serial.
    let port = free_port();
    let path = write_config(dir.path(), port, &config, ZONE);
    let third = Server::start_with(dir.path(), &path, port);
    assert_eq!(third.serial(), again);
}

#[test]
fn https_checks_verify_certificates_unless_told_not_to() {
    let tls = TlsEndpoint::start("pdx.test");
    let port = tls.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[[check]]
name = "strict"
kind = "https"
url = "https://pdx.test:{port}/ping"
resolve = "{addr}"
interval = "1s"
timeout = "500ms"

[[check]]
name = "lax"
kind = "https"
url = "https://pdx.test:{port}/ping"
resolve = "{addr}"
tls_verify = false
expect_body = "sni=pdx.test host=pdx.test"
interval = "1s"
timeout = "500ms"

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "STRICT", checks = ["strict"] }},
  {{ region = "us-east-1", connection_id = "LAX", checks = ["lax"] }},
]
"#,
        addr = tls.addr
    );
    let server = Server::start(dir.path(), &config, ZONE);
    // Self-signed: verification fails, so the primary is down from the first round;
    // without verification the same endpoint is healthy, reached by its name
    // (SNI and Host) at the address given in `resolve`.
    assert_eq!(
        server.txt("desktop.example.com."),
        ["LAX"],
        "log:\n{}",
        server.log_text()
    );
    assert!(
        server.log_text().to_lowercase().contains("certificate"),
        "{}",
        server.log_text()
    );
}

#[test]
fn command_check_follows_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("pdx-up");
    std::fs::write(&flag, "").unwrap();
    let config = format!(
        r#"
[[check]]
name = "alarm"
kind = "command"
command = ["test", "-e", "{}"]
interval = "100ms"
timeout = "80ms"
attempts = 1
fall = 1
rise = 1

[[alias]]
name = "desktop.example.com"
failback_after = "0s"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["alarm"] }},
  {{ region = "us-east-1", connection_id = "IAD2" }},
]
"#,
        flag.display()
    );
    let server = Server::start(dir.path(), &config, ZONE);
    assert_eq!(server.txt("desktop.example.com."), ["PDX1"]);
    std::fs::remove_file(&flag).unwrap();
    server.wait_for_txt("desktop.example.com.", "IAD2");
    assert!(
        server.log_text().contains("exit status: 1"),
        "{}",
        server.log_text()
    );
    std::fs::write(&flag, "").unwrap();
    server.wait_for_txt("desktop.example.com.", "PDX1");
}

#[test]
fn hung_command_times_out_and_counts_as_failure() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[[check]]
name = "slow"
kind = "command"
command = ["sleep", "30"]
interval = "1s"
timeout = "100ms"

[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDX1", checks = ["slow"] },
  { region = "us-east-1", connection_id = "IAD2" },
]
"#;
    let server = Server::start(dir.path(), config, ZONE);
    assert_eq!(server.txt("desktop.example.com."), ["IAD2"]);
    assert!(
        server.log_text().contains("timed out after 100ms"),
        "{}",
        server.log_text()
    );
}

#[test]
fn composite_any_stays_up_until_every_member_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "").unwrap();
    std::fs::write(&b, "").unwrap();
    let config = format!(
        r#"
[[check]]
name = "gw-a"
kind = "command"
command = ["test", "-e", "{}"]
interval = "100ms"
timeout = "80ms"
attempts = 1
fall = 1

[[check]]
name = "gw-b"
kind = "command"
command = ["test", "-e", "{}"]
interval = "100ms"
timeout = "80ms"
attempts = 1
fall = 1

[[check]]
name = "either-gateway"
kind = "any"
checks = ["gw-a", "gw-b"]

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["either-gateway"] }},
  {{ region = "us-east-1", connection_id = "IAD2" }},
]
"#,
        a.display(),
        b.display()
    );
    let server = Server::start(dir.path(), &config, ZONE);
    assert_eq!(server.txt("desktop.example.com."), ["PDX1"]);
    std::fs::remove_file(&a).unwrap();
    // Wait until gw-a is seen down, then check the answer held.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (_, body) = server.get("/v1/checks");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["checks"][0]["state"] == "down" {
            assert_eq!(v["checks"][2]["state"], "up", "{v}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        server.txt("desktop.example.com."),
        ["PDX1"],
        "one member up is enough"
    );
    std::fs::remove_file(&b).unwrap();
    server.wait_for_txt("desktop.example.com.", "IAD2");
}
