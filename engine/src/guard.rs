//! The gate every untrusted module goes through: quarantine check, admission, run, and
//! quarantine of what falls below the policy's minimum safety score.

use crate::error::Result;
use crate::id::AgentId;
use crate::quarantine::{Origin, Quarantine, Record, RunInput, Sighting, Status, TrapEvent};
use runtime::{
    Admission, Agent, GroupReport, Input, Member, RunReport, Sandbox, Verdict, safety_score,
};
use std::sync::Arc;

/// The answer of [`Guard::admit`].
pub enum Gate {
    /// Admitted (or released by a person) and compiled.
    Admitted {
        /// The compiled agent.
        agent: Arc<Agent>,
        /// Whether a person released it from quarantine.
        released: bool,
        /// How often its record had been purged at this admission (0 without a
        /// record): give it to [`Guard::run`], so a trap of this run does not undo a
        /// purge made while it ran, and a trap of a run admitted after a purge
        /// quarantines the module again.
        purges_seen: u64,
    },
    /// Held in quarantine: it does not run until a person releases it.
    Held {
        /// Its static verdict under the current policy.
        verdict: Verdict,
        /// The quarantine record.
        record: Record,
    },
    /// Rejected by static validation (and quarantined).
    Rejected {
        /// The verdict.
        verdict: Verdict,
        /// The quarantine record.
        record: Record,
    },
}

/// A run through the gate.
pub struct GuardedRun {
    /// The run report.
    pub report: RunReport,
    /// The safety score after the run: the static score less the weight of a limit hit.
    pub safety_score: f64,
    /// Whether this run put (or kept) the module in quarantine.
    pub quarantined: bool,
}

/// A member of a guarded group run.
pub struct GroupMember {
    /// The module bytes (kept for the quarantine).
    pub bytes: Vec<u8>,
    /// The admitted agent.
    pub agent: Arc<Agent>,
    /// Its name in the group.
    pub name: String,
    /// Its input.
    pub input: Vec<u8>,
    /// `purges_seen` of its admission ([`Gate::Admitted`]).
    pub purges_seen: u64,
    /// Where it came from.
    pub origin: Origin,
}

/// Sandbox plus quarantine.
pub struct Guard {
    sandbox: Sandbox,
    quarantine: Quarantine,
}

