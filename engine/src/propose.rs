//! Proposers: outside sources of candidate modules beside the engine's mutators — a
//! program on this machine (`command:PROGRAM`) or a model behind an OpenAI-shaped chat
//! completions server (`openai:URL`). Protocol version [`PROTOCOL`]: the engine sends a
//! [`Request`] (the task's signature, a sample of its training cases — never a
//! held-out one —, the elite's text forms and errors, and a budget) and reads an
//! [`Answer`] (`{"candidates": [{"wat": …} | {"wasm_b64": …}]}`).
//!
//! Everything a proposer answers is untrusted: an answer past the policy's
//! `[proposer] output_bytes` is refused, a candidate is only text or bytes until the
//! evolution admits it like any module (size cap, validation, patterns, quarantine,
//! the task's signature). A program runs with a cleared environment (only the variables
//! the user names) and is killed at `[proposer] timeout_ms`.

use crate::error::{ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The protocol version a request carries and an answer may name.
pub const PROTOCOL: u32 = 1;

/// What a proposer is asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The evolution asking.
    pub evolution_id: String,
    /// The generation whose breeding the answer is for.
    pub generation: u32,
    /// The task: signature, error measure and a sample of training cases.
    pub task: TaskView,
    /// The best members of the population, best first.
    pub elite: Vec<EliteView>,
    /// The most candidates that will be read from the answer.
    pub budget: u32,
}

/// A task as a proposer sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// Its name.
    pub name: String,
    /// `act`'s parameter types (`i64`, `f64`).
    pub params: Vec<String>,
    /// `act`'s result type.
    pub result: String,
    /// How an answer's error is measured (`abs`, `exact`, …).
    pub error: String,
    /// Training cases (a sample): arguments and the expected result.
    pub cases: Vec<CaseView>,
}

/// One training case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseView {
    /// The arguments (numbers; a non-finite f64 as the string `nan`, `inf`, `-inf`).
    pub args: Vec<serde_json::Value>,
    /// The expected result.
    pub expect: serde_json::Value,
}

/// An elite member as a proposer sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EliteView {
    /// Its id.
    pub agent_id: String,
    /// Its text form (cut to the policy's `[proposer] elite_text_bytes`).
    pub wat: String,
    /// Its size in bytes.
    pub size_bytes: usize,
    /// Its mean train error (null when not finite).
    pub train_error: Option<f64>,
    /// Its error on each case of the request's sample (null when not finite).
    pub case_errors: Vec<Option<f64>>,
}

/// A proposer's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The protocol the answer speaks (absent: 1).
    #[serde(default)]
    pub protocol: Option<u32>,
    /// The candidates.
    pub candidates: Vec<Candidate>,
}

/// One candidate: WebAssembly text, or a binary module in standard base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// The module as WebAssembly text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wat: Option<String>,
    /// The module as standard base64 of its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_b64: Option<String>,
}

impl Candidate {
    /// The module's bytes: the text assembled, or the base64 decoded. Exactly one of
    /// the two must be given.
    pub fn bytes(&self) -> std::result::Result<Vec<u8>, String> {
        match (&self.wat, &self.wasm_b64) {
            (Some(text), None) => wat::parse_str(text).map_err(|e| {
                format!(
                    "the wat does not assemble: {}",
                    runtime::escape(&e.to_string())
                )
            }),
            (None, Some(b64)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| format!("wasm_b64 is not standard base64: {e}"))
            }
            _ => Err("a candidate has exactly one of wat and wasm_b64".into()),
        }
    }
}

/// A source of candidates.
pub trait Proposer: Send + Sync {
    /// `command`, `openai`, … (the origin of its candidates is
    /// `proposer:<kind>:<name>`).
    fn kind(&self) -> &'static str;
    /// What it is, for records and reports (the program's name, the model).
    fn name(&self) -> String;
    /// Answers one request. A failure is reported and counted; the evolution goes
    /// on without it.
    fn propose(&self, request: &Request) -> Result<Vec<Candidate>>;
    /// Gives up on the request being answered, if it can (the evolution is done).
    fn cancel(&self) {}
}

