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

/// Refuses a path of the store that goes through a symbolic link: `rel`'s components
/// under `root` (the store's own folder may be a link; nothing inside it is followed,
/// so a planted link cannot make a write, read or delete reach outside the store).
fn no_links(root: &Path, rel: &Path) -> Result<()> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(io(&at)(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a symbolic link inside the store: not followed",
                )));
            }
            Ok(_) => {}
            // The rest does not exist yet: nothing to follow.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&at)(e)),
        }
    }
    Ok(())
}

/// A temporary name no one can guess: the process, a counter and 128 random bits.
fn temp_name() -> String {
    format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        crate::id::random_hex()
    )
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
    let tmp = dir.join(temp_name());
    let write = || -> std::io::Result<T> {
        // Created here and now (O_EXCL): never a file or link already there.
        let mut f = File::options().write(true).create_new(true).open(&tmp)?;
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
    /// The store at `root`. Nothing is created until something is written: reading a
    /// store that is not there (a mistyped path) finds it empty and leaves no folder
    /// behind. [`FsStore::create`] makes its folders.
    pub fn open(root: PathBuf) -> Result<FsStore> {
        Ok(FsStore {
            root,
            settings: StoreSettings::default(),
        })
    }

    /// Makes the store's folders (`tdev store init`).
    pub fn create(&self) -> Result<()> {
        for b in ["evolution", "agents"] {
            no_links(&self.root, Path::new(b))?;
            let dir = self.root.join(b);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(())
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
        let rel = Path::new(Self::bucket_dir(bucket)).join(key);
        no_links(&self.root, &rel)?;
        Ok(self.root.join(rel))
    }

    /// The path of a state row, `state/<key>`, refused through a link.
    fn state_path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        let rel = Path::new("state").join(key);
        no_links(&self.root, &rel)?;
        Ok(self.root.join(rel))
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
        let path = self.state_path(&key)?;
        let bytes = to_json("a state row", item)?;
        create_new(&path, &bytes)
    }

    fn get_states(&self, evolution_id: &str) -> Result<Vec<StateItem>> {
        let dir = self.state_path(evolution_id)?;
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
        let path = self.state_path(&key)?;
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
        let lock_rel = Path::new("locks")
            .join(Self::bucket_dir(bucket))
            .join(format!("{key}.lock"));
        no_links(&self.root, &lock_rel)?;
        let lock_path = self.root.join(lock_rel);
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
                // The entry's own type: a symbolic link is neither a folder nor a file
                // here, and is not followed.
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

    fn sweep(&self) -> Result<u64> {
        let max_age = std::time::Duration::from_secs(self.settings.temp_max_age);
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        // Every folder of the store, links not followed (an entry's own type).
        let mut stack: Vec<PathBuf> = ["evolution", "agents", "state", "locks"]
            .iter()
            .map(|d| self.root.join(d))
            .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .collect();
        while let Some(dir) = stack.pop() {
            for entry in read_dir(&dir)?.into_iter().flatten() {
                let entry = entry.map_err(io(&dir))?;
                let ft = entry.file_type().map_err(io(&dir))?;
                if ft.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                if !ft.is_file() || !entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    continue;
                }
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age >= max_age);
                if old {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io(&entry.path())(e)),
                    }
                }
            }
        }
        Ok(removed)
    }

    fn settings(&self) -> &StoreSettings {
        &self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16, point 8: opening and reading a store that is not there creates nothing.
    #[test]
    fn reading_a_missing_store_creates_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("typo");
        let s = FsStore::open(root.clone()).expect("store");
        assert!(
            s.list(Bucket::Evolution, "checkpoints/")
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            s.get(Bucket::Agents, "quarantine/x.json").expect("get"),
            None
        );
        assert!(s.get_states("e").expect("states").is_empty());
        assert!(!root.exists(), "a read created the store");
        s.create().expect("create");
        assert!(root.join("agents").is_dir() && root.join("evolution").is_dir());
    }

    /// Issue 16, point 5: temporaries a writer planted links at, under the names the
    /// store used to use, are not followed.
    #[test]
    fn a_planted_temporary_link_is_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = FsStore::open(dir.path().join("store")).expect("store");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"safe").expect("victim");
        let target = dir.path().join("store/agents/source");
        fs::create_dir_all(&target).expect("mkdir");
        let next = TMP_COUNTER.load(Ordering::Relaxed);
        for n in next..next + 2000 {
            let link = target.join(format!(".tmp-{}-{n}", std::process::id()));
            std::os::unix::fs::symlink(&victim, link).expect("plant");
        }
        s.put(Bucket::Agents, "source/x", b"evil").expect("put");
        assert_eq!(fs::read(&victim).expect("victim"), b"safe");
        assert_eq!(
            s.get(Bucket::Agents, "source/x").expect("get"),
            Some(b"evil".to_vec())
        );
    }

    /// Issue 16, point 5: a folder of the store replaced by a link to one outside is
    /// refused for every operation, and nothing outside is read, written or deleted.
    #[test]
    fn a_linked_folder_inside_the_store_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("store");
        let s = FsStore::open(root.clone()).expect("store");
        s.create().expect("create");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).expect("mkdir");
        fs::write(outside.join("k"), b"keep me").expect("outside file");
        std::os::unix::fs::symlink(&outside, root.join("agents/source")).expect("link");
        let refused = |r: Result<()>, what: &str| {
            let e = crate::error::chain(&r.expect_err(what));
            assert!(e.contains("symbolic link inside the store"), "{what}: {e}");
        };
        refused(s.delete(Bucket::Agents, "source/k"), "delete");
        refused(s.get(Bucket::Agents, "source/k").map(|_| ()), "get");
        refused(s.put(Bucket::Agents, "source/k", b"x"), "put");
        refused(
            s.put_new(Bucket::Agents, "source/n", b"x").map(|_| ()),
            "put_new",
        );
        assert!(s.list(Bucket::Agents, "source/").expect("list").is_empty());
        assert_eq!(fs::read(outside.join("k")).expect("outside"), b"keep me");
        assert!(!outside.join("n").exists());
        // a link as the object itself, and in the state rows and the locks
        fs::remove_file(root.join("agents/source")).expect("unlink");
        fs::create_dir_all(root.join("agents/source")).expect("mkdir");
        std::os::unix::fs::symlink(outside.join("k"), root.join("agents/source/k")).expect("link");
        refused(
            s.get(Bucket::Agents, "source/k").map(|_| ()),
            "get of a link",
        );
        refused(s.delete(Bucket::Agents, "source/k"), "delete of a link");
        std::os::unix::fs::symlink(&outside, root.join("state")).expect("link");
        refused(s.delete_state("e", 1), "delete_state");
        refused(s.get_states("e").map(|_| ()), "get_states");
        assert_eq!(fs::read(outside.join("k")).expect("outside"), b"keep me");
    }

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

    #[test]
    fn sweep_removes_old_temporaries_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open(dir.path().to_path_buf()).unwrap();
        s.put(Bucket::Evolution, "checkpoints/e/000000.json", b"{}")
            .unwrap();
        let folder = dir.path().join("evolution/checkpoints/e");
        let old = folder.join(".tmp-1-2-dead");
        let fresh = folder.join(".tmp-1-3-live");
        for p in [&old, &fresh] {
            std::fs::write(p, b"partial").unwrap();
        }
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        // a link with a temporary's name is not followed
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("keep"), folder.join(".tmp-9-9-link"))
            .unwrap();
        assert_eq!(s.sweep().unwrap(), 1);
        assert!(!old.exists() && fresh.exists());
        assert!(outside.path().join("keep").exists());
        assert!(
            s.get(Bucket::Evolution, "checkpoints/e/000000.json")
                .unwrap()
                .is_some()
        );
    }
}
