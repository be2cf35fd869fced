//! `tdev serve [--addr A] [--store URI] [--policy P] [--max-runs N] …`

use crate::common::{load_policy, open_store};
use anyhow::{Context, Result};
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// The store (default file://.tdev).
    #[arg(long)]
    store: Option<String>,
    /// Policy file (default: the built-in policies/default.toml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Runs and validations in progress at once; past it they answer 503 with
    /// Retry-After.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    max_runs: u32,
    /// Largest request body in bytes; past it, 413.
    #[arg(long, default_value_t = crate::api::BODY_LIMIT as u32, value_parser = clap::value_parser!(u32).range(1..))]
    max_body_bytes: u32,
    /// Open connections at once; past it, new ones wait until one closes.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Milliseconds a client has to send a request's head and then its body (408
    /// past it); idle keep-alive connections are closed after it too.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    read_timeout_ms: u64,
}

fn new_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn exec(args: Args) -> Result<u8> {
    let policy = load_policy(args.policy.as_deref())?;
    let sandbox = runtime::Sandbox::new(policy).context("cannot start the sandbox")?;
    let store = open_store(args.store.as_deref())?;
    let token = match std::env::var("TDEV_API_TOKEN") {
        Ok(t) if !t.is_empty() => t,
        _ => {
            let t = new_token()?;
            eprintln!("tdev serve: no TDEV_API_TOKEN set; this run's token is {t}");
            t
        }
    };
    let limits = crate::api::ServerLimits {
        max_runs: args.max_runs as usize,
        max_body_bytes: args.max_body_bytes as usize,
        max_connections: args.max_connections as usize,
        read_timeout: std::time::Duration::from_millis(args.read_timeout_ms),
    };
    let state = crate::api::AppState::new(sandbox, store, token, limits.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let local = listener.local_addr().context("local address")?;
        eprintln!("tdev serve: listening on http://{local}");
        crate::api::serve(listener, crate::api::app(state), &limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        anyhow::Ok(())
    })?;
    Ok(0)
}
