//! Admission cost: the worst modules the default policy admits, shape by shape.
//!
//! Each family builds a module from a scale `n`; the harness finds the largest `n`
//! whose module the default policy admits (the worst of that shape) and measures
//! `Sandbox::admit` (validation + compilation) on it, with the default configuration
//! and with `fast_compile`. Times are wall times over `BENCH_RUNS` calls (default 9),
//! each on a fresh sandbox: the median and, in parentheses, the fastest (the machine
//! is shared: the fastest is the nearest to the cost on a quiet machine).
//! Memory (MB) is measured in a fresh child process doing one call: how far its peak
//! resident set (`VmHWM`, reset through `/proc/self/clear_refs` just before the call)
//! rose above its resident set before the call — heap and mappings alike. Hostile
//! shapes the policy rejects are measured too: their cost is validation alone.
//!
//! Run with `cargo bench -p runtime --bench admission` (`BENCH_POLICY=FILE` measures
//! another policy, `BENCH_ONLY=TEXT` only the shapes whose name contains TEXT).

#[path = "../tests/support/modules.rs"]
mod modules;

use modules::locals_only;
use runtime::{Admission, Policy, Sandbox, SandboxConfig};
use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Set in a child process: `MODE POLICY PATH`; MODE one of `validate`, `admit`,
/// `fast`, `print` (the whole text form, unbounded); POLICY a policy file or `-`.
const CHILD: &str = "TDEV_ADMISSION_BENCH_CHILD";

/// The default policy, or the one named by `BENCH_POLICY` (to measure the worst
/// modules another policy admits).
fn policy() -> Policy {
    match std::env::var("BENCH_POLICY") {
        Ok(path) => Policy::from_file(Path::new(&path)).expect("BENCH_POLICY"),
        Err(_) => Policy::default_policy(),
    }
}

