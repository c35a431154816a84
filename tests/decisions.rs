//! Decisions the engine must get right end to end, against the real binary:
//! a prober that loses the network moves nothing, a canary holds failovers,
//! manual failback and `all_down = "last"` survive a restart, one failed
//! first probe moves nothing, a three-Region failback completes on its own,
//! a reload of a down check does not flip the answer, and a secondary told
//! by NOTIFY already finds the new serial.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use support::*;

const ALIAS: &str = "desktop.example.com.";
/// One try per probe: a failed probe is one failure, as the thresholds count.
const ATTEMPTS: &str = "attempts = 1\n";
/// These tests poll every 20 ms from loopback, past the default RRL rate.
const EXEMPT: &str = "\n[rrl]\nexempt = [\"127.0.0.0/8\"]\n";
const CHANGES: &str = "txtfailover_answer_changes_total{alias=\"desktop.example.com.\"}";
/// Without the closing quote: the alias label with or without its final dot.
const ISOLATED: &str = "txtfailover_prober_isolated{alias=\"desktop.example.com";
const POLL: Duration = Duration::from_millis(20);

fn http_check(name: &str, ep: &SwitchEndpoint, fall: u32, rise: u32, timeout: &str) -> String {
    format!(
        "[[check]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"1s\"\n\
         timeout = \"{timeout}\"\nfall = {fall}\nrise = {rise}\n{ATTEMPTS}\n",
        ep.url()
    )
}

/// The alias with `settings` and targets `(region, connection_id, check)`.
fn alias(settings: &str, targets: &[(&str, &str, &str)]) -> String {
    let targets: Vec<String> = targets
        .iter()
        .map(|(region, id, check)| {
            format!(
                "  {{ region = \"{region}\", connection_id = \"{id}\", checks = [\"{check}\"] }},\n"
            )
        })
        .collect();
    format!(
        "[[alias]]\nname = \"desktop.example.com\"\n{settings}\ntargets = [\n{}]\n",
        targets.concat()
    )
}

/// Two Regions, PDX1 (check pdx on `pdx`) then IAD2 (check iad on `iad`).
fn two_regions(pdx: &SwitchEndpoint, iad: &SwitchEndpoint, settings: &str) -> String {
    http_check("pdx", pdx, 2, 2, "300ms")
        + &http_check("iad", iad, 2, 2, "300ms")
        + &alias(
            settings,
            &[("us-west-2", "PDX1", "pdx"), ("us-east-1", "IAD2", "iad")],
        )
        + EXEMPT
}

fn context(s: &Server) -> impl Fn() -> String + '_ {
    move || {
        format!(
            "status: {}\nchecks: {}\nlog:\n{}",
            s.get("/v1/status").1,
            s.get("/v1/checks").1,
            s.log_text()
        )
    }
}

fn wait_check(s: &Server, name: &str, state: &str) {
    poll_until(
        DEADLINE,
        &format!("check {name} {state}"),
        context(s),
        || s.check_state(name) == state,
    );
}

/// Lets `poller` watch for `hold` and fails as soon as it saw anything but
/// `want` (or, at the end, nothing at all).
/// Stops the poller once it has seen `want` too (it polls every 20 ms, so
/// it can trail an answer the test saw first), or after 2 s.
fn seen_then_stop(poller: Poller, want: &str) -> PollLog {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !poller.log().answers().iter().any(|a| a == want) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    poller.stop()
}

fn hold(s: &Server, poller: &Poller, hold: Duration, want: &str) {
    let start = Instant::now();
    loop {
        let log = poller.log();
        let seen = log.answers();
        assert!(
            seen.iter().all(|a| a == want),
            "want only {want}, saw {log:?}\n{}",
            context(s)()
        );
        if start.elapsed() >= hold {
            assert!(!seen.is_empty(), "no answer in {hold:?}: {log:?}");
            return;
        }
        std::thread::sleep(POLL);
    }
}

fn reason(s: &Server) -> String {
    s.alias_status(ALIAS)["reason"]
        .as_str()
        .unwrap_or("")
        .to_lowercase()
}

