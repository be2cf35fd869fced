//! `tdev evolve` end to end: solving, reproducibility, durability under SIGKILL,
//! resume, rollback and the emergency stop.

use crate::support::{Reaped, code, evolve, fixture_arg, json, tdev, write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for an evolve process to commit a generation or to stop: a
/// watchdog against a hang, not a speed bound (a generation takes well under a
/// second).
const WATCHDOG: Duration = Duration::from_secs(300);

pub(crate) fn task(name: &str) -> String {
    fixture_arg(&format!("tasks/{name}.toml"))
}

/// Runs `tdev evolve --task fixtures/tasks/NAME.toml ARGS --json` in `dir`.
fn evolve_task(dir: &Path, name: &str, args: &[&str]) -> serde_json::Value {
    let task = task(name);
    let mut all = vec!["--task", &task];
    all.extend(args);
    evolve(dir, &all)
}

/// The three records (generation, fitness log, safety snapshot) checkpoint `cp` commits,
/// read as docs/storage.md says: the checkpoint carries them (`records.text`; a commit
/// killed before it published has them nowhere else); under their keys they are the
/// same text once published.
fn committed_records(store: &Path, id: &str, name: &str, cp: &serde_json::Value) -> Vec<Vec<u8>> {
    let own: Vec<Vec<u8>> = cp["records"]["text"]
        .as_array()
        .expect("a checkpoint carries its records")
        .iter()
        .map(|t| t.as_str().expect("text").as_bytes().to_vec())
        .collect();
    assert_eq!(own.len(), 3, "{name}");
    // Under its key a record is the committed text, or not there yet (killed before
    // publishing; nothing in this store was rolled back).
    for (p, text) in ["generations", "fitness_logs", "safety_snapshots"]
        .iter()
        .zip(&own)
    {
        if let Ok(stored) = std::fs::read(store.join("evolution").join(p).join(id).join(name)) {
            assert_eq!(&stored, text, "{p}/{id}/{name}");
        }
    }
    own
}

/// Every checkpoint parses and every module it names is stored under its own hash.
fn assert_store_intact(store: &Path, id: &str) -> u32 {
    let cps = store.join("evolution/checkpoints").join(id);
    let mut newest = None;
    for entry in std::fs::read_dir(&cps).expect("checkpoints") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let Some(g) = name
            .strip_suffix(".json")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read"))
            .expect("checkpoint parses");
        let records = committed_records(store, id, &name, &cp);
        let record: serde_json::Value =
            serde_json::from_slice(&records[0]).expect("generation record parses");
        let stored: std::collections::HashMap<&str, &str> = record["population"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| {
                (
                    m["agent_id"].as_str().expect("id"),
                    m["module_hex"].as_str().expect("hex"),
                )
            })
            .collect();
        for member in cp["population"].as_array().expect("population") {
            let aid = member[0].as_str().expect("id");
            let hex = stored
                .get(aid)
                .unwrap_or_else(|| panic!("module {aid} of generation {g} missing"));
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            assert_eq!(
                runtime::agent_id(&bytes),
                aid,
                "module stored under a wrong id"
            );
        }
        let best = cp["best"]["agent_id"].as_str().expect("best");
        let bytes =
            std::fs::read(store.join("agents/source").join(&best[7..])).expect("best module");
        assert_eq!(runtime::agent_id(&bytes), best);
        for r in &records {
            let v: serde_json::Value = serde_json::from_slice(r).expect("record parses");
            assert!(v.is_object());
        }
        newest = newest.max(Some(g));
    }
    newest.expect("at least generation 0")
}