impl Guard {
    /// A gate over a sandbox and a quarantine.
    pub fn new(sandbox: Sandbox, quarantine: Quarantine) -> Guard {
        Guard {
            sandbox,
            quarantine,
        }
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Decides whether a module may run; a rejected module's record says it came from
    /// `origin`.
    pub fn admit(&self, bytes: &[u8], origin: &Origin) -> Result<Gate> {
        let id = AgentId::of(bytes);
        let record = self.quarantine.get(&id)?;
        let released = matches!(&record, Some(r) if r.status == Status::Released);
        let purges_seen = record.as_ref().map_or(0, |r| r.purges);
        if let Some(r) = &record
            && r.status == Status::Quarantined
        {
            return Ok(Gate::Held {
                verdict: self.sandbox.validate(bytes),
                record: r.clone(),
            });
        }
        match self.sandbox.admit(bytes, released)? {
            Admission::Admitted(agent) => Ok(Gate::Admitted {
                agent,
                released,
                purges_seen,
            }),
            Admission::Rejected(verdict) => {
                let record = self.quarantine.quarantine(
                    &Sighting {
                        bytes,
                        verdict: &verdict,
                        safety_score: verdict.safety_score,
                        policy: self.sandbox.policy(),
                        parents: &[],
                        origin,
                    },
                    None,
                )?;
                Ok(Gate::Rejected { verdict, record })
            }
        }
    }

    /// Runs an admitted agent; a run that hits a limit and so brings the score below
    /// the minimum quarantines the module (a released module stays released, the trap
    /// goes into its history). `purges_seen` is that of the admission
    /// ([`Gate::Admitted`]); a trap's record says the run came from `origin`.
    pub fn run(
        &self,
        bytes: &[u8],
        agent: &Agent,
        input: Input,
        purges_seen: u64,
        origin: &Origin,
    ) -> Result<GuardedRun> {
        let seen = self.seen(&input);
        let report = self.sandbox.run(agent, input)?;
        self.judge(bytes, agent, report, purges_seen, seen, origin)
    }

    /// What a record keeps of an input, and its length (0 for typed arguments).
    fn seen(&self, input: &Input) -> (RunInput, u64) {
        let keep = self.sandbox.policy().quarantine.keep_input_bytes;
        let len = match input {
            Input::Bytes(b) => b.len() as u64,
            Input::Typed(_) => 0,
        };
        (RunInput::of(input, keep), len)
    }

    /// Runs admitted bytes-form agents as a group that talks through `send`/`recv`;
    /// every member is judged as [`Guard::run`] judges a single run.
    pub fn run_group(&self, members: Vec<GroupMember>) -> Result<(GroupReport, Vec<GuardedRun>)> {
        let bytes: Vec<Vec<u8>> = members.iter().map(|m| m.bytes.clone()).collect();
        let seen: Vec<u64> = members.iter().map(|m| m.purges_seen).collect();
        let agents: Vec<Arc<Agent>> = members.iter().map(|m| m.agent.clone()).collect();
        let inputs: Vec<(RunInput, u64)> = members
            .iter()
            .map(|m| self.seen(&Input::Bytes(m.input.clone())))
            .collect();
        let origins: Vec<Origin> = members.iter().map(|m| m.origin.clone()).collect();
        let group = self.sandbox.run_group(
            members
                .into_iter()
                .map(|m| Member {
                    name: m.name,
                    agent: m.agent,
                    input: m.input,
                })
                .collect(),
        )?;
        let mut judged = Vec::with_capacity(group.members.len());
        for (((((b, agent), m), seen), input), origin) in bytes
            .iter()
            .zip(&agents)
            .zip(&group.members)
            .zip(seen)
            .zip(inputs)
            .zip(&origins)
        {
            judged.push(self.judge(b, agent, m.report.clone(), seen, input, origin)?);
        }
        Ok((group, judged))
    }

    /// Scores a finished run and quarantines the module when a limit hit brings its
    /// score below the minimum and the policy's `[quarantine]` rules let that hit
    /// quarantine (given the run's input size).
    fn judge(
        &self,
        bytes: &[u8],
        agent: &Agent,
        report: RunReport,
        purges_seen: u64,
        (input, input_bytes): (RunInput, u64),
        origin: &Origin,
    ) -> Result<GuardedRun> {
        let policy = self.sandbox.policy();
        let verdict = agent.verdict();
        let trap_weight = policy.trap_weights.for_outcome(report.outcome);
        let score = safety_score(
            verdict
                .findings
                .iter()
                .map(|f| f.weight)
                .chain(std::iter::once(trap_weight)),
        );
        let mut quarantined = false;
        if report.outcome.is_limit()
            && score < policy.min_safety_score
            && policy.quarantine.may_quarantine(
                report.outcome,
                input_bytes,
                policy.limits.output_bytes,
            )
        {
            let trap = TrapEvent::new(
                report.outcome,
                report.trap_message.clone().unwrap_or_default(),
                report.fuel_used,
                report.wall.as_micros() as u64,
            )
            .with_input(input)
            .with_logs(
                &report.logs,
                report.logs_dropped,
                policy.quarantine.keep_log_bytes,
            )
            .with_origin(origin);
            let rec = self.quarantine.record_trap(
                &Sighting {
                    bytes,
                    verdict,
                    safety_score: score,
                    policy,
                    parents: &[],
                    origin,
                },
                trap,
                purges_seen,
            )?;
            quarantined = rec.status == Status::Quarantined;
        }
        Ok(GuardedRun {
            report,
            safety_score: score,
            quarantined,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::{Outcome, Policy};

    fn gate(policy: Policy) -> (Guard, Quarantine, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open(&format!("file://{}", dir.path().display())).expect("store");
        let q = Quarantine::new(store);
        let guard = Guard::new(Sandbox::new(policy).expect("sandbox"), q.clone());
        (guard, q, dir)
    }

    fn looping() -> Vec<u8> {
        wat::parse_str(
            r#"(module (func (export "act") (result i32) (loop $l (br $l)) i32.const 0))"#,
        )
        .expect("wat")
    }

    fn small_fuel() -> Policy {
        let mut p = Policy::default_policy();
        p.limits.fuel_per_call = 10_000;
        p
    }

    fn admitted(guard: &Guard, bytes: &[u8]) -> (Arc<Agent>, u64, bool) {
        match guard.admit(bytes, &Origin::default()).expect("admit") {
            Gate::Admitted {
                agent,
                purges_seen,
                released,
            } => (agent, purges_seen, released),
            _ => panic!("not admitted"),
        }
    }

    #[test]
    fn a_limit_hit_above_the_minimum_does_not_quarantine() {
        let mut p = small_fuel();
        p.min_safety_score = 0.0;
        let (guard, q, _dir) = gate(p);
        let wasm = looping();
        let (agent, seen, _) = admitted(&guard, &wasm);
        let run = guard
            .run(
                &wasm,
                &agent,
                Input::Bytes(vec![]),
                seen,
                &Origin::default(),
            )
            .expect("run");
        assert_eq!(run.report.outcome, Outcome::OutOfFuel);
        assert!(run.safety_score < 1.0);
        assert!(!run.quarantined);
        assert!(q.get(&AgentId::of(&wasm)).expect("get").is_none());
    }

    /// Writes 70,000 bytes of output: over the default 64 KiB cap.
    const FLOOD: &str = r#"(module
      (import "agent" "write_output" (func $w (param i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "act") (result i32)
        (drop (call $w (i32.const 0) (i32.const 70000)))
        i32.const 0))"#;

    /// (outcome, quarantined) of one run of `wasm` on `input` under `policy`, on a
    /// fresh store.
    fn judged(policy: Policy, wasm: &[u8], input: usize) -> (Outcome, bool) {
        let (guard, q, _dir) = gate(policy);
        let (agent, seen, _) = admitted(&guard, wasm);
        let run = guard
            .run(
                wasm,
                &agent,
                Input::Bytes(vec![b'x'; input]),
                seen,
                &Origin::default(),
            )
            .expect("run");
        let held = q.get(&AgentId::of(wasm)).expect("get").is_some();
        assert_eq!(run.quarantined, held);
        (run.report.outcome, run.quarantined)
    }

    #[test]
    fn the_policy_says_which_limit_hits_quarantine() {
        let flood = wat::parse_str(FLOOD).expect("wat");
        let cap = Policy::default_policy().limits.output_bytes as usize;
        // an output flood on a small input: the agent's doing
        assert_eq!(
            judged(Policy::default_policy(), &flood, 10),
            (Outcome::OutputLimit, true)
        );
        // on an input as large as the output cap: the caller's, an outcome
        assert_eq!(
            judged(Policy::default_policy(), &flood, cap),
            (Outcome::OutputLimit, false)
        );
        // unless the policy says otherwise
        let strict = Policy::from_toml("[quarantine]\noutput_limit_from_large_input = true\n")
            .expect("policy");
        assert_eq!(judged(strict, &flood, cap), (Outcome::OutputLimit, true));
        // a limit the policy lets through is an outcome, whatever the score
        let mut lenient = Policy::from_toml("[quarantine]\nout_of_fuel = false\n").expect("policy");
        lenient.limits.fuel_per_call = 10_000;
        assert_eq!(judged(lenient, &looping(), 0), (Outcome::OutOfFuel, false));
        assert_eq!(
            judged(small_fuel(), &looping(), 0),
            (Outcome::OutOfFuel, true)
        );
        // an unknown rule is named
        let e = Policy::from_toml("[quarantine]\nnever = true\n").expect_err("unknown");
        assert!(e.to_string().contains("quarantine.never"), "{e}");
    }

    #[test]
    fn a_trap_that_is_not_a_limit_does_not_quarantine() {
        let (guard, q, _dir) = gate(Policy::default_policy());
        let wasm = wat::parse_str(r#"(module (func (export "act") (result i32) unreachable))"#)
            .expect("wat");
        let (agent, seen, _) = admitted(&guard, &wasm);
        let run = guard
            .run(
                &wasm,
                &agent,
                Input::Bytes(vec![]),
                seen,
                &Origin::default(),
            )
            .expect("run");
        assert_eq!(run.report.outcome, Outcome::Unreachable);
        assert!(!run.quarantined);
        assert!(q.get(&AgentId::of(&wasm)).expect("get").is_none());
    }

    #[test]
    fn held_until_released_and_a_released_module_stays_released() {
        let (guard, q, _dir) = gate(small_fuel());
        let wasm = looping();
        let id = AgentId::of(&wasm);
        let (agent, seen, released) = admitted(&guard, &wasm);
        assert!(!released);
        let run = guard
            .run(
                &wasm,
                &agent,
                Input::Bytes(vec![]),
                seen,
                &Origin::default(),
            )
            .expect("run");
        assert!(run.quarantined, "out of fuel under the minimum");
        let Gate::Held { record, .. } = guard.admit(&wasm, &Origin::default()).expect("admit")
        else {
            panic!("held");
        };
        assert_eq!(record.status, Status::Quarantined);
        q.release(
            &id,
            &crate::Decision {
                by: "op".into(),
                ..Default::default()
            },
        )
        .expect("release");
        let (agent, seen, released) = admitted(&guard, &wasm);
        assert!(released);
        let run = guard
            .run(
                &wasm,
                &agent,
                Input::Bytes(vec![]),
                seen,
                &Origin::default(),
            )
            .expect("run");
        assert!(!run.quarantined, "the release stands");
        let rec = q.require(&id).expect("record");
        assert_eq!(rec.status, Status::Released);
        assert_eq!(rec.traps_total(), 2, "both traps recorded");
    }

    #[test]
    fn a_group_member_is_judged_like_a_single_run() {
        let (guard, q, _dir) = gate(small_fuel());
        let wasm = looping();
        let (agent, seen, _) = admitted(&guard, &wasm);
        let ok = wat::parse_str(r#"(module (func (export "act") (result i32) i32.const 0))"#)
            .expect("wat");
        let (ok_agent, ok_seen, _) = admitted(&guard, &ok);
        let member = |bytes: &[u8], agent: &Arc<Agent>, name: &str, seen| GroupMember {
            bytes: bytes.to_vec(),
            agent: agent.clone(),
            name: name.into(),
            input: vec![],
            purges_seen: seen,
            origin: Origin::file(std::path::Path::new(&format!("dir/{name}.wasm"))),
        };
        let (_, judged) = guard
            .run_group(vec![
                member(&wasm, &agent, "loop", seen),
                member(&ok, &ok_agent, "ok", ok_seen),
            ])
            .expect("group");
        assert_eq!(judged.len(), 2);
        assert!(judged[0].quarantined);
        assert!(!judged[1].quarantined);
        assert!(q.get(&AgentId::of(&ok)).expect("get").is_none());
        let rec = q.require(&AgentId::of(&wasm)).expect("record");
        let origin = rec.origin.expect("origin");
        assert_eq!(
            (origin.source.as_str(), origin.name.as_str()),
            ("file", "loop")
        );
        assert_eq!(origin.file.as_deref(), Some("dir/loop.wasm"));
    }

    #[test]
    fn a_trap_record_keeps_the_input_logs_origin_and_a_remedy_as_the_policy_says() {
        let policy = Policy::from_toml(
            "[limits]\nfuel_per_call = 100000\n[quarantine]\nkeep_input_bytes = 4\nkeep_log_bytes = 10\n",
        )
        .expect("policy");
        let (guard, q, _dir) = gate(policy);
        // Logs three 6-byte lines, then loops forever.
        let wasm = wat::parse_str(
            r#"(module (import "agent" "log" (func $log (param i32 i32)))
                (memory (export "memory") 1) (data (i32.const 0) "line-x")
                (func (export "act") (result i32)
                  (call $log (i32.const 0) (i32.const 6))
                  (call $log (i32.const 0) (i32.const 6))
                  (call $log (i32.const 0) (i32.const 6))
                  (loop $l (br $l)) i32.const 0))"#,
        )
        .expect("wat");
        let (agent, seen, _) = admitted(&guard, &wasm);
        let origin = Origin::api("ops-token", Some("nightly\u{1b}[31m"));
        let run = guard
            .run(
                &wasm,
                &agent,
                Input::Bytes(b"abcdefgh".to_vec()),
                seen,
                &origin,
            )
            .expect("run");
        assert_eq!(run.report.outcome, Outcome::OutOfFuel);
        assert!(run.quarantined);
        let rec = q.require(&AgentId::of(&wasm)).expect("record");
        assert_eq!(rec.origin.as_ref(), Some(&origin));
        // the name the caller gave, escaped
        assert_eq!(origin.name, "nightly\\u{1b}[31m");
        let t = rec.trap_history.last().expect("a trap");
        let input = t.input.as_ref().expect("input");
        assert_eq!(input.hex.as_deref(), Some("61626364"), "4 bytes kept");
        assert_eq!(input.len, Some(8));
        assert_eq!(
            t.logs,
            vec!["line-x".to_string()],
            "whole lines within 10 bytes"
        );
        assert_eq!(t.logs_dropped, 2);
        assert_eq!(t.origin.as_ref(), Some(&origin));
        assert!(
            t.remedy
                .as_deref()
                .is_some_and(|r| r.contains("fuel_per_call")),
            "{t:?}"
        );
        // typed arguments are kept as --args takes them
        let typed = wat::parse_str(
            r#"(module (func (export "act") (param i64 f64) (result i64) (loop $l (br $l)) i64.const 0))"#,
        )
        .expect("wat");
        let (agent, seen, _) = admitted(&guard, &typed);
        let args = vec![
            runtime::Value::I64(-3),
            runtime::Value::F64(2.5f64.to_bits()),
        ];
        guard
            .run(&typed, &agent, Input::Typed(args), seen, &Origin::default())
            .expect("run");
        let rec = q.require(&AgentId::of(&typed)).expect("record");
        let input = rec.trap_history[0].input.clone().expect("input");
        assert_eq!(input.args, Some(vec!["-3".to_string(), "2.5".to_string()]));
        assert_eq!(input.hex, None);
    }
}
