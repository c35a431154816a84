//! Persisted state: the last serial of every zone and a digest of what it
//! served, so serials never go backwards across restarts and move forward
//! exactly when the data changed. Written atomically: temp file, fsync, rename.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::serial::{SerialScheme, serial_gt};
use crate::snapshot::AliasRecord;
use crate::zone::StaticZone;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persisted {
    /// Keyed by zone origin, fully qualified.
    pub zones: BTreeMap<String, ZoneState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneState {
    pub serial: u32,
    pub digest: String,
}

pub struct StateStore {
    dir: PathBuf,
}

const FILE: &str = "serials.json";
const OVERRIDES: &str = "overrides.json";
const DECISIONS: &str = "decisions.json";

impl StateStore {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create state_dir {}; set [server] state_dir to a writable directory",
                dir.display()
            )
        })?;
        Ok(StateStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn load(&self) -> anyhow::Result<Persisted> {
        self.read_json(FILE, "move it away to start serials from the zone files (secondaries may then need a manual transfer)")
    }

    pub fn save(&self, state: &Persisted) -> anyhow::Result<()> {
        self.write_json(FILE, state)
    }

    pub fn load_overrides(&self) -> anyhow::Result<Overrides> {
        self.read_json(
            OVERRIDES,
            "fix or remove it; removing it clears every override",
        )
    }

    pub fn save_overrides(&self, overrides: &Overrides) -> anyhow::Result<()> {
        self.write_json(OVERRIDES, overrides)
    }

    /// The decision memory (answers, failback parking, check states): a
    /// corrupt file is an error the caller may log and start without.
    pub fn load_decisions<T: DeserializeOwned + Default>(&self) -> anyhow::Result<T> {
        self.read_json(
            DECISIONS,
            "it is rewritten within seconds; remove it to start afresh",
        )
    }

    pub fn save_decisions<T: Serialize>(&self, memory: &T) -> anyhow::Result<()> {
        self.write_json(DECISIONS, memory)
    }

    fn read_json<T: DeserializeOwned + Default>(&self, file: &str, fix: &str) -> anyhow::Result<T> {
        let path = self.dir.join(file);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is corrupt; {fix}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Temp file, fsync, rename, fsync the directory: a crash leaves the old
    /// file or the new one, never a torn one.
    fn write_json<T: Serialize>(&self, file: &str, value: &T) -> anyhow::Result<()> {
        let path = self.dir.join(file);
        let tmp = self.dir.join(format!(".{file}.tmp"));
        let text = serde_json::to_string_pretty(value)?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }
}

/// A secondary zone's last copy, so a restart can serve it before (or
/// without) reaching a primary, until the SOA expire runs out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryCopy {
    /// Unix seconds when the copy was last known to be current.
    pub checked: u64,
    /// Each record in wire format, base64, SOA first: exact where text
    /// would need quoting rules for every type.
    pub records: Vec<String>,
}

impl StateStore {
    fn secondary_file(origin: &str) -> String {
        format!("secondary-{}json", origin.to_ascii_lowercase())
    }

    pub fn save_secondary(&self, origin: &str, copy: &SecondaryCopy) -> anyhow::Result<()> {
        self.write_json(&Self::secondary_file(origin), copy)
    }

    /// None when there is no copy (or it cannot be read: transfer afresh).
    pub fn load_secondary(&self, origin: &str) -> Option<SecondaryCopy> {
        let copy: Option<SecondaryCopy> = self
            .read_json(&Self::secondary_file(origin), "it is transferred again")
            .map_err(|e| {
                tracing::warn!(
                    zone = origin,
                    error = format!("{e:#}"),
                    "ignoring the stored copy"
                )
            })
            .ok()
            .flatten();
        copy
    }
}

/// Operator pins, keyed by alias name (fully qualified).
pub type Overrides = BTreeMap<String, Override>;

/// An alias pinned to one target by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The target's Region, as configured.
    pub region: String,
    pub reason: String,
    /// The label of the token that set it.
    pub by: String,
    /// Unix seconds when it was set.
    pub set_at: u64,
    /// Unix seconds when it expires by itself; None holds until cleared.
    pub until: Option<u64>,
}

/// Seconds since 1970 by the system clock (0 if it is set before then).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The serial to serve at start: the zone file's if an operator raised it,
/// else the last one served, moved forward by the zone's scheme if the data
/// changed since.
pub fn initial_serial(
    file_serial: u32,
    last: Option<&ZoneState>,
    digest: &str,
    scheme: SerialScheme,
    unix_now: u64,
) -> u32 {
    match last {
        None => file_serial,
        Some(last) if serial_gt(file_serial, last.serial) => file_serial,
        Some(last) if last.digest == digest => last.serial,
        Some(last) => scheme.next(last.serial, unix_now),
    }
}

/// A stable fingerprint of what a zone serves, serial excluded (FNV-1a over
/// the records' text, sorted).
pub fn zone_digest(zone: &StaticZone, aliases: &[&AliasRecord]) -> String {
    let mut soa = zone.soa.clone();
    soa.serial = 0;
    let mut lines = vec![format!("SOA {} {soa}", zone.soa_ttl)];
    lines.extend(zone.records.iter().map(|r| r.to_string()));
    lines.extend(
        aliases
            .iter()
            .map(|a| format!("ALIAS {} {} {:?}", a.name, a.ttl, a.answer)),
    );
    lines.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in lines.join("\n").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_serial_never_goes_back() {
        let last = ZoneState {
            serial: 100,
            digest: "d".into(),
        };
        let inc = SerialScheme::Increment;
        assert_eq!(initial_serial(7, None, "d", inc, 0), 7);
        assert_eq!(initial_serial(7, Some(&last), "d", inc, 0), 100);
        assert_eq!(initial_serial(7, Some(&last), "other", inc, 0), 101);
        assert_eq!(initial_serial(200, Some(&last), "d", inc, 0), 200);
        let unix = SerialScheme::UnixTime;
        assert_eq!(
            initial_serial(7, Some(&last), "other", unix, 1_795_000_000),
            1_795_000_000
        );
    }

    #[test]
    fn save_then_load_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), Persisted::default());
        let mut state = Persisted::default();
        state.zones.insert(
            "example.com.".into(),
            ZoneState {
                serial: 9,
                digest: "x".into(),
            },
        );
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), state);
        assert!(!dir.path().join(".serials.json.tmp").exists());
    }

    #[test]
    fn corrupt_state_is_an_error_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "{not json").unwrap();
        let err = StateStore::open(dir.path()).unwrap().load().unwrap_err();
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
    }
}
