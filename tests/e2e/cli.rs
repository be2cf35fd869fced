//! The CLI contract of DESIGN.md: exit codes, JSON shapes, typed values, input,
//! policies, and the quarantine life cycle.

use crate::fixtures::is_right;
use crate::support::{
    assert_clean, code, fixture, fixture_arg, json, tdev, tdev_json, tdev_stdin, write,
};
use serde_json::json;

fn agent(name: &str) -> String {
    fixture_arg(&format!("agents/{name}"))
}

#[test]
fn validate_json_has_the_contract_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = tdev_json(dir.path(), &["validate", &agent("echo.wat"), "--json"], 0);
    for k in [
        "agent_id",
        "size_bytes",
        "admitted",
        "safety_score",
        "findings",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert!(v["agent_id"].as_str().expect("id").starts_with("sha256:"));
    assert_eq!(v["agent_id"].as_str().expect("id").len(), 7 + 64);
    assert_eq!(v["admitted"], true);
    assert_eq!(v["safety_score"], 1.0);
    assert_eq!(v["findings"], json!([]));
}

#[test]
fn wat_and_wasm_of_one_module_have_one_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = wat::parse_file(fixture("agents/add.wat")).expect("wat");
    let wasm = dir.path().join("add.wasm");
    std::fs::write(&wasm, &bytes).expect("write");
    let a = json(
        &tdev(dir.path(), &["validate", &agent("add.wat"), "--json"]),
        "wat",
    );
    let b = json(
        &tdev(
            dir.path(),
            &["validate", wasm.to_str().expect("p"), "--json"],
        ),
        "wasm",
    );
    assert_eq!(a["agent_id"], b["agent_id"]);
    assert_eq!(a["size_bytes"], bytes.len());
}

#[test]
fn bytes_form_reads_input_from_a_file_and_from_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.txt", "hello, agent\n");
    let (echo, input) = (agent("echo.wat"), input.to_string_lossy());
    let args = ["run", &echo, "--input", &input, "--json"];
    let r = tdev_json(dir.path(), &args, 0);
    assert_eq!(r["outcome"], "ok");
    assert_eq!(r["trap"], serde_json::Value::Null);
    assert_eq!(r["result"], 0);
    assert_eq!(r["output_hex"], "68656c6c6f2c206167656e740a");
    assert_eq!(r["quarantined"], false);
    assert_eq!(r["logs"], json!(["echo"]));
    assert!(r["fuel_used"].as_u64().expect("fuel") > 0);
    assert!(r["wall_us"].is_u64());

    let out = tdev_stdin(
        dir.path(),
        &["run", &agent("echo.wat"), "--input", "-", "--json"],
        b"\x00\x01binary\xff",
    );
    let r = json(&out, "stdin");
    assert_eq!(r["output_hex"], "000162696e617279ff");

    // human form: the output is shown, escaped
    let out = tdev_stdin(
        dir.path(),
        &["run", &agent("echo.wat"), "--input", "-"],
        b"\x1b[31mred\x07",
    );
    assert_eq!(code(&out, "human"), 0);
    assert_clean(&out.stdout, "human run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\u{1b}[31mred\\u{7}"));
}

#[test]
fn typed_values_are_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |file: &str, args: &str| {
        tdev_json(
            dir.path(),
            &["run", &agent(file), "--args", args, "--json"],
            0,
        )
    };
    let r = run("add.wat", "9223372036854775807,1");
    assert_eq!(r["result"], i64::MIN);
    assert_eq!(r["result_bits"], (i64::MIN as u64).to_string());
    let r = run("add.wat", "-9223372036854775808,-1");
    assert_eq!(r["result"], i64::MAX);
    let r = run("fmul.wat", "-0.0,1");
    assert_eq!(r["result_bits"], (-0.0f64).to_bits().to_string());
    assert!(r["result"].as_f64().expect("f64").is_sign_negative());
    let r = run("fmul.wat", "5e-324,1");
    assert_eq!(r["result_bits"], "1");
    let r = run("fmul.wat", "inf,-1");
    assert_eq!(r["result"], "-inf");
    let r = run("fmul.wat", "inf,2");
    assert_eq!(r["result"], "inf");
    let r = run("fmul.wat", "nan,1");
    assert_eq!(r["result"], "nan");
    let r = run("fmul.wat", "2.5,4");
    assert_eq!(r["result"], 10.0);
}

