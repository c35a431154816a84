//! The open-files limit: raised to the hard limit at start, and the TCP
//! connection cap derived from it so that DNS clients can never take the
//! file descriptors health probes, state files, transfers and the admin API
//! need.

use rlimit::Resource;

/// What `raise` found and left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now in force.
    pub soft: u64,
    pub hard: u64,
}

/// Linux refuses a soft NOFILE limit above `fs.nr_open` (1,048,576 unless
/// changed); an "unlimited" hard limit is taken as that.
const NR_OPEN: u64 = 1 << 20;

/// Raises the soft RLIMIT_NOFILE to the hard limit and says what it did.
/// Failing to raise it is not fatal: the caps are then derived from the
/// limit in force.
pub fn raise() -> FdLimit {
    let (before, hard) = match Resource::NOFILE.get() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-files limit; assuming 1024");
            return FdLimit {
                before: 1024,
                soft: 1024,
                hard: 1024,
            };
        }
    };
    let target = hard.min(NR_OPEN).max(before);
    let soft = if target > before {
        match Resource::NOFILE.set(target, hard) {
            Ok(()) => target,
            Err(e) => {
                tracing::warn!(error = %e, soft = before, hard, "cannot raise the open-files limit");
                before
            }
        }
    } else {
        before
    };
    tracing::info!(
        soft_before = before,
        soft,
        hard,
        "open-files limit (RLIMIT_NOFILE)"
    );
    FdLimit { before, soft, hard }
}

/// File descriptors kept out of reach of TCP clients: a fixed 256 (stdio,
/// the runtime, listeners, admin API connections, state files, transfers,
/// NOTIFY, webhooks), two per health check (a probe's socket, or a command
/// check's pipes), and the sockets the DNS front holds (one UDP socket per
/// worker and one TCP listener per listen address).
pub fn reserve(checks: usize, listen: usize, udp_workers: usize) -> u64 {
    let checks = u64::try_from(checks).unwrap_or(u64::MAX);
    let sockets =
        u64::try_from(listen.saturating_mul(udp_workers.saturating_add(1))).unwrap_or(u64::MAX);
    256u64
        .saturating_add(checks.saturating_mul(2))
        .saturating_add(sockets)
}

/// The default `tcp_max_connections` never exceeds this, however high the
/// open-files limit: each connection is a task and kernel buffers.
pub const DEFAULT_MAX_CAP: usize = 16_384;
/// Nor goes below this, even when the limit leaves no room (then it warns).
const DEFAULT_MIN: usize = 16;

/// The TCP connection cap: the configured one, or the open-files limit less
/// the reserve (at most `DEFAULT_MAX_CAP`). A configured cap that would eat
/// into the reserve is lowered, with a warning saying how to allow more.
pub fn tcp_cap(configured: Option<usize>, soft: u64, reserve: u64) -> usize {
    let room = usize::try_from(soft.saturating_sub(reserve)).unwrap_or(usize::MAX);
    match configured {
        Some(n) if n <= room => n,
        Some(n) => {
            let n2 = room.max(DEFAULT_MIN).min(n);
            tracing::warn!(
                tcp_max_connections = n,
                open_files = soft,
                reserve,
                using = n2,
                "tcp_max_connections would leave too few file descriptors for probes, state files and the admin API; raise the open-files limit (systemd: LimitNOFILE=) to allow more"
            );
            n2
        }
        None if room < DEFAULT_MIN => {
            tracing::warn!(
                open_files = soft,
                reserve,
                using = DEFAULT_MIN,
                "the open-files limit leaves almost no room for TCP clients; raise it (systemd: LimitNOFILE=)"
            );
            DEFAULT_MIN
        }
        None => room.min(DEFAULT_MAX_CAP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_keeps_the_reserve() {
        let r = reserve(2, 1, 2);
        assert_eq!(r, 256 + 4 + 3);
        assert_eq!(tcp_cap(None, 1024, r), 1024 - 263);
        assert_eq!(tcp_cap(None, 1 << 20, r), DEFAULT_MAX_CAP);
        assert_eq!(tcp_cap(None, 200, r), DEFAULT_MIN);
    }

    #[test]
    fn a_configured_cap_is_kept_unless_it_eats_the_reserve() {
        assert_eq!(tcp_cap(Some(100), 1024, 263), 100);
        assert_eq!(tcp_cap(Some(5000), 1024, 263), 761);
        assert_eq!(tcp_cap(Some(5), 100, 263), 5);
    }

    #[test]
    fn huge_inputs_saturate() {
        assert_eq!(reserve(usize::MAX, usize::MAX, usize::MAX), u64::MAX);
        assert_eq!(tcp_cap(None, 0, u64::MAX), DEFAULT_MIN);
    }
}
