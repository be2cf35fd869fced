//! Connection limits over a real socket: caps on the request head (431) and on its
//! header count, read timeouts that cut off slow and idle clients, a write timeout
//! that frees the slots of clients that never read, and malformed HTTP.

use super::{auth, http, json, post_wasm, serve, serve_policy, wasm};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a client here waits for the server to answer or close: a watchdog, far
/// past every server timeout the tests set.
const CLIENT_WAIT: Duration = Duration::from_secs(60);

/// Reads what comes on `c` until the server closes it (or [`CLIENT_WAIT`] passes);
/// what came, and the read error (a timeout when the server never closed it, a reset
/// when it closed with bytes unread).
fn drain(c: &mut TcpStream) -> (String, Option<std::io::Error>) {
    c.set_read_timeout(Some(CLIENT_WAIT)).expect("timeout");
    let mut out = Vec::new();
    let read = c.read_to_end(&mut out).err();
    (String::from_utf8_lossy(&out).into_owned(), read)
}

/// Sends `raw` on a new connection and reads what comes back until the server closes
/// it. Write and read errors are part of the answer (a server may close a connection
/// while a huge head is still arriving).
fn exchange(addr: &str, raw: &[u8]) -> (String, Option<std::io::Error>) {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_write_timeout(Some(CLIENT_WAIT)).expect("timeout");
    let written = c.write_all(raw).err();
    let (answer, read) = drain(&mut c);
    (answer, written.or(read))
}

