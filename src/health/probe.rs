//! Probes: one network test each, bounded by the check's timeout. Every probe
//! opens a fresh connection (no pooling) so it measures what a new WorkSpaces
//! client would meet, not a warm socket.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpStream;

use super::machine::Outcome;
use crate::config::{BODY_SCAN_LIMIT, HttpSpec, ProbeSpec};

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
            ProbeSpec::Composite { .. } | ProbeSpec::External { .. } => {
                anyhow::bail!("composite and external checks are not probed")
            }
        })
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
