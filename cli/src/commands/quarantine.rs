//! `tdev quarantine list | show ID | release ID | purge ID [--store URI] [--json]`

use crate::common::{open_store, print_json};
use crate::report::{QuarantineList, RecordReport};
use anyhow::Result;
use engine::{Quarantine, Record, Status};

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
    /// One record: findings, trap history, audit trail and the module's text form.
    Show {
        /// Agent id (`sha256:<hex>`, the hex, or a unique prefix of 6+ hex digits).
        id: String,
    },
    /// Approve a module: it may run again.
    Release {
        /// Agent id.
        id: String,
    },
    /// Delete a module's bytes; the record stays, marked purged, for the audit trail.
    Purge {
        /// Agent id.
        id: String,
    },
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
    act: fn(&Quarantine, &engine::AgentId, &str) -> engine::Result<Record>,
    done: &str,
) -> Result<()> {
    let id = q.resolve(id)?;
    let r = act(q, &id, &operator())?;
    if json {
        print_json(&r)?;
    } else {
        println!("{done} {}", r.agent_id);
    }
    Ok(())
}

fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("tdev cli ({})", runtime::escape(&user))
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
                    "{:<73} {:<11} {:<6} {:<15} quarantined at",
                    "agent", "status", "score", "reason"
                );
                for r in &records {
                    println!(
                        "{:<73} {:<11} {:<6} {:<15} {}",
                        r.agent_id,
                        status_word(r.status),
                        r.safety_score,
                        r.reason,
                        r.quarantined_at
                    );
                }
            }
        }
        Action::Show { id } => {
            let id = q.resolve(&id)?;
            let r = q.require(&id)?;
            let module = q.module(&id)?;
            let policy = runtime::Policy::default_policy();
            let wat = module
                .as_deref()
                .and_then(|b| runtime::text_form(&policy, b));
            if args.json {
                print_json(&RecordReport {
                    record: &r,
                    wat,
                    lineage: None,
                })?;
            } else {
                println!("agent:          {}", r.agent_id);
                println!("status:         {}", status_word(r.status));
                println!("quarantined at: {}", r.quarantined_at);
                println!("reason:         {}", r.reason);
                println!(
                    "safety score:   {} (minimum {})",
                    r.safety_score, r.min_safety_score
                );
                println!("size:           {} bytes", r.size_bytes);
                if !r.parents.is_empty() {
                    let parents: Vec<&str> =
                        r.parents.iter().map(engine::AgentId::as_str).collect();
                    println!("parents:        {}", parents.join(", "));
                }
                println!("findings:");
                if r.findings.is_empty() {
                    println!("  none");
                }
                for f in &r.findings {
                    println!("  {:<28} weight {:<5} {}", f.kind, f.weight, f.detail);
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
                    (None, None) => println!(
                        "  (none: a module of {} bytes is too large to keep)",
                        r.size_bytes
                    ),
                }
            }
        }
        Action::Release { id } => decide(&q, &id, args.json, Quarantine::release, "released")?,
        Action::Purge { id } => decide(&q, &id, args.json, Quarantine::purge, "purged")?,
    }
    Ok(0)
}
