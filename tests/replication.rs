//! Replication with real peers: Knot and NSD as secondaries of txtfailover,
//! transfers checked with dig and kdig, and txtfailover as a secondary of
//! itself. Every peer listens on a loopback port chosen by the test.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use support::*;

/// 32 random bytes, base64: the TSIG secret every peer here shares.
const SECRET: &str = "8wYnvRwlqkuWmMPmMq0Lr3HOAxyDmu7wXxUsSbMUWHE=";
const WRONG: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The alias and its external check, appended after zone settings.
fn alias_body(failback_after: &str) -> String {
    format!(
        "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\n\
         [[check]]\nname = \"primary\"\nkind = \"external\"\n\n\
         [[alias]]\nname = \"desktop.example.com\"\nfailback_after = \"{failback_after}\"\n\
         targets = [\n  {{ region = \"us-west-2\", connection_id = \"PDX1\", checks = [\"primary\"] }},\n\
           {{ region = \"us-east-1\", connection_id = \"IAD1\" }},\n]\n"
    )
}

fn report(s: &Server, healthy: bool) {
    let body = format!("{{\"healthy\": {healthy}, \"detail\": \"test\"}}");
    let (code, text) = http(
        s.admin_addr(),
        "PUT",
        "/v1/checks/primary",
        Some(TOKEN),
        &body,
    );
    assert_eq!(code, 200, "{text}");
}

