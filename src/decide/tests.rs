use super::*;

const AFTER: Duration = Duration::from_secs(120);

fn policy(all_down: AllDown, failback: Failback) -> Policy {
    Policy {
        all_down,
        failback,
        failback_after: AFTER,
        ..Policy::default()
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
            },
            'u' => TargetHealth {
                healthy: true,
                since: now - Duration::from_secs(1),
            },
            'D' => TargetHealth {
                healthy: false,
                since: now - AFTER * 2,
            },
            other => panic!("bad pattern {other}"),
        })
        .collect()
}

fn answer(p: &Policy, pattern: &str, previous: Option<Answer>) -> Decision {
    // A fixed point far enough from the process start that subtraction works.
    let now = Instant::now() + AFTER * 4;
    decide(p, &targets(pattern, now), previous, now)
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
    let d = decide(&Policy::default(), &t, Some(Target(1)), now);
    assert_eq!(d.answer, Target(1));
    assert_eq!(d.recheck_at, Some(t[0].since + AFTER));
    // At that moment the failback happens.
    let later = decide(&Policy::default(), &t, Some(Target(1)), t[0].since + AFTER);
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
        },
        TargetHealth {
            healthy: true,
            since: now,
        },
    ];
    let d = decide(&policy, &targets, Some(Answer::Target(1)), now);
    assert_eq!(d.answer, Answer::Target(1));
    assert_eq!(d.recheck_at, None);
}
