//! `tdev validate FILE [--policy P] [--json]`

use crate::common::{
    EXIT_OK, EXIT_REJECTED, ModuleArgs, findings_json, print_findings, print_json,
};
use anyhow::Result;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    module: ModuleArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The `validate --json` object.
pub(crate) fn validate_json(v: &runtime::Verdict, policy: &runtime::Policy) -> serde_json::Value {
    json!({
        "agent_id": v.agent_id,
        "size_bytes": v.size_bytes,
        "admitted": v.admitted,
        "safety_score": v.safety_score,
        "min_safety_score": policy.min_safety_score,
        "findings": findings_json(&v.findings),
    })
}

pub fn exec(args: Args) -> Result<u8> {
    let (policy, bytes) = args.module.load()?;
    let v = runtime::validate(&policy, &bytes);
    if args.json {
        print_json(&validate_json(&v, &policy));
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
        println!(
            "verdict:    {}",
            if v.admitted { "admitted" } else { "rejected" }
        );
    }
    Ok(if v.admitted { EXIT_OK } else { EXIT_REJECTED })
}
