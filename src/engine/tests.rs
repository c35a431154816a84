//! The engine against a real state directory: a serial is published only
//! once it is on disk.

use std::path::Path;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, RData, RecordType};

use super::*;

const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 7 7200 3600 1209600 60\n\
                    @ IN NS ns1\nns1 IN A 127.0.0.1\n";

fn config(state_dir: &Path) -> Config {
    config_with(state_dir, "")
}

/// The test config with `zone_keys` added to its zone.
fn config_with(state_dir: &Path, zone_keys: &str) -> Config {
    let text = format!(
        r#"
[server]
state_dir = "{}"

[[zone]]
origin = "example.com"
file = "z.zone"
{}

[[check]]
name = "pdx"
kind = "external"
fall = 1
rise = 1

[[alias]]
name = "desktop.example.com"
failback_after = "0s"
targets = [
  {{ region = "us-west-2", connection_id = "PDX1", checks = ["pdx"] }},
  {{ region = "us-east-1", connection_id = "IAD2" }},
]
"#,
        state_dir.display(),
        zone_keys
    );
    crate::config::validate(Path::new("t.toml"), &text, &|_: &Path| Ok(ZONE.to_string())).unwrap()
}

/// An engine started afresh (no memory, no first round) on `config`.
fn fresh(metrics: &Arc<Metrics>, config: Arc<Config>, t0: Instant) -> Engine {
    let store = StateStore::open(&config.server.state_dir).unwrap();
    let status: StatusCell = Arc::new(ArcSwap::from_pointee(StatusView::default()));
    let nothing = (memory::Memory::default(), &[false][..]);
    Engine::start(
        status,
        metrics.clone(),
        config,
        store,
        nothing,
        vec![None],
        t0,
    )
    .unwrap()
}

/// What the published snapshot serves: the alias's TXT and the serial.
fn served(engine: &Engine) -> (String, u32) {
    let snap = engine.cell.load();
    let zone = snap
        .zone(&Name::from_ascii("example.com.").unwrap())
        .unwrap();
    let node = zone
        .node(&Name::from_ascii("desktop.example.com.").unwrap())
        .unwrap();
    let RData::TXT(txt) = &node.rrset(RecordType::TXT).unwrap()[0].data else {
        panic!("not a TXT")
    };
    let id = String::from_utf8_lossy(&txt.txt_data[0]).into_owned();
    (id, zone.serial)
}

