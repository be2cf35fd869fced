//! Starts `tdev serve` for the tests and the load bench (shared with
//! `cli/benches/load.rs` through `#[path]`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `tdev serve`; killed on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// Its working folder (the store is `.tdev` in it).
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tdev serve --addr 127.0.0.1:0 EXTRA…` with `TDEV_API_TOKEN=token`, in a fresh
/// folder; returns once it listens.
pub fn start(extra: &[&str], token: &str) -> Server {
    start_with_env(extra, token, &[])
}

/// As [`start`], with more variables in the server's environment.
pub fn start_with_env(extra: &[&str], token: &str, env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tdev"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir.path())
        .env("TDEV_API_TOKEN", token)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tdev serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed nothing").expect("line");
        if let Some(a) = line.strip_prefix("tdev serve: listening on http://") {
            break a.to_string();
        }
    };
    // Keep reading what the server says, so its stderr never fills or closes.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Server { child, addr, dir }
}
