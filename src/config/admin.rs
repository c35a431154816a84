//! The admin API's resource limits (`[admin]`): how many connections it
//! holds, how long a client may take, how much it may send.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use super::raw::RawAdmin;

/// Limits on the admin API, so that clients without a token cannot exhaust
/// it: every connection, request and body is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections held at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Connections held at once from one IP address.
    pub max_per_source: usize,
    /// Time to send a request head, and the longest a kept-alive
    /// connection may wait for its next request.
    pub header_timeout: Duration,
    /// Time from a request head to the end of its response (408 after).
    pub request_timeout: Duration,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 64,
            max_per_source: 16,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 8 * 1024,
        }
    }
}

/// Upper bounds of the settings: beyond them a limit no longer limits.
const MAX_CONNECTIONS: usize = 10_000;
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const BODY_BYTES: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

impl Validator<'_> {
    pub(super) fn admin_limits(&mut self, raw: Option<&Spanned<RawAdmin>>) -> AdminLimits {
        let d = AdminLimits::default();
        let Some(raw) = raw.map(|a| a.get_ref()) else {
            return d;
        };
        let max_connections = match &raw.max_connections {
            Some(n) if !(1..=MAX_CONNECTIONS).contains(n.get_ref()) => {
                self.err(
                    &n.span(),
                    format!("`max_connections` must be between 1 and {MAX_CONNECTIONS}"),
                    format!("leave it out for {}", d.max_connections),
                );
                d.max_connections
            }
            Some(n) => *n.get_ref(),
            None => d.max_connections,
        };
        let max_per_source = match &raw.max_per_source {
            Some(n) if *n.get_ref() == 0 || *n.get_ref() > max_connections => {
                self.err(
                    &n.span(),
                    format!(
                        "`max_per_source` must be between 1 and max_connections ({max_connections})"
                    ),
                    format!("leave it out for {}", d.max_per_source.min(max_connections)),
                );
                d.max_per_source.min(max_connections)
            }
            Some(n) => *n.get_ref(),
            None => d.max_per_source.min(max_connections),
        };
        let header_timeout = self.admin_timeout(
            "header_timeout",
            raw.header_timeout.as_ref(),
            d.header_timeout,
        );
        let request_timeout = self.admin_timeout(
            "request_timeout",
            raw.request_timeout.as_ref(),
            d.request_timeout,
        );
        let max_body_bytes = match &raw.max_body_bytes {
            Some(n) if !BODY_BYTES.contains(n.get_ref()) => {
                self.err(
                    &n.span(),
                    format!(
                        "`max_body_bytes` must be between {} and {}",
                        BODY_BYTES.start(),
                        BODY_BYTES.end()
                    ),
                    format!("leave it out for {}", d.max_body_bytes),
                );
                d.max_body_bytes
            }
            Some(n) => *n.get_ref(),
            None => d.max_body_bytes,
        };
        AdminLimits {
            max_connections,
            max_per_source,
            header_timeout,
            request_timeout,
            max_body_bytes,
        }
    }

    /// A positive duration of at most an hour.
    fn admin_timeout(
        &mut self,
        field: &str,
        value: Option<&Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let d = self.duration(field, value, default);
        match value {
            Some(v) if d > MAX_TIMEOUT => {
                self.err(
                    &v.span(),
                    format!("`{field}` must be at most 1h"),
                    format!("leave it out for {}", humantime::format_duration(default)),
                );
                default
            }
            _ => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{ConfigError, validate};
    use super::*;

    const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n@ IN NS ns1\n\
                        ns1 IN A 127.0.0.1\n";

    /// Validates `[admin]` holding `admin` (from line 2 on).
    fn run(admin: &str) -> Result<AdminLimits, ConfigError> {
        let text =
            format!("[admin]\n{admin}[[zone]]\norigin = \"example.com\"\nfile = \"z.zone\"\n");
        validate(Path::new("t.toml"), &text, &|_: &Path| Ok(ZONE.to_string()))
            .map(|c| c.admin_limits)
    }

    fn fails(admin: &str, needle: &str) {
        fails_at(admin, needle, 2);
    }

    fn fails_at(admin: &str, needle: &str, line: usize) {
        let err = run(admin).expect_err(needle);
        let p = &err.0[0];
        assert!(p.message.contains(needle), "want {needle:?}, got {err}");
        assert_eq!(p.line, line, "{err}");
        assert!(p.hint.is_some(), "{err}");
    }

    #[test]
    fn defaults_and_settings() {
        assert_eq!(run("").unwrap(), AdminLimits::default());
        let l = run(
            "max_connections = 10\nmax_per_source = 2\nheader_timeout = \"3s\"\n\
             request_timeout = \"1m\"\nmax_body_bytes = 2048\n",
        )
        .unwrap();
        assert_eq!(
            l,
            AdminLimits {
                max_connections: 10,
                max_per_source: 2,
                header_timeout: Duration::from_secs(3),
                request_timeout: Duration::from_secs(60),
                max_body_bytes: 2048,
            }
        );
        // A small total cap lowers the default per source with it.
        assert_eq!(run("max_connections = 4\n").unwrap().max_per_source, 4);
    }

    #[test]
    fn limits_that_do_not_limit_are_refused() {
        fails("max_connections = 0\n", "between 1 and 10000");
        fails("max_connections = 1000000\n", "between 1 and 10000");
        fails("max_per_source = 0\n", "between 1 and max_connections (64)");
        fails_at(
            "max_connections = 8\nmax_per_source = 9\n",
            "between 1 and max_connections (8)",
            3,
        );
        fails("header_timeout = \"0s\"\n", "greater than zero");
        fails("header_timeout = \"2h\"\n", "at most 1h");
        fails("request_timeout = \"2h\"\n", "at most 1h");
        fails(
            "request_timeout = \"580000000000y\"\n",
            "longest duration accepted",
        );
        fails("request_timeout = \"soon\"\n", "is not a duration");
        fails("max_body_bytes = 100\n", "between 1024 and 1048576");
        fails("max_body_bytes = 2000000\n", "between 1024 and 1048576");
    }
}
