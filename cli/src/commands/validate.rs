//! `tdev validate FILE [--policy P] [--store URI] [--json]`

use crate::common::{EXIT_OK, EXIT_REJECTED, ModuleArgs, open_store, print_findings, print_json};
use crate::report::ValidateReport;
use anyhow::{Context, Result};
use engine::{AgentId, Quarantine, Record, Status};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    module: ModuleArgs,
    /// The store whose quarantine is consulted: a held module is reported held
    /// (default file://.tdev, when that folder exists).
    #[arg(long)]
    store: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The module's quarantine record in the store, if any. Without `--store` the default
/// store is read only when it exists: validating never creates one.
fn record(store: Option<&str>, bytes: &[u8]) -> Result<Option<Record>> {
    let default_dir = engine::store::DEFAULT_STORE.trim_start_matches("file://");
    if store.is_none() && !std::path::Path::new(default_dir).is_dir() {
        return Ok(None);
    }
    let q = Quarantine::new(open_store(store)?);
    q.get(&AgentId::of(bytes))
        .context("cannot read the module's quarantine record")
}

/// `tdev validate`: 0 admitted, 3 rejected (or held in quarantine).
pub fn exec(args: Args) -> Result<u8> {
    let (policy, bytes) = args.module.load()?;
    let v = runtime::validate(&policy, &bytes);
    let record = record(args.store.as_deref(), &bytes)?;
    let report = ValidateReport::new(&v, &policy, record.as_ref());
    if args.json {
        print_json(&report)?;
    } else {
        println!("agent:      {}", v.agent_id);
        println!(
            "size:       {} bytes (cap {})",
            v.size_bytes, policy.limits.module_bytes
        );
        println!(
            "score:      {} (minimum {})",
            v.safety_score, policy.min_safety_score
        );
        print_findings(&v.findings);
        match &record {
            Some(r) if r.status == Status::Quarantined => {
                println!(
                    "quarantine: held ({}, score {}) — see `tdev quarantine show {}`",
                    r.reason,
                    r.safety_score,
                    &r.agent_id.hex()[..12]
                );
            }
            Some(r) if r.status == Status::Released => {
                println!("quarantine: released by a person ({})", r.reason);
            }
            _ => {}
        }
        let verdict = if report.held {
            "held"
        } else if report.admitted {
            "admitted"
        } else {
            "rejected"
        };
        println!("verdict:    {verdict}");
    }
    Ok(if report.admitted {
        EXIT_OK
    } else {
        EXIT_REJECTED
    })
}
