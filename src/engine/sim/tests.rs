//! The decision rules in virtual time, against the real core.

use std::time::Duration;

use super::*;
use crate::decide::Answer::Target;

/// Two Regions, one probed check each, shipped defaults everywhere.
const TWO: &str = r#"
[[check]]
name = "pdx"
kind = "tcp"
address = "127.0.0.1:1"

[[check]]
name = "iad"
kind = "tcp"
address = "127.0.0.1:2"

[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] },
  { region = "us-east-1", connection_id = "IAD2", checks = ["iad"] },
]
"#;

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3600);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Random, independent loss of every attempt on healthy endpoints: how
/// often the answer leaves the primary, per 30 days.
fn false_failovers(loss: f64, days: u64, seed: u64) -> (usize, u64) {
    let mut sim = Sim::new(config(TWO), seed);
    sim.loss = vec![loss; 2];
    sim.start(&[None]);
    sim.run_until(DAY * days as u32);
    let away = sim.moves.iter().filter(|m| m.to != Target(0)).count();
    (away, sim.rounds)
}

#[test]
fn sim_random_loss_almost_never_fails_over() {
    // 10 %, 20 %, 30 % loss per attempt, 60 simulated days each (more
    // with SIM_DAYS, e.g. in a release build).
    let days = std::env::var("SIM_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(60u64);
    let mut report = Vec::new();
    for (loss, seed) in [(0.1, 1), (0.2, 2), (0.3, 3)] {
        let (away, rounds) = false_failovers(loss, days, seed);
        let per_30 = away as f64 * 30.0 / days as f64;
        report.push((loss, away, rounds, per_30));
        // "fall" failed rounds in a row, a round failing when every attempt
        // is lost: the Markov estimate for one check.
        let timing = config(TWO).checks[0].timing;
        let q = loss.powi(timing.attempts as i32);
        let per_round = (1.0 - q) * q.powi(timing.fall as i32);
        let model = per_round * (30.0 * 86_400.0 / timing.interval.as_secs_f64());
        println!(
            "loss {:>3.0}%: {away} false failovers in {days} days ({rounds} rounds) = {per_30:.2} per 30 days (model: {model:.3})",
            loss * 100.0
        );
    }
    assert!(
        report[1].3 < 1.0,
        "20% loss must cause fewer than one false failover per 30 days: {report:?}"
    );
}

/// From the moment the primary's endpoint breaks to the answer moving,
/// over many phases: the worst case.
fn detection(mode: Endpoint, seeds: u64) -> Duration {
    let mut worst = Duration::ZERO;
    for seed in 0..seeds {
        let mut sim = Sim::new(config(TWO), seed);
        sim.start(&[None]);
        // Break at a random instant well after start.
        let broken_at = secs(100.0 + sim.rng.unit() * 10.0);
        sim.world = Box::new(move |i, t| {
            if i == 0 && t >= broken_at {
                mode
            } else {
                Endpoint::Up
            }
        });
        sim.run_until(broken_at + secs(120.0));
        let moved = sim
            .moves
            .iter()
            .find(|m| m.to == Target(1))
            .unwrap_or_else(|| panic!("{mode:?}: no failover within 2 minutes"));
        worst = worst.max(moved.at - broken_at);
    }
    worst
}

#[test]
fn sim_hard_outage_is_detected_within_30s_plus_one_timeout() {
    let timeout = config(TWO).checks[0].timing.timeout;
    for mode in [Endpoint::Refused, Endpoint::Hang] {
        let worst = detection(mode, 200);
        println!("{mode:?}: answer moved at worst {worst:?} after the outage began");
        assert!(
            worst <= Duration::from_secs(30) + timeout,
            "{mode:?}: {worst:?} > 30 s + {timeout:?}"
        );
    }
}

/// The prober's own network goes away (every endpoint at once) for
/// `outage`, starting at `at`; loss as given on top.
fn prober_outage(outage: Duration, previous: Option<Answer>, seed: u64, loss: f64) -> Sim {
    let mut sim = Sim::new(config(TWO), seed);
    sim.loss = vec![loss; 2];
    let at = secs(60.0 + sim.rng.unit() * 10.0);
    sim.world = Box::new(move |_, t| {
        if t >= at && t < at + outage {
            Endpoint::Hang
        } else {
            Endpoint::Up
        }
    });
    sim.start(&[previous]);
    sim.run_until(at + outage + HOUR);
    sim
}

#[test]
fn sim_a_prober_outage_of_any_length_moves_nothing() {
    let mut trials = 0;
    for outage_secs in [1, 5, 12, 20, 29, 31, 45, 61, 120, 600, 3600, 4 * 3600] {
        for seed in 0..20 {
            for previous in [None, Some(Target(1))] {
                let outage = Duration::from_secs(outage_secs);
                let sim = prober_outage(outage, previous, seed, 0.0);
                let start = previous.unwrap_or(Target(0));
                // A failback to the primary long after recovery is not a
                // move the outage caused; nothing before then may move.
                let moves: Vec<&Move> = sim
                    .moves
                    .iter()
                    .filter(|m| !(previous.is_some() && m.to == Target(0)))
                    .collect();
                assert!(
                    moves.is_empty(),
                    "outage {outage_secs}s seed {seed} from {start:?}: {moves:?}"
                );
                trials += 1;
            }
        }
    }
    println!("{trials} prober outages from 1 s to 4 h: no answer moved");
}

/// A primary that is down `down` then up `up`, over and over, for a day.
fn flapping(down: Duration, up: Duration, seed: u64) -> Vec<Move> {
    let mut sim = Sim::new(config(TWO), seed);
    let period = down + up;
    sim.refuse_when(move |i, t| {
        let phase = Duration::from_nanos((t.as_nanos() % period.as_nanos()) as u64);
        i == 0 && phase < down
    });
    sim.start(&[None]);
    sim.run_until(DAY);
    sim.moves
}

#[test]
fn sim_a_flapping_primary_moves_users_at_most_6_times_an_hour() {
    let mut worst = (0, Duration::ZERO, Duration::ZERO);
    for down_s in [30, 60, 300, 900] {
        for up_s in [
            30, 60, 120, 300, 600, 700, 1200, 1800, 2400, 3600, 5400, 7200,
        ] {
            let (down, up) = (Duration::from_secs(down_s), Duration::from_secs(up_s));
            let moves = flapping(down, up, down_s ^ up_s);
            let most = max_in_window(&moves, HOUR);
            if most > worst.0 {
                worst = (most, down, up);
            }
        }
    }
    println!(
        "flapping primary: at most {} moves in any hour (down {:?} / up {:?})",
        worst.0, worst.1, worst.2
    );
    assert!(worst.0 <= 6, "{worst:?}");
}

#[test]
fn sim_one_lost_probe_at_start_moves_nothing() {
    // 20 % loss from the first instant; 2,000 fresh starts.
    let mut off_primary = 0;
    for seed in 0..2000 {
        let mut sim = Sim::new(config(TWO), seed);
        sim.loss = vec![0.2; 2];
        sim.boot();
        if sim.answer(0) != Target(0) {
            off_primary += 1;
        }
    }
    println!("20% loss at start: {off_primary} of 2000 starts answered off the primary");
    assert!(off_primary <= 2, "{off_primary} starts moved users");
}

fn three_regions(failback_after: &str) -> Arc<Config> {
    config(&format!(
        r#"
[[check]]
name = "a"
kind = "tcp"
address = "127.0.0.1:1"

[[check]]
name = "b"
kind = "tcp"
address = "127.0.0.1:2"

[[check]]
name = "c"
kind = "tcp"
address = "127.0.0.1:3"

[[alias]]
name = "desktop.example.com"
failback_after = "{failback_after}"
targets = [
  {{ region = "us-west-2", connection_id = "A", checks = ["a"] }},
  {{ region = "us-east-1", connection_id = "B", checks = ["b"] }},
  {{ region = "eu-west-1", connection_id = "C", checks = ["c"] }},
]
"#
    ))
}

#[test]
fn sim_three_region_failback_completes_on_time() {
    let config = three_regions("60s");
    let mut sim = Sim::new(config.clone(), 7);
    sim.refuse_when(|i, t| match i {
        0 => t >= secs(60.0) && t < secs(400.0),
        1 => t >= secs(60.0) && t < secs(300.0),
        _ => false,
    });
    sim.boot();
    sim.run_until(secs(1200.0));
    let path: Vec<Answer> = sim.moves.iter().map(|m| m.to).collect();
    assert_eq!(path, [Target(2), Target(1), Target(0)], "{:?}", sim.moves);
    // The last failback comes due at A's "up since" + the doubled wait
    // (one failback already happened): exactly then, not at some later
    // unrelated event.
    let a_up = sim.core.checks()[0].state.since;
    let due = a_up + config.aliases[0].policy.damped(1);
    let last = sim.moves[2].at;
    assert_eq!(sim.base + last, due, "{:?}", sim.moves);
}

#[test]
fn sim_composite_healthy_since_ignores_a_flapping_member() {
    let config = config(
        r#"
[[check]]
name = "gw-a"
kind = "tcp"
address = "127.0.0.1:1"

[[check]]
name = "gw-b"
kind = "tcp"
address = "127.0.0.1:2"

[[check]]
name = "pdx"
kind = "any"
checks = ["gw-a", "gw-b"]

[[check]]
name = "iad"
kind = "tcp"
address = "127.0.0.1:3"

[[alias]]
name = "desktop.example.com"
failback_after = "120s"
targets = [
  { region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] },
  { region = "us-east-1", connection_id = "IAD2", checks = ["iad"] },
]
"#,
    );
    let mut sim = Sim::new(config.clone(), 11);
    // Both gateways down 100–300 s; then gw-a stays up while gw-b flaps
    // (down 60 s, up 60 s) for ever.
    sim.refuse_when(|i, t| {
        let s = t.as_secs();
        match i {
            0 => (100..300).contains(&s),
            1 => (100..300).contains(&s) || (s >= 300 && (s / 60) % 2 == 0),
            _ => false,
        }
    });
    sim.boot();
    sim.run_until(secs(1200.0));
    let back = sim
        .moves
        .iter()
        .find(|m| m.to == Target(0))
        .expect("failback");
    // gw-a is up again after `rise` rounds past 300 s; the failback follows
    // failback_after later, whatever gw-b does meanwhile.
    let timing = config.checks[0].timing;
    let latest = secs(300.0)
        + timing.interval * (timing.rise + 1)
        + config.aliases[0].policy.failback_after
        + timing.interval;
    assert!(
        back.at <= latest,
        "failback at {:?}, due by {latest:?}",
        back.at
    );
}

