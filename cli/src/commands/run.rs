//! `tdev run FILE [--policy P] [--input FILE|-] [--args 1,2.5] [--store URI] [--json]`

use crate::common::{
    EXIT_OK, EXIT_REJECTED, EXIT_TRAPPED, ModuleArgs, open_store, print_findings, print_json,
    read_module, sandbox,
};
use crate::report::{GroupReport, MemberReport, Refusal, RejectedReport, RunReport};
use anyhow::{Context, Result, bail};
use engine::{Gate, GroupMember, Guard, Origin, Quarantine};
use runtime::{ActForm, Agent, Input, RunResult, parse_args};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name of the thread `tdev run` runs agents on (sized by the policy's stack).
const RUN_THREAD: &str = "tdev-run";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    module: ModuleArgs,
    /// Input bytes for the bytes form: a file, or - for stdin.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Arguments for the typed form, comma-separated (e.g. 1,2.5,-0.0).
    #[arg(long, allow_hyphen_values = true)]
    args: Option<String>,
    /// Run with a peer agent (bytes form) that talks through send/recv; repeatable. Each
    /// agent is named by its file stem; the group runs in rounds until no mail is left.
    #[arg(long = "peer")]
    peers: Vec<PathBuf>,
    /// Write the raw output bytes to this file (text mode then shows only their size).
    #[arg(long)]
    output_file: Option<PathBuf>,
    /// Write the raw output bytes to stdout, and the report to stderr.
    #[arg(long, conflicts_with_all = ["json", "output_file", "peers"])]
    raw: bool,
    /// A bytes-form agent's non-zero status exits 4, as a trap does.
    #[arg(long = "fail-on-status")]
    fail_on_status: bool,
    /// Where quarantined modules go (default file://.tdev).
    #[arg(long)]
    store: Option<String>,
    /// Send alerts (a quarantine, limit hits) as this file's rules say (default:
    /// $TDEV_ALERTS; see docs/operations.md).
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What `tdev run` says its alerts come from.
const SOURCE: &str = "tdev run";

/// Tells the alerts of a guarded run (see [`crate::common::alert_run`]).
fn alert_run(
    alerts: Option<&engine::alerts::Alerts>,
    run: &engine::GuardedRun,
    origin: &Origin,
    id: &str,
) {
    if let Some(a) = alerts {
        crate::common::alert_run(a, SOURCE, run, origin, id);
    }
}

fn report_rejected(
    json: bool,
    verdict: &runtime::Verdict,
    record: &engine::Record,
    reason: Refusal,
) -> Result<u8> {
    if json {
        print_json(&RejectedReport::new(verdict, record, reason))?;
    } else {
        let shown = RejectedReport::new(verdict, record, reason);
        println!("agent:      {}", verdict.agent_id);
        println!("outcome:    rejected ({reason})");
        // A held module: the score and reason of its record, what holds it.
        if reason == Refusal::Quarantined {
            println!(
                "score:      {} (its quarantine record's)",
                shown.safety_score
            );
            println!("reason:     {}", record.reason);
            if let Some(remedy) = runtime::remedy(&record.reason, "") {
                println!("remedy:     {remedy}");
            }
        } else {
            println!("score:      {}", shown.safety_score);
        }
        print_findings(&verdict.findings);
        println!(
            "quarantine: {} — see `tdev quarantine show {}`",
            serde_json::to_value(record.status)?.as_str().unwrap_or("?"),
            &verdict.agent_id
        );
    }
    Ok(EXIT_REJECTED)
}

/// The agent of a module the guard admits (and the purges it has seen), or the exit
/// code of its refusal, reported.
fn admit(
    guard: &Guard,
    bytes: &[u8],
    origin: &Origin,
    json: bool,
    alerts: Option<&engine::alerts::Alerts>,
) -> Result<Result<(Arc<Agent>, u64), u8>> {
    Ok(match guard.admit(bytes, origin).context("admission")? {
        Gate::Admitted {
            agent, purges_seen, ..
        } => Ok((agent, purges_seen)),
        Gate::Held { verdict, record } => Err(report_rejected(
            json,
            &verdict,
            &record,
            Refusal::Quarantined,
        )?),
        Gate::Rejected { verdict, record } => {
            if let Some(a) = alerts {
                a.emit(crate::common::quarantine_alert(
                    SOURCE,
                    &verdict.agent_id,
                    origin,
                    &record.reason,
                    record.safety_score,
                ));
            }
            Err(report_rejected(json, &verdict, &record, Refusal::Static)?)
        }
    })
}

/// `tdev run`: 0 ok, 3 rejected, 4 trapped.
pub fn exec(args: Args) -> Result<u8> {
    let (policy, bytes) = args.module.load()?;
    let store = open_store(args.store.as_deref())?;
    let alerts = crate::common::alerts(args.alerts.as_deref())?;
    let guard = Guard::new(sandbox(policy)?, Quarantine::new(store));

    let origin = Origin::file(&args.module.file);
    let (agent, purges_seen) = match admit(&guard, &bytes, &origin, args.json, alerts.get())? {
        Ok(admitted) => admitted,
        Err(code) => return Ok(code),
    };

    let input = match agent.form() {
        ActForm::Bytes => {
            if args.args.is_some() {
                bail!("this agent has the bytes form (act: [] -> [i32]): give --input, not --args");
            }
            let cap = guard.sandbox().policy().limits.input_bytes;
            Input::Bytes(match &args.input {
                Some(p) => read_input(p, cap)?,
                None => Vec::new(),
            })
        }
        ActForm::Typed { params, .. } => {
            if args.input.is_some() {
                bail!("this agent has the typed form: give --args, not --input");
            }
            let text = match (&args.args, params.is_empty()) {
                (Some(t), _) => t.as_str(),
                (None, true) => "",
                (None, false) => bail!(
                    "this agent's act takes {} argument(s): give --args",
                    params.len()
                ),
            };
            Input::Typed(parse_args(params, text)?)
        }
    };
    if !args.peers.is_empty() {
        let Input::Bytes(input) = input else {
            bail!("--peer needs a bytes-form agent: typed agents cannot exchange messages");
        };
        return run_group(
            &guard,
            &args,
            bytes,
            (agent, purges_seen),
            input,
            alerts.get(),
        );
    }
    // On a thread sized for the policy's Wasm stack, not the main thread's 8 MiB: a
    // deep recursion then ends `stack_overflow` whatever `limits.stack_bytes` allows.
    let run = guard.sandbox().on_agent_thread(RUN_THREAD, || {
        guard.run(&bytes, &agent, input, purges_seen, &origin)
    })??;
    alert_run(alerts.get(), &run, &origin, agent.id());
    if let Some(path) = &args.output_file {
        std::fs::write(path, &run.report.output)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let failed = run.report.outcome != runtime::Outcome::Ok
        || (args.fail_on_status
            && matches!(run.report.result, Some(RunResult::Status(s)) if s != 0));
    if args.json {
        print_json(&RunReport::new(&agent, &run))?;
    } else if args.raw {
        print_human(
            &mut std::io::stderr().lock(),
            &agent,
            &run,
            Shown::Elsewhere(None),
        )?;
        let mut out = std::io::stdout().lock();
        out.write_all(&run.report.output)
            .and_then(|()| out.flush())
            .context("cannot write the output to stdout")?;
    } else {
        let shown = match &args.output_file {
            Some(p) => Shown::Elsewhere(Some(p.as_path())),
            None => Shown::Screenful,
        };
        print_human(&mut std::io::stdout().lock(), &agent, &run, shown)?;
    }
    Ok(if failed { EXIT_TRAPPED } else { EXIT_OK })
}

/// Output lines and bytes text mode shows at most, unless `--output-file` or `--raw`.
const SCREEN_LINES: usize = 40;
const SCREEN_BYTES: usize = 4096;

/// Where a run's output goes in text mode.
enum Shown<'a> {
    /// A screenful of it in the report.
    Screenful,
    /// Written elsewhere: to this file, or to stdout by `--raw`.
    Elsewhere(Option<&'a Path>),
}

/// Reads `--input` (a file, or `-` for stdin) without ever holding more than
/// `limits.input_bytes` + 1 bytes: a regular file is refused by its size before it is
/// read, and any file or stream is read through `take(cap + 1)`, so a file that grows
/// or a device without a size cannot get past the cap either.
fn read_input(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let over = |what: &str| {
        anyhow::anyhow!(
            "input {what} is over `limits.input_bytes` = {cap} bytes (the policy's input cap)"
        )
    };
    let mut buf = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(cap.saturating_add(1))
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        if buf.len() as u64 > cap {
            return Err(over("from stdin"));
        }
        return Ok(buf);
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!("cannot read {}: it is a directory", path.display());
    }
    if meta.is_file() && meta.len() > cap {
        return Err(over(&format!("{} of {} bytes", path.display(), meta.len())));
    }
    file.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if buf.len() as u64 > cap {
        return Err(over(&path.display().to_string()));
    }
    Ok(buf)
}

fn stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "agent".into())
}

