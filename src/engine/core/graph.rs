//! Who depends on whom in a configuration: composites above each check,
//! aliases above each leaf check, each target's leaves, each alias's
//! isolation window and the canaries. Built once per configuration so an
//! event touches only what depends on it.

use std::time::Duration;

use crate::config::{Config, ProbeSpec, Timing};

/// Who depends on whom, computed once per configuration.
#[derive(Debug, Clone, Default)]
pub(super) struct Graph {
    /// Per check: the composites it is a member of.
    pub(super) parents: Vec<Vec<usize>>,
    /// Per leaf check: the aliases whose targets depend on it.
    pub(super) aliases_of: Vec<Vec<usize>>,
    /// Per alias, per target: the leaf checks under its checks.
    pub(super) leaves: Vec<Vec<Vec<usize>>>,
    /// Per alias: how far apart the targets' first failures may be and
    /// still be one event (a round's interval plus its longest duration).
    pub(super) window: Vec<Duration>,
    pub(super) canaries: Vec<usize>,
}

pub(super) fn is_leaf(spec: &ProbeSpec) -> bool {
    !matches!(spec, ProbeSpec::Composite { .. })
}

/// Probed here (not pushed from elsewhere): its results say something
/// about this prober's view of the network.
pub(super) fn is_probed(spec: &ProbeSpec) -> bool {
    !matches!(
        spec,
        ProbeSpec::Composite { .. } | ProbeSpec::External { .. }
    )
}

/// How long one round can take: every attempt may run into its timeout.
pub fn round_span(timing: &Timing) -> Duration {
    timing.timeout.saturating_mul(attempts(timing))
}

pub fn attempts(timing: &Timing) -> u32 {
    timing.attempts.max(1)
}

fn is_canary(spec: &crate::config::CheckSpec) -> bool {
    spec.canary
}

impl Graph {
    pub(super) fn build(config: &Config) -> Graph {
        let n = config.checks.len();
        let mut parents = vec![Vec::new(); n];
        for (i, c) in config.checks.iter().enumerate() {
            if let ProbeSpec::Composite { members, .. } = &c.probe {
                for &m in members {
                    if m < n && !parents[m].contains(&i) {
                        parents[m].push(i);
                    }
                }
            }
        }
        let mut aliases_of = vec![Vec::new(); n];
        let mut leaves = Vec::new();
        let mut window = Vec::new();
        for (a, alias) in config.aliases.iter().enumerate() {
            let mut per_target = Vec::new();
            let mut widest = Duration::ZERO;
            for t in &alias.targets {
                let mut found = Vec::new();
                for &c in &t.checks {
                    collect_leaves(config, c, &mut found, 0);
                }
                for &l in &found {
                    if !aliases_of[l].contains(&a) {
                        aliases_of[l].push(a);
                    }
                    let timing = &config.checks[l].timing;
                    widest = widest.max(timing.interval.saturating_add(round_span(timing)));
                }
                per_target.push(found);
            }
            leaves.push(per_target);
            window.push(widest);
        }
        let canaries = (0..n).filter(|&i| is_canary(&config.checks[i])).collect();
        Graph {
            parents,
            aliases_of,
            leaves,
            window,
            canaries,
        }
    }
}

/// The leaf checks under check `c`; config validation rules out cycles, the
/// depth bound keeps a bad config from recursing without end.
fn collect_leaves(config: &Config, c: usize, out: &mut Vec<usize>, depth: usize) {
    let Some(spec) = config.checks.get(c) else {
        return;
    };
    match &spec.probe {
        ProbeSpec::Composite { members, .. } if depth < 64 => {
            for &m in members {
                collect_leaves(config, m, out, depth + 1);
            }
        }
        ProbeSpec::Composite { .. } => {}
        _ => {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
}