/// The origin word of a proposer's candidates: `proposer:<kind>:<name>`.
pub fn origin_of(p: &dyn Proposer) -> String {
    format!("proposer:{}:{}", p.kind(), p.name())
}

fn failed(what: impl Into<String>) -> crate::Error {
    ErrorKind::Proposer(what.into()).into()
}

/// Parses an answer's text: one JSON object of the protocol, at most `max` candidates
/// read (the rest counted in the second value).
pub fn parse_answer(text: &[u8], max: usize) -> Result<(Vec<Candidate>, usize)> {
    let answer: Answer = serde_json::from_slice(text).map_err(|e| {
        failed(format!(
            "the answer is not {{\"candidates\": [...]}}: {}",
            runtime::escape(&e.to_string())
        ))
    })?;
    if let Some(v) = answer.protocol
        && v != PROTOCOL
    {
        return Err(failed(format!(
            "the answer speaks protocol {v}; this engine speaks {PROTOCOL}"
        )));
    }
    let n = answer.candidates.len();
    let mut c = answer.candidates;
    c.truncate(max);
    Ok((c, n.saturating_sub(max)))
}

/// A program that answers on stdout the request it reads on stdin.
pub struct CommandProposer {
    argv: Vec<String>,
    /// The process group of the request being answered, if any (for [`Proposer::cancel`]).
    running: std::sync::Mutex<Option<u32>>,
    env: Vec<(String, String)>,
    timeout: Duration,
    output_bytes: u64,
    candidates: usize,
}

impl CommandProposer {
    /// `argv` (the program and its arguments), with only the environment variables
    /// `keep` names passed on (from this process's environment; a name that is not set
    /// is an error), under the policy's proposer limits.
    pub fn new(
        argv: Vec<String>,
        keep: &[String],
        limits: &runtime::ProposerLimits,
    ) -> Result<CommandProposer> {
        if argv.is_empty() || argv[0].is_empty() {
            return Err(failed("command: give the program to run"));
        }
        let mut env = Vec::new();
        for k in keep {
            let v = std::env::var(k).map_err(|_| {
                failed(format!(
                    "the variable {} to pass to the proposer is not set",
                    runtime::escape(k)
                ))
            })?;
            env.push((k.clone(), v));
        }
        Ok(CommandProposer {
            argv,
            running: std::sync::Mutex::new(None),
            env,
            timeout: Duration::from_millis(limits.timeout_ms),
            output_bytes: limits.output_bytes,
            candidates: usize::try_from(limits.candidates).unwrap_or(usize::MAX),
        })
    }

    /// The words of `command:PROGRAM ARGS…` split as a shell would split plain words
    /// (whitespace; no quoting).
    pub fn split(spec: &str) -> Vec<String> {
        spec.split_whitespace().map(str::to_string).collect()
    }
}

