//! `tdev serve [--addr A] [--store URI] [--policy P]`

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
    /// Runs in progress at once; past it `POST /v1/run` answers 503 with Retry-After.
    #[arg(long, default_value_t = 8)]
    max_runs: usize,
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
    let state = crate::api::AppState::new(sandbox, store, token, args.max_runs);
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
        axum::serve(listener, crate::api::app(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("server error")
    })?;
    Ok(0)
}
