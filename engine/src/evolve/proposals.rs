//! Proposals in an evolution: a proposer ([`crate::propose`]) is asked on a thread of
//! its own, and what it answered in time takes the place of some bred offspring — at
//! most `share` of each generation's, each candidate admitted like any module first.
//!
//! Asynchronous by default: the request for generation N is sent when generation N − 2
//! is committed and its answer used when N is bred, if it has arrived (else it is late,
//! counted, and dropped): a generation never waits. With `sync`, the request for N is
//! sent after N − 1 and waited for (at most the proposer's timeout): a deterministic
//! proposer then gives the same run for the same seed.
//!
//! Every answer taken is stored (`proposals/<id>/<gen>.json`) before it is used: a
//! resumed run uses what was received instead of asking again.

use super::Evolution;
use super::population::Eval;
use crate::error::{Result, from_json, to_json};
use crate::id::AgentId;
use crate::propose::{Candidate, CaseView, EliteView, Proposer, Request, TaskView, origin_of};
use crate::quarantine::{Origin, Sighting};
use crate::store::Bucket;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How an evolution uses a proposer.
pub struct ProposerSetup {
    /// The proposer.
    pub proposer: Arc<dyn Proposer>,
    /// The most of each generation's offspring taken from proposals (0 to 1).
    pub share: f64,
    /// Wait for each generation's answer (bounded by the proposer's timeout) instead of
    /// using it two generations on if it came in time.
    pub sync: bool,
}

/// What became of proposals: in a generation's statistics (that generation's), and in
/// the checkpoint (all so far).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalStats {
    /// Requests sent.
    pub requested: u64,
    /// Requests that failed (an error, a timeout, an answer that is not one).
    pub failed: u64,
    /// Answers that came too late for their generation, or requests not sent because
    /// the proposer was still busy.
    pub late: u64,
    /// Candidates read.
    pub candidates: u64,
    /// Candidates refused: not a module, over the size cap, rejected by validation
    /// (and quarantined) or of the wrong signature.
    pub rejected: u64,
    /// Candidates that took an offspring's place.
    pub used: u64,
}

impl ProposalStats {
    fn add(&mut self, o: &ProposalStats) {
        self.requested += o.requested;
        self.failed += o.failed;
        self.late += o.late;
        self.candidates += o.candidates;
        self.rejected += o.rejected;
        self.used += o.used;
    }
}

/// An answer as stored with the generation it was used for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProposalRecord {
    /// The generation whose breeding took it.
    pub generation: u32,
    /// `proposer:<kind>:<name>`.
    pub origin: String,
    /// The candidates, as answered (no more than the policy lets be read).
    pub candidates: Vec<Candidate>,
    /// Why the request failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The key of generation `g`'s proposals.
pub fn proposals_key(id: &str, g: u32) -> String {
    format!("proposals/{id}/{g:06}.json")
}

type Answers = Arc<Mutex<BTreeMap<u32, std::result::Result<Vec<Candidate>, String>>>>;

/// The proposals of a running evolution.
pub(super) struct Proposals {
    proposer: Arc<dyn Proposer>,
    origin: String,
    share: f64,
    sync: bool,
    timeout: Duration,
    tx: SyncSender<Request>,
    answers: Answers,
    requested: BTreeSet<u32>,
    /// This generation's counts, and all so far.
    pub(super) now: ProposalStats,
    pub(super) total: ProposalStats,
    /// Ids of the members that came from a proposer, with its origin word.
    pub(super) marks: BTreeMap<AgentId, String>,
}

impl Proposals {
    pub(super) fn start(setup: ProposerSetup, timeout: Duration) -> Result<Proposals> {
        let (tx, rx) = sync_channel::<Request>(1);
        let answers: Answers = Arc::default();
        let (p, out) = (setup.proposer.clone(), answers.clone());
        std::thread::Builder::new()
            .name("tdev-proposer".into())
            .spawn(move || {
                for req in rx {
                    let answer = p.propose(&req).map_err(|e| e.to_string());
                    // A poisoned lock holds plain answers: still sound.
                    out.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(req.generation, answer);
                }
            })
            .map_err(|source| crate::error::ErrorKind::ThreadStart {
                thread: "tdev-proposer".into(),
                source,
            })?;
        Ok(Proposals {
            origin: origin_of(setup.proposer.as_ref()),
            proposer: setup.proposer,
            share: setup.share.clamp(0.0, 1.0),
            sync: setup.sync,
            timeout,
            tx,
            answers,
            requested: BTreeSet::new(),
            now: ProposalStats::default(),
            total: ProposalStats::default(),
            marks: BTreeMap::new(),
        })
    }