/// A field of `/proc/self/status`, in kB.
fn status_kb(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child: sets up, resets the peak RSS, does one call, prints its wall time in ms
/// and how far the peak rose above the resident set before the call, in kB.
fn child(spec: &str) {
    let mut parts = spec.splitn(3, ' ');
    let (Some(mode), Some(policy_path), Some(path)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("child spec {spec:?}");
    };
    let bytes = std::fs::read(path).expect("module file");
    let p = match policy_path {
        "-" => policy(),
        file => Policy::from_file(Path::new(file)).expect("child policy"),
    };
    let mut cfg = SandboxConfig::new();
    cfg.fast_compile(mode == "fast");
    let sb = Sandbox::with_config(p.clone(), &cfg).expect("sandbox");
    // Writing 5 to clear_refs resets VmHWM to the current resident set (Linux 4.0+).
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
    let before = status_kb("VmRSS:");
    let t = Instant::now();
    match mode {
        "validate" => {
            std::hint::black_box(runtime::validate(&p, &bytes));
        }
        "print" => {
            std::hint::black_box(wasmprinter::print_bytes(&bytes).map(|t| t.len()).ok());
        }
        _ => {
            std::hint::black_box(sb.admit(&bytes, false).expect("admit"));
        }
    }
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let peak = status_kb("VmHWM:");
    println!("{ms} {}", peak.saturating_sub(before));
}

/// One call in a fresh process under `policy` (a file, or `-` for the bench's):
/// its wall time in ms and its peak RSS growth in MB.
fn in_child(mode: &str, policy: &str, path: &Path) -> (f64, f64) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .env(CHILD, format!("{mode} {policy} {}", path.display()))
        .output()
        .expect("child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(f64::NAN));
    let ms = it.next().unwrap_or(f64::NAN);
    let kb = it.next().unwrap_or(f64::NAN);
    (ms, kb / 1024.0)
}

/// Peak RSS growth of one call in a fresh process, in MB.
fn child_mb(mode: &str, path: &Path) -> f64 {
    in_child(mode, "-", path).1
}

/// Wall time of `runs` calls of `f` (each given what `setup` made, outside the
/// measure): the median and the fastest, in ms.
fn time_ms<S>(runs: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(&S)) -> (f64, f64) {
    let mut wall = Vec::new();
    for _ in 0..runs {
        let s = setup();
        let t = Instant::now();
        f(&s);
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        drop(s);
    }
    let fastest = wall.iter().copied().fold(f64::INFINITY, f64::min);
    (median(wall), fastest)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn locals_decl(n: u64, ty: &str) -> String {
    if n == 0 {
        return String::new();
    }
    let mut s = String::from("(local");
    for _ in 0..n {
        s.push(' ');
        s.push_str(ty);
    }
    s.push(')');
    s
}

/// `f` functions of `n` i64 locals each, every local touched once.
fn many_locals(funcs: u64, n: u64) -> String {
    let mut m = String::from("(module\n");
    for f in 0..funcs {
        let _ = write!(m, "(func $f{f} (result i64) {}", locals_decl(n, "i64"));
        m.push_str(" i64.const 0");
        for i in 0..n.min(40) {
            let _ = write!(m, " local.get {i} i64.add");
        }
        m.push_str(")\n");
    }
    m.push_str("(func (export \"act\") (result i64) i64.const 0");
    for f in 0..funcs {
        let _ = write!(m, " call $f{f} i64.add");
    }
    m.push_str("))");
    m
}

/// One function: `locals` locals, `depth` nested loops, and in the innermost `n`
/// pairs `local.get a; local.set b` over distinct locals (an SSA variable crossing
/// every loop header). With `back_edges`, every loop branches back to its header
/// (on the parameter, local 0, which the pairs leave alone), so each header is a
/// real merge point of every local changed inside it.
fn locals_in_loops(locals: u64, depth: u64, n: u64, back_edges: bool) -> String {
    let mut m = String::from("(module (func (export \"act\") (param i64) (result i64) ");
    m.push_str(&locals_decl(locals.saturating_sub(1), "i64"));
    for _ in 0..depth {
        m.push_str(" (loop");
    }
    let (first, span) = if back_edges {
        (1, locals - 1)
    } else {
        (0, locals)
    };
    for k in 0..n {
        let a = first + (2 * k) % span;
        let b = first + (2 * k + 1) % span;
        let _ = write!(m, " local.get {a} local.set {b}");
    }
    let close = if back_edges {
        " local.get 0 i32.wrap_i64 br_if 0)"
    } else {
        ")"
    };
    for _ in 0..depth {
        m.push_str(close);
    }
    m.push_str(if back_edges {
        " local.get 1))"
    } else {
        " local.get 0))"
    });
    m
}

/// `n` blocks nested `depth` deep, one after the other, each setting a local.
fn nested_blocks(depth: u64, n: u64) -> String {
    let mut m = String::from("(module (func (export \"act\") (result i64) (local i64)");
    for k in 0..n {
        for _ in 0..depth {
            m.push_str(" (block");
        }
        let _ = write!(m, " i64.const {k} local.set 0");
        for _ in 0..depth {
            m.push(')');
        }
    }
    m.push_str(" local.get 0))");
    m
}

/// `n` br_tables of `targets` targets each, spread over the labels of `depth` nested
/// blocks, with `locals` locals set between them (each target a merge point).
fn br_tables(depth: u64, targets: u64, locals: u64, n: u64) -> String {
    let mut m = String::from("(module (func (export \"act\") (param i64) (result i64) ");
    m.push_str(&locals_decl(locals - 1, "i64"));
    for _ in 0..depth {
        m.push_str(" (block");
    }
    for k in 0..n {
        for i in 0..locals.min(8) {
            let _ = write!(
                m,
                " i64.const {k} local.set {}",
                1 + (k * 8 + i) % (locals - 1)
            );
        }
        m.push_str(" local.get 0 i32.wrap_i64 (br_table");
        for t in 0..targets {
            let _ = write!(m, " {}", t % depth);
        }
        m.push_str(" 0)");
    }
    for _ in 0..depth {
        m.push(')');
    }
    m.push_str(" local.get 1))");
    m
}

/// `n` `nop`s inside blocks nested `depth` deep: the longest text form per byte (each
/// one-byte instruction is a line indented by the nesting).
fn deep_nops(depth: u64, n: u64) -> String {
    let mut m = String::from("(module (func (export \"act\") (result i32)");
    for _ in 0..depth {
        m.push_str(" (block");
    }
    for _ in 0..n {
        m.push_str(" nop");
    }
    for _ in 0..depth {
        m.push(')');
    }
    m.push_str(" i32.const 0))");
    m
}

/// `n` small functions, all in a table (each escapes and gets a trampoline) and
/// called through it.
fn functions(n: u64) -> String {
    let mut m = String::from("(module (type $t (func (param i64) (result i64)))\n");
    for f in 0..n {
        let _ = writeln!(m, "(func $f{f} (type $t) local.get 0)");
    }
    let _ = write!(m, "(table {n} funcref) (elem (i32.const 0)");
    for f in 0..n {
        let _ = write!(m, " $f{f}");
    }
    m.push_str(")\n(func (export \"act\") (param i64) (result i64) local.get 0 local.get 0 i32.wrap_i64 call_indirect (type $t)))");
    m
}

/// `n` constants on the operand stack at once, then added up.
fn operand_stack(n: u64) -> String {
    let mut m = String::from("(module (func (export \"act\") (result i64)");
    for k in 0..n {
        let _ = write!(m, " i64.const {}", k % 64);
    }
    for _ in 1..n {
        m.push_str(" i64.add");
    }
    m.push_str("))");
    m
}

/// `n` multiply-adds in a row on one local.
fn straight_line(n: u64) -> String {
    let mut m = String::from("(module (func (export \"act\") (param i64) (result i64)");
    for _ in 0..n {
        m.push_str(" local.get 0 i64.const 3 i64.mul i64.const 1 i64.add local.set 0");
    }
    m.push_str(" local.get 0))");
    m
}

/// `n` mutable globals, each read and written.
fn globals(n: u64) -> String {
    let mut m = String::from("(module\n");
    for g in 0..n {
        let _ = writeln!(m, "(global $g{g} (mut i64) (i64.const {g}))");
    }
    m.push_str("(func (export \"act\") (result i64) i64.const 0");
    for g in 0..n {
        let _ = write!(
            m,
            " global.get $g{g} i64.add global.get $g{g} i64.const 1 i64.add global.set $g{g}"
        );
    }
    m.push_str("))");
    m
}

/// `n` data segments of 48 bytes, active and passive alternately.
fn data_segments(n: u64) -> String {
    let mut m = String::from("(module (memory (export \"memory\") 16)\n");
    for d in 0..n {
        let chunk = "\\ff".repeat(48);
        if d % 2 == 0 {
            let _ = writeln!(m, "(data (i32.const {}) \"{chunk}\")", d * 64);
        } else {
            let _ = writeln!(m, "(data \"{chunk}\")");
        }
    }
    m.push_str("(func (export \"act\") (result i32) i32.const 0))");
    m
}

/// `n` types of 100 i64 params each, and a function of each type called with 100
/// arguments.
fn wide_types(n: u64) -> String {
    let mut m = String::from("(module\n");
    let params = "i64 ".repeat(100);
    for t in 0..n {
        let _ = writeln!(m, "(type $t{t} (func (param {params}) (result i64)))");
        let _ = writeln!(m, "(func $f{t} (type $t{t}) local.get {})", t % 100);
    }
    m.push_str("(func (export \"act\") (result i64) i64.const 0");
    for t in 0..n {
        for k in 0..100 {
            let _ = write!(m, " i64.const {}", k % 64);
        }
        let _ = write!(m, " call $f{t} i64.add");
    }
    m.push_str("))");
    m
}

/// `n` loads and stores at different offsets.
fn memory_ops(n: u64) -> String {
    let mut m = String::from(
        "(module (memory (export \"memory\") 1) (func (export \"act\") (param i64) (result i64)",
    );
    for k in 0..n {
        let _ = write!(
            m,
            " i32.const 0 i32.const 0 i64.load offset={} i64.store offset={}",
            k * 8 % 60000,
            (k * 8 + 8) % 60000
        );
    }
    m.push_str(" local.get 0))");
    m
}

/// `n` if/else diamonds nested `depth` deep, each branch setting a different local.
fn if_diamonds(locals: u64, depth: u64, n: u64) -> String {
    let mut m = String::from("(module (func (export \"act\") (param i64) (result i64) ");
    m.push_str(&locals_decl(locals - 1, "i64"));
    for k in 0..n {
        for d in 0..depth {
            let a = 1 + (k * depth + d) % (locals - 1);
            let _ = write!(
                m,
                " local.get 0 i32.wrap_i64 (if (then i64.const 1 local.set {a}) (else"
            );
        }
        for _ in 0..depth {
            m.push_str("))");
        }
    }
    m.push_str(" local.get 1))");
    m
}

type Family = (&'static str, Box<dyn Fn(u64) -> String>);

fn families(p: &Policy) -> Vec<Family> {
    let l = p.limits.clone();
    let per_fn = l.locals_per_function;
    let depth = l.nesting_depth;
    let targets = l.br_table_targets;
    vec![
        (
            "many locals (functions of limits.locals_per_function locals; n functions)",
            Box::new(move |n| many_locals(n, per_fn)),
        ),
        (
            "locals crossing limits.nesting_depth loops (n get/set pairs)",
            Box::new(move |n| locals_in_loops(per_fn, depth, n, false)),
        ),
        (
            "locals crossing limits.nesting_depth loops with back edges (n get/set pairs)",
            Box::new(move |n| locals_in_loops(per_fn, depth, n, true)),
        ),
        (
            "blocks limits.nesting_depth deep (n nests)",
            Box::new(move |n| nested_blocks(depth, n)),
        ),
        (
            "br_table of limits.br_table_targets targets, locals set between (n tables)",
            Box::new(move |n| br_tables(depth, targets, per_fn, n)),
        ),
        (
            "if/else diamonds limits.nesting_depth deep (n nests)",
            Box::new(move |n| if_diamonds(per_fn, depth, n)),
        ),
        (
            "nops limits.nesting_depth deep: the longest text form (n nops)",
            Box::new(move |n| deep_nops(depth, n)),
        ),
        ("functions in a table (n functions)", Box::new(functions)),
        ("operand stack (n values live)", Box::new(operand_stack)),
        ("straight-line code (n steps)", Box::new(straight_line)),
        ("globals (n globals)", Box::new(globals)),
        ("data segments (n segments)", Box::new(data_segments)),
        (
            "types of 100 params, a call of each (n types)",
            Box::new(wide_types),
        ),
        ("loads and stores (n pairs)", Box::new(memory_ops)),
    ]
}

fn admitted(p: &Policy, wat: &str) -> Option<Vec<u8>> {
    let bytes = wat::parse_str(wat).ok()?;
    runtime::validate(p, &bytes).admitted.then_some(bytes)
}

/// The largest `n` whose module `p` admits (admission is monotone in `n` for these
/// families), with its bytes.
fn worst(p: &Policy, build: &dyn Fn(u64) -> String) -> Option<(u64, Vec<u8>)> {
    let mut lo = 1;
    let mut best = admitted(p, &build(lo)).map(|b| (lo, b))?;
    let mut hi = 2;
    while let Some(b) = admitted(p, &build(hi)) {
        best = (hi, b);
        lo = hi;
        hi *= 2;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match admitted(p, &build(mid)) {
            Some(b) => {
                best = (mid, b);
                lo = mid;
            }
            None => hi = mid,
        }
    }
    Some(best)
}

struct Row {
    validate_ms: f64,
    admit: (f64, f64),
    admit_mb: f64,
    fast: (f64, f64),
    fast_mb: f64,
}

fn run_row(p: &Policy, bytes: &[u8], runs: usize, dir: &Path) -> Row {
    let path = dir.join("module.wasm");
    std::fs::write(&path, bytes).expect("write module");
    let (validate_ms, _) = time_ms(
        runs,
        || (),
        |_| {
            std::hint::black_box(runtime::validate(p, bytes));
        },
    );
    let mut ms = [(0.0, 0.0); 2];
    for (i, fast) in [false, true].into_iter().enumerate() {
        let mut cfg = SandboxConfig::new();
        cfg.fast_compile(fast);
        // A fresh sandbox per call: admission is cached by agent id.
        ms[i] = time_ms(
            runs,
            || Sandbox::with_config(p.clone(), &cfg).expect("sandbox"),
            |sb| {
                let adm = sb.admit(bytes, false).expect("admit");
                assert!(
                    matches!(adm, Admission::Admitted(_)),
                    "validated but not admitted"
                );
            },
        );
    }
    Row {
        validate_ms,
        admit: ms[0],
        admit_mb: child_mb("admit", &path),
        fast: ms[1],
        fast_mb: child_mb("fast", &path),
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is taken.
    let dir = std::env::temp_dir().join(format!("tdev-admission-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9)
        .max(1);
    let p = policy();
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("Load average before: {}", load().trim());
    println!("Worst admitted module of each shape under the policy ({runs} runs):\n");
    println!(
        "| shape | n | bytes | validate ms | admit ms (fastest) | admit MB | fast_compile ms (fastest) | fast_compile MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst_ms: f64 = 0.0;
    let mut worst_mb: f64 = 0.0;
    let mut worst_fastest: f64 = 0.0;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (name, build) in families(&p) {
        if !name.contains(only.as_str()) {
            continue;
        }
        let Some((n, bytes)) = worst(&p, &*build) else {
            let why = match wat::parse_str(build(1)) {
                Ok(b) => format!("{:?}", runtime::validate(&p, &b).findings),
                Err(e) => e.to_string(),
            };
            println!("| {name} | — | — | not admitted at n = 1: {why} | | | | |");
            continue;
        };
        let r = run_row(&p, &bytes, runs, &dir);
        worst_ms = worst_ms.max(r.admit.0).max(r.fast.0);
        worst_fastest = worst_fastest.max(r.admit.1).max(r.fast.1);
        worst_mb = worst_mb.max(r.admit_mb).max(r.fast_mb);
        println!(
            "| {name} | {n} | {} | {:.2} | {:.2} ({:.2}) | {:.1} | {:.2} ({:.2}) | {:.1} |",
            bytes.len(),
            r.validate_ms,
            r.admit.0,
            r.admit.1,
            r.admit_mb,
            r.fast.0,
            r.fast.1,
            r.fast_mb
        );
    }
    println!(
        "\nWorst admitted: {worst_ms:.2} ms (median), {worst_fastest:.2} ms (fastest), {worst_mb:.1} MB.\n"
    );

    println!("Hostile shapes the default policy rejects (cost: validation only):\n");
    println!("| shape | bytes | findings | validate ms | validate MB |");
    println!("|---|---:|---|---:|---:|");
    let wat = |s: &str| wat::parse_str(s).expect("hostile shape assembles");
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "300 functions of 48,000 locals",
            locals_only(300, 48_000, true),
        ),
        (
            "600 functions of 50,000 locals",
            locals_only(600, 50_000, true),
        ),
        (
            "9,300 functions of 50,000 locals (over the size cap)",
            locals_only(9_300, 50_000, true),
        ),
        (
            "5 tables",
            wat(
                "(module (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref) (func (export \"act\") (result i32) i32.const 0))",
            ),
        ),
        ("2,000 nested blocks", wat(&nested_blocks(2000, 1))),
        ("br_table of 6,000 targets", wat(&br_tables(2, 6000, 2, 1))),
    ];
    for (name, bytes) in hostile {
        let v = runtime::validate(&p, &bytes);
        assert!(!v.admitted, "{name} was admitted");
        let kinds: std::collections::BTreeSet<String> =
            v.findings.iter().map(|f| f.kind.to_string()).collect();
        let (ms, _) = time_ms(
            runs,
            || (),
            |_| {
                std::hint::black_box(runtime::validate(&p, &bytes));
            },
        );
        let path = dir.join("hostile.wasm");
        std::fs::write(&path, &bytes).expect("write module");
        println!(
            "| {name} | {} | {} | {ms:.3} | {:.1} |",
            bytes.len(),
            kinds.into_iter().collect::<Vec<_>>().join(", "),
            child_mb("validate", &path)
        );
    }

    println!("\nWhat the limits stop, measured with them lifted (one call in a fresh process):\n");
    println!("| what | bytes | ms | MB |");
    println!("|---|---:|---:|---:|");
    let lifted = dir.join("lifted.toml");
    std::fs::write(
        &lifted,
        "[limits]\nfunctions = 1000000\nlocals_per_function = 50000\nlocals = 50000000\n\
         nesting_depth = 100000\nbr_table_targets = 1000000\ntext_bytes = 67108864\n",
    )
    .expect("write policy");
    let bounded = dir.join("bounded.toml");
    std::fs::write(
        &bounded,
        "[limits]\nfunctions = 1000000\nlocals_per_function = 50000\nlocals = 50000000\n",
    )
    .expect("write policy");
    let lifted = lifted.to_string_lossy().into_owned();
    let bounded = bounded.to_string_lossy().into_owned();
    let rows: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        (
            "admit 300 functions of 48,000 locals, no cost limits",
            "admit",
            &lifted,
            locals_only(300, 48_000, true),
        ),
        (
            "the whole text form of 600 functions of 50,000 locals (unbounded print)",
            "print",
            &lifted,
            locals_only(600, 50_000, true),
        ),
        (
            "validate the same, no cost limits, text scan bounded by `limits.text_bytes`",
            "validate",
            &bounded,
            locals_only(600, 50_000, true),
        ),
    ];
    for (name, mode, pol, bytes) in rows {
        let path = dir.join("lifted.wasm");
        std::fs::write(&path, &bytes).expect("write module");
        let (ms, mb) = in_child(mode, pol, &path);
        println!("| {name} | {} | {ms:.1} | {mb:.1} |", bytes.len());
    }

    let _ = std::fs::remove_dir_all(&dir);
    println!("\nLoad average after: {}", load().trim());
}
