//! `tdev serve [--addr A] [--store URI] [--policy P] [--tokens FILE] [--max-runs N] …`

use crate::api::auth::{self, Rate, Token};
use crate::common::{load_policy, open_store};
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// The store (default file://.tdev).
    #[arg(long)]
    store: Option<String>,
    /// Send alerts (quarantines, emergency stops, limit hits over a rate) as this file's
    /// rules say (default: $TDEV_ALERTS; see docs/operations.md).
    #[arg(long, value_name = "FILE")]
    alerts: Option<std::path::PathBuf>,
    /// Policy file (default: the built-in policies/default.toml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Tokens file (TOML: name, sha256 of the secret, scopes, rate, burst per token;
    /// see docs/api.md). TDEV_API_TOKEN, when set, adds a token named `default` with
    /// every scope.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Requests per second of a token that names no rate (TDEV_API_TOKEN's too);
    /// past it, 429 with Retry-After.
    #[arg(long, default_value_t = auth::DEFAULT_RATE.per_second)]
    token_rate: f64,
    /// Requests a token that names no burst may make at once.
    #[arg(long, default_value_t = auth::DEFAULT_RATE.burst, value_parser = clap::value_parser!(u32).range(1..))]
    token_burst: u32,
    /// Runs and validations in progress at once; past it they answer 503 with
    /// Retry-After.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    max_runs: u32,
    /// Largest request body in bytes, input sent in X-Tdev-Input included; past it, 413.
    #[arg(long, default_value_t = crate::api::BODY_LIMIT as u32, value_parser = clap::value_parser!(u32).range(1..))]
    max_body_bytes: u32,
    /// Largest request head (request line and headers) in bytes; past it, 431.
    #[arg(long, default_value_t = crate::api::HEADER_BYTES_LIMIT as u32, value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    max_header_bytes: u32,
    /// Most headers in a request; past it, 431.
    #[arg(long, default_value_t = crate::api::HEADER_COUNT_LIMIT as u32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_headers: u32,
    /// Open connections at once; past it, new ones wait until one closes.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Milliseconds a client has to send a request's head and then its body (408
    /// past it); idle keep-alive connections are closed after it too.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    read_timeout_ms: u64,
    /// Milliseconds an answer may wait without progress for the client to read it;
    /// past it the connection is closed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    write_timeout_ms: u64,
}

/// A fresh secret: 24 bytes from the operating system's generator, in hex.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot draw a random token")?;
    Ok(runtime::to_hex(&bytes))
}

/// Room for compiling a module (Cranelift) on a blocking thread, on top of the stack
/// the sandbox asks for running agents.
const COMPILE_STACK_MARGIN: usize = 2 << 20;

/// The stack size of the server's threads, agents' blocking threads included: what the
/// sandbox needs for the policy's Wasm stack and the host's frames
/// (`Sandbox::thread_stack_bytes`) plus [`COMPILE_STACK_MARGIN`].
fn agent_thread_stack_bytes(sandbox: &runtime::Sandbox) -> usize {
    sandbox
        .thread_stack_bytes()
        .saturating_add(COMPILE_STACK_MARGIN)
}

/// The tokens: those of `--tokens FILE`, and TDEV_API_TOKEN as `default` with every
/// scope; with neither, a random all-scopes `default` token printed once.
fn tokens(args: &Args) -> Result<auth::Tokens> {
    let rate = Rate {
        per_second: args.token_rate,
        burst: args.token_burst,
    };
    let mut list = match &args.tokens {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            auth::parse_file(&text, rate).with_context(|| format!("{}", path.display()))?
        }
        None => Vec::new(),
    };
    match std::env::var("TDEV_API_TOKEN") {
        Ok(t) if !t.is_empty() => list.push(Token::all_scopes("default", &t, rate)?),
        _ if args.tokens.is_none() => {
            let t = new_token()?;
            eprintln!("tdev serve: no TDEV_API_TOKEN set; this run's token is {t}");
            list.push(Token::all_scopes("default", &t, rate)?);
        }
        _ => {}
    }
    auth::Tokens::new(list)
}

/// `tdev serve`: serves until interrupted.
pub fn exec(args: Args) -> Result<u8> {
    let policy = load_policy(args.policy.as_deref())?;
    let sandbox = runtime::Sandbox::new(policy).context("cannot start the sandbox")?;
    let stack = agent_thread_stack_bytes(&sandbox);
    let store = open_store(args.store.as_deref())?;
    let tokens = tokens(&args)?;
    let limits = crate::api::ServerLimits {
        max_runs: args.max_runs as usize,
        max_body_bytes: args.max_body_bytes as usize,
        max_header_bytes: args.max_header_bytes as usize,
        max_headers: args.max_headers as usize,
        max_connections: args.max_connections as usize,
        read_timeout: std::time::Duration::from_millis(args.read_timeout_ms),
        write_timeout: std::time::Duration::from_millis(args.write_timeout_ms),
    };
    let alerts = crate::common::alerts(args.alerts.as_deref())?;
    let mut state = crate::api::AppState::new(sandbox, store, tokens, limits.clone());
    if let Some(a) = &alerts.0 {
        state = state.with_alerts(a.clone());
    }
    state
        .watch_stops(std::time::Duration::from_millis(200))
        .context("cannot start the stop watcher")?;
    // Agents run on the blocking threads of this runtime: their stacks are sized from
    // the policy, so the Wasm stack limit traps before the host stack runs out.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(stack)
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
