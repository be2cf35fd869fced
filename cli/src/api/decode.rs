//! Strict decoders for everything a request encodes: base64, hex, numbers, query
//! strings, ids and the run request itself. Each takes exactly its own form and refuses
//! anything else with a 400 in the JSON error shape; nothing is guessed or repaired.

use super::ApiError;
use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::HashMap;

/// Longest piece of a decoder's own message passed on to the client (it may quote
/// the request).
const MESSAGE_CHARS: usize = 200;

fn bad(field: &str, detail: impl std::fmt::Display) -> ApiError {
    let detail: String = runtime::escape(&detail.to_string())
        .chars()
        .take(MESSAGE_CHARS)
        .collect();
    ApiError::BadRequest(format!("{field}: {detail}"))
}

/// Bytes of standard base64 (RFC 4648 §4): the `+` `/` alphabet, `=` padding to a
/// multiple of four characters, no whitespace, no trailing bits. URL-safe base64, a
/// mix of both alphabets, missing or extra padding and anything after the padding are
/// refused.
pub fn base64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    // The crate's STANDARD engine is strict in every one of these ways.
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| bad(field, format!("not standard padded base64 ({e})")))
}

/// Bytes of hex (an even number of `0-9a-fA-F` digits, nothing else).
pub fn hex(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    runtime::from_hex(text).ok_or_else(|| {
        bad(
            field,
            "hex bytes needed: an even number of the digits 0-9, a-f, A-F",
        )
    })
}

/// A generation number: decimal digits from 0 to 4294967295, no sign, no leading
/// zero, no space.
pub fn generation(text: &str) -> Result<u32, ApiError> {
    let digits = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    digits
        .then(|| text.parse::<u32>().ok())
        .flatten()
        .ok_or_else(|| {
            bad(
                "generation",
                "a decimal number from 0 to 4294967295 (no sign, no leading zero)",
            )
        })
}

/// An agent id: `sha256:` and 64 lowercase hex digits.
pub fn agent_id(given: &str) -> Result<String, ApiError> {
    if runtime::is_agent_id(given) {
        Ok(given.to_string())
    } else {
        Err(ApiError::BadRequest(
            "an agent id is sha256: and 64 lowercase hex digits".into(),
        ))
    }
}

/// An evolution id: 1 to 128 ASCII letters, digits, `-` and `_`.
pub fn evolution_id(id: &str) -> Result<String, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id.to_string())
    } else {
        Err(ApiError::BadRequest(
            "an evolution id is 1 to 128 letters, digits, - and _".into(),
        ))
    }
}