fn on_disk(dir: &Path) -> u32 {
    let text = std::fs::read_to_string(dir.join("serials.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["zones"]["example.com."]["serial"].as_u64().unwrap() as u32
}

#[tokio::test]
async fn a_change_waits_until_its_serial_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config(dir.path()));
    let metrics = Arc::new(Metrics::new());
    let t0 = Instant::now();
    let mut engine = fresh(&metrics, config, t0);
    assert_eq!(served(&engine), ("PDX1".to_string(), 7));
    assert_eq!(on_disk(dir.path()), 7);

    // The temp file the store writes through is a directory: every write
    // fails, as on a full or read-only disk (and as root, too).
    let blocker = dir.path().join(".serials.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    engine.report("pdx", false, "alarm".into(), "test").unwrap();
    engine.reevaluate(t0, None);
    engine.publish_status(t0);
    assert_eq!(
        served(&engine),
        ("PDX1".to_string(), 7),
        "nothing new served"
    );
    assert_eq!(on_disk(dir.path()), 7);
    let view = engine.status.load();
    assert!(!view.state.persisted && view.state.error.is_some());
    assert_eq!(view.aliases[0].answer, "PDX1");
    assert_eq!(view.aliases[0].pending.as_deref(), Some("IAD2"));
    let text = metrics.render();
    assert!(
        text.contains("txtfailover_state_persist_failures_total{file=\"serials\"} 1")
            && text.contains("txtfailover_state_persist_ok 0"),
        "{text}"
    );
    // The retry is the engine's next wakeup; before it, nothing is tried.
    let retry = engine.persist.retry_at().unwrap();
    assert_eq!(retry, t0 + persist::FIRST_RETRY);
    engine.due(retry);
    assert_eq!(engine.persist.failing().unwrap().failures, 2);
    assert_eq!(
        engine.persist.retry_at().unwrap(),
        retry + 2 * persist::FIRST_RETRY,
        "backoff doubles"
    );

    // Writable again: the next retry publishes the held change, persisted.
    std::fs::remove_dir(&blocker).unwrap();
    let retry = engine.persist.retry_at().unwrap();
    engine.due(retry);
    engine.publish_status(retry);
    let (id, serial) = served(&engine);
    assert_eq!((id.as_str(), serial), ("IAD2", 8));
    assert_eq!(on_disk(dir.path()), 8);
    let view = engine.status.load();
    assert!(view.state.persisted && view.state.error.is_none());
    assert_eq!(view.aliases[0].pending, None);
    assert!(metrics.render().contains("txtfailover_state_persist_ok 1"));
    assert_eq!(engine.persist.retry_at(), None, "no retry left");
}

#[tokio::test]
async fn a_change_undone_while_held_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config(dir.path()));
    let t0 = Instant::now();
    let metrics = Arc::new(Metrics::new());
    let mut engine = fresh(&metrics, config, t0);
    let blocker = dir.path().join(".serials.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    engine.report("pdx", false, "alarm".into(), "test").unwrap();
    engine.reevaluate(t0, None);
    engine.report("pdx", true, "ok".into(), "test").unwrap();
    engine.reevaluate(t0, None);
    std::fs::remove_dir(&blocker).unwrap();
    let retry = engine.persist.retry_at().unwrap();
    engine.due(retry);
    // The disk works again and nothing differs from what is served.
    assert!(engine.persist.failing().is_none());
    assert_eq!(served(&engine), ("PDX1".to_string(), 7));
    assert_eq!(on_disk(dir.path()), 7);
}

#[tokio::test]
async fn a_reload_that_cannot_be_persisted_or_built_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config(dir.path()));
    let t0 = Instant::now();
    let metrics = Arc::new(Metrics::new());
    let mut engine = fresh(&metrics, config.clone(), t0);
    let renamed = |text: &str| {
        crate::config::validate(Path::new("t.toml"), text, &|_: &Path| Ok(ZONE.to_string()))
            .unwrap()
    };
    // A new identifier needs a new serial; it cannot be written.
    let text = format!(
        "[server]\nstate_dir = \"{}\"\n[[zone]]\norigin = \"example.com\"\nfile = \"z.zone\"\n\
         [[alias]]\nname = \"desktop.example.com\"\n\
         targets = [{{ region = \"us-west-2\", connection_id = \"PDX9\" }}]\n",
        dir.path().display()
    );
    let blocker = dir.path().join(".serials.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let err = engine.reload(renamed(&text)).unwrap_err();
    assert!(
        err.contains("keeping the running configuration") && err.contains("serials.json"),
        "{err}"
    );
    assert!(Arc::ptr_eq(&engine.config, &config), "the old config runs");
    assert_eq!(engine.config.checks.len(), 1);
    assert_eq!(served(&engine), ("PDX1".to_string(), 7));
    assert!(
        engine.persist.failing().is_some(),
        "reported until a write works"
    );
    // A reload that moves no serial needs no write: it goes through.
    engine.reload(self::config(dir.path())).unwrap();
    assert_eq!(served(&engine), ("PDX1".to_string(), 7));
    assert!(engine.persist.failing().is_some());
    std::fs::remove_dir(&blocker).unwrap();

    // Data that cannot be encoded: refused the same way, nothing written.
    let long = "k".repeat(300);
    let bad_zone = format!("{ZONE}dkim IN TXT \"{long}\"\n");
    let new = crate::config::validate(Path::new("t.toml"), &text, &|_: &Path| Ok(bad_zone.clone()));
    if let Ok(new) = new {
        let err = engine.reload(new).unwrap_err();
        assert!(err.contains("dkim.example.com. TXT"), "{err}");
        assert_eq!(served(&engine), ("PDX1".to_string(), 7));
        assert_eq!(on_disk(dir.path()), 7);
        assert_eq!(engine.config.aliases[0].targets[0].connection_id, "PDX1");
    }

    // Writable and valid: it goes through, with a persisted serial.
    engine.reload(renamed(&text)).unwrap();
    assert_eq!(served(&engine), ("PDX9".to_string(), 8));
    assert_eq!(on_disk(dir.path()), 8);
    assert!(engine.persist.failing().is_none());
}