#[test]
fn quartic_is_solved_and_the_best_module_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let r = evolve_task(d, "quartic", &["--seed", "1", "--out", "best.wasm"]);
    for k in [
        "evolution_id",
        "solved",
        "generations",
        "evaluations",
        "wall_ms",
        "best",
        "culled",
        "quarantined",
    ] {
        assert!(r.get(k).is_some(), "missing {k}: {r}");
    }
    assert_eq!(r["solved"], true, "{r}");
    assert!(r["best"]["train_error"].as_f64().expect("err") <= 0.01);
    assert!(r["best"]["test_error"].as_f64().expect("test err") < 0.05);
    assert!(r["best"]["size_bytes"].as_u64().expect("size") <= 6656);
    assert!(r["valid_share"].as_f64().expect("share") >= 0.99);
    // the written module is the best one and computes the quartic
    let bytes = std::fs::read(d.join("best.wasm")).expect("best.wasm");
    assert_eq!(
        runtime::agent_id(&bytes),
        r["best"]["agent_id"].as_str().expect("id")
    );
    let out = json(
        &tdev(d, &["run", "best.wasm", "--args", "0.5", "--json"]),
        "run best",
    );
    let y = out["result"].as_f64().expect("f64");
    assert!((y - 0.9375).abs() < 0.05, "q(0.5) = {y}");
    // the plot: best and median lines on labelled axes
    let plot = std::fs::read_to_string(d.join("best.svg")).expect("plot");
    for part in [
        r#"<polyline class="best""#,
        r#"<polyline class="median""#,
        r#"class="xtick">0</text>"#,
        r#"class="ytick""#,
        ">generation</text>",
        ">train error (log scale)</text>",
    ] {
        assert!(plot.contains(part), "{part}: {plot}");
    }
    let id = r["evolution_id"].as_str().expect("id");
    assert_eq!(
        assert_store_intact(&d.join(".tdev"), id),
        r["generations"].as_u64().expect("g") as u32
    );
    let list = json(&tdev(d, &["evolutions", "--json"]), "evolutions");
    assert_eq!(list["evolutions"][0]["evolution_id"], id);
    assert_eq!(list["evolutions"][0]["status"], "solved");
    // a task with an f64: straight-line code and epsilon-lexicase by default
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.join(format!(".tdev/evolution/checkpoints/{id}/config.json")))
            .expect("config"),
    )
    .expect("config JSON");
    assert_eq!(
        (&config["selection"], &config["control_flow"]),
        (&"epsilon-lexicase".into(), &false.into()),
        "{config}"
    );
    // the best's bytes, metadata and measured cost in the agents bucket
    let best = r["best"]["agent_id"].as_str().expect("id");
    let agents = d.join(".tdev/agents");
    assert_eq!(
        std::fs::read(agents.join(format!("source/{}", &best[7..]))).expect("source"),
        bytes
    );
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(agents.join(format!("metadata/{}.json", &best[7..]))).expect("metadata"),
    )
    .expect("metadata JSON");
    assert_eq!(meta["evolution_id"], id);
    let perf: serde_json::Value = serde_json::from_slice(
        &std::fs::read(agents.join(format!("performance/{}.json", &best[7..])))
            .expect("performance"),
    )
    .expect("performance JSON");
    assert_eq!(perf["agent_id"], best);
    assert_eq!(perf["cases"], 20);
    assert_eq!(perf["outcomes"]["ok"], 20, "{perf}");
    // the sandbox's train error of the best is the one the evolution reported
    assert_eq!(perf["train_error"], r["best"]["train_error"], "{perf}");
    let (total, max) = (
        perf["fuel_used_total"].as_u64().expect("fuel"),
        perf["fuel_used_max"].as_u64().expect("fuel max"),
    );
    assert!(max > 0 && max <= total && total <= 20 * max, "{perf}");
}

#[test]
fn same_seed_same_best_on_any_number_of_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--task", &task("abs"), "--seed", "2", "--population", "120"];
    let one = evolve(dir.path(), &[&args[..], &["--threads", "1"]].concat());
    let two = evolve(dir.path(), &[&args[..], &["--threads", "2"]].concat());
    assert_eq!(one["best"]["agent_id"], two["best"]["agent_id"]);
    assert_eq!(one["generations"], two["generations"]);
    let other = evolve(
        dir.path(),
        &["--task", &task("abs"), "--seed", "3", "--population", "120"],
    );
    assert!(other["best"]["agent_id"].is_string());
}

#[test]
fn seed_agents_join_the_initial_population() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = write(
        dir.path(),
        "add.toml",
        "name = \"add\"\nparams = [\"i64\", \"i64\"]\nresult = \"i64\"\nerror = \"abs\"\nsuccess_threshold = 0.0\ncases = [ { args = [1, 2], expect = 3 }, { args = [-5, 9], expect = 4 } ]\n",
    );
    let add = fixture_arg("agents/add.wat");
    let r = evolve(
        dir.path(),
        &[
            "--task",
            t.to_str().expect("p"),
            "--seed-agent",
            &add,
            "--population",
            "20",
        ],
    );
    assert_eq!(r["solved"], true);
    assert_eq!(r["generations"], 0);
    // a seed with the wrong signature is refused
    let gcd_task = task("abs");
    let out = tdev(
        dir.path(),
        &["evolve", "--task", &gcd_task, "--seed-agent", &add],
    );
    assert_eq!(code(&out, "bad seed"), 1);
}

