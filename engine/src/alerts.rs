//! Alerts: rules in a config file send events — a module quarantined, an emergency
//! stop, limit hits over a rate, an evolution solved, stalled or failed — to sinks: an
//! HTTPS webhook (a JSON body signed with HMAC-SHA256, retried with back-off) or an
//! Amazon SNS topic (with the default `aws` feature).
//!
//! Sending never blocks the caller: [`Alerts::emit`] puts the event on each sink's
//! bounded queue and returns; a thread per sink delivers. An event that finds a queue
//! full is dropped and counted. A short-lived command calls [`Alerts::flush`] before it
//! exits, which waits (at most `[delivery] flush_ms`) for what is queued.
//!
//! ```toml
//! [delivery]
//! queue = 1000        # events a sink's queue holds; past it they are dropped, counted
//! flush_ms = 10000    # how long a command waits for its alerts when it exits
//!
//! [[sink]]
//! name = "ops"
//! kind = "webhook"
//! url = "https://hooks.example.com/tdev"
//! secret_env = "TDEV_ALERT_SECRET"   # the HMAC key, read from this variable
//! timeout_ms = 5000                  # per attempt
//! attempts = 5                       # in all, the first included
//! backoff_ms = 500                   # before the 2nd attempt; doubled after each
//!
//! [[sink]]
//! name = "pager"
//! kind = "sns"
//! topic_arn = "arn:aws:sns:us-east-1:123456789012:tdev-alerts"
//!
//! [[rule]]
//! event = "quarantine"               # quarantine, emergency_stop, limit_rate, solved, stalled, failed
//! sinks = ["ops", "pager"]
//!
//! [[rule]]
//! event = "limit_rate"
//! per_minute = 100                   # limit hits in the last minute over which it fires
//! sinks = ["pager"]
//!
//! [[rule]]
//! event = "stalled"
//! generations = 50                   # generations without a better best error
//! sinks = ["ops"]
//! ```

use crate::error::{ErrorKind, Result};
use crate::time::now_rfc3339;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A module was put in quarantine.
    Quarantine,
    /// An operator pulled the emergency stop.
    EmergencyStop,
    /// Runs hit limits faster than a rule's `per_minute`.
    LimitRate,
    /// An evolution reached its task's success threshold.
    Solved,
    /// An evolution's best error has not improved for a rule's `generations`.
    Stalled,
    /// An evolution or a job of one failed.
    Failed,
}

impl EventKind {
    /// The word of the config file and of the alert's `event` field.
    pub fn word(self) -> &'static str {
        match self {
            EventKind::Quarantine => "quarantine",
            EventKind::EmergencyStop => "emergency_stop",
            EventKind::LimitRate => "limit_rate",
            EventKind::Solved => "solved",
            EventKind::Stalled => "stalled",
            EventKind::Failed => "failed",
        }
    }
}

/// An alert as sinks receive it (the webhook's JSON body, the SNS message).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// A unique id of this alert, the same on every delivery attempt (receivers drop
    /// repeats by it).
    pub id: String,
    /// When, RFC 3339.
    pub at: String,
    /// The command that saw it (`tdev run`, `tdev serve`, `tdev evolve`, …).
    pub source: String,
    /// One line for people.
    pub summary: String,
    /// The facts: ids, names, counts (see docs/operations.md for each event's fields).
    pub detail: serde_json::Value,
}

impl Event {
    /// An event of `kind` seen now by `source`.
    pub fn new(
        kind: EventKind,
        source: &str,
        summary: impl Into<String>,
        detail: serde_json::Value,
    ) -> Event {
        Event {
            event: kind,
            id: crate::id::random_hex(),
            at: now_rfc3339(),
            source: source.to_string(),
            summary: summary.into(),
            detail,
        }
    }
}

/// The alerts config file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    delivery: Delivery,
    #[serde(default, rename = "sink")]
    sinks: Vec<SinkConfig>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleConfig>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Delivery {
    #[serde(default = "default_queue")]
    queue: usize,
    #[serde(default = "default_flush_ms")]
    flush_ms: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            queue: default_queue(),
            flush_ms: default_flush_ms(),
        }
    }
}

