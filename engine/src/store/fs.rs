//! The local-directory backend (`file://PATH`).

use super::{BlobStore, Bucket, StateItem, StoreSettings, Version, check_key};
use crate::error::{ErrorKind, Result, from_json, to_json};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A store in a local directory: `PATH/evolution/…` and `PATH/agents/…`. Writes go to
/// a temporary file that is synced and renamed into place, so a crash leaves either
/// the old object or the new one. A conditional write ([`BlobStore::put_if`]) holds an
/// exclusive lock on `PATH/locks/<bucket>/<key>.lock` (`flock`, so it also excludes other
/// processes) while it compares the object's digest and renames the new one into place.
pub struct FsStore {
    root: PathBuf,
    settings: StoreSettings,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> crate::Error + '_ {
    move |source| {
        ErrorKind::Io {
            path: path.display().to_string(),
            source,
        }
        .into()
    }
}

/// The entries of a directory; `None` when there is no such directory.
fn read_dir(dir: &Path) -> Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Writes `bytes` to a synced temporary file beside `path`, puts it in place with
/// `place` (given the temporary file), and makes the directory entry durable. On an
/// error the temporary file is removed (best effort: the error returned is the one
/// that matters).
fn via_temp<T>(
    path: &Path,
    bytes: &[u8],
    place: impl FnOnce(&Path) -> std::io::Result<T>,
) -> Result<T> {
    let dir = path.parent().unwrap_or(path).to_path_buf();
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<T> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        let placed = place(&tmp)?;
        File::open(&dir)?.sync_all()?;
        Ok(placed)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(path)(e)
    })
}

/// Writes `bytes` at `path` only if nothing is there: the temporary file is
/// hard-linked into place (a link fails when the name exists, so the create-if-absent
/// is atomic).
fn create_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    via_temp(path, bytes, |tmp| {
        let created = match fs::hard_link(tmp, path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        fs::remove_file(tmp)?;
        Ok(created)
    })
}

/// Writes `bytes` at `path`: the temporary file is renamed into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    via_temp(path, bytes, |tmp| fs::rename(tmp, path))
}

impl FsStore {
    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: PathBuf) -> Result<FsStore> {
        for b in ["evolution", "agents"] {
            let dir = root.join(b);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(FsStore {
            root,
            settings: StoreSettings::default(),
        })
    }

    /// The same store with the settings of its URI.
    pub fn with_settings(mut self, settings: StoreSettings) -> FsStore {
        self.settings = settings;
        self
    }

    fn bucket_dir(bucket: Bucket) -> &'static str {
        match bucket {
            Bucket::Evolution => "evolution",
            Bucket::Agents => "agents",
        }
    }

    fn path(&self, bucket: Bucket, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(Self::bucket_dir(bucket)).join(key))
    }
}

impl BlobStore for FsStore {
    fn put(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(bucket, key)?;
        write_atomic(&path, bytes)
    }