#[test]
fn sim_a_reload_keeps_a_changed_checks_state_until_its_first_result() {
    let mut sim = Sim::new(config(TWO), 5);
    sim.refuse_when(|i, t| i == 0 && t >= secs(30.0));
    sim.boot();
    sim.run_until(secs(200.0));
    assert_eq!(sim.answer(0), Target(1));
    // The primary's check is edited (a longer timeout) and reloaded.
    let edited = config(&TWO.replace(
        "address = \"127.0.0.1:1\"",
        "address = \"127.0.0.1:1\"\ntimeout = \"1s\"",
    ));
    let at = sim.base + sim.now;
    let (probe_now, previous) = sim.core.reload(edited, at, 0);
    assert_eq!(probe_now, [true, false]);
    assert_eq!(previous, [Some(Target(1))]);
    assert_eq!(
        sim.answer(0),
        Target(1),
        "the reload must not flip to the dead primary"
    );
    assert!(
        !sim.core.checks()[0].state.state.healthy(),
        "the old state stands"
    );
    // Its first new result decides its state directly.
    let up = Outcome {
        ok: true,
        latency: Duration::ZERO,
        detail: String::new(),
    };
    sim.core.observe(0, up, at);
    assert!(sim.core.checks()[0].state.state.healthy());
    let changes = sim.core.reevaluate(at, 0);
    assert_eq!(
        sim.answer(0),
        Target(1),
        "a failback still waits: {changes:?}"
    );
}

