//! Helpers shared by the subcommands.

use anyhow::{Context, Result, bail};
use runtime::{Finding, Policy, Sandbox};
use std::io::Read;
use std::path::Path;

/// Exit code: admitted / ok.
pub const EXIT_OK: u8 = 0;
/// Exit code: rejected.
pub const EXIT_REJECTED: u8 = 3;
/// Exit code: trapped.
pub const EXIT_TRAPPED: u8 = 4;

/// The module and policy a command works on.
#[derive(clap::Args)]
pub struct ModuleArgs {
    /// The module (.wasm, or .wat text).
    pub file: std::path::PathBuf,
    /// Policy file (default: the built-in policies/default.toml).
    #[arg(long)]
    pub policy: Option<std::path::PathBuf>,
}

impl ModuleArgs {
    /// Loads the policy and reads the module.
    pub fn load(&self) -> Result<(Policy, Vec<u8>)> {
        let policy = load_policy(self.policy.as_deref())?;
        let bytes = read_module(&self.file)?;
        Ok((policy, bytes))
    }
}

/// Prints one JSON object on stdout.
pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v).context("cannot encode the JSON report")?;
    println!("{text}");
    Ok(())
}

/// Loads the policy: `--policy FILE` or the default.
pub fn load_policy(path: Option<&Path>) -> Result<Policy> {
    match path {
        // A file that cannot be read is named by the error itself; one that does not
        // parse is named here.
        Some(p) => Policy::from_file(p).map_err(|e| match e.kind() {
            runtime::ErrorKind::PolicyIo { .. } => anyhow::Error::new(e),
            _ => anyhow::Error::new(e).context(format!("policy {}", p.display())),
        }),
        None => Ok(Policy::default_policy()),
    }
}

/// A sandbox for the policy.
pub fn sandbox(policy: Policy) -> Result<Sandbox> {
    Sandbox::new(policy).context("cannot start the sandbox")
}

/// Reads a module: `.wat` files are text and are assembled; anything else is taken as
/// bytes, as they are, so a broken binary is judged by the validator.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_file(path)?;
    let is_text = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wat") || e.eq_ignore_ascii_case("wast"));
    if is_text {
        let text = std::str::from_utf8(&bytes)
            .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
        return wat::parse_str(text)
            .map_err(|e| anyhow::anyhow!("{}", runtime::escape(&e.to_string())))
            .with_context(|| format!("cannot assemble {}", path.display()));
    }
    Ok(bytes)
}

/// Reads a file, or stdin for `-`.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        return Ok(buf);
    }
    if path.is_dir() {
        bail!("{} is a directory", path.display());
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Findings for a person.
pub fn print_findings(findings: &[Finding]) {
    if findings.is_empty() {
        println!("findings:   none");
        return;
    }
    println!("findings:");
    for f in findings {
        let kind = f.kind.to_string();
        println!("  {:<28} weight {:<5} {}", kind, f.weight, f.detail);
        if let Some(remedy) = runtime::remedy(&kind, &f.detail) {
            println!("  {:<28} remedy: {remedy}", "");
        }
    }
}

/// Opens the store of `--store` (default `./.tdev`).
pub fn open_store(uri: Option<&str>) -> Result<std::sync::Arc<dyn engine::store::BlobStore>> {
    let uri = uri.unwrap_or(engine::store::DEFAULT_STORE);
    engine::store::open(uri).map_err(|e| store_error(e, "cannot open store", uri))
}

/// An error of the store at `uri`: named by the error itself when the URI is bad, by
/// `doing` otherwise.
pub fn store_error(e: engine::Error, doing: &str, uri: &str) -> anyhow::Error {
    match e.kind() {
        engine::ErrorKind::StoreUri { .. } => anyhow::Error::new(e),
        _ => anyhow::Error::new(e).context(format!("{doing} {uri}")),
    }
}

/// An error and its causes on one line, `outer: inner: …`; a cause whose message the
/// line already ends with is not repeated.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let next = cause.to_string().replace('\n', " ");
        if text.is_empty() {
            text = next;
        } else if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
    }
    text
}

/// The alerts of a command: `--alerts FILE`, else the file `$TDEV_ALERTS` names, else
/// none. The returned guard waits for the alerts still queued when it is dropped, so a
/// command's last alerts go out before it exits.
pub fn alerts(flag: Option<&Path>) -> Result<AlertsGuard> {
    let path = match flag {
        Some(p) => Some(p.to_path_buf()),
        None => std::env::var_os("TDEV_ALERTS")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from),
    };
    let alerts = path
        .map(|p| engine::alerts::Alerts::load(&p).map(std::sync::Arc::new))
        .transpose()?;
    Ok(AlertsGuard(alerts))
}

/// A command's alerts (see [`alerts`]).
pub struct AlertsGuard(pub Option<std::sync::Arc<engine::alerts::Alerts>>);

impl AlertsGuard {
    /// The alerts, if any.
    pub fn get(&self) -> Option<&engine::alerts::Alerts> {
        self.0.as_deref()
    }
}

impl Drop for AlertsGuard {
    fn drop(&mut self) {
        if let Some(a) = &self.0 {
            let left = a.flush();
            if left > 0 {
                eprintln!("tdev: {left} alert(s) not delivered before exit");
            }
        }
    }
}

/// The alert of a module put in quarantine: its id, short name, where it came from,
/// why and its score.
pub fn quarantine_alert(
    source: &str,
    agent_id: &str,
    origin: &engine::Origin,
    reason: &str,
    safety_score: f64,
) -> engine::alerts::Event {
    let name = if origin.name.is_empty() {
        agent_id.chars().skip(7).take(12).collect()
    } else {
        origin.name.clone()
    };
    engine::alerts::Event::new(
        engine::alerts::EventKind::Quarantine,
        source,
        format!("module {name} quarantined: {reason} (safety score {safety_score})"),
        serde_json::json!({
            "agent_id": agent_id,
            "name": name,
            "origin": origin,
            "reason": reason,
            "safety_score": safety_score,
        }),
    )
}

/// The alerts of a guarded run of module `id` seen by `source`: a limit it hit (for
/// the rate rule), and the quarantine it caused.
pub fn alert_run(
    a: &engine::alerts::Alerts,
    source: &str,
    run: &engine::GuardedRun,
    origin: &engine::Origin,
    id: &str,
) {
    if run.report.outcome.is_limit() {
        a.limit_hits(1, source);
    }
    if run.quarantined {
        a.emit(quarantine_alert(
            source,
            id,
            origin,
            &run.report.outcome.to_string(),
            run.safety_score,
        ));
    }
}

/// The alert of an emergency stop, pulled by `by`.
pub fn stop_alert(source: &str, by: &str, at: &str) -> engine::alerts::Event {
    engine::alerts::Event::new(
        engine::alerts::EventKind::EmergencyStop,
        source,
        format!("emergency stop by {by}"),
        serde_json::json!({ "by": by, "stop_at": at }),
    )
}
