//! `cloudwatch_alarm` checks against a real CloudWatch API on loopback:
//! moto's server (`pip install 'moto[server]'`), which speaks the SDK's
//! protocol (Smithy RPC v2 CBOR). Alarms are created and flipped with
//! boto3, as an operator's tooling would; the TXT answer must follow, by
//! pull (DescribeAlarms) and by push (EventBridge events POSTed to the
//! admin API).

mod support;

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A moto server on a loopback port, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python3` without the developer's AWS_* variables: moto and boto3 read
/// them as the SDK does (a profile that does not exist here fails moto).
fn python3() -> Command {
    let mut python = Command::new("python3");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            python.env_remove(key);
        }
    }
    python
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let mut child = python3()
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "python3 is needed, with moto: pip install 'moto[server]>=5.2.6' (.ci/run does)",
            );
        let start = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto's server exited ({status}): pip install 'moto[server]>=5.2.6'");
            }
            assert!(start.elapsed() < DEADLINE, "moto's server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `body` in Python with `cw`, a boto3 CloudWatch client for
    /// us-west-2 on this server; what it prints.
    fn python(&self, body: &str) -> String {
        let script = format!(
            "import boto3\ncw = boto3.client('cloudwatch', region_name='us-west-2', endpoint_url='{}')\n{body}\n",
            self.url()
        );
        let out = python3()
            .args(["-c", &script])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .expect("python3 with boto3 is needed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "boto3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates alarm `name` on an AWS/WorkSpaces metric, in state `state`.
    fn alarm(&self, name: &str, state: &str) {
        self.python(&format!(
            "cw.put_metric_alarm(AlarmName='{name}', Namespace='AWS/WorkSpaces', MetricName='Unhealthy', \
             Statistic='Maximum', Period=60, EvaluationPeriods=1, Threshold=1, \
             ComparisonOperator='GreaterThanOrEqualToThreshold')"
        ));
        self.set(name, state);
    }

    /// `set-alarm-state`; the state's timestamp as CloudWatch reports it
    /// (what an EventBridge event of this change carries).
    fn set(&self, name: &str, state: &str) -> String {
        self.python(&format!(
            "cw.set_alarm_state(AlarmName='{name}', StateValue='{state}', StateReason='test')\n\
             a = cw.describe_alarms(AlarmNames=['{name}'])['MetricAlarms'][0]\n\
             print(a['StateUpdatedTimestamp'].strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + '+0000')"
        ))
    }
}

/// The environment `serve` runs in: moto's test credentials, and nothing
/// that could send the SDK's credential chain off this host.
const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
    (
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    ),
];

/// One alias per (check, alarm) pair: desktop-N.example.com answers PDXN
/// while check N is healthy, IADN otherwise. `extra` goes into each check.
fn config(moto: &Moto, checks: &[(&str, &str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, alarm, extra)) in checks.iter().enumerate() {
        out.push_str(&format!(
            "[[check]]\nname = \"{name}\"\nkind = \"cloudwatch_alarm\"\nalarm_name = \"{alarm}\"\n\
             region = \"us-west-2\"\nendpoint_url = \"{}\"\n{extra}\n\n\
             [[alias]]\nname = \"desktop-{i}.example.com\"\nfailback_after = \"0s\"\n\
             targets = [\n  {{ region = \"us-west-2\", connection_id = \"PDX{i}\", checks = [\"{name}\"] }},\n\
               {{ region = \"us-east-1\", connection_id = \"IAD{i}\" }},\n]\n\n",
            moto.url()
        ));
    }
    out
}

/// A server whose desktop-0 follows check "pdx" on alarm "ws-pdx" (which
/// must be OK), once it answers PDX0.
fn watching_ws_pdx(moto: &Moto, extra: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        &config(moto, &[("pdx", "ws-pdx", extra)]),
        AWS_ENV,
    );
    s.wait_for_txt("desktop-0.example.com", "PDX0");
    (dir, s)
}

/// Fast pulls, and one round decides: for the pull tests.
const FAST: &str = "interval = \"300ms\"\ntimeout = \"250ms\"\nattempts = 1\nfall = 1\nrise = 1";

fn serve(dir: &std::path::Path, body: &str, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let path = write_config(dir, port, body, ZONE);
    std::fs::write(dir.join("tokens"), format!("ops {TOKEN}\n")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("[admin]\n", "[admin]\ntoken_file = \"tokens\"\n", 1),
    )
    .unwrap();
    Server::launch_with(dir, &path, port, None, &[], env)
}

/// The `last` detail of check `name` in `/v1/checks`.
fn detail(s: &Server, name: &str) -> String {
    let (_, body) = s.get("/v1/checks");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .map(|c| c["last"]["detail"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn wait_detail(s: &Server, name: &str, needle: &str) {
    let start = Instant::now();
    loop {
        let d = detail(s, name);
        if d.contains(needle) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{name}: {d:?} never contained {needle:?}\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_answer_follows_the_alarm_by_pull() {
    let moto = Moto::start();
    moto.alarm("ws-pdx", "OK");
    let (_dir, s) = watching_ws_pdx(&moto, FAST);
    moto.set("ws-pdx", "ALARM");
    s.wait_for_txt("desktop-0.example.com", "IAD0");
    assert!(
        detail(&s, "pdx").contains("alarm in ALARM since"),
        "{}",
        detail(&s, "pdx")
    );
    moto.set("ws-pdx", "OK");
    s.wait_for_txt("desktop-0.example.com", "PDX0");
}

/// An EventBridge "CloudWatch Alarm State Change" event, shaped as AWS
/// documents it.
fn event(id: &str, alarm: &str, state: &str, timestamp: &str) -> String {
    format!(
        r#"{{"version": "0", "id": "{id}", "detail-type": "CloudWatch Alarm State Change",
  "source": "aws.cloudwatch", "account": "123456789012", "time": "{time}Z", "region": "us-west-2",
  "resources": ["arn:aws:cloudwatch:us-west-2:123456789012:alarm:{alarm}"],
  "detail": {{"alarmName": "{alarm}",
    "state": {{"value": "{state}", "reason": "test", "timestamp": "{timestamp}"}},
    "previousState": {{"value": "OK", "reason": "", "timestamp": "2020-01-01T00:00:00.000+0000"}},
    "configuration": {{"metrics": []}}}}}}"#,
        time = &timestamp[..19]
    )
}

fn push(s: &Server, body: &str) -> serde_json::Value {
    let (code, text) = http(
        s.admin_addr(),
        "POST",
        "/v1/signals/eventbridge",
        Some(TOKEN),
        body,
    );
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn pushed_events_move_the_answer_at_once_and_replays_do_not() {
    let moto = Moto::start();
    moto.alarm("ws-pdx", "OK");
    // The default 30 s pull: only the first round reads the alarm, so a
    // change within the test can only come from the push.
    let (_dir, s) = watching_ws_pdx(&moto, "");

    // Without the token: refused, nothing changes.
    let alarm = moto.set("ws-pdx", "ALARM");
    let body = event("e1", "ws-pdx", "ALARM", &alarm);
    let (code, _) = http(
        s.admin_addr(),
        "POST",
        "/v1/signals/eventbridge",
        None,
        &body,
    );
    assert_eq!(code, 401);
    assert_eq!(s.txt("desktop-0.example.com"), ["PDX0"]);

    let r = push(&s, &body);
    assert_eq!(r["matched"][0]["check"], "pdx", "{r}");
    assert_eq!(r["matched"][0]["result"], "applied", "{r}");
    // Applied before the answer came back.
    assert_eq!(s.txt("desktop-0.example.com"), ["IAD0"]);

    // The same event again (EventBridge delivers at least once).
    let r = push(&s, &body);
    assert_eq!(r["matched"][0]["result"], "duplicate", "{r}");
    // An OK from before the ALARM, delivered late: ignored.
    let r = push(
        &s,
        &event("e0", "ws-pdx", "OK", "2020-06-01T00:00:00.000+0000"),
    );
    assert_eq!(r["matched"][0]["result"], "older", "{r}");
    assert_eq!(s.txt("desktop-0.example.com"), ["IAD0"]);
    // An event for an alarm nobody watches matches nothing.
    let r = push(&s, &event("e9", "other-alarm", "ALARM", &alarm));
    assert_eq!(r["matched"].as_array().unwrap().len(), 0, "{r}");
    // Something that is not an alarm event: 400, saying why.
    let (code, text) = http(
        s.admin_addr(),
        "POST",
        "/v1/signals/eventbridge",
        Some(TOKEN),
        "{}",
    );
    assert_eq!(code, 400);
    assert!(
        text.contains("not a CloudWatch alarm state change"),
        "{text}"
    );

    let ok = moto.set("ws-pdx", "OK");
    let r = push(&s, &event("e2", "ws-pdx", "OK", &ok));
    assert_eq!(r["matched"][0]["result"], "applied", "{r}");
    assert_eq!(s.txt("desktop-0.example.com"), ["PDX0"]);
}

/// One alarm check whose pulls all fail (nothing answers at its endpoint),
/// so it is down and the board holds no state: as after a restart or a
/// reload that changed the check, until a pull returns, or while the
/// Region's API is unreachable.
fn unreachable_api() -> String {
    let moto_url = format!("http://127.0.0.1:{}", free_port());
    format!(
        "[[check]]\nname = \"pdx\"\nkind = \"cloudwatch_alarm\"\nalarm_name = \"ws-pdx\"\n\
         region = \"us-west-2\"\nendpoint_url = \"{moto_url}\"\n\n\
         [[alias]]\nname = \"desktop-0.example.com\"\nfailback_after = \"0s\"\n\
         targets = [\n  {{ region = \"us-west-2\", connection_id = \"PDX0\", checks = [\"pdx\"] }},\n\
           {{ region = \"us-east-1\", connection_id = \"IAD0\" }},\n]\n"
    )
}

#[test]
fn an_old_event_is_not_applied_while_no_state_orders_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &unreachable_api(), AWS_ENV);
    s.wait_for_txt("desktop-0.example.com", "IAD0");
    // A replayed OK from long ago: EventBridge gives up on events older
    // than its retry age, so it is a replay, and must not move the answer.
    let r = push(
        &s,
        &event("e0", "ws-pdx", "OK", "2020-06-01T00:00:00.000+0000"),
    );
    assert_eq!(r["matched"][0]["result"], "stale", "{r}");
    assert_eq!(s.txt("desktop-0.example.com"), ["IAD0"]);
    // A fresh one is applied.
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let r = push(&s, &event("e1", "ws-pdx", "OK", &now.replace('Z', "+0000")));
    assert_eq!(r["matched"][0]["result"], "applied", "{r}");
    assert_eq!(s.txt("desktop-0.example.com"), ["PDX0"]);
}

#[test]
fn a_pushed_insufficient_data_keeps_the_state_under_last() {
    // The Region's API is unreachable and its metrics fall silent: the
    // check is down, and "no data" must not bring the answer back.
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &unreachable_api(), AWS_ENV);
    s.wait_for_txt("desktop-0.example.com", "IAD0");
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let now = now.replace('Z', "+0000");
    let r = push(&s, &event("e1", "ws-pdx", "INSUFFICIENT_DATA", &now));
    assert_eq!(r["matched"][0]["result"], "applied", "{r}");
    assert_eq!(r["matched"][0]["healthy"], false, "{r}");
    assert_eq!(s.txt("desktop-0.example.com"), ["IAD0"]);
}

#[test]
fn a_late_pull_cannot_undo_a_newer_pushed_state() {
    let moto = Moto::start();
    moto.alarm("ws-pdx", "OK");
    let (_dir, s) = watching_ws_pdx(&moto, FAST);
    // EventBridge says ALARM, dated after the OK the API still returns:
    // the pulls that follow read the older OK and must not move it back.
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let r = push(
        &s,
        &event("e1", "ws-pdx", "ALARM", &now.replace('Z', "+0000")),
    );
    assert_eq!(r["matched"][0]["result"], "applied", "{r}");
    wait_detail(&s, "pdx", "older than a pushed state");
    assert_eq!(s.txt("desktop-0.example.com"), ["IAD0"]);
}

#[test]
fn insufficient_data_counts_as_each_policy_says() {
    let moto = Moto::start();
    for a in ["a-healthy", "a-unhealthy", "a-last"] {
        moto.alarm(a, "ALARM");
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = |p: &str| format!("{FAST}\non_insufficient_data = \"{p}\"");
    let (h, u, l) = (policy("healthy"), policy("unhealthy"), policy("last"));
    let body = config(
        &moto,
        &[
            ("healthy", "a-healthy", &h),
            ("unhealthy", "a-unhealthy", &u),
            ("last", "a-last", &l),
        ],
    );
    let s = serve(dir.path(), &body, AWS_ENV);
    for i in 0..3 {
        s.wait_for_txt(&format!("desktop-{i}.example.com"), &format!("IAD{i}"));
    }
    for a in ["a-healthy", "a-unhealthy", "a-last"] {
        moto.set(a, "INSUFFICIENT_DATA");
    }
    s.wait_for_txt("desktop-0.example.com", "PDX0");
    wait_detail(&s, "unhealthy", "INSUFFICIENT_DATA");
    wait_detail(&s, "last", "keeping the last state, ALARM");
    assert_eq!(s.txt("desktop-1.example.com"), ["IAD1"]);
    assert_eq!(s.txt("desktop-2.example.com"), ["IAD2"]);
    let (_, why) = s.get("/v1/aliases/desktop-2.example.com");
    assert!(why.contains("INSUFFICIENT_DATA"), "{why}");
}

#[test]
fn a_missing_alarm_and_missing_credentials_fail_the_check_and_say_why() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        &config(&moto, &[("pdx", "no-such-alarm", FAST)]),
        AWS_ENV,
    );
    s.wait_for_txt("desktop-0.example.com", "IAD0");
    wait_detail(
        &s,
        "pdx",
        "alarm \"no-such-alarm\" not found in us-west-2 (ResourceNotFound)",
    );
    drop(s);

    moto.alarm("ws-pdx", "OK");
    let dir = tempfile::tempdir().unwrap();
    let no_keys: Vec<(&str, &str)> = AWS_ENV
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .collect();
    let s = serve(
        dir.path(),
        &config(&moto, &[("pdx", "ws-pdx", FAST)]),
        &no_keys,
    );
    s.wait_for_txt("desktop-0.example.com", "IAD0");
    wait_detail(&s, "pdx", "(NoCredentials)");
    drop(s);

    // The same, with the keys in a shared credentials file under a named
    // profile: the SDK's chain finds them, the check reads the alarm.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aws-credentials");
    std::fs::write(
        &file,
        "[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let mut env = no_keys.clone();
    env.retain(|(k, _)| *k != "AWS_SHARED_CREDENTIALS_FILE");
    env.push(("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap()));
    env.push(("AWS_PROFILE", "ops"));
    let s = serve(dir.path(), &config(&moto, &[("pdx", "ws-pdx", FAST)]), &env);
    s.wait_for_txt("desktop-0.example.com", "PDX0");
    wait_detail(&s, "pdx", "alarm OK since");
}