#[test]
fn sim_a_restart_resumes_answers_parking_and_damping() {
    // (policy, the secondary fails at 200 s, the primary comes back at 300 s)
    for (policy, secondary_fails, primary_back) in [
        ("failback = \"manual\"", false, true),
        ("all_down = \"last\"", true, false),
    ] {
        let text = TWO.replace(
            "name = \"desktop.example.com\"",
            &format!("name = \"desktop.example.com\"\n{policy}"),
        );
        let mut sim = Sim::new(config(&text), 3);
        sim.refuse_when(move |i, t| {
            let s = t.as_secs();
            match i {
                0 => s >= 30 && (s < 300 || !primary_back),
                _ => secondary_fails && s >= 200,
            }
        });
        sim.boot();
        sim.run_until(secs(400.0));
        assert_eq!(sim.answer(0), Target(1), "{policy}: {:?}", sim.moves);
        for age in [Duration::from_secs(2), Duration::from_secs(3600)] {
            // A restart `age` after the last capture.
            let (mut restarted, previous, _) = sim.restarted(age, age, 4);
            assert_eq!(previous, [Some(Target(1))]);
            restarted.first_round();
            restarted.start(&previous);
            assert_eq!(
                restarted.answer(0),
                Target(1),
                "{policy}, restart after {age:?}"
            );
        }
    }
}