impl Proposer for CommandProposer {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn name(&self) -> String {
        // The program and its arguments by their last path component:
        // `python3 templates.py`.
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|w| {
                std::path::Path::new(w)
                    .file_name()
                    .map_or_else(|| w.clone(), |n| n.to_string_lossy().into_owned())
            })
            .collect();
        runtime::escape(&words.join(" ")).chars().take(64).collect()
    }

    fn cancel(&self) {
        let pid = *self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(g) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            let _ = rustix::process::kill_process_group(g, rustix::process::Signal::KILL);
        }
    }

    fn propose(&self, request: &Request) -> Result<Vec<Candidate>> {
        let body = serde_json::to_vec(request)
            .map_err(|e| failed(format!("cannot encode the request: {e}")))?;
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            // A group of its own: what it starts is killed with it.
            .process_group(0)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", self.name())))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed("the proposer's pipes were not opened"));
        };
        // Writing, reading and waiting each on their own: a program that reads nothing
        // or writes without end cannot block the others; every read is capped.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let cap = self.output_bytes;
        let over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let over_seen = over.clone();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let r = stdout.take(cap.saturating_add(1)).read_to_end(&mut out);
            if out.len() as u64 > cap {
                over_seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            r.map(|_| out)
        });
        let err_reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stderr.take(4096).read_to_end(&mut out);
            out
        });
        let started = Instant::now();
        *self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child.id());
        let group = rustix::process::Pid::from_raw(child.id() as i32);
        let kill = |child: &mut std::process::Child| {
            if let Some(g) = group {
                let _ = rustix::process::kill_process_group(g, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                // Past the output cap: nothing more is read, so nothing more is waited for.
                Ok(None) if over.load(std::sync::atomic::Ordering::SeqCst) => {
                    kill(&mut child);
                    break Some(std::process::ExitStatus::default());
                }
                Ok(None) if started.elapsed() >= self.timeout => {
                    kill(&mut child);
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    kill(&mut child);
                    return Err(failed(format!("waiting for {}: {e}", self.name())));
                }
            }
        };
        // What it started may outlive it and hold the pipes: the group goes too.
        if let Some(g) = group {
            let _ = rustix::process::kill_process_group(g, rustix::process::Signal::KILL);
        }
        *self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let _ = writer.join();
        let out = reader
            .join()
            .map_err(|_| failed("the reader of the answer panicked"))?;
        let err = err_reader.join().unwrap_or_default();
        let Some(status) = status else {
            return Err(failed(format!(
                "{} gave no answer within {} ms (killed)",
                self.name(),
                self.timeout.as_millis()
            )));
        };
        let out = out.map_err(|e| failed(format!("reading the answer: {e}")))?;
        if out.len() as u64 > self.output_bytes {
            return Err(failed(format!(
                "the answer is over `[proposer] output_bytes` = {} bytes",
                self.output_bytes
            )));
        }
        if !status.success() {
            return Err(failed(format!(
                "{} exited with {status}: {}",
                self.name(),
                runtime::escape(String::from_utf8_lossy(&err).trim())
            )));
        }
        Ok(parse_answer(&out, self.candidates)?.0)
    }
}

/// A model behind a server that speaks OpenAI's chat completions (`POST
/// URL/chat/completions`): the request becomes a prompt, the answer's ```wat blocks
/// the candidates.
pub struct OpenAiProposer {
    url: String,
    model: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    output_bytes: u64,
    candidates: usize,
}

impl OpenAiProposer {
    /// The server at `url` (its base, e.g. `http://127.0.0.1:8000/v1`, or the full
    /// `…/chat/completions`), asking `model`, with `api_key` as a bearer token if given.
    pub fn new(
        url: &str,
        model: &str,
        api_key: Option<String>,
        limits: &runtime::ProposerLimits,
    ) -> Result<OpenAiProposer> {
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|_| failed(format!("openai: {:?} is not a URL", runtime::escape(url))))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(failed("openai: the URL is http:// or https://"));
        }
        let url = if url.ends_with("/chat/completions") {
            url.to_string()
        } else {
            format!("{}/chat/completions", url.trim_end_matches('/'))
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_millis(limits.timeout_ms)))
            .build()
            .into();
        Ok(OpenAiProposer {
            url,
            model: model.to_string(),
            api_key,
            agent,
            output_bytes: limits.output_bytes,
            candidates: usize::try_from(limits.candidates).unwrap_or(usize::MAX),
        })
    }
}

