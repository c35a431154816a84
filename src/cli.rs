//! Operator commands on top of the admin API: `status`, `why`, `override`.
//! Tables for people by default, the API's JSON with `--json`.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the admin API is and who is calling.
pub struct Client {
    pub base: String,
    pub token: Option<String>,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let mut request = client.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| {
            format!("cannot reach the admin API at {}; is `txtfailover serve` running, and is --admin right?", self.base)
        })?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .with_context(|| format!("{url} did not answer JSON"))?;
        if !status.is_success() {
            let message = value["error"].as_str().unwrap_or("no message");
            let hint = match status.as_u16() {
                401 => " (check --token-file or TXTFAILOVER_TOKEN)",
                403 => " (the server has no [admin] token_file)",
                _ => "",
            };
            bail!("{status}: {message}{hint}");
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, None).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `status`: one line per alias.
pub fn status_table(v: &Value) -> String {
    let mut out = format!(
        "{:<32} {:<22} {:<14} {:<22} REASON\n",
        "ALIAS", "ANSWER", "REGION", "SINCE"
    );
    let state = &v["state"];
    if let Some(error) = state["error"].as_str() {
        out = format!(
            "WARNING: serials not persisted since {} ({} failed writes, next retry in {}): {error}\n\
             answer changes are held until state_dir is writable again\n\n{out}",
            s(&state["failing_since"]),
            s(&state["failures"]),
            s(&state["next_retry_in"]),
        );
    }
    for a in v["aliases"].as_array().into_iter().flatten() {
        let pinned = if a["override"].is_null() {
            ""
        } else {
            " [override]"
        };
        let pinned = match a["pending"].as_str() {
            Some(p) => format!("{pinned} [pending: {p}, not yet persisted]"),
            None => pinned.to_string(),
        };
        let _ = writeln!(
            out,
            "{:<32} {:<22} {:<14} {:<22} {}{pinned}",
            s(&a["name"]),
            s(&a["answer"]),
            s(&a["region"]),
            s(&a["since"]),
            s(&a["reason"])
        );
    }
    let zones = v["zones"].as_array().into_iter().flatten();
    let _ = writeln!(
        out,
        "\n{:<32} {:<10} {:<12} STATE",
        "ZONE", "ROLE", "SERIAL"
    );
    for z in zones {
        let serial = z["serial"]
            .as_u64()
            .map_or("-".to_string(), |n| n.to_string());
        let state = if z["available"].as_bool() == Some(true) {
            "serving"
        } else {
            "SERVFAIL (no copy)"
        };
        let _ = writeln!(
            out,
            "{:<32} {:<10} {:<12} {state}",
            s(&z["origin"]),
            s(&z["role"]),
            serial
        );
        for r in z["secondaries"].as_array().into_iter().flatten() {
            out.push_str(&secondary_line(r));
        }
    }
    out
}

/// A NOTIFY target under its zone: `secondary ADDRESS`, its state (with
/// the lag when behind), their serial and ours, since when, last asked.
fn secondary_line(r: &Value) -> String {
    let num = |v: &Value| v.as_u64().map_or("-".to_string(), |n| n.to_string());
    let state = match (s(&r["state"]).as_str(), r["lag"].as_u64()) {
        ("behind", Some(lag)) => format!("behind {lag}"),
        (state, _) => state.to_string(),
    };
    let mut line = format!(
        "  secondary {:<20} {:<10} {:<12} ours {}, since {}, checked {}",
        s(&r["address"]),
        state,
        num(&r["serial"]),
        num(&r["ours"]),
        s(&r["since"]),
        r["last_checked"].as_str().unwrap_or("never"),
    );
    if let Some(e) = r["error"].as_str() {
        line.push_str(": ");
        line.push_str(e);
    }
    line.push('\n');
    line
}

