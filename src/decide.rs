//! The decision: which target an alias answers, and why. A pure function of
//! target health, the alias's policy, what it answered before and the clock,
//! so every branch is tested without sockets or timers.

use std::fmt;
use std::time::{Duration, Instant};

/// What to answer when no target is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Answer the primary (Route 53 and gdnsd behaviour).
    Primary,
    /// Keep answering whatever was answered last.
    Last,
    /// Answer NOERROR with no TXT record.
    NoData,
    /// Answer SERVFAIL so resolvers try again later.
    ServFail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failback {
    /// Move back to a better target once it has been healthy `failback_after`.
    Auto,
    /// Stay on the failover target while it is healthy; an operator moves back.
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub all_down: AllDown,
    pub failback: Failback,
    /// How long a better target must stay healthy before answers move back;
    /// the engine passes the alias's current, damped value.
    pub failback_after: Duration,
    /// The ceiling of the damped `failback_after`.
    pub failback_after_max: Duration,
    /// Calm on one answer after which the damping starts over.
    pub failback_reset: Duration,
}

/// The shipped `failback_after`: the smallest round value for which a
/// Region flapping with any period moves users at most 6 times in any hour
/// (see the simulation in `engine::sim`).
pub const DEFAULT_FAILBACK_AFTER: Duration = Duration::from_secs(600);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            all_down: AllDown::Primary,
            failback: Failback::Auto,
            failback_after: DEFAULT_FAILBACK_AFTER,
            failback_after_max: DEFAULT_FAILBACK_AFTER.saturating_mul(16),
            failback_reset: Duration::from_secs(3600),
        }
    }
}

impl Policy {
    /// `failback_after` after `level` failbacks in a row: doubled each time,
    /// up to `failback_after_max`.
    pub fn damped(&self, level: u32) -> Duration {
        let factor = 1u32.checked_shl(level).unwrap_or(u32::MAX);
        self.failback_after
            .saturating_mul(factor)
            .min(self.failback_after_max.max(self.failback_after))
    }
}

/// Why no answer may move right now, whatever the targets' health says: the
/// evidence points at the prober, not at the Regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Every target's checks began failing within one interval of each other.
    Isolated,
    /// A canary check (something that is not a Region) is failing.
    Canary,
}

/// A target's health as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetHealth {
    pub healthy: bool,
    /// When it last became healthy (meaningful only when `healthy`).
    pub since: Instant,
    /// The prober reached it while the answered target was failing (or it
    /// has no probe results to judge by). Only a confirmed target may take
    /// over from a failed one: otherwise the prober may be the one cut off.
    pub confirmed: bool,
    /// Seen reaching it while the answered target failed, but its latest
    /// round failed: a failover waits for it rather than pass over it to a
    /// lower target (which would cost a second move back).
    pub pending: bool,
}

/// What an alias answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    /// The connection identifier of the target at this index.
    Target(usize),
    NoData,
    ServFail,
}

/// Why an answer was chosen; shown in logs and, later, in "why".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The first decision: the highest-priority healthy target.
    Initial,
    /// Still answering the best healthy target.
    Steady,
    /// The answered target went down; moved to the best healthy one.
    Failover { from: usize },
    /// A better target has been healthy for `failback_after`; moved back.
    Failback { from: usize },
    /// A better target is healthy but has not been for `failback_after` yet.
    FailbackPending { better: usize, at: Instant },
    /// A better target is healthy, and failback is manual.
    FailbackManual { better: usize },
    /// No target is healthy; the `all_down` policy chose.
    AllDown(AllDown),
    /// An operator pinned the alias to this target.
    Override,
    /// The answered target is unhealthy, but the prober has not yet reached
    /// the candidate while the answered one was failing.
    Unconfirmed { from: usize, candidate: usize },
    /// The evidence points at the prober; the answer is kept.
    Held(Hold),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Initial => write!(f, "highest-priority healthy target at start"),
            Reason::Steady => write!(f, "highest-priority healthy target"),
            Reason::Failover { from } => write!(f, "failover: target #{from} is unhealthy"),
            Reason::Failback { from } => {
                write!(
                    f,
                    "failback from target #{from}: better target healthy for failback_after"
                )
            }
            Reason::FailbackPending { better, .. } => {
                write!(
                    f,
                    "target #{better} is healthy again; failback waits for failback_after"
                )
            }
            Reason::FailbackManual { better } => {
                write!(f, "target #{better} is healthy again; failback is manual")
            }
            Reason::AllDown(AllDown::Primary) => {
                write!(f, "all targets unhealthy: answering primary")
            }
            Reason::AllDown(AllDown::Last) => {
                write!(f, "all targets unhealthy: keeping last answer")
            }
            Reason::AllDown(AllDown::NoData) => {
                write!(f, "all targets unhealthy: answering NODATA")
            }
            Reason::AllDown(AllDown::ServFail) => {
                write!(f, "all targets unhealthy: answering SERVFAIL")
            }
            Reason::Override => write!(f, "pinned by an operator override"),
            Reason::Unconfirmed { from, candidate } => write!(
                f,
                "target #{from} is unhealthy; waiting until target #{candidate} answers a probe while #{from} fails (the prober may be the one cut off)"
            ),
            Reason::Held(Hold::Isolated) => write!(
                f,
                "prober isolated: every target began failing within one interval; keeping the answer"
            ),
            Reason::Held(Hold::Canary) => {
                write!(
                    f,
                    "canary check failing: the prober is cut off; keeping the answer"
                )
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub answer: Answer,
    pub reason: Reason,
    /// When the decision could change with no new health data (a pending failback).
    pub recheck_at: Option<Instant>,
}

