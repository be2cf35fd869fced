//! `tdev new NAME (--bytes | --typed SIG)`: writes a ready agent crate — Cargo.toml
//! with the size-minded release profile, `.cargo/config.toml` with the stack flag,
//! `src/lib.rs` with an agent and a native test, and `tests/wasm32.rs`, which builds it
//! for wasm32 — that builds and runs under `tdev run` as written.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("form").required(true).args(["bytes", "typed"])))]
pub struct Args {
    /// The folder to create; its last component is the crate's name.
    pub path: PathBuf,
    /// A bytes-form agent: reads its input, writes its output, returns a status.
    #[arg(long)]
    pub bytes: bool,
    /// A typed agent with this signature: up to eight i64/f64 parameters and one
    /// i64/f64 result, as `i64,i64->i64` or `(f64, f64) -> f64`.
    #[arg(long, value_name = "SIG")]
    pub typed: Option<String>,
    /// The agent-sdk folder to depend on (default: $TDEV_SDK, else the SDK this tdev
    /// was built with).
    #[arg(long, value_name = "PATH")]
    pub sdk: Option<PathBuf>,
}

/// The wasm32 stack the crate asks the linker for (rustc's default, 1 MiB, alone fills
/// the default policy's memory cap).
const STACK_BYTES: u32 = 64 * 1024;

/// Most parameters `agent_sdk::act!` takes.
const MAX_PARAMS: usize = 8;

/// Names a crate may not take (Rust keywords and the crates every agent already sees).
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "core",
    "std",
    "alloc",
    "proc_macro",
    "test",
    "agent_sdk",
];

/// `i64` or `f64`: the types of the typed form.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    I64,
    F64,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::I64 => "i64",
            Ty::F64 => "f64",
        }
    }
}

/// A typed agent's signature.
#[derive(Debug, PartialEq, Eq)]
struct Sig {
    params: Vec<Ty>,
    result: Ty,
}

fn parse_ty(word: &str, sig: &str) -> Result<Ty> {
    match word {
        "i64" => Ok(Ty::I64),
        "f64" => Ok(Ty::F64),
        other => {
            bail!("--typed {sig:?}: {other:?} is not a type of the typed form (i64 or f64 only)")
        }
    }
}

/// `i64,i64->i64`, `(f64, f64) -> f64`, `() -> i64`, `->f64`.
fn parse_sig(sig: &str) -> Result<Sig> {
    let Some((params, result)) = sig.split_once("->") else {
        bail!("--typed {sig:?}: a signature is PARAMS -> RESULT, as `i64,i64->i64`");
    };
    let params = params.trim();
    let params = params
        .strip_prefix('(')
        .and_then(|p| p.strip_suffix(')'))
        .unwrap_or(params);
    let params: Vec<Ty> = if params.trim().is_empty() {
        Vec::new()
    } else {
        params
            .split(',')
            .map(|p| parse_ty(p.trim(), sig))
            .collect::<Result<_>>()?
    };
    if params.len() > MAX_PARAMS {
        bail!(
            "--typed {sig:?}: {} parameters; the typed form takes at most {MAX_PARAMS}",
            params.len()
        );
    }
    let result = result.trim();
    if result.is_empty() || result.contains(',') {
        bail!("--typed {sig:?}: the typed form returns exactly one i64 or f64");
    }
    Ok(Sig {
        params,
        result: parse_ty(result, sig)?,
    })
}

/// The crate's name: the folder's last component, as Cargo would take it.
fn crate_name(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: no folder name to name the crate by", path.display()))?;
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        bail!(
            "{name:?} is not a crate name: a letter, then letters, digits, `_` or `-` (at most 64)"
        );
    }
    if RESERVED.contains(&name.replace('-', "_").as_str()) {
        bail!("{name:?} is reserved in Rust; pick another name");
    }
    Ok(name.to_string())
}

/// The SDK folder: `--sdk`, `$TDEV_SDK`, or the one this tdev was built from.
fn find_sdk(given: Option<&Path>) -> Result<PathBuf> {
    let env = std::env::var_os("TDEV_SDK").map(PathBuf::from);
    let (path, from) = match (given, env) {
        (Some(p), _) => (p.to_path_buf(), "--sdk"),
        (None, Some(p)) => (p, "TDEV_SDK"),
        (None, None) => {
            let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent-sdk");
            if !built.join("Cargo.toml").is_file() {
                bail!(
                    "cannot find the agent SDK (tdev was built from a tree that is gone): pass --sdk PATH, the agent-sdk folder of a T-Developer checkout, or set TDEV_SDK"
                );
            }
            (built, "the tree tdev was built from")
        }
    };
    let manifest = path.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("{} (from {from}) is not the agent SDK", manifest.display()))?;
    if !text.lines().any(|l| l.trim() == "name = \"agent-sdk\"") {
        bail!(
            "{} (from {from}) is not the agent SDK's manifest",
            manifest.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

/// A TOML basic string: a JSON string is one (the same escapes, and serde_json writes no
/// `\/`), so a path with quotes or backslashes stays a path.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A WebAssembly module for wasm32 (`cargo build --release --target wasm32-unknown-unknown`);
# `cargo test` builds it natively against the SDK's in-memory host.
[lib]
crate-type = ["cdylib"]

[dependencies]
agent-sdk = {{ path = {sdk} }}

# Small modules (an agent may be at most 6656 bytes); a panic traps.
[profile.release]
opt-level = "z"
lto = true
panic = "abort"
strip = true
codegen-units = 1

# A workspace of its own, even when made inside another one.
[workspace]
"#,
        sdk = toml_string(sdk)
    )
}

