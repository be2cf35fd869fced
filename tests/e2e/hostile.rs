//! Every hostile fixture through `tdev validate` and `tdev run`.

use crate::fixtures::{is_right, manifest};
use crate::support::{assert_clean, code, fixture, json, tdev};
use std::collections::BTreeSet;

const LIMITS: [&str; 6] = [
    "out_of_fuel",
    "deadline",
    "memory_limit",
    "table_limit",
    "stack_overflow",
    "output_limit",
];

#[test]
fn manifest_covers_the_required_classes() {
    let m = manifest();
    let files: BTreeSet<&str> = m.fixture.iter().map(|f| f.file.as_str()).collect();
    assert!(files.len() >= 30, "only {} hostile modules", files.len());
    for f in &files {
        assert!(fixture(&format!("hostile/{f}")).is_file(), "{f} missing");
    }
    // Every .wat in the folder has an entry.
    for entry in std::fs::read_dir(fixture("hostile")).expect("dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".wat") {
            assert!(
                files.contains(name.as_str()),
                "{name} has no manifest entry"
            );
        }
    }
    let outcomes: BTreeSet<&str> = m.fixture.iter().map(|f| f.outcome.as_str()).collect();
    for word in LIMITS.iter().chain(&[
        "ok",
        "rejected",
        "unreachable",
        "out_of_bounds",
        "division_by_zero",
        "integer_overflow",
        "bad_conversion",
        "indirect_call",
    ]) {
        assert!(outcomes.contains(word), "no fixture ends in {word}");
    }
}

#[test]
fn every_hostile_module_gets_a_right_outcome() {
    let m = manifest();
    let mut failures = Vec::new();
    for f in &m.fixture {
        let what = format!(
            "{} (policy {})",
            f.file,
            f.policy.as_deref().unwrap_or("default")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = fixture(&format!("hostile/{}", f.file));
        let path = path.to_str().expect("utf-8 path");
        let policy = f.policy.as_ref().map(|p| {
            fixture(&format!("hostile/{p}"))
                .to_string_lossy()
                .into_owned()
        });
        let mut common: Vec<&str> = vec![path];
        if let Some(p) = &policy {
            common.extend(["--policy", p]);
        }

        // validate
        let mut v_args = vec!["validate"];
        v_args.extend(&common);
        v_args.push("--json");
        let out = tdev(dir.path(), &v_args);
        let c = code(&out, &what);
        let v = json(&out, &what);
        let kinds: BTreeSet<String> = v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|x| x["kind"].as_str().expect("kind").to_string())
            .collect();
        let want: BTreeSet<String> = f.findings.iter().cloned().collect();
        if kinds != want {
            failures.push(format!("{what}: findings {kinds:?}, want {want:?}"));
        }
        let admitted = v["admitted"].as_bool().expect("admitted");
        if admitted != (f.outcome != "rejected") {
            failures.push(format!("{what}: admitted = {admitted}"));
        }
        if c != if admitted { 0 } else { 3 } {
            failures.push(format!("{what}: validate exit {c}"));
        }

        // run
        let input_file = dir.path().join("input.bin");
        let mut r_args = vec!["run"];
        r_args.extend(&common);
        r_args.extend(["--json", "--store", "store"]);
        if let Some(a) = &f.args {
            r_args.extend(["--args", a]);
        }
        if let Some(i) = &f.input {
            std::fs::write(&input_file, i).expect("input");
            r_args.extend(["--input", input_file.to_str().expect("path")]);
        }
        let out = tdev(dir.path(), &r_args);
        let c = code(&out, &what);
        assert_clean(&out.stdout, &what);
        assert_clean(&out.stderr, &what);
        let r = json(&out, &what);
        let outcome = r["outcome"].as_str().unwrap_or("?");
        if !is_right(&f.outcome, outcome) {
            failures.push(format!(
                "{what}: outcome {outcome} ({}), want {}",
                r["trap_message"], f.outcome
            ));
            continue;
        }
        let want_code = match outcome {
            "ok" => 0,
            "rejected" => 3,
            _ => 4,
        };
        if c != want_code {
            failures.push(format!("{what}: run exit {c}, want {want_code}"));
        }
        let trap = &r["trap"];
        if (outcome == "ok" || outcome == "rejected") != trap.is_null()
            || (!trap.is_null() && trap != outcome)
        {
            failures.push(format!("{what}: trap {trap}"));
        }
        let want_q = f
            .quarantined
            .unwrap_or(outcome == "rejected" || LIMITS.contains(&outcome));
        if r["quarantined"] != want_q {
            failures.push(format!("{what}: quarantined {}", r["quarantined"]));
        }
        if let Some(hex) = &f.output_hex
            && r["output_hex"] != hex.as_str()
        {
            failures.push(format!("{what}: output_hex {}", r["output_hex"]));
        }
        if let Some(bits) = &f.result_bits
            && r["result_bits"] != bits.as_str()
        {
            failures.push(format!("{what}: result_bits {}", r["result_bits"]));
        }
        if let Some(n) = f.logs_dropped
            && r["logs_dropped"] != n
        {
            failures.push(format!("{what}: logs_dropped {}", r["logs_dropped"]));
        }

        // a quarantined module is listed and can be shown, escaped
        if want_q {
            let id = r["agent_id"].as_str().expect("agent_id");
            let out = tdev(dir.path(), &["quarantine", "show", id, "--store", "store"]);
            assert_eq!(code(&out, &what), 0, "{what}: show");
            assert_clean(&out.stdout, &what);
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.contains(id) || !text.contains("text form:") {
                failures.push(format!("{what}: quarantine show says {text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_text_form_shown_of_a_huge_module_is_cut_at_the_budget() {
    // ~6 KB of 50,000-local functions: its whole text form would be ~120 MB.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture("hostile/text_form_over_budget.wat");
    let path = path.to_str().expect("utf-8 path");
    let out = tdev(dir.path(), &["run", path, "--json", "--store", "store"]);
    assert_eq!(code(&out, "run"), 3);
    let r = json(&out, "run");
    assert_eq!(r["quarantined"], true);
    let id = r["agent_id"].as_str().expect("id").to_string();
    let out = tdev(
        dir.path(),
        &["quarantine", "show", &id, "--json", "--store", "store"],
    );
    assert_eq!(code(&out, "show"), 0);
    let s = json(&out, "show");
    let wat = s["wat"].as_str().expect("wat");
    let cap = runtime::Policy::default_policy().limits.text_bytes as usize;
    let marker = format!("\n;; text form cut at {cap} bytes (limits.text_bytes)\n");
    assert!(wat.starts_with("(module") && wat.ends_with(&marker));
    assert!(wat.len() <= cap + marker.len(), "{} bytes", wat.len());
}