/// Chooses what an alias answers.
///
/// `previous` is what it answered before (None at start). Route 53 rules, plus
/// stickiness: moving away from a healthy target to a better one waits for
/// `failback_after` (or an operator, with manual failback), because every move
/// makes WorkSpaces users log in again in another Region.
pub fn decide(
    policy: &Policy,
    targets: &[TargetHealth],
    previous: Option<Answer>,
    hold: Option<Hold>,
    now: Instant,
) -> Decision {
    let settled = |answer, reason| Decision {
        answer,
        reason,
        recheck_at: None,
    };
    let known = |a: Answer| match a {
        Answer::Target(i) => i < targets.len(),
        Answer::NoData | Answer::ServFail => true,
    };
    if let Some(hold) = hold
        && let Some(kept) = previous.filter(|&a| known(a))
    {
        return settled(kept, Reason::Held(hold));
    }
    let Some(best) = targets.iter().position(|t| t.healthy) else {
        let answer = match policy.all_down {
            AllDown::Primary => Answer::Target(0),
            AllDown::Last => match previous {
                Some(Answer::Target(i)) if i < targets.len() => Answer::Target(i),
                _ => Answer::Target(0),
            },
            AllDown::NoData => Answer::NoData,
            AllDown::ServFail => Answer::ServFail,
        };
        return settled(answer, Reason::AllDown(policy.all_down));
    };
    let current = match previous {
        None => return settled(Answer::Target(best), Reason::Initial),
        Some(Answer::Target(i)) if i < targets.len() && targets[i].healthy => i,
        Some(Answer::Target(i)) if i < targets.len() => {
            // Only to a destination the prober has been seen to reach while
            // the answered target failed.
            let to = targets
                .iter()
                .position(|t| t.healthy && (t.confirmed || t.pending));
            return match to {
                Some(to) if targets[to].confirmed => {
                    settled(Answer::Target(to), Reason::Failover { from: i })
                }
                Some(to) => settled(
                    Answer::Target(i),
                    Reason::Unconfirmed {
                        from: i,
                        candidate: to,
                    },
                ),
                None => settled(
                    Answer::Target(i),
                    Reason::Unconfirmed {
                        from: i,
                        candidate: best,
                    },
                ),
            };
        }
        // Recovering from an all-down answer (NODATA, SERVFAIL, or an unhealthy
        // target): the best healthy target at once.
        _ => return settled(Answer::Target(best), Reason::Steady),
    };
    if best == current {
        // Answering a failover target because the better ones are still
        // down: say so, as long as it lasts.
        let reason = if current > 0 {
            Reason::Failover { from: 0 }
        } else {
            Reason::Steady
        };
        return settled(Answer::Target(current), reason);
    }
    // A better target than the current (healthy) one is healthy.
    if policy.failback == Failback::Manual {
        return settled(
            Answer::Target(current),
            Reason::FailbackManual { better: best },
        );
    }
    // Move to the best target that has been healthy long enough, if any. A
    // wait past the clock's range never comes due.
    let due = |i: usize| targets[i].since.checked_add(policy.failback_after);
    // When the next healthy target better than `than` comes due: after a
    // move, a still better one keeps its own timer.
    let next_due = |than: usize| {
        (0..than)
            .filter(|&i| targets[i].healthy)
            .filter_map(due)
            .filter(|&at| at > now)
            .min()
    };
    let ready = (0..current).find(|&i| targets[i].healthy && due(i).is_some_and(|at| at <= now));
    if let Some(i) = ready {
        return Decision {
            answer: Answer::Target(i),
            reason: Reason::Failback { from: current },
            recheck_at: next_due(i),
        };
    }
    let Some(at) = next_due(current) else {
        return settled(Answer::Target(current), Reason::Steady);
    };
    Decision {
        answer: Answer::Target(current),
        reason: Reason::FailbackPending { better: best, at },
        recheck_at: Some(at),
    }
}

#[cfg(test)]
mod tests;