impl Proposer for OpenAiProposer {
    fn kind(&self) -> &'static str {
        "openai"
    }

    fn name(&self) -> String {
        runtime::escape(&self.model)
    }

    fn propose(&self, request: &Request) -> Result<Vec<Candidate>> {
        let body = serde_json::json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt(request)},
            ],
        });
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let resp = req
            .send(body.to_string())
            .map_err(|e| failed(format!("openai: {e}")))?;
        let status = resp.status().as_u16();
        let mut text = Vec::new();
        resp.into_body()
            .into_reader()
            .take(self.output_bytes.saturating_add(1))
            .read_to_end(&mut text)
            .map_err(|e| failed(format!("openai: reading the answer: {e}")))?;
        if text.len() as u64 > self.output_bytes {
            return Err(failed(format!(
                "openai: the answer is over `[proposer] output_bytes` = {} bytes",
                self.output_bytes
            )));
        }
        if !(200..300).contains(&status) {
            return Err(failed(format!(
                "openai: HTTP {status}: {}",
                runtime::escape(
                    String::from_utf8_lossy(&text)
                        .chars()
                        .take(200)
                        .collect::<String>()
                        .as_str()
                )
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| failed(format!("openai: the answer is not JSON: {e}")))?;
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| failed("openai: no choices[0].message.content in the answer"))?;
        Ok(wat_blocks(content, self.candidates))
    }
}

/// A model on Amazon Bedrock, asked through the Converse API (region, endpoint and
/// credentials from the standard AWS environment, as for the `s3://` store): the request
/// becomes a prompt, the answer's ```wat blocks the candidates.
#[cfg(feature = "aws")]
pub struct BedrockProposer {
    model: String,
    rt: tokio::runtime::Runtime,
    client: aws_sdk_bedrockruntime::Client,
    timeout: Duration,
    output_bytes: u64,
    candidates: usize,
}

#[cfg(feature = "aws")]
impl BedrockProposer {
    /// Asks `model` (a Bedrock model id or inference profile).
    pub fn new(model: &str, limits: &runtime::ProposerLimits) -> Result<BedrockProposer> {
        if model.is_empty() || model.len() > 2048 || model.chars().any(char::is_control) {
            return Err(failed("bedrock: give a model id (bedrock:MODEL_ID)"));
        }
        let (rt, sdk) = crate::store::s3::aws_sdk_config("bedrock")?;
        Ok(BedrockProposer {
            model: model.to_string(),
            client: aws_sdk_bedrockruntime::Client::new(&sdk),
            rt,
            timeout: Duration::from_millis(limits.timeout_ms),
            output_bytes: limits.output_bytes,
            candidates: usize::try_from(limits.candidates).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(feature = "aws")]
impl Proposer for BedrockProposer {
    fn kind(&self) -> &'static str {
        "bedrock"
    }

    fn name(&self) -> String {
        runtime::escape(&self.model)
    }

    fn propose(&self, request: &Request) -> Result<Vec<Candidate>> {
        use aws_sdk_bedrockruntime::types::{
            ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message,
            SystemContentBlock,
        };
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(prompt(request)))
            .build()
            .map_err(|e| failed(format!("bedrock: {e}")))?;
        let call = self
            .client
            .converse()
            .model_id(&self.model)
            .system(SystemContentBlock::Text(SYSTEM_PROMPT.into()))
            .messages(message)
            .inference_config(InferenceConfiguration::builder().max_tokens(4096).build())
            .send();
        let answer = self
            .rt
            .block_on(async { tokio::time::timeout(self.timeout, call).await })
            .map_err(|_| {
                failed(format!(
                    "bedrock: no answer within {} ms",
                    self.timeout.as_millis()
                ))
            })?
            .map_err(|e| failed(format!("bedrock: {}", crate::error::chain(&e))))?;
        let mut text = String::new();
        if let Some(ConverseOutput::Message(m)) = answer.output() {
            for block in m.content() {
                if let ContentBlock::Text(t) = block {
                    text.push_str(t);
                    text.push('\n');
                }
            }
        }
        if text.len() as u64 > self.output_bytes {
            return Err(failed(format!(
                "bedrock: the answer is over `[proposer] output_bytes` = {} bytes",
                self.output_bytes
            )));
        }
        Ok(wat_blocks(&text, self.candidates))
    }
}

/// What the model is told once.
pub const SYSTEM_PROMPT: &str = "You write small WebAssembly modules in the text format (WAT) \
for an evolutionary search. Each module exports one function named \"act\" with exactly the \
parameter and result types given, defines no memory unless needed, imports nothing, and \
must not loop forever. Answer with one or more modules, each in its own ```wat fenced block, \
and nothing else.";

/// The prompt of a request: the signature, the sample cases, the elite and the budget.
pub fn prompt(r: &Request) -> String {
    let mut p = format!(
        "Task `{}`: act({}) -> {}; error measure: {}.\nTraining cases (arguments => expected):\n",
        r.task.name,
        r.task.params.join(", "),
        r.task.result,
        r.task.error
    );
    for c in &r.task.cases {
        let args: Vec<String> = c.args.iter().map(|a| a.to_string()).collect();
        p.push_str(&format!("  ({}) => {}\n", args.join(", "), c.expect));
    }
    if !r.elite.is_empty() {
        p.push_str("The best modules so far, best first:\n");
        for e in &r.elite {
            p.push_str(&format!(
                "Mean error {}:\n```wat\n{}\n```\n",
                e.train_error
                    .map_or("not finite".to_string(), |x| x.to_string()),
                e.wat
            ));
        }
    }
    p.push_str(&format!(
        "Write up to {} new modules that get the expected results, each in a ```wat block.\n",
        r.budget
    ));
    p
}

/// The ```wat (or plain ```) fenced blocks of a model's text, at most `max`, as
/// candidates.
pub fn wat_blocks(text: &str, max: usize) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut rest = text;
    while out.len() < max {
        let Some(start) = rest.find("```") else { break };
        let after = &rest[start + 3..];
        let body_start = after.find('\n').map_or(after.len(), |i| i + 1);
        let lang = after[..body_start].trim();
        let body = &after[body_start..];
        let Some(end) = body.find("```") else { break };
        if lang.is_empty() || lang.eq_ignore_ascii_case("wat") || lang.eq_ignore_ascii_case("wasm")
        {
            out.push(Candidate {
                wat: Some(body[..end].to_string()),
                wasm_b64: None,
            });
        }
        rest = &body[end + 3..];
    }
    out
}