fn run_group(
    guard: &Guard,
    args: &Args,
    bytes: Vec<u8>,
    (agent, purges_seen): (Arc<Agent>, u64),
    input: Vec<u8>,
    alerts: Option<&engine::alerts::Alerts>,
) -> Result<u8> {
    let mut names = vec![stem(&args.module.file)];
    let mut members = vec![GroupMember {
        bytes,
        agent,
        name: String::new(),
        input,
        purges_seen,
        origin: Origin::file(&args.module.file),
    }];
    for path in &args.peers {
        let peer_bytes = read_module(path)?;
        let origin = Origin::file(path);
        let (peer, peer_purges) = match admit(guard, &peer_bytes, &origin, args.json, alerts)? {
            Ok(admitted) => admitted,
            Err(code) => return Ok(code),
        };
        if peer.form() != &ActForm::Bytes {
            bail!(
                "peer {} has the typed form: only bytes-form agents exchange messages",
                path.display()
            );
        }
        let mut name = stem(path);
        let base = name.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{base}-{k}");
            k += 1;
        }
        names.push(name);
        members.push(GroupMember {
            bytes: peer_bytes,
            agent: peer,
            name: String::new(),
            input: Vec::new(),
            purges_seen: peer_purges,
            origin,
        });
    }
    for (m, name) in members.iter_mut().zip(&names) {
        m.name = name.clone();
    }
    let agents: Vec<_> = members.iter().map(|m| m.agent.clone()).collect();
    let origins: Vec<Origin> = members.iter().map(|m| m.origin.clone()).collect();
    let (group, judged) = guard
        .sandbox()
        .on_agent_thread(RUN_THREAD, || guard.run_group(members))??;
    for ((j, o), a) in judged.iter().zip(&origins).zip(&agents) {
        alert_run(alerts, j, o, a.id());
    }
    if let Some(path) = &args.output_file {
        std::fs::write(path, &group.members[0].report.output)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let trapped = judged
        .iter()
        .any(|j| j.report.outcome != runtime::Outcome::Ok);
    if args.json {
        let mut members = group
            .members
            .iter()
            .zip(&judged)
            .zip(&agents)
            .map(|((m, j), a)| MemberReport {
                run: RunReport::new(a, j),
                name: m.name.clone(),
                calls: m.calls,
                messages_sent: m.messages_sent,
                messages_received: m.messages_received,
            });
        let main = members.next().context("a group run reported no members")?;
        print_json(&GroupReport {
            main,
            rounds: group.rounds,
            quiescent: group.quiescent,
            peers: members.collect(),
        })?;
    } else {
        println!(
            "group:      {} agents, {} rounds, {}",
            group.members.len(),
            group.rounds,
            if group.quiescent {
                "no mail left"
            } else {
                "stopped at limits.max_rounds"
            }
        );
        let mut out = std::io::stdout().lock();
        for ((m, j), a) in group.members.iter().zip(&judged).zip(&agents) {
            println!();
            println!(
                "[{}] calls {}, sent {}, received {}",
                runtime::escape(&m.name),
                m.calls,
                m.messages_sent,
                m.messages_received
            );
            print_human(&mut out, a, j, Shown::Screenful)?;
        }
    }
    Ok(if trapped { EXIT_TRAPPED } else { EXIT_OK })
}