#[test]
fn sim_ten_thousand_checks_a_million_rounds() {
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[check]]\nname = \"c{i}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\ninterval = \"1s\"\ntimeout = \"400ms\"\n\n",
            1000 + i % 50
        ));
    }
    for a in 0..5_000 {
        text.push_str(&format!(
            "[[alias]]\nname = \"a{a}.example.com\"\ntargets = [\n  {{ region = \"us-west-2\", connection_id = \"P{a}\", checks = [\"c{}\"] }},\n  {{ region = \"us-east-1\", connection_id = \"S{a}\", checks = [\"c{}\"] }},\n]\n\n",
            2 * a,
            2 * a + 1
        ));
    }
    let mut sim = Sim::new(config(&text), 9);
    sim.loss = vec![0.05; 10_000];
    sim.first_round();
    sim.start(&vec![None; 5_000]);
    let clock = std::time::Instant::now();
    sim.run_until(secs(100.0));
    let took = clock.elapsed();
    println!(
        "10,000 checks, 5,000 aliases: {} rounds in {took:?} ({:.1} µs per round, this build)",
        sim.rounds,
        took.as_secs_f64() * 1e6 / sim.rounds as f64
    );
    assert!(sim.rounds >= 990_000, "{}", sim.rounds);
}

/// The primary is judged by an external reporter (shipped `on_stale`:
/// unhealthy), the secondary by a probe. The reporter goes silent (its
/// Region is gone): the check goes stale and unhealthy, and no report
/// will ever fail "again"; the secondary keeps answering probes.
#[test]
fn sim_a_stale_external_primary_fails_over() {
    let config = config(
        r#"
[[check]]
name = "pdx"
kind = "external"
stale_after = "60s"

[[check]]
name = "iad"
kind = "tcp"
address = "127.0.0.1:2"

[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] },
  { region = "us-east-1", connection_id = "IAD2", checks = ["iad"] },
]
"#,
    );
    let mut sim = Sim::new(config, 21);
    sim.first_round();
    sim.start(&[None]);
    let ok = Outcome {
        ok: true,
        latency: Duration::ZERO,
        detail: String::new(),
    };
    // Reports every 10 s for 100 s, then silence.
    for s in (0..=100).step_by(10) {
        sim.run_until(secs(f64::from(s)));
        let at = sim.base + sim.now;
        sim.core.report(0, ok.clone(), at);
        sim.settle();
    }
    assert_eq!(sim.answer(0), Target(0));
    sim.run_until(secs(600.0));
    assert!(!sim.core.checks()[0].state.state.healthy(), "stale: down");
    assert_eq!(
        sim.answer(0),
        Target(1),
        "{:?}, reason {}",
        sim.moves,
        sim.core.aliases()[0].decision.reason
    );
}

/// An override with an expiry on an alias whose checks are probed: every
/// round decides the alias again, and its expiry, computed from two clocks
/// (wall seconds, monotonic nanoseconds), must not push a timer each time.
#[test]
fn sim_an_expiring_override_does_not_grow_the_timer_heap() {
    let config = config(TWO);
    let mut sim = Sim::new(config.clone(), 1);
    sim.first_round();
    sim.start(&[None]);
    let unix0 = 1_000_000_000u64;
    let mut overrides = crate::state::Overrides::new();
    overrides.insert(
        config.aliases[0].name.to_string(),
        crate::state::Override {
            region: "us-east-1".into(),
            reason: "drill".into(),
            by: "test".into(),
            set_at: unix0,
            until: Some(unix0 + 30 * 86_400),
        },
    );
    sim.core.set_overrides(overrides);
    sim.core.reevaluate(sim.base, unix0);
    assert_eq!(sim.answer(0), Target(1));
    let ok = Outcome {
        ok: true,
        latency: Duration::ZERO,
        detail: String::new(),
    };
    // A day of rounds, 5 s apart, landing anywhere within a wall second.
    for k in 0..17_280u64 {
        let elapsed = Duration::from_millis(k * 5_000 + (k * 137) % 1000);
        let at = sim.base + elapsed;
        sim.core.observe((k % 2) as usize, ok.clone(), at);
        sim.core.reevaluate(at, unix0 + elapsed.as_secs());
    }
    assert_eq!(sim.answer(0), Target(1));
    assert!(
        sim.core.timer_count() < 100,
        "{} timer entries after a day",
        sim.core.timer_count()
    );
}