/// Runs dig with `args`; its stdout.
fn dig(args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(args)
        .output()
        .expect("dig is needed: apt-get install bind9-dnsutils");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs kdig with `args`; its stdout, then its stderr (where errors go).
fn kdig(args: &[&str]) -> String {
    let out = Command::new("kdig")
        .args(args)
        .output()
        .expect("kdig is needed: apt-get install knot-dnsutils");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `dig @addr name TXT +short`, quotes removed.
fn dig_txt(addr: SocketAddr, name: &str) -> String {
    let at = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    dig(&[
        &at, "-p", &port, name, "TXT", "+short", "+time=1", "+tries=1",
    ])
    .trim()
    .trim_matches('"')
    .to_string()
}

/// Polls `dig @addr` until the alias answers `want`; how long it took.
fn wait_dig(addr: SocketAddr, want: &str, what: &dyn Fn() -> String) -> Duration {
    let start = Instant::now();
    loop {
        let got = dig_txt(addr, "desktop.example.com");
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{addr} answers {got:?}, want {want}\n{}",
            what()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A peer server process, killed when dropped.
struct Peer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(program: &str, args: &[&str], log: PathBuf, port: u16) -> Peer {
        // Daemons live in /usr/sbin, which not every PATH has.
        let sbin = Path::new("/usr/sbin").join(program);
        let path = if sbin.exists() {
            sbin
        } else {
            PathBuf::from(program)
        };
        let child = Command::new(path)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {program} ({e}); .ci/run installs it from Debian's packages")
            });
        Peer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }

    /// Runs `program` (knotd, nsd) on the config `conf(its directory)`,
    /// written to `dir/program/program.conf`; `args(config path)` are its
    /// command line.
    fn configured(
        dir: &Path,
        program: &str,
        port: u16,
        conf: impl Fn(&Path) -> String,
        args: impl Fn(&str) -> Vec<String>,
    ) -> Peer {
        let dir = dir.join(program);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{program}.conf"));
        std::fs::write(&path, conf(&dir)).unwrap();
        let args = args(path.to_str().unwrap());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Peer::spawn(program, &args, dir.join(format!("{program}.log")), port)
    }

    /// Knot as a secondary of `primary`, TSIG on transfers and NOTIFY.
    fn knot(dir: &Path, primary: SocketAddr, port: u16) -> Peer {
        let conf = |d: &Path| {
            let d = d.display();
            format!(
                "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: {d}\n\
             key:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             remote:\n  - id: primary\n    address: {}@{}\n    key: xfr\n\
             acl:\n  - id: from_primary\n    address: {}\n    key: xfr\n    action: notify\n\
             template:\n  - id: default\n    storage: {d}\n    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: none\n\
             zone:\n  - domain: example.com\n    master: primary\n    acl: from_primary\n",
                primary.ip(),
                primary.port(),
                primary.ip()
            )
        };
        Peer::configured(dir, "knotd", port, conf, |p| vec!["-c".into(), p.into()])
    }

    /// NSD as a secondary of `primary`, TSIG on transfers and NOTIFY.
    fn nsd(dir: &Path, primary: SocketAddr, port: u16) -> Peer {
        let conf = |d: &Path| {
            let d = d.display();
            format!(
                "server:\n    ip-address: 127.0.0.1@{port}\n    username: \"\"\n    chroot: \"\"\n\
             \x20   database: \"\"\n    zonesdir: \"{d}\"\n    zonelistfile: \"{d}/zone.list\"\n\
             \x20   xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n\
             \x20   verbosity: 2\n\
             remote-control:\n    control-enable: no\n\
             key:\n    name: \"xfr\"\n    algorithm: hmac-sha256\n    secret: \"{SECRET}\"\n\
             zone:\n    name: \"example.com\"\n    request-xfr: {}@{} xfr\n    allow-notify: {} xfr\n",
                primary.ip(),
                primary.port(),
                primary.ip()
            )
        };
        Peer::configured(dir, "nsd", port, conf, |p| {
            vec!["-d".into(), "-c".into(), p.into()]
        })
    }
}

/// A primary whose zone may only be transferred with the key, and which
/// NOTIFYs `secondaries` signed with it.
fn primary(dir: &Path, notify: &[u16], zone_extra: &str) -> Server {
    primary_with(dir, &keyed(notify), zone_extra, "")
}

/// NOTIFY targets on loopback `ports`, each signed with the shared key.
fn keyed(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("{{ address = \"127.0.0.1:{p}\", key = \"xfr\" }}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Like `primary`, with the NOTIFY list `targets` as written in TOML and
/// `server_extra` lines in `[server]`.
fn primary_with(dir: &Path, targets: &str, zone_extra: &str, server_extra: &str) -> Server {
    let body = format!(
        "allow_transfer = [{{ key = \"xfr\" }}]\nnotify = [{targets}]\n{zone_extra}\n{}",
        alias_body("0s")
    );
    let port = free_port();
    let path = write_config(dir, port, &body, ZONE);
    std::fs::write(dir.join("tokens"), format!("# operators\nalice {TOKEN}\n")).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("[admin]\n", "[admin]\ntoken_file = \"tokens\"\n", 1)
        .replacen("[server]\n", &format!("[server]\n{server_extra}"), 1);
    std::fs::write(&path, text).unwrap();
    Server::start_with(dir, &path, port)
}

/// The secondaries asked every second, trouble warned about after one.
const WATCH_FAST: &str = "secondary_check_interval = \"1s\"\nsecondary_lag_warn = \"1s\"\n";

/// A gauge of the secondary at `addr` of example.com.
fn secondary_metric(s: &Server, name: &str, addr: SocketAddr) -> f64 {
    s.metric(&format!(
        "txtfailover_{name}{{zone=\"example.com.\",secondary=\"{addr}\"}}"
    ))
}

#[test]
fn knot_and_nsd_follow_a_failover_through_notify_and_ixfr() {
    let dir = tempfile::tempdir().unwrap();
    let (knot_port, nsd_port) = (free_port(), free_port());
    // The secondaries' ports are fixed before the primary starts, so its
    // first NOTIFY already has somewhere to go.
    let s = primary(dir.path(), &[knot_port, nsd_port], "");
    let knot = Peer::knot(dir.path(), s.addr, knot_port);
    let nsd = Peer::nsd(dir.path(), s.addr, nsd_port);
    wait_dig(knot.addr, "PDX1", &|| knot.log_text());
    wait_dig(nsd.addr, "PDX1", &|| nsd.log_text());

    report(&s, false);
    let knot_took = wait_dig(knot.addr, "IAD1", &|| knot.log_text() + &s.log_text());
    let nsd_took = wait_dig(nsd.addr, "IAD1", &|| nsd.log_text() + &s.log_text());
    eprintln!("failover visible on Knot after {knot_took:?}, on NSD after {nsd_took:?}");
    // Carried by NOTIFY, not by the SOA refresh timer (7200 s): each
    // secondary logs the NOTIFY of serial 6.
    assert!(
        knot.log_text().contains("notify, incoming") && knot.log_text().contains("serial 6"),
        "{}",
        knot.log_text()
    );
    assert!(nsd.log_text().contains("serial 6"), "{}", nsd.log_text());

    report(&s, true);
    wait_dig(knot.addr, "PDX1", &|| knot.log_text());
    wait_dig(nsd.addr, "PDX1", &|| nsd.log_text());
    let serial = s.serial();
    assert_eq!(serial, 7, "two answer changes from serial 5");
    for peer in [&knot, &nsd] {
        let at = format!("@{}", peer.addr.ip());
        let soa = dig(&[
            &at,
            "-p",
            &peer.addr.port().to_string(),
            "example.com",
            "SOA",
            "+short",
        ]);
        assert!(soa.contains(" 7 "), "{soa}");
    }
    let knot_log = knot.log_text();
    assert!(
        knot_log.contains("IXFR, incoming"),
        "Knot used IXFR:\n{knot_log}"
    );
    assert!(
        nsd.log_text().contains("TSIG verified with key xfr"),
        "{}",
        nsd.log_text()
    );
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains("txtfailover_notify_messages_total{zone=\"example.com.\",direction=\"sent\",result=\"acknowledged\"}"),
        "{metrics}"
    );
}

#[test]
fn transfers_need_an_allowed_source_or_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = primary(dir.path(), &[], "");
    let at = format!("@{}", s.addr.ip());
    let port = s.addr.port().to_string();
    let with = |key: &str| {
        let y = format!("hmac-sha256:xfr:{key}");
        dig(&[&at, "-p", &port, "-y", &y, "example.com", "AXFR"])
    };
    let good = with(SECRET);
    assert!(
        good.contains("desktop.example.com.\t30\tIN\tTXT\t\"PDX1\""),
        "{good}"
    );
    assert!(good.contains("www.example.com."), "{good}");
    let unsigned = dig(&[&at, "-p", &port, "example.com", "AXFR"]);
    assert!(unsigned.contains("Transfer failed"), "{unsigned}");
    assert!(!unsigned.contains("PDX1"), "{unsigned}");
    // Missing TSIG where the zone wants one: NOTAUTH, no data.
    let k = kdig(&[&at, "-p", &port, "example.com", "AXFR"]);
    assert!(k.contains("NOTAUTH") && !k.contains("PDX1"), "{k}");
    let wrong = with(WRONG);
    assert!(
        wrong.contains("BADSIG") && !wrong.contains("PDX1"),
        "{wrong}"
    );
    let k = kdig(&[
        &at,
        "-p",
        &port,
        "-y",
        &format!("hmac-sha256:xfr:{WRONG}"),
        "example.com",
        "AXFR",
    ]);
    assert!(k.contains("BADSIG") && !k.contains("PDX1"), "{k}");
    let stranger = kdig(&[
        &at,
        "-p",
        &port,
        "-y",
        &format!("hmac-sha256:other:{SECRET}"),
        "example.com",
        "AXFR",
    ]);
    assert!(
        stranger.contains("BADKEY") && !stranger.contains("PDX1"),
        "{stranger}"
    );
    assert!(
        s.log_text().contains("transfer refused"),
        "{}",
        s.log_text()
    );
}

#[test]
fn a_source_rule_alone_allows_unsigned_transfers_from_that_network_only() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "allow_transfer = [{{ from = [\"127.0.0.2\"] }}]\n{}",
        alias_body("0s")
    );
    let s = Server::start_with_token(dir.path(), &body);
    let at = format!("@{}", s.addr.ip());
    let port = s.addr.port().to_string();
    let from_2 = dig(&["-b", "127.0.0.2", &at, "-p", &port, "example.com", "AXFR"]);
    assert!(from_2.contains("PDX1"), "{from_2}");
    let from_1 = dig(&["-b", "127.0.0.1", &at, "-p", &port, "example.com", "AXFR"]);
    assert!(from_1.contains("Transfer failed"), "{from_1}");
}

