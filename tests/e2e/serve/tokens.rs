//! Tokens with scopes and rates: every route needs its scope, a token over its rate
//! gets 429 with Retry-After while the others go on, audit entries name the token.

use super::{TOKEN, auth, http, json, ok_json, post_wasm, wasm};
use crate::http::Conn;
use crate::server::{Server, start};
use crate::support::{code, tdev_stdin, write};
use std::io::{Read, Write};

/// `tdev token hash` of a secret.
fn hash(secret: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tdev_stdin(
        dir.path(),
        &["token", "hash"],
        format!("{secret}\n").as_bytes(),
    );
    assert_eq!(
        code(&out, "token hash"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// `tdev serve --tokens FILE` (and TDEV_API_TOKEN as `default`) with these entries:
/// (name, secret, scopes, rate and burst).
fn serve_with(tokens: &[(&str, &str, &str, &str)]) -> (Server, tempfile::TempDir) {
    serve_with_flags(tokens, &[])
}

/// [`serve_with`], and `extra` flags.
fn serve_with_flags(
    tokens: &[(&str, &str, &str, &str)],
    extra: &[&str],
) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text: String = tokens
        .iter()
        .map(|(name, secret, scopes, rate)| {
            format!(
                "[[token]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = {scopes}\n{rate}\n\n",
                hash(secret)
            )
        })
        .collect();
    let file = write(dir.path(), "tokens.toml", &text);
    let mut args = vec!["--tokens", file.to_str().expect("path")];
    args.extend(extra);
    let s = start(&args, TOKEN);
    (s, dir)
}

#[test]
fn token_hash_prints_the_sha256_of_the_secret() {
    assert_eq!(
        hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in [&b""[..], b"\n", b"two words\n", b"\xff\xfe\n"] {
        let out = tdev_stdin(dir.path(), &["token", "hash"], bad);
        assert_eq!(code(&out, "token hash"), 1, "{bad:?}");
        assert!(out.stdout.is_empty());
    }
    // a tokens file that does not parse stops the server with exit 1
    let f = write(
        dir.path(),
        "bad.toml",
        "[[token]]\nname = \"x\"\nsha256 = \"+f+f\"\nscopes = [\"run\"]\n",
    );
    let out = crate::support::tdev(
        dir.path(),
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tokens",
            f.to_str().expect("p"),
        ],
    );
    assert_eq!(code(&out, "serve"), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sha256"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_route_needs_its_scope() {
    let fast = "rate = 100000\nburst = 100000";
    let (s, _dir) = serve_with(&[
        ("runner", "runner-secret", "[\"run\"]", fast),
        ("reader", "reader-secret", "[\"read\"]", fast),
        ("operator", "operator-secret", "[\"operate\"]", fast),
    ]);
    let a = &s.addr;
    // a quarantined module to point the routes at
    let v = ok_json(post_wasm(a, "/v1/run", &wasm("hostile/infinite_loop.wat")));
    assert_eq!(v["quarantined"], true, "{v}");
    let id = v["agent_id"].as_str().expect("id").to_string();
    let add = wasm("agents/add.wat");
    // every route of the API and the scope it needs
    let routes: Vec<(&str, String, &[u8], &str)> = vec![
        ("POST", "/v1/run?args=1,2".into(), &add, "run"),
        ("POST", "/v1/validate".into(), &add, "run"),
        ("GET", format!("/v1/agents/{id}"), b"", "read"),
        ("GET", format!("/v1/agents/{id}/wat"), b"", "read"),
        ("GET", "/v1/quarantine".into(), b"", "read"),
        ("GET", format!("/v1/quarantine/{id}"), b"", "read"),
        ("GET", "/v1/evolutions".into(), b"", "read"),
        ("GET", "/v1/evolutions/e1".into(), b"", "read"),
        ("GET", "/v1/audit".into(), b"", "read"),
        ("GET", "/metrics".into(), b"", "read"),
        (
            "POST",
            format!("/v1/quarantine/{id}/release"),
            b"",
            "operate",
        ),
        (
            "POST",
            "/v1/evolutions/e1/rollback?generation=0".into(),
            b"",
            "operate",
        ),
        ("DELETE", format!("/v1/quarantine/{id}"), b"", "operate"),
        ("POST", "/v1/emergency-stop".into(), b"", "operate"),
    ];
    let tokens = [
        ("runner", "runner-secret", "run"),
        ("reader", "reader-secret", "read"),
        ("operator", "operator-secret", "operate"),
    ];
    for (method, path, body, needs) in &routes {
        // no token, a wrong one, a token's hash in place of its secret: 401
        for given in [
            "",
            "Bearer nope",
            &format!("Bearer {}", hash("reader-secret")),
        ] {
            let h: Vec<(&str, &str)> = if given.is_empty() {
                vec![]
            } else {
                vec![("Authorization", given)]
            };
            let (st, _, answer) = http(a, method, path, &h, body);
            assert_eq!(st, 401, "{method} {path} with {given:?}");
            assert_eq!(json(&answer)["error"]["code"], "unauthorized");
        }
        for (name, secret, scope) in tokens {
            let bearer = format!("Bearer {secret}");
            let h = [
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/wasm"),
            ];
            let (st, _, answer) = http(a, method, path, &h, body);
            if scope == *needs {
                assert!(
                    ![401, 403, 429].contains(&st),
                    "{name} on {method} {path}: {st} {}",
                    String::from_utf8_lossy(&answer)
                );
            } else {
                assert_eq!(
                    st,
                    403,
                    "{name} on {method} {path}: {}",
                    String::from_utf8_lossy(&answer)
                );
                let v = json(&answer);
                assert_eq!(v["error"]["code"], "forbidden", "{v}");
                let m = v["error"]["message"].as_str().expect("message");
                assert!(m.contains(name) && m.contains(needs), "{m}");
                assert!(!m.contains(secret), "{m}");
            }
        }
    }
    // healthz and the dashboard need no token
    assert_eq!(http(a, "GET", "/v1/healthz", &[], b"").0, 200);
    assert_eq!(http(a, "GET", "/", &[], b"").0, 200);
}

#[test]
fn a_token_over_its_rate_gets_429_with_retry_after_and_the_others_go_on() {
    // one request per 100 s after a burst of 5: the bucket does not refill in the test
    let slow = "rate = 0.01\nburst = 5";
    let (s, _dir) = serve_with(&[
        ("bursty", "bursty-secret", "[\"read\"]", slow),
        ("calm", "calm-secret", "[\"read\"]", slow),
    ]);
    let mut c = Conn::open(&s.addr).expect("connect");
    let mut evolutions = |bearer: &str| {
        c.send("GET", "/v1/evolutions", &[("Authorization", bearer)], b"")
            .expect("answer")
    };
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = evolutions("Bearer bursty-secret");
        if r.status == 429 {
            let retry: u64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no Retry-After in {}", r.head));
            assert!((1..=100).contains(&retry), "Retry-After: {retry}");
            let v = json(&r.body);
            assert_eq!(v["error"]["code"], "rate_limited", "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .expect("m")
                    .contains("bursty")
            );
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert_eq!(statuses[5..], [429; 15], "{statuses:?}");
    // the other tokens are unaffected
    for (bearer, n) in [("Bearer calm-secret", 5), (&auth() as &str, 50)] {
        for i in 0..n {
            assert_eq!(evolutions(bearer).status, 200, "{bearer} request {i}");
        }
    }
    // still 429 for the burst's token
    assert_eq!(evolutions("Bearer bursty-secret").status, 429);
    // the refusals are counted by token name
    let r = c
        .send("GET", "/metrics", &[("Authorization", &auth())], b"")
        .expect("answer");
    let m = String::from_utf8_lossy(&r.body);
    assert!(
        m.contains("tdev_requests_rate_limited_total{token=\"bursty\"} 16\n"),
        "{m}"
    );
    assert!(!m.contains("token=\"calm\""), "{m}");
}

#[test]
fn audit_entries_name_the_token_never_its_secret() {
    let (s, _dir) = serve_with(&[
        (
            "night-operator",
            "op-secret-0123456789",
            "[\"operate\", \"read\"]",
            "",
        ),
        ("runner", "runner-secret-0123456789", "[\"run\"]", ""),
    ]);
    let a = &s.addr;
    let run = [
        ("Authorization", "Bearer runner-secret-0123456789"),
        ("Content-Type", "application/wasm"),
    ];
    let v = json(
        &http(
            a,
            "POST",
            "/v1/run",
            &run,
            &wasm("hostile/infinite_loop.wat"),
        )
        .2,
    );
    let id = v["agent_id"].as_str().expect("id").to_string();
    let op = [("Authorization", "Bearer op-secret-0123456789")];
    let (st, _, _) = http(a, "POST", &format!("/v1/quarantine/{id}/release"), &op, b"");
    assert_eq!(st, 200);
    let (st, _, _) = http(a, "DELETE", &format!("/v1/quarantine/{id}"), &op, b"");
    assert_eq!(st, 200);
    // a rollback (of a small evolution of two generations) and an emergency stop
    crate::serve::two_generations(&s.dir.path().join(".tdev"), "evo-audit");
    let (st, _, body) = http(
        a,
        "POST",
        "/v1/evolutions/evo-audit/rollback?generation=1",
        &op,
        b"",
    );
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let (st, _, _) = http(a, "POST", "/v1/emergency-stop", &op, b"");
    assert_eq!(st, 200);
    // one that fails is not recorded
    let (st, _, _) = http(
        a,
        "POST",
        "/v1/evolutions/evo-audit/rollback?generation=7",
        &op,
        b"",
    );
    assert_eq!(st, 404);
    let (st, _, body) = http(a, "GET", "/v1/audit", &op, b"");
    assert_eq!(st, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("op-secret"), "{text}");
    let log = json(&body);
    let entries = log["audit"].as_array().expect("audit");
    for (action, detail) in [
        (
            "rolled_back",
            "evolution evo-audit to generation 1 by tdev serve API (token night-operator)",
        ),
        ("emergency_stop", "tdev serve API (token night-operator)"),
    ] {
        let found: Vec<_> = entries.iter().filter(|e| e["action"] == action).collect();
        assert_eq!(found.len(), 1, "{action}: {log}");
        assert_eq!(found[0]["detail"], detail, "{log}");
        assert!(found[0]["agent_id"].is_null(), "{log}");
        assert!(found[0]["at"].is_string(), "{log}");
    }
    for action in ["released", "purged"] {
        let e = log["audit"]
            .as_array()
            .expect("audit")
            .iter()
            .find(|e| e["action"] == action && e["agent_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no {action} entry: {log}"));
        assert!(
            e["detail"]
                .as_str()
                .expect("detail")
                .contains("token night-operator"),
            "{e}"
        );
    }
    // the record on disk holds no secret either
    let q =
        std::fs::read_dir(s.dir.path().join(".tdev/agents/quarantine")).expect("quarantine dir");
    for f in q {
        let text = std::fs::read_to_string(f.expect("entry").path()).expect("record");
        assert!(!text.contains("op-secret"), "{text}");
    }
}

#[test]
fn a_token_without_the_scope_is_refused_before_the_body_arrives() {
    // a 64 KiB body declared, one byte sent: the server would wait an hour for the
    // rest, far longer than this client waits, so only an answer on the head comes in
    // time
    let (s, _dir) = serve_with_flags(
        &[("reader", "reader-secret-0123456789", "[\"read\"]", "")],
        &["--read-timeout-ms", "3600000"],
    );
    let mut c = std::net::TcpStream::connect(&s.addr).expect("connect");
    c.write_all(
        b"POST /v1/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer reader-secret-0123456789\r\nContent-Length: 65536\r\n\r\n\0",
    )
    .expect("write");
    c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let mut out = Vec::new();
    let r = c.read_to_end(&mut out);
    let answer = String::from_utf8_lossy(&out);
    assert!(r.is_ok(), "{r:?} {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer:?}"
    );
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(
        json(body.as_bytes())["error"]["code"],
        "forbidden",
        "{answer}"
    );
}