#[test]
fn usage_errors_exit_1_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_wat = write(dir.path(), "bad.wat", "(module (func (export \"act\"");
    let bad_policy = write(dir.path(), "p.toml", "[limits]\nfuel_per_call = \"lots\"\n");
    let unknown_policy = write(dir.path(), "u.toml", "[limits]\nfuel = 5\n");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["run".into(), "missing.wasm".into()], "missing.wasm"),
        (
            vec!["validate".into(), bad_wat.display().to_string()],
            "bad.wat",
        ),
        (
            vec!["run".into(), agent("add.wat"), "--args".into(), "1".into()],
            "2 argument",
        ),
        (
            vec![
                "run".into(),
                agent("add.wat"),
                "--args".into(),
                "1,x".into(),
            ],
            "i64",
        ),
        (
            vec![
                "run".into(),
                agent("add.wat"),
                "--args".into(),
                "99999999999999999999,1".into(),
            ],
            "i64",
        ),
        (vec!["run".into(), agent("add.wat")], "--args"),
        (
            vec!["run".into(), agent("echo.wat"), "--args".into(), "1".into()],
            "bytes form",
        ),
        (
            vec![
                "run".into(),
                agent("add.wat"),
                "--policy".into(),
                bad_policy.display().to_string(),
            ],
            "fuel_per_call",
        ),
        (
            vec![
                "validate".into(),
                agent("add.wat"),
                "--policy".into(),
                unknown_policy.display().to_string(),
            ],
            "limits.fuel",
        ),
        (
            vec!["run".into(), agent("add.wat"), "--bogus".into()],
            "--bogus",
        ),
        (vec!["frobnicate".into()], "frobnicate"),
        (
            vec![
                "quarantine".into(),
                "show".into(),
                "../../etc/passwd".into(),
            ],
            "not found: agent",
        ),
        (
            vec![
                "run".into(),
                agent("add.wat"),
                "--args".into(),
                "1,2".into(),
                "--store".into(),
                "ftp://x".into(),
            ],
            "store",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = tdev(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out, needle), 1, "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr {err:?} lacks {needle:?}"
        );
        assert!(
            err.lines().next().is_some_and(|l| l.starts_with("tdev: ")),
            "{err}"
        );
    }
    // with --json the error is a JSON object too
    let out = tdev(dir.path(), &["run", "missing.wasm", "--json"]);
    assert_eq!(code(&out, "json error"), 1);
    let v = json(&out, "json error");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("missing.wasm")
    );
}

#[test]
fn policy_flag_changes_the_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "tight.toml", "[limits]\nmodule_bytes = 100\n");
    let p = p.to_str().expect("p");
    let v = tdev_json(
        dir.path(),
        &["validate", &agent("echo.wat"), "--policy", p, "--json"],
        3,
    );
    assert_eq!(v["findings"][0]["kind"], "size_cap");
    assert_eq!(v["admitted"], false);

    let p = write(dir.path(), "fuel.toml", "[limits]\nfuel_per_call = 1\n");
    let p = p.to_str().expect("p");
    let args = [
        "run",
        &agent("fmul.wat"),
        "--args",
        "1,2",
        "--policy",
        p,
        "--json",
    ];
    assert_eq!(tdev_json(dir.path(), &args, 4)["outcome"], "out_of_fuel");
}

