//! What one secondary of one zone is known to serve, judged against our
//! serial. Pure: answers and the clock come in as arguments, transitions
//! worth a log line (and a webhook) come out.

use std::time::{Duration, Instant};

use crate::serial::serial_gt;

/// How a secondary stands against our serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Not asked yet.
    Unknown,
    InSync,
    /// Serving an older serial: `lag` serials behind (RFC 1982 distance).
    Behind {
        lag: u32,
    },
    /// Serving a serial later than ours (or half the serial space away):
    /// it will not transfer from us until our serial passes its own.
    Ahead,
    /// No usable answer: timeout, network error, an error RCODE, no SOA.
    Unreachable {
        error: String,
    },
}

impl Standing {
    pub fn word(&self) -> &'static str {
        match self {
            Standing::Unknown => "unknown",
            Standing::InSync => "in_sync",
            Standing::Behind { .. } => "behind",
            Standing::Ahead => "ahead",
            Standing::Unreachable { .. } => "unreachable",
        }
    }

    /// Serials behind; 0 unless behind.
    pub fn lag(&self) -> u32 {
        match self {
            Standing::Behind { lag } => *lag,
            _ => 0,
        }
    }

    /// The standings a warning is about, as distinct kinds: one warning
    /// per kind per episode.
    fn trouble(&self) -> Option<Trouble> {
        match self {
            Standing::Behind { .. } => Some(Trouble::Behind),
            Standing::Ahead => Some(Trouble::Ahead),
            Standing::Unreachable { .. } => Some(Trouble::Unreachable),
            Standing::Unknown | Standing::InSync => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    Behind,
    Ahead,
    Unreachable,
}

/// What an answer changed that operators hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Out of sync (behind, ahead or unreachable) for longer than the bound.
    OutOfSync,
    /// In sync again after an `OutOfSync`.
    InSync,
}

/// Compares their serial with ours.
pub fn standing(theirs: u32, ours: u32) -> Standing {
    if theirs == ours {
        Standing::InSync
    } else if serial_gt(ours, theirs) {
        Standing::Behind {
            lag: ours.wrapping_sub(theirs),
        }
    } else {
        Standing::Ahead
    }
}

#[derive(Debug, Clone)]
pub struct Replica {
    pub standing: Standing,
    /// Their serial at the last answer.
    pub theirs: Option<u32>,
    /// Our serial when last asked.
    pub ours: Option<u32>,
    /// Since when the standing holds. Behind: since we published the
    /// first serial they lack, so the lag's age counts from the change.
    pub since: Instant,
    pub checked: Option<Instant>,
    /// When we first published a serial this secondary has not been seen
    /// with; None while it is known to be in sync.
    pending: Option<Instant>,
    /// The trouble already warned about in this episode.
    warned: Option<Trouble>,
}

impl Replica {
    pub fn new(now: Instant) -> Replica {
        Replica {
            standing: Standing::Unknown,
            theirs: None,
            ours: None,
            since: now,
            checked: None,
            pending: None,
            warned: None,
        }
    }

    /// We published a new serial at `at`.
    pub fn changed(&mut self, at: Instant) {
        self.pending.get_or_insert(at);
    }

    /// An answer to our SOA query (their serial, or why there was none)
    /// while `ours` was served; `warn_after` is how long trouble may last
    /// before it is reported.
    pub fn observe(
        &mut self,
        answer: Result<u32, String>,
        ours: u32,
        now: Instant,
        warn_after: Duration,
    ) -> Option<Transition> {
        let next = match &answer {
            Ok(theirs) => standing(*theirs, ours),
            Err(e) => Standing::Unreachable { error: e.clone() },
        };
        if let Ok(theirs) = answer {
            self.theirs = Some(theirs);
        }
        self.ours = Some(ours);
        self.checked = Some(now);
        let same_kind = std::mem::discriminant(&next) == std::mem::discriminant(&self.standing);
        match &next {
            Standing::Behind { .. } => self.since = *self.pending.get_or_insert(now),
            _ if !same_kind => self.since = now,
            _ => {}
        }
        if next == Standing::InSync {
            self.pending = None;
        }
        self.standing = next;
        match self.standing.trouble() {
            None => self.warned.take().map(|_| Transition::InSync),
            Some(t)
                if self.warned != Some(t)
                    && now.saturating_duration_since(self.since) >= warn_after =>
            {
                self.warned = Some(t);
                Some(Transition::OutOfSync)
            }
            Some(_) => None,
        }
    }