/// `why`: the alias, each target's health, each check's state and last result.
pub fn why_table(v: &Value) -> String {
    let a = &v["alias"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} answers {} ({}) since {}",
        s(&a["name"]),
        s(&a["answer"]),
        s(&a["region"]),
        s(&a["since"])
    );
    let _ = writeln!(out, "reason: {}", s(&a["reason"]));
    let p = &a["policy"];
    let _ = writeln!(
        out,
        "policy: all_down={} failback={} failback_after={} (now {}, at most {}, reset after {})",
        s(&p["all_down"]),
        s(&p["failback"]),
        s(&p["failback_after"]),
        s(&p["failback_after_now"]),
        s(&p["failback_after_max"]),
        s(&p["failback_reset"])
    );
    if a["prober_isolated"].as_bool() == Some(true) {
        let _ = writeln!(
            out,
            "HELD: every target began failing together; the prober itself looks cut off"
        );
    }
    if v["canary_failing"].as_bool() == Some(true) {
        let _ = writeln!(out, "HELD: a canary check fails; no answer moves");
    }
    if !a["override"].is_null() {
        let o = &a["override"];
        let _ = writeln!(
            out,
            "override: {} by {}: {} (until {})",
            s(&o["region"]),
            s(&o["by"]),
            s(&o["reason"]),
            s(&o["until"])
        );
    }
    let _ = writeln!(out, "targets:");
    for (i, t) in a["targets"].as_array().into_iter().flatten().enumerate() {
        let health = match (t["healthy"].as_bool(), t["confirmed"].as_bool()) {
            (Some(true), Some(false)) => "healthy (not yet seen working while the answer failed)",
            (Some(true), _) => "healthy",
            _ => "UNHEALTHY",
        };
        let checks: Vec<String> = t["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let _ = writeln!(
            out,
            "  #{i} {:<14} {:<22} {health:<10} checks: {}",
            s(&t["region"]),
            s(&t["connection_id"]),
            checks.join(", ")
        );
    }
    let _ = writeln!(out, "checks:");
    for c in v["checks"].as_array().into_iter().flatten() {
        let last = &c["last"];
        let _ = writeln!(
            out,
            "  {:<16} {:<8} {:<8} since {}  last: {} in {:.1} ms: {}",
            s(&c["name"]),
            s(&c["kind"]),
            s(&c["state"]),
            s(&c["since"]),
            if last["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "fail"
            },
            last["latency_ms"].as_f64().unwrap_or(0.0),
            s(&last["detail"])
        );
    }
    out
}

/// The bearer token in a `--token-file`: the server's own `label token`
/// file (its first token) or a file holding just the token. `#` starts a
/// comment, as in the server's file, so one file serves both.
pub fn token_from_file(text: &str) -> anyhow::Result<String> {
    let line = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find(|l| !l.is_empty());
    let Some(line) = line else {
        bail!("it holds no token");
    };
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        [token] | [_, token] => Ok((*token).to_string()),
        _ => bail!("its first line is neither `label token` nor a bare token"),
    }
}

/// Bytes of OS randomness in a new token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

/// Why `label` cannot stand in the server's token file, if it cannot: the
/// file splits lines at whitespace and cuts them at `#`.
pub fn label_problem(label: &str) -> Option<&'static str> {
    if label.is_empty() {
        Some("the label is empty")
    } else if label.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("the label holds whitespace or control characters")
    } else if label.contains('#') {
        Some("the label holds `#`, which starts a comment in the token file")
    } else {
        None
    }
}

/// `token new LABEL`: one `label token` line for the server's token file,
/// the token URL-safe base64 (no `#`, no whitespace) of OS randomness.
pub fn new_token_line(label: &str) -> anyhow::Result<String> {
    use rand::TryRng as _;
    if let Some(problem) = label_problem(label) {
        bail!("{problem}; use a name such as `alice` or `deploy-bot`");
    }
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .context("the operating system gave no random bytes")?;
    Ok(format!(
        "{label} {}\n",
        data_encoding::BASE64URL_NOPAD.encode(&bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_may_be_the_servers_or_a_bare_token() {
        let t = "3f9c0b7e51d24a8e9d6b";
        assert_eq!(token_from_file(&format!("{t}\n")).unwrap(), t);
        assert_eq!(
            token_from_file(&format!("# operators\n\nalice {t}  # laptop\nbob other\n")).unwrap(),
            t
        );
        assert!(token_from_file("# nothing\n\n").is_err());
        assert!(token_from_file("a b c\n").is_err());
    }

    #[test]
    fn new_tokens_are_long_random_and_fit_the_token_file() {
        let a = new_token_line("alice").unwrap();
        let b = new_token_line("alice").unwrap();
        assert_ne!(a, b);
        let token = a.strip_prefix("alice ").unwrap().trim_end();
        assert_eq!(token.len(), 43, "32 bytes in unpadded base64");
        assert!(
            token
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        for bad in [
            "",
            "al ice",
            "al\tice",
            "al\u{7}ice",
            "al#ice",
            "al\u{a0}ice",
        ] {
            assert!(new_token_line(bad).is_err(), "{bad:?} accepted");
        }
    }
}