#[test]
fn quarantine_life_cycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let spin = fixture_arg("hostile/infinite_loop.wat");

    // 1. a run that hits a limit quarantines the module
    let r = tdev_json(d, &["run", &spin, "--json"], 4);
    let limit = r["outcome"].as_str().expect("outcome").to_string();
    assert!(is_right("out_of_fuel", &limit), "{r}");
    assert_eq!(r["quarantined"], true);
    let id = r["agent_id"].as_str().expect("id").to_string();
    assert!(d.join(".tdev").is_dir(), "default store is ./.tdev");

    // 2. it is held: the next run is rejected without running
    let r = tdev_json(d, &["run", &spin, "--json"], 3);
    assert_eq!(r["outcome"], "rejected");
    assert_eq!(r["quarantined"], true);

    // 3. list and show
    let l = json(&tdev(d, &["quarantine", "list", "--json"]), "list");
    let items = l["quarantine"].as_array().expect("list");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["agent_id"], id.as_str());
    assert_eq!(items[0]["status"], "quarantined");
    let s = json(&tdev(d, &["quarantine", "show", &id, "--json"]), "show");
    assert_eq!(s["trap_history"][0]["outcome"], limit.as_str());
    assert_eq!(s["findings"][0]["kind"], "pattern:infinite_loop");
    assert!(s["wat"].as_str().expect("wat").contains("loop"));
    let human = tdev(d, &["quarantine", "show", &id[7..19]]);
    assert_eq!(code(&human, "show prefix"), 0);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("pattern:infinite_loop") && text.contains("(module"),
        "{text}"
    );

    // 4. release: it runs again (and its new trap is recorded, not re-quarantined)
    let rel = json(
        &tdev(d, &["quarantine", "release", &id, "--json"]),
        "release",
    );
    assert_eq!(rel["status"], "released");
    let r = tdev_json(d, &["run", &spin, "--json"], 4);
    assert!(
        is_right("out_of_fuel", r["outcome"].as_str().unwrap_or("")),
        "{r}"
    );
    assert_eq!(r["quarantined"], false);
    let s = json(&tdev(d, &["quarantine", "show", &id, "--json"]), "show 2");
    assert_eq!(s["status"], "released");
    assert_eq!(s["trap_history"].as_array().expect("h").len(), 2);

    // 5. purge: bytes gone, record kept for the audit trail, not listed
    let p = json(&tdev(d, &["quarantine", "purge", &id, "--json"]), "purge");
    assert_eq!(p["status"], "purged");
    let actions: Vec<&str> = p["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|a| a["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        ["quarantined", "trapped", "released", "trapped", "purged"]
    );
    let l = json(&tdev(d, &["quarantine", "list", "--json"]), "list 2");
    assert_eq!(l["quarantine"], json!([]));
    let s = json(&tdev(d, &["quarantine", "show", &id, "--json"]), "show 3");
    assert_eq!(s["status"], "purged");
    assert_eq!(s["wat"], serde_json::Value::Null);
    let hex = id.trim_start_matches("sha256:");
    assert!(!d.join(".tdev/agents/source").join(hex).exists());

    // 6. an unknown id is an error, not a crash
    let out = tdev(
        d,
        &[
            "quarantine",
            "release",
            &format!("sha256:{}", "0".repeat(64)),
        ],
    );
    assert_eq!(code(&out, "unknown"), 1);
}

#[test]
fn statically_rejected_modules_are_quarantined_by_run_not_by_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let wasi = fixture_arg("hostile/wasi_import.wat");
    assert_eq!(code(&tdev(d, &["validate", &wasi]), "validate"), 3);
    let l = json(&tdev(d, &["quarantine", "list", "--json"]), "list");
    assert_eq!(l["quarantine"], json!([]));
    let r = tdev_json(d, &["run", &wasi, "--json"], 3);
    assert_eq!(r["outcome"], "rejected");
    assert_eq!(r["quarantined"], true);
    let l = json(&tdev(d, &["quarantine", "list", "--json"]), "list");
    assert_eq!(l["quarantine"][0]["reason"], "static");
    // a released module with a structural finding still cannot run
    let id = r["agent_id"].as_str().expect("id");
    assert_eq!(code(&tdev(d, &["quarantine", "release", id]), "release"), 0);
    let out = tdev(d, &["run", &wasi, "--json"]);
    assert_eq!(code(&out, "run after release"), 3);
}

