//! Deterministic simulation: the real decision core (rise/fall machines,
//! composites, confirmation, isolation, damping, `decide`) driven by
//! scripted or random probe outcomes over virtual time. Rounds are
//! scheduled start to start on a fixed phase per check, as `health` runs
//! them; each attempt of a round meets the world as it is at that instant.
//!
//! `cargo test --release sim_ -- --nocapture` prints the figures the README
//! quotes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{Core, attempts};
use crate::config::Config;
use crate::decide::Answer;
use crate::health::Outcome;

pub const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n\
                        @ IN NS ns1\nns1 IN A 127.0.0.1\n";

pub fn config(text: &str) -> Arc<Config> {
    let full = format!(
        "[server]\nstate_dir = \"/nonexistent-sim\"\n\n[[zone]]\norigin = \"example.com\"\nfile = \"z.zone\"\n\n{text}"
    );
    Arc::new(
        crate::config::validate(Path::new("sim.toml"), &full, &|_: &Path| {
            Ok(ZONE.to_string())
        })
        .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// What an endpoint does at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Up,
    /// Refused or 503: the attempt fails at once.
    Refused,
    /// No answer: the attempt runs into its timeout.
    Hang,
}

/// SplitMix64: deterministic, so every run sees the same "random" world.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A round of check `.0` starts.
    Start(usize),
    /// A round of check `.0` ends, ok or not.
    End(usize, bool),
}

/// An answer change seen in the simulation.
#[derive(Debug, Clone, Copy)]
pub struct Move {
    pub at: Duration,
    #[allow(dead_code)]
    pub alias: usize,
    pub to: Answer,
}

pub struct Sim {
    pub core: Core,
    pub base: Instant,
    pub now: Duration,
    pub rng: Rng,
    /// Per check: independent loss per attempt (a lost attempt times out).
    pub loss: Vec<f64>,
    /// The world: what check `i`'s endpoint does at a virtual instant.
    pub world: Box<dyn FnMut(usize, Duration) -> Endpoint>,
    queue: BinaryHeap<Reverse<(Duration, Event)>>,
    pub moves: Vec<Move>,
    pub rounds: u64,
}

impl Sim {
    /// A sim whose first round has run (all checks start as the server
    /// does: a first round, then periodic rounds on a random phase).
    pub fn new(config: Arc<Config>, seed: u64) -> Sim {
        let base = Instant::now();
        let mut rng = Rng::new(seed);
        let n = config.checks.len();
        let mut queue = BinaryHeap::new();
        for (i, c) in config.checks.iter().enumerate() {
            if matches!(
                c.probe,
                crate::config::ProbeSpec::Composite { .. }
                    | crate::config::ProbeSpec::External { .. }
            ) {
                continue;
            }
            let phase = c.timing.interval.mul_f64(rng.unit());
            queue.push(Reverse((phase, Event::Start(i))));
        }
        let core = Core::new(config, base);
        Sim {
            core,
            base,
            now: Duration::ZERO,
            rng,
            loss: vec![0.0; n],
            world: Box::new(|_, _| Endpoint::Up),
            queue,
            moves: Vec::new(),
            rounds: 0,
        }
    }

    /// The first round `serve` runs before answering: every probed check
    /// at once, with `max(fall, attempts)` quick attempts.
    pub fn first_round(&mut self) {
        let at = self.base + self.now;
        for i in 0..self.core.config().checks.len() {
            let spec = &self.core.config().checks[i];
            if matches!(
                spec.probe,
                crate::config::ProbeSpec::Composite { .. }
                    | crate::config::ProbeSpec::External { .. }
            ) {
                continue;
            }
            let tries = spec.timing.fall.max(attempts(&spec.timing));
            let (ok, _) = self.round_of(i, tries);
            let outcome = Outcome {
                ok,
                latency: Duration::ZERO,
                detail: String::new(),
            };
            self.core.observe(i, outcome, at);
        }
    }

    /// A world where check `i`'s endpoint refuses while `down(i, t)`.
    pub fn refuse_when(&mut self, mut down: impl FnMut(usize, Duration) -> bool + 'static) {
        self.world = Box::new(move |i, t| {
            if down(i, t) {
                Endpoint::Refused
            } else {
                Endpoint::Up
            }
        });
    }