#[test]
fn ixfr_sends_the_difference_and_falls_back_to_axfr() {
    let dir = tempfile::tempdir().unwrap();
    let started = support_unix_now();
    let s = primary(dir.path(), &[], "serial = \"unixtime\"");
    let first = s.serial();
    report(&s, false);
    s.wait_for_txt("desktop.example.com.", "IAD1");
    let now = s.serial();
    assert!(
        now >= started as u32,
        "unixtime serial {now} is before {started}"
    );
    let at = format!("@{}", s.addr.ip());
    let port = s.addr.port().to_string();
    let y = format!("hmac-sha256:xfr:{SECRET}");
    let ixfr = |serial: u32, tcp: bool| {
        let q = format!("IXFR={serial}");
        let transport = if tcp { "+tcp" } else { "+notcp" };
        kdig(&[
            &at,
            "-p",
            &port,
            "-y",
            &y,
            "example.com",
            &q,
            transport,
            "+noall",
            "+answer",
        ])
    };
    // From the first serial: SOA new, SOA old, PDX1 out, SOA new, IAD1 in, SOA new.
    let delta = ixfr(first, true);
    let lines: Vec<&str> = delta.lines().filter(|l| l.contains("\tIN\t")).collect();
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[3] {
                "SOA" => format!("SOA {}", f[6]),
                _ => format!("{} {}", f[3], f[4]),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            format!("SOA {now}"),
            format!("SOA {first}"),
            "TXT \"PDX1\"".to_string(),
            format!("SOA {now}"),
            "TXT \"IAD1\"".to_string(),
            format!("SOA {now}"),
        ],
        "{delta}"
    );
    // Up to date: the SOA alone. Unknown serial: the whole zone.
    let current = ixfr(now, true);
    assert_eq!(
        current.lines().filter(|l| l.contains("\tSOA\t")).count(),
        1,
        "{current}"
    );
    let full = ixfr(first.wrapping_sub(1), true);
    assert!(
        full.contains("www.example.com.") && full.contains("IAD1") && !full.contains("PDX1"),
        "{full}"
    );
    // Over UDP a change list does not fit the rules: the SOA says "use TCP".
    let udp = ixfr(first, false);
    assert_eq!(
        udp.lines().filter(|l| l.contains("\tIN\t")).count(),
        1,
        "{udp}"
    );
    let (_, metrics) = s.get("/metrics");
    for kind in ["ixfr", "ixfr_current", "ixfr_full", "soa_only"] {
        assert!(
            metrics.contains(&format!("kind=\"{kind}\",result=\"ok\"")),
            "{kind}: {metrics}"
        );
    }
}

