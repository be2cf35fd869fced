//! Strict decoders for everything a request encodes: base64, hex, numbers, ids and
//! the run request itself (query strings: [`super::extract::Query`]). Each takes exactly its own form and refuses
//! anything else with a 400 in the JSON error shape; nothing is guessed or repaired.

use super::ApiError;
use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use serde::Deserialize;

/// Longest piece of a decoder's own message passed on to the client (it may quote
/// the request).
const MESSAGE_CHARS: usize = 200;

/// A 400 naming `field`, with `detail` escaped and cut to [`MESSAGE_CHARS`].
pub(super) fn bad(field: &str, detail: impl std::fmt::Display) -> ApiError {
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
    // The crate takes exactly pairs of 0-9, a-f, A-F: no sign, prefix or space.
    ::hex::decode(text).map_err(|_| {
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
pub fn agent_id(given: &str) -> Result<engine::AgentId, ApiError> {
    given.parse().map_err(|_| {
        ApiError::BadRequest("an agent id is sha256: and 64 lowercase hex digits".into())
    })
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
    /// The name the caller gives the module (for its quarantine record), if any.
    pub name: Option<String>,
}

/// Longest name a caller may give a module.
pub const NAME_BYTES: usize = 64;

/// A module's name as a caller gives it: 1 to [`NAME_BYTES`] bytes, no control
/// characters.
pub fn module_name(given: Option<String>) -> Result<Option<String>, ApiError> {
    match given {
        Some(n) if n.is_empty() || n.len() > NAME_BYTES || n.chars().any(char::is_control) => {
            Err(bad(
                "name",
                format!("1 to {NAME_BYTES} bytes without control characters"),
            ))
        }
        other => Ok(other),
    }
}

/// The JSON form of a run request: `{"module_b64", "input_b64", "args", "name"}`, no other
/// field, none twice.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// The module, standard padded base64.
    pub module_b64: String,
    /// Input bytes for the bytes form, standard padded base64.
    #[serde(default)]
    pub input_b64: Option<String>,
    /// Typed arguments: `"1,2.5"` or `[1, "2.5"]`.
    #[serde(default)]
    pub args: Option<RunArgs>,
    /// A name for the module (its quarantine record shows it).
    #[serde(default)]
    pub name: Option<String>,
}

/// Typed arguments in JSON: one comma-separated string, or a list of one argument
/// each.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RunArgs {
    /// `"1,2.5"`
    Text(String),
    /// `[1, "2.5"]`
    List(Vec<RunArg>),
}

/// One argument of a list: a number or its text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RunArg {
    /// `"2.5"`, `"-0.0"`, `"nan"`
    Text(String),
    /// `2.5`
    Number(serde_json::Number),
}

impl RunArgs {
    /// The arguments as `tdev run --args` takes them.
    fn joined(self) -> Result<String, ApiError> {
        match self {
            RunArgs::Text(s) => Ok(s),
            RunArgs::List(list) => Ok(list
                .into_iter()
                .map(|a| match a {
                    RunArg::Number(n) => Ok(n.to_string()),
                    RunArg::Text(s) if s.contains(',') => Err(bad(
                        "args",
                        "an element of the list holds one argument (no comma)",
                    )),
                    RunArg::Text(s) => Ok(s),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(",")),
        }
    }
}

/// The module, input and args of a request: `application/wasm` (any type but JSON)
/// bytes with `?args=` (`query_args`) or an `X-Tdev-Input` hex header, or a JSON
/// [`RunBody`]. Input carried in the header counts against the body cap; decoded input
/// against the policy's input cap (413 past either).
pub fn run_request(
    headers: &HeaderMap,
    query_args: Option<String>,
    query_name: Option<String>,
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
        if header_input.is_some() || query_args.is_some() || query_name.is_some() {
            return Err(ApiError::BadRequest(
                "a JSON request carries its input, args and name in the body, not in X-Tdev-Input, ?args= or ?name=".into(),
            ));
        }
        let v: RunBody = serde_json::from_slice(body).map_err(|e| bad("JSON body", e))?;
        let args = v.args.map(RunArgs::joined).transpose()?;
        RunRequest {
            module: base64("module_b64", &v.module_b64)?,
            input: v.input_b64.map(|s| base64("input_b64", &s)).transpose()?,
            args,
            name: module_name(v.name)?,
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
            args: query_args,
            name: module_name(query_name)?,
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
    fn hex_is_strict() {
        assert_eq!(hex("f", "6869").ok(), Some(b"hi".to_vec()));
        assert_eq!(hex("f", "6A6b").ok(), Some(vec![0x6a, 0x6b]));
        assert_eq!(hex("f", "").ok(), Some(Vec::new()));
        for bad in ["+f+f", "abc", "zz", "0x41", "41 42", " 41", "41\n", "-1"] {
            assert!(hex("f", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn generations_are_strict() {
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
    }
}
