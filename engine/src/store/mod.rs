//! Storage backends. Both hold the layout of DESIGN.md § Storage: an evolution bucket
//! (`checkpoints/`, `generations/`, `fitness_logs/`, `safety_snapshots/`) and an agents
//! bucket (`source/`, `compiled/`, `metadata/`, `performance/`, `quarantine/`).

mod fs;
#[cfg(feature = "aws")]
pub(crate) mod s3;

pub use fs::FsStore;
#[cfg(feature = "aws")]
pub use s3::S3Store;

use crate::error::{ErrorKind, Result};
use crate::id::AgentId;
use crate::words::SafetyFlag;
use std::path::PathBuf;
use std::sync::Arc;

/// The two buckets of the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Checkpoints, generations, fitness logs, safety snapshots.
    Evolution,
    /// Module sources, compiled artifacts, metadata, performance, quarantine.
    Agents,
}

/// One row of the state table: an evolution's committed generation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateItem {
    /// Partition key.
    pub evolution_id: String,
    /// Sort key.
    pub generation: u32,
    /// When the generation was committed (RFC 3339; the `timestamp-index` sort key).
    pub timestamp: String,
    /// The best module's bytes.
    pub agent_code: Vec<u8>,
    /// The best module's id.
    pub best_agent_id: AgentId,
    /// The best train error.
    pub fitness_score: f64,
    /// The best module's parents.
    pub parent_ids: Vec<AgentId>,
    /// Anomaly flags of the generation.
    pub safety_flags: Vec<SafetyFlag>,
}

/// The version of a stored object, for conditional writes ([`BlobStore::put_if`]): the
/// object's ETag on S3, a SHA-256 digest of its content on the file store. Equal
/// versions mean equal content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(pub(crate) String);

/// Settings a store carries for what is written into it, given as parameters of the
/// store URI (`file://PATH?trap_history=16`, `s3://…&trap_history=16`), so every
/// process that shares a store can be given the same ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// Trap events a quarantine record keeps in its history, newest last; older ones
    /// are dropped from the history but stay counted in the record's `trap_counts`.
    /// URI parameter `trap_history`. Default 32.
    pub trap_history: usize,
    /// Attempts of a conditional update of a quarantine record before it gives up with
    /// a conflict error (each attempt after a conflict waits a little longer, with
    /// jitter). URI parameter `update_attempts`, at least 1. Default 64.
    pub update_attempts: u32,
    /// Ids of the latest changes a quarantine record keeps, newest last, so a writer
    /// whose successful write was answered as lost (a retry meeting its own change)
    /// finds its change there instead of making it twice, even after this many later
    /// changes by others. URI parameter `update_ids`, 1–10000. Default 64.
    pub update_ids: usize,
    /// Seconds after which a local store's temporary file (`.tmp-*`, left by a process
    /// killed in the middle of a write) is debris: removed when an evolution starts or
    /// resumes. URI parameter `temp_max_age`, 1–31536000. Default 600 (a write takes
    /// milliseconds). Not used by S3, whose writes leave no temporaries.
    pub temp_max_age: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            trap_history: 32,
            update_attempts: 64,
            update_ids: 64,
            temp_max_age: 600,
        }
    }
}

