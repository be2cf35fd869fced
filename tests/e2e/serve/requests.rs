//! Strict decoding of every encoded input (base64, hex, numbers, ids, query strings,
//! JSON fields) and the caps on run input, over a real socket.

use super::{auth, base64, http, json, serve, wasm};
use crate::support::write;

/// (what, method, path, content type, extra header, body)
type Case = (
    &'static str,
    &'static str,
    String,
    &'static str,
    Option<(&'static str, String)>,
    Vec<u8>,
);

fn json_run(module_b64: &str, extra: &str) -> Vec<u8> {
    format!("{{\"module_b64\": \"{module_b64}\"{extra}}}").into_bytes()
}

#[test]
fn malformed_encodings_get_400_in_the_json_error_shape() {
    let s = serve(&[]);
    let a = &s.addr;
    let au = auth();
    let echo = wasm("agents/echo.wat");
    let add = wasm("agents/add.wat");
    let echo64 = base64(&echo);
    let add64 = base64(&add);
    let hash = "0".repeat(64);
    let wasm_ct = "application/wasm";
    let json_ct = "application/json";
    let bad: Vec<Case> = vec![
        // base64: trailing garbage, a lone character, bad padding, whitespace, alphabets
        (
            "module_b64 with garbage after the padding",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&format!("{echo64}garbage"), ""),
        ),
        (
            "module_b64 with garbage after ==",
            "POST",
            "/v1/validate".into(),
            json_ct,
            None,
            json_run("aGk==garbage", ""),
        ),
        (
            "module_b64 of one character",
            "POST",
            "/v1/validate".into(),
            json_ct,
            None,
            json_run("A", ""),
        ),
        (
            "module_b64 without its padding",
            "POST",
            "/v1/validate".into(),
            json_ct,
            None,
            json_run("aGk", ""),
        ),
        (
            "module_b64 with too much padding",
            "POST",
            "/v1/validate".into(),
            json_ct,
            None,
            json_run("aGk==", ""),
        ),
        (
            "module_b64 padding inside",
            "POST",
            "/v1/validate".into(),
            json_ct,
            None,
            json_run("aG=k", ""),
        ),
        (
            "module_b64 with a newline",
            "POST",
            "/v1/validate".into(),
            json_ct,
            None,
            json_run(&format!("{}\\n{}", &add64[..4], &add64[4..]), ""),
        ),
        (
            "module_b64 with a space",
            "POST",
            "/v1/validate".into(),
            json_ct,
            None,
            json_run(&format!("{} {}", &add64[..4], &add64[4..]), ""),
        ),
        (
            "module_b64 with trailing bits",
            "POST",
            "/v1/validate".into(),
            json_ct,
            None,
            json_run("aGl=", ""),
        ),
        (
            "input_b64 url-safe",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&echo64, ", \"input_b64\": \"-_-_\""),
        ),
        (
            "input_b64 of mixed alphabets",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&echo64, ", \"input_b64\": \"+/-_\""),
        ),
        (
            "input_b64 a number",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&echo64, ", \"input_b64\": 7"),
        ),
        // JSON: unknown and repeated fields, args that split or have the wrong type
        (
            "a JSON field the API does not know",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&echo64, ", \"input\": \"aGk=\""),
        ),
        (
            "module_b64 twice",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&echo64, &format!(", \"module_b64\": \"{add64}\"")),
        ),
        (
            "module_b64 missing",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            b"{\"args\": \"1,2\"}".to_vec(),
        ),
        (
            "an args element holding two",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&add64, ", \"args\": [\"1,2\"]"),
        ),
        (
            "args an object",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&add64, ", \"args\": {}"),
        ),
        (
            "JSON with X-Tdev-Input too",
            "POST",
            "/v1/run".into(),
            json_ct,
            Some(("X-Tdev-Input", "6869".into())),
            json_run(&echo64, ""),
        ),
        // hex
        (
            "X-Tdev-Input with signs",
            "POST",
            "/v1/run".into(),
            wasm_ct,
            Some(("X-Tdev-Input", "+f+f".into())),
            echo.clone(),
        ),
        (
            "X-Tdev-Input of odd length",
            "POST",
            "/v1/run".into(),
            wasm_ct,
            Some(("X-Tdev-Input", "abc".into())),
            echo.clone(),
        ),
        (
            "X-Tdev-Input not hex",
            "POST",
            "/v1/run".into(),
            wasm_ct,
            Some(("X-Tdev-Input", "zz".into())),
            echo.clone(),
        ),
        (
            "X-Tdev-Input with 0x",
            "POST",
            "/v1/run".into(),
            wasm_ct,
            Some(("X-Tdev-Input", "0x41".into())),
            echo.clone(),
        ),
        (
            "X-Tdev-Input with a space inside",
            "POST",
            "/v1/run".into(),
            wasm_ct,
            Some(("X-Tdev-Input", "41 42".into())),
            echo.clone(),
        ),
        // numbers in ?args=
        (
            "?args= not a number",
            "POST",
            "/v1/run?args=1,x".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "?args= one short",
            "POST",
            "/v1/run?args=1".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "?args= one too many",
            "POST",
            "/v1/run?args=1,2,3".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "?args= past i64",
            "POST",
            "/v1/run?args=9223372036854775808,1".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "?args= a float for an i64",
            "POST",
            "/v1/run?args=1.5,2".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "?args= twice",
            "POST",
            "/v1/run?args=1,2&args=3,4".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "an unknown query parameter",
            "POST",
            "/v1/run?argz=1,2".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "a query on validate",
            "POST",
            "/v1/validate?args=1".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "args to a bytes agent",
            "POST",
            "/v1/run?args=1".into(),
            wasm_ct,
            None,
            echo.clone(),
        ),
        (
            "input to a typed agent",
            "POST",
            "/v1/run?args=1,2".into(),
            wasm_ct,
            Some(("X-Tdev-Input", "41".into())),
            add.clone(),
        ),
        // ?generation=
        (
            "generation with a sign",
            "POST",
            "/v1/evolutions/e1/rollback?generation=+1".into(),
            "",
            None,
            vec![],
        ),
        (
            "generation negative",
            "POST",
            "/v1/evolutions/e1/rollback?generation=-1".into(),
            "",
            None,
            vec![],
        ),
        (
            "generation with a leading zero",
            "POST",
            "/v1/evolutions/e1/rollback?generation=01".into(),
            "",
            None,
            vec![],
        ),
        (
            "generation past u32",
            "POST",
            "/v1/evolutions/e1/rollback?generation=4294967296".into(),
            "",
            None,
            vec![],
        ),
        (
            "generation empty",
            "POST",
            "/v1/evolutions/e1/rollback?generation=".into(),
            "",
            None,
            vec![],
        ),
        (
            "generation missing",
            "POST",
            "/v1/evolutions/e1/rollback".into(),
            "",
            None,
            vec![],
        ),
        (
            "generation twice",
            "POST",
            "/v1/evolutions/e1/rollback?generation=1&generation=2".into(),
            "",
            None,
            vec![],
        ),
        (
            "generation in hex",
            "POST",
            "/v1/evolutions/e1/rollback?generation=0x1".into(),
            "",
            None,
            vec![],
        ),
        // ids
        (
            "an agent id in upper case",
            "GET",
            format!("/v1/agents/sha256:{}", "A".repeat(64)),
            "",
            None,
            vec![],
        ),
        (
            "an agent id one digit short",
            "GET",
            format!("/v1/agents/sha256:{}", &hash[..63]),
            "",
            None,
            vec![],
        ),
        (
            "an agent id one digit long",
            "GET",
            format!("/v1/quarantine/sha256:{hash}0"),
            "",
            None,
            vec![],
        ),
        (
            "an agent id without its prefix",
            "POST",
            format!("/v1/quarantine/{hash}/release"),
            "",
            None,
            vec![],
        ),
        (
            "an agent id with another hash",
            "GET",
            format!("/v1/agents/sha512:{hash}"),
            "",
            None,
            vec![],
        ),
        (
            "an evolution id too long",
            "GET",
            format!("/v1/evolutions/{}", "e".repeat(129)),
            "",
            None,
            vec![],
        ),
        (
            "an evolution id with a dot",
            "GET",
            "/v1/evolutions/e.1".into(),
            "",
            None,
            vec![],
        ),
    ];
    for (what, method, path, ct, extra, body) in &bad {
        let mut h = vec![("Authorization", au.as_str())];
        if !ct.is_empty() {
            h.push(("Content-Type", ct));
        }
        if let Some((k, v)) = extra {
            h.push((k, v.as_str()));
        }
        let (st, head, answer) = http(a, method, path, &h, body);
        assert_eq!(st, 400, "{what}: {}", String::from_utf8_lossy(&answer));
        assert!(
            head.to_ascii_lowercase().contains("application/json"),
            "{what}: {head}"
        );
        let v = json(&answer);
        assert_eq!(v["error"]["code"], "bad_request", "{what}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
    }
    // and the well-formed ones are served
    let good: Vec<Case> = vec![
        (
            "JSON, standard base64",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&echo64, ", \"input_b64\": \"aGk=\""),
        ),
        (
            "JSON, empty input",
            "POST",
            "/v1/run".into(),
            json_ct,
            None,
            json_run(&echo64, ", \"input_b64\": \"\""),
        ),
        (
            "JSON, args as a list",
            "POST",
            "/v1/run".into(),
            "application/json; charset=utf-8",
            None,
            json_run(&add64, ", \"args\": [2, \"40\"]"),
        ),
        (
            "hex in lower case",
            "POST",
            "/v1/run".into(),
            wasm_ct,
            Some(("X-Tdev-Input", "6869".into())),
            echo.clone(),
        ),
        (
            "hex in upper case",
            "POST",
            "/v1/run".into(),
            wasm_ct,
            Some(("X-Tdev-Input", "6A6B".into())),
            echo.clone(),
        ),
        (
            "?args=",
            "POST",
            "/v1/run?args=2,40".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
        (
            "validate",
            "POST",
            "/v1/validate".into(),
            wasm_ct,
            None,
            add.clone(),
        ),
    ];
    for (what, method, path, ct, extra, body) in &good {
        let mut h = vec![("Authorization", au.as_str()), ("Content-Type", ct)];
        if let Some((k, v)) = extra {
            h.push((k, v.as_str()));
        }
        let (st, _, answer) = http(a, method, path, &h, body);
        assert_eq!(st, 200, "{what}: {}", String::from_utf8_lossy(&answer));
        let v = json(&answer);
        assert!(v["outcome"] == "ok" || v["admitted"] == true, "{what}: {v}");
    }
    // a generation that decodes reaches the store (which knows no such evolution)
    let (st, _, answer) = http(
        a,
        "POST",
        "/v1/evolutions/e1/rollback?generation=0",
        &[("Authorization", au.as_str())],
        b"",
    );
    assert_eq!(st, 404, "{}", String::from_utf8_lossy(&answer));
}