fn status(answer: &str) -> Option<u16> {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn oversized_heads_and_too_many_headers_get_431() {
    let mut s = serve(&[]);
    let a = s.addr.clone();
    let get = |headers: &str| {
        format!("GET /v1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n")
    };
    // a head just within the default cap of 16 KiB is served
    let (answer, _) = exchange(
        &a,
        get(&format!("X-Pad: {}\r\n", "a".repeat(15_000))).as_bytes(),
    );
    assert_eq!(status(&answer), Some(200), "{answer}");
    // one header of 20 KB, over the cap and within the read buffer's slack of 8 KiB
    // past it: 431 in the JSON error shape
    let (answer, err) = exchange(
        &a,
        get(&format!("X-Big: {}\r\n", "a".repeat(20_000))).as_bytes(),
    );
    assert_eq!(status(&answer), Some(431), "{answer} {err:?}");
    let v = json(body(&answer).as_bytes());
    assert_eq!(v["error"]["code"], "headers_too_large", "{v}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // and of 20 KB spread over many headers
    let spread: String = (0..12)
        .map(|i| format!("X-Part-{i}: {}\r\n", "b".repeat(1600)))
        .collect();
    let (answer, _) = exchange(&a, get(&spread).as_bytes());
    assert_eq!(status(&answer), Some(431), "{answer}");
    assert_eq!(
        json(body(&answer).as_bytes())["error"]["code"],
        "headers_too_large"
    );
    // past the read buffer (cap and slack, 24 KiB) hyper answers 431 without a body,
    // or the connection is closed while the head is still arriving: one of 32 KB, and
    // one of 200 KB
    for n in [32_000, 200_000] {
        let (answer, err) = exchange(&a, get(&format!("X-Big: {}\r\n", "a".repeat(n))).as_bytes());
        assert!(
            status(&answer) == Some(431) || (answer.is_empty() && err.is_some()),
            "{answer:?} {err:?}"
        );
        assert!(
            !answer.contains("headers_too_large"),
            "a head past the read buffer arrived whole: {answer:?}"
        );
    }
    // 101 headers, past the default count of 100: 431
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (answer, err) = exchange(&a, get(&many).as_bytes());
    assert_eq!(status(&answer), Some(431), "{answer} {err:?}");
    assert_eq!(http(&a, "GET", "/v1/healthz", &[], b"").0, 200);
    assert!(s.alive());

    // both caps are flags
    let mut s = serve(&["--max-header-bytes", "2048", "--max-headers", "8"]);
    let a = s.addr.clone();
    let (answer, _) = exchange(
        &a,
        get(&format!("X-Pad: {}\r\n", "a".repeat(3000))).as_bytes(),
    );
    assert_eq!(status(&answer), Some(431), "{answer}");
    assert_eq!(
        json(body(&answer).as_bytes())["error"]["code"],
        "headers_too_large"
    );
    let few: String = (0..5).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (answer, _) = exchange(&a, get(&few).as_bytes());
    assert_eq!(status(&answer), Some(200), "{answer}");
    let nine: String = (0..7).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (answer, _) = exchange(&a, get(&nine).as_bytes());
    assert_eq!(status(&answer), Some(431), "{answer}");
    assert!(s.alive());
}

/// `n` connections, each pipelining 2,000 requests for the dashboard's script and never
/// reading an answer. Connected here, one after the other, so that they are ahead of
/// any later connection in the listen backlog.
fn floods(addr: &str, n: usize) -> Vec<TcpStream> {
    let pipeline: Vec<u8> = "GET /dashboard.js HTTP/1.1\r\nHost: x\r\n\r\n"
        .repeat(2000)
        .into_bytes();
    (0..n)
        .map(|_| {
            let c = TcpStream::connect(addr).expect("connect");
            let mut w = c.try_clone().expect("clone");
            let p = pipeline.clone();
            std::thread::spawn(move || {
                w.set_write_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                let _ = w.write_all(&p);
            });
            c
        })
        .collect()
}

/// GET /v1/healthz on a new connection: its status (None when no answer came within
/// `wait`) and how long it took.
fn healthz_within(addr: &str, wait: Duration) -> (Option<u16>, Duration) {
    let t = Instant::now();
    let mut c = TcpStream::connect(addr).expect("connect");
    c.write_all(b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    c.set_read_timeout(Some(wait)).expect("timeout");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    (status(&String::from_utf8_lossy(&out)), t.elapsed())
}

/// GET /v1/healthz on a new connection, waiting up to [`CLIENT_WAIT`].
fn healthz(addr: &str) -> (Option<u16>, Duration) {
    healthz_within(addr, CLIENT_WAIT)
}

#[test]
fn an_answer_the_client_does_not_read_is_given_up_after_the_write_timeout() {
    let mut s = serve(&["--max-connections", "4", "--write-timeout-ms", "500"]);
    let a = s.addr.clone();
    // as many floods as places, and no other connection to want one
    let held = floods(&a, 4);
    // ten times the write timeout, for each to block and be closed
    std::thread::sleep(Duration::from_secs(5));
    for mut c in held {
        // the answers written before the server gave up, then the end (or a reset:
        // the server closed with requests unread)
        let (sink, err) = drain(&mut c);
        assert!(
            err.as_ref()
                .is_none_or(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
        let answers = sink.matches("HTTP/1.1 200").count();
        assert!(
            answers < 2000,
            "all {answers} answers were written: the connection was never given up"
        );
    }
    assert_eq!(healthz(&a).0, Some(200));
    assert!(s.alive());
}

#[test]
fn clients_that_never_read_do_not_keep_healthz_from_being_answered() {
    // 32 floods ahead of the probe, 4 places, the default write timeout of 10 s: were
    // the places given up only by the timeout, the probe would wait 70 s and more;
    // given up as stalled (a quarter of the timeout), some 20 s. The probe waits 45 s.
    let mut s = serve(&["--max-connections", "4"]);
    let a = s.addr.clone();
    let held = floods(&a, 32);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let (st, took) = healthz_within(&a, Duration::from_secs(45));
        assert_eq!(st, Some(200), "no answer after {took:?}");
    }
    drop(held);
    assert_eq!(http(&a, "GET", "/v1/healthz", &[], b"").0, 200);
    assert!(s.alive());
}

#[test]
fn a_newcomer_takes_the_place_of_an_idle_connection_never_of_one_at_work() {
    let (mut s, _policy) = serve_policy(
        "[limits]\nfuel_per_call = 1000000000000000\nwall_clock_ms = 1500\n",
        &["--max-connections", "2"],
    );
    let a = s.addr.clone();
    // the first place: a run that spins until its 1.5 s deadline
    let run = std::thread::spawn({
        let a = a.clone();
        move || {
            let au = auth();
            http(
                &a,
                "POST",
                "/v1/run",
                &[
                    ("Authorization", au.as_str()),
                    ("Content-Type", "application/wasm"),
                ],
                &wasm("hostile/deadline_spin.wat"),
            )
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // the second: a connection that sends nothing
    let mut idle = TcpStream::connect(&a).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    // a newcomer is served in the idle one's place, while the run goes on
    let (st, _) = healthz(&a);
    assert_eq!(st, Some(200));
    let (out, _) = drain(&mut idle);
    assert!(out.is_empty(), "the idle connection was answered");
    // the run at work kept its place and got its answer
    let (st, _, body) = run.join().expect("run thread");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["outcome"], "deadline");
    assert!(s.alive());
}

/// A connection that sends `POST /v1/run` with a 64 KiB body declared, `auth` as its
/// Authorization header (none when empty), then one byte of the body, and reads no
/// further.
fn trickle(addr: &str, auth: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).expect("connect");
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("Authorization: {auth}\r\n")
    };
    c.write_all(
        format!(
            "POST /v1/run HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/wasm\r\nContent-Length: 65536\r\n\r\n\0"
        )
        .as_bytes(),
    )
    .expect("write");
    c
}

#[test]
fn a_request_without_a_token_is_refused_before_its_body_and_holds_no_place() {
    // an hour to send a body: far longer than any client here waits
    let s = serve(&["--max-connections", "2", "--read-timeout-ms", "3600000"]);
    let a = s.addr.clone();
    for bad in ["", "Bearer not-the-token"] {
        let mut c = trickle(&a, bad);
        // the answer comes without the body, and the connection is closed after it
        let (answer, err) = drain(&mut c);
        assert!(err.is_none(), "{err:?} {answer:?}");
        assert_eq!(status(&answer), Some(401), "{answer:?}");
        assert_eq!(
            json(body(&answer).as_bytes())["error"]["code"],
            "unauthorized"
        );
    }
    // every place taken by such clients still leaves healthz its answer
    let held: Vec<TcpStream> = (0..4).map(|_| trickle(&a, "")).collect();
    let (st, took) = healthz(&a);
    assert_eq!(st, Some(200), "no answer after {took:?}");
    drop(held);
    drop(s);
    // a request let in has the read timeout to send its body, and is at work meanwhile:
    // a newcomer waits rather than cutting it off, and it gets its 408
    let mut s = serve(&["--max-connections", "1", "--read-timeout-ms", "2000"]);
    let a = s.addr.clone();
    let au = auth();
    let mut c = trickle(&a, &au);
    std::thread::sleep(Duration::from_millis(300));
    let (st, took) = healthz(&a);
    assert_eq!(st, Some(200), "no answer after {took:?}");
    let (answer, _) = drain(&mut c);
    assert_eq!(status(&answer), Some(408), "cut off: {answer:?}");
    assert!(s.alive());
}

#[test]
fn a_client_reading_its_answers_slowly_keeps_its_place_against_idle_newcomers() {
    let mut s = serve(&["--max-connections", "2"]);
    let a = s.addr.clone();
    // 500 answers of the dashboard's script (4 MB and more), pipelined; the last one
    // closes the connection
    let mut pipeline = "GET /dashboard.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(499);
    pipeline.push_str("GET /dashboard.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut c = TcpStream::connect(&a).expect("connect");
    let mut w = c.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        w.set_write_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        w.write_all(pipeline.as_bytes())
    });
    // the client does not read for a moment, far less than the write timeout, while
    // three connections that send nothing come, each wanting a place
    std::thread::sleep(Duration::from_millis(300));
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| {
            let i = TcpStream::connect(&a).expect("connect");
            std::thread::sleep(Duration::from_millis(200));
            i
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (out, err) = drain(&mut c);
    let answers = out.matches("HTTP/1.1 200").count();
    assert!(err.is_none(), "{err:?} after {answers} answers");
    assert_eq!(answers, 500, "the download was cut off");
    assert!(writer.join().expect("writer").is_ok());
    drop(idle);
    assert_eq!(healthz(&a).0, Some(200));
    assert!(s.alive());
}

#[test]
fn slow_or_idle_clients_are_cut_off_and_connections_are_bounded() {
    let mut s = serve(&[
        "--read-timeout-ms",
        "400",
        "--max-connections",
        "2",
        "--max-body-bytes",
        "1000",
    ]);
    let a = s.addr.clone();
    // a head that never ends: the server closes the connection (the client's own
    // wait, far longer, would end in a timeout error)
    let (answer, err) = exchange(&a, b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n");
    assert!(
        err.is_none(),
        "not closed by the server: {err:?} {answer:?}"
    );
    // a body that never ends: 408 in the JSON error shape
    let (answer, _) = exchange(
        &a,
        format!(
            "POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 500\r\n\r\n0123456789",
            auth()
        )
        .as_bytes(),
    );
    assert_eq!(status(&answer), Some(408), "{answer}");
    assert_eq!(
        json(body(&answer).as_bytes())["error"]["code"],
        "request_timeout"
    );
    // the body cap comes from --max-body-bytes
    let (st, _, answer) = post_wasm(&a, "/v1/validate", &[0u8; 1001]);
    assert_eq!(st, 413);
    assert_eq!(json(&answer)["error"]["code"], "payload_too_large");
    // two idle connections take both places; a third takes the place of the one idle
    // longest, and the other is closed for idling
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&a).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(http(&a, "GET", "/v1/healthz", &[], b"").0, 200);
    for mut c in idle {
        let (answer, err) = drain(&mut c);
        assert_eq!(answer, "", "an idle connection was answered");
        assert!(
            err.is_none(),
            "an idle connection was never closed: {err:?}"
        );
    }
    assert!(s.alive());
}

#[test]
fn malformed_http_gets_an_answer_or_a_closed_connection_and_the_server_stays_up() {
    let mut s = serve(&["--read-timeout-ms", "2000"]);
    let a = s.addr.clone();
    let au = auth();
    let send = |raw: &[u8]| -> String {
        // ask for the connection to be closed after the answer
        let mut raw = raw.to_vec();
        if let Some(p) = raw.windows(9).position(|w| w == b"Host: x\r\n") {
            raw.splice(p + 9..p + 9, b"Connection: close\r\n".iter().copied());
        }
        exchange(&a, &raw).0
    };
    let big_header = format!(
        "GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let many_headers = format!(
        "GET /v1/healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<Vec<u8>> = vec![
        b"\x00\xff\x16\x03\x01garbage\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /v1/healthz HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET http://evil.example/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        big_header.into_bytes(),
        many_headers.into_bytes(),
        // a chunked body with a bad chunk size, and one that claims far more than sent
        format!("POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").into_bytes(),
        format!("POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\nabc").into_bytes(),
        // both framings at once (a smuggling attempt) and two lengths
        format!("POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/audit HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
        format!("POST /v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nContent-Length: 4\r\nContent-Length: 9\r\n\r\nabcd").into_bytes(),
        format!("POST /v1/run HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nContent-Length: -1\r\n\r\n").into_bytes(),
        format!("POST /v1/run?args=%ZZ HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nContent-Length: 0\r\n\r\n").into_bytes(),
        [
            format!("POST /v1/run HTTP/1.1\r\nHost: x\r\nAuthorization: {au}\r\nX-Tdev-Input: ").into_bytes(),
            vec![0xff, 0xfe],
            b"\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ]
        .concat(),
    ];
    for raw in &cases {
        let answer = send(raw);
        // either no answer (closed) or a status line; an error status is never 5xx
        if let Some(code) = status(&answer) {
            assert!(
                code < 500,
                "{code} for {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(120)])
            );
            // the smuggled second request is never answered as its own request
            assert!(!answer.contains("\"audit\""), "{answer}");
        } else {
            assert!(answer.is_empty(), "not HTTP: {answer:?}");
        }
        assert_eq!(http(&a, "GET", "/v1/healthz", &[], b"").0, 200);
    }
    assert!(s.alive());
}