/// Damping from an earlier flapping spell, then a long calm outage on the
/// secondary: once the primary is back, the failback waits the plain
/// `failback_after` (the README: "back to normal after failback_reset
/// with no failback pending"), not the damped one.
#[test]
fn sim_damping_is_reset_by_a_long_calm_spell_before_the_failback() {
    let config = config(&TWO.replace(
        "name = \"desktop.example.com\"",
        "name = \"desktop.example.com\"\nfailback_after = \"60s\"",
    ));
    let mut sim = Sim::new(config.clone(), 13);
    let long_from = 1000.0;
    let long_to = long_from + 3.0 * 3600.0;
    sim.world = Box::new(move |i, t| {
        let s = t.as_secs_f64();
        let down = i == 0
            && ((100.0..200.0).contains(&s)
                || (400.0..500.0).contains(&s)
                || (long_from..long_to).contains(&s));
        if down {
            Endpoint::Refused
        } else {
            Endpoint::Up
        }
    });
    sim.first_round();
    sim.start(&[None]);
    sim.run_until(secs(long_to + 1800.0));
    let path: Vec<Answer> = sim.moves.iter().map(|m| m.to).collect();
    assert_eq!(
        path,
        [
            Target(1),
            Target(0),
            Target(1),
            Target(0),
            Target(1),
            Target(0)
        ],
        "{:?}",
        sim.moves
    );
    let back = sim.moves[5].at;
    let up = sim.core.checks()[0].state.since;
    let plain = config.aliases[0].policy.failback_after;
    assert_eq!(
        sim.base + back,
        up + plain,
        "failback {:?} after the primary was up again",
        (sim.base + back).saturating_duration_since(up)
    );
}

/// The prober loses its paths one after the other (a tunnel per Region
/// dropping 10–14 s apart, more than the isolation window): by the time
/// the primary is down, the secondary's latest rounds fail too. A target
/// whose latest round failed must not take over, whatever it did
/// earlier. (With a gap near `fall × interval` the secondary still works
/// when the primary goes down: that is a Region outage to any prober.)
#[test]
fn sim_a_staggered_prober_outage_moves_nothing() {
    let mut moved = Vec::new();
    for gap in [10u64, 11, 12, 13, 14] {
        for seed in 0..20 {
            let mut sim = Sim::new(config(TWO), seed);
            let at = secs(100.0 + sim.rng.unit() * 5.0);
            let gap = Duration::from_secs(gap);
            sim.world = Box::new(move |i, t| {
                let from = if i == 0 { at } else { at + gap };
                if t >= from {
                    Endpoint::Hang
                } else {
                    Endpoint::Up
                }
            });
            sim.first_round();
            sim.start(&[None]);
            sim.run_until(at + HOUR);
            if !sim.moves.is_empty() {
                moved.push((gap, seed, sim.moves.clone()));
            }
        }
    }
    assert!(
        moved.is_empty(),
        "{} runs moved: {:?}",
        moved.len(),
        moved.first()
    );
}

/// decisions.json saved "in the future" (the wall clock was stepped back
/// between runs, or the file is corrupt): its age is unknown, so its check
/// states do not resume as fresh; the answers still do.
#[test]
fn sim_a_memory_from_the_future_resumes_no_check_state() {
    use super::super::memory;
    let mut sim = Sim::new(config(TWO), 2);
    sim.first_round();
    sim.start(&[None]);
    sim.run_until(secs(60.0));
    let at = sim.base + sim.now;
    let saved = 2_000_000_000_000;
    let memory = memory::capture(
        &sim.core,
        &memory::fingerprints(sim.core.config()),
        at,
        saved,
    );
    assert_eq!(memory.checks.len(), 2);
    let mut core = Core::new(sim.core.config().clone(), at);
    let (previous, resumed) = memory::resume(&mut core, &memory, at, saved - 86_400_000);
    assert_eq!(previous, [Some(Target(0))]);
    assert_eq!(resumed, 0);
    let mut core = Core::new(sim.core.config().clone(), at);
    let (_, resumed) = memory::resume(&mut core, &memory, at, saved + 1000);
    assert_eq!(resumed, 2, "a fresh memory resumes");
}