fn support_unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends a NOTIFY for example.com from `from` to `to`; the answer's RCODE.
fn send_notify(from: &str, to: SocketAddr) -> ResponseCode {
    let socket = UdpSocket::bind((from, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut m = Message::new(0x4321, MessageType::Query, OpCode::Notify);
    let mut q = Query::query(Name::from_ascii("example.com.").unwrap(), RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m.metadata.authoritative = true;
    socket.send_to(&m.to_vec().unwrap(), to).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = socket.recv_from(&mut buf).expect("an answer to NOTIFY");
    Message::from_vec(&buf[..len])
        .unwrap()
        .metadata
        .response_code
}

/// Starts a txtfailover secondary of example.com on `port`, config in
/// `dir`, transferring from `primary`, signed with the shared key when
/// `signed`. Returns it and its config path.
fn secondary(dir: &Path, port: u16, primary: SocketAddr, signed: bool) -> (Server, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (key_table, key) = if signed {
        let table = format!(
            "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\n"
        );
        (table, ", key = \"xfr\"")
    } else {
        (String::new(), "")
    };
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nstate_dir = \"state\"\nudp_workers = 2\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n\n{key_table}\
         [[zone]]\norigin = \"example.com\"\nprimaries = [{{ address = \"{primary}\"{key} }}]\n",
        free_port()
    );
    let path = dir.join("txtfailover.toml");
    std::fs::write(&path, config).unwrap();
    (Server::start_with(dir, &path, port), path)
}

#[test]
fn a_txtfailover_secondary_follows_its_primary_through_two_failovers() {
    let dir = tempfile::tempdir().unwrap();
    let b_port = free_port();
    // `c` is a primary of the zone too, listed by mistake as a NOTIFY
    // target: it answers NOTAUTH, which `a` must say plainly.
    let c = primary(&dir.path().join("c"), &[], "");
    let a = primary(&dir.path().join("a"), &[b_port, c.addr.port()], "");
    let (b, _) = secondary(&dir.path().join("b"), b_port, a.addr, true);
    b.wait_for_txt("desktop.example.com.", "PDX1");
    assert_eq!(b.serial(), 5);

    report(&a, false);
    let took = b.wait_for_txt("desktop.example.com.", "IAD1");
    eprintln!("first failover on the txtfailover secondary after {took:?}");
    report(&a, true);
    b.wait_for_txt("desktop.example.com.", "PDX1");
    assert_eq!(b.serial(), 7);
    assert!(b.log_text().contains("NOTIFY received"), "{}", b.log_text());
    // An AXFR ends with the SOA again: that is no reason for a warning.
    assert!(
        !b.log_text().contains("outside the zone"),
        "{}",
        b.log_text()
    );
    // The first copy came whole, the changes as differences.
    let (_, metrics) = a.get("/metrics");
    for kind in ["axfr", "ixfr"] {
        let line = format!(
            "txtfailover_transfers_total{{zone=\"example.com.\",kind=\"{kind}\",result=\"ok\"}}"
        );
        assert!(metric_in(&metrics, &line) >= 1.0, "{kind}: {metrics}");
    }
    // The mistaken target's NOTAUTH: one warning naming it and the code,
    // counted, and no retries.
    let refused = format!("127.0.0.1:{}", c.addr.port());
    let log = a.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("NOTIFY refused") && l.contains(&refused) && l.contains("NOTAUTH")),
        "{log}"
    );
    assert!(
        metric_in(
            &metrics,
            "txtfailover_notify_messages_total{zone=\"example.com.\",direction=\"sent\",result=\"refused\"}"
        ) >= 1.0,
        "{metrics}"
    );
    let (_, status) = b.get("/v1/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let zone = &status["zones"][0];
    assert_eq!(
        (
            zone["role"].as_str(),
            zone["serial"].as_u64(),
            zone["available"].as_bool()
        ),
        (Some("secondary"), Some(7), Some(true)),
        "{status}"
    );
    let (ok, table, _) = cli(&["status", "--admin", &format!("http://{}", b.admin_addr())]);
    assert!(
        ok && table.contains("example.com.") && table.contains("secondary"),
        "{table}"
    );

    // NOTIFY from elsewhere, or unsigned, changes nothing.
    assert_eq!(send_notify("127.0.0.2", b.addr), ResponseCode::Refused);
    assert_eq!(send_notify("127.0.0.1", b.addr), ResponseCode::Refused);
    // The primary is nobody's secondary: NOTIFY there is not for it.
    assert_eq!(send_notify("127.0.0.1", a.addr), ResponseCode::NotAuth);
}

/// A primary with `timers` (refresh retry expire) in its SOA, transfers
/// open to loopback, and an unsigned txtfailover secondary holding a copy.
fn pair(dir: &Path, timers: &str) -> (Server, Server, PathBuf) {
    let zone = ZONE.replace("5 7200 3600 1209600 60", &format!("5 {timers} 60"));
    let a_dir = dir.join("a");
    let a_port = free_port();
    let allow = "allow_transfer = [{ from = [\"127.0.0.1\"] }]\n";
    let path = write_config(&a_dir, a_port, allow, &zone);
    let a = Server::start_with(&a_dir, &path, a_port);
    let (b, path) = secondary(&dir.join("b"), free_port(), a.addr, false);
    let www = plain_query("www.example.com.", RecordType::A);
    let start = Instant::now();
    while b.udp(&www).metadata.response_code != ResponseCode::NoError {
        assert!(
            start.elapsed() < DEADLINE,
            "no copy transferred:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (a, b, path)
}

#[test]
fn a_secondary_restarted_without_its_primary_serves_its_stored_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, path) = pair(dir.path(), "3600 600 86400");
    let port = b.addr.port();
    drop(b);
    drop(a);
    let b = Server::start_with(&dir.path().join("b"), &path, port);
    let r = b.udp(&plain_query("www.example.com.", RecordType::A));
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        b.log_text()
    );
    assert_eq!(b.serial(), 5);
    assert!(
        b.log_text().contains("serving the stored copy"),
        "{}",
        b.log_text()
    );
}

