//! Helpers for driving `tdev`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

/// A fixture's path as a command-line argument.
pub fn fixture_arg(rel: &str) -> String {
    fixture(rel).to_string_lossy().into_owned()
}

/// Runs `tdev` with `args` in `cwd`, stdin closed.
pub fn tdev(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("spawn tdev")
}

/// Runs `tdev` with bytes on stdin.
pub fn tdev_stdin(cwd: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tdev");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("wait tdev")
}

/// The exit code; fails the test if the process died from a signal.
pub fn code(out: &Output, what: &str) -> i32 {
    match out.status.code() {
        Some(c) => c,
        None => panic!(
            "{what}: tdev did not exit normally ({:?}); stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Parses stdout as exactly one JSON object.
pub fn json(out: &Output, what: &str) -> serde_json::Value {
    let text = String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not one JSON object ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v.is_object(), "{what}: not an object: {text}");
    v
}

/// Asserts that the output holds no control character but newline (no raw escape
/// sequence from a module ever reaches a terminal).
pub fn assert_clean(bytes: &[u8], what: &str) {
    if let Some(b) = bytes
        .iter()
        .find(|b| (**b < 0x20 && **b != b'\n') || **b == 0x7f)
    {
        panic!(
            "{what}: raw control byte {b:#04x} in output: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// `PATH` with the directory of the `tdev` under test first, as a reader's shell would
/// have it after installing `tdev`.
pub fn path_with_tdev() -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tdev"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs `tdev evolve ARGS --json` in `dir`; fails the test unless it exits 0.
pub fn evolve(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["evolve"];
    all.extend(args);
    all.push("--json");
    let out = tdev(dir, &all);
    assert_eq!(
        code(&out, "evolve"),
        0,
        "{:?}: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out, "evolve")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process that is killed when dropped, so that a failing test leaves none
/// running.
pub struct Reaped(Option<std::process::Child>);

impl Reaped {
    pub fn new(child: std::process::Child) -> Reaped {
        Reaped(Some(child))
    }

    /// Kills the process now and waits for it.
    pub fn kill(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to end by itself and returns what it printed. `watchdog`
    /// only keeps a broken build from hanging the suite: past it the process is killed
    /// and the test fails.
    pub fn finish(mut self, watchdog: std::time::Duration, what: &str) -> Output {
        let start = std::time::Instant::now();
        let mut child = self.0.take().expect("a child");
        loop {
            match child.try_wait().expect("try_wait") {
                Some(_) => return child.wait_with_output().expect("output"),
                None if start.elapsed() > watchdog => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{what}: still running after {watchdog:?}");
                }
                None => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `tdev ARGS` in `dir`, checks that it exits `want`, and parses its one JSON
/// object.
pub fn tdev_json(dir: &Path, args: &[&str], want: i32) -> serde_json::Value {
    let what = args.join(" ");
    let out = tdev(dir, args);
    assert_eq!(
        code(&out, &what),
        want,
        "`tdev {what}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out, &what)
}

/// The lines of a document's ```sh blocks, in order: what a reader pastes.
pub fn sh_lines(doc: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in doc.lines() {
        if line.starts_with("```sh") {
            in_sh = true;
        } else if line.starts_with("```") && in_sh {
            in_sh = false;
        } else if in_sh {
            out.push(line);
        }
    }
    out
}

/// Writes an executable script `name` in `dir`.
pub fn write_script(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = write(dir, name, text);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}