    /// How long the current standing has held.
    pub fn lasted(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(120);

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn lag_is_the_serial_arithmetic_distance() {
        assert_eq!(standing(7, 7), Standing::InSync);
        assert_eq!(standing(5, 7), Standing::Behind { lag: 2 });
        // Across the wrap: 0xFFFF_FFFE then 0, 1: three serials behind.
        assert_eq!(standing(u32::MAX - 1, 1), Standing::Behind { lag: 3 });
        assert_eq!(standing(8, 7), Standing::Ahead);
        assert_eq!(standing(0, u32::MAX), Standing::Ahead);
        // Exactly half the space away is undefined in RFC 1982: not behind.
        assert_eq!(standing(0, 1 << 31), Standing::Ahead);
        // The largest lag there is.
        assert_eq!(
            standing(1, 1 << 31),
            Standing::Behind { lag: (1 << 31) - 1 }
        );
        assert_eq!(Standing::Behind { lag: 4 }.lag(), 4);
        assert_eq!(Standing::Ahead.lag(), 0);
    }

    #[test]
    fn behind_counts_from_the_change_they_lack_and_warns_once_past_the_bound() {
        let t0 = Instant::now();
        let mut r = Replica::new(t0);
        assert_eq!(r.observe(Ok(5), 5, secs(t0, 1), BOUND), None);
        assert_eq!(r.standing, Standing::InSync);
        // We publish 6 at 10 s and 7 at 20 s; they stay at 5.
        r.changed(secs(t0, 10));
        r.changed(secs(t0, 20));
        assert_eq!(r.observe(Ok(5), 7, secs(t0, 21), BOUND), None);
        assert_eq!(r.standing, Standing::Behind { lag: 2 });
        assert_eq!(
            r.since,
            secs(t0, 10),
            "behind since the first change they lack"
        );
        assert_eq!(r.observe(Ok(5), 7, secs(t0, 129), BOUND), None);
        assert_eq!(
            r.observe(Ok(6), 7, secs(t0, 130), BOUND),
            Some(Transition::OutOfSync)
        );
        assert_eq!(r.standing, Standing::Behind { lag: 1 });
        assert_eq!(r.since, secs(t0, 10));
        // Once per episode, however long it lasts.
        assert_eq!(r.observe(Ok(6), 7, secs(t0, 200), BOUND), None);
        assert_eq!(r.observe(Ok(6), 7, secs(t0, 900), BOUND), None);
        assert_eq!(
            r.observe(Ok(7), 7, secs(t0, 901), BOUND),
            Some(Transition::InSync)
        );
        assert_eq!(
            (r.standing.clone(), r.since),
            (Standing::InSync, secs(t0, 901))
        );
        assert_eq!(r.observe(Ok(7), 7, secs(t0, 960), BOUND), None);
        assert_eq!(r.since, secs(t0, 901), "in sync since it caught up");
        assert_eq!(
            (r.theirs, r.ours, r.checked),
            (Some(7), Some(7), Some(secs(t0, 960)))
        );
    }

    #[test]
    fn catching_up_within_the_bound_says_nothing() {
        let t0 = Instant::now();
        let mut r = Replica::new(t0);
        r.changed(t0);
        assert_eq!(r.observe(Ok(4), 5, secs(t0, 1), BOUND), None);
        assert_eq!(r.standing.word(), "behind");
        assert_eq!(r.observe(Ok(5), 5, secs(t0, 3), BOUND), None);
        assert_eq!(r.standing.word(), "in_sync");
        // The next change starts a fresh count.
        r.changed(secs(t0, 500));
        assert_eq!(r.observe(Ok(5), 6, secs(t0, 501), BOUND), None);
        assert_eq!(r.since, secs(t0, 500));
    }

    #[test]
    fn unreachable_keeps_the_error_and_its_start_and_warns_once() {
        let t0 = Instant::now();
        let mut r = Replica::new(t0);
        r.observe(Ok(5), 5, t0, BOUND);
        assert_eq!(
            r.observe(Err("refused".into()), 5, secs(t0, 10), BOUND),
            None
        );
        assert_eq!(
            r.standing,
            Standing::Unreachable {
                error: "refused".into()
            }
        );
        assert_eq!(
            r.observe(Err("timeout".into()), 5, secs(t0, 70), BOUND),
            None
        );
        assert_eq!(r.since, secs(t0, 10), "since the first failure");
        assert_eq!(r.theirs, Some(5), "the last serial seen stays");
        assert_eq!(
            r.observe(Err("timeout".into()), 5, secs(t0, 130), BOUND),
            Some(Transition::OutOfSync)
        );
        assert_eq!(
            r.observe(Err("timeout".into()), 5, secs(t0, 190), BOUND),
            None
        );
        // Back, but behind: a new kind of trouble, counted from the change.
        r.changed(secs(t0, 150));
        assert_eq!(r.observe(Ok(5), 6, secs(t0, 200), BOUND), None);
        assert_eq!(r.since, secs(t0, 150));
        assert_eq!(
            r.observe(Ok(5), 6, secs(t0, 270), BOUND),
            Some(Transition::OutOfSync)
        );
        assert_eq!(
            r.observe(Ok(6), 6, secs(t0, 271), BOUND),
            Some(Transition::InSync)
        );
    }

    #[test]
    fn a_short_outage_is_no_news_either_way() {
        let t0 = Instant::now();
        let mut r = Replica::new(t0);
        r.observe(Ok(5), 5, t0, BOUND);
        assert_eq!(r.observe(Err("x".into()), 5, secs(t0, 60), BOUND), None);
        assert_eq!(r.observe(Ok(5), 5, secs(t0, 120), BOUND), None);
        assert_eq!(r.since, secs(t0, 120));
    }

    #[test]
    fn ahead_is_trouble_from_the_first_answer_that_shows_it() {
        let t0 = Instant::now();
        let mut r = Replica::new(t0);
        assert_eq!(r.observe(Ok(9), 5, secs(t0, 5), BOUND), None);
        assert_eq!(r.standing, Standing::Ahead);
        assert_eq!(r.since, secs(t0, 5));
        assert_eq!(
            r.observe(Ok(9), 5, secs(t0, 125), BOUND),
            Some(Transition::OutOfSync)
        );
        assert_eq!(r.standing.lag(), 0);
    }

    #[test]
    fn a_secondary_never_in_sync_is_behind_since_first_seen_so() {
        let t0 = Instant::now();
        let mut r = Replica::new(t0);
        assert_eq!(r.observe(Ok(3), 5, secs(t0, 1), BOUND), None);
        assert_eq!(r.since, secs(t0, 1));
        assert_eq!(r.lasted(secs(t0, 11)), Duration::from_secs(10));
    }
}