/// Both checks fail at once (`fail` mode) until both are down, then recover
/// at once until both are up: the answer stays `want` throughout, no answer
/// change is counted, and isolation is reported while both are down (and
/// not before or after). The answer path is asserted first, being what
/// users see; the reporting after.
fn isolation_episode(
    s: &Server,
    pdx: &SwitchEndpoint,
    iad: &SwitchEndpoint,
    fail: Mode,
    want: &str,
) {
    assert_eq!(s.txt(ALIAS), [want]);
    let changes = s.metric(CHANGES);
    let before = s.metric(ISOLATED);
    let poller = Poller::start(s.addr, ALIAS, POLL);
    pdx.set(fail);
    iad.set(fail);
    poll_until(DEADLINE, "both checks down", context(s), || {
        s.check_state("pdx") == "down" && s.check_state("iad") == "down"
    });
    // Reported while both are down: polled for up to 3 s, not asserted yet.
    let (mut metric, mut why) = (s.metric(ISOLATED), reason(s));
    let start = Instant::now();
    while !(metric == 1.0 && (why.contains("prober") || why.contains("isolat")))
        && start.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(POLL);
        (metric, why) = (s.metric(ISOLATED), reason(s));
    }
    let still_down = s.check_state("pdx") == "down" && s.check_state("iad") == "down";
    pdx.set(Mode::Up);
    iad.set(Mode::Up);
    poll_until(DEADLINE, "both checks up", context(s), || {
        s.check_state("pdx") == "up" && s.check_state("iad") == "up"
    });
    // Past a probe interval more, in case a late decision moves it.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(POLL);
    }
    let after = s.metric(ISOLATED);
    let log = poller.stop();
    assert!(log.queries > 100, "{log:?}");
    assert_eq!(log.answers(), [want], "{log:?}\n{}", context(s)());
    assert_eq!(s.metric(CHANGES), changes, "no answer change counted");
    assert_eq!(before, 0.0, "not isolated before");
    assert!(
        still_down,
        "both checks still down when the report was read"
    );
    assert_eq!(
        metric,
        1.0,
        "{ISOLATED}...}} while both down\n{}",
        context(s)()
    );
    assert!(
        why.contains("prober") || why.contains("isolat"),
        "reason while both down: {why:?}"
    );
    assert_eq!(after, 0.0, "not isolated after");
}