#[test]
fn corrupt_store_objects_are_errors_not_crashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let wasi = fixture_arg("hostile/wasi_import.wat");
    let r = json(&tdev(d, &["run", &wasi, "--json"]), "run");
    let id = r["agent_id"].as_str().expect("id").to_string();
    let hex = id.trim_start_matches("sha256:");
    // tamper with the stored bytes: show refuses them
    std::fs::write(d.join(".tdev/agents/source").join(hex), b"tampered").expect("write");
    let out = tdev(d, &["quarantine", "show", &id]);
    assert_eq!(code(&out, "tampered"), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
    // a garbage record
    std::fs::write(
        d.join(".tdev/agents/quarantine")
            .join(format!("{hex}.json")),
        b"{",
    )
    .expect("w");
    let out = tdev(d, &["quarantine", "list"]);
    assert_eq!(code(&out, "garbage record"), 1);
}

/// One line on stderr, naming `limits.input_bytes`, and exit 1.
fn assert_input_refused(out: &std::process::Output, what: &str) {
    assert_eq!(code(out, what), 1, "{what}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    assert!(err.contains("limits.input_bytes"), "{what}: {err}");
    // With --json, the one object on stdout is the error.
    if !out.stdout.is_empty() {
        let v = json(out, what);
        let m = v["error"]["message"].as_str().unwrap_or_default();
        assert!(m.contains("limits.input_bytes"), "{what}: {v}");
    }
}

#[test]
fn run_input_is_capped_by_the_policy_for_files_and_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write(dir.path(), "p.toml", "[limits]\ninput_bytes = 1000\n");
    let policy = policy.to_str().expect("p");
    let at = dir.path().join("at.bin");
    std::fs::write(&at, vec![b'a'; 1000]).expect("write");
    let over = dir.path().join("over.bin");
    std::fs::write(&over, vec![b'a'; 1001]).expect("write");
    let run = |input: &str| {
        tdev(
            dir.path(),
            &[
                "run",
                &agent("echo.wat"),
                "--policy",
                policy,
                "--input",
                input,
                "--json",
            ],
        )
    };
    let out = run(at.to_str().expect("p"));
    assert_eq!(code(&out, "at the cap"), 0);
    assert_eq!(
        json(&out, "at the cap")["output_hex"]
            .as_str()
            .map(str::len),
        Some(2000)
    );
    assert_input_refused(&run(over.to_str().expect("p")), "file one byte over");
    // A device without a size is cut by the read itself.
    assert_input_refused(&run("/dev/zero"), "/dev/zero");

    let stdin = |bytes: &[u8]| {
        tdev_stdin(
            dir.path(),
            &[
                "run",
                &agent("echo.wat"),
                "--policy",
                policy,
                "--input",
                "-",
                "--json",
            ],
            bytes,
        )
    };
    let out = stdin(&[b'b'; 1000]);
    assert_eq!(code(&out, "stdin at the cap"), 0);
    assert_input_refused(&stdin(&[b'b'; 1001]), "stdin one byte over");
}

#[test]
fn a_huge_input_file_is_refused_by_its_size_before_it_is_read() {
    // 8 GiB, sparse: refused by the default cap (1 MiB) from its size alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(8 << 30))
        .expect("sparse file");
    let out = tdev(
        dir.path(),
        &[
            "run",
            &agent("echo.wat"),
            "--input",
            big.to_str().expect("p"),
        ],
    );
    assert_input_refused(&out, "8 GiB file");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("8589934592 bytes"), "{err}");
}

#[test]
fn run_survives_a_deep_recursion_under_the_largest_stack_the_policy_allows() {
    // Before agents ran on threads sized from the policy, any stack_bytes over 2 MiB
    // failed every command, and a Wasm stack near the host thread's overflowed it.
    for stack in [4 << 20, 16 << 20] {
        // A fresh directory each time: the first overflow quarantines the module.
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = write(
            dir.path(),
            "stack.toml",
            &format!("[limits]\nstack_bytes = {stack}\n"),
        );
        let out = tdev(
            dir.path(),
            &[
                "run",
                fixture("hostile/deep_recursion.wat").to_str().expect("p"),
                "--policy",
                policy.to_str().expect("p"),
                "--args",
                "1",
                "--json",
            ],
        );
        assert_eq!(code(&out, "deep recursion"), 4, "stack {stack}");
        assert_eq!(json(&out, "deep recursion")["outcome"], "stack_overflow");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write(dir.path(), "too.toml", "[limits]\nstack_bytes = 33554432\n");
    let (add, policy) = (agent("add.wat"), policy.to_string_lossy());
    let args = ["run", &add, "--policy", &policy, "--args", "1,2"];
    let out = tdev(dir.path(), &args);
    assert_eq!(code(&out, "too large"), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("limits.stack_bytes"));
}

#[test]
fn a_log_line_of_hostile_bytes_is_within_the_cap_as_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = fixture("hostile/log_hostile_bytes.wat");
    let r = tdev_json(dir.path(), &["run", log.to_str().expect("p"), "--json"], 0);
    let line = r["logs"][0].as_str().expect("a line");
    assert!(line.len() <= 1024, "{} bytes", line.len());
    assert!(
        line.starts_with("\\xff\\xff") && line.ends_with(" bytes]"),
        "{line}"
    );
}

