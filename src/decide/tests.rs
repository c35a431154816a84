use super::*;

const AFTER: Duration = Duration::from_secs(120);

fn policy(all_down: AllDown, failback: Failback) -> Policy {
    Policy {
        all_down,
        failback,
        failback_after: AFTER,
        failback_after_max: AFTER * 16,
        failback_reset: Duration::from_secs(3600),
    }
}

/// Targets from a pattern like "UD.": U healthy for long, u healthy only just
/// now, D unhealthy.
fn targets(pattern: &str, now: Instant) -> Vec<TargetHealth> {
    pattern
        .chars()
        .map(|c| match c {
            'U' => TargetHealth {
                healthy: true,
                since: now - AFTER * 2,
                confirmed: true,
                pending: false,
            },
            'u' => TargetHealth {
                healthy: true,
                since: now - Duration::from_secs(1),
                confirmed: true,
                pending: false,
            },
            'D' => TargetHealth {
                healthy: false,
                since: now - AFTER * 2,
                confirmed: true,
                pending: false,
            },
            other => panic!("bad pattern {other}"),
        })
        .collect()
}

fn answer(p: &Policy, pattern: &str, previous: Option<Answer>) -> Decision {
    // A fixed point far enough from the process start that subtraction works.
    let now = Instant::now() + AFTER * 4;
    decide(p, &targets(pattern, now), previous, None, now)
}

use Answer::{NoData, ServFail, Target};

#[test]
fn route53_table_with_auto_failback() {
    let p = policy(AllDown::Primary, Failback::Auto);
    // (health, previous, expected answer)
    let cases: &[(&str, Option<Answer>, Answer)] = &[
        ("UU", None, Target(0)),
        ("DU", None, Target(1)),
        ("UD", None, Target(0)),
        ("DD", None, Target(0)),
        ("UU", Some(Target(0)), Target(0)),
        ("DU", Some(Target(0)), Target(1)),
        ("DD", Some(Target(1)), Target(0)),
        ("UU", Some(Target(1)), Target(0)),
        ("uU", Some(Target(1)), Target(1)),
        ("uD", Some(Target(1)), Target(0)),
        ("DDU", Some(Target(0)), Target(2)),
        ("DUU", Some(Target(2)), Target(1)),
        ("DuU", Some(Target(2)), Target(2)),
        ("uUU", Some(Target(2)), Target(1)),
        ("UU", Some(NoData), Target(0)),
        ("DU", Some(ServFail), Target(1)),
    ];
    for (pattern, previous, expected) in cases {
        let d = answer(&p, pattern, *previous);
        assert_eq!(
            d.answer, *expected,
            "health {pattern}, previous {previous:?}: {d:?}"
        );
    }
}

#[test]
fn failover_is_immediate_and_says_from_where() {
    let d = answer(&Policy::default(), "DU", Some(Target(0)));
    assert_eq!(d.reason, Reason::Failover { from: 0 });
    assert_eq!(d.recheck_at, None);
}

#[test]
fn pending_failback_names_when_to_look_again() {
    let now = Instant::now() + AFTER * 4;
    let t = targets("uU", now);
    let d = decide(
        &policy(AllDown::Primary, Failback::Auto),
        &t,
        Some(Target(1)),
        None,
        now,
    );
    assert_eq!(d.answer, Target(1));
    assert_eq!(d.recheck_at, Some(t[0].since + AFTER));
    // At that moment the failback happens.
    let later = decide(
        &policy(AllDown::Primary, Failback::Auto),
        &t,
        Some(Target(1)),
        None,
        t[0].since + AFTER,
    );
    assert_eq!(later.answer, Target(0));
    assert_eq!(later.reason, Reason::Failback { from: 1 });
}

#[test]
fn zero_failback_after_moves_back_at_once() {
    let p = Policy {
        failback_after: Duration::ZERO,
        ..Policy::default()
    };
    assert_eq!(answer(&p, "uU", Some(Target(1))).answer, Target(0));
}

#[test]
fn manual_failback_stays_until_the_current_target_fails() {
    let p = policy(AllDown::Primary, Failback::Manual);
    let d = answer(&p, "UU", Some(Target(1)));
    assert_eq!(d.answer, Target(1));
    assert_eq!(d.reason, Reason::FailbackManual { better: 0 });
    assert_eq!(answer(&p, "UD", Some(Target(1))).answer, Target(0));
    assert_eq!(answer(&p, "UU", None).answer, Target(0));
}

#[test]
fn all_down_policies() {
    let prev = Some(Target(1));
    let cases = [
        (AllDown::Primary, Target(0)),
        (AllDown::Last, Target(1)),
        (AllDown::NoData, NoData),
        (AllDown::ServFail, ServFail),
    ];
    for (all_down, expected) in cases {
        let d = answer(&policy(all_down, Failback::Auto), "DD", prev);
        assert_eq!(d.answer, expected, "{all_down:?}");
        assert_eq!(d.reason, Reason::AllDown(all_down));
    }
    // "last" with nothing answered before falls back to the primary.
    let d = answer(&policy(AllDown::Last, Failback::Auto), "DD", Some(NoData));
    assert_eq!(d.answer, Target(0));
}

