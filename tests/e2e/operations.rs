//! docs/operations.md: its commands work when pasted, in order, on this machine.

use crate::support::{free_port, path_with_tdev, root};
use std::process::{Command, Stdio};

#[test]
fn operations_guide_commands_work_as_written() {
    let guide = std::fs::read_to_string(root().join("docs/operations.md")).expect("guide");
    // The ```sh blocks, in order, as one script; the receiver's port is a free one.
    let port = free_port().to_string();
    let mut script = String::from("set -eu\n");
    for line in crate::support::sh_lines(&guide) {
        script.push_str(&line.replace("8099", &port));
        script.push('\n');
    }
    assert!(script.contains("alert-receiver.py"), "guide changed shape");
    let dir = crate::readme::checkout();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path_with_tdev())
        .env("USER", "guide-reader")
        .env_remove("TDEV_ALERTS")
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!(
        "script:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    for want in [
        "run exits 4",
        "name:           deadline_spin",
        "origin:         file fixtures/hostile/deadline_spin.wat",
        "validate exits 3",
        "verdict:    held",
        "by alice via cli: spins on purpose: a sandbox demo",
        "purged sha256:",
    ] {
        assert!(stdout.contains(want), "missing {want:?}\n{all}");
    }
    // what the receiver printed: the two alerts, verified by its own HMAC check
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"verified\""))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let taken: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["verified"] == true && a.get("repeat").is_none())
        .collect();
    assert_eq!(taken.len(), 2, "{all}");
    assert_eq!(taken[0]["alert"]["event"], "quarantine", "{all}");
    assert_eq!(
        taken[0]["alert"]["detail"]["name"], "memory_grow_bomb",
        "{all}"
    );
    assert_eq!(taken[1]["alert"]["event"], "emergency_stop", "{all}");
    assert_eq!(taken[1]["alert"]["detail"]["by"], "guide-reader", "{all}");
    assert!(alerts.iter().all(|a| a["verified"] == true), "{all}");
}
