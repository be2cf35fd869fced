//! Storage backends. Both hold the layout of DESIGN.md § Storage: an evolution bucket
//! (`checkpoints/`, `generations/`, `fitness_logs/`, `safety_snapshots/`) and an agents
//! bucket (`source/`, `compiled/`, `metadata/`, `performance/`, `quarantine/`).

mod fs;

pub use fs::FsStore;

use crate::error::{ErrorKind, Result};
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

/// A store of objects by bucket and key.
pub trait BlobStore: Send + Sync {
    /// Writes an object whole; readers see the old or the new object, never a part.
    fn put(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<()>;
    /// Reads an object; `None` when there is none.
    fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Vec<u8>>>;
    /// Keys under a prefix, sorted.
    fn list(&self, bucket: Bucket, prefix: &str) -> Result<Vec<String>>;
    /// Deletes an object; deleting a missing object is not an error.
    fn delete(&self, bucket: Bucket, key: &str) -> Result<()>;
    /// A description for messages (`file:///path`).
    fn describe(&self) -> String;
}

/// The default store URI: `file://./.tdev`.
pub const DEFAULT_STORE: &str = "file://.tdev";

/// Opens a store from its URI: `file://PATH` (or a bare path).
pub fn open(uri: &str) -> Result<Arc<dyn BlobStore>> {
    let bad = |reason: &str| ErrorKind::StoreUri {
        uri: uri.to_string(),
        reason: reason.to_string(),
    };
    if let Some(path) = uri.strip_prefix("file://") {
        if path.is_empty() {
            return Err(bad("file:// needs a path").into());
        }
        return Ok(Arc::new(FsStore::open(PathBuf::from(path))?));
    }
    if uri.starts_with("s3://") {
        return Err(bad("the S3 and DynamoDB backend is not built yet; use file://PATH").into());
    }
    if uri.contains("://") {
        return Err(bad("expected file://PATH or s3://BUCKET?agents=..&table=..").into());
    }
    if uri.is_empty() {
        return Err(bad("empty").into());
    }
    Ok(Arc::new(FsStore::open(PathBuf::from(uri))?))
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
