//! Probes: one network test each, bounded by the check's timeout. Every probe
//! opens a fresh connection (no pooling) so it measures what a new WorkSpaces
//! client would meet, not a warm socket.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpStream;

use std::sync::Arc;

use super::alarm::{AlarmBoard, AlarmProber};
use super::machine::Outcome;
use crate::config::{BODY_SCAN_LIMIT, CheckSpec, HttpSpec, ProbeSpec};

pub enum Prober {
    Http {
        client: reqwest::Client,
        spec: Box<HttpSpec>,
    },
    Tcp {
        address: String,
    },
    Command {
        argv: Vec<String>,
    },
    Alarm(Box<AlarmProber>),
}

impl Prober {
    pub fn new(spec: &ProbeSpec, timeout: Duration) -> anyhow::Result<Self> {
        Ok(match spec {
            ProbeSpec::Http(spec) => {
                let mut builder = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .pool_max_idle_per_host(0)
                    .user_agent(concat!("txtfailover/", env!("CARGO_PKG_VERSION")))
                    .tls_danger_accept_invalid_certs(!spec.tls_verify);
                if let (Some(addr), Some(host)) = (spec.resolve, spec.url.host_str()) {
                    builder = builder.resolve(host, addr);
                }
                let client = builder.build().context("building the HTTP client")?;
                Prober::Http {
                    client,
                    spec: Box::new(spec.clone()),
                }
            }
            ProbeSpec::Tcp { address } => Prober::Tcp {
                address: address.clone(),
            },
            ProbeSpec::Command { argv } => Prober::Command { argv: argv.clone() },
            ProbeSpec::CloudWatchAlarm(_) => {
                anyhow::bail!("alarm checks are built by Prober::for_check")
            }
            ProbeSpec::Composite { .. } | ProbeSpec::External { .. } => {
                anyhow::bail!("composite and external checks are not probed")
            }
        })
    }

    /// The prober of `check`; alarm checks share `alarms` with the
    /// EventBridge push.
    pub fn for_check(check: &CheckSpec, alarms: &Arc<AlarmBoard>) -> anyhow::Result<Self> {
        match &check.probe {
            ProbeSpec::CloudWatchAlarm(spec) => Ok(Prober::Alarm(Box::new(AlarmProber::new(
                &check.name,
                spec,
                check.timing.timeout,
                alarms.clone(),
            )))),
            probe => Prober::new(probe, check.timing.timeout),
        }
    }

    /// One round: up to `attempts` attempts back to back, each bounded by
    /// `timeout`, ending at the first success. Only a round whose every
    /// attempt failed counts as a failure, so one lost packet does not.
    pub async fn round(&self, timeout: Duration, attempts: u32) -> Outcome {
        self.round_counted(timeout, attempts).await.0
    }

    /// `round`, and how many attempts it made (for the attempt counters).
    pub async fn round_counted(&self, timeout: Duration, attempts: u32) -> (Outcome, u32) {
        let attempts = attempts.max(1);
        let mut made = 0;
        loop {
            made += 1;
            let mut outcome = self.probe(timeout).await;
            if outcome.ok {
                if made > 1 {
                    outcome.detail = format!("{} (attempt {made} of {attempts})", outcome.detail);
                }
                return (outcome, made);
            }
            if made >= attempts {
                if attempts > 1 {
                    outcome.detail = format!(
                        "{} ({attempts} of {attempts} attempts failed)",
                        outcome.detail
                    );
                }
                return (outcome, made);
            }
        }
    }

    /// Runs the probe once; never takes longer than `timeout` (plus scheduling).
    pub async fn probe(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let result = tokio::time::timeout(timeout, self.attempt()).await;
        let latency = start.elapsed();
        let (ok, detail) = match result {
            Ok(Ok(detail)) => (true, detail),
            Ok(Err(detail)) => (false, detail),
            Err(_) => (
                false,
                format!("timed out after {}", humantime::format_duration(timeout)),
            ),
        };
        Outcome {
            ok,
            latency,
            detail,
        }
    }

    async fn attempt(&self) -> Result<String, String> {
        match self {
            Prober::Tcp { address } => match TcpStream::connect(address.as_str()).await {
                Ok(_) => Ok(format!("connected to {address}")),
                Err(e) => Err(format!("connect to {address}: {e}")),
            },
            Prober::Http { client, spec } => http_attempt(client, spec).await,
            Prober::Command { argv } => command_attempt(argv).await,
            Prober::Alarm(alarm) => alarm.attempt().await,
        }
    }
}