/// The query parameters of a route that takes exactly `allowed`: each at most once,
/// no other.
pub fn query(
    pairs: Vec<(String, String)>,
    allowed: &[&'static str],
) -> Result<HashMap<&'static str, String>, ApiError> {
    let mut out = HashMap::new();
    for (k, v) in pairs {
        let Some(name) = allowed.iter().find(|a| **a == k) else {
            return Err(bad(
                "query",
                format!(
                    "unknown parameter {k:?}; this route takes {}",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        };
        if out.insert(*name, v).is_some() {
            return Err(bad("query", format!("{name} given more than once")));
        }
    }
    Ok(out)
}

/// Whether the body is JSON: the media type of `Content-Type` is exactly
/// `application/json` (any parameters after `;` aside, case aside).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The caps a run request is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// `--max-body-bytes`: the body and the `X-Tdev-Input` header together.
    pub max_body_bytes: usize,
    /// The policy's `limits.input_bytes`: the decoded input.
    pub input_bytes: u64,
}

/// A run or validation request, decoded.
#[derive(Debug, PartialEq)]
pub struct RunRequest {
    /// The module's bytes.
    pub module: Vec<u8>,
    /// Input bytes for the bytes form, if sent.
    pub input: Option<Vec<u8>>,
    /// Typed arguments (`1,2.5`), if sent.
    pub args: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRun {
    module_b64: String,
    #[serde(default)]
    input_b64: Option<String>,
    #[serde(default)]
    args: Option<JsonArgs>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonArgs {
    Text(String),
    List(Vec<JsonArg>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonArg {
    Text(String),
    Number(serde_json::Number),
}

/// The module, input and args of a request: `application/wasm` (any type but JSON)
/// bytes with `?args=` or an `X-Tdev-Input` hex header, or JSON `{"module_b64",
/// "input_b64", "args"}` (no other field). Input carried in the header counts against
/// the body cap; decoded input against the policy's input cap (413 past either).
pub fn run_request(
    headers: &HeaderMap,
    query: &HashMap<&'static str, String>,
    body: &Bytes,
    caps: Caps,
) -> Result<RunRequest, ApiError> {
    let header_input = headers.get("x-tdev-input");
    let carried = body.len() + header_input.map_or(0, |h| h.len());
    if carried > caps.max_body_bytes {
        return Err(ApiError::TooLarge {
            what: "the body and the X-Tdev-Input header together",
            len: carried as u64,
            max: caps.max_body_bytes as u64,
            limit: "--max-body-bytes",
        });
    }
    let req = if is_json(headers) {
        if header_input.is_some() || query.contains_key("args") {
            return Err(ApiError::BadRequest(
                "a JSON request carries its input and args in the body, not in X-Tdev-Input or ?args=".into(),
            ));
        }
        let v: JsonRun = serde_json::from_slice(body).map_err(|e| bad("JSON body", e))?;
        let args = match v.args {
            None => None,
            Some(JsonArgs::Text(s)) => Some(s),
            Some(JsonArgs::List(list)) => Some(
                list.into_iter()
                    .map(|a| match a {
                        JsonArg::Number(n) => Ok(n.to_string()),
                        JsonArg::Text(s) if s.contains(',') => Err(bad(
                            "args",
                            "an element of the list holds one argument (no comma)",
                        )),
                        JsonArg::Text(s) => Ok(s),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
            ),
        };
        RunRequest {
            module: base64("module_b64", &v.module_b64)?,
            input: v.input_b64.map(|s| base64("input_b64", &s)).transpose()?,
            args,
        }
    } else {
        let input = match header_input {
            None => None,
            Some(h) => Some(hex(
                "X-Tdev-Input",
                h.to_str()
                    .map_err(|_| bad("X-Tdev-Input", "hex bytes needed"))?,
            )?),
        };
        RunRequest {
            module: body.to_vec(),
            input,
            args: query.get("args").cloned(),
        }
    };
    if let Some(input) = &req.input
        && input.len() as u64 > caps.input_bytes
    {
        return Err(ApiError::TooLarge {
            what: "the run input",
            len: input.len() as u64,
            max: caps.input_bytes,
            limit: "the policy's limits.input_bytes",
        });
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        for good in ["", "AA==", "AAA=", "AAAA", "aGk=", "+/+/"] {
            assert!(base64("f", good).is_ok(), "{good}");
        }
        assert_eq!(base64("f", "aGk=").ok(), Some(b"hi".to_vec()));
        for bad in [
            "aGk==garbage",
            "aGk=garbage",
            "A",
            "AA",
            "AA=",
            "AA===",
            "-_-_",
            "+/-_",
            "aG k=",
            "aGk=\n",
            " aGk=",
            "aGl=", // trailing bits
            "=aGk",
            "aGk*",
        ] {
            assert!(base64("f", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn numbers_and_queries_are_strict() {
        assert_eq!(generation("0").ok(), Some(0));
        assert_eq!(generation("4294967295").ok(), Some(u32::MAX));
        for bad in [
            "",
            "+1",
            "-1",
            "01",
            " 1",
            "1 ",
            "1e3",
            "0x10",
            "4294967296",
        ] {
            assert!(generation(bad).is_err(), "{bad:?}");
        }
        let pairs = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(query(pairs(&[("args", "1")]), &["args"]).is_ok());
        assert!(query(pairs(&[("args", "1"), ("args", "2")]), &["args"]).is_err());
        assert!(query(pairs(&[("argz", "1")]), &["args"]).is_err());
        assert!(query(pairs(&[("x", "")]), &[]).is_err());
    }
}
