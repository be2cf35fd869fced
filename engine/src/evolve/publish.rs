//! How a generation's records reach their keys, and how the head moves.
//!
//! A commit creates the checkpoint with a conditional create; the checkpoint carries
//! the generation's three records (generation, fitness log, safety snapshot) as text
//! with the SHA-256 of each. Only the process whose checkpoint was created writes the
//! records under their keys ("publishes" them), then moves the head. A process that
//! loses the race has written nothing. A crash between the checkpoint and the
//! publishing is repaired from the checkpoint's text by whoever resumes.
//!
//! The head moves only by a conditional write from the head this run read or wrote
//! itself (`Head::writer`), so a rollback made while a run is live stops the run at its
//! next commit instead of being silently undone.

use super::stored::{gen_key, head_key};
use crate::error::{ErrorKind, Result, from_json, to_json};
use crate::records::{Checkpoint, CommittedRecords, Head};
use crate::seal::sha256_hex;
use crate::store::{BlobStore, Bucket, StateItem};

/// The kinds of record a checkpoint commits, in their order.
pub(super) const KINDS: [&str; 3] = ["generations", "fitness_logs", "safety_snapshots"];

/// What a checkpoint says of `records` (each JSON text, as `to_sealed_json` made it).
pub(super) fn committed(records: [Vec<u8>; 3]) -> Result<CommittedRecords> {
    let [generation, fitness_log, safety_snapshot] = records.each_ref().map(|r| sha256_hex(r));
    let text = records
        .into_iter()
        .map(|r| {
            String::from_utf8(r).map_err(|_| ErrorKind::Config("a record that is not UTF-8").into())
        })
        .collect::<Result<Vec<String>>>()?;
    Ok(CommittedRecords {
        generation,
        fitness_log,
        safety_snapshot,
        text,
    })
}

fn digest_of(c: &CommittedRecords, kind: usize) -> &str {
    match kind {
        0 => &c.generation,
        1 => &c.fitness_log,
        _ => &c.safety_snapshot,
    }
}

/// The checkpoint's own text of record `kind`, when it matches its digest.
fn own_text(c: &CommittedRecords, kind: usize) -> Option<&[u8]> {
    c.text
        .get(kind)
        .map(String::as_bytes)
        .filter(|t| sha256_hex(t) == digest_of(c, kind))
}

/// The record of `KINDS[kind]` that checkpoint `cp` of evolution `id` commits: the one
/// under its key when it is that one, else the checkpoint's own copy (a commit cut short
/// before it published). A record that is neither is a corrupt record, named.
/// Checkpoints written before they carried their records take the record under its key
/// as it is.
pub(super) fn read_record(
    store: &dyn BlobStore,
    id: &str,
    cp: &Checkpoint,
    kind: usize,
) -> Result<Vec<u8>> {
    let key = gen_key(KINDS[kind], id, cp.generation);
    let found = store.get(Bucket::Evolution, &key)?;
    let Some(c) = &cp.records else {
        return found.ok_or_else(|| {
            ErrorKind::Corrupt {
                key,
                reason: "missing: the generation's record is not in the store".into(),
            }
            .into()
        });
    };
    if let Some(b) = found
        && sha256_hex(&b) == digest_of(c, kind)
    {
        return Ok(b);
    }
    own_text(c, kind).map(<[u8]>::to_vec).ok_or_else(|| {
        ErrorKind::Corrupt {
            key,
            reason: format!(
                "missing, or its checksum is not the one {} commits",
                gen_key("checkpoints", id, cp.generation)
            ),
        }
        .into()
    })
}

/// Writes the records checkpoint `cp` commits under their keys where they are not
/// already there, from the checkpoint's own text.
pub(super) fn publish(store: &dyn BlobStore, id: &str, cp: &Checkpoint) -> Result<()> {
    let Some(c) = &cp.records else {
        return Ok(());
    };
    for (kind, prefix) in KINDS.iter().enumerate() {
        let key = gen_key(prefix, id, cp.generation);
        if store
            .get(Bucket::Evolution, &key)?
            .is_some_and(|b| sha256_hex(&b) == digest_of(c, kind))
        {
            continue;
        }
        let text = own_text(c, kind).ok_or_else(|| ErrorKind::Corrupt {
            key: gen_key("checkpoints", id, cp.generation),
            reason: format!("its copy of the {prefix} record does not match its checksum"),
        })?;
        store.put(Bucket::Evolution, &key, text)?;
    }
    Ok(())
}

/// The head of evolution `id` as stored; `None` when there is none.
pub(super) fn read_head(store: &dyn BlobStore, id: &str) -> Result<Option<Head>> {
    let key = head_key(id);
    store
        .get(Bucket::Evolution, &key)?
        .map(|b| from_json(&key, &b))
        .transpose()
}

/// Moves the head of evolution `id` to `new`, only if it is still `expected` (`None`:
/// there is none). `Ok(Err(current))` when it is not: another process moved it.
pub(super) fn move_head(
    store: &dyn BlobStore,
    id: &str,
    expected: Option<&Head>,
    new: &Head,
) -> Result<std::result::Result<(), Option<Head>>> {
    let key = head_key(id);
    let bytes = to_json("the head", new)?;
    let moved = match store.get_versioned(Bucket::Evolution, &key)? {
        None => expected.is_none() && store.put_new(Bucket::Evolution, &key, &bytes)?,
        Some((b, version)) => {
            let current: Head = from_json(&key, &b)?;
            Some(&current) == expected && store.put_if(Bucket::Evolution, &key, &bytes, &version)?
        }
    };
    if moved {
        return Ok(Ok(()));
    }
    // A write answered as lost (a retried S3 call meeting its own change) left our
    // own head, writer id and all: it was made.
    match read_head(store, id)? {
        Some(current) if &current == new => Ok(Ok(())),
        current => Ok(Err(current)),
    }
}

/// Moves this run's checkpoint `g` of evolution `id` (`ours`, as it created it) to
/// `checkpoints/<id>/abandoned/<stamp>/` and deletes its state row: the commit that
/// wrote it lost the head to a rollback. The row goes first, so a run killed part-way
/// never leaves a row without its checkpoint. Another checkpoint under that key (a
/// branch bred after the rollback) is left alone, and its records are written again
/// over any this run wrote while stalled. When the head has meanwhile reached `g`
/// again (a resumed twin adopted this very checkpoint), checkpoint and row are put
/// back.
pub(super) fn abandon(
    store: &dyn BlobStore,
    id: &str,
    g: u32,
    stamp: &str,
    ours: &[u8],
    row: &StateItem,
) -> Result<()> {
    let key = gen_key("checkpoints", id, g);
    store.delete_state(id, g)?;
    match store.get(Bucket::Evolution, &key)? {
        Some(bytes) if bytes == ours => {
            store.put(
                Bucket::Evolution,
                &format!("checkpoints/{id}/abandoned/{stamp}/{g:06}.json"),
                &bytes,
            )?;
            store.delete(Bucket::Evolution, &key)?;
        }
        Some(bytes) => {
            let theirs: Checkpoint = from_json(&key, &bytes)?;
            publish(store, id, &theirs)?;
            return Ok(());
        }
        None => {}
    }
    if read_head(store, id)?.is_some_and(|h| h.generation >= g) {
        store.put_new(Bucket::Evolution, &key, ours)?;
        store.put_state(row)?;
    }
    Ok(())
}
