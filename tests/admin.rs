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
fall = 1

[[check]]
name = "iad"
kind = "http"
url = "{}"
interval = "150ms"
timeout = "100ms"

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
