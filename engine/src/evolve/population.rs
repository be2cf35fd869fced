//! Members of the population and how they compare.

use crate::id::AgentId;
use runtime::Outcome;
use std::sync::Arc;

/// The errors of a module that answered every case (or ran out of its budget on some).
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// The mean error over the cases.
    pub mean: f64,
    /// The error of each case, in the task's order (what lexicase selection reads).
    pub errors: Arc<[f64]>,
    /// Cases that ran out of the task's fuel budget (each scored the worst error).
    pub exhausted: u32,
}

impl Score {
    /// The score of per-case `errors`.
    pub fn of(errors: Vec<f64>, exhausted: u32) -> Score {
        let mean = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
        Score {
            mean,
            errors: errors.into(),
            exhausted,
        }
    }
}

/// How an evaluation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Eval {
    /// Ran every case (some perhaps out of their budget): the errors.
    Scored(Score),
    /// Trapped on a case: culled.
    Culled(Outcome),
    /// Not admitted by the policy: culled (and quarantined).
    Rejected,
}

/// One member of the population.
#[derive(Clone, Debug)]
pub struct Individual {
    /// The module.
    pub bytes: Arc<Vec<u8>>,
    /// Its agent id.
    pub id: AgentId,
    /// Its parents' ids.
    pub parents: Vec<AgentId>,
    /// Its evaluation.
    pub eval: Eval,
}

impl Individual {
    pub(super) fn train_error(&self) -> f64 {
        match &self.eval {
            Eval::Scored(s) => s.mean,
            _ => f64::INFINITY,
        }
    }

    /// The error of case `c` (infinite when the module was culled).
    pub(super) fn case_error(&self, c: usize) -> f64 {
        match &self.eval {
            Eval::Scored(s) => s.errors.get(c).copied().unwrap_or(f64::INFINITY),
            _ => f64::INFINITY,
        }
    }

    pub(super) fn fitness(&self, parsimony: f64) -> f64 {
        self.train_error() + parsimony * self.bytes.len() as f64
    }
}

/// How members rank, best first: lowest train error, then fitness (with parsimony `p`),
/// then id.
pub(super) fn rank(a: &Individual, b: &Individual, p: f64) -> std::cmp::Ordering {
    a.train_error()
        .total_cmp(&b.train_error())
        .then(a.fitness(p).total_cmp(&b.fitness(p)))
        .then(a.id.cmp(&b.id))
}

/// The best of `pop` by [`rank`].
pub(super) fn best_of(pop: &[Individual], p: f64) -> Option<&Individual> {
    pop.iter().min_by(|a, b| rank(a, b, p))
}