#[tokio::test]
async fn notify_goes_out_only_once_the_new_serial_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_with(
        dir.path(),
        "notify = [{ address = \"127.0.0.1:9\" }]",
    ));
    let metrics = Arc::new(Metrics::new());
    let t0 = Instant::now();
    let mut engine = fresh(&metrics, config, t0);
    // At each announcement: the serial announced, and the one a secondary
    // asking right then would be served.
    let seen: Arc<std::sync::Mutex<Vec<(u32, u32)>>> = Arc::default();
    let (cell, log) = (engine.cell(), seen.clone());
    engine.notifier.on_announce = Some(Arc::new(move |soa| {
        let RData::SOA(announced) = &soa.data else {
            panic!("not a SOA")
        };
        let origin = Name::from_ascii("example.com.").unwrap();
        let served = cell.load().zone(&origin).unwrap().serial;
        log.lock().unwrap().push((announced.serial, served));
    }));
    for healthy in [false, true, false] {
        engine
            .report("pdx", healthy, "alarm".into(), "test")
            .unwrap();
        engine.reevaluate(Instant::now(), None);
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (announced, served) in seen {
        assert_eq!(
            served, announced,
            "NOTIFY of {announced} while {served} was served"
        );
    }
}

/// `serve` found the memory fresh and skipped the first round for the
/// check; by the time the engine starts (after the other checks' first
/// round, up to `fall` timeouts) the memory is older than `fall ×
/// interval`. The check must still resume: left with no state it counts
/// as healthy, and the restart fails back to a Region that is down.
#[tokio::test]
async fn a_check_that_skipped_the_first_round_resumes_even_if_aged_since() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config(dir.path()));
    let store = StateStore::open(&config.server.state_dir).unwrap();
    let saved = unix_now_ms() - 6_000;
    let mut remembered = memory::Memory {
        saved_at_ms: saved,
        ..memory::Memory::default()
    };
    remembered.aliases.insert(
        "desktop.example.com".into(),
        memory::AliasMemory {
            answer: "region:us-east-1".into(),
            since_ms: saved - 60_000,
            level: 0,
            isolated: false,
        },
    );
    remembered.checks.insert(
        "pdx".into(),
        memory::CheckMemory {
            fingerprint: memory::fingerprints(&config)[0].clone(),
            state: "down".into(),
            since_ms: saved - 60_000,
            consecutive_ok: 0,
            consecutive_fail: 3,
            round_ok: false,
            last_ok_ms: None,
            last_fail_ms: Some(saved - 1000),
        },
    );
    // Fresh (fall 1 × 5 s) when serve looked, 2 s after the save.
    let resumed = memory::resumable(&config, &remembered, saved + 2_000);
    assert_eq!(resumed, [true]);
    let status: StatusCell = Arc::new(ArcSwap::from_pointee(StatusView::default()));
    let engine = Engine::start(
        status,
        Arc::new(Metrics::new()),
        config,
        store,
        (remembered, &resumed),
        vec![None],
        Instant::now(),
    )
    .unwrap();
    assert_eq!(
        engine.core.checks()[0].state.state,
        crate::health::State::Down
    );
    assert_eq!(served(&engine).0, "IAD2");
}
