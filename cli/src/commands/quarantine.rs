//! `tdev quarantine list | show ID | release ID | purge ID [--by NAME --reason TEXT]
//! [--store URI] [--json]`

use crate::common::{open_store, print_json, read_module};
use crate::report::{QuarantineList, RecordReport, short_name};
use anyhow::{Context, Result, bail};
use engine::quarantine::{DECISION_TEXT_BYTES, decision_text_fits};
use engine::{AgentId, Decision, Origin, Quarantine, Record, Status};
use std::path::Path;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The store (default file://.tdev).
    #[arg(long, global = true)]
    store: Option<String>,
    /// Print one JSON object.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Quarantined and released modules, oldest first.
    List,
    /// One record: origin, findings with remedies, trap history (with each run's
    /// input and logs), audit trail and the module's text form.
    Show {
        /// Agent id (`sha256:<hex>`, the hex, or a unique prefix of 6+ hex digits), the
        /// module's file (.wasm or .wat), or the short name `list` shows.
        id: String,
    },
    /// Approve a module: it may run again.
    Release {
        /// Agent id, file or short name (as for `show`).
        id: String,
        #[command(flatten)]
        decision: DecisionArgs,
    },
    /// Delete a module's bytes; the record stays, marked purged, for the audit trail.
    Purge {
        /// Agent id, file or short name (as for `show`).
        id: String,
        #[command(flatten)]
        decision: DecisionArgs,
    },
}

#[derive(clap::Args)]
struct DecisionArgs {
    /// Who decides, for the audit trail (default: $USER, else $LOGNAME, else `unknown`).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Why, for the audit trail.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

impl DecisionArgs {
    fn decision(self) -> Result<Decision> {
        // Without --by, the login the shell says; `unknown` shows in the record as such.
        let by = self
            .by
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "unknown".into());
        let reason = self.reason.unwrap_or_default();
        for (flag, v) in [("--by", &by), ("--reason", &reason)] {
            if !decision_text_fits(v) {
                bail!("{flag} is one line of at most {DECISION_TEXT_BYTES} bytes");
            }
        }
        if by.trim().is_empty() {
            bail!("--by is empty: name who decides");
        }
        Ok(Decision {
            by,
            reason,
            via: "cli".into(),
        })
    }
}

