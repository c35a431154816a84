//! Response rate limiting for UDP, in the manner of Knot's and BIND's RRL.
//!
//! Every UDP response is counted against a token bucket chosen by a keyed
//! hash of (source prefix, response class, class name): a positive answer
//! counts per query name and type, a negative answer per zone, a referral per
//! delegation point, every error in one flow per prefix. A bucket holds
//! `responses_per_second` tokens and refills once a second; a response finding
//! it empty is dropped, and every `slip`-th dropped response goes out as a
//! bare truncated answer so a real client behind a spoofed prefix retries over
//! TCP (which cannot be spoofed).
//!
//! The table is a fixed array of atomics: no lock, no allocation, the same
//! memory whatever an attacker sends. Flows that hash to the same bucket share
//! it (an attacker cannot aim at one: the hash key is random per process).
//! Time is whole seconds from the coarse monotonic clock, passed in, so the
//! limiter itself is a pure function of its inputs and the table.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ipnet::IpNet;
use siphasher::sip::SipHasher13;

/// Buckets in the table (8 bytes each: 2 MiB).
pub const TABLE_SIZE: usize = 1 << 18;
const HEADER: usize = 12;
/// Attempts at updating a contended bucket before deciding without storing.
const CAS_TRIES: usize = 4;

/// The `[rrl]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrlConfig {
    /// Responses per second per flow; 0 turns rate limiting off.
    pub responses_per_second: u32,
    /// Every `slip`-th dropped response is sent truncated; 0 never.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Sources never limited.
    pub exempt: Vec<IpNet>,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            responses_per_second: 200,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: Vec::new(),
        }
    }
}

/// What kind of response a flow is made of (as Knot and BIND classify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// NOERROR with answers: per query name and type.
    Answer = 0,
    /// NOERROR, authoritative, no answer: per query name.
    NoData = 1,
    /// NXDOMAIN: per zone (the SOA's owner).
    NxDomain = 2,
    /// A delegation: per zone cut.
    Referral = 3,
    /// Everything else (REFUSED, FORMERR, SERVFAIL, ...): one flow per prefix.
    Error = 4,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Answer,
        Class::NoData,
        Class::NxDomain,
        Class::Referral,
        Class::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Class::Answer => "answer",
            Class::NoData => "nodata",
            Class::NxDomain => "nxdomain",
            Class::Referral => "referral",
            Class::Error => "error",
        }
    }
}

/// What to do with a response that exceeded its flow's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Drop,
    /// Send a truncated answer instead.
    Slip,
}

pub struct Limiter {
    buckets: Box<[AtomicU64]>,
    mask: usize,
    rate: u32,
    slip: u32,
    v4_mask: u32,
    v6_mask: u128,
    exempt: Vec<IpNet>,
    key: (u64, u64),
    /// The second of the last "limiting" log line (one a second at most).
    logged: AtomicU32,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Limiter({}/s, slip {})", self.rate, self.slip)
    }
}

/// Whole seconds from a monotonic clock that costs no system call (the
/// kernel's coarse clock, read through the vDSO).
pub fn coarse_seconds() -> u32 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    // Truncation is fine: only differences between readings matter.
    t.tv_sec as u32
}

impl Limiter {
    /// None when `responses_per_second` is 0 (rate limiting off).
    pub fn new(config: &RrlConfig) -> Option<Limiter> {
        Limiter::with_table(config, TABLE_SIZE, (rand::random(), rand::random()))
    }

    /// A limiter with `size` buckets (rounded up to a power of two) and a
    /// given hash key.
    pub fn with_table(config: &RrlConfig, size: usize, key: (u64, u64)) -> Option<Limiter> {
        if config.responses_per_second == 0 {
            return None;
        }
        let size = size.max(1).next_power_of_two();
        let v4 = u32::from(config.ipv4_prefix.min(32));
        let v6 = u32::from(config.ipv6_prefix.min(128));
        Some(Limiter {
            buckets: (0..size).map(|_| AtomicU64::new(0)).collect(),
            mask: size - 1,
            rate: config.responses_per_second,
            slip: config.slip,
            v4_mask: u32::MAX.checked_shl(32 - v4).unwrap_or(0),
            v6_mask: u128::MAX.checked_shl(128 - v6).unwrap_or(0),
            exempt: config.exempt.clone(),
            key,
            logged: AtomicU32::new(u32::MAX),
        })
    }

    /// Counts `response` (the wire bytes about to be sent to `ip`) at second
    /// `now`. None: send it. Some(class): its flow is over the rate.
    pub fn check(&self, ip: IpAddr, response: &[u8], now: u32) -> Option<Class> {
        if !self.exempt.is_empty() && self.exempt.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        let mut name = [0u8; 255];
        let (class, name_len, qtype) = classify(response, &mut name);
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        match ip {
            IpAddr::V4(a) => h.write_u32(u32::from(a) & self.v4_mask),
            IpAddr::V6(a) => h.write_u128(u128::from(a) & self.v6_mask),
        }
        h.write_u8(class as u8);
        h.write_u16(qtype);
        h.write(&name[..name_len]);
        // The mask keeps the index inside the table.
        let index = (h.finish() as usize) & self.mask;
        if self.take(index, now) {
            None
        } else {
            Some(class)
        }
    }