#[test]
fn output_is_shown_a_screenful_at_a_time_and_whole_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let input = write(d, "in.txt", &text);
    let (echo, input) = (agent("echo.wat"), input.to_string_lossy().into_owned());
    // text mode: 40 lines at most, and what was left out
    let out = tdev(d, &["run", &echo, "--input", &input]);
    assert_eq!(code(&out, "run"), 0);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("line 39\n") && !shown.contains("line 40\n"),
        "{shown}"
    );
    let rest = text.len() - text.find("line 40").expect("line 40") + 1;
    assert!(
        shown.contains(&format!(
            "… {rest} more bytes not shown: --output-file FILE or --raw"
        )),
        "{shown}"
    );
    assert!(shown.len() < 4096 + 1024, "{} bytes printed", shown.len());
    // --raw: the output alone on stdout, the report on stderr
    let out = tdev(d, &["run", &echo, "--input", &input, "--raw"]);
    assert_eq!(code(&out, "raw"), 0);
    assert_eq!(out.stdout, text.as_bytes());
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains(&format!("output:     {} bytes, on stdout", text.len())),
        "{report}"
    );
    // --output-file: the bytes in the file, their size in the report
    let out = tdev(
        d,
        &["run", &echo, "--input", &input, "--output-file", "out.bin"],
    );
    assert_eq!(code(&out, "output file"), 0);
    assert_eq!(
        std::fs::read(d.join("out.bin")).expect("out.bin"),
        text.as_bytes()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("written to out.bin"));
    // --json: the output as text when it is UTF-8, and not otherwise
    let r = tdev_json(d, &["run", &echo, "--input", &input, "--json"], 0);
    assert_eq!(r["output_text"], text.as_str());
    let out = tdev_stdin(d, &["run", &echo, "--input", "-", "--json"], b"\xff\xfe");
    let r = json(&out, "binary");
    assert!(r.get("output_text").is_none(), "{r}");
    assert_eq!(r["output_hex"], "fffe");
    // --raw takes no --json
    assert_eq!(
        code(&tdev(d, &["run", &echo, "--raw", "--json"]), "raw json"),
        1
    );
}

#[test]
fn fail_on_status_makes_a_non_zero_status_exit_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // echo answers status 1 when its input does not fit in one read
    let big = write(d, "big.txt", &"x".repeat(65_000));
    let (echo, big) = (agent("echo.wat"), big.to_string_lossy().into_owned());
    let out = tdev(d, &["run", &echo, "--input", &big]);
    assert_eq!(code(&out, "status 1"), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("status:     1"));
    let out = tdev(d, &["run", &echo, "--input", &big, "--fail-on-status"]);
    assert_eq!(code(&out, "status 1, failing"), 4);
    let out = tdev(
        d,
        &["run", &echo, "--input", &big, "--fail-on-status", "--json"],
    );
    assert_eq!(code(&out, "status 1, failing, json"), 4);
    assert_eq!(json(&out, "json")["result"], 1);
    // status 0 still exits 0
    let small = write(d, "small.txt", "hi");
    let out = tdev(
        d,
        &[
            "run",
            &echo,
            "--input",
            &small.to_string_lossy(),
            "--fail-on-status",
        ],
    );
    assert_eq!(code(&out, "status 0"), 0);
}