    /// Whether each generation waits for its answer.
    pub(super) fn sync(&self) -> bool {
        self.sync
    }

    fn answer(&self, g: u32) -> Option<std::result::Result<Vec<Candidate>, String>> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&g)
    }
}

impl Drop for Proposals {
    /// The evolution is done with its proposer: a request still being answered is given
    /// up (a command's process group killed).
    fn drop(&mut self) {
        self.proposer.cancel();
    }
}

impl Evolution {
    /// Takes candidates from `setup` from the next generation on.
    pub fn set_proposer(&mut self, setup: ProposerSetup) -> Result<()> {
        let timeout = Duration::from_millis(self.sandbox.policy().proposer.timeout_ms);
        let mut p = Proposals::start(setup, timeout)?;
        p.total = self.proposal_total;
        p.marks = std::mem::take(&mut self.proposal_marks);
        self.proposals = Some(p);
        Ok(())
    }

    /// The request for generation `g`: the task, a sample of its training cases and
    /// the elite, as the policy's `[proposer]` section bounds them.
    fn proposal_request(&self, g: u32) -> Request {
        let limits = &self.sandbox.policy().proposer;
        let n = self.task.cases.len();
        let take = usize::try_from(limits.sample_cases)
            .unwrap_or(usize::MAX)
            .min(n);
        // Evenly spread over the cases, the same every time.
        let picked: Vec<usize> = (0..take).map(|i| i * n / take.max(1)).collect();
        let value = |v: runtime::Value| match v {
            runtime::Value::I64(i) => serde_json::json!(i),
            runtime::Value::F64(b) => {
                let f = f64::from_bits(b);
                serde_json::Number::from_f64(f).map_or_else(
                    || {
                        serde_json::json!(if f.is_nan() {
                            "nan"
                        } else if f > 0.0 {
                            "inf"
                        } else {
                            "-inf"
                        })
                    },
                    serde_json::Value::Number,
                )
            }
        };
        let cases = picked
            .iter()
            .map(|&i| CaseView {
                args: self.task.cases[i].args.iter().map(|a| value(*a)).collect(),
                expect: value(self.task.cases[i].expect),
            })
            .collect();
        let p = self.config.parsimony;
        let mut order: Vec<usize> = (0..self.population.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.population[a], &self.population[b]);
            x.fitness(p).total_cmp(&y.fitness(p)).then(x.id.cmp(&y.id))
        });
        let finite = |x: f64| x.is_finite().then_some(x);
        let cap = usize::try_from(limits.elite_text_bytes).unwrap_or(usize::MAX);
        let elite = order
            .iter()
            .take(usize::try_from(limits.elite).unwrap_or(usize::MAX))
            .map(|&i| {
                let ind = &self.population[i];
                let mut wat =
                    runtime::text_form(self.sandbox.policy(), &ind.bytes).unwrap_or_default();
                if wat.len() > cap {
                    let mut cut = cap;
                    while !wat.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    wat.truncate(cut);
                }
                let case_errors = match &ind.eval {
                    Eval::Scored(s) => picked
                        .iter()
                        .map(|&c| s.errors.get(c).copied().and_then(finite))
                        .collect(),
                    _ => vec![None; picked.len()],
                };
                EliteView {
                    agent_id: ind.id.to_string(),
                    wat,
                    size_bytes: ind.bytes.len(),
                    train_error: finite(ind.train_error()),
                    case_errors,
                }
            })
            .collect();
        Request {
            protocol: crate::propose::PROTOCOL,
            evolution_id: self.id.clone(),
            generation: g,
            task: TaskView {
                name: self.task.name.clone(),
                params: self.task.params.iter().map(|t| t.to_string()).collect(),
                result: self.task.result.to_string(),
                error: serde_json::to_value(self.task.metric)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                cases,
            },
            elite,
            budget: u32::try_from(limits.candidates).unwrap_or(u32::MAX),
        }
    }

    /// Sends the request for generation `g`, unless it was sent, or its answer is
    /// stored, or the proposer is still busy (then it is counted late).
    pub(super) fn ask_proposer(&mut self, g: u32) -> Result<()> {
        let stored = self
            .store
            .get(Bucket::Evolution, &proposals_key(&self.id, g))?
            .is_some();
        let Some(p) = &self.proposals else {
            return Ok(());
        };
        if stored || p.requested.contains(&g) {
            return Ok(());
        }
        let request = self.proposal_request(g);
        let Some(p) = &mut self.proposals else {
            return Ok(());
        };
        match p.tx.try_send(request) {
            Ok(()) => {
                p.requested.insert(g);
                p.now.requested += 1;
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => p.now.late += 1,
        }
        Ok(())
    }

    /// The admitted candidates for generation `g` (its breeding): the stored answer if
    /// there is one, else the proposer's (waited for in sync mode), stored first.
    pub(super) fn proposals_for(&mut self, g: u32) -> Result<Vec<Vec<u8>>> {
        let Some(p) = &self.proposals else {
            return Ok(Vec::new());
        };
        let key = proposals_key(&self.id, g);
        let record = match self.store.get(Bucket::Evolution, &key)? {
            Some(bytes) => from_json::<ProposalRecord>(&key, &bytes)?,
            None => {
                let answer = if p.sync && p.requested.contains(&g) {
                    let until = Instant::now() + p.timeout + Duration::from_secs(1);
                    loop {
                        if let Some(a) = p.answer(g) {
                            break Some(a);
                        }
                        if Instant::now() >= until {
                            break None;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                } else {
                    p.answer(g)
                };
                let origin = p.origin.clone();
                let was_asked = p.requested.contains(&g);
                let Some(p) = &mut self.proposals else {
                    return Ok(Vec::new());
                };
                let Some(answer) = answer else {
                    if was_asked {
                        p.now.late += 1;
                    }
                    return Ok(Vec::new());
                };
                let record = match answer {
                    Ok(candidates) => ProposalRecord {
                        generation: g,
                        origin,
                        candidates,
                        error: None,
                    },
                    Err(e) => ProposalRecord {
                        generation: g,
                        origin,
                        candidates: Vec::new(),
                        error: Some(e),
                    },
                };
                self.store
                    .put(Bucket::Evolution, &key, &to_json("the proposals", &record)?)?;
                record
            }
        };
        let Some(p) = &mut self.proposals else {
            return Ok(Vec::new());
        };
        if record.error.is_some() {
            p.now.failed += 1;
        }
        p.now.candidates += record.candidates.len() as u64;
        let origin = Origin::proposer(&record.origin, &self.id, g);
        let mut admitted = Vec::new();
        for c in &record.candidates {
            match self.admit_candidate(c, &origin)? {
                Some(bytes) => admitted.push(bytes),
                None => {
                    if let Some(p) = &mut self.proposals {
                        p.now.rejected += 1;
                    }
                }
            }
        }
        Ok(admitted)
    }

    /// A candidate admitted like any module: its bytes, or None when it is not a
    /// module, is rejected by validation (and quarantined, with its origin) or does not
    /// have the task's signature.
    fn admit_candidate(&self, c: &Candidate, origin: &Origin) -> Result<Option<Vec<u8>>> {
        let Ok(bytes) = c.bytes() else {
            return Ok(None);
        };
        let v = self.sandbox.validate(&bytes);
        if !v.admitted {
            self.quarantine.quarantine(
                &Sighting {
                    bytes: &bytes,
                    verdict: &v,
                    safety_score: v.safety_score,
                    policy: self.sandbox.policy(),
                    parents: &[],
                    origin,
                },
                None,
            )?;
            return Ok(None);
        }
        let typed = matches!(
            &v.form,
            Some(runtime::ActForm::Typed { params, result })
                if *params == self.task.params && *result == self.task.result
        );
        Ok(typed.then_some(bytes))
    }

    /// Puts admitted candidates in the place of the last bred offspring: at most the
    /// share of the offspring past the elites. Their ids are marked as proposed.
    pub(super) fn splice_proposals(
        &mut self,
        offspring: &mut [(Vec<u8>, Vec<AgentId>)],
        elites: usize,
        candidates: Vec<Vec<u8>>,
    ) {
        let Some(p) = &mut self.proposals else {
            return;
        };
        let room = ((offspring.len().saturating_sub(elites)) as f64 * p.share).floor() as usize;
        let mut slot = offspring.len();
        for bytes in candidates.into_iter().take(room) {
            slot -= 1;
            p.marks.insert(AgentId::of(&bytes), p.origin.clone());
            offspring[slot] = (bytes, Vec::new());
            if let Some(g) = self.bred.get_mut(slot) {
                *g = None;
            }
            p.now.used += 1;
        }
    }

    /// This generation's proposal counts, added to the totals; zeroed for the next.
    pub(super) fn close_proposal_stats(&mut self) -> Option<ProposalStats> {
        let p = self.proposals.as_mut()?;
        let now = std::mem::take(&mut p.now);
        p.total.add(&now);
        self.proposal_total = p.total;
        Some(now)
    }

    /// The origin word of a member that came from a proposer.
    pub(super) fn proposed_by(&self, id: &AgentId) -> Option<String> {
        match &self.proposals {
            Some(p) => p.marks.get(id).cloned(),
            None => self.proposal_marks.get(id).cloned(),
        }
    }
}
