//! The admin API's read endpoints against the real binary.

mod support;

use support::*;

#[test]
fn status_why_and_checks_follow_a_failover() {
    let (pdx, iad) = (Endpoint::start("healthy"), Endpoint::start("healthy"));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[[check]]
name = "pdx"
kind = "http"
url = "{}"
interval = "150ms"
timeout = "100ms"
attempts = 1
fall = 1

[[check]]
name = "iad"
kind = "http"
url = "{}"
interval = "150ms"
timeout = "100ms"
attempts = 1

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2", checks = ["iad"] }},
]
"#,
        pdx.url(),
        iad.url()
    );
    let server = Server::start(dir.path(), &config, ZONE);
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(server.get("/readyz"), (200, "ready\n".to_string()));

    let (code, body) = server.get("/v1/status");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["aliases"][0]["name"], "desktop.example.com.");
    assert_eq!(v["aliases"][0]["answer"], "PDX1");
    assert_eq!(v["aliases"][0]["region"], "us-west-2");

    pdx.set_status(500);
    server.wait_for_txt("desktop.example.com.", "IAD2");
    // The view is published with the snapshot: poll briefly for it.
    let deadline = std::time::Instant::now() + DEADLINE;
    let why = loop {
        let (code, body) = server.get("/v1/aliases/Desktop.Example.com");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["alias"]["answer"] == "IAD2" {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
    };
    assert!(
        why["alias"]["reason"]
            .as_str()
            .unwrap()
            .contains("failover"),
        "{why}"
    );
    assert_eq!(why["alias"]["targets"][0]["healthy"], false);
    assert_eq!(why["alias"]["targets"][1]["healthy"], true);
    let pdx_check = why["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pdx")
        .unwrap();
    assert_eq!(pdx_check["state"], "down");
    assert!(
        pdx_check["last"]["detail"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{pdx_check}"
    );

    let (code, body) = server.get("/v1/checks");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["checks"].as_array().unwrap().len(), 2);

    let (code, body) = server.get("/v1/aliases/nope.example.com");
    assert_eq!(code, 404);
    assert!(body.contains("no alias nope.example.com."), "{body}");
    assert_eq!(server.get("/v2/whatever").0, 404);

    let (code, text) = server.get("/metrics");
    assert_eq!(code, 200);
    for want in [
        "txtfailover_queries_total{transport=\"udp\",rcode=\"NOERROR\"}",
        "txtfailover_alias_answers_total{alias=\"desktop.example.com.\",answer=\"IAD2\"}",
        "txtfailover_check_up{check=\"pdx\"} 0",
        "txtfailover_check_up{check=\"iad\"} 1",
        "txtfailover_probe_duration_seconds_bucket{",
        "txtfailover_check_transitions_total{check=\"pdx\"} 1",
        "txtfailover_answer_changes_total{alias=\"desktop.example.com.\"} 1",
        "txtfailover_zone_serial{zone=\"example.com.\"}",
        "txtfailover_build_info{version=",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
    // The TXT answers counted match what this test asked for, at least.
    let answered: f64 = text
        .lines()
        .find(|l| {
            l.starts_with(
                "txtfailover_alias_answers_total{alias=\"desktop.example.com.\",answer=\"PDX1\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(answered >= 1.0, "{text}");
}

fn pinned_config(pdx: &Endpoint, iad: &Endpoint, failback: &str) -> String {
    format!(
        r#"
[[check]]
name = "pdx"
kind = "http"
url = "{}"
interval = "150ms"
timeout = "100ms"
attempts = 1

[[check]]
name = "iad"
kind = "http"
url = "{}"
interval = "150ms"
timeout = "100ms"
attempts = 1

[[alias]]
name = "desktop.example.com"
failback = "{failback}"
failback_after = "0s"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2", checks = ["iad"] }},
]
"#,
        pdx.url(),
        iad.url()
    )
}

#[test]
fn mutations_need_a_valid_token() {
    let (pdx, iad) = (Endpoint::start("ok"), Endpoint::start("ok"));
    let dir = tempfile::tempdir().unwrap();
    let open = Server::start(dir.path(), &pinned_config(&pdx, &iad, "auto"), ZONE);
    let body = r#"{"target": "us-east-1", "reason": "drill"}"#;
    let (code, text) = http(
        open.admin_addr(),
        "PUT",
        "/v1/overrides/desktop.example.com",
        Some(TOKEN),
        body,
    );
    assert_eq!(code, 403, "no token_file: changes disabled: {text}");
    assert!(text.contains("token_file"));

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(dir.path(), &pinned_config(&pdx, &iad, "auto"));
    let path = "/v1/overrides/desktop.example.com";
    assert_eq!(http(s.admin_addr(), "PUT", path, None, body).0, 401);
    assert_eq!(
        http(
            s.admin_addr(),
            "PUT",
            path,
            Some("wrong-token-wrong-token"),
            body
        )
        .0,
        401
    );
    assert_eq!(http(s.admin_addr(), "DELETE", path, None, "").0, 401);
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"], "nothing changed");
}

#[test]
fn override_pins_survives_restart_and_expires() {
    let (pdx, iad) = (Endpoint::start("ok"), Endpoint::start("ok"));
    let dir = tempfile::tempdir().unwrap();
    let config = pinned_config(&pdx, &iad, "auto");
    let s = Server::start_with_token(dir.path(), &config);
    let serial = s.serial();
    let path = "/v1/overrides/desktop.example.com";
    let (code, text) = http(
        s.admin_addr(),
        "PUT",
        path,
        Some(TOKEN),
        r#"{"target": "us-west-3", "reason": "x"}"#,
    );
    assert_eq!(code, 400, "unknown region: {text}");
    assert!(text.contains("us-west-2, us-east-1"), "{text}");

    let (code, text) = http(
        s.admin_addr(),
        "PUT",
        path,
        Some(TOKEN),
        r#"{"target": "us-east-1", "reason": "DR drill", "for": "3s"}"#,
    );
    assert_eq!(code, 200, "{text}");
    assert_eq!(s.txt("desktop.example.com."), ["IAD2"], "pinned at once");
    assert!(s.serial() > serial);
    let (_, list) = s.get("/v1/overrides");
    assert!(
        list.contains("\"by\":\"alice\"") && list.contains("DR drill"),
        "{list}"
    );
    drop(s);

    // Restart: the pin is still there, read from state_dir.
    let port = free_port();
    let path_cfg = dir.path().join("txtfailover.toml");
    let text = std::fs::read_to_string(&path_cfg).unwrap();
    let old_port = text
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        &path_cfg,
        text.replacen(
            &format!("127.0.0.1:{old_port}"),
            &format!("127.0.0.1:{port}"),
            1,
        ),
    )
    .unwrap();
    let s = Server::start_with(dir.path(), &path_cfg, port);
    assert_eq!(
        s.txt("desktop.example.com."),
        ["IAD2"],
        "override survived the restart"
    );
    // And it expires on its own.
    s.wait_for_txt("desktop.example.com.", "PDX1");
    assert!(
        s.log_text().contains("override expired"),
        "{}",
        s.log_text()
    );
}

#[test]
fn clearing_releases_a_manual_failback() {
    let (pdx, iad) = (Endpoint::start("ok"), Endpoint::start("ok"));
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(dir.path(), &pinned_config(&pdx, &iad, "manual"));
    pdx.set_status(500);
    s.wait_for_txt("desktop.example.com.", "IAD2");
    pdx.set_status(200);
    // Manual failback: still on the failover target once the primary is back...
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (_, body) = s.get("/v1/aliases/desktop.example.com");
        if body.contains("failback is manual") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(s.txt("desktop.example.com."), ["IAD2"]);
    // ...until an operator releases it.
    let (code, text) = http(
        s.admin_addr(),
        "DELETE",
        "/v1/overrides/desktop.example.com",
        Some(TOKEN),
        "",
    );
    assert_eq!(code, 200, "{text}");
    s.wait_for_txt("desktop.example.com.", "PDX1");
}

#[test]
fn cli_status_why_and_override_through_the_api() {
    let (pdx, iad) = (Endpoint::start("ok"), Endpoint::start("ok"));
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(dir.path(), &pinned_config(&pdx, &iad, "auto"));
    let admin = format!("http://{}", s.admin_addr());
    let token_file = dir.path().join("my-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.to_str().unwrap();

    let (ok, out, err) = cli(&["status", "--admin", &admin]);
    assert!(ok, "{err}");
    assert!(
        out.contains("desktop.example.com.") && out.contains("PDX1") && out.contains("us-west-2"),
        "{out}"
    );

    let (ok, out, _) = cli(&["status", "--admin", &admin, "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["aliases"][0]["answer"], "PDX1");

    let (ok, _, err) = cli(&[
        "override",
        "set",
        "desktop.example.com",
        "us-east-1",
        "--reason",
        "drill",
        "--admin",
        &admin,
    ]);
    assert!(!ok, "no token: refused");
    assert!(
        err.contains("401") && err.contains("TXTFAILOVER_TOKEN"),
        "{err}"
    );

    let (ok, out, err) = cli(&[
        "override",
        "set",
        "desktop.example.com",
        "us-east-1",
        "--reason",
        "drill",
        "--for",
        "1h",
        "--admin",
        &admin,
        "--token-file",
        token_file,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("pinned"), "{out}");
    assert_eq!(s.txt("desktop.example.com."), ["IAD2"]);

    let (ok, out, err) = cli(&["why", "desktop.example.com", "--admin", &admin]);
    assert!(ok, "{err}");
    assert!(out.contains("override: us-east-1 by alice: drill"), "{out}");
    assert!(
        out.contains("#0 us-west-2") && out.contains("checks:"),
        "{out}"
    );

    let (ok, _, err) = cli(&[
        "override",
        "clear",
        "desktop.example.com",
        "--admin",
        &admin,
        "--token-file",
        token_file,
    ]);
    assert!(ok, "{err}");
    s.wait_for_txt("desktop.example.com.", "PDX1");

    // A server that is not there: a clear error, not a hang.
    let (ok, _, err) = cli(&[
        "status",
        "--admin",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    assert!(!ok);
    assert!(err.contains("cannot reach the admin API"), "{err}");
}

#[test]
fn external_check_follows_reports_and_goes_stale() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[[check]]
name = "cw-alarm"
kind = "external"
stale_after = "1s"
on_stale = "unhealthy"

[[alias]]
name = "desktop.example.com"
failback_after = "0s"
targets = [
  { region = "us-west-2", connection_id = "PDX1", checks = ["cw-alarm"] },
  { region = "us-east-1", connection_id = "IAD2" },
]
"#;
    let s = Server::start_with_token(dir.path(), config);
    // No report yet: no data counts as healthy.
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
    let path = "/v1/checks/cw-alarm";
    assert_eq!(
        http(s.admin_addr(), "PUT", path, None, r#"{"healthy": false}"#).0,
        401
    );
    assert_eq!(
        http(
            s.admin_addr(),
            "PUT",
            "/v1/checks/nope",
            Some(TOKEN),
            r#"{"healthy": true}"#
        )
        .0,
        404
    );
    let (code, text) = http(
        s.admin_addr(),
        "PUT",
        path,
        Some(TOKEN),
        r#"{"healthy": false, "detail": "ALARM"}"#,
    );
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        s.txt("desktop.example.com."),
        ["IAD2"],
        "one report moves it"
    );
    // Keep reporting healthy for a while: the answer holds.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        assert_eq!(
            http(
                s.admin_addr(),
                "PUT",
                path,
                Some(TOKEN),
                r#"{"healthy": true, "detail": "OK"}"#
            )
            .0,
            200
        );
        assert_eq!(s.txt("desktop.example.com."), ["PDX1"]);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Then silence: after stale_after the check counts as unhealthy.
    let silent = std::time::Instant::now();
    s.wait_for_txt("desktop.example.com.", "IAD2");
    assert!(
        silent.elapsed() >= std::time::Duration::from_millis(700),
        "went stale too early: {:?}",
        silent.elapsed()
    );
    assert!(
        s.log_text().contains("external check is stale"),
        "{}",
        s.log_text()
    );
}

#[test]
fn readyz_says_starting_until_the_first_probe_round_is_done() {
    // An endpoint that accepts and never answers: the first round waits for the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(held);
    });
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[check]]\nname = \"slow\"\nkind = \"http\"\nurl = \"http://{addr}/\"\ninterval = \"5s\"\ntimeout = \"1500ms\"\n\n\
         [[alias]]\nname = \"desktop.example.com\"\ntargets = [{{ region = \"r\", connection_id = \"A\", checks = [\"slow\"] }}]\n"
    );
    let port = free_port();
    let path = write_config(dir.path(), port, &config, ZONE);
    let log = dir.path().join("serve.log");
    let child = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut s = Server {
        child,
        addr: ([127, 0, 0, 1], port).into(),
        dir: dir.path().to_path_buf(),
        log,
    };
    let admin = s.admin_addr();
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut saw_starting = false;
    loop {
        if std::net::TcpStream::connect(admin).is_ok() {
            match http_get(admin, "/readyz") {
                (503, body) => {
                    assert_eq!(body, "starting\n");
                    saw_starting = true;
                }
                (200, _) => break,
                other => panic!("{other:?}"),
            }
        }
        if let Some(status) = s.child.try_wait().unwrap() {
            panic!("server exited ({status}); log:\n{}", s.log_text());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready; log:\n{}",
            s.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        saw_starting,
        "/readyz answered 503 while the first round ran"
    );
    assert_eq!(
        s.txt("desktop.example.com."),
        ["A"],
        "and DNS answers once ready"
    );
}

#[test]
fn a_reload_replaces_the_admin_tokens() {
    let (pdx, iad) = (Endpoint::start("ok"), Endpoint::start("ok"));
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(dir.path(), &pinned_config(&pdx, &iad, "auto"));
    // The operator revokes alice's token (it leaked) and gives bob one.
    let fresh = "fedcba9876543210fedcba98";
    std::fs::write(dir.path().join("tokens"), format!("bob {fresh}\n")).unwrap();
    let (code, text) = http(s.admin_addr(), "POST", "/v1/reload", Some(TOKEN), "");
    assert_eq!(code, 200, "{text}");
    let path = "/v1/overrides/desktop.example.com";
    let body = r#"{"target": "us-east-1", "reason": "drill"}"#;
    let (code, text) = http(s.admin_addr(), "PUT", path, Some(TOKEN), body);
    assert_eq!(code, 401, "the revoked token still works: {text}");
    assert_eq!(s.txt("desktop.example.com."), ["PDX1"], "nothing changed");
    let (code, text) = http(s.admin_addr(), "PUT", path, Some(fresh), body);
    assert_eq!(code, 200, "{text}");
    s.wait_for_txt("desktop.example.com.", "IAD2");
}

/// Every metric the README documents, as its table names it.
fn documented_metrics() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| `txtfailover_"))
        .filter_map(|l| l.split('`').next())
        .map(|name| format!("txtfailover_{name}"))
        .collect()
}

#[test]
fn every_documented_metric_is_there_from_the_first_scrape() {
    let (pdx, iad) = (Endpoint::start("ok"), Endpoint::start("ok"));
    let dir = tempfile::tempdir().unwrap();
    // A NOTIFY target, so the secondary gauges have a series (nothing
    // listens there: it stays unreachable).
    let config = format!(
        r#"notify = [{{ address = "127.0.0.1:{}" }}]

[[check]]
name = "pdx"
kind = "http"
url = "{}"

[[check]]
name = "iad"
kind = "http"
url = "{}"

[[check]]
name = "alarm"
kind = "external"

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx", "alarm"] }},
  {{ region = "us-east-1", connection_id = "IAD2", checks = ["iad"] }},
]
"#,
        free_port(),
        pdx.url(),
        iad.url()
    );
    let server = Server::start(dir.path(), &config, ZONE);
    let (code, text) = server.get("/metrics");
    assert_eq!(code, 200);
    let documented = documented_metrics();
    assert!(documented.len() > 25, "{documented:?}");
    let missing: Vec<&String> = documented
        .iter()
        .filter(|name| !text.lines().any(|l| l.starts_with(name.as_str())))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the first scrape: {missing:?}\n{text}"
    );
    // The failover gauge, per alias, from the start.
    assert_eq!(
        metric_in(
            &text,
            "txtfailover_alias_on_failover{alias=\"desktop.example.com.\"}"
        ),
        0.0
    );
}
