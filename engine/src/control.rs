//! The emergency stop's markers in the store. `tdev stop` and `POST /v1/emergency-stop`
//! write `control/stop.json`; every running `tdev evolve` on the store polls it and
//! halts, and so does every `tdev worker`, which then takes no job until `tdev resume`
//! writes a newer `control/resume.json`.

use crate::error::{Result, to_json};
use crate::store::{BlobStore, Bucket};
use serde::{Deserialize, Serialize};

/// Where the stop marker lives in the evolution bucket.
pub const STOP_KEY: &str = "control/stop.json";

/// Where the resume marker lives in the evolution bucket.
pub const RESUME_KEY: &str = "control/resume.json";

/// A marker: when the stop (or the resume) was asked for.
#[derive(Debug, Serialize, Deserialize)]
pub struct Marker {
    /// RFC 3339 time of the request.
    pub at: String,
}

fn write(store: &dyn BlobStore, key: &str) -> Result<String> {
    let at = crate::time::now_rfc3339();
    store.put(
        Bucket::Evolution,
        key,
        &to_json("a control marker", &Marker { at: at.clone() })?,
    )?;
    Ok(at)
}

fn read(store: &dyn BlobStore, key: &str) -> Result<Option<String>> {
    Ok(store
        .get(Bucket::Evolution, key)?
        .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
        .map(|m| m.at))
}

/// Writes the stop marker; returns its time.
pub fn request_stop(store: &dyn BlobStore) -> Result<String> {
    write(store, STOP_KEY)
}

/// Writes the resume marker, which lets workers take jobs again; returns its time.
pub fn request_resume(store: &dyn BlobStore) -> Result<String> {
    write(store, RESUME_KEY)
}

/// The time of the stop marker in the store, if there is one that parses.
pub fn stop_requested_at(store: &dyn BlobStore) -> Result<Option<String>> {
    read(store, STOP_KEY)
}

/// The time of the stop that holds workers: the stop marker's, when no resume marker
/// is newer. `None` when workers may take jobs.
pub fn halted_since(store: &dyn BlobStore) -> Result<Option<String>> {
    let Some(stop) = stop_requested_at(store)? else {
        return Ok(None);
    };
    Ok(match read(store, RESUME_KEY)? {
        Some(resume) if resume >= stop => None,
        _ => Some(stop),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_holds_until_a_newer_resume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open(dir.path().to_str().expect("utf-8")).expect("store");
        assert_eq!(halted_since(store.as_ref()).expect("read"), None);
        let at = request_stop(store.as_ref()).expect("stop");
        assert_eq!(halted_since(store.as_ref()).expect("read"), Some(at));
        request_resume(store.as_ref()).expect("resume");
        assert_eq!(halted_since(store.as_ref()).expect("read"), None);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let again = request_stop(store.as_ref()).expect("stop");
        assert_eq!(halted_since(store.as_ref()).expect("read"), Some(again));
        // a marker that does not parse is no marker
        store
            .put(Bucket::Evolution, STOP_KEY, b"not json")
            .expect("put");
        assert_eq!(stop_requested_at(store.as_ref()).expect("read"), None);
    }
}