fn default_queue() -> usize {
    1000
}
fn default_flush_ms() -> u64 {
    10_000
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_attempts() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    500
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SinkKind {
    Webhook,
    Sns,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkConfig {
    name: String,
    kind: SinkKind,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    topic_arn: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(default = "default_backoff_ms")]
    backoff_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    event: EventKind,
    sinks: Vec<String>,
    #[serde(default)]
    per_minute: Option<u64>,
    #[serde(default)]
    generations: Option<u32>,
}

/// Largest values the config may give (beyond them a typo, not a setting).
const MAX_QUEUE: usize = 1_000_000;
const MAX_ATTEMPTS: u32 = 20;
const MAX_WAIT_MS: u64 = 600_000;

fn bad(what: impl Into<String>) -> crate::Error {
    ErrorKind::Alerts(what.into()).into()
}

/// Where a sink sends.
enum Target {
    Webhook {
        url: String,
        secret: Vec<u8>,
        timeout: Duration,
    },
    #[cfg(feature = "aws")]
    Sns { topic_arn: String },
}

/// A sink as loaded: its target and how hard to try.
struct Sink {
    name: String,
    target: Target,
    attempts: u32,
    backoff: Duration,
}

/// Counts of what happened to alerts, per sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Delivered.
    pub sent: AtomicU64,
    /// Given up on after every attempt.
    pub failed: AtomicU64,
    /// Dropped: the sink's queue was full.
    pub dropped: AtomicU64,
    /// Attempts that failed and were tried again.
    pub retried: AtomicU64,
}

/// A running sink: its queue and its counts.
struct Running {
    name: String,
    tx: SyncSender<Arc<Event>>,
    stats: Arc<SinkStats>,
}

/// The alerts of one process: its rules and a delivery thread per sink.
pub struct Alerts {
    sinks: Vec<Running>,
    /// Sinks per event kind (indices into `sinks`).
    routes: BTreeMap<EventKind, Vec<usize>>,
    limit_rate: Option<u64>,
    stalled_after: Option<u32>,
    /// Events queued or being delivered, over all sinks.
    pending: Arc<AtomicU64>,
    flush: Duration,
    /// Times of the limit hits of the last minute (at most `per_minute` + 1 kept), and
    /// when the rate alert last fired.
    hits: Mutex<(VecDeque<Instant>, Option<Instant>)>,
}

