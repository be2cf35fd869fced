//! A quarantine that explains itself: where a module came from, the input and logs of
//! the run that tripped a limit, a remedy per finding, who released or purged it and
//! why; `validate` and `run` say a held module is held, with its record's score.

use crate::support::{code, fixture_arg, json, tdev, tdev_json, tdev_stdin, write};
use serde_json::Value;

/// Logs a line with its first input byte's worth of context, then spins forever.
const LOGS_THEN_SPINS: &str = r#"(module
  (import "agent" "read_input" (func $read (param i32 i32) (result i32)))
  (import "agent" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "starting on the input")
  (func (export "act") (result i32)
    (drop (call $read (i32.const 100) (i32.const 64)))
    (call $log (i32.const 0) (i32.const 21))
    (loop $l (br $l))
    i32.const 0))"#;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_record_says_where_what_input_which_logs_and_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let agent = write(d, "spinner.wat", LOGS_THEN_SPINS);
    let agent = agent.to_str().expect("path");
    // little fuel: the spin ends out_of_fuel long before the wall-clock deadline
    write(d, "p.toml", "[limits]\nfuel_per_call = 200000\n");
    let p = ["--policy", "p.toml"];
    let input = "tell me a story ".repeat(100); // 1,600 bytes: more than a record keeps
    let out = tdev_stdin(
        d,
        &["run", agent, "--input", "-", "--json", p[0], p[1]],
        input.as_bytes(),
    );
    assert_eq!(code(&out, "run"), 4);
    let r = json(&out, "run");
    assert_eq!(r["quarantined"], true, "{r}");
    let id = r["agent_id"].as_str().expect("id").to_string();

    // list: a short name and the origin
    let l = json(&tdev(d, &["quarantine", "list", "--json"]), "list");
    let item = &l["quarantine"][0];
    assert_eq!(item["name"], "spinner", "{l}");
    assert_eq!(item["origin"]["source"], "file", "{l}");
    assert_eq!(item["origin"]["file"], agent, "{l}");
    let listed = text(&tdev(d, &["quarantine", "list"]));
    assert!(
        listed.contains("spinner") && listed.contains(&format!("file {agent}")),
        "{listed}"
    );
    assert!(listed.contains(&id[7..19]), "{listed}");

    // show, by the module's file: the input kept (1024 bytes of 1600), its log, a remedy
    let s = json(&tdev(d, &["quarantine", "show", agent, "--json"]), "show");
    assert_eq!(s["agent_id"], id.as_str());
    let t = &s["trap_history"][0];
    assert_eq!(t["input"]["len"], 1600, "{t}");
    let kept = runtime::from_hex(t["input"]["hex"].as_str().expect("hex")).expect("hex");
    assert_eq!(kept, &input.as_bytes()[..1024]);
    assert_eq!(
        t["logs"],
        serde_json::json!(["starting on the input"]),
        "{t}"
    );
    assert_eq!(t["origin"]["name"], "spinner");
    assert!(
        t["remedy"]
            .as_str()
            .expect("remedy")
            .contains("fuel_per_call"),
        "{t}"
    );
    let shown = text(&tdev(d, &["quarantine", "show", "spinner"]));
    for want in [
        "name:           spinner",
        &format!("origin:         file {agent}"),
        "remedy:         ran out of fuel",
        "input:  \"tell me a story tell me",
        "(the first 1024 of 1600 bytes)",
        "log:    starting on the input",
        "findings:\n  none",
    ] {
        assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
    }

    // run again: refused, and the score shown is the record's, not the static one
    let rec_score = s["safety_score"].as_f64().expect("score");
    let again = tdev_json(d, &["run", agent, "--json", p[0], p[1]], 3);
    assert_eq!(again["rejected_because"], "quarantined");
    assert_eq!(again["safety_score"].as_f64(), Some(rec_score), "{again}");
    assert_eq!(again["quarantine_reason"], "out_of_fuel");
    let v = tdev(d, &["validate", agent, "--json", p[0], p[1]]);
    let static_score = json(&v, "validate")["safety_score"]
        .as_f64()
        .expect("score");
    assert!(static_score > rec_score, "{static_score} vs {rec_score}");
    let again = text(&tdev(d, &["run", agent, p[0], p[1]]));
    assert!(
        again.contains(&format!(
            "score:      {rec_score} (its quarantine record's)"
        )),
        "{again}"
    );

    // validate: held, exit 3, though the validator alone admits it
    let v = tdev(d, &["validate", agent, "--json"]);
    assert_eq!(code(&v, "validate held"), 3);
    let v = json(&v, "validate");
    assert_eq!(
        (&v["held"], &v["admitted"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert_eq!(v["quarantine"]["reason"], "out_of_fuel");
    let human = text(&tdev(d, &["validate", agent]));
    assert!(human.contains("verdict:    held"), "{human}");

    // release with who and why: recorded, shown, and validate admits it again
    let rel = tdev(
        d,
        &[
            "quarantine",
            "release",
            "spinner",
            "--by",
            "alice",
            "--reason",
            "loops on purpose: a demo",
            "--json",
        ],
    );
    assert_eq!(
        code(&rel, "release"),
        0,
        "{}",
        String::from_utf8_lossy(&rel.stderr)
    );
    let rel = json(&rel, "release");
    let last = rel["audit"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("audit");
    assert_eq!(
        (&last["action"], &last["by"], &last["reason"], &last["via"]),
        (
            &Value::from("released"),
            &Value::from("alice"),
            &Value::from("loops on purpose: a demo"),
            &Value::from("cli")
        ),
        "{last}"
    );
    let shown = text(&tdev(d, &["quarantine", "show", &id]));
    assert!(
        shown.contains("by alice via cli: loops on purpose: a demo"),
        "{shown}"
    );
    assert_eq!(code(&tdev(d, &["validate", agent]), "validate released"), 0);

    // purge with who and why; a multi-line reason is refused before anything changes
    let bad = tdev(
        d,
        &[
            "quarantine",
            "purge",
            &id,
            "--by",
            "bob",
            "--reason",
            "a\nb",
        ],
    );
    assert_eq!(code(&bad, "bad reason"), 1);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--reason is one line"));
    let p = json(
        &tdev(
            d,
            &[
                "quarantine",
                "purge",
                &id,
                "--by",
                "bob",
                "--reason",
                "done",
                "--json",
            ],
        ),
        "purge",
    );
    let last = p["audit"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("audit");
    assert_eq!(
        (&last["by"], &last["reason"]),
        (&Value::from("bob"), &Value::from("done"))
    );
}

#[test]
fn findings_carry_remedies_and_names_resolve_only_when_unique() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // rustc's default 1 MiB stack: the memory's minimum is over the cap
    let big = write(
        d,
        "rusty.wat",
        r#"(module (memory (export "memory") 19) (func (export "act") (result i32) i32.const 0))"#,
    );
    let big = big.to_str().expect("path");
    let v = tdev_json(d, &["validate", big, "--json"], 3);
    let f = &v["findings"][0];
    assert_eq!(f["kind"], "memory_cap");
    assert!(
        f["remedy"]
            .as_str()
            .expect("remedy")
            .contains("-zstack-size=65536"),
        "{v}"
    );
    let human = text(&tdev(d, &["validate", big]));
    assert!(
        human.contains("remedy: a Rust agent: link with -C link-arg=-zstack-size"),
        "{human}"
    );
    // run quarantines it (static); the record keeps the remedy
    tdev_json(d, &["run", big, "--json"], 3);
    let s = json(&tdev(d, &["quarantine", "show", "rusty", "--json"]), "show");
    assert!(
        s["findings"][0]["remedy"]
            .as_str()
            .expect("remedy")
            .contains("-zstack-size")
    );
    // two records under one name: the name is refused, naming the ids
    std::fs::create_dir(d.join("sub")).expect("mkdir");
    let other = write(
        d,
        "sub/rusty.wat",
        r#"(module (memory 20) (func (export "act") (result i32) i32.const 0))"#,
    );
    tdev_json(d, &["run", other.to_str().expect("path"), "--json"], 3);
    let out = tdev(d, &["quarantine", "show", "rusty"]);
    assert_eq!(code(&out, "ambiguous name"), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 records are named rusty"), "{err}");
    let out = tdev(d, &["quarantine", "show", "nobody"]);
    assert_eq!(code(&out, "unknown name"), 1);
    // the guide's hostile fixture, shown by its file
    let looping = fixture_arg("hostile/infinite_loop.wat");
    tdev_json(d, &["run", &looping, "--json"], 4);
    let s = text(&tdev(d, &["quarantine", "show", &looping]));
    assert!(s.contains("name:           infinite_loop"), "{s}");
}