/// An external reporter in a tight loop (a bug, or a script retrying):
/// every report used to push a staleness timer, kept until it came due
/// `stale_after` later. The heap stays small; staleness still comes on time.
#[test]
fn sim_a_chatty_reporter_does_not_grow_the_timer_heap() {
    let config = config(
        r#"
[[check]]
name = "pdx"
kind = "external"
stale_after = "1h"

[[alias]]
name = "desktop.example.com"
targets = [
  { region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] },
  { region = "us-east-1", connection_id = "IAD2" },
]
"#,
    );
    let mut sim = Sim::new(config, 1);
    sim.start(&[None]);
    let ok = Outcome {
        ok: true,
        latency: Duration::ZERO,
        detail: String::new(),
    };
    let mut last = sim.base;
    for k in 0..20_000u64 {
        last = sim.base + Duration::from_millis(k * 10);
        sim.core.report(0, ok.clone(), last);
        sim.core.reevaluate(last, 0);
    }
    assert!(
        sim.core.timer_count() < 10,
        "{} timer entries",
        sim.core.timer_count()
    );
    let due = last + HOUR;
    assert_eq!(sim.core.next_recheck(), Some(due));
    sim.core.fire(due - Duration::from_millis(1));
    assert!(!sim.core.checks()[0].stale);
    let went = sim.core.fire(due);
    assert_eq!(went, [0]);
    assert!(sim.core.checks()[0].stale);
}

/// A restart while the targets are coming back from a prober outage
/// (latest rounds work again, states still down for `rise`): the
/// isolation latch must survive it, or the restart answers `all_down`
/// (the primary) and moves the users parked on the secondary.
#[test]
fn sim_a_restart_while_recovering_from_isolation_moves_nothing() {
    let text = TWO.replace(
        "name = \"desktop.example.com\"",
        "name = \"desktop.example.com\"\nfailback = \"manual\"",
    );
    let mut sim = Sim::new(config(&text), 8);
    sim.world = Box::new(|_, t| {
        if t >= secs(100.0) && t < secs(700.0) {
            Endpoint::Hang
        } else {
            Endpoint::Up
        }
    });
    sim.first_round();
    sim.start(&[Some(Target(1))]);
    sim.run_until(secs(700.0));
    assert!(sim.core.aliases()[0].isolated);
    // Until both checks' latest rounds work again, still short of `rise`.
    let mut t = 700.0;
    while !sim.core.checks().iter().all(|c| c.round_ok) {
        t += 0.1;
        sim.run_until(secs(t));
    }
    assert!(sim.core.checks().iter().all(|c| !c.state.state.healthy()));
    assert_eq!(sim.answer(0), Target(1));
    let (mut restarted, previous, resumed) =
        sim.restarted(Duration::ZERO, Duration::from_secs(1), 9);
    assert_eq!(resumed, 2);
    restarted.start(&previous);
    assert_eq!(
        restarted.answer(0),
        Target(1),
        "{}",
        restarted.core.aliases()[0].decision.reason
    );
    restarted.run_until(sim.now + HOUR);
    assert!(restarted.moves.is_empty(), "{:?}", restarted.moves);
    assert!(!restarted.core.aliases()[0].isolated, "the latch clears");
}

/// Three Regions, loss on every path, the primary dies: the failover goes
/// to the second Region, not past it to the third because of one lost
/// round at the wrong moment (that costs a second move back later).
#[test]
fn sim_three_region_failover_under_loss_goes_to_the_second() {
    let mut to_third = 0;
    let runs = 300;
    for seed in 0..runs {
        let mut sim = Sim::new(three_regions("10m"), seed);
        sim.loss = vec![0.3; 3];
        let at = secs(100.0 + sim.rng.unit() * 5.0);
        sim.world = Box::new(move |i, t| {
            if i == 0 && t >= at {
                Endpoint::Refused
            } else {
                Endpoint::Up
            }
        });
        sim.first_round();
        sim.start(&[None]);
        sim.run_until(at + secs(300.0));
        match sim.moves.iter().find(|m| m.to != Target(0)) {
            Some(m) if m.to == Target(2) => to_third += 1,
            Some(_) => {}
            None => panic!("seed {seed}: no failover"),
        }
    }
    println!("30% loss: {to_third} of {runs} failovers skipped the second Region");
    assert!(to_third <= runs / 100, "{to_third} of {runs}");
}