fn print_human(
    out: &mut dyn std::io::Write,
    agent: &Agent,
    run: &engine::GuardedRun,
    shown: Shown<'_>,
) -> Result<()> {
    let r = &run.report;
    let mut text = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(text, "agent:      {}", agent.id());
    let _ = match &r.trap_message {
        Some(m) => writeln!(text, "outcome:    {} ({m})", r.outcome),
        None => writeln!(text, "outcome:    {}", r.outcome),
    };
    match r.result {
        Some(RunResult::Status(s)) => {
            let _ = writeln!(text, "status:     {s}");
        }
        Some(RunResult::Value(v)) => {
            let _ = writeln!(text, "result:     {}", engine::quarantine::value_text(v));
        }
        None => {}
    }
    let _ = writeln!(
        text,
        "fuel used:  {}   wall: {} us   score: {}",
        r.fuel_used,
        r.wall.as_micros(),
        run.safety_score
    );
    for line in &r.logs {
        let _ = writeln!(text, "log:        {line}");
    }
    if r.logs_dropped > 0 {
        let _ = writeln!(text, "log:        ({} more lines dropped)", r.logs_dropped);
    }
    if !r.output.is_empty() {
        match shown {
            Shown::Elsewhere(Some(path)) => {
                let _ = writeln!(
                    text,
                    "output:     {} bytes, written to {}",
                    r.output.len(),
                    path.display()
                );
            }
            Shown::Elsewhere(None) => {
                let _ = writeln!(text, "output:     {} bytes, on stdout", r.output.len());
            }
            Shown::Screenful => {
                let _ = writeln!(text, "output ({} bytes):", r.output.len());
                let mut end = r.output.len().min(SCREEN_BYTES);
                if let Some((i, _)) = r
                    .output
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .nth(SCREEN_LINES - 1)
                {
                    end = end.min(i);
                }
                let lines: Vec<String> = r.output[..end]
                    .split(|b| *b == b'\n')
                    .map(runtime::escape_bytes)
                    .collect();
                let _ = writeln!(text, "{}", lines.join("\n"));
                if end < r.output.len() {
                    let _ = writeln!(
                        text,
                        "… {} more bytes not shown: --output-file FILE or --raw for all of it",
                        r.output.len() - end
                    );
                }
            }
        }
    }
    if run.quarantined {
        let _ = writeln!(
            text,
            "quarantine: quarantined — see `tdev quarantine show {}`",
            agent.id()
        );
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write the report")
}
