//! The systemd unit and the service manager protocol: the unit passes
//! `systemd-analyze verify`, and the server reports READY=1 once it answers,
//! feeds the watchdog while its engine turns, and says STOPPING=1 on SIGTERM.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const CONFIG: &str = r#"
[[check]]
name = "pdx"
kind = "external"

[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] },
  { region = "us-east-1", connection_id = "IAD2" },
]
"#;

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/txtfailover.service"
    ))
    .unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=txtfailover",
        "LimitNOFILE=",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // verify checks that ExecStart's program exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("txtfailover.service");
    std::fs::write(&path, unit.replace("/usr/bin/txtfailover", bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed");
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// Reads one datagram, or None after `within`.
fn next(socket: &UnixDatagram, within: Duration) -> Option<String> {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, CONFIG, ZONE);
    let started = Instant::now();
    let mut server = Server::launch_with(
        dir.path(),
        &config,
        port,
        None,
        &[],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let first = next(&socket, Duration::from_secs(20)).expect("no message from the server");
    assert!(first.contains("READY=1"), "{first:?}");
    // Ready means answering: readiness and DNS both say so already.
    assert_eq!(server.get("/readyz").0, 200);
    assert_eq!(server.txt("desktop.example.com."), ["PDX1"]);
    // The watchdog, at half of WATCHDOG_USEC.
    let mut pings = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while pings < 3 && Instant::now() < deadline {
        if let Some(m) = next(&socket, Duration::from_secs(1)) {
            pings += usize::from(m.contains("WATCHDOG=1"));
        }
    }
    assert!(pings >= 3, "{pings} watchdog pings");
    assert!(server.terminate().success());
    let mut said = Vec::new();
    while let Some(m) = next(&socket, Duration::from_millis(500)) {
        said.push(m);
    }
    assert!(said.iter().any(|m| m.contains("STOPPING=1")), "{said:?}");
    eprintln!("ready after {:?}", started.elapsed());
}