/// The record an operator means: an id or unique prefix, a module file, or a short
/// name that one record has.
fn find(q: &Quarantine, given: &str) -> Result<AgentId> {
    let path = Path::new(given);
    if path.is_file() {
        // A .wat is assembled as `tdev run` does: the id is of the bytes that ran.
        let id = AgentId::of(&read_module(path)?);
        q.require(&id)
            .with_context(|| format!("{given} has no quarantine record"))?;
        return Ok(id);
    }
    match q.resolve(given) {
        Ok(id) => Ok(id),
        Err(e) if matches!(e.kind(), engine::ErrorKind::NotFound(_)) => {
            let named: Vec<Record> = q
                .list()?
                .into_iter()
                .filter(|r| short_name(r) == runtime::escape(given))
                .collect();
            match named.as_slice() {
                [one] => Ok(one.agent_id.clone()),
                [] => Err(anyhow::Error::new(e)
                    .context("no record has this id, file or name (see `tdev quarantine list`)")),
                many => {
                    let ids: Vec<String> = many
                        .iter()
                        .map(|r| r.agent_id.hex()[..12].to_string())
                        .collect();
                    bail!(
                        "{} records are named {}: give an id ({})",
                        many.len(),
                        runtime::escape(given),
                        ids.join(", ")
                    )
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Where a record's module came from, in a few words.
fn origin_text(o: Option<&Origin>) -> String {
    let Some(o) = o else {
        return "-".into();
    };
    match o.source.as_str() {
        "file" => format!("file {}", o.file.as_deref().unwrap_or(&o.name)),
        "api" => format!("api {}", o.caller.as_deref().unwrap_or("?")),
        "evolution" => format!(
            "evolution {} g{}",
            o.evolution_id.as_deref().unwrap_or("?"),
            o.generation.map_or("?".into(), |g| g.to_string())
        ),
        other => other.to_string(),
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Quarantined => "quarantined",
        Status::Released => "released",
        Status::Purged => "purged",
    }
}

/// A release or purge of `id` by the operator, reported with `done` ("released",
/// "purged").
fn decide(
    q: &Quarantine,
    id: &str,
    json: bool,
    decision: DecisionArgs,
    act: fn(&Quarantine, &AgentId, &Decision) -> engine::Result<Record>,
    done: &str,
) -> Result<()> {
    let decision = decision.decision()?;
    let id = find(q, id)?;
    let r = act(q, &id, &decision)?;
    if json {
        print_json(&r)?;
    } else {
        let last = r.audit.last().map(|a| a.detail.as_str()).unwrap_or("");
        println!("{done} {} ({}) {last}", r.agent_id, short_name(&r));
    }
    Ok(())
}

/// `tdev quarantine`: 0, or 1 on an unknown id.
pub fn exec(args: Args) -> Result<u8> {
    let q = Quarantine::new(open_store(args.store.as_deref())?);
    match args.action {
        Action::List => {
            let records = q.list()?;
            if args.json {
                print_json(&QuarantineList::new(&records))?;
            } else if records.is_empty() {
                println!("no quarantined modules");
            } else {
                println!(
                    "{:<20} {:<12} {:<11} {:<6} {:<15} {:<20} origin",
                    "name", "agent", "status", "score", "reason", "quarantined at"
                );
                for r in &records {
                    println!(
                        "{:<20} {:<12} {:<11} {:<6} {:<15} {:<20} {}",
                        short_name(r),
                        &r.agent_id.hex()[..12],
                        status_word(r.status),
                        r.safety_score,
                        r.reason,
                        r.quarantined_at,
                        origin_text(r.origin.as_ref())
                    );
                }
            }
        }
        Action::Show { id } => {
            let id = find(&q, &id)?;
            let r = q.require(&id)?;
            let module = q.module(&id)?;
            let policy = runtime::Policy::default_policy();
            let wat = module
                .as_deref()
                .and_then(|b| runtime::text_form(&policy, b));
            // Bytes a record says are kept (not purged, within the cap) but are not
            // there: the store lost them, an integrity error naming the key.
            let lost = (module.is_none()
                && r.status != Status::Purged
                && r.size_bytes <= policy.limits.module_bytes)
                .then(|| engine::quarantine::source_key(&id));
            if let (true, Some(key)) = (args.json, &lost) {
                bail!(
                    "corrupt store: {key} is missing: the record of {id} says its bytes are kept"
                );
            }
            if args.json {
                print_json(&RecordReport {
                    record: &r,
                    wat,
                    lineage: None,
                })?;
            } else {
                println!("agent:          {}", r.agent_id);
                println!("name:           {}", short_name(&r));
                println!("origin:         {}", origin_text(r.origin.as_ref()));
                println!("status:         {}", status_word(r.status));
                println!("quarantined at: {}", r.quarantined_at);
                println!("reason:         {}", r.reason);
                if let Some(remedy) = runtime::remedy(&r.reason, "") {
                    println!("remedy:         {remedy}");
                }
                println!(
                    "safety score:   {} (minimum {})",
                    r.safety_score, r.min_safety_score
                );
                println!("size:           {} bytes", r.size_bytes);
                if !r.parents.is_empty() {
                    let parents: Vec<&str> =
                        r.parents.iter().map(engine::AgentId::as_str).collect();
                    println!("lineage:        {}", parents.join(", "));
                }
                println!("findings:");
                if r.findings.is_empty() {
                    println!("  none");
                }
                for f in &r.findings {
                    println!("  {:<28} weight {:<5} {}", f.kind, f.weight, f.detail);
                    if let Some(remedy) = &f.remedy {
                        println!("  {:<28} remedy: {remedy}", "");
                    }
                }
                let total = r.traps_total();
                let counts: Vec<String> = r
                    .trap_counts
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect();
                if total as usize > r.trap_history.len() {
                    println!(
                        "trap history (the latest {} of {total}; {}):",
                        r.trap_history.len(),
                        counts.join(", ")
                    );
                } else {
                    println!("trap history:");
                }
                if r.trap_history.is_empty() {
                    println!("  none");
                }
                for t in &r.trap_history {
                    println!(
                        "  {}  {:<15} fuel {} wall {} us  {}",
                        t.at, t.outcome, t.fuel_used, t.wall_us, t.message
                    );
                    if let Some(o) = &t.origin {
                        println!("      from:   {}", origin_text(Some(o)));
                    }
                    if let Some(input) = &t.input {
                        println!("      input:  {}", input_text(input));
                    }
                    for l in &t.logs {
                        println!("      log:    {l}");
                    }
                    if t.logs_dropped > 0 {
                        println!("      log:    ({} more lines not kept)", t.logs_dropped);
                    }
                }
                println!("audit:");
                for a in &r.audit {
                    println!("  {}  {:<12} {}", a.at, a.action, a.detail);
                }
                println!("text form:");
                match (&module, &wat) {
                    (_, Some(text)) => println!("{text}"),
                    (Some(bytes), None) => {
                        let head: String = bytes
                            .iter()
                            .take(64)
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(" ");
                        println!("  (none: the module does not parse; first bytes: {head})");
                    }
                    (None, None) if r.status == Status::Purged => {
                        println!("  (none: the module's bytes were purged)")
                    }
                    (None, None) if lost.is_some() => {
                        println!("  (none: its bytes are missing from the store)")
                    }
                    (None, None) => println!(
                        "  (none: a module of {} bytes is too large to keep)",
                        r.size_bytes
                    ),
                }
                if let Some(key) = lost {
                    bail!(
                        "corrupt store: {key} is missing: the record of {id} says its bytes are kept"
                    );
                }
            }
        }
        Action::Release { id, decision } => decide(
            &q,
            &id,
            args.json,
            decision,
            Quarantine::release,
            "released",
        )?,
        Action::Purge { id, decision } => {
            decide(&q, &id, args.json, decision, Quarantine::purge, "purged")?
        }
    }
    Ok(0)
}

/// A trapped run's input as `show` prints it: the typed arguments as `--args` takes
/// them, or the bytes kept, as escaped text when they are UTF-8, else hex.
fn input_text(input: &engine::RunInput) -> String {
    if let Some(args) = &input.args {
        return format!("--args {}", args.join(","));
    }
    let hex = input.hex.as_deref().unwrap_or("");
    let bytes = runtime::from_hex(hex).unwrap_or_default();
    let len = input.len.unwrap_or(bytes.len() as u64);
    let shown = match std::str::from_utf8(&bytes) {
        Ok(text) => format!("\"{}\"", runtime::escape(text)),
        Err(_) => format!("hex {hex}"),
    };
    if len > bytes.len() as u64 {
        format!("{shown} (the first {} of {len} bytes)", bytes.len())
    } else {
        format!("{shown} ({len} bytes)")
    }
}
