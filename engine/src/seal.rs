//! Checksums of stored JSON records: a sealed record ends with a `checksum` member,
//! `"sha256:<hex>"` of the record's bytes without it, so a record changed or cut short
//! after it was written is caught when read, whatever its parser would make of it.
//!
//! The checksum is checked on the bytes as stored (the record without its last member
//! is exactly what was hashed), never on a re-serialization, so records written by
//! another version with more or fewer fields check the same. A record without the
//! member (written before checksums existed) is read as it is.

use crate::error::{ErrorKind, Result};
use sha2::{Digest, Sha256};

const HEAD: &[u8] = b",\n  \"checksum\": \"sha256:";
const TAIL: &[u8] = b"\"\n}";

/// The SHA-256 of `bytes`, in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    runtime::to_hex(&Sha256::digest(bytes))
}

/// Adds the `checksum` member to pretty-printed JSON of an object (as
/// `serde_json::to_vec_pretty` writes it: it ends with `\n}`). Anything else is left as
/// it is.
pub(crate) fn seal(mut json: Vec<u8>) -> Vec<u8> {
    if json.len() < 4 || !json.ends_with(b"\n}") || json.first() != Some(&b'{') {
        return json;
    }
    let digest = sha256_hex(&json);
    json.truncate(json.len() - 2);
    json.extend_from_slice(HEAD);
    json.extend_from_slice(digest.as_bytes());
    json.extend_from_slice(TAIL);
    json
}

/// The record under `key` without its `checksum` member, once the checksum matches;
/// a record without one as it is. A checksum that does not match is a corrupt record.
pub(crate) fn unseal<'a>(key: &str, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
    let Some(body) = bytes.strip_suffix(TAIL) else {
        return Ok(bytes.into());
    };
    let Some(hex_start) = body.len().checked_sub(64) else {
        return Ok(bytes.into());
    };
    let (rest, hex) = body.split_at(hex_start);
    let Some(rest) = rest.strip_suffix(HEAD) else {
        return Ok(bytes.into());
    };
    let mut original = Vec::with_capacity(rest.len() + 2);
    original.extend_from_slice(rest);
    original.extend_from_slice(b"\n}");
    if sha256_hex(&original).as_bytes() != hex {
        return Err(ErrorKind::Corrupt {
            key: key.to_string(),
            reason: "its checksum does not match its content (changed or damaged after it \
                     was written)"
                .into(),
        }
        .into());
    }
    Ok(original.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_reads_back_and_any_change_is_caught() {
        let json =
            serde_json::to_vec_pretty(&serde_json::json!({"a": 1.5, "b": [1, 2]})).expect("json");
        let sealed = seal(json.clone());
        assert!(sealed.len() > json.len());
        let v: serde_json::Value = serde_json::from_slice(&sealed).expect("still JSON");
        assert!(
            v["checksum"]
                .as_str()
                .is_some_and(|c| c.starts_with("sha256:"))
        );
        assert_eq!(
            unseal("k", &sealed).expect("unseal").as_ref(),
            json.as_slice()
        );
        // every single-byte change before the checksum is caught
        for i in 0..json.len() - 2 {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            if let Ok(b) = unseal("k", &bad) {
                panic!(
                    "byte {i} changed, read as {:?}",
                    String::from_utf8_lossy(&b)
                );
            }
        }
        // a record without a checksum is read as it is
        assert_eq!(unseal("k", &json).expect("plain").as_ref(), json.as_slice());
        // not an object: left alone
        assert_eq!(seal(b"[1]".to_vec()), b"[1]");
    }
}