    fn put_new(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<bool> {
        create_new(&self.path(bucket, key)?, bytes)
    }

    /// The state table lives beside the buckets, as `state/<evolution>/<gen>.json`.
    fn put_state(&self, item: &StateItem) -> Result<bool> {
        let key = format!("{}/{:06}.json", item.evolution_id, item.generation);
        check_key(&key)?;
        let bytes = to_json("a state row", item)?;
        create_new(&self.root.join("state").join(&key), &bytes)
    }

    fn get_states(&self, evolution_id: &str) -> Result<Vec<StateItem>> {
        check_key(evolution_id)?;
        let dir = self.root.join("state").join(evolution_id);
        let mut out = Vec::new();
        for entry in read_dir(&dir)?.into_iter().flatten() {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            let bytes = fs::read(entry.path()).map_err(io(&entry.path()))?;
            out.push(from_json::<StateItem>(
                &format!("state/{evolution_id}/{name}"),
                &bytes,
            )?);
        }
        out.sort_by_key(|i| i.generation);
        Ok(out)
    }

    fn delete_state(&self, evolution_id: &str, generation: u32) -> Result<()> {
        let key = format!("{evolution_id}/{generation:06}.json");
        check_key(&key)?;
        let path = self.root.join("state").join(&key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(bucket, key)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn get_versioned(&self, bucket: Bucket, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        Ok(self.get(bucket, key)?.map(|b| {
            let v = Version(runtime::agent_id(&b));
            (b, v)
        }))
    }

    fn put_if(&self, bucket: Bucket, key: &str, bytes: &[u8], version: &Version) -> Result<bool> {
        let path = self.path(bucket, key)?;
        let lock_path = self
            .root
            .join("locks")
            .join(Self::bucket_dir(bucket))
            .join(format!("{key}.lock"));
        let lock_dir = lock_path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&lock_dir).map_err(io(&lock_dir))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        // Held until `lock` is dropped (closing the file releases it).
        lock.lock().map_err(io(&lock_path))?;
        let current = match fs::read(&path) {
            Ok(b) => Some(Version(runtime::agent_id(&b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&path)(e)),
        };
        if current.as_ref() != Some(version) {
            return Ok(false);
        }
        write_atomic(&path, bytes)?;
        Ok(true)
    }

    fn list(&self, bucket: Bucket, prefix: &str) -> Result<Vec<String>> {
        let base = self.path(bucket, "x")?;
        let base = base.parent().unwrap_or(&self.root).to_path_buf();
        let mut out = Vec::new();
        let mut stack = vec![(base.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            for entry in read_dir(&dir)?.into_iter().flatten() {
                let entry = entry.map_err(io(&dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") {
                    continue;
                }
                let key = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let ft = entry.file_type().map_err(io(&dir))?;
                if ft.is_dir() {
                    if prefix.starts_with(&key) || key.starts_with(prefix) || prefix.is_empty() {
                        stack.push((entry.path(), key));
                    }
                } else if ft.is_file() && key.starts_with(prefix) && check_key(&key).is_ok() {
                    out.push(key);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, bucket: Bucket, key: &str) -> Result<()> {
        let path = self.path(bucket, key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn settings(&self) -> &StoreSettings {
        &self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open(dir.path().to_path_buf()).unwrap();
        s.put(Bucket::Agents, "source/abc", b"123").unwrap();
        s.put(Bucket::Agents, "quarantine/abc.json", b"{}").unwrap();
        s.put(Bucket::Evolution, "checkpoints/e1/0", b"x").unwrap();
        assert_eq!(
            s.get(Bucket::Agents, "source/abc").unwrap().unwrap(),
            b"123"
        );
        assert_eq!(s.get(Bucket::Agents, "source/none").unwrap(), None);
        assert_eq!(
            s.list(Bucket::Agents, "").unwrap(),
            vec!["quarantine/abc.json", "source/abc"]
        );
        assert_eq!(
            s.list(Bucket::Agents, "source/").unwrap(),
            vec!["source/abc"]
        );
        s.put(Bucket::Agents, "source/abc", b"456").unwrap();
        assert_eq!(
            s.get(Bucket::Agents, "source/abc").unwrap().unwrap(),
            b"456"
        );
        s.delete(Bucket::Agents, "source/abc").unwrap();
        s.delete(Bucket::Agents, "source/abc").unwrap();
        assert_eq!(
            s.list(Bucket::Agents, "source/").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn conditional_writes_need_the_version_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open(dir.path().to_path_buf()).unwrap();
        s.put(Bucket::Agents, "quarantine/r.json", b"one").unwrap();
        let (_, v1) = s
            .get_versioned(Bucket::Agents, "quarantine/r.json")
            .unwrap()
            .unwrap();
        assert!(
            s.put_if(Bucket::Agents, "quarantine/r.json", b"two", &v1)
                .unwrap()
        );
        // a writer still holding the first version loses
        assert!(
            !s.put_if(Bucket::Agents, "quarantine/r.json", b"three", &v1)
                .unwrap()
        );
        assert_eq!(
            s.get(Bucket::Agents, "quarantine/r.json").unwrap().unwrap(),
            b"two"
        );
        s.delete(Bucket::Agents, "quarantine/r.json").unwrap();
        assert!(
            !s.put_if(Bucket::Agents, "quarantine/r.json", b"four", &v1)
                .unwrap()
        );
        // lock files live outside the buckets
        assert!(s.list(Bucket::Agents, "").unwrap().is_empty());
    }

    #[test]
    fn hostile_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open(dir.path().to_path_buf()).unwrap();
        for key in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "",
            "a b",
            "a\0b",
        ] {
            assert!(s.put(Bucket::Agents, key, b"x").is_err(), "{key:?}");
            assert!(s.get(Bucket::Agents, key).is_err(), "{key:?}");
        }
    }
}