#[test]
fn run_input_is_capped_in_the_body_and_in_the_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write(dir.path(), "small.toml", "[limits]\ninput_bytes = 100\n");
    // a head cap large enough for the header to reach the handler
    let s = serve(&[
        "--policy",
        policy.to_str().expect("path"),
        "--max-header-bytes",
        "1048576",
    ]);
    let a = &s.addr;
    let au = auth();
    let echo = wasm("agents/echo.wat");
    let run_hex = |hex: &str| {
        http(
            a,
            "POST",
            "/v1/run",
            &[
                ("Authorization", au.as_str()),
                ("Content-Type", "application/wasm"),
                ("X-Tdev-Input", hex),
            ],
            &echo,
        )
    };
    // 204,000 hex digits in the header: over the 64 KiB body cap, which the header's
    // input counts against
    let (st, _, body) = run_hex(&"ab".repeat(102_000));
    assert_eq!(st, 413, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("X-Tdev-Input"),
        "{v}"
    );
    // within the body cap but over the policy's input cap (100 bytes)
    let (st, _, body) = run_hex(&"ab".repeat(101));
    assert_eq!(st, 413, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["error"]["code"], "input_too_large", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("limits.input_bytes"),
        "{v}"
    );
    // at the cap: served
    let (st, _, body) = run_hex(&"ab".repeat(100));
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["output_hex"], "ab".repeat(100));
    // the same caps for input in JSON
    let run_json = |n: usize| {
        http(
            a,
            "POST",
            "/v1/run",
            &[
                ("Authorization", au.as_str()),
                ("Content-Type", "application/json"),
            ],
            &json_run(
                &base64(&echo),
                &format!(", \"input_b64\": \"{}\"", base64(&vec![7u8; n])),
            ),
        )
    };
    let (st, _, body) = run_json(101);
    assert_eq!(st, 413);
    assert_eq!(json(&body)["error"]["code"], "input_too_large");
    let (st, _, body) = run_json(100);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(http(a, "GET", "/v1/healthz", &[], b"").0, 200);
}