fn cargo_config() -> String {
    format!(
        r#"# rustc gives a wasm32 module a 1 MiB stack, which alone fills the default policy's
# memory cap (validation would answer `memory_cap`); {STACK_BYTES} bytes is plenty for an agent.
[target.wasm32-unknown-unknown]
rustflags = ["-C", "link-arg=-zstack-size={STACK_BYTES}"]
"#
    )
}

fn bytes_lib() -> String {
    r#"//! A bytes-form agent: copies its input to its output and returns status 0.
#![no_std]

agent_sdk::act! {
    fn() -> i32 {
        let mut buf = [0u8; 1024];
        loop {
            let n = agent_sdk::read_input(&mut buf);
            if n == 0 {
                return 0;
            }
            agent_sdk::write(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::act;
    use agent_sdk::testing;

    #[test]
    fn copies_its_input() {
        // Keep the lock for the whole test: tests share the agent's statics.
        let _host = testing::reset(b"hello, agent");
        assert_eq!(testing::call(act), Ok(0));
        assert_eq!(testing::output(), b"hello, agent");
    }
}
"#
    .to_string()
}

fn typed_lib(sig: &Sig) -> String {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let params: Vec<String> = sig
        .params
        .iter()
        .zip(names)
        .map(|(t, n)| format!("{n}: {}", t.name()))
        .collect();
    let terms: Vec<String> = sig
        .params
        .iter()
        .zip(names)
        .map(|(t, n)| {
            if *t == sig.result {
                n.to_string()
            } else {
                format!("({n} as {})", sig.result.name())
            }
        })
        .collect();
    let zero = match sig.result {
        Ty::I64 => "0",
        Ty::F64 => "0.0",
    };
    let body = if terms.is_empty() {
        zero.to_string()
    } else {
        terms.join(" + ")
    };
    // The test calls it with 1, 2, 3, …: their sum.
    let args: Vec<String> = sig
        .params
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Ty::I64 => format!("{}", i + 1),
            Ty::F64 => format!("{}.0", i + 1),
        })
        .collect();
    let n = sig.params.len();
    let sum = n * (n + 1) / 2;
    let expected = match sig.result {
        Ty::I64 => format!("{sum}"),
        Ty::F64 => format!("{sum}.0"),
    };
    let run_args = if n == 0 {
        String::new()
    } else {
        format!(
            " --args {}",
            (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        )
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"//! A typed agent: `({params}) -> {result}`, the sum of its arguments.
//! Try it: `tdev run target/wasm32-unknown-unknown/release/AGENT.wasm{run_args}`.
#![no_std]

agent_sdk::act! {{
    fn({params}) -> {result} {{
        {body}
    }}
}}

#[cfg(test)]
mod tests {{
    use super::act;
    use agent_sdk::testing;

    #[test]
    fn adds_its_arguments() {{
        // Keep the lock for the whole test: tests share the agent's statics.
        let _host = testing::reset(b"");
        assert_eq!(testing::call(|| act({args})), Ok({expected}));
    }}
}}
"#,
        params = params.join(", "),
        result = sig.result.name(),
        args = args.join(", "),
    );
    out
}

/// A test that builds the agent for wasm32: natively the SDK links `std` (its
/// in-memory host catches panics), so a method only `std` has compiles in a native
/// test; this test fails on it as the wasm32 build does.
fn wasm32_test() -> String {
    r#"//! Builds this agent for wasm32, as the sandbox runs it. Natively a method that only
//! `std` has (`f64::sqrt`, `f64::powf`) compiles, because the SDK's in-memory host links
//! `std`; for wasm32 it does not. This test makes `cargo test` fail on it too.

#[test]
fn builds_for_wasm32() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["build", "--release", "--lib", "--target", "wasm32-unknown-unknown"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the agent does not build for wasm32 (take float functions from core or libm, not std):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
"#
    .to_string()
}

fn readme(name: &str, wasm: &str, run: &str) -> String {
    format!(
        r#"# {name}

A T-Developer agent. From this folder:

```sh
cargo test                                          # natively, and a build for wasm32
cargo build --release --target wasm32-unknown-unknown
tdev validate {wasm}
{run}
```

The module must stay under 6656 bytes (`tdev validate` shows its size). See the T-Developer
guide, docs/writing-agents.md, for the SDK, the limits and what a quarantine means.
"#
    )
}

/// `tdev new`.
pub fn exec(args: Args) -> Result<u8> {
    let name = crate_name(&args.path)?;
    let sig = args.typed.as_deref().map(parse_sig).transpose()?;
    let sdk = find_sdk(args.sdk.as_deref())?;
    let sdk = sdk
        .to_str()
        .with_context(|| format!("the SDK path {} is not UTF-8", sdk.display()))?
        .to_string();
    if args.path.exists() {
        let mut entries = std::fs::read_dir(&args.path)
            .with_context(|| format!("{} exists and is not a folder", args.path.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} exists and is not empty; tdev new writes a new crate",
                args.path.display()
            );
        }
    }
    let wasm = format!(
        "target/wasm32-unknown-unknown/release/{}.wasm",
        name.replace('-', "_")
    );
    let (lib, run) = match &sig {
        None => (
            bytes_lib(),
            format!("echo hello | tdev run {wasm} --input -"),
        ),
        Some(sig) => {
            let n = sig.params.len();
            let args = if n == 0 {
                String::new()
            } else {
                let list: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
                format!(" --args {}", list.join(","))
            };
            (
                typed_lib(sig).replace("AGENT", &name.replace('-', "_")),
                format!("tdev run {wasm}{args}"),
            )
        }
    };
    let files: [(&str, String); 6] = [
        ("Cargo.toml", cargo_toml(&name, &sdk)),
        (".cargo/config.toml", cargo_config()),
        ("src/lib.rs", lib),
        ("tests/wasm32.rs", wasm32_test()),
        (".gitignore", "/target\n".to_string()),
        ("README.md", readme(&name, &wasm, &run)),
    ];
    for (rel, text) in &files {
        let path = args.path.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let form = match &args.typed {
        None => "bytes form".to_string(),
        Some(_) => format!("typed form, {}", describe(sig.as_ref())),
    };
    println!(
        "created agent crate `{name}` ({form}) in {}",
        args.path.display()
    );
    println!("  cd {}", args.path.display());
    println!("  cargo test");
    println!("  cargo build --release --target wasm32-unknown-unknown");
    println!("  {run}");
    Ok(0)
}

fn describe(sig: Option<&Sig>) -> String {
    match sig {
        None => String::new(),
        Some(sig) => {
            let params: Vec<&str> = sig.params.iter().map(|t| t.name()).collect();
            format!("({}) -> {}", params.join(", "), sig.result.name())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_parse_in_either_spelling() {
        let want = Sig {
            params: vec![Ty::I64, Ty::F64],
            result: Ty::F64,
        };
        assert_eq!(parse_sig("i64,f64->f64").ok(), Some(want));
        assert_eq!(
            parse_sig(" ( i64 , i64 ) -> i64 ").ok(),
            Some(Sig {
                params: vec![Ty::I64, Ty::I64],
                result: Ty::I64
            })
        );
        assert_eq!(parse_sig("()->i64").map(|s| s.params.len()).ok(), Some(0));
        assert_eq!(parse_sig("-> f64").map(|s| s.result).ok(), Some(Ty::F64));
    }

    #[test]
    fn bad_signatures_say_what_is_wrong() {
        let err = |s: &str| format!("{:#}", parse_sig(s).expect_err(s));
        assert!(err("i32->i64").contains("\"i32\" is not a type"));
        assert!(err("i64,i64").contains("PARAMS -> RESULT"));
        assert!(err("i64->i64,i64").contains("exactly one"));
        assert!(err("i64->").contains("exactly one"));
        assert!(err(&format!("{}->i64", ["i64"; 9].join(","))).contains("at most 8"));
        assert!(err("i64,,i64->i64").contains("\"\" is not a type"));
    }

    #[test]
    fn crate_names_follow_cargo() {
        assert_eq!(
            crate_name(Path::new("a/b/my-agent")).ok().as_deref(),
            Some("my-agent")
        );
        for bad in ["1abc", "has space", "ünï", "test", "fn", "agent-sdk", ""] {
            assert!(crate_name(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_sdk_path_is_a_toml_string() {
        let s = toml_string(r#"C:\a "b"/c"#);
        let doc: toml::Table = toml::from_str(&format!("p = {s}")).expect("toml");
        assert_eq!(doc["p"].as_str(), Some(r#"C:\a "b"/c"#));
    }
}