#[test]
fn prober_isolation_keeps_the_primary() {
    let switch = Switch::default();
    let (pdx, iad) = (
        SwitchEndpoint::sharing(&switch),
        SwitchEndpoint::sharing(&switch),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = two_regions(
        &pdx,
        &iad,
        "failback_after = \"2s\"\nall_down = \"primary\"",
    );
    let s = Server::start(dir.path(), &config, ZONE);
    // One switch for both endpoints: they fail and recover at the same instant.
    isolation_episode(&s, &pdx, &iad, Mode::Hang, "PDX1");
    assert_eq!(s.metric(CHANGES), 0.0);
}

#[test]
fn prober_isolation_keeps_the_secondary() {
    let (pdx, iad) = (SwitchEndpoint::start(), SwitchEndpoint::start());
    let dir = tempfile::tempdir().unwrap();
    let config = two_regions(
        &pdx,
        &iad,
        "failback_after = \"1h\"\nall_down = \"primary\"",
    );
    let s = Server::start(dir.path(), &config, ZONE);
    assert_eq!(s.txt(ALIAS), ["PDX1"]);
    // A real primary failure first: the answer moves, and stays there
    // (failback_after 1h) once the primary is back.
    pdx.set(Mode::Fail);
    s.wait_for_txt(ALIAS, "IAD2");
    pdx.set(Mode::Up);
    wait_check(&s, "pdx", "up");
    assert_eq!(s.txt(ALIAS), ["IAD2"]);
    assert_eq!(s.metric(CHANGES), 1.0);
    isolation_episode(&s, &pdx, &iad, Mode::Refuse, "IAD2");
}

#[test]
fn a_canary_down_holds_failovers_until_it_is_back() {
    let (pdx, iad, canary) = (
        SwitchEndpoint::start(),
        SwitchEndpoint::start(),
        SwitchEndpoint::start(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[check]]\nname = \"net\"\nkind = \"tcp\"\naddress = \"{}\"\ninterval = \"1s\"\n\
         timeout = \"300ms\"\nfall = 1\nrise = 1\ncanary = true\n{ATTEMPTS}\n{}",
        canary.addr,
        two_regions(&pdx, &iad, "failback_after = \"1h\"")
    );
    let s = Server::start(dir.path(), &config, ZONE);
    assert_eq!(s.txt(ALIAS), ["PDX1"]);
    canary.set(Mode::Refuse);
    wait_check(&s, "net", "down");
    let poller = Poller::start(s.addr, ALIAS, POLL);
    pdx.set(Mode::Fail);
    wait_check(&s, "pdx", "down");
    // Two probe intervals with the primary down: nothing moves.
    hold(&s, &poller, Duration::from_millis(2200), "PDX1");
    assert_eq!(s.metric(CHANGES), 0.0);
    assert_eq!(s.check_state("net"), "down");
    let why = reason(&s);
    assert!(why.contains("canary"), "reason: {why:?}\n{}", context(&s)());
    canary.set(Mode::Up);
    s.wait_for_txt(ALIAS, "IAD2");
    let log = seen_then_stop(poller, "IAD2");
    assert_eq!(log.answers(), ["PDX1", "IAD2"], "{log:?}");
}

/// Runs the CLI against `s`'s admin API with the test token.
fn operator(s: &Server, args: &[&str]) -> (bool, String, String) {
    let token = s.dir.join("cli-token");
    std::fs::write(&token, TOKEN).unwrap();
    let admin = format!("http://{}", s.admin_addr());
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--admin", &admin, "--token-file", token.to_str().unwrap()]);
    cli(&all)
}

#[test]
fn a_restart_keeps_a_manual_failback_until_released() {
    let (pdx, iad) = (SwitchEndpoint::start(), SwitchEndpoint::start());
    let dir = tempfile::tempdir().unwrap();
    let config = two_regions(&pdx, &iad, "failback = \"manual\"\nfailback_after = \"1s\"");
    let s = Server::start_with_token(dir.path(), &config);
    assert_eq!(s.txt(ALIAS), ["PDX1"]);
    pdx.set(Mode::Fail);
    s.wait_for_txt(ALIAS, "IAD2");
    pdx.set(Mode::Up);
    wait_check(&s, "pdx", "up");
    assert_eq!(s.txt(ALIAS), ["IAD2"], "manual: stays on the secondary");

    let s = s.restart();
    let poller = Poller::start(s.addr, ALIAS, POLL);
    // Longer than rise × interval + failback_after (3 s).
    hold(&s, &poller, Duration::from_millis(4500), "IAD2");
    assert_eq!(s.check_state("pdx"), "up");
    let log = poller.stop();
    assert_eq!(log.answers(), ["IAD2"], "from the first query: {log:?}");

    let (ok, out, err) = operator(&s, &["override", "clear", "desktop.example.com"]);
    assert!(ok, "{out}{err}");
    s.wait_for_txt(ALIAS, "PDX1");
}

#[test]
fn a_restart_keeps_the_last_answer_when_all_are_down() {
    let (pdx, iad) = (SwitchEndpoint::start(), SwitchEndpoint::start());
    let dir = tempfile::tempdir().unwrap();
    let config = two_regions(&pdx, &iad, "all_down = \"last\"\nfailback_after = \"1h\"");
    let s = Server::start(dir.path(), &config, ZONE);
    assert_eq!(s.txt(ALIAS), ["PDX1"]);
    pdx.set(Mode::Fail);
    s.wait_for_txt(ALIAS, "IAD2");
    wait_check(&s, "pdx", "down");
    iad.set(Mode::Fail);
    wait_check(&s, "iad", "down");
    assert_eq!(s.txt(ALIAS), ["IAD2"], "all down: the last answer");

    let s = s.restart();
    let poller = Poller::start(s.addr, ALIAS, POLL);
    hold(&s, &poller, Duration::from_millis(3000), "IAD2");
    let log = poller.stop();
    assert_eq!(log.answers(), ["IAD2"], "from the first query: {log:?}");
}

#[test]
fn one_failed_first_probe_moves_nothing() {
    let pdx = SwitchEndpoint::failing_first(1);
    let iad = SwitchEndpoint::start();
    let dir = tempfile::tempdir().unwrap();
    let config = http_check("pdx", &pdx, 3, 2, "300ms")
        + &http_check("iad", &iad, 3, 2, "300ms")
        + &alias(
            "failback_after = \"2s\"",
            &[("us-west-2", "PDX1", "pdx"), ("us-east-1", "IAD2", "iad")],
        )
        + EXEMPT;
    let s = Server::start(dir.path(), &config, ZONE);
    let poller = Poller::start(s.addr, ALIAS, POLL);
    assert_eq!(
        s.check_state("pdx"),
        "up",
        "after the first round\n{}",
        context(&s)()
    );
    hold(&s, &poller, Duration::from_secs(5), "PDX1");
    let log = poller.stop();
    assert_eq!(log.answers(), ["PDX1"], "{log:?}");
    assert_eq!(pdx.failed(), 1, "the first probe did fail");
    assert!(pdx.requests() >= 3, "{} requests", pdx.requests());
    assert_eq!(s.check_state("pdx"), "up");
    assert_eq!(s.metric(CHANGES), 0.0);
}

#[test]
fn a_three_region_failback_completes_on_its_own() {
    let (pdx, iad, cmh) = (
        SwitchEndpoint::start(),
        SwitchEndpoint::start(),
        SwitchEndpoint::start(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = http_check("pdx", &pdx, 2, 2, "300ms")
        + &http_check("iad", &iad, 2, 2, "300ms")
        + &http_check("cmh", &cmh, 2, 2, "300ms")
        + &alias(
            "failback_after = \"2s\"",
            &[
                ("us-west-2", "PDX1", "pdx"),
                ("us-east-1", "IAD2", "iad"),
                ("us-east-2", "CMH3", "cmh"),
            ],
        )
        + EXEMPT;
    let s = Server::start(dir.path(), &config, ZONE);
    assert_eq!(s.txt(ALIAS), ["PDX1"]);
    pdx.set(Mode::Fail);
    iad.set(Mode::Fail);
    s.wait_for_txt(ALIAS, "CMH3");
    wait_check(&s, "pdx", "down");
    wait_check(&s, "iad", "down");
    assert_eq!(s.txt(ALIAS), ["CMH3"]);

    let poller = Poller::start(s.addr, ALIAS, POLL);
    iad.set(Mode::Up);
    // Pacing, not readiness: B comes back about a second before A.
    std::thread::sleep(Duration::from_secs(1));
    pdx.set(Mode::Up);
    // rise × interval (with jitter) + failback_after, doubled by the
    // failback to IAD2 before it, + a few seconds.
    let took = poll_until(
        Duration::from_millis(2200 + 4000 + 4000),
        "the answer back on the primary",
        || format!("path: {:?}\n{}", poller.log(), context(&s)()),
        || s.txt(ALIAS) == ["PDX1"],
    );
    let log = seen_then_stop(poller, "PDX1");
    eprintln!("primary answered {took:?} after it recovered; path {log:?}");
    let path = log.answers();
    assert!(
        path == ["CMH3", "PDX1"] || path == ["CMH3", "IAD2", "PDX1"],
        "{log:?}"
    );
}

#[test]
fn a_reload_of_a_down_check_does_not_flip_the_answer() {
    let (pdx, iad) = (SwitchEndpoint::start(), SwitchEndpoint::start());
    let dir = tempfile::tempdir().unwrap();
    // failback_after 0s: a check wrongly taken for healthy moves the answer at once.
    let config = two_regions(&pdx, &iad, "failback_after = \"0s\"");
    let s = Server::start_with_token(dir.path(), &config);
    pdx.set(Mode::Fail);
    s.wait_for_txt(ALIAS, "IAD2");
    wait_check(&s, "pdx", "down");
    let (changes, serial) = (s.metric(CHANGES), s.serial());

    let poller = Poller::start(s.addr, ALIAS, POLL);
    let path = dir.path().join("txtfailover.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let old = http_check("pdx", &pdx, 2, 2, "300ms");
    assert!(text.contains(&old));
    let edited = text.replacen(&old, &http_check("pdx", &pdx, 2, 2, "400ms"), 1);
    std::fs::write(&path, edited).unwrap();
    let (ok, out, err) = operator(&s, &["reload"]);
    assert!(ok, "{out}{err}");
    // Past fall × interval after the reload.
    hold(&s, &poller, Duration::from_millis(3000), "IAD2");
    let log = poller.stop();
    assert_eq!(log.answers(), ["IAD2"], "{log:?}");
    assert_eq!(
        s.metric(CHANGES),
        changes,
        "the reload moved no answer\n{}",
        context(&s)()
    );
    // A flip and back within one poll is still two serials.
    assert_eq!(s.serial(), serial, "the reload moved no serial");
    assert!(s.log_text().contains("configuration reloaded"));
}

/// The serial in a message's first SOA record, answer or authority.
fn soa_serial(m: &Message) -> Option<u32> {
    m.answers
        .iter()
        .chain(m.authorities.iter())
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
}

/// What a fake secondary saw: per NOTIFY, the serial it carried and the
/// serial an SOA query sent at once got back.
type Seen = Arc<Mutex<Vec<(Option<u32>, Option<u32>)>>>;

/// A UDP socket standing in for a secondary: on each NOTIFY it asks the
/// primary's SOA at once, records both serials, then acknowledges.
fn fake_secondary(sock: UdpSocket, primary: SocketAddr, stop: Arc<AtomicBool>) -> Seen {
    let seen: Seen = Arc::default();
    let out = seen.clone();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let soa_query = plain_query("example.com.", RecordType::SOA)
        .to_vec()
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(notify) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if notify.metadata.op_code != OpCode::Notify
                || notify.metadata.message_type != MessageType::Query
            {
                continue;
            }
            let served = raw_udp(primary, &soa_query, Duration::from_secs(1))
                .and_then(|b| Message::from_vec(&b).ok())
                .and_then(|m| soa_serial(&m));
            seen.lock().unwrap().push((soa_serial(&notify), served));
            let mut ack = Message::new(notify.metadata.id, MessageType::Response, OpCode::Notify);
            for q in &notify.queries {
                ack.add_query(q.clone());
            }
            ack.metadata.authoritative = true;
            ack.metadata.response_code = ResponseCode::NoError;
            let _ = sock.send_to(&ack.to_vec().unwrap(), from);
        }
    });
    out
}

#[test]
fn a_notified_secondary_finds_the_new_serial() {
    let pdx = SwitchEndpoint::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = UdpSocket::bind("127.0.0.3:0").unwrap();
    let secondary = sock.local_addr().unwrap();
    let port = free_port();
    let primary = SocketAddr::from(([127, 0, 0, 1], port));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = fake_secondary(sock, primary, stop.clone());
    let config = format!(
        "notify = [{{ address = \"{secondary}\" }}]\n\n{}{}",
        http_check("pdx", &pdx, 1, 1, "300ms"),
        alias(
            "failback_after = \"0s\"",
            &[("us-west-2", "PDX1", "pdx"), ("us-east-1", "IAD2", "pdx")],
        )
        .replace(", checks = [\"pdx\"] },\n]", " },\n]")
    ) + EXEMPT;
    let path = write_config(dir.path(), port, &config, ZONE);
    let s = Server::start_with(dir.path(), &path, port);
    assert_eq!(s.txt(ALIAS), ["PDX1"]);

    for round in 0..5 {
        let before = s.serial();
        let (mode, want) = if round % 2 == 0 {
            (Mode::Fail, "IAD2")
        } else {
            (Mode::Up, "PDX1")
        };
        pdx.set(mode);
        s.wait_for_txt(ALIAS, want);
        poll_until(
            DEADLINE,
            &format!("a NOTIFY past serial {before}"),
            || format!("{:?}\n{}", seen.lock().unwrap(), s.log_text()),
            || {
                seen.lock()
                    .unwrap()
                    .iter()
                    .any(|(n, _)| n.is_some_and(|n| n > before))
            },
        );
        let seen = seen.lock().unwrap().clone();
        for (notified, served) in seen.iter().filter(|(n, _)| n.is_some_and(|n| n > before)) {
            let served = served.unwrap_or_else(|| panic!("no SOA answer after a NOTIFY: {seen:?}"));
            let notified = notified.unwrap();
            assert!(
                served >= notified && served > before,
                "round {round}: NOTIFY of {notified}, then SOA {served} served (before the change: {before}); all: {seen:?}"
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    let seen = seen.lock().unwrap().clone();
    // Every NOTIFY sent once the server answered found at least its serial.
    for (notified, served) in &seen {
        if let (Some(n), Some(sv)) = (notified, served) {
            assert!(sv >= n, "{seen:?}");
        }
    }
    eprintln!("NOTIFY serial, SOA served right after: {seen:?}");
}

#[test]
fn a_restart_with_fresh_memory_answers_without_a_first_round() {
    let (pdx, iad) = (SwitchEndpoint::start(), SwitchEndpoint::start());
    let dir = tempfile::tempdir().unwrap();
    // fall 10 × interval 1 s: a state saved less than 10 s ago is fresh.
    let config = http_check("pdx", &pdx, 10, 2, "900ms")
        + &http_check("iad", &iad, 10, 2, "900ms")
        + &alias(
            "",
            &[("us-west-2", "PDX1", "pdx"), ("us-east-1", "IAD2", "iad")],
        )
        + EXEMPT;
    let s = Server::start(dir.path(), &config, ZONE);
    wait_check(&s, "pdx", "up");
    wait_check(&s, "iad", "up");
    // Both now hang: a first round would take fall × timeout (9 s) each.
    pdx.set(Mode::Hang);
    iad.set(Mode::Hang);
    let clock = Instant::now();
    let s = s.restart();
    let took = clock.elapsed();
    let log = plain(&s.log_text());
    assert!(
        log.contains("running the first probe round checks=0 resumed=2"),
        "{log}"
    );
    assert_eq!(s.txt(ALIAS), ["PDX1"]);
    assert_eq!(s.check_state("pdx"), "up", "resumed, not probed");
    eprintln!("restart to ready: {took:?} (a first round would hang for 9 s)");
}

/// The log without terminal colour codes.
fn plain(log: &str) -> String {
    let mut out = String::new();
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
