//! `tdev`: validate, run and quarantine untrusted Wasm agents.
//!
//! Exit codes: 0 success (admitted / ok), 1 usage or I/O error (one line on stderr),
//! 3 rejected, 4 trapped.

use clap::{Parser, Subcommand};
use cli::commands::{self, StoreAction};
use cli::common;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tdev",
    version,
    about = "Run machine-evolved WebAssembly agents safely",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a module against the policy without running it (exit 0 admitted, 3 rejected).
    Validate(commands::validate::Args),
    /// Run a module's `act` under the policy's limits (exit 0 ok, 3 rejected, 4 trapped).
    Run(commands::run::Args),
    /// Inspect, release or purge quarantined modules.
    Quarantine(commands::quarantine::Args),
    /// Evolve agents for a task with a genetic algorithm.
    Evolve(commands::evolve::Args),
    /// List the evolutions in a store.
    Evolutions {
        /// The store (default file://.tdev).
        #[arg(long)]
        store: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Make generation N of an evolution its head again.
    Rollback {
        /// The evolution id.
        id: String,
        /// The generation (for an island evolution, the end of one of its epochs).
        #[arg(long)]
        generation: u32,
        /// The store (default file://.tdev).
        #[arg(long)]
        store: Option<String>,
        /// The queue to send an island evolution's next epochs to.
        #[arg(long)]
        queue: Option<String>,
    },
    /// Serve the operator HTTP API.
    Serve(commands::serve::Args),
    /// Write a new agent crate that builds for wasm32 and runs under `tdev run` as written.
    New(commands::new::Args),
    /// Make the entries of a tokens file for `tdev serve --tokens`.
    Token(commands::token::Args),
    /// Set up a store, or copy one into another.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Emergency stop: every running evolve on the store halts, and every worker
    /// until `tdev resume`.
    Stop {
        /// The store (default file://.tdev).
        #[arg(long)]
        store: Option<String>,
        /// Send an emergency_stop alert as this file's rules say (default: $TDEV_ALERTS).
        #[arg(long, value_name = "FILE")]
        alerts: Option<std::path::PathBuf>,
    },
    /// Let workers take jobs again after a stop.
    Resume {
        /// The store (default file://.tdev).
        #[arg(long)]
        store: Option<String>,
    },
    /// Create a job queue, or see how many jobs it holds.
    #[cfg(feature = "aws")]
    Queue {
        #[command(subcommand)]
        action: commands::fleet::QueueAction,
    },
    /// Prepare an evolution in the store and put its jobs on a queue; returns at once.
    #[cfg(feature = "aws")]
    Submit(commands::fleet::SubmitArgs),
    /// Take jobs from a queue, one at a time, and run them.
    #[cfg(feature = "aws")]
    Worker(commands::fleet::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("usage error");
            eprintln!("tdev: {}", first.trim_start_matches("error: "));
            eprintln!("tdev: try 'tdev --help'");
            return ExitCode::from(1);
        }
    };
    let (json, result) = match cli.command {
        Command::Validate(a) => (a.json, commands::validate::exec(a)),
        Command::Run(a) => (a.json, commands::run::exec(a)),
        Command::Quarantine(a) => (a.json, commands::quarantine::exec(a)),
        Command::Evolve(a) => (a.json, commands::evolve::exec(a)),
        Command::Evolutions { store, json } => (json, commands::evolutions(store.as_deref(), json)),
        Command::Rollback {
            id,
            generation,
            store,
            queue,
        } => (
            false,
            commands::rollback(store.as_deref(), &id, generation, queue.as_deref()),
        ),
        Command::Stop { store, alerts } => (
            false,
            commands::evolve::stop(store.as_deref(), alerts.as_deref()),
        ),
        Command::Resume { store } => (false, commands::resume(store.as_deref())),
        #[cfg(feature = "aws")]
        Command::Queue { action } => (false, commands::fleet::queue(action)),
        #[cfg(feature = "aws")]
        Command::Submit(a) => (a.json, commands::fleet::submit(a)),
        #[cfg(feature = "aws")]
        Command::Worker(a) => (a.json, commands::fleet::worker(a)),
        Command::Store { action } => (false, commands::store(action)),
        Command::Serve(a) => (false, commands::serve::exec(a)),
        Command::Token(a) => (false, commands::token::exec(a)),
        Command::New(a) => (false, commands::new::exec(a)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let message = cli::common::error_line(&err);
            eprintln!("tdev: {message}");
            if json
                && let Err(e) =
                    common::print_json(&cli::report::ErrorReport::new("error", &message))
            {
                eprintln!("tdev: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}
