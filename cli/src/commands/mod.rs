//! One module per subcommand.

pub mod evolve;
#[cfg(feature = "aws")]
pub mod fleet;
pub mod new;
pub mod quarantine;
pub mod run;
pub mod serve;
pub mod token;
pub mod validate;

use crate::common::{open_store, print_json};
use crate::report::EvolutionList;
use anyhow::{Context, Result, bail};
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
            let islands = e
                .islands
                .map_or_else(String::new, |n| format!("  ({n} islands)"));
            let error = e
                .error
                .as_deref()
                .map_or_else(String::new, |m| format!(": {}", runtime::escape(m)));
            println!(
                "{}  task {}  generation {}  best error {}  {}{error}{islands}",
                e.evolution_id, e.task, e.head_generation, e.best_error, e.status
            );
        }
    }
    Ok(0)
}

/// `tdev rollback ID --generation N [--store URI] [--queue URL]`
pub fn rollback(store: Option<&str>, id: &str, generation: u32, queue: Option<&str>) -> Result<u8> {
    let store = open_store(store)?;
    engine::store::check_key(id).with_context(|| format!("evolution {}", runtime::escape(id)))?;
    if let Some(plan) = engine::evolve::islands::plan(store.as_ref(), id)? {
        return rollback_islands(store.as_ref(), id, generation, queue, &plan);
    }
    if let Some((parent, _)) = id.rsplit_once(".island-")
        && engine::evolve::islands::plan(store.as_ref(), parent)?.is_some()
    {
        bail!(
            "{} is one island of {}: roll back the island evolution, every island at once",
            runtime::escape(id),
            runtime::escape(parent)
        );
    }
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
            for line in engine::store::init(uri)
                .map_err(|e| crate::common::store_error(e, "cannot set up", uri))?
            {
                println!("{line}");
            }
        }
        StoreAction::Copy { from, to } => {
            engine::store::init(&to)
                .map_err(|e| crate::common::store_error(e, "cannot set up", &to))?;
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

/// The rollback of an island evolution: only while the store is stopped (no worker may
/// be running one of its epochs); the next epochs are sent to `queue`.
fn rollback_islands(
    store: &dyn engine::store::BlobStore,
    id: &str,
    generation: u32,
    queue: Option<&str>,
    plan: &engine::evolve::islands::IslandPlan,
) -> Result<u8> {
    if engine::control::halted_since(store)?.is_none() {
        bail!(
            "an island evolution is rolled back while no worker runs it: `tdev stop` first, \
             then roll back, then `tdev resume`"
        );
    }
    let Some(queue) = queue else {
        bail!("give --queue URL: the island evolution's next epochs are sent there");
    };
    #[cfg(feature = "aws")]
    {
        let q = engine::queue::Queue::open(queue)?;
        let next = engine::evolve::islands::rollback_islands(store, id, generation)
            .with_context(|| format!("cannot roll {} back", runtime::escape(id)))?;
        if let Some(e) = next {
            for island in 0..plan.islands {
                engine::fleet::send_epoch(store, &q, id, island, e)
                    .with_context(|| format!("cannot send epoch {e} of island {island}"))?;
            }
        }
        println!(
            "{} now resumes from generation {generation}: {} islands, epoch {} sent to {queue}",
            runtime::escape(id),
            plan.islands,
            next.map_or_else(|| "none".to_string(), |e| e.to_string())
        );
        Ok(0)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = (queue, generation, plan, id);
        bail!("this tdev is built without AWS support: no queue to send the next epochs to")
    }
}