impl Alerts {
    /// Loads the config file at `path` and starts its sinks.
    pub fn load(path: &Path) -> Result<Alerts> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        Alerts::from_toml(&text).map_err(|e| match e.kind() {
            ErrorKind::Alerts(m) => bad(format!("{}: {m}", path.display())),
            _ => e,
        })
    }

    /// Parses a config and starts its sinks (webhook secrets are read from the
    /// environment now: a variable that is not set is an error).
    pub fn from_toml(text: &str) -> Result<Alerts> {
        Alerts::from_toml_with(text, |var| std::env::var(var).ok())
    }

    /// As [`Alerts::from_toml`], with the secrets' variables looked up by `env`.
    pub fn from_toml_with(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Alerts> {
        let cfg: ConfigFile =
            toml::from_str(text).map_err(|e| bad(runtime::escape(e.message())))?;
        if cfg.delivery.queue == 0 || cfg.delivery.queue > MAX_QUEUE {
            return Err(bad(format!("[delivery] queue is 1 to {MAX_QUEUE}")));
        }
        if cfg.delivery.flush_ms > MAX_WAIT_MS {
            return Err(bad(format!("[delivery] flush_ms is at most {MAX_WAIT_MS}")));
        }
        let mut sinks: Vec<Sink> = Vec::new();
        for s in cfg.sinks {
            if s.name.is_empty() || sinks.iter().any(|o| o.name == s.name) {
                return Err(bad(format!(
                    "sink names are given and unique: {:?}",
                    runtime::escape(&s.name)
                )));
            }
            sinks.push(sink(s, &env)?);
        }
        let mut routes: BTreeMap<EventKind, Vec<usize>> = BTreeMap::new();
        let (mut limit_rate, mut stalled_after) = (None, None);
        for r in cfg.rules {
            let word = r.event.word();
            match (r.event, r.per_minute, r.generations) {
                (EventKind::LimitRate, Some(n), None) if n > 0 => limit_rate = Some(n),
                (EventKind::LimitRate, ..) => {
                    return Err(bad(
                        "a limit_rate rule gives per_minute (> 0) and nothing else",
                    ));
                }
                (EventKind::Stalled, None, Some(g)) if g > 0 => stalled_after = Some(g),
                (EventKind::Stalled, ..) => {
                    return Err(bad(
                        "a stalled rule gives generations (> 0) and nothing else",
                    ));
                }
                (_, None, None) => {}
                _ => {
                    return Err(bad(format!(
                        "a {word} rule takes no per_minute or generations"
                    )));
                }
            }
            if routes.contains_key(&r.event) {
                return Err(bad(format!(
                    "two rules for {word}: give one, with every sink"
                )));
            }
            if r.sinks.is_empty() {
                return Err(bad(format!("the {word} rule names no sink")));
            }
            let mut to = Vec::new();
            for name in &r.sinks {
                let i = sinks.iter().position(|s| &s.name == name).ok_or_else(|| {
                    bad(format!(
                        "the {word} rule names sink {:?}, which is not defined",
                        runtime::escape(name)
                    ))
                })?;
                if !to.contains(&i) {
                    to.push(i);
                }
            }
            routes.insert(r.event, to);
        }
        let pending = Arc::new(AtomicU64::new(0));
        let mut running = Vec::new();
        for s in sinks {
            let (tx, rx) = sync_channel::<Arc<Event>>(cfg.delivery.queue);
            let stats = Arc::new(SinkStats::default());
            let name = s.name.clone();
            let (st, pend) = (stats.clone(), pending.clone());
            std::thread::Builder::new()
                .name(format!("tdev-alerts-{}", running.len()))
                .spawn(move || deliver_all(s, rx, st, pend))
                .map_err(|e| bad(format!("cannot start the delivery thread: {e}")))?;
            running.push(Running { name, tx, stats });
        }
        Ok(Alerts {
            sinks: running,
            routes,
            limit_rate,
            stalled_after,
            pending,
            flush: Duration::from_millis(cfg.delivery.flush_ms),
            hits: Mutex::new((VecDeque::new(), None)),
        })
    }

    /// Whether any rule sends events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.routes.contains_key(&kind)
    }

    /// The generations without improvement after which an evolution is stalled, if a
    /// rule asks for the `stalled` event.
    pub fn stalled_after(&self) -> Option<u32> {
        self.stalled_after
    }

    /// Sends `event` to the sinks its rule names, without waiting: a sink whose queue is
    /// full drops it (counted in its `dropped`).
    pub fn emit(&self, event: Event) {
        let Some(to) = self.routes.get(&event.event) else {
            return;
        };
        let event = Arc::new(event);
        for &i in to {
            let s = &self.sinks[i];
            self.pending.fetch_add(1, Ordering::SeqCst);
            match s.tx.try_send(event.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.pending.fetch_sub(1, Ordering::SeqCst);
                    s.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Counts `n` limit hits seen now by `source`; when the hits of the last minute
    /// pass the `limit_rate` rule's `per_minute`, sends one `limit_rate` alert (then
    /// none for a minute).
    pub fn limit_hits(&self, n: u64, source: &str) {
        let Some(rate) = self.limit_rate else {
            return;
        };
        if n == 0 {
            return;
        }
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let fire = {
            // A poisoned lock holds plain times: still sound.
            let mut h = self
                .hits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (times, last) = &mut *h;
            let keep = usize::try_from(rate.saturating_add(1)).unwrap_or(usize::MAX);
            for _ in 0..n.min(rate.saturating_add(1)) {
                times.push_back(now);
            }
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) > minute)
            {
                times.pop_front();
            }
            while times.len() > keep {
                times.pop_front();
            }
            let over = times.len() as u64 > rate;
            let quiet = last.is_none_or(|l| now.duration_since(l) >= minute);
            if over && quiet {
                *last = Some(now);
                true
            } else {
                false
            }
        };
        if fire {
            self.emit(Event::new(
                EventKind::LimitRate,
                source,
                format!("runs hit limits more than {rate} times in the last minute"),
                serde_json::json!({ "per_minute": rate }),
            ));
        }
    }

    /// Waits until every queued alert is delivered or given up on, at most the
    /// config's `flush_ms`; returns how many are still pending.
    pub fn flush(&self) -> u64 {
        let until = Instant::now() + self.flush;
        loop {
            let left = self.pending.load(Ordering::SeqCst);
            if left == 0 || Instant::now() >= until {
                return left;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Each sink's name and counts.
    pub fn stats(&self) -> Vec<(String, Arc<SinkStats>)> {
        self.sinks
            .iter()
            .map(|s| (s.name.clone(), s.stats.clone()))
            .collect()
    }
}

/// Whether a URL's host is this machine (where plain `http://` is allowed: a test
/// receiver, a local relay).
fn loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn sink(s: SinkConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Sink> {
    let name = runtime::escape(&s.name);
    if s.attempts == 0 || s.attempts > MAX_ATTEMPTS {
        return Err(bad(format!("sink {name}: attempts is 1 to {MAX_ATTEMPTS}")));
    }
    if s.timeout_ms == 0 || s.timeout_ms > MAX_WAIT_MS || s.backoff_ms > MAX_WAIT_MS {
        return Err(bad(format!(
            "sink {name}: timeout_ms is 1 to {MAX_WAIT_MS}, backoff_ms at most {MAX_WAIT_MS}"
        )));
    }
    let target = match s.kind {
        SinkKind::Webhook => {
            if s.topic_arn.is_some() {
                return Err(bad(format!(
                    "sink {name}: a webhook has a url, not a topic_arn"
                )));
            }
            let url = s
                .url
                .ok_or_else(|| bad(format!("sink {name}: a webhook needs url")))?;
            let uri: ureq::http::Uri = url.parse().map_err(|_| {
                bad(format!(
                    "sink {name}: {:?} is not a URL",
                    runtime::escape(&url)
                ))
            })?;
            let host = uri.host().unwrap_or("");
            match uri.scheme_str() {
                Some("https") if !host.is_empty() => {}
                Some("http") if loopback(host) => {}
                _ => {
                    return Err(bad(format!(
                        "sink {name}: the url is https:// (http:// only to this machine)"
                    )));
                }
            }
            let var = s.secret_env.ok_or_else(|| {
                bad(format!(
                    "sink {name}: a webhook needs secret_env, the variable that holds its HMAC key"
                ))
            })?;
            let secret = env(&var).ok_or_else(|| {
                bad(format!(
                    "sink {name}: {} (its secret_env) is not set",
                    runtime::escape(&var)
                ))
            })?;
            if secret.len() < 16 {
                return Err(bad(format!(
                    "sink {name}: the secret in {} is under 16 bytes",
                    runtime::escape(&var)
                )));
            }
            Target::Webhook {
                url,
                secret: secret.into_bytes(),
                timeout: Duration::from_millis(s.timeout_ms),
            }
        }
        SinkKind::Sns => {
            if s.url.is_some() || s.secret_env.is_some() {
                return Err(bad(format!(
                    "sink {name}: an sns sink has a topic_arn, not a url or secret_env"
                )));
            }
            let arn = s
                .topic_arn
                .ok_or_else(|| bad(format!("sink {name}: an sns sink needs topic_arn")))?;
            if !arn.starts_with("arn:") || arn.split(':').count() != 6 {
                return Err(bad(format!(
                    "sink {name}: {:?} is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                    runtime::escape(&arn)
                )));
            }
            sns_target(&name, arn)?
        }
    };
    Ok(Sink {
        name: s.name,
        target,
        attempts: s.attempts,
        backoff: Duration::from_millis(s.backoff_ms),
    })
}

#[cfg(feature = "aws")]
fn sns_target(_name: &str, topic_arn: String) -> Result<Target> {
    Ok(Target::Sns { topic_arn })
}

#[cfg(not(feature = "aws"))]
fn sns_target(name: &str, _topic_arn: String) -> Result<Target> {
    Err(bad(format!(
        "sink {name}: this tdev was built without the aws feature: no SNS"
    )))
}

/// How one delivery attempt ended.
enum Attempt {
    Delivered,
    /// Worth another attempt (a network error, a timeout, 408, 429, 5xx).
    Again(String),
    /// Not (another 4xx: the receiver refuses this alert).
    Refused(String),
}

/// The delivery thread of one sink: each event in turn, tried up to `attempts` times
/// with doubling waits.
fn deliver_all(
    sink: Sink,
    rx: Receiver<Arc<Event>>,
    stats: Arc<SinkStats>,
    pending: Arc<AtomicU64>,
) {
    #[cfg(feature = "aws")]
    let mut sns: Option<(tokio::runtime::Runtime, aws_sdk_sns::Client)> = None;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(match &sink.target {
            Target::Webhook { timeout, .. } => Some(*timeout),
            #[cfg(feature = "aws")]
            Target::Sns { .. } => None,
        })
        .build()
        .into();
    for event in rx {
        let body = match serde_json::to_string(&*event) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("tdev: alert {} not encoded: {e}", event.id);
                stats.failed.fetch_add(1, Ordering::Relaxed);
                pending.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
        };
        let mut wait = sink.backoff;
        let mut last = String::new();
        let mut delivered = false;
        for attempt in 0..sink.attempts {
            if attempt > 0 {
                stats.retried.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(wait);
                wait = wait
                    .saturating_mul(2)
                    .min(Duration::from_millis(MAX_WAIT_MS));
            }
            let outcome = match &sink.target {
                Target::Webhook { url, secret, .. } => post(&agent, url, secret, &event, &body),
                #[cfg(feature = "aws")]
                Target::Sns { topic_arn } => publish(&mut sns, topic_arn, &event, &body),
            };
            match outcome {
                Attempt::Delivered => {
                    delivered = true;
                    break;
                }
                Attempt::Again(e) => last = e,
                Attempt::Refused(e) => {
                    last = e;
                    break;
                }
            }
        }
        if delivered {
            stats.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "tdev: alert {} ({}) to sink {} not delivered: {}",
                event.id,
                event.event.word(),
                runtime::escape(&sink.name),
                runtime::escape(&last)
            );
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The `X-Tdev-Signature` of a body sent at `timestamp` (seconds since 1970):
/// `sha256=` and the hex HMAC-SHA256, keyed by the secret, of `TIMESTAMP.BODY`.
pub fn signature(secret: &[u8], timestamp: u64, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", runtime::to_hex(&mac.finalize().into_bytes()))
}

fn post(agent: &ureq::Agent, url: &str, secret: &[u8], event: &Event, body: &str) -> Attempt {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sent = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("tdev/", env!("CARGO_PKG_VERSION")))
        .header("X-Tdev-Event", event.event.word())
        .header("X-Tdev-Delivery", &event.id)
        .header("X-Tdev-Timestamp", ts.to_string())
        .header("X-Tdev-Signature", signature(secret, ts, body))
        .send(body);
    match sent {
        Ok(r) if r.status().is_success() => Attempt::Delivered,
        Ok(r) => {
            let code = r.status().as_u16();
            let why = format!("HTTP {code}");
            if code == 408 || code == 429 || code >= 500 {
                Attempt::Again(why)
            } else {
                Attempt::Refused(why)
            }
        }
        Err(e) => Attempt::Again(e.to_string()),
    }
}

#[cfg(feature = "aws")]
fn publish(
    client: &mut Option<(tokio::runtime::Runtime, aws_sdk_sns::Client)>,
    topic_arn: &str,
    event: &Event,
    body: &str,
) -> Attempt {
    if client.is_none() {
        match crate::store::s3::aws_sdk_config(topic_arn) {
            Ok((rt, sdk)) => *client = Some((rt, aws_sdk_sns::Client::new(&sdk))),
            Err(e) => return Attempt::Again(e.to_string()),
        }
    }
    let Some((rt, sns)) = client.as_ref() else {
        return Attempt::Again("no SNS client".into());
    };
    // An SNS subject is at most 100 printable ASCII characters.
    let subject: String = format!("tdev {}: {}", event.event.word(), event.summary)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(100)
        .collect();
    let attr = |v: &str| {
        aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
    };
    let (Ok(kind), Ok(id)) = (attr(event.event.word()), attr(&event.id)) else {
        return Attempt::Refused("cannot build the message attributes".into());
    };
    match rt.block_on(
        sns.publish()
            .topic_arn(topic_arn)
            .subject(subject)
            .message(body)
            .message_attributes("event", kind)
            .message_attributes("delivery", id)
            .send(),
    ) {
        Ok(_) => Attempt::Delivered,
        Err(e) => Attempt::Again(crate::error::chain(&e)),
    }
}

/// Watches an evolution's generations for the `solved` and `stalled` alerts.
#[derive(Debug, Default)]
pub struct EvolutionWatch {
    best: Option<f64>,
    since: u32,
    stalled_sent: bool,
}

impl EvolutionWatch {
    /// Takes generation `generation`'s best error; sends `stalled` once when the best
    /// has not improved for the rule's `generations`.
    pub fn generation(
        &mut self,
        alerts: &Alerts,
        source: &str,
        evolution_id: &str,
        generation: u32,
        best_error: f64,
    ) {
        if self.best.is_none_or(|b| best_error < b) {
            self.best = Some(best_error);
            self.since = generation;
            self.stalled_sent = false;
        }
        if let Some(after) = alerts.stalled_after()
            && !self.stalled_sent
            && generation.saturating_sub(self.since) >= after
        {
            self.stalled_sent = true;
            alerts.emit(Event::new(
                EventKind::Stalled,
                source,
                format!(
                    "evolution {evolution_id}: no better best error for {} generations",
                    generation - self.since
                ),
                serde_json::json!({
                    "evolution_id": evolution_id,
                    "generation": generation,
                    "best_error": finite(best_error),
                    "since_generation": self.since,
                }),
            ));
        }
    }
}

/// A number for JSON: an infinite or NaN error as null.
pub fn finite(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment of the tests: one secret.
    fn env(var: &str) -> Option<String> {
        (var == "TDEV_TEST_ALERT_SECRET").then(|| "0123456789abcdef".to_string())
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature(b"Jefe", 0, "");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            runtime::to_hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // the timestamp is part of what is signed
        assert_ne!(signature(b"k", 1, "{}"), signature(b"k", 2, "{}"));
    }

    #[test]
    fn configs_are_checked_before_anything_is_sent() {
        let ok = r#"
            [[sink]]
            name = "hook"
            kind = "webhook"
            url = "http://127.0.0.1:9/x"
            secret_env = "TDEV_TEST_ALERT_SECRET"
            [[rule]]
            event = "quarantine"
            sinks = ["hook"]
            [[rule]]
            event = "stalled"
            generations = 3
            sinks = ["hook"]
        "#;
        let a = Alerts::from_toml_with(ok, env).expect("config");
        assert!(a.wants(EventKind::Quarantine) && !a.wants(EventKind::Solved));
        assert_eq!(a.stalled_after(), Some(3));
        let sink = |extra: &str| {
            format!(
                "[[sink]]\nname = \"hook\"\nkind = \"webhook\"\nsecret_env = \"TDEV_TEST_ALERT_SECRET\"\n{extra}\n[[rule]]\nevent = \"failed\"\nsinks = [\"hook\"]\n"
            )
        };
        for (text, want) in [
            (sink("url = \"http://example.com/x\""), "https://"),
            (sink("url = \"ftp://127.0.0.1/x\""), "https://"),
            (sink("url = \"not a url\""), "not a URL"),
            (sink(""), "needs url"),
            (sink("url = \"https://h/x\"\nattempts = 0"), "attempts is 1 to"),
            (sink("url = \"https://h/x\"\ncolour = 1"), "unknown field"),
            (
                "[[rule]]\nevent = \"failed\"\nsinks = [\"nowhere\"]\n".to_string(),
                "not defined",
            ),
            (
                "[[rule]]\nevent = \"limit_rate\"\nsinks = []\n".to_string(),
                "per_minute",
            ),
            ("[[rule]]\nevent = \"exploded\"\nsinks = []\n".to_string(), "unknown variant"),
            (
                "[[sink]]\nname = \"s\"\nkind = \"webhook\"\nurl = \"https://h/\"\nsecret_env = \"TDEV_TEST_NOT_SET_EVER\"\n"
                    .to_string(),
                "is not set",
            ),
            (
                "[[sink]]\nname = \"s\"\nkind = \"sns\"\ntopic_arn = \"topic\"\n".to_string(),
                "not a topic ARN",
            ),
            ("[delivery]\nqueue = 0\n".to_string(), "queue is 1 to"),
        ] {
            let e = Alerts::from_toml_with(&text, env).err().unwrap_or_else(|| panic!("accepted:\n{text}"));
            assert!(e.to_string().contains(want), "{want:?} not in {e}\n{text}");
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_never_blocks() {
        // A receiver that accepts connections and never answers: the sink is stuck on
        // its first event for its whole timeout.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let a = Alerts::from_toml_with(
            &format!(
                r#"
            [delivery]
            queue = 2
            flush_ms = 0
            [[sink]]
            name = "stuck"
            kind = "webhook"
            url = "http://127.0.0.1:{port}/"
            secret_env = "TDEV_TEST_ALERT_SECRET"
            timeout_ms = 60000
            attempts = 1
            [[rule]]
            event = "failed"
            sinks = ["stuck"]
            "#
            ),
            env,
        )
        .expect("config");
        // The receiver never answers: an emit that waited for the sink would never
        // come back; one that waited for room in the queue would never drop.
        for i in 0..50 {
            a.emit(Event::new(
                EventKind::Failed,
                "test",
                format!("{i}"),
                serde_json::json!({}),
            ));
        }
        let stats = a.stats();
        let dropped = stats[0].1.dropped.load(Ordering::Relaxed);
        // one in flight, two queued at most: the rest dropped
        assert!(dropped >= 47, "{dropped}");
        assert_eq!(a.flush(), 50 - dropped, "flush_ms = 0 waits for nothing");
        drop(listener);
    }

    #[test]
    fn stalled_fires_once_per_plateau() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let a = Alerts::from_toml_with(
            &format!(
                r#"
            [delivery]
            queue = 100
            [[sink]]
            name = "h"
            kind = "webhook"
            url = "http://127.0.0.1:{port}/"
            secret_env = "TDEV_TEST_ALERT_SECRET"
            timeout_ms = 60000
            attempts = 1
            [[rule]]
            event = "stalled"
            generations = 3
            sinks = ["h"]
            "#
            ),
            env,
        )
        .expect("config");
        let mut w = EvolutionWatch::default();
        let errors = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0];
        for (g, e) in errors.iter().enumerate() {
            w.generation(&a, "test", "evo-x", g as u32, *e);
        }
        // generation 4 (3 after the best of generation 1), then 10 (3 after 7)
        let queued = a.pending.load(Ordering::SeqCst);
        assert_eq!(queued, 2);
        drop(listener);
    }
}
