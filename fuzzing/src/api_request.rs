//! The API's own run-request decoder, [`cli::api::decode::run_request`], over requests
//! made of the fuzzer's bytes (a branch of [`crate::oracles::api_decode`]).

use crate::oracles::Seen;
use arbitrary::Unstructured;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use cli::api::ApiError;
use cli::api::decode::{Caps, run_request};

/// A request in the JSON or the bytes form, with or without an `X-Tdev-Input` header
/// and `?args=`, under caps the fuzzer picks; the JSON body is either the fuzzer's bytes
/// or an object whose fields hold valid base64 or the fuzzer's text. Never panics; what
/// the decoder accepts is exactly what the request encodes (strict base64 whose
/// re-encoding is the text sent, hex whose re-encoding is the header, the body as the
/// module of the bytes form) and within both caps; what it refuses is a 400 with an
/// escaped message, or a 413 for a cap the request is really over.
pub fn check(u: &mut Unstructured) -> Seen {
    let Ok((json, max_body, input_cap)) = (|| {
        Ok::<_, arbitrary::Error>((
            u.arbitrary::<bool>()?,
            u.int_in_range(0..=8192usize)?,
            u.int_in_range(0..=4096u64)?,
        ))
    })() else {
        return Seen::Skipped;
    };
    let caps = Caps {
        max_body_bytes: max_body,
        input_bytes: input_cap,
    };
    let mut headers = HeaderMap::new();
    if json {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let header_input = if u.ratio(1, 4).unwrap_or(false) {
        let text = if u.arbitrary().unwrap_or(false) {
            let n = u.int_in_range(0..=64).unwrap_or(0);
            hex::encode(u.bytes(n).unwrap_or(&[]))
        } else {
            u.arbitrary::<String>().unwrap_or_default()
        };
        // Text that is no header value cannot reach the decoder.
        HeaderValue::from_str(&text).ok().map(|v| {
            headers.insert("x-tdev-input", v);
            text
        })
    } else {
        None
    };
    let query_args = if u.ratio(1, 4).unwrap_or(false) {
        u.arbitrary::<String>().ok()
    } else {
        None
    };
    let structured = json && u.arbitrary().unwrap_or(false);
    let body: Vec<u8> = if structured {
        let field = |u: &mut Unstructured| -> String {
            if u.arbitrary().unwrap_or(false) {
                let n = u.int_in_range(0..=256).unwrap_or(0);
                base64::engine::general_purpose::STANDARD.encode(u.bytes(n).unwrap_or(&[]))
            } else {
                u.arbitrary::<String>().unwrap_or_default()
            }
        };
        let mut obj = serde_json::Map::new();
        obj.insert("module_b64".into(), field(u).into());
        if u.arbitrary().unwrap_or(false) {
            obj.insert("input_b64".into(), field(u).into());
        }
        if u.arbitrary().unwrap_or(false) {
            let args: serde_json::Value = if u.arbitrary().unwrap_or(false) {
                u.arbitrary::<String>().unwrap_or_default().into()
            } else {
                let n = u.int_in_range(0..=4).unwrap_or(0);
                (0..n)
                    .map(|_| -> serde_json::Value {
                        if u.arbitrary().unwrap_or(false) {
                            u.arbitrary::<i64>().unwrap_or(0).into()
                        } else {
                            u.arbitrary::<String>().unwrap_or_default().into()
                        }
                    })
                    .collect::<Vec<_>>()
                    .into()
            };
            obj.insert("args".into(), args);
        }
        if u.ratio(1, 4).unwrap_or(false) {
            obj.insert(
                "name".into(),
                u.arbitrary::<String>().unwrap_or_default().into(),
            );
        }
        if u.ratio(1, 8).unwrap_or(false) {
            obj.insert(u.arbitrary::<String>().unwrap_or_default(), 1.into());
        }
        serde_json::to_vec(&obj).unwrap_or_default()
    } else {
        let n = u.len();
        u.bytes(n).unwrap_or(&[]).to_vec()
    };
    let carried = body.len() + header_input.as_ref().map_or(0, String::len);
    let sent_args = query_args.clone();
    let body = Bytes::from(body);
    let query_name: Option<String> = if !json && u.ratio(1, 4).unwrap_or(false) {
        Some(u.arbitrary::<String>().unwrap_or_default())
    } else {
        None
    };
    let sent_name = query_name.clone();
    match run_request(&headers, query_args, query_name, &body, caps) {
        Ok(req) => {
            assert!(
                carried <= max_body,
                "{carried} bytes carried past a cap of {max_body}"
            );
            if let Some(input) = &req.input {
                assert!(input.len() as u64 <= input_cap, "input past its cap");
            }
            if json {
                let v: serde_json::Value =
                    serde_json::from_slice(&body).expect("an accepted JSON body is JSON");
                let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
                assert_eq!(v["module_b64"].as_str(), Some(b64(&req.module).as_str()));
                match &req.input {
                    Some(input) => assert_eq!(v["input_b64"].as_str(), Some(b64(input).as_str())),
                    None => assert!(v.get("input_b64").is_none_or(|i| i.is_null())),
                }
                assert!(header_input.is_none() && sent_args.is_none());
                assert_eq!(req.name.as_deref(), v.get("name").and_then(|n| n.as_str()));
            } else {
                assert_eq!(&req.module[..], &body[..]);
                assert_eq!(
                    req.input.as_ref().map(hex::encode),
                    header_input.as_ref().map(|h| h.to_ascii_lowercase())
                );
                assert_eq!(req.args, sent_args);
                assert_eq!(req.name, sent_name);
            }
            if let Some(n) = &req.name {
                assert!(!n.is_empty() && n.len() <= 64 && !n.chars().any(char::is_control));
            }
            Seen::Accepted
        }
        Err(ApiError::BadRequest(message)) => {
            assert!(
                !message.chars().any(char::is_control),
                "unescaped message {message:?}"
            );
            Seen::Rejected
        }
        Err(ApiError::TooLarge { what, len, max, .. }) => {
            assert!(len > max, "{what}: {len} is not over {max}");
            if what == "the run input" {
                assert_eq!(max, input_cap);
            } else {
                assert_eq!((len, max), (carried as u64, max_body as u64));
            }
            Seen::Rejected
        }
        Err(other) => panic!("a run request refused with {other:?}"),
    }
}
