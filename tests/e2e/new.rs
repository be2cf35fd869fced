//! `tdev new`: the crate it writes builds for wasm32, passes its own test natively and
//! runs under `tdev run` — by running the commands of the crate's README as written.

use crate::support::{code, path_with_tdev, tdev};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs the ```sh block of the crate's README in the crate's folder, as a reader would
/// paste it, with its own ./target; returns stdout.
fn run_readme(dir: &Path) -> String {
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let script: String = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```sh block")
        .to_string();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -eu\n{script}"))
        .current_dir(dir)
        .env("PATH", path_with_tdev())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "README commands failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn new_bytes_agent_builds_tests_and_runs_as_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tdev(tmp.path(), &["new", "my-echo", "--bytes"]);
    assert_eq!(
        code(&out, "new"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("created agent crate `my-echo` (bytes form)"),
        "{said}"
    );
    let dir = tmp.path().join("my-echo");
    for f in [
        "Cargo.toml",
        ".cargo/config.toml",
        "src/lib.rs",
        ".gitignore",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).expect("config");
    assert!(config.contains("-zstack-size="), "{config}");
    let stdout = run_readme(&dir);
    // cargo test's summary, validate's verdict, and the output of the run
    assert!(
        stdout.contains("test tests::copies_its_input ... ok"),
        "{stdout}"
    );
    assert!(stdout.contains("verdict:    admitted"), "{stdout}");
    assert!(stdout.contains("outcome:    ok"), "{stdout}");
    assert!(stdout.contains("hello"), "{stdout}");
    let wasm = dir.join("target/wasm32-unknown-unknown/release/my_echo.wasm");
    let size = std::fs::metadata(&wasm).expect("the module").len();
    assert!(size <= 6656, "{size} bytes");
    // Written once: a second `new` into the same folder refuses and keeps the crate.
    let again = tdev(tmp.path(), &["new", "my-echo", "--typed", "i64->i64"]);
    assert_eq!(code(&again, "new again"), 1);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists and is not empty"), "{err}");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib");
    assert!(lib.contains("fn() -> i32"), "{lib}");
    assert!(stdout.contains("test builds_for_wasm32 ... ok"), "{stdout}");

    // A method only std has compiles natively (the SDK's host links std), and the
    // crate's own test fails on it, as the wasm32 build does.
    let sqrt = lib.replace(
        "agent_sdk::write(&buf[..n]);",
        "agent_sdk::write(&buf[..n]);\n            let _root = (n as f64).sqrt();",
    );
    assert_ne!(sqrt, lib, "the template changed");
    std::fs::write(dir.join("src/lib.rs"), sqrt).expect("write");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test"])
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .expect("cargo test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("test tests::copies_its_input ... ok"),
        "natively it works: {text}"
    );
    assert!(text.contains("test builds_for_wasm32 ... FAILED"), "{text}");
    assert!(
        text.contains("no method named `sqrt` found for type `f64`"),
        "{text}"
    );
}

#[test]
fn new_typed_agent_builds_tests_and_runs_as_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tdev(
        tmp.path(),
        &["new", "sub/adder", "--typed", "(i64, f64, i64) -> f64"],
    );
    assert_eq!(
        code(&out, "new"),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tmp.path().join("sub/adder");
    let stdout = run_readme(&dir);
    assert!(
        stdout.contains("test tests::adds_its_arguments ... ok"),
        "{stdout}"
    );
    // 1 + 2 + 3, as an f64
    assert!(stdout.contains("result:     6"), "{stdout}");
    assert!(stdout.contains("outcome:    ok"), "{stdout}");
}

#[test]
fn new_refuses_what_it_cannot_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (
            &["new", "x", "--typed", "i32->i64"],
            "\"i32\" is not a type",
        ),
        (&["new", "x", "--typed", "i64,i64"], "PARAMS -> RESULT"),
        (&["new", "9lives", "--bytes"], "is not a crate name"),
        (&["new", "test", "--bytes"], "reserved"),
        (
            &["new", "x", "--bytes", "--sdk", "/nonexistent"],
            "/nonexistent/Cargo.toml",
        ),
    ];
    for (args, want) in cases {
        let out = tdev(tmp.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out, want), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!tmp.path().join("x").exists(), "{args:?} wrote a crate");
    }
    // Neither form, or both: a usage error.
    for args in [
        &["new", "x"][..],
        &["new", "x", "--bytes", "--typed", "i64->i64"],
    ] {
        let out = tdev(tmp.path(), args);
        assert_eq!(code(&out, "usage"), 1, "{args:?}");
    }
}
