//! The emergency stop's marker in the store: `tdev stop` and `POST /v1/emergency-stop`
//! write it, every running `tdev evolve` on the store polls it.

use engine::store::{BlobStore, Bucket};
use serde::{Deserialize, Serialize};

/// Where the stop marker lives in the evolution bucket.
pub const STOP_KEY: &str = "control/stop.json";

/// The stop marker: when the stop was asked for.
#[derive(Debug, Serialize, Deserialize)]
pub struct StopMarker {
    /// RFC 3339 time of the request.
    pub at: String,
}

/// Writes the stop marker that every running `evolve` on the store polls.
pub fn request_stop(store: &dyn BlobStore) -> anyhow::Result<()> {
    let marker = serde_json::to_vec(&StopMarker {
        at: engine::time::now_rfc3339(),
    })?;
    store.put(Bucket::Evolution, STOP_KEY, &marker)?;
    Ok(())
}

/// The time of the stop marker in the store, if there is one that parses.
pub fn stop_requested_at(store: &dyn BlobStore) -> Option<String> {
    let bytes = store.get(Bucket::Evolution, STOP_KEY).ok()??;
    serde_json::from_slice::<StopMarker>(&bytes)
        .ok()
        .map(|m| m.at)
}
