//! The README's tour works when pasted.

use crate::support::{code, json, root, tdev};
use std::process::{Command, Stdio};

#[test]
fn readme_tour_commands_work_when_pasted() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let tour = readme
        .split("## A two-minute tour")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("tour section");
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(root().join("fixtures"), dir.path().join("fixtures"))
        .expect("symlink");
    std::os::unix::fs::symlink(root().join("policies"), dir.path().join("policies"))
        .expect("symlink");
    let path = crate::support::path_with_tdev();

    let mut in_block = false;
    let mut ran = 0;
    let mut later = Vec::new();
    for line in tour.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block || line.contains("cargo build") {
            continue;
        }
        let cmd = line.split(" #").next().unwrap_or(line).trim();
        if cmd.is_empty() {
            continue;
        }
        if cmd.contains('<') {
            later.push(cmd.to_string());
            continue;
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("PATH", &path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("sh");
        let c = code(&out, cmd);
        assert!(
            [0, 3, 4].contains(&c),
            "`{cmd}` exited {c}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 6, "only {ran} tour commands found");

    // The quarantine commands take an id: use the first listed one.
    let list = json(&tdev(dir.path(), &["quarantine", "list", "--json"]), "list");
    let id = list["quarantine"][0]["agent_id"]
        .as_str()
        .expect("the tour quarantines something")
        .to_string();
    assert!(later.len() >= 3, "{later:?}");
    for cmd in later {
        let cmd = cmd
            .replace("<id-or-prefix>", &id[7..20])
            .replace("<id>", &id);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env("PATH", &path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("sh");
        assert_eq!(
            code(&out, &cmd),
            0,
            "`{cmd}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
