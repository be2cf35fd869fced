//! `tdev serve` over a real socket, by topic: review and the audit log
//! ([`review`]), runs, their bound and the emergency stop ([`runs`]), strict decoding
//! ([`requests`]), connection limits and malformed HTTP ([`conn`]), tokens with scopes
//! and rates ([`tokens`]). The helpers they share are here.

use crate::support::fixture;

pub(crate) const TOKEN: &str = "test-token-0123456789";

pub(crate) use crate::server::Server;

/// `tdev serve` on a free loopback port with the test token, in a fresh folder.
pub(crate) fn serve(extra: &[&str]) -> Server {
    crate::server::start(extra, TOKEN)
}

/// `tdev serve EXTRA…` under a policy file of `policy` (TOML; unnamed limits keep
/// their defaults). The folder holds the policy.
pub(crate) fn serve_policy(policy: &str, extra: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = crate::support::write(dir.path(), "policy.toml", policy);
    let mut args = extra.to_vec();
    args.extend(["--policy", path.to_str().expect("path")]);
    (serve(&args), dir)
}

/// One HTTP/1.1 request on a new connection; returns (status, head, body).
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let a = crate::http::request(addr, method, path, headers, body);
    (a.status, a.head, a.body)
}

pub(crate) fn auth() -> String {
    format!("Bearer {TOKEN}")
}

/// A request with the test token and no body: (status, head, body).
pub(crate) fn call(addr: &str, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    http(addr, method, path, &[("Authorization", &auth())], b"")
}

/// `POST path` of a module's bytes (`application/wasm`) with the test token.
pub(crate) fn post_wasm(addr: &str, path: &str, module: &[u8]) -> (u16, String, Vec<u8>) {
    let au = auth();
    http(
        addr,
        "POST",
        path,
        &[
            ("Authorization", au.as_str()),
            ("Content-Type", "application/wasm"),
        ],
        module,
    )
}

/// The JSON body of a 200 answer; fails the test on any other status.
pub(crate) fn ok_json((status, _, body): (u16, String, Vec<u8>)) -> serde_json::Value {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    json(&body)
}

pub(crate) fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// A small evolution `id` of generations 0 and 1 in the file store at `root` (a
/// rollback checks the generation it goes back to).
pub(crate) fn two_generations(root: &std::path::Path, id: &str) {
    let store = engine::store::open(&format!("file://{}", root.display())).expect("store");
    let task = engine::task::Task::from_file(&fixture("tasks/quartic.toml")).expect("task");
    let config = engine::evolve::EvolveConfig {
        population: 10,
        generations: 1,
        threads: 1,
        ..engine::evolve::EvolveConfig::for_task(&task)
    };
    let prepared = engine::evolve::Prepared {
        id: id.to_string(),
        task,
        config,
    };
    let sandbox = runtime::Sandbox::new(runtime::Policy::default_policy()).expect("sandbox");
    let mut e =
        engine::evolve::Evolution::start_prepared(sandbox, store, prepared, vec![]).expect("start");
    assert_eq!(e.run(|_| {}).expect("run").generations, 1);
}

pub(crate) fn wasm(name: &str) -> Vec<u8> {
    wat::parse_file(fixture(name)).expect("wat")
}

/// Standard padded base64.
pub(crate) fn base64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

mod conn;
#[cfg(feature = "aws")]
mod replicas;
mod requests;
mod review;
mod runs;
mod tokens;