/// `tdev evolve ARGS --json` in `dir`, in the background (killed when dropped).
pub(crate) fn spawn_evolve(dir: &Path, args: &[&str]) -> Reaped {
    let child = Command::new(env!("CARGO_BIN_EXE_tdev"))
        .arg("evolve")
        .args(args)
        .arg("--json")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    Reaped::new(child)
}

fn evolution_id(store: &Path) -> Option<String> {
    let dir = std::fs::read_dir(store.join("evolution/checkpoints")).ok()?;
    dir.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("evo-"))
}

/// Waits (up to the [`WATCHDOG`]) until generation `g` of the store's evolution is
/// committed; its id.
pub(crate) fn wait_for_generation(store: &Path, g: u32) -> String {
    let t = Instant::now();
    loop {
        if let Some(id) = evolution_id(store)
            && store
                .join(format!("evolution/checkpoints/{id}/{g:06}.json"))
                .exists()
        {
            return id;
        }
        assert!(t.elapsed() < WATCHDOG, "generation {g} never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_at_random_points_then_resume() {
    let sum = task("sum_range");
    let args = [
        "--task",
        sum.as_str(),
        "--seed",
        "5",
        "--population",
        "60",
        "--generations",
        "100000",
    ];
    // kill points, in milliseconds after generation 1 is committed
    for (round, delay) in [0u64, 37, 151, 420].into_iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut child = spawn_evolve(d, &args);
        let id = wait_for_generation(&d.join(".tdev"), 1);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill();
        let head = assert_store_intact(&d.join(".tdev"), &id);
        let target = head + 2;
        let r = evolve(d, &["--resume", &id, "--generations", &target.to_string()]);
        assert_eq!(r["evolution_id"], id.as_str(), "round {round}");
        assert_eq!(r["generations"], target, "round {round}");
        assert_eq!(assert_store_intact(&d.join(".tdev"), &id), target);

        if round == 0 {
            // Resuming gives what an uninterrupted run of the same seed gives.
            let fresh = tempfile::tempdir().expect("tempdir");
            let straight = evolve(
                fresh.path(),
                &[
                    "--task",
                    sum.as_str(),
                    "--seed",
                    "5",
                    "--population",
                    "60",
                    "--generations",
                    &target.to_string(),
                ],
            );
            assert_eq!(straight["best"]["agent_id"], r["best"]["agent_id"]);
        }
    }
}

#[test]
fn rollback_makes_an_old_generation_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let r = evolve_task(
        d,
        "sum_range",
        &["--population", "40", "--generations", "5"],
    );
    let id = r["evolution_id"].as_str().expect("id").to_string();
    assert_eq!(r["generations"], 5);
    assert_eq!(
        code(
            &tdev(d, &["rollback", &id, "--generation", "2"]),
            "rollback"
        ),
        0
    );
    let list = json(&tdev(d, &["evolutions", "--json"]), "list");
    assert_eq!(list["evolutions"][0]["head_generation"], 2);
    let r = evolve(d, &["--resume", &id, "--generations", "4"]);
    assert_eq!(r["generations"], 4);
    // rolling back to a generation that does not exist is an error
    let out = tdev(d, &["rollback", &id, "--generation", "99"]);
    assert_eq!(code(&out, "bad rollback"), 1);
    let out = tdev(d, &["rollback", "../../etc", "--generation", "0"]);
    assert_eq!(code(&out, "hostile id"), 1);
    // a down-sample share outside (0, 1] is refused before anything runs
    let sum = task("sum_range");
    for share in ["0", "2", "nan"] {
        let out = tdev(d, &["evolve", "--task", &sum, "--downsample", share]);
        assert_eq!(code(&out, "bad share"), 1);
        assert!(String::from_utf8_lossy(&out.stderr).contains("down-sample share"));
    }
}

