//! Zone files as careless or hostile operators write them: large zones are
//! checked in one pass (the line of a problem found without re-parsing),
//! FIFOs, devices and oversized files are refused at once, and records that
//! cannot go on the wire are refused by `check` with their line.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use support::*;

/// Long enough for a debug build on a loaded machine; the quadratic checker
/// this replaces needed hours for these zones, and a FIFO blocked forever.
const CHECK_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `txtfailover <args>`, killing it at `deadline`: success, stdout, stderr.
fn run_with_deadline(args: &[&str], deadline: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "txtfailover {args:?} still running after {deadline:?}; stderr so far:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.success(),
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    )
}

fn check_zone(dir: &Path, zone: &str) -> (bool, String, String) {
    let config = write_config(dir, 5353, "", zone);
    run_with_deadline(
        &["check", "--config", config.to_str().unwrap()],
        CHECK_DEADLINE,
    )
}

/// ZONE (6 lines, 4 records) and `n - 4` more records, one per line.
fn big_zone(n: usize, line: impl Fn(usize) -> String) -> String {
    let mut zone = String::from(ZONE);
    for i in 0..n - 4 {
        zone.push_str(&line(i));
        zone.push('\n');
    }
    zone
}

fn host(i: usize) -> String {
    if i % 5 == 4 {
        format!("        IN TXT \"v=spf1 -all {i}\"")
    } else {
        format!(
            "h{i} IN A 10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )
    }
}

#[test]
fn an_error_on_the_last_line_of_a_100k_record_zone_names_that_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut zone = big_zone(99_999, host);
    zone.push_str("broken IN A 999.1.1.1\n");
    let (ok, _, err) = check_zone(dir.path(), &zone);
    assert!(!ok);
    // 6 lines of ZONE hold 4 records: the 100,000th record is on line 100,002.
    assert!(
        err.contains("example.com.zone:100002:1: zone file does not parse"),
        "{err}"
    );
    assert!(
        err.contains("hint: write RFC 1035 master-file syntax"),
        "{err}"
    );
    assert!(err.contains("1 problem(s)"), "{err}");
}

#[test]
fn a_valid_100k_record_zone_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = check_zone(dir.path(), &big_zone(100_000, host));
    assert!(ok, "{err}");
    assert!(
        out.contains("zone example.com. serial 5 (100000 records)"),
        "{out}"
    );
}

#[test]
fn a_zone_of_40k_cnames_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = check_zone(
        dir.path(),
        &big_zone(40_000, |i| format!("c{i} IN CNAME www")),
    );
    assert!(ok, "{err}");
    assert!(out.contains("(40000 records)"), "{out}");
}

#[test]
fn thousands_of_out_of_zone_records_are_reported_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let zone = big_zone(10_004, |i| format!("o{i}.elsewhere.org. IN A 192.0.2.1"));
    let (ok, _, err) = check_zone(dir.path(), &zone);
    assert!(!ok);
    assert!(
        err.contains("example.com.zone:7:1: record o0.elsewhere.org. is outside the zone"),
        "{err}"
    );
    assert!(
        err.contains("9900 more problem(s) in this zone are not shown"),
        "{err}"
    );
    assert!(
        err.lines().filter(|l| l.starts_with("error:")).count() == 101,
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_as_zone_file_is_refused_at_once_by_check_serve_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port(), "", ZONE);
    let zone = dir.path().join("zones/example.com.zone");
    std::fs::remove_file(&zone).unwrap();
    let made = Command::new("mkfifo").arg(&zone).status().unwrap();
    assert!(made.success());
    let config = config.to_str().unwrap();
    for command in ["check", "serve"] {
        let (ok, _, err) = run_with_deadline(&[command, "--config", config], DEADLINE);
        assert!(!ok);
        assert!(
            err.contains("cannot read zone file")
                && err.contains("it is a FIFO (named pipe); only regular files are read")
                && err
                    .contains("hint: txtfailover reads only regular UTF-8 files of at most 64 MiB"),
            "{command}: {err}"
        );
    }

    // A running server asked to reload onto a FIFO keeps serving.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_token(dir.path(), "");
    let zone = dir.path().join("zones/example.com.zone");
    std::fs::remove_file(&zone).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&zone)
            .status()
            .unwrap()
            .success()
    );
    let (code, text) = http(s.admin_addr(), "POST", "/v1/reload", Some(TOKEN), "");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("FIFO"), "{text}");
    let answer = s.udp(&plain_query("www.example.com.", RecordType::A));
    assert_eq!(answer.answers.len(), 1, "{answer:?}");
}

#[cfg(unix)]
#[test]
fn including_a_device_or_an_oversized_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = check_zone(dir.path(), &format!("{ZONE}$INCLUDE /dev/zero\n"));
    assert!(!ok);
    assert!(
        err.contains(
            "example.com.zone:7:1: cannot read included file /dev/zero: it is a character device"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: point $INCLUDE at a regular file"),
        "{err}"
    );

    // A sparse 65 MiB file costs nothing to make and is never read.
    let big = dir.path().join("zones/big.inc");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    let (ok, _, err) = check_zone(dir.path(), &format!("{ZONE}$INCLUDE big.inc\n"));
    assert!(!ok);
    assert!(err.contains("big.inc: it is larger than 64 MiB"), "{err}");
}

#[test]
fn a_txt_string_over_255_bytes_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = "A".repeat(392);
    let zone =
        format!("{ZONE}sel._domainkey IN TXT \"v=DKIM1; k=rsa; p={key}\"\nafter IN A 192.0.2.1\n");
    let (ok, _, err) = check_zone(dir.path(), &zone);
    assert!(!ok);
    assert!(
        err.contains("example.com.zone:7:1: TXT record sel._domainkey.example.com. holds a character-string of 410 bytes"),
        "{err}"
    );
    assert!(
        err.contains(
            "hint: split it into several quoted strings of at most 255 bytes: \"part1\" \"part2\""
        ),
        "{err}"
    );
    // `serve` refuses the same zone the same way, instead of panicking.
    let config = write_config(dir.path(), free_port(), "", &zone);
    let (ok, _, err) =
        run_with_deadline(&["serve", "--config", config.to_str().unwrap()], DEADLINE);
    assert!(!ok);
    assert!(err.contains("example.com.zone:7:1: TXT record"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn txt_data_over_65535_bytes_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let part = format!("\"{}\" ", "x".repeat(255));
    let zone = format!(
        "{ZONE}ok IN TXT \"fine\"\nhuge IN TXT {}\n",
        part.repeat(300)
    );
    let (ok, _, err) = check_zone(dir.path(), &zone);
    assert!(!ok);
    assert!(
        err.contains("example.com.zone:8:1: TXT record huge.example.com. has 76800 bytes of data; one record holds at most 65535"),
        "{err}"
    );
}

/// A DKIM key as opendkim-genkey writes it: quoted strings inside
/// parentheses over several lines, with `;` inside a string and a comment.
#[test]
fn a_dkim_key_across_lines_is_served_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let key = "B".repeat(250);
    let zone = format!(
        "{ZONE}mail._domainkey IN TXT ( \"v=DKIM1; h=sha256; k=rsa; \"\n\t  \"p={key}\"\n\t  \"IDAQAB\" )  ; ----- DKIM key mail\n"
    );
    let s = Server::start(dir.path(), "", &zone);
    assert_eq!(
        s.txt("mail._domainkey.example.com."),
        [format!("v=DKIM1; h=sha256; k=rsa; |p={key}|IDAQAB")]
    );
}
