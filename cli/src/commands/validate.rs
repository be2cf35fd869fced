//! `tdev validate FILE [--policy P] [--json]`

use crate::common::{EXIT_OK, EXIT_REJECTED, ModuleArgs, print_findings, print_json};
use crate::report::ValidateReport;
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    module: ModuleArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tdev validate`: 0 admitted, 3 rejected.
pub fn exec(args: Args) -> Result<u8> {
    let (policy, bytes) = args.module.load()?;
    let v = runtime::validate(&policy, &bytes);
    if args.json {
        print_json(&ValidateReport::new(&v, &policy))?;
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
