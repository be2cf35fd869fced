//! One module per subcommand.

pub mod evolve;
pub mod quarantine;
pub mod run;
pub mod validate;

use crate::common::{open_store, print_json};
use anyhow::{Context, Result};

/// `tdev evolutions [--store URI] [--json]`
pub fn evolutions(store: Option<&str>, json: bool) -> Result<u8> {
    let store = open_store(store)?;
    let list = engine::evolve::list(store.as_ref())?;
    if json {
        print_json(&serde_json::json!({ "evolutions": list }));
    } else if list.is_empty() {
        println!("no evolutions");
    } else {
        for e in &list {
            println!(
                "{}  task {}  generation {}  best error {}  {}",
                e["evolution_id"].as_str().unwrap_or("?"),
                e["task"].as_str().unwrap_or("?"),
                e["head_generation"],
                e["best_error"],
                e["status"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(0)
}

/// `tdev rollback ID --generation N [--store URI]`
pub fn rollback(store: Option<&str>, id: &str, generation: u32) -> Result<u8> {
    let store = open_store(store)?;
    engine::evolve::rollback(store.as_ref(), id, generation)
        .with_context(|| format!("cannot roll {} back", runtime::escape(id)))?;
    println!(
        "{} now resumes from generation {generation}",
        runtime::escape(id)
    );
    Ok(0)
}
