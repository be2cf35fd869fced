//! Bearer tokens: each has a name, the SHA-256 of its secret, scopes, and a request
//! rate (a token bucket). The server keeps no secret, only hashes; audit entries name
//! the token.
//!
//! A tokens file (`tdev serve --tokens FILE`) is TOML:
//!
//! ```toml
//! [[token]]
//! name = "ci"                 # letters, digits, '.', '_' and '-'; at most 64
//! sha256 = "<64 hex digits>"  # `tdev token hash` prints it for a secret
//! scopes = ["run", "read"]    # any of run, read, operate
//! rate = 20                   # requests per second (default: --token-rate)
//! burst = 40                  # requests at once (default: --token-burst)
//! ```

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::Instant;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `POST /v1/run`, `POST /v1/validate`.
    Run,
    /// Agents, quarantine, evolutions, audit, metrics.
    Read,
    /// Quarantine release and purge, rollback, emergency stop.
    Operate,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::Run, Scope::Read, Scope::Operate];

    /// The scope's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Run => "run",
            Scope::Read => "read",
            Scope::Operate => "operate",
        }
    }
}

/// A token's request rate: a bucket of `burst` requests, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Requests per second, refilled continuously.
    pub per_second: f64,
    /// Requests a full bucket lets through at once.
    pub burst: u32,
}

/// The rate of a token that names none: 100 requests per second, bursts of 200
/// (`--token-rate`, `--token-burst`).
pub const DEFAULT_RATE: Rate = Rate {
    per_second: 100.0,
    burst: 200,
};

/// Largest rate and burst a token may have (beyond it a bucket bounds nothing).
const MAX_RATE: f64 = 1_000_000.0;

/// One token.
#[derive(Debug)]
pub struct Token {
    name: String,
    sha256: [u8; 32],
    scopes: Vec<Scope>,
    rate: Rate,
}

/// The SHA-256 of a secret, as stored in a tokens file.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!(
            "token name {:?}: 1 to 64 letters, digits, '.', '_' and '-'",
            runtime::escape(name)
        );
    }
    Ok(())
}

fn check_rate(rate: Rate) -> Result<Rate> {
    if !(rate.per_second.is_finite() && rate.per_second > 0.0 && rate.per_second <= MAX_RATE) {
        bail!(
            "rate {}: more than 0 and at most {MAX_RATE}",
            rate.per_second
        );
    }
    if rate.burst == 0 || f64::from(rate.burst) > MAX_RATE {
        bail!("burst {}: from 1 to {MAX_RATE}", rate.burst);
    }
    Ok(rate)
}

impl Token {
    /// A token with every scope, for a secret given in the environment
    /// (`TDEV_API_TOKEN`) or made at start.
    pub fn all_scopes(name: &str, secret: &str, rate: Rate) -> Result<Token> {
        check_name(name)?;
        if secret.is_empty() {
            bail!("token {name}: the secret is empty");
        }
        Ok(Token {
            name: name.to_string(),
            sha256: hash(secret),
            scopes: Scope::ALL.to_vec(),
            rate: check_rate(rate)?,
        })
    }

    /// Whether the token has `scope`.
    pub(super) fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The token's name (audit entries and answers name it; never its secret).
    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    sha256: String,
    scopes: Vec<Scope>,
    rate: Option<f64>,
    burst: Option<u32>,
}

/// The tokens of a tokens file (TOML, see the module's doc); `default` is the rate of
/// an entry that gives none.
pub fn parse_file(text: &str, default: Rate) -> Result<Vec<Token>> {
    let file: File = toml::from_str(text).context("not a tokens file")?;
    file.token
        .into_iter()
        .map(|e| {
            check_name(&e.name)?;
            let name = e.name;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(&e.sha256, &mut digest)
                .with_context(|| format!("token {name}: sha256 is 64 hex digits"))?;
            if e.scopes.is_empty() {
                bail!("token {name}: no scopes (run, read, operate)");
            }
            let rate = check_rate(Rate {
                per_second: e.rate.unwrap_or(default.per_second),
                burst: e.burst.unwrap_or(default.burst),
            })
            .with_context(|| format!("token {name}"))?;
            Ok(Token {
                name,
                sha256: digest,
                scopes: e.scopes,
                rate,
            })
        })
        .collect()
}

struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// Takes one request from the bucket, or tells the whole seconds until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * rate.per_second).min(f64::from(rate.burst));
        self.at = now;
        if self.level >= 1.0 {
            self.level -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.level) / rate.per_second;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// The server's tokens and their buckets.
pub struct Tokens {
    list: Vec<Token>,
    buckets: Vec<Mutex<Bucket>>,
}

impl Tokens {
    /// The set; names and secrets must be unique, and there must be one token at least.
    pub fn new(list: Vec<Token>) -> Result<Tokens> {
        if list.is_empty() {
            bail!("no API token: set TDEV_API_TOKEN or give --tokens FILE with one entry at least");
        }
        for (i, t) in list.iter().enumerate() {
            if let Some(u) = list[..i].iter().find(|u| u.name == t.name) {
                bail!("two tokens are named {}", u.name);
            }
            if let Some(u) = list[..i].iter().find(|u| u.sha256 == t.sha256) {
                bail!("tokens {} and {} have the same secret", u.name, t.name);
            }
        }
        let now = Instant::now();
        let buckets = list
            .iter()
            .map(|t| {
                Mutex::new(Bucket {
                    level: f64::from(t.rate.burst),
                    at: now,
                })
            })
            .collect();
        Ok(Tokens { list, buckets })
    }