#[test]
fn every_health_pattern_answers_a_healthy_target_when_one_exists() {
    // Exhaustive over 3 targets x all health patterns x all previous answers x
    // both failback modes: the answer is healthy whenever any target is, and
    // never moves off a healthy current target except to a better one.
    let prevs = [
        None,
        Some(Target(0)),
        Some(Target(1)),
        Some(Target(2)),
        Some(NoData),
        Some(ServFail),
    ];
    for mask in 0..27u32 {
        let pattern: String = (0..3)
            .map(|i| ['U', 'u', 'D'][(mask / 3u32.pow(i)) as usize % 3])
            .collect();
        for failback in [Failback::Auto, Failback::Manual] {
            for prev in prevs {
                let p = policy(AllDown::Primary, failback);
                let d = answer(&p, &pattern, prev);
                let healthy: Vec<bool> = pattern.chars().map(|c| c != 'D').collect();
                let Target(chosen) = d.answer else {
                    panic!("primary policy answered {d:?}")
                };
                if healthy.iter().any(|h| *h) {
                    assert!(healthy[chosen], "{pattern} {prev:?} {failback:?}: {d:?}");
                } else {
                    assert_eq!(chosen, 0);
                }
                if let Some(Target(c)) = prev
                    && healthy[c]
                {
                    assert!(
                        chosen <= c,
                        "moved to a worse target: {pattern} {prev:?} {d:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_failback_wait_past_the_clock_never_comes_due_and_never_panics() {
    let now = Instant::now();
    let policy = Policy {
        failback_after: Duration::MAX,
        ..Policy::default()
    };
    let targets = [
        TargetHealth {
            healthy: true,
            since: now,
            confirmed: true,
            pending: false,
        },
        TargetHealth {
            healthy: true,
            since: now,
            confirmed: true,
            pending: false,
        },
    ];
    let d = decide(&policy, &targets, Some(Answer::Target(1)), None, now);
    assert_eq!(d.answer, Answer::Target(1));
    assert_eq!(d.recheck_at, None);
}

/// Targets as `targets` makes them, with confirmation per target.
fn confirmed(pattern: &str, confirmed: &[bool], now: Instant) -> Vec<TargetHealth> {
    targets(pattern, now)
        .into_iter()
        .zip(confirmed)
        .map(|(t, &c)| TargetHealth { confirmed: c, ..t })
        .collect()
}

#[test]
fn failover_waits_for_a_confirmed_destination() {
    let now = Instant::now() + AFTER * 4;
    let p = Policy::default();
    let t = confirmed("DUU", &[false, false, true], now);
    let d = decide(&p, &t, Some(Target(0)), None, now);
    assert_eq!(d.answer, Target(2), "the best confirmed target: {d:?}");
    let t = confirmed("DU", &[true, false], now);
    let d = decide(&p, &t, Some(Target(0)), None, now);
    assert_eq!(d.answer, Target(0));
    assert_eq!(
        d.reason,
        Reason::Unconfirmed {
            from: 0,
            candidate: 1
        }
    );
    // At start nothing was answered: the best healthy target, confirmed or not.
    assert_eq!(decide(&p, &t, None, None, now).answer, Target(1));
    // Recovering from NODATA needs no confirmation either.
    assert_eq!(decide(&p, &t, Some(NoData), None, now).answer, Target(1));
}

#[test]
fn a_hold_keeps_any_answer() {
    let now = Instant::now() + AFTER * 4;
    let p = policy(AllDown::NoData, Failback::Auto);
    for hold in [Hold::Isolated, Hold::Canary] {
        for (pattern, previous) in [
            ("DD", Target(1)),
            ("DU", Target(0)),
            ("UU", Target(1)),
            ("UU", NoData),
        ] {
            let d = decide(&p, &targets(pattern, now), Some(previous), Some(hold), now);
            assert_eq!(d.answer, previous, "{hold:?} {pattern}");
            assert_eq!(d.reason, Reason::Held(hold));
        }
        // Nothing answered yet: a hold has nothing to keep.
        let d = decide(&p, &targets("DU", now), None, Some(hold), now);
        assert_eq!(d.answer, Target(1));
    }
}

#[test]
fn a_failback_to_the_second_best_keeps_the_timer_of_the_best() {
    // Three Regions: #2 answered, #1 healthy for long, #0 only just now.
    let now = Instant::now() + AFTER * 4;
    let t = targets("uUU", now);
    let d = decide(
        &policy(AllDown::Primary, Failback::Auto),
        &t,
        Some(Target(2)),
        None,
        now,
    );
    assert_eq!(d.answer, Target(1));
    assert_eq!(d.reason, Reason::Failback { from: 2 });
    assert_eq!(
        d.recheck_at,
        Some(t[0].since + AFTER),
        "the failback to #0 needs its own wakeup"
    );
}

#[test]
fn damping_doubles_up_to_the_ceiling() {
    let p = Policy {
        failback_after: Duration::from_secs(10),
        failback_after_max: Duration::from_secs(50),
        ..Policy::default()
    };
    let got: Vec<u64> = (0..5).map(|l| p.damped(l).as_secs()).collect();
    assert_eq!(got, [10, 20, 40, 50, 50]);
    assert_eq!(p.damped(u32::MAX), Duration::from_secs(50));
    let huge = Policy {
        failback_after: Duration::MAX,
        failback_after_max: Duration::MAX,
        ..Policy::default()
    };
    assert_eq!(huge.damped(40), Duration::MAX);
}

#[test]
fn failover_waits_for_a_better_target_whose_latest_round_failed() {
    let now = Instant::now() + AFTER * 4;
    let p = Policy::default();
    let mut t = confirmed("DUU", &[false, false, true], now);
    t[1].pending = true;
    let d = decide(&p, &t, Some(Target(0)), None, now);
    assert_eq!(d.answer, Target(0), "not past #1 to #2: {d:?}");
    assert_eq!(
        d.reason,
        Reason::Unconfirmed {
            from: 0,
            candidate: 1
        }
    );
    // Once #1 is down, #2 takes over.
    t[1].healthy = false;
    assert_eq!(decide(&p, &t, Some(Target(0)), None, now).answer, Target(2));
}