#[test]
fn a_secondary_answers_servfail_once_its_copy_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, b, _) = pair(dir.path(), "1 1 3");
    let www = plain_query("www.example.com.", RecordType::A);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let start = Instant::now();
    while b.udp(&www).metadata.response_code != ResponseCode::ServFail {
        assert!(
            start.elapsed() < DEADLINE,
            "never expired:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(b.log_text().contains("zone expired"), "{}", b.log_text());
}

#[test]
fn a_reload_points_a_secondary_zone_at_another_primary() {
    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("a");
    let a_port = free_port();
    let allow = "allow_transfer = [{ from = [\"127.0.0.1\"] }]\n";
    let path = write_config(&a_dir, a_port, allow, ZONE);
    let a = Server::start_with(&a_dir, &path, a_port);
    // First nothing answers at the configured primary: SERVFAIL.
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (b, path) = secondary(&dir.path().join("b"), free_port(), nobody, false);
    let www = plain_query("www.example.com.", RecordType::A);
    assert_eq!(b.udp(&www).metadata.response_code, ResponseCode::ServFail);
    // Point it at the real primary and reload: it transfers at once.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(&nobody.to_string(), &a.addr.to_string()),
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &b.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let start = Instant::now();
    while b.udp(&www).metadata.response_code != ResponseCode::NoError {
        assert!(
            start.elapsed() < DEADLINE,
            "not transferred after reload:\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_large_zone_goes_out_in_several_signed_messages_that_dig_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut zone = ZONE.to_string();
    for i in 0..400 {
        zone.push_str(&format!("r{i} IN TXT \"{}\"\n", "x".repeat(200)));
    }
    let port = free_port();
    let body = format!(
        "allow_transfer = [{{ key = \"xfr\" }}]\n\n{}",
        alias_body("0s")
    );
    let path = write_config(dir.path(), port, &body, &zone);
    let s = Server::start_with(dir.path(), &path, port);
    let at = format!("@{}", s.addr.ip());
    let key = format!("hmac-sha256:xfr:{SECRET}");
    let out = dig(&[
        &at,
        "-p",
        &port.to_string(),
        "-y",
        &key,
        "example.com",
        "AXFR",
    ]);
    // dig checks the TSIG of every message, each chained on the previous
    // (kdig, it turns out, does not complain when a later one is wrong).
    assert!(
        !out.contains("could not be validated") && !out.contains("failed"),
        "{out}"
    );
    let size = out
        .lines()
        .find_map(|l| l.strip_prefix(";; XFR size: "))
        .unwrap_or_else(|| panic!("no transfer summary:\n{out}"));
    // SOA, NS, two A, the alias, 400 TXT, SOA; about 88 KB cannot be one message.
    assert!(size.starts_with("406 records (messages "), "{size}");
    let messages: usize = size["406 records (messages ".len()..]
        .split(',')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!(messages >= 2, "{size}");
}

/// A primary that never ends its AXFR: it answers the SOA query over UDP,
/// then streams 60 KB TXT records over TCP (up to `limit` bytes, then holds
/// the connection open).
fn endless_primary(limit: usize) -> SocketAddr {
    use hickory_proto::rr::rdata::{SOA, TXT};
    use hickory_proto::rr::{RData, Record};
    use std::io::{Read, Write};
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let origin = Name::from_ascii("example.com.").unwrap();
    let soa = Record::from_rdata(
        origin.clone(),
        60,
        RData::SOA(SOA::new(
            Name::from_ascii("ns1.example.com.").unwrap(),
            Name::from_ascii("h.example.com.").unwrap(),
            10,
            3600,
            3600,
            86400,
            60,
        )),
    );
    let answer = move |request: &[u8], records: Vec<Record>| -> Vec<u8> {
        let request = Message::from_vec(request).unwrap();
        let mut m = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        m.queries = request.queries.clone();
        m.answers = records;
        m.to_vec().unwrap()
    };
    let udp = UdpSocket::bind(addr).unwrap();
    let tcp = std::net::TcpListener::bind(addr).unwrap();
    let (soa_udp, answer_udp) = (soa.clone(), answer);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((len, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&answer_udp(&buf[..len], vec![soa_udp.clone()]), from);
        }
    });
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = tcp.accept() else {
            return;
        };
        let mut len = [0u8; 2];
        conn.read_exact(&mut len).unwrap();
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
        conn.read_exact(&mut request).unwrap();
        let strings: Vec<String> = (0..235).map(|_| "x".repeat(250)).collect();
        let big = Record::from_rdata(
            Name::from_ascii("big.example.com.").unwrap(),
            60,
            RData::TXT(TXT::new(strings)),
        );
        let mut sent = 0;
        let mut records = vec![soa.clone()];
        while sent < limit {
            let bytes = answer(&request, std::mem::replace(&mut records, vec![big.clone()]));
            let frame = [&(bytes.len() as u16).to_be_bytes()[..], &bytes].concat();
            if conn.write_all(&frame).is_err() {
                return;
            }
            sent += frame.len();
        }
        // Never the closing SOA: hold the connection until the peer leaves.
        let _ = conn.read(&mut [0u8; 1]);
    });
    addr
}

