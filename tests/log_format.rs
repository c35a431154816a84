//! What the log looks like to whoever reads it: plain text in a file, one
//! JSON object a line for machines, syslog priorities for journald.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use support::*;

/// One alias on one check; the endpoint decides the answer.
fn config(url: &str) -> String {
    format!(
        r#"
[[check]]
name = "pdx"
kind = "http"
url = "{url}"
interval = "150ms"
timeout = "100ms"
attempts = 1
fall = 2
rise = 2

[[alias]]
name = "desktop.example.com"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2" }},
]
"#
    )
}

/// `serve` with `[server] server_line` (if not empty), `args` and `env`.
fn launch(
    dir: &Path,
    config: &str,
    server_line: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let port = free_port();
    let path = write_config(dir, port, config, ZONE);
    add_server_line(&path, server_line);
    Server::launch_with(dir, &path, port, None, args, env)
}

/// Adds `line` first in the config's [server] table (line 2).
fn add_server_line(path: &Path, line: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replacen("[server]\n", &format!("[server]\n{line}\n"), 1);
    std::fs::write(path, text).unwrap();
}

/// Fails `pdx` over and waits until the change is in the log.
fn fail_over(server: &Server, pdx: &Endpoint) {
    pdx.set_status(503);
    server.wait_for_txt("desktop.example.com.", "IAD2");
    poll_until(
        DEADLINE,
        "the answer change in the log",
        || server.log_text(),
        || server.log_text().contains("answer changed"),
    );
}

#[test]
fn a_log_file_gets_no_colour_codes() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let server = launch(dir.path(), &config(&pdx.url()), "", &[], &[]);
    fail_over(&server, &pdx);
    let log = std::fs::read(&server.log).unwrap();
    assert!(
        !log.contains(&0x1b),
        "ESC in a redirected stderr:\n{}",
        String::from_utf8_lossy(&log)
    );
    // Text is still the default.
    assert!(
        String::from_utf8_lossy(&log)
            .lines()
            .any(|l| l.contains(" WARN ") && l.contains("answer changed")),
        "{}",
        String::from_utf8_lossy(&log)
    );
}

/// Every line of `text` as JSON; the answer change line.
fn json_lines(text: &str) -> serde_json::Value {
    let mut change = None;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target"] {
            assert!(v[key].is_string(), "no {key}: {line}");
        }
        assert!(v["fields"]["message"].is_string(), "no message: {line}");
        if v["fields"]["message"] == "answer changed" {
            change = Some(v);
        }
    }
    change.unwrap_or_else(|| panic!("no answer change in:\n{text}"))
}

fn assert_change_fields(change: &serde_json::Value) {
    assert_eq!(change["level"], "WARN", "{change}");
    assert_eq!(change["target"], "txtfailover::engine::publish", "{change}");
    let fields = &change["fields"];
    assert_eq!(fields["alias"], "desktop.example.com.", "{change}");
    for key in ["from", "to", "reason"] {
        assert!(fields[key].is_string(), "no {key}: {change}");
    }
    assert!(fields["to"].as_str().unwrap().contains("IAD2"), "{change}");
    assert!(fields["serial"].is_u64(), "serial is a number: {change}");
}

#[test]
fn json_format_is_one_object_per_line_with_the_event_fields() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let flag = ["--log-format", "json"];
    let server = launch(dir.path(), &config(&pdx.url()), "", &flag, &[]);
    fail_over(&server, &pdx);
    assert_change_fields(&json_lines(&server.log_text()));
}

#[test]
fn config_key_sets_json_and_the_flag_wins_over_it() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let key = "log_format = \"json\"";
    let server = launch(dir.path(), &config(&pdx.url()), key, &[], &[]);
    fail_over(&server, &pdx);
    assert_change_fields(&json_lines(&server.log_text()));
    drop(server);

    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let flag = ["--log-format", "text"];
    let server = launch(dir.path(), &config(&pdx.url()), key, &flag, &[]);
    fail_over(&server, &pdx);
    let log = server.log_text();
    assert!(
        log.lines().all(|l| !l.starts_with('{')),
        "--log-format text wins over the key:\n{log}"
    );
}

#[test]
fn an_unknown_log_format_is_a_config_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), free_port(), "", ZONE);
    add_server_line(&path, "log_format = \"xml\"");
    let (ok, _, err) = cli(&["check", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("txtfailover.toml:2:14: log_format \"xml\" is not known"),
        "{err}"
    );
    assert!(err.contains("hint: use one of \"text\", \"json\""), "{err}");
}

#[test]
fn on_the_journal_stream_lines_carry_the_syslog_priority() {
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = write_config(dir.path(), port, &config(&pdx.url()), ZONE);
    // The launcher writes stderr into this file (same inode): as systemd
    // does, name it in JOURNAL_STREAM.
    let log = dir.path().join(format!("serve-{port}.log"));
    std::fs::write(&log, "").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let server = Server::launch_with(
        dir.path(),
        &path,
        port,
        None,
        &[],
        &[("JOURNAL_STREAM", &stream)],
    );
    fail_over(&server, &pdx);
    let text = server.log_text();
    assert!(!text.contains('\x1b'), "{text}");
    for line in text.lines() {
        let ok = ["<3>", "<4>", "<6>", "<7>"]
            .iter()
            .any(|p| line.starts_with(p));
        assert!(ok, "no priority prefix: {line}");
        // journald stamps lines itself.
        assert!(!line.contains("Z  "), "a timestamp: {line}");
    }
    // The second line of a warning (its hint) is a journal entry of its
    // own: it has the warning's priority too.
    assert!(text.lines().any(|l| l.starts_with("<4>  hint: ")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("<4>WARN txtfailover::engine::publish: answer changed")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("<6>INFO ")), "{text}");
}

#[test]
fn journal_stream_of_another_file_is_not_the_journal() {
    // A child whose stderr was redirected inherits JOURNAL_STREAM from
    // systemd: it must not write priorities into its file.
    let pdx = Endpoint::start("ok");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    std::fs::write(&other, "").unwrap();
    let meta = std::fs::metadata(&other).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let env = [("JOURNAL_STREAM", stream.as_str())];
    let server = launch(dir.path(), &config(&pdx.url()), "", &[], &env);
    fail_over(&server, &pdx);
    let text = server.log_text();
    assert!(text.lines().all(|l| !l.starts_with('<')), "{text}");
}