    /// Takes a token from bucket `index`; false when it has none.
    fn take(&self, index: usize, now: u32) -> bool {
        let Some(cell) = self.buckets.get(index) else {
            return true;
        };
        let mut current = cell.load(Ordering::Relaxed);
        let mut allowed = true;
        for _ in 0..CAS_TRIES {
            let (stamp, tokens) = ((current >> 32) as u32, current as u32);
            let available = if current == 0 {
                self.rate // never used
            } else {
                let elapsed = now.wrapping_sub(stamp);
                if elapsed > u32::MAX / 2 {
                    tokens // a reading from before the stamp: no refill
                } else {
                    tokens
                        .saturating_add(self.rate.saturating_mul(elapsed))
                        .min(self.rate)
                }
            };
            allowed = available > 0;
            let left = available.saturating_sub(1);
            let next = (u64::from(now) << 32) | u64::from(left);
            match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return allowed,
                Err(seen) => current = seen,
            }
        }
        // Heavily contended: decide on the last reading without storing.
        allowed
    }

    /// What to do with one more dropped response; `dropped` counts them (one
    /// counter per receiving thread, so no sharing).
    pub fn action(&self, dropped: &mut u32) -> Action {
        *dropped = dropped.wrapping_add(1);
        if self.slip > 0 && (*dropped).is_multiple_of(self.slip) {
            Action::Slip
        } else {
            Action::Drop
        }
    }

    /// True at most once a second: whether to log that limiting goes on.
    pub fn should_log(&self, now: u32) -> bool {
        // Read first: under a flood this is called for every limited
        // response, and a write each time would bounce the cache line
        // between the UDP threads.
        self.logged.load(Ordering::Relaxed) != now
            && self.logged.swap(now, Ordering::Relaxed) != now
    }

    /// The source prefix a flow of `ip` belongs to, for logs.
    pub fn prefix(&self, ip: IpAddr) -> IpNet {
        let len = match ip {
            IpAddr::V4(_) => self.v4_mask.count_ones(),
            IpAddr::V6(_) => self.v6_mask.count_ones(),
        };
        IpNet::new(ip, len as u8).map_or(IpNet::from(ip), |n| n.trunc())
    }
}

/// Rewrites `response` in place into the truncated answer sent on a slip:
/// the header (TC set, no records) and the question, nothing else.
pub fn truncate_to_question(response: &mut Vec<u8>) {
    if response.len() < HEADER {
        response.clear();
        return;
    }
    let qdcount = u16::from_be_bytes([response[4], response[5]]);
    let mut end = HEADER;
    if qdcount == 1 {
        match skip_name(response, HEADER) {
            Some(at) if at + 4 <= response.len() => end = at + 4,
            _ => {}
        }
    }
    let has_question = end > HEADER;
    response.truncate(end);
    response[2] |= 0x02; // TC
    response[4..12].copy_from_slice(&[0, u8::from(has_question), 0, 0, 0, 0, 0, 0]);
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The flow of a response: its class, the name it counts under (lower-case
/// wire form in `name`, its length returned) and the query type for answers.
/// Reads our own response bytes, so it is cheap and needs no decoding; an
/// unreadable response counts as an error.
pub fn classify(response: &[u8], name: &mut [u8; 255]) -> (Class, usize, u16) {
    classify_inner(response, name).unwrap_or((Class::Error, 0, 0))
}

fn classify_inner(b: &[u8], name: &mut [u8; 255]) -> Option<(Class, usize, u16)> {
    let (qd, an, ns) = (u16_at(b, 4)?, u16_at(b, 6)?, u16_at(b, 8)?);
    let rcode = b.get(3)? & 0x0F;
    let authoritative = b.get(2)? & 0x04 != 0;
    if qd != 1 {
        return None;
    }
    let (qname_len, mut at) = read_name(b, HEADER, name)?;
    let qtype = u16_at(b, at)?;
    at += 4;
    match rcode {
        0 if an > 0 => Some((Class::Answer, qname_len, qtype)),
        0 if authoritative => Some((Class::NoData, qname_len, 0)),
        0 if ns > 0 => {
            let (len, _) = read_name(b, at, name)?;
            Some((Class::Referral, len, 0))
        }
        3 => {
            for _ in 0..an {
                at = skip_record(b, at)?;
            }
            let len = if ns > 0 { read_name(b, at, name)?.0 } else { 0 };
            Some((Class::NxDomain, len, 0))
        }
        _ => None,
    }
}

/// Reads the (possibly compressed) name at `at` into `out` in lower case;
/// returns its length and where the name ends in `b`.
fn read_name(b: &[u8], mut at: usize, out: &mut [u8; 255]) -> Option<(usize, usize)> {
    let mut len = 0;
    let mut end = None;
    for _ in 0..128 {
        let l = *b.get(at)?;
        if l & 0xC0 == 0xC0 {
            end.get_or_insert(at + 2);
            at = usize::from(u16_at(b, at)? & 0x3FFF);
            continue;
        }
        let l = usize::from(l);
        if l > 63 || len + 1 + l > out.len() {
            return None;
        }
        let label = b.get(at..at + 1 + l)?;
        for (o, c) in out[len..len + 1 + l].iter_mut().zip(label) {
            *o = c.to_ascii_lowercase();
        }
        len += 1 + l;
        at += 1 + l;
        if l == 0 {
            return Some((len, end.unwrap_or(at)));
        }
    }
    None
}

/// Where the name at `at` ends, without reading it.
fn skip_name(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let l = *b.get(at)?;
        if l & 0xC0 == 0xC0 {
            return Some(at + 2);
        }
        at += 1 + usize::from(l);
        if l == 0 {
            return Some(at);
        }
    }
}

fn skip_record(b: &[u8], at: usize) -> Option<usize> {
    let at = skip_name(b, at)?;
    let rdlength = usize::from(u16_at(b, at + 8)?);
    Some(at + 10 + rdlength)
}

#[cfg(test)]
mod tests;
