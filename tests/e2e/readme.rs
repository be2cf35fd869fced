//! The README's tour works when pasted.

use crate::support::{code, json, root, tdev};
use std::process::{Command, Stdio};

/// What each command of the tour must do when pasted: its exit code, and words of
/// which one at least is in its output (stdout and stderr). A command of the tour
/// missing here fails the test: give it its expectation.
const TOUR: &[(&str, i32, &[&str])] = &[
    ("tdev validate fixtures/agents/echo.wat", 0, &["admitted"]),
    (
        "tdev validate fixtures/hostile/wasi_import.wat",
        3,
        &["import_denied"],
    ),
    (
        "tdev validate fixtures/hostile/memory_grow_bomb.wat --json",
        0,
        &["\"admitted\": true"],
    ),
    (
        "echo 'hello, agent' | tdev run fixtures/agents/echo.wat --input -",
        0,
        &["hello, agent"],
    ),
    (
        "tdev run fixtures/agents/add.wat --args 40,2",
        0,
        &["result:     42"],
    ),
    (
        "tdev run fixtures/agents/fmul.wat --args -0.0,5e-324 --json",
        0,
        &["\"result_bits\": \"9223372036854775808\""],
    ),
    // an endless loop: out of fuel, or on a loaded machine out of wall clock first
    (
        "tdev run fixtures/hostile/infinite_loop.wat",
        4,
        &["outcome:    out_of_fuel", "outcome:    deadline"],
    ),
    (
        "tdev run fixtures/hostile/output_flood.wat --json",
        4,
        &["\"outcome\": \"output_limit\""],
    ),
    (
        "tdev quarantine list",
        0,
        &["file fixtures/hostile/infinite_loop.wat"],
    ),
    ("tdev quarantine show infinite_loop", 0, &["text form:"]),
    (
        "tdev validate fixtures/hostile/infinite_loop.wat",
        3,
        &["verdict:    held"],
    ),
    (
        "tdev quarantine release <id> --by alice --reason \"reviewed: loops on purpose\"",
        0,
        &["by alice via cli: reviewed: loops on purpose"],
    ),
    (
        "tdev quarantine purge <id> --by alice --reason \"not needed\"",
        0,
        &["by alice via cli: not needed"],
    ),
    (
        "tdev evolve --task fixtures/tasks/abs.toml --seed 2 --out abs.wasm",
        0,
        &["evolution:  evo-"],
    ),
    ("tdev run abs.wasm --args -42", 0, &["outcome:    ok"]),
    ("tdev evolutions", 0, &["task abs"]),
    (
        "tdev run fixtures/agents/ping.wasm --peer fixtures/agents/pong.wasm",
        0,
        &["group:"],
    ),
];

/// The text of the README section headed `heading`, up to the next section.
fn section(heading: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    readme
        .split(heading)
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .unwrap_or_else(|| panic!("no section {heading}"))
        .to_string()
}

/// A fresh folder with `fixtures`, `policies` and `scripts` linked in, as a reader's
/// checkout has.
pub(crate) fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for d in ["fixtures", "policies", "scripts"] {
        std::os::unix::fs::symlink(root().join(d), dir.path().join(d)).expect("symlink");
    }
    dir
}

/// `sh -c cmd` in `dir` with the `tdev` under test on the path.
fn sh(dir: &std::path::Path, cmd: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("PATH", crate::support::path_with_tdev())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("sh")
}

#[test]
fn readme_tour_commands_work_when_pasted() {
    let tour = section("## A two-minute tour");
    let dir = checkout();
    let expect = |cmd: &str| {
        TOUR.iter()
            .find(|(c, ..)| *c == cmd)
            .map(|(_, code, words)| (*code, *words))
            .unwrap_or_else(|| panic!("the tour's `{cmd}` has no expectation in TOUR"))
    };
    let check = |cmd: &str, shown: &str| {
        let (want, words) = expect(shown);
        let out = sh(dir.path(), cmd);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(code(&out, cmd), want, "`{cmd}`: {text}");
        assert!(
            words.iter().any(|w| text.contains(w)),
            "`{cmd}` says none of {words:?}: {text}"
        );
    };
    let mut in_block = false;
    let mut ran = Vec::new();
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
        check(cmd, cmd);
        ran.push(cmd.to_string());
    }
    // The quarantine commands take an id: use the first listed one.
    let list = json(&tdev(dir.path(), &["quarantine", "list", "--json"]), "list");
    let id = list["quarantine"][0]["agent_id"]
        .as_str()
        .expect("the tour quarantines something")
        .to_string();
    for cmd in &later {
        let pasted = cmd.replace("<id>", &id);
        check(&pasted, cmd);
        ran.push(cmd.clone());
    }
    // every expectation was used: the table follows the README
    for (cmd, ..) in TOUR {
        assert!(
            ran.iter().any(|r| r == cmd),
            "`{cmd}` is no longer in the tour"
        );
    }
}

/// The README's API section, pasted into a shell: the token export, `tdev serve` (on a
/// free port instead of 8080) and the curl calls, whose answers are checked.
#[test]
fn readme_api_commands_work_when_pasted() {
    let section = section("## The HTTP API and the dashboard");
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
    let dir = checkout();
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

/// The README's fleet section, pasted into a shell against the S3, DynamoDB and SQS
/// server on loopback that scripts/test.sh starts.
#[cfg(feature = "aws")]
#[test]
fn readme_fleet_commands_work_when_pasted() {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run the tests through scripts/test.sh"
    );
    let section = section("## Running on many machines (SQS workers)");
    let mut script = String::from("set -e\n");
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            script.push_str(line);
            script.push('\n');
        }
    }
    script.push_str("wait\n");
    assert!(
        script.contains("tdev submit") && script.contains("tdev worker"),
        "{script}"
    );
    let dir = checkout();
    let out = sh(dir.path(), &script);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(code(&out, "the fleet section"), 0, "{text}");
    let listed = text
        .lines()
        .find(|l| l.contains("task sum_range"))
        .unwrap_or_else(|| panic!("no evolution listed: {text}"));
    assert!(listed.contains("(4 islands)"), "{listed}");
    assert!(
        listed.contains("  solved") || listed.contains("  finished"),
        "{listed}"
    );
    assert!(
        text.contains("stop requested") && text.contains("resumed"),
        "{text}"
    );
}