#[test]
fn errors_name_what_is_at_fault_once_with_the_right_category() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "bad.toml", "garbage = [\n");
    let (echo, add, abs) = (
        agent("echo.wat"),
        agent("add.wat"),
        fixture_arg("tasks/abs.toml"),
    );
    // (command, what must be named once, words of the category)
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["validate", "missing.wasm"],
            "missing.wasm",
            "cannot read",
        ),
        (
            vec!["run", &echo, "--input", "missing.txt"],
            "missing.txt",
            "cannot read",
        ),
        (
            vec!["run", &echo, "--policy", "missing.toml"],
            "missing.toml",
            "cannot read policy",
        ),
        (
            vec!["run", &echo, "--policy", "bad.toml"],
            "bad.toml",
            "invalid policy",
        ),
        (
            vec!["evolve", "--task", "missing.toml"],
            "missing.toml",
            "cannot read the file",
        ),
        (
            vec!["evolve", "--task", "bad.toml"],
            "bad.toml",
            "invalid task",
        ),
        (
            vec!["evolve", "--task", &abs, "--seed-agent", "gone.wasm"],
            "gone.wasm",
            "cannot read",
        ),
        (
            vec!["evolve", "--task", &abs, "--store", "ftp://x"],
            "ftp://x",
            "bad store URI",
        ),
        (
            vec!["evolutions", "--store", "s3://"],
            "s3://",
            "bad store URI",
        ),
        (vec!["run", &add, "--args", "1,x"], "\"x\"", "bad arguments"),
        (
            vec!["evolve", "--resume", "evo-none"],
            "evo-none",
            "cannot resume",
        ),
        (
            vec!["run", &echo, "--bogus"],
            "--bogus",
            "unexpected argument",
        ),
        (
            vec!["evolve", "--task", &abs, "--population", "x"],
            "'x'",
            "invalid value",
        ),
    ];
    for (args, named, category) in cases {
        let out = tdev(d, &args);
        let what = args.join(" ");
        assert_eq!(code(&out, &what), 1, "`tdev {what}`");
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with("tdev: "), "`tdev {what}`: {err}");
        assert_eq!(first.matches(named).count(), 1, "`tdev {what}`: {first}");
        assert!(first.contains(category), "`tdev {what}`: {first}");
        // no cause is said twice
        let parts: Vec<&str> = first.split(": ").filter(|p| p.len() > 8).collect();
        for p in &parts {
            assert_eq!(
                first.matches(p).count(),
                1,
                "`tdev {what}` repeats {p:?}: {first}"
            );
        }
        assert!(!first.contains("store I/O"), "`tdev {what}`: {first}");
    }
}

/// Issue 16, point 8: a read-only command on a mistyped store path finds nothing and
/// creates nothing; `tdev store init` creates it.
#[test]
fn read_only_commands_create_no_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let typo = d.join("stroe");
    let uri = format!("file://{}", typo.display());
    let out = tdev(d, &["evolutions", "--store", &uri]);
    assert_eq!(code(&out, "evolutions"), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no evolutions"));
    let out = tdev(d, &["quarantine", "list", "--store", &uri]);
    assert_eq!(code(&out, "quarantine list"), 0);
    let out = tdev(
        d,
        &["validate", &fixture_arg("agents/echo.wat"), "--store", &uri],
    );
    assert_eq!(code(&out, "validate"), 0);
    assert!(!typo.exists(), "a read-only command created the store");
    assert_eq!(
        code(&tdev(d, &["store", "init", "--store", &uri]), "init"),
        0
    );
    assert!(typo.join("agents").is_dir() && typo.join("evolution").is_dir());
}