    /// A first start: the first round, then the first decisions.
    pub fn boot(&mut self) {
        self.first_round();
        let fresh = vec![None; self.core.aliases().len()];
        self.start(&fresh);
    }

    /// A restart: what this sim's core knows is captured as `decisions.json`
    /// would hold it, and resumed into a new core `after` later (virtual
    /// time) while the wall clock moved `wall_after`. Returns the new sim
    /// (not started: call `start` or `first_round` first), the resumed
    /// answers and how many checks resumed.
    pub fn restarted(
        &self,
        after: Duration,
        wall_after: Duration,
        seed: u64,
    ) -> (Sim, Vec<Option<Answer>>, usize) {
        use super::memory;
        const WALL: u64 = 1_000_000_000_000;
        let at = self.base + self.now;
        let config = self.core.config().clone();
        let prints = memory::fingerprints(&config);
        let captured = memory::capture(&self.core, &prints, at, WALL);
        let wall_later = WALL.saturating_add(u64::try_from(wall_after.as_millis()).unwrap_or(0));
        let mut core = Core::new(config.clone(), at + after);
        let (previous, resumed) = memory::resume(&mut core, &captured, at + after, wall_later);
        let mut next = Sim::new(config, seed);
        next.core = core;
        next.base = self.base;
        next.now = self.now + after;
        (next, previous, resumed)
    }

    /// Decides the first answers; `previous` as resumed from memory.
    pub fn start(&mut self, previous: &[Option<Answer>]) {
        let at = self.base + self.now;
        self.core.start(previous, at, 0);
    }

    pub fn answer(&self, alias: usize) -> Answer {
        self.core.aliases()[alias].decision.answer
    }

    /// One round of check `i` starting now: each attempt meets the world as
    /// it is when the attempt starts. Returns (ok, duration).
    fn round(&mut self, i: usize) -> (bool, Duration) {
        let tries = attempts(&self.core.config().checks[i].timing);
        self.round_of(i, tries)
    }

    fn round_of(&mut self, i: usize, tries: u32) -> (bool, Duration) {
        let timing = self.core.config().checks[i].timing;
        let mut spent = Duration::ZERO;
        for _ in 0..tries {
            let at = self.now + spent;
            match (self.world)(i, at) {
                Endpoint::Up if self.rng.unit() >= self.loss[i] => {
                    return (true, spent + Duration::from_millis(20));
                }
                Endpoint::Refused => spent += Duration::from_millis(1),
                Endpoint::Up | Endpoint::Hang => spent += timing.timeout,
            }
        }
        (false, spent)
    }

    /// Runs until `until` (virtual): rounds, their results, and timers.
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let next_event = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self
                .core
                .next_recheck()
                .map(|at| at.saturating_duration_since(self.base));
            let (t, timer) = match (next_event, next_timer) {
                (Some(e), Some(r)) if r < e => (r, true),
                (Some(e), _) => (e, false),
                (None, Some(r)) => (r, true),
                (None, None) => break,
            };
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            let at = self.base + self.now;
            if timer {
                self.core.fire(at);
                self.settle();
                continue;
            }
            let Some(Reverse((_, event))) = self.queue.pop() else {
                break;
            };
            match event {
                Event::Start(i) => {
                    let interval = self.core.config().checks[i].timing.interval;
                    let (ok, took) = self.round(i);
                    let end = self.now + took;
                    self.queue.push(Reverse((end, Event::End(i, ok))));
                    // Start to start; a slot the round overran is skipped.
                    let mut next = self.now + interval;
                    while next < end {
                        next += interval;
                    }
                    self.queue.push(Reverse((next, Event::Start(i))));
                }
                Event::End(i, ok) => {
                    self.rounds += 1;
                    let outcome = Outcome {
                        ok,
                        latency: Duration::ZERO,
                        detail: String::new(),
                    };
                    self.core.observe(i, outcome, at);
                    self.settle();
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn settle(&mut self) {
        let at = self.base + self.now;
        for c in self.core.reevaluate(at, 0) {
            if c.after.answer != c.before.answer {
                self.moves.push(Move {
                    at: self.now,
                    alias: c.alias,
                    to: c.after.answer,
                });
            }
        }
    }
}

/// The largest number of moves within any window of `window`.
pub fn max_in_window(moves: &[Move], window: Duration) -> usize {
    let times: Vec<Duration> = moves.iter().map(|m| m.at).collect();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests;
