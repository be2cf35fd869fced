//! `tdev token hash`: the SHA-256 of a secret, for the `sha256` field of a tokens file
//! (`tdev serve --tokens FILE`).

use anyhow::{Context, Result, bail};
use std::io::Read;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Read a secret from stdin (one line) and print its SHA-256 in hex.
    Hash,
}

/// Longest secret read (a bearer token is a header value; hyper caps heads anyway).
const MAX_SECRET_BYTES: u64 = 4096;

/// `tdev token hash`.
pub fn exec(args: Args) -> Result<u8> {
    match args.action {
        Action::Hash => {
            let mut raw = Vec::new();
            std::io::stdin()
                .take(MAX_SECRET_BYTES + 1)
                .read_to_end(&mut raw)
                .context("cannot read the secret from stdin")?;
            if raw.len() as u64 > MAX_SECRET_BYTES {
                bail!("the secret is over {MAX_SECRET_BYTES} bytes");
            }
            let text = std::str::from_utf8(&raw).context("the secret is not UTF-8")?;
            let secret = text
                .strip_suffix('\n')
                .map(|s| s.strip_suffix('\r').unwrap_or(s))
                .unwrap_or(text);
            // What a client can send after `Bearer ` and the server compares as given.
            if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
                bail!(
                    "a secret is one line of printable ASCII without spaces (what follows `Bearer ` in the Authorization header)"
                );
            }
            println!("{}", runtime::to_hex(&crate::api::auth::hash(secret)));
        }
    }
    Ok(0)
}