#[test]
fn stop_halts_a_running_evolution_with_its_last_generation_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let sum = task("sum_range");
    let child = spawn_evolve(
        d,
        &[
            "--task",
            &sum,
            "--population",
            "60",
            "--generations",
            "100000",
        ],
    );
    let id = wait_for_generation(&d.join(".tdev"), 2);
    assert_eq!(code(&tdev(d, &["stop"]), "stop"), 0);
    let out = child.finish(WATCHDOG, "evolve after tdev stop");
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["stopped"], true);
    let head = assert_store_intact(&d.join(".tdev"), &id);
    assert_eq!(r["generations"], head);
    // listed as stopped at its head, until a resumed run moves the head
    let status = |d: &std::path::Path| {
        json(&tdev(d, &["evolutions", "--json"]), "evolutions")["evolutions"][0]["status"]
            .as_str()
            .expect("status")
            .to_string()
    };
    assert_eq!(status(d), "stopped");
    let more = u64::from(head) + 1;
    let r = evolve(d, &["--resume", &id, "--generations", &more.to_string()]);
    assert_eq!(r["stopped"], false);
    assert!(
        ["finished", "solved"].contains(&status(d).as_str()),
        "{}",
        status(d)
    );
}

#[test]
fn offspring_below_the_minimum_score_are_quarantined_with_parents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A policy that scores any module multiplying i64 at 0.5: such offspring are
    // rejected, culled and quarantined with their parents.
    let p = write(
        d,
        "nomul.toml",
        "[[patterns]]\nname = \"no_mul\"\nscope = \"text\"\nregex = 'i64\\.mul'\nweight = 0.5\n",
    );
    let r = evolve(
        d,
        &[
            "--task",
            &task("abs"),
            "--policy",
            p.to_str().expect("p"),
            "--population",
            "40",
            "--generations",
            "3",
            "--seed",
            "4",
        ],
    );
    assert!(r["culled"]["rejected"].as_u64().unwrap_or(0) > 0, "{r}");
    let q = r["quarantined"].as_u64().expect("quarantined");
    assert!(q > 0, "{r}");
    let list = json(&tdev(d, &["quarantine", "list", "--json"]), "list");
    let items = list["quarantine"].as_array().expect("items");
    assert_eq!(items.len() as u64, q);
    let mut with_parents = 0;
    for i in items {
        let id = i["agent_id"].as_str().expect("id");
        let s = json(&tdev(d, &["quarantine", "show", id, "--json"]), "show");
        assert_eq!(s["reason"], "static");
        assert_eq!(s["findings"][0]["kind"], "pattern:no_mul");
        assert!(s["wat"].as_str().expect("wat").contains("i64.mul"));
        if !s["parents"].as_array().expect("parents").is_empty() {
            with_parents += 1;
        }
    }
    assert!(
        with_parents > 0,
        "no quarantined offspring records its parents"
    );
}

#[test]
fn progress_shows_a_bar_with_generation_errors_rate_and_culls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tdev(
        dir.path(),
        &[
            "evolve",
            "--task",
            &task("sum_range"),
            "--generations",
            "3",
            "--population",
            "40",
            "--seed",
            "2",
        ],
    );
    assert_eq!(code(&out, "evolve"), 0);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("[######..............] gen    1/3 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[2].starts_with("[####################] gen    3/3 "),
        "{}",
        lines[2]
    );
    for l in &lines {
        for part in ["best ", "mean ", "evals ", "/s)", "culled ["] {
            assert!(l.contains(part), "{part} missing: {l}");
        }
    }
}

/// The seed of [`a_loop_task_is_solved_by_a_program_with_a_loop`] (overridable to look
/// for others: `TDEV_LOOP_SEEDS=1,2,3` runs each and prints what it got).
const LOOP_TASK_SEED: &str = "7";

/// Program synthesis: an integer task with held-out cases is solved (exact on every
/// training case) and generalises (exact on every held-out case, PSB's criterion) with
/// lexicase selection, and the champion's text form holds a loop.
#[test]
fn a_loop_task_is_solved_by_a_program_with_a_loop() {
    let seeds = std::env::var("TDEV_LOOP_SEEDS").unwrap_or_else(|_| LOOP_TASK_SEED.into());
    let the_task = task(LOOP_TASK);
    for seed in seeds.split(',') {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let r = evolve(
            d,
            &[
                "--task",
                &the_task,
                "--seed",
                seed,
                "--selection",
                "lexicase",
                "--out",
                "best.wasm",
            ],
        );
        let bytes = std::fs::read(d.join("best.wasm")).expect("best.wasm");
        let text =
            runtime::text_form(&runtime::Policy::default_policy(), &bytes).expect("a text form");
        if seeds != LOOP_TASK_SEED {
            println!(
                "seed {seed}: solved {} generalises {} loop {}\n{text}",
                r["solved"],
                r["generalises"],
                text.contains("loop")
            );
            continue;
        }
        assert_eq!(r["solved"], true, "{r}");
        assert_eq!(r["generalises"], true, "{r}");
        assert_eq!(r["best"]["train_error"], 0.0, "{r}");
        assert_eq!(r["best"]["test_error"], 0.0, "{r}");
        assert!(text.contains("loop"), "no loop in the champion:\n{text}");
    }
}