    /// The token whose secret is `given`. Compares SHA-256 digests, every one of them,
    /// in constant time: how long it takes says nothing of which token is near.
    pub(super) fn find(&self, given: &str) -> Option<usize> {
        let digest = hash(given);
        let mut found = None;
        for (i, t) in self.list.iter().enumerate() {
            if bool::from(t.sha256[..].ct_eq(&digest[..])) {
                found = Some(i);
            }
        }
        found
    }

    /// The `i`-th token (an index [`Tokens::find`] gave).
    pub(super) fn get(&self, i: usize) -> &Token {
        &self.list[i]
    }

    /// Takes one request from the `i`-th token's bucket, or tells the whole seconds
    /// until one is there.
    pub(super) fn take(&self, i: usize, now: Instant) -> Result<(), u64> {
        let rate = self.list[i].rate;
        // A bucket is plain numbers: one left poisoned by a panic is still sound.
        let mut b = self.buckets[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.take(rate, now)
    }
}

/// The token a request was let in with; handlers that record decisions take it.
#[derive(Clone, Debug)]
pub struct Caller(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_lets_its_burst_through_then_refills_at_its_rate() {
        let rate = Rate {
            per_second: 2.0,
            burst: 3,
        };
        let t0 = Instant::now();
        let mut b = Bucket { level: 3.0, at: t0 };
        for _ in 0..3 {
            assert_eq!(b.take(rate, t0), Ok(()));
        }
        assert_eq!(b.take(rate, t0), Err(1));
        assert_eq!(b.take(rate, t0 + Duration::from_millis(100)), Err(1));
        assert_eq!(b.take(rate, t0 + Duration::from_millis(500)), Ok(()));
        // a slow rate asks for a longer wait
        let slow = Rate {
            per_second: 0.1,
            burst: 1,
        };
        let mut b = Bucket { level: 0.0, at: t0 };
        assert_eq!(b.take(slow, t0), Err(10));
        // idle time refills no further than the burst
        let mut b = Bucket { level: 0.0, at: t0 };
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(b.take(rate, later), Ok(()));
        }
        assert!(b.take(rate, later).is_err());
    }

    #[test]
    fn tokens_files_are_checked() {
        let h = runtime::to_hex(&hash("s3cret"));
        let ok = format!(
            "[[token]]\nname = \"ci\"\nsha256 = \"{h}\"\nscopes = [\"run\"]\n\n[[token]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"read\", \"operate\"]\nrate = 0.5\nburst = 2\n",
            runtime::to_hex(&hash("other"))
        );
        let list = parse_file(&ok, DEFAULT_RATE).expect("parses");
        assert_eq!(list[0].rate, DEFAULT_RATE);
        assert_eq!(
            list[1].rate,
            Rate {
                per_second: 0.5,
                burst: 2
            }
        );
        let tokens = Tokens::new(list).expect("set");
        assert_eq!(tokens.find("s3cret"), Some(0));
        assert_eq!(tokens.find("other"), Some(1));
        assert_eq!(tokens.find("s3cre"), None);
        assert_eq!(tokens.find(&h), None, "the hash is not the secret");
        let entry = |body: &str| format!("[[token]]\n{body}\n");
        for bad in [
            entry(&format!(
                "name = \"a b\"\nsha256 = \"{h}\"\nscopes = [\"run\"]"
            )),
            entry(&format!(
                "name = \"\"\nsha256 = \"{h}\"\nscopes = [\"run\"]"
            )),
            entry("name = \"a\"\nsha256 = \"+f+f\"\nscopes = [\"run\"]"),
            entry(&format!(
                "name = \"a\"\nsha256 = \"{}\"\nscopes = [\"run\"]",
                &h[..62]
            )),
            entry(&format!("name = \"a\"\nsha256 = \"{h}\"\nscopes = []")),
            entry(&format!(
                "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"admin\"]"
            )),
            entry(&format!(
                "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"run\"]\nrate = 0"
            )),
            entry(&format!(
                "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"run\"]\nrate = nan"
            )),
            entry(&format!(
                "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"run\"]\nburst = 0"
            )),
            entry(&format!(
                "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"run\"]\nsecret = \"x\""
            )),
            "token = 3\n".to_string(),
        ] {
            assert!(parse_file(&bad, DEFAULT_RATE).is_err(), "{bad}");
        }
        let twice = format!(
            "{}{}",
            entry(&format!(
                "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"run\"]"
            )),
            entry(&format!(
                "name = \"a\"\nsha256 = \"{}\"\nscopes = [\"run\"]",
                runtime::to_hex(&hash("x"))
            ))
        );
        assert!(Tokens::new(parse_file(&twice, DEFAULT_RATE).expect("parses")).is_err());
        let same = format!(
            "{}{}",
            entry(&format!(
                "name = \"a\"\nsha256 = \"{h}\"\nscopes = [\"run\"]"
            )),
            entry(&format!(
                "name = \"b\"\nsha256 = \"{h}\"\nscopes = [\"run\"]"
            ))
        );
        assert!(Tokens::new(parse_file(&same, DEFAULT_RATE).expect("parses")).is_err());
        assert!(Tokens::new(Vec::new()).is_err());
    }
}
