//! How a generation's records reach their keys, and how the head moves.
//!
//! A commit stages its three records (generation, fitness log, safety snapshot) in one
//! object under a key of its own, then creates the checkpoint, which names that object
//! and the SHA-256 of each record. Only the process whose checkpoint was created writes
//! the records under their keys ("publishes" them), then moves the head. A process
//! that loses the race has written only its staged object, which it deletes: nothing
//! the winner owns. A crash between the checkpoint and the publishing is repaired from
//! the staged object by whoever resumes.
//!
//! The head moves only by a conditional write from the head this run read or wrote
//! itself (`Head::writer`), so a rollback made while a run is live stops the run at its
//! next commit instead of being silently undone.

use super::stored::{gen_key, head_key};
use crate::error::{ErrorKind, Result, from_json, to_json};
use crate::records::{Checkpoint, CommittedRecords, Head};
use crate::seal::sha256_hex;
use crate::store::{BlobStore, Bucket};

/// The kinds of record a checkpoint commits, in their staged order.
pub(super) const KINDS: [&str; 3] = ["generations", "fitness_logs", "safety_snapshots"];

const MAGIC: &[u8] = b"tdev-staged 1\n";

/// One object holding the three records: a first line naming the format, a line with
/// their lengths, then their bytes. (Records are large and full of quotes, so they are
/// framed rather than escaped into JSON.)
pub(super) fn stage(records: &[Vec<u8>; 3]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let lengths: Vec<String> = records.iter().map(|r| r.len().to_string()).collect();
    out.extend_from_slice(lengths.join(" ").as_bytes());
    out.push(b'\n');
    for r in records {
        out.extend_from_slice(r);
    }
    out
}

/// The records of a staged object.
fn unstage(key: &str, bytes: &[u8]) -> Result<[Vec<u8>; 3]> {
    let corrupt = |reason: &str| ErrorKind::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("not a staged commit"))?;
    let nl = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt("no lengths"))?;
    let lengths: Vec<usize> = std::str::from_utf8(&rest[..nl])
        .ok()
        .map(|l| l.split(' ').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    let mut body = &rest[nl + 1..];
    if lengths.len() != 3 || lengths.iter().sum::<usize>() != body.len() {
        return Err(corrupt("its lengths do not match its size").into());
    }
    let mut out: [Vec<u8>; 3] = Default::default();
    for (slot, n) in out.iter_mut().zip(lengths) {
        let (this, more) = body.split_at(n);
        *slot = this.to_vec();
        body = more;
    }
    Ok(out)
}

/// The digests of `records`, staged under `staged`.
pub(super) fn digests(staged: String, records: &[Vec<u8>; 3]) -> CommittedRecords {
    CommittedRecords {
        staged,
        generation: sha256_hex(&records[0]),
        fitness_log: sha256_hex(&records[1]),
        safety_snapshot: sha256_hex(&records[2]),
    }
}

fn digest_of(c: &CommittedRecords, kind: usize) -> &str {
    match kind {
        0 => &c.generation,
        1 => &c.fitness_log,
        _ => &c.safety_snapshot,
    }
}

/// The record of `KINDS[kind]` that checkpoint `cp` of evolution `id` commits: the one
/// under its key when it is that one, else the staged copy (a commit cut short before it
/// published). A record that is neither is a corrupt record, named. Checkpoints written
/// before they named their records take the record under its key as it is.
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
    if let Some(b) = store.get(Bucket::Evolution, &c.staged)? {
        let mut staged = unstage(&c.staged, &b)?;
        let r = std::mem::take(&mut staged[kind]);
        if sha256_hex(&r) == digest_of(c, kind) {
            return Ok(r);
        }
    }
    Err(ErrorKind::Corrupt {
        key,
        reason: format!(
            "missing, or its checksum is not the one {} commits",
            gen_key("checkpoints", id, cp.generation)
        ),
    }
    .into())
}

/// Writes the records checkpoint `cp` commits under their keys where they are not
/// already there, from its staged copy; then deletes that copy.
pub(super) fn publish(store: &dyn BlobStore, id: &str, cp: &Checkpoint) -> Result<()> {
    let Some(c) = &cp.records else {
        return Ok(());
    };
    let mut staged: Option<[Vec<u8>; 3]> = None;
    for (kind, prefix) in KINDS.iter().enumerate() {
        let key = gen_key(prefix, id, cp.generation);
        if store
            .get(Bucket::Evolution, &key)?
            .is_some_and(|b| sha256_hex(&b) == digest_of(c, kind))
        {
            continue;
        }
        if staged.is_none() {
            let b = store
                .get(Bucket::Evolution, &c.staged)?
                .ok_or_else(|| ErrorKind::Corrupt {
                    key: key.clone(),
                    reason: format!(
                        "missing, or its checksum is not the one {} commits, and its \
                         staged copy {} is gone",
                        gen_key("checkpoints", id, cp.generation),
                        c.staged
                    ),
                })?;
            staged = Some(unstage(&c.staged, &b)?);
        }
        let record = staged
            .as_ref()
            .map(|s| &s[kind])
            .ok_or_else(|| ErrorKind::Corrupt {
                key: c.staged.clone(),
                reason: "unreadable".into(),
            })?;
        if sha256_hex(record) != digest_of(c, kind) {
            return Err(ErrorKind::Corrupt {
                key: c.staged.clone(),
                reason: format!("its {prefix} record does not match the checkpoint"),
            }
            .into());
        }
        store.put(Bucket::Evolution, &key, record)?;
    }
    store.delete(Bucket::Evolution, &c.staged)
}

/// Deletes the staged copies of generations before `g` of evolution `id`, once the
/// head is at `g`: left by processes killed before their checkpoint, or by commits no
/// longer in play (every generation up to the head is published).
pub(super) fn clear_staged_below(store: &dyn BlobStore, id: &str, g: u32) -> Result<()> {
    let prefix = format!("checkpoints/{id}/staged/");
    for key in store.list(Bucket::Evolution, &prefix)? {
        let generation = key
            .strip_prefix(&prefix)
            .and_then(|n| n.split('-').next())
            .and_then(|n| n.parse::<u32>().ok());
        if generation.is_some_and(|n| n < g) {
            store.delete(Bucket::Evolution, &key)?;
        }
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
        Ok(Ok(()))
    } else {
        Ok(Err(read_head(store, id)?))
    }
}

/// Moves checkpoint `g` of evolution `id` to `checkpoints/<id>/abandoned/<stamp>/` and
/// deletes its state row: the commit that wrote it lost the head to a rollback.
pub(super) fn abandon(store: &dyn BlobStore, id: &str, g: u32, stamp: &str) -> Result<()> {
    let key = gen_key("checkpoints", id, g);
    if let Some(bytes) = store.get(Bucket::Evolution, &key)? {
        store.put(
            Bucket::Evolution,
            &format!("checkpoints/{id}/abandoned/{stamp}/{g:06}.json"),
            &bytes,
        )?;
        store.delete(Bucket::Evolution, &key)?;
    }
    store.delete_state(id, g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_records_read_back_and_damage_is_named() {
        let recs = [b"{\"a\":1}".to_vec(), Vec::new(), b"xyz\n\n".to_vec()];
        let s = stage(&recs);
        assert_eq!(unstage("k", &s).expect("unstage"), recs);
        for cut in [1, s.len() / 2, s.len() - 1] {
            let e = unstage("k", &s[..cut]).expect_err("cut short");
            assert!(e.to_string().contains("corrupt stored object k"), "{e}");
        }
    }
}