/// The loop task of the test above: GCD (PSB2), which no program without a loop solves.
const LOOP_TASK: &str = "gcd";

/// docs/evolution.md shows an evolved program: it is what `tdev evolve` breeds for the
/// command the page gives, byte for byte, and it generalises.
#[test]
fn the_evolved_program_in_the_docs_is_what_evolve_breeds() {
    let page = std::fs::read_to_string(crate::support::root().join("docs/evolution.md"))
        .expect("docs/evolution.md");
    let wat = page
        .split("```wat\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a wat block");
    let shown = wat::parse_str(wat).expect("the page's text form assembles");
    assert!(
        page.contains("`tdev evolve --task fixtures/tasks/gcd.toml --seed 11\n--out gcd.wasm`")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let r = evolve_task(d, "gcd", &["--seed", "11", "--out", "gcd.wasm"]);
    assert_eq!(
        (&r["solved"], &r["generalises"]),
        (&true.into(), &true.into()),
        "{r}"
    );
    let bred = std::fs::read(d.join("gcd.wasm")).expect("gcd.wasm");
    assert!(wat.contains("loop"), "{wat}");
    assert_eq!(runtime::agent_id(&bred), runtime::agent_id(&shown));
}

/// Issue 16, point 6: an evolution stores the policy it started under; `--resume`
/// without `--policy` runs under it (and so breeds what an uninterrupted run under it
/// breeds), and a resume with another policy is refused before anything runs.
#[test]
fn a_resume_runs_under_the_evolutions_own_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Little fuel per call: sum_range's loops run out of it where the default's do not.
    let tight = write(d, "tight.toml", "[limits]\nfuel_per_call = 400\n");
    let tight_arg = tight.display().to_string();
    let base = ["--population", "40", "--seed", "3"];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra);
        evolve_task(d, "sum_range", &args)
    };
    let straight = run(&["--generations", "4", "--policy", &tight_arg]);
    let default = run(&["--generations", "4"]);
    assert_ne!(
        (&straight["evaluations"], &straight["culled"]),
        (&default["evaluations"], &default["culled"]),
        "the policies must lead to different runs for this test to mean anything"
    );
    let first = run(&["--generations", "2", "--policy", &tight_arg]);
    let id = first["evolution_id"].as_str().expect("id").to_string();
    let stored = std::fs::read_to_string(
        d.join(".tdev/evolution/checkpoints")
            .join(&id)
            .join("policy.json"),
    )
    .expect("the policy is stored");
    assert!(stored.contains("fuel_per_call = 400"), "{stored}");
    // another policy (here the default one, named) is refused, and nothing moves
    let default_policy = crate::support::fixture_arg("../policies/default.toml");
    let out = tdev(
        d,
        &[
            "evolve",
            "--resume",
            &id,
            "--generations",
            "4",
            "--policy",
            &default_policy,
        ],
    );
    assert_eq!(code(&out, "another policy"), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another policy") && err.contains("policy.json"),
        "{err}"
    );
    let list = json(&tdev(d, &["evolutions", "--json"]), "list");
    let head = list["evolutions"]
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["evolution_id"] == id.as_str())
        .expect("listed")["head_generation"]
        .clone();
    assert_eq!(head, 2);
    // without --policy: its own, the same run as the uninterrupted one
    let resumed = evolve(d, &["--resume", &id, "--generations", "4"]);
    for field in ["evaluations", "culled", "best"] {
        assert_eq!(resumed[field], straight[field], "{field}");
    }
    // and with the same policy named again
    let again = evolve(
        d,
        &[
            "--resume",
            &id,
            "--generations",
            "5",
            "--policy",
            &tight_arg,
        ],
    );
    assert_eq!(again["generations"], 5);
}