impl StoreSettings {
    /// Applies one URI parameter; `Ok(false)` when the name is not a setting.
    pub(crate) fn set(&mut self, name: &str, value: &str) -> std::result::Result<bool, String> {
        let num = |v: &str| -> std::result::Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{name}={v:?} is not a whole number"))
        };
        match name {
            "trap_history" => {
                let n = num(value)?;
                if n > 100_000 {
                    return Err(format!("trap_history={n} is over 100000"));
                }
                self.trap_history = n as usize;
            }
            "update_attempts" => {
                let n = num(value)?;
                if !(1..=10_000).contains(&n) {
                    return Err(format!("update_attempts={n} is not in 1..=10000"));
                }
                self.update_attempts = n as u32;
            }
            "update_ids" => {
                let n = num(value)?;
                if !(1..=10_000).contains(&n) {
                    return Err(format!("update_ids={n} is not in 1..=10000"));
                }
                self.update_ids = n as usize;
            }
            "temp_max_age" => {
                let n = num(value)?;
                if !(1..=31_536_000).contains(&n) {
                    return Err(format!("temp_max_age={n} is not in 1..=31536000"));
                }
                self.temp_max_age = n;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A store of objects by bucket and key, and of evolution state by evolution and
/// generation.
pub trait BlobStore: Send + Sync {
    /// Writes an object whole; readers see the old or the new object, never a part.
    fn put(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<()>;
    /// Writes an object only if there is none under that key; false when there was.
    /// Two writers can never both succeed.
    fn put_new(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<bool>;
    /// Writes a state row only if there is none for that evolution and generation;
    /// false when there was.
    fn put_state(&self, item: &StateItem) -> Result<bool>;
    /// The state rows of an evolution, by generation.
    fn get_states(&self, evolution_id: &str) -> Result<Vec<StateItem>>;
    /// Deletes a state row; deleting a missing row is not an error.
    fn delete_state(&self, evolution_id: &str, generation: u32) -> Result<()>;
    /// Reads an object; `None` when there is none.
    fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Vec<u8>>>;
    /// Reads an object with its version, for a later [`BlobStore::put_if`].
    fn get_versioned(&self, bucket: Bucket, key: &str) -> Result<Option<(Vec<u8>, Version)>>;
    /// Replaces an object only if it is still at `version` (compare-and-swap); false
    /// when it was changed or deleted since. Of writers holding the same version at most
    /// one succeeds; the others re-read and try again.
    fn put_if(&self, bucket: Bucket, key: &str, bytes: &[u8], version: &Version) -> Result<bool>;
    /// Keys under a prefix, sorted.
    fn list(&self, bucket: Bucket, prefix: &str) -> Result<Vec<String>>;
    /// Deletes an object; deleting a missing object is not an error.
    fn delete(&self, bucket: Bucket, key: &str) -> Result<()>;
    /// Removes what writes cut short left behind (a local store's temporary files
    /// older than [`StoreSettings::temp_max_age`]); how many were removed.
    fn sweep(&self) -> Result<u64> {
        Ok(0)
    }
    /// A description for messages (`file:///path`).
    fn describe(&self) -> String;
    /// The settings given with the store URI.
    fn settings(&self) -> &StoreSettings;
}

/// Splits `PATH?name=value&…` into the path and the settings of its parameters.
fn file_settings(uri: &str, rest: &str) -> Result<(PathBuf, StoreSettings)> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut settings = StoreSettings::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let bad = |reason: String| ErrorKind::StoreUri {
            uri: uri.to_string(),
            reason,
        };
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("parameter {pair:?} has no value")))?;
        if !settings.set(k, v).map_err(bad)? {
            return Err(bad(format!("unknown parameter {k:?}")).into());
        }
    }
    Ok((PathBuf::from(path), settings))
}

/// The default store URI: `file://./.tdev`.
pub const DEFAULT_STORE: &str = "file://.tdev";

/// Opens a store from its URI: `file://PATH` (or a bare path), or `s3://…` in a build
/// with the `aws` feature.
pub fn open(uri: &str) -> Result<Arc<dyn BlobStore>> {
    let bad = |reason: &str| ErrorKind::StoreUri {
        uri: uri.to_string(),
        reason: reason.to_string(),
    };
    if let Some(path) = uri.strip_prefix("file://") {
        let (path, settings) = file_settings(uri, path)?;
        if path.as_os_str().is_empty() {
            return Err(bad("file:// needs a path").into());
        }
        return Ok(Arc::new(FsStore::open(path)?.with_settings(settings)));
    }
    if uri.starts_with("s3://") {
        return open_s3(uri);
    }
    if uri.contains("://") {
        return Err(bad("expected file://PATH or s3://BUCKET?agents=..&table=..").into());
    }
    if uri.is_empty() {
        return Err(bad("empty").into());
    }
    let (path, settings) = file_settings(uri, uri)?;
    Ok(Arc::new(FsStore::open(path)?.with_settings(settings)))
}

#[cfg(feature = "aws")]
fn open_s3(uri: &str) -> Result<Arc<dyn BlobStore>> {
    Ok(Arc::new(S3Store::open(uri)?))
}

#[cfg(feature = "aws")]
fn init_s3(uri: &str) -> Result<Vec<String>> {
    S3Store::open(uri)?.init()
}

#[cfg(not(feature = "aws"))]
fn open_s3(uri: &str) -> Result<Arc<dyn BlobStore>> {
    Err(ErrorKind::NoAws {
        uri: uri.to_string(),
    }
    .into())
}

#[cfg(not(feature = "aws"))]
fn init_s3(uri: &str) -> Result<Vec<String>> {
    open_s3(uri).map(|_| Vec::new())
}

/// Checks that a key is safe on every backend: `[A-Za-z0-9._:-]` segments joined by `/`,
/// none empty, `.` or `..`.
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(ErrorKind::Key(key.to_string()).into())
    }
}