/// Issue 16, point 7: a head that does not parse, or names a generation without its
/// checkpoint, is an integrity error naming it: `evolutions` and `--resume` exit 1,
/// never a silent fall back to another generation.
#[test]
fn a_corrupt_head_is_named_never_fallen_back_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let r = tdev_json(
        d,
        &[
            "evolve",
            "--task",
            &fixture_arg("tasks/abs.toml"),
            "--seed",
            "2",
            "--generations",
            "2",
            "--json",
        ],
        0,
    );
    let id = r["evolution_id"].as_str().expect("id");
    let head = d.join(format!(".tdev/evolution/checkpoints/{id}/head.json"));
    let good = std::fs::read(&head).expect("head");
    for (bad, why) in [
        (b"{garbage".to_vec(), "head.json"),
        (
            br#"{"generation": 7}"#.to_vec(),
            "names generation 7, whose checkpoint is missing",
        ),
    ] {
        std::fs::write(&head, &bad).expect("break the head");
        for args in [vec!["evolutions"], vec!["evolve", "--resume", id]] {
            let out = tdev(d, &args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(code(&out, "corrupt head"), 1, "{args:?}: {err}");
            assert!(
                err.contains("head.json") && err.contains(why),
                "{args:?}: {err}"
            );
        }
    }
    std::fs::write(&head, good).expect("restore");
    assert_eq!(code(&tdev(d, &["evolutions"]), "evolutions"), 0);
}

/// Issue 16, point 7: a quarantined module whose bytes were deleted behind the store's
/// back is named as missing (exit 1), not shown as too large to keep; `store copy`
/// refuses a truncated record, naming it.
#[test]
fn lost_bytes_and_truncated_records_are_integrity_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let r = tdev_json(
        d,
        &["run", &fixture_arg("hostile/wasi_import.wat"), "--json"],
        3,
    );
    let id = r["agent_id"].as_str().expect("id");
    let hex = id.trim_start_matches("sha256:");
    std::fs::remove_file(d.join(format!(".tdev/agents/source/{hex}"))).expect("delete the bytes");
    for json in [false, true] {
        let mut args = vec!["quarantine", "show", id];
        if json {
            args.push("--json");
        }
        let out = tdev(d, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out, "show"), 1, "{err}");
        assert!(err.contains(&format!("source/{hex} is missing")), "{err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("too large"));
    }
    // a truncated record is not copied as if it were sound
    let rec = d.join(format!(".tdev/agents/quarantine/{hex}.json"));
    let text = std::fs::read(&rec).expect("record");
    std::fs::write(&rec, &text[..text.len() / 2]).expect("truncate");
    let to = format!("file://{}", d.join("copy").display());
    let out = tdev(d, &["store", "copy", "--from", "file://.tdev", "--to", &to]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out, "copy"), 1, "{err}");
    assert!(err.contains(&format!("quarantine/{hex}.json")), "{err}");
}

/// Issue 16, point 7: a rollback to a generation whose checkpoint does not parse is
/// refused, naming it, and moves nothing; a damaged population record is restored from
/// the checkpoint's copy.
#[test]
fn a_rollback_to_a_corrupt_generation_moves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let r = tdev_json(
        d,
        &[
            "evolve",
            "--task",
            &fixture_arg("tasks/quartic.toml"),
            "--seed",
            "4",
            "--generations",
            "3",
            "--json",
        ],
        0,
    );
    let id = r["evolution_id"].as_str().expect("id");
    let cps = d.join(format!(".tdev/evolution/checkpoints/{id}"));
    let head = std::fs::read(cps.join("head.json")).expect("head");
    let (file, key) = (
        cps.join("000001.json"),
        format!("checkpoints/{id}/000001.json"),
    );
    let good = std::fs::read(&file).expect("record");
    std::fs::write(&file, &good[..good.len() / 2]).expect("truncate");
    let out = tdev(d, &["rollback", id, "--generation", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out, "rollback"), 1, "{err}");
    assert!(err.contains(&key), "{err}");
    // nothing moved: the later checkpoints and the head are as they were
    assert!(cps.join("000002.json").exists() && cps.join("000003.json").exists());
    assert_eq!(std::fs::read(cps.join("head.json")).expect("head"), head);
    std::fs::write(&file, good).expect("restore");
    let record = d.join(format!(".tdev/evolution/generations/{id}/000001.json"));
    let good = std::fs::read(&record).expect("record");
    std::fs::write(&record, &good[..good.len() / 2]).expect("truncate");
    assert_eq!(
        code(&tdev(d, &["rollback", id, "--generation", "1"]), "rollback"),
        0
    );
    assert_eq!(std::fs::read(&record).expect("record"), good, "restored");
}
