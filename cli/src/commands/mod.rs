//! One module per subcommand.

pub mod evolve;
#[cfg(feature = "aws")]
pub mod fleet;
pub mod quarantine;
pub mod run;
pub mod serve;
pub mod token;
pub mod validate;

use crate::common::{open_store, print_json};
use crate::report::EvolutionList;
use anyhow::{Context, Result};
use clap::Subcommand;

/// `tdev store init` and `tdev store copy`.
#[derive(Subcommand)]
pub enum StoreAction {
    /// Create the directories, or the buckets and the state table, when missing; check
    /// them when present.
    Init {
        /// The store (default file://.tdev).
        #[arg(long)]
        store: Option<String>,
    },
    /// Copy every module, generation, record and state row from one store to another.
    Copy {
        /// The source store.
        #[arg(long)]
        from: String,
        /// The target store (initialised first).
        #[arg(long)]
        to: String,
    },
}

/// `tdev evolutions [--store URI] [--json]`
pub fn evolutions(store: Option<&str>, json: bool) -> Result<u8> {
    let store = open_store(store)?;
    let list = engine::evolve::list(store.as_ref())?;
    if json {
        print_json(&EvolutionList { evolutions: list })?;
    } else if list.is_empty() {
        println!("no evolutions");
    } else {
        for e in &list {
            println!(
                "{}  task {}  generation {}  best error {}  {}",
                e.evolution_id, e.task, e.head_generation, e.best_error, e.status
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

/// `tdev store init --store URI` / `tdev store copy --from URI --to URI`
pub fn store(action: StoreAction) -> Result<u8> {
    match action {
        StoreAction::Init { store } => {
            let uri = store.as_deref().unwrap_or(engine::store::DEFAULT_STORE);
            for line in engine::store::init(uri).with_context(|| format!("cannot set up {uri}"))? {
                println!("{line}");
            }
        }
        StoreAction::Copy { from, to } => {
            engine::store::init(&to).with_context(|| format!("cannot set up {to}"))?;
            let src = open_store(Some(&from))?;
            let dst = open_store(Some(&to))?;
            let r = engine::store::copy(src.as_ref(), dst.as_ref())
                .with_context(|| format!("cannot copy {from} to {to}"))?;
            println!("copied {} objects and {} state rows", r.objects, r.states);
        }
    }
    Ok(0)
}

/// `tdev resume [--store URI]`: lets workers take jobs again after a stop.
pub fn resume(store: Option<&str>) -> Result<u8> {
    let store = open_store(store)?;
    engine::control::request_resume(store.as_ref())?;
    println!("resumed: workers take jobs again");
    Ok(0)
}