/// Creates what a store needs (directories; or the buckets and the state table) and
/// checks what is there. Returns one line per thing checked.
pub fn init(uri: &str) -> Result<Vec<String>> {
    if uri.starts_with("s3://") {
        return init_s3(uri);
    }
    let store = open(uri)?;
    let (path, settings) = file_settings(uri, uri.strip_prefix("file://").unwrap_or(uri))?;
    FsStore::open(path)?.with_settings(settings).create()?;
    Ok(vec![format!("{}: ready", store.describe())])
}

/// The ids of the evolutions in a store: those with something under `checkpoints/`.
pub fn evolution_ids(store: &dyn BlobStore) -> Result<Vec<String>> {
    let mut ids: Vec<String> = store
        .list(Bucket::Evolution, "checkpoints/")?
        .iter()
        .filter_map(|k| k.split('/').nth(1).map(str::to_string))
        .collect();
    ids.dedup();
    Ok(ids)
}

/// What [`copy`] moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Objects copied.
    pub objects: u64,
    /// State rows copied (rows already present in the target are kept).
    pub states: u64,
}

/// Copies every object of both buckets and every state row from one store to another;
/// module bytes are checked against their id on the way. The emergency-stop marker is
/// not copied.
pub fn copy(from: &dyn BlobStore, to: &dyn BlobStore) -> Result<CopyReport> {
    let mut report = CopyReport::default();
    for bucket in [Bucket::Agents, Bucket::Evolution] {
        for key in from.list(bucket, "")? {
            if bucket == Bucket::Evolution && key.starts_with("control/") {
                continue;
            }
            let Some(bytes) = from.get(bucket, &key)? else {
                continue;
            };
            if bucket == Bucket::Agents
                && let Some(hex) = key.strip_prefix("source/")
                && AgentId::from_hex(hex).ok() != Some(AgentId::of(&bytes))
            {
                return Err(ErrorKind::Corrupt {
                    key,
                    reason: "bytes do not hash to their id".into(),
                }
                .into());
            }
            // A record that does not parse, or whose checksum does not match, is not
            // copied as if it were sound.
            if key.ends_with(".json") {
                let body = crate::seal::unseal(&key, &bytes)?;
                if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
                    return Err(ErrorKind::Corrupt {
                        key,
                        reason: "not a JSON document (truncated or garbled)".into(),
                    }
                    .into());
                }
            }
            to.put(bucket, &key, &bytes)?;
            report.objects += 1;
        }
    }
    for id in evolution_ids(from)? {
        for item in from.get_states(&id)? {
            to.put_state(&item)?;
            report.states += 1;
        }
    }
    Ok(report)
}