#[test]
fn sim_a_single_target_alias_follows_its_all_down_policy() {
    let mut sim = Sim::new(
        config(
            r#"
[[check]]
name = "pdx"
kind = "tcp"
address = "127.0.0.1:1"

[[alias]]
name = "desktop.example.com"
all_down = "nodata"
targets = [{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }]
"#,
        ),
        1,
    );
    sim.refuse_when(|_, t| t >= secs(30.0));
    sim.boot();
    sim.run_until(secs(120.0));
    assert_eq!(sim.answer(0), Answer::NoData, "{:?}", sim.moves);
    assert!(!sim.core.aliases()[0].isolated);
}

#[test]
fn sim_a_prober_outage_with_a_long_dead_region_moves_nothing() {
    // C died long ago; A failed and came back, so B answers with a failback
    // pending; then the prober goes dark for ten minutes and comes back.
    let mut sim = Sim::new(three_regions("1h"), 13);
    sim.refuse_when(|i, t| {
        let s = t.as_secs();
        let dark = (2000..2600).contains(&s);
        match i {
            0 => (100..400).contains(&s) || dark,
            1 => dark,
            _ => s >= 50,
        }
    });
    sim.boot();
    sim.run_until(secs(1900.0));
    assert_eq!(sim.answer(0), Target(1), "{:?}", sim.moves);
    let before = sim.moves.len();
    sim.run_until(secs(3000.0));
    assert_eq!(sim.moves.len(), before, "{:?}", &sim.moves[before..]);
}

/// The primary died long ago and the secondary answers; the secondary
/// begins to die for real and the server restarts right after its first
/// failed round. Both targets now fail, but not together: the restart
/// must not latch "prober isolated" (every failing target looked as if it
/// began failing at the restart) and hold the answer on the dying
/// secondary instead of following `all_down`, as it does with no restart.
#[test]
fn sim_a_restart_does_not_make_an_old_outage_look_like_isolation() {
    let mut sim = Sim::new(config(TWO), 21);
    sim.refuse_when(|i, t| match i {
        0 => t >= secs(100.0),
        _ => t >= secs(2000.0),
    });
    sim.boot();
    sim.run_until(secs(1999.0));
    assert_eq!(sim.answer(0), Target(1), "{:?}", sim.moves);
    let mut t = 1999.0;
    while sim.core.checks()[1].round_ok {
        t += 0.1;
        sim.run_until(secs(t));
    }
    assert!(sim.core.checks()[1].state.state.healthy());
    let (mut restarted, previous, resumed) =
        sim.restarted(Duration::ZERO, Duration::from_secs(1), 22);
    assert_eq!(resumed, 2);
    restarted.refuse_when(|i, t| match i {
        0 => t >= secs(100.0),
        _ => t >= secs(2000.0),
    });
    restarted.start(&previous);
    restarted.run_until(secs(2300.0));
    assert!(
        !restarted.core.aliases()[0].isolated,
        "{}",
        restarted.core.aliases()[0].decision.reason
    );
    assert_eq!(restarted.answer(0), Target(0), "all_down: the primary");
}

/// Restarts faster than a probe round completes (a crash loop, an
/// operator restarting again and again): each start saves the resumed
/// states with a new `saved_at_ms` though no round ran. The state must
/// age by its latest result, or it stays "fresh" forever and a dead
/// primary is answered as healthy without ever being probed.
#[test]
fn sim_a_restart_loop_does_not_keep_an_unprobed_state_fresh() {
    use super::super::memory;
    let mut sim = Sim::new(config(TWO), 3);
    sim.boot();
    sim.run_until(secs(60.0));
    let mut at = sim.base + sim.now;
    let mut unix = 1_000_000_000_000;
    let prints = memory::fingerprints(sim.core.config());
    let mut memory = memory::capture(&sim.core, &prints, at, unix);
    // Restarts every 3 s for ten minutes; no round completes in any run.
    for _ in 0..200 {
        at += secs(3.0);
        unix += 3000;
        let mut core = Core::new(sim.core.config().clone(), at);
        let (previous, _) = memory::resume(&mut core, &memory, at, unix);
        core.start(&previous, at, 0);
        memory = memory::capture(&core, &prints, at, unix);
    }
    let resumed = memory::resumable(sim.core.config(), &memory, unix + 1000);
    assert_eq!(resumed, [false, false], "no result for ten minutes");
}
