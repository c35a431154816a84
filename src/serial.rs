//! SOA serials: RFC 1982 comparison and the numbering schemes users choose.
//! Pure: the clock comes in as an argument.

/// How a zone's serial moves when its data changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SerialScheme {
    /// Previous serial plus one.
    #[default]
    Increment,
    /// Seconds since 1970, or previous plus one when that is not later.
    UnixTime,
    /// `YYYYMMDDnn`: today's date and a two-digit change count; more than
    /// 100 changes a day borrow from the next day's numbers, as BIND does.
    DateSerial,
}

impl SerialScheme {
    pub const WORDS: [&'static str; 3] = ["increment", "unixtime", "dateserial"];

    pub fn parse(word: &str) -> Option<SerialScheme> {
        match word {
            "increment" => Some(SerialScheme::Increment),
            "unixtime" => Some(SerialScheme::UnixTime),
            "dateserial" => Some(SerialScheme::DateSerial),
            _ => None,
        }
    }

    /// The serial after `previous` when the data changes at `unix_now`
    /// (seconds). Always later than `previous` in RFC 1982 arithmetic.
    pub fn next(self, previous: u32, unix_now: u64) -> u32 {
        let candidate = match self {
            SerialScheme::Increment => None,
            SerialScheme::UnixTime => u32::try_from(unix_now).ok(),
            SerialScheme::DateSerial => date_serial(unix_now),
        };
        match candidate {
            Some(c) if serial_gt(c, previous) => c,
            _ => previous.wrapping_add(1),
        }
    }
}

/// RFC 1982: is `a` later than `b`?
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// `YYYYMMDD00` for the UTC day of `unix` (civil-from-days, proleptic
/// Gregorian), or None past what fits in 32 bits.
fn date_serial(unix: u64) -> Option<u32> {
    let days = i64::try_from(unix / 86_400).ok()?;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    u32::try_from((year * 10_000 + month * 100 + day) * 100).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(serial_gt(1, 0));
        assert!(serial_gt(0, u32::MAX));
        assert!(!serial_gt(5, 5));
        assert!(!serial_gt(u32::MAX, 0));
        assert!(
            !serial_gt(0, 1 << 31),
            "exactly half-way is undefined: not later"
        );
    }

    #[test]
    fn increment_adds_one_and_wraps() {
        assert_eq!(SerialScheme::Increment.next(7, 1_800_000_000), 8);
        assert_eq!(SerialScheme::Increment.next(u32::MAX, 0), 0);
    }

    #[test]
    fn unixtime_uses_the_clock_unless_that_would_go_back() {
        let now = 1_795_000_000;
        assert_eq!(SerialScheme::UnixTime.next(5, now), now as u32);
        // Two changes in one second, or a clock stepped back: still forward.
        assert_eq!(SerialScheme::UnixTime.next(now as u32, now), now as u32 + 1);
        assert_eq!(
            SerialScheme::UnixTime.next(now as u32 + 50, now),
            now as u32 + 51
        );
    }

    #[test]
    fn dateserial_counts_changes_within_a_day() {
        // 2026-11-22T12:00:00Z
        let noon = 1_795_348_800;
        assert_eq!(date_serial(noon), Some(2_026_112_200));
        assert_eq!(date_serial(0), Some(1_970_010_100));
        // 2000-02-29 (a leap day) and 2024-12-31.
        assert_eq!(date_serial(951_782_400), Some(2_000_022_900));
        assert_eq!(date_serial(1_735_603_200), Some(2_024_123_100));
        let s = SerialScheme::DateSerial;
        assert_eq!(s.next(5, noon), 2_026_112_200);
        assert_eq!(s.next(2_026_112_200, noon), 2_026_112_201);
        // 100 changes in a day run into tomorrow's numbers, never backwards.
        assert_eq!(s.next(2_026_112_299, noon), 2_026_112_300);
        // A zone file already ahead of the date keeps counting from itself.
        assert_eq!(s.next(2_099_010_100, noon), 2_099_010_101);
    }

    #[test]
    fn every_scheme_moves_forward_from_anywhere() {
        let now = 1_795_348_800;
        for scheme in [
            SerialScheme::Increment,
            SerialScheme::UnixTime,
            SerialScheme::DateSerial,
        ] {
            for prev in [0, 1, 1 << 31, u32::MAX, now as u32, 2_026_112_299] {
                assert!(serial_gt(scheme.next(prev, now), prev), "{scheme:?} {prev}");
            }
        }
    }
}