/// Runs the program directly (no shell). On timeout the future is dropped
/// and `kill_on_drop` kills the child, so a hung program cannot pile up.
async fn command_attempt(argv: &[String]) -> Result<String, String> {
    let output = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    // The first line the program said, bounded, to show operators why.
    let said = [&output.stderr, &output.stdout]
        .iter()
        .filter_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(String::from)
        })
        .next()
        .map(|l| format!(": {}", l.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    if output.status.success() {
        Ok(format!("{} exited 0{said}", argv[0]))
    } else {
        Err(format!("{} {}{said}", argv[0], output.status))
    }
}

async fn http_attempt(client: &reqwest::Client, spec: &HttpSpec) -> Result<String, String> {
    let mut request = client.request(spec.method.clone(), spec.url.clone());
    for (k, v) in &spec.headers {
        request = request.header(k, v);
    }
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    if !spec
        .expect_status
        .iter()
        .any(|r| r.contains(&status.as_u16()))
    {
        return Err(format!("status {status} is not expected"));
    }
    let Some(needle) = &spec.expect_body else {
        return Ok(format!("status {status}"));
    };
    let mut body = Vec::new();
    while body.len() < BODY_SCAN_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return Err(format!("reading body: {}", describe(&e))),
        }
    }
    body.truncate(BODY_SCAN_LIMIT);
    if body.windows(needle.len()).any(|w| w == needle.as_bytes()) {
        Ok(format!("status {status}, body contains {needle:?}"))
    } else {
        Err(format!(
            "status {status}, but {needle:?} is not in the first {BODY_SCAN_LIMIT} bytes of the body"
        ))
    }
}

/// reqwest's top-level message hides the cause ("error sending request");
/// operators need the chain: refused, TLS, DNS.
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn http(addr: std::net::SocketAddr, timeout: Duration) -> Prober {
        // As the binary does at start.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let spec = HttpSpec {
            url: format!("http://{addr}/ping").parse().unwrap(),
            method: reqwest::Method::GET,
            headers: Vec::new(),
            resolve: None,
            tls_verify: true,
            expect_status: vec![200..=399],
            expect_body: None,
        };
        Prober::new(&ProbeSpec::Http(spec), timeout).unwrap()
    }

    /// An HTTP endpoint that closes its first `fail` connections unanswered
    /// and answers 200 after; counts the connections it took.
    async fn flaky(fail: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                if counter.fetch_add(1, Ordering::SeqCst) < fail {
                    drop(s);
                    continue;
                }
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        (addr, seen)
    }

    /// A port nothing listens on: connections are refused.
    fn closed_port() -> std::net::SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    #[tokio::test]
    async fn a_round_retries_a_failed_attempt_at_once_and_says_so() {
        let (addr, seen) = flaky(1).await;
        let p = http(addr, Duration::from_secs(2));
        let (o, made) = p.round_counted(Duration::from_secs(2), 2).await;
        assert!(o.ok, "{o:?}");
        assert_eq!(o.detail, "status 200 OK (attempt 2 of 2)");
        assert_eq!((made, seen.load(Ordering::SeqCst)), (2, 2));
    }

    #[tokio::test]
    async fn a_round_stops_at_the_first_success() {
        let (addr, seen) = flaky(0).await;
        let p = http(addr, Duration::from_secs(2));
        let o = p.round(Duration::from_secs(2), 3).await;
        assert_eq!((o.ok, o.detail.as_str()), (true, "status 200 OK"));
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_round_fails_only_when_every_attempt_fails() {
        let (addr, seen) = flaky(2).await;
        let p = http(addr, Duration::from_secs(2));
        let (o, made) = p.round_counted(Duration::from_secs(2), 2).await;
        assert!(!o.ok);
        assert!(o.detail.ends_with(" (2 of 2 attempts failed)"), "{o:?}");
        assert_eq!((made, seen.load(Ordering::SeqCst)), (2, 2));

        let address = closed_port().to_string();
        let p = Prober::Tcp {
            address: address.clone(),
        };
        let (o, made) = p.round_counted(Duration::from_secs(1), 3).await;
        assert!(!o.ok);
        assert!(
            o.detail.starts_with(&format!("connect to {address}")),
            "{o:?}"
        );
        assert!(o.detail.ends_with(" (3 of 3 attempts failed)"), "{o:?}");
        assert_eq!(made, 3);
    }

    #[tokio::test]
    async fn one_attempt_keeps_the_plain_detail() {
        let address = closed_port().to_string();
        let p = Prober::Tcp { address };
        let o = p.round(Duration::from_secs(1), 1).await;
        assert!(!o.ok && !o.detail.contains("attempt"), "{o:?}");
    }

    #[tokio::test]
    async fn each_attempt_is_bounded_by_the_timeout() {
        // Accepts and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let timeout = Duration::from_millis(150);
        let p = http(addr, timeout);
        let start = Instant::now();
        let o = p.round(timeout, 2).await;
        let took = start.elapsed();
        assert!(!o.ok);
        // The client's own timeout and the round's race; either says so.
        assert!(o.detail.contains("timed out"), "{o:?}");
        assert!(o.detail.ends_with(" (2 of 2 attempts failed)"), "{o:?}");
        assert!(took >= timeout * 2, "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(
            o.latency >= timeout && o.latency < timeout * 2,
            "the latency is the deciding attempt's: {:?}",
            o.latency
        );
    }
}
