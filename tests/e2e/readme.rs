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

/// The README's API section, pasted into a shell: the token export, `tdev serve` (on a
/// free port instead of 8080) and the curl calls, whose answers are checked.
#[test]
fn readme_api_commands_work_when_pasted() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let section = readme
        .split("## The HTTP API and the dashboard")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("API section");
    let port = crate::support::free_port();
    let mut script = String::from("set -e\n");
    let mut in_block = false;
    let (mut served, mut curls) = (false, 0);
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        let line = line.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
        if line.starts_with("tdev serve") {
            let cmd = line.split(" #").next().unwrap_or(&line);
            script.push_str(&format!(
                "{cmd} 2>serve.log &\nserver=$!\ntrap 'kill $server' EXIT\n\
                 until grep -q 'listening on' serve.log; do sleep 0.05; done\n"
            ));
            served = true;
        } else {
            if line.starts_with("curl") {
                curls += 1;
                script.push_str("echo '=== answer'\n");
            }
            script.push_str(&line);
            script.push('\n');
        }
    }
    script.push_str("echo\n");
    assert!(served && curls >= 3, "{script}");
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(root().join("fixtures"), dir.path().join("fixtures"))
        .expect("symlink");
    let out = Command::new("timeout")
        .args(["60", "sh", "-c", &script])
        .env("PATH", crate::support::path_with_tdev())
        .env_remove("TDEV_API_TOKEN")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        code(&out, "API section"),
        0,
        "{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<&str> = stdout.split("=== answer\n").skip(1).collect();
    assert_eq!(answers.len(), curls, "{stdout}");
    let run: serde_json::Value = serde_json::from_str(answers[0].trim()).expect("run JSON");
    assert_eq!(
        (run["outcome"].as_str(), run["result"].as_i64()),
        (Some("ok"), Some(6))
    );
    let q: serde_json::Value = serde_json::from_str(answers[1].trim()).expect("quarantine JSON");
    assert!(q["quarantine"].is_array(), "{q}");
    assert!(
        answers[2].contains("tdev_runs_total{outcome=\"ok\"} 1"),
        "{}",
        answers[2]
    );
}