#[test]
fn a_primary_that_never_ends_its_transfer_is_cut_off_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    // 96 MiB: over the 64 MiB limit, and more than a copy should hold.
    let primary = endless_primary(96 << 20);
    let (s, _) = secondary(dir.path(), free_port(), primary, false);
    let start = Instant::now();
    loop {
        let log = s.log_text();
        if log.contains("zone refresh failed") {
            assert!(log.contains("more than 64 MiB"), "{log}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the transfer was not stopped at its size limit; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still serving: the zone has no copy, so SERVFAIL.
    let m = s.udp(&plain_query("example.com.", RecordType::SOA));
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn the_primary_sees_knot_and_nsd_in_sync_then_one_unreachable_then_back() {
    let dir = tempfile::tempdir().unwrap();
    let (knot_port, nsd_port) = (free_port(), free_port());
    let s = primary_with(dir.path(), &keyed(&[knot_port, nsd_port]), "", WATCH_FAST);
    let knot = Peer::knot(dir.path(), s.addr, knot_port);
    let nsd = Peer::nsd(dir.path(), s.addr, nsd_port);
    let (knot_addr, nsd_addr) = (knot.addr, nsd.addr);
    wait_dig(knot.addr, "PDX1", &|| knot.log_text());
    wait_dig(nsd.addr, "PDX1", &|| nsd.log_text());

    // (a) After a failover both have the new serial, asked with TSIG.
    report(&s, false);
    wait_dig(knot.addr, "IAD1", &|| knot.log_text());
    wait_dig(nsd.addr, "IAD1", &|| nsd.log_text());
    assert_eq!(s.serial(), 6);
    for addr in [knot_addr, nsd_addr] {
        let r = wait_secondary(&s, addr, "in sync at 6", |r| {
            r["state"] == "in_sync" && r["serial"] == 6
        });
        assert_eq!(
            (r["ours"].as_u64(), r["lag"].as_u64()),
            (Some(6), Some(0)),
            "{r}"
        );
        assert!(r["last_checked"].is_string() && r["error"].is_null(), "{r}");
        assert_eq!(secondary_metric(&s, "secondary_in_sync", addr), 1.0);
        assert_eq!(secondary_metric(&s, "secondary_serial_lag", addr), 0.0);
    }
    let (ok, table, _) = cli(&["status", "--admin", &format!("http://{}", s.admin_addr())]);
    assert!(ok, "{table}");
    for addr in [knot_addr, nsd_addr] {
        assert!(
            table
                .lines()
                .any(|l| l.contains(&format!("secondary {addr}")) && l.contains("in_sync")),
            "{table}"
        );
    }

    // (b) Both stop; the next change cannot reach them.
    drop(knot);
    drop(nsd);
    report(&s, true);
    s.wait_for_txt("desktop.example.com.", "PDX1");
    for addr in [knot_addr, nsd_addr] {
        let r = wait_secondary(&s, addr, "unreachable", |r| {
            r["state"] == "unreachable" && r["ours"] == 7
        });
        assert!(!r["error"].as_str().unwrap_or("").is_empty(), "{r}");
        assert_eq!(r["serial"], 6, "the last serial it answered: {r}");
        wait_log_line(&s, &["WARN", "secondary unreachable", &addr.to_string()]);
        assert_eq!(secondary_metric(&s, "secondary_in_sync", addr), 0.0);
        // Asked twice more while down: still one warning (counted below).
        for _ in 0..2 {
            let before = wait_secondary(&s, addr, "asked", |r| r["state"] == "unreachable");
            wait_secondary(&s, addr, "asked again", |r| {
                r["last_checked"] != before["last_checked"]
            });
        }
    }

    // (c) Both back: they transfer the zone and are in sync again.
    let knot = Peer::knot(dir.path(), s.addr, knot_port);
    let nsd = Peer::nsd(dir.path(), s.addr, nsd_port);
    wait_dig(knot.addr, "PDX1", &|| knot.log_text());
    wait_dig(nsd.addr, "PDX1", &|| nsd.log_text());
    for addr in [knot_addr, nsd_addr] {
        wait_secondary(&s, addr, "in sync at 7", |r| {
            r["state"] == "in_sync" && r["serial"] == 7
        });
        wait_log_line(&s, &["INFO", "secondary in sync again", &addr.to_string()]);
        assert_eq!(secondary_metric(&s, "secondary_in_sync", addr), 1.0);
        let warnings = s
            .log_text()
            .lines()
            .filter(|l| l.contains("secondary unreachable") && l.contains(&addr.to_string()))
            .count();
        assert_eq!(warnings, 1, "one warning per outage:\n{}", s.log_text());
    }
}

#[test]
fn a_secondary_stuck_on_an_old_serial_is_behind_by_the_serials_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSecondary::start(3);
    let target = format!("{{ address = \"{}\" }}", fake.addr);
    let s = primary_with(dir.path(), &target, "", WATCH_FAST);
    let r = wait_secondary(&s, fake.addr, "behind by 2", |r| {
        r["state"] == "behind" && r["lag"] == 2
    });
    assert_eq!(
        (r["serial"].as_u64(), r["ours"].as_u64()),
        (Some(3), Some(5)),
        "{r}"
    );
    report(&s, false);
    s.wait_for_txt("desktop.example.com.", "IAD1");
    wait_secondary(&s, fake.addr, "behind by 3", |r| {
        r["state"] == "behind" && r["lag"] == 3 && r["ours"] == 6
    });
    assert_eq!(secondary_metric(&s, "secondary_serial_lag", fake.addr), 3.0);
    assert_eq!(secondary_metric(&s, "secondary_in_sync", fake.addr), 0.0);
    wait_log_line(&s, &["WARN", "secondary behind", &fake.addr.to_string()]);
    let (_, table, _) = cli(&["status", "--admin", &format!("http://{}", s.admin_addr())]);
    assert!(table.contains("behind 3"), "{table}");

    // It catches up: one line says so, the gauges follow.
    fake.set(6);
    wait_secondary(&s, fake.addr, "in sync", |r| r["state"] == "in_sync");
    wait_log_line(
        &s,
        &["INFO", "secondary in sync again", &fake.addr.to_string()],
    );
    assert_eq!(secondary_metric(&s, "secondary_serial_lag", fake.addr), 0.0);
    assert_eq!(secondary_metric(&s, "secondary_in_sync", fake.addr), 1.0);
    let warnings = s
        .log_text()
        .lines()
        .filter(|l| l.contains("secondary behind"))
        .count();
    assert_eq!(
        warnings,
        1,
        "asked every second, warned once:\n{}",
        s.log_text()
    );

    // A serial later than ours is no better: it would never transfer.
    fake.set(9);
    let r = wait_secondary(&s, fake.addr, "ahead", |r| r["state"] == "ahead");
    assert_eq!(r["lag"], 0, "{r}");
    wait_log_line(&s, &["WARN", "secondary ahead", &fake.addr.to_string()]);
}

#[test]
fn a_change_is_checked_within_seconds_not_at_the_next_interval() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSecondary::start(5);
    let target = format!("{{ address = \"{}\" }}", fake.addr);
    // The periodic question is an hour away: only the change brings one.
    let hourly = "secondary_check_interval = \"1h\"\nsecondary_lag_warn = \"1h\"\n";
    let s = primary_with(dir.path(), &target, "", hourly);
    wait_secondary(&s, fake.addr, "in sync at start", |r| {
        r["state"] == "in_sync" && r["serial"] == 5
    });
    report(&s, false);
    s.wait_for_txt("desktop.example.com.", "IAD1");
    wait_secondary(&s, fake.addr, "behind after the change", |r| {
        r["state"] == "behind" && r["lag"] == 1 && r["ours"] == 6
    });
    // Asked again a few seconds later (backoff), it has caught up.
    fake.set(6);
    wait_secondary(&s, fake.addr, "in sync again", |r| {
        r["state"] == "in_sync" && r["serial"] == 6
    });
    // Within the hour: neither a warning nor an event.
    assert!(
        !s.log_text().contains("secondary behind"),
        "{}",
        s.log_text()
    );
}

#[test]
fn a_reload_drops_a_removed_target_and_applies_a_shorter_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, removed) = (FakeSecondary::start(5), FakeSecondary::start(5));
    let targets = format!(
        "{{ address = \"{}\" }}, {{ address = \"{}\" }}",
        kept.addr, removed.addr
    );
    let hourly = "secondary_check_interval = \"1h\"\n";
    let s = primary_with(dir.path(), &targets, "", hourly);
    for fake in [&kept, &removed] {
        wait_secondary(&s, fake.addr, "in sync", |r| r["state"] == "in_sync");
    }
    let gauge = format!("secondary=\"{}\"", removed.addr);
    assert!(s.get("/metrics").1.contains(&gauge));
    // Without the second target, and asked every second.
    let path = dir.path().join("txtfailover.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&format!(", {{ address = \"{}\" }}", removed.addr), "")
        .replace(hourly, "secondary_check_interval = \"1s\"\n");
    std::fs::write(&path, text).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let start = Instant::now();
    loop {
        let (_, status) = s.get("/v1/status");
        if !status.contains(&removed.addr.to_string()) {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "{status}\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!s.get("/metrics").1.contains(&gauge));
    // The kept one falls behind with no change of ours: only the new
    // interval can find that out.
    kept.set(4);
    wait_secondary(&s, kept.addr, "behind", |r| {
        r["state"] == "behind" && r["lag"] == 1
    });
}
