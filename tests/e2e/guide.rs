//! docs/writing-agents.md: its commands work when pasted, in order, on this machine.

use crate::support::root;
use std::process::{Command, Stdio};

#[test]
fn guide_commands_work_as_written() {
    let guide = std::fs::read_to_string(root().join("docs/writing-agents.md")).expect("guide");
    // The ```sh blocks, in order, as one script. The tdev of this build stands in for
    // the release build the guide makes (building it again here would only cost time).
    let mut script = String::from("set -u\n");
    for line in crate::support::sh_lines(&guide) {
        if line.starts_with("cargo build --release -p cli") {
            continue;
        }
        script.push_str(line);
        script.push('\n');
    }
    assert!(
        script.contains("tdev new shout --bytes"),
        "guide changed shape"
    );
    let path = crate::support::path_with_tdev();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root())
        .env("PATH", &path)
        // the new crate builds in its own ./target, as it would for a reader
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("script:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "guide script failed:\n{all}");
    assert!(stdout.contains("HELLO, SANDBOX"), "{all}");
    assert!(stdout.contains("verdict:    admitted"), "{all}");
    assert!(stdout.contains("done after 3 pongs"), "{all}");
    assert!(
        stdout.contains("trap history:") && stdout.contains("pattern:infinite_loop"),
        "{all}"
    );
    // `tdev new`'s own test and the shout test pass natively
    assert!(
        stdout.contains("test tests::copies_its_input ... ok"),
        "{all}"
    );
    assert!(stdout.contains("test tests::shouts ... ok"), "{all}");
    // the report names the file it came from, and validate says it is held
    assert!(stdout.contains("name:           infinite_loop"), "{all}");
    assert!(stdout.contains("verdict:    held"), "{all}");
    assert!(stdout.contains("validate exits 3: held"), "{all}");
}