/// A proposer from its `--proposer` spec: `command:PROGRAM ARGS…` (with `keep_env`
/// passed on), `bedrock:MODEL_ID` or `openai:URL` (the model from `TDEV_PROPOSER_MODEL`, default `default`;
/// the key from `TDEV_PROPOSER_KEY`, if set).
pub fn from_spec(
    spec: &str,
    keep_env: &[String],
    limits: &runtime::ProposerLimits,
) -> Result<Box<dyn Proposer>> {
    match spec.split_once(':') {
        Some(("command", program)) => Ok(Box::new(CommandProposer::new(
            CommandProposer::split(program),
            keep_env,
            limits,
        )?)),
        #[cfg(feature = "aws")]
        Some(("bedrock", model)) => Ok(Box::new(BedrockProposer::new(model, limits)?)),
        #[cfg(not(feature = "aws"))]
        Some(("bedrock", _)) => Err(failed(
            "bedrock: this tdev was built without the aws feature",
        )),
        Some(("openai", url)) => {
            let model = std::env::var("TDEV_PROPOSER_MODEL").unwrap_or_else(|_| "default".into());
            let key = std::env::var("TDEV_PROPOSER_KEY").ok();
            Ok(Box::new(OpenAiProposer::new(url, &model, key, limits)?))
        }
        _ => Err(failed(format!(
            "{:?} is not a proposer: command:PROGRAM, bedrock:MODEL_ID or openai:URL",
            runtime::escape(spec)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> runtime::ProposerLimits {
        runtime::Policy::default_policy().proposer
    }

    fn request() -> Request {
        Request {
            protocol: PROTOCOL,
            evolution_id: "evo-t".into(),
            generation: 3,
            task: TaskView {
                name: "abs".into(),
                params: vec!["i64".into()],
                result: "i64".into(),
                error: "abs".into(),
                cases: vec![CaseView {
                    args: vec![serde_json::json!(-3)],
                    expect: serde_json::json!(3),
                }],
            },
            elite: vec![],
            budget: 2,
        }
    }

    fn sh(script: &str) -> CommandProposer {
        CommandProposer::new(
            vec!["/bin/sh".into(), "-c".into(), script.into()],
            &[],
            &runtime::ProposerLimits {
                timeout_ms: 2000,
                output_bytes: 4096,
                candidates: 2,
                ..limits()
            },
        )
        .expect("proposer")
    }

    #[test]
    fn a_program_reads_the_request_and_its_answer_is_read_within_the_caps() {
        // echoes the generation it was asked about inside a module
        let p = sh(
            r#"read -r line; case "$line" in *'"generation":3'*) g=3;; *) g=0;; esac;
            printf '{"candidates": [{"wat": "(module (func (export \"act\") (param i64) (result i64) i64.const %s))"}, {"wasm_b64": "AGFzbQEAAAA="}, {"wat": "(module)"}]}' "$g""#,
        );
        let c = p.propose(&request()).expect("answer");
        assert_eq!(c.len(), 2, "the third is past the cap");
        assert!(
            c[0].wat
                .as_deref()
                .is_some_and(|w| w.contains("i64.const 3")),
            "{c:?}"
        );
        assert_eq!(c[1].bytes().expect("bytes"), b"\0asm\x01\0\0\0");
        assert_eq!(p.kind(), "command");
        assert!(p.name().starts_with("sh -c read -r line"), "{}", p.name());
        assert!(p.name().chars().count() <= 64);
    }

    #[test]
    fn a_program_that_hangs_floods_fails_or_leaks_is_a_failed_request() {
        let err = |p: CommandProposer| p.propose(&request()).expect_err("fails").to_string();
        assert!(err(sh("sleep 30")).contains("no answer within 2000 ms"));
        assert!(err(sh("yes x | head -c 100000")).contains("over `[proposer] output_bytes`"));
        assert!(err(sh("echo broken >&2; exit 3")).contains("broken"));
        assert!(err(sh("echo '{\"candidates\": 1}'")).contains("is not {\"candidates\""));
        assert!(err(sh("echo '{\"protocol\": 9, \"candidates\": []}'")).contains("protocol 9"));
        // no inherited secrets: the environment is empty but for what is named
        let p = sh(r#"printf '{"candidates": [{"wat": "%s"}]}' "$(env | grep -c .)""#);
        let c = p.propose(&request()).expect("answer");
        // sh itself may set PWD, SHLVL and _: nothing of this process's environment
        let n: u32 = c[0]
            .wat
            .as_deref()
            .expect("wat")
            .trim()
            .parse()
            .expect("count");
        assert!(n <= 3, "{n} variables reached the proposer");
        assert!(
            CommandProposer::new(vec!["x".into()], &["TDEV_NOT_SET_EVER".into()], &limits())
                .is_err()
        );
    }

    #[test]
    fn candidates_are_text_or_bytes_never_both() {
        let both = Candidate {
            wat: Some("(module)".into()),
            wasm_b64: Some("AA==".into()),
        };
        assert!(both.bytes().is_err());
        let none = Candidate {
            wat: None,
            wasm_b64: None,
        };
        assert!(none.bytes().is_err());
        let bad = Candidate {
            wat: Some("(modul".into()),
            wasm_b64: None,
        };
        assert!(bad.bytes().expect_err("bad").contains("does not assemble"));
        assert!(
            serde_json::from_str::<Answer>(r#"{"candidates": [{"wat": "x", "extra": 1}]}"#)
                .is_err()
        );
    }

    #[test]
    fn wat_blocks_are_read_from_a_models_text() {
        let text = "Here:\n```wat\n(module A)\n```\nand\n```rust\nfn x() {}\n```\n```\n(module B)\n```\n```wat\n(module C)\n```";
        let c = wat_blocks(text, 2);
        let w: Vec<&str> = c.iter().filter_map(|c| c.wat.as_deref()).collect();
        assert_eq!(w, ["(module A)\n", "(module B)\n"]);
        let p = prompt(&request());
        assert!(
            p.contains("act(i64) -> i64") && p.contains("(-3) => 3") && p.contains("up to 2"),
            "{p}"
        );
    }
}
