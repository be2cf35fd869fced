//! Selection of parents: tournament, lexicase, epsilon-lexicase and down-sampled
//! lexicase.
//!
//! Lexicase selection (Helmuth & Spector) picks each parent by filtering the population
//! through the training cases in a random order, keeping at each case only those with
//! the best error on it; epsilon-lexicase (La Cava et al.) keeps those within ε of the
//! best, ε being the median absolute deviation of the population's errors on that case;
//! down-sampled lexicase (Hernandez et al.; Helmuth & Kelly) filters through a random
//! subset of the cases drawn anew each generation. Every draw comes from the run's
//! seeded generator, so a run is reproducible.

use super::Evolution;
use super::population::Individual;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How parents are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// A tournament of `tournament` individuals on fitness (error plus parsimony).
    #[default]
    Tournament,
    /// Lexicase on the exact per-case errors.
    Lexicase,
    /// Lexicase keeping those within the median absolute deviation of each case's best.
    EpsilonLexicase,
    /// Lexicase over a random share (`downsample`) of the cases, drawn per generation.
    DownsampledLexicase,
}

impl Selection {
    /// Every scheme, by its name.
    pub const ALL: [Selection; 4] = [
        Selection::Tournament,
        Selection::Lexicase,
        Selection::EpsilonLexicase,
        Selection::DownsampledLexicase,
    ];

    /// Its name on the command line and in stored configurations.
    pub fn as_str(self) -> &'static str {
        match self {
            Selection::Tournament => "tournament",
            Selection::Lexicase => "lexicase",
            Selection::EpsilonLexicase => "epsilon-lexicase",
            Selection::DownsampledLexicase => "downsampled-lexicase",
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Selection {
    type Err = String;

    fn from_str(s: &str) -> Result<Selection, String> {
        Selection::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown selection {s:?}: one of tournament, lexicase, epsilon-lexicase, \
                     downsampled-lexicase"
                )
            })
    }
}

/// What a generation's lexicase selections share: the cases to filter through, for
/// epsilon-lexicase each case's ε, the population's errors on them and buffers reused
/// by every selection (a selection allocated three vectors and matched every error
/// out of its individual before: 13% of a lexicase run's main thread, `perf`).
#[derive(Clone, Debug, Default)]
pub(super) struct Lexicase {
    cases: Vec<usize>,
    epsilon: Vec<f64>,
    /// `errors[i * cases.len() + k]`: individual i's error on `cases[k]`.
    errors: Vec<f64>,
    order: Vec<usize>,
    left: Vec<usize>,
    next: Vec<usize>,
}

impl Lexicase {
    fn new(pop: &[Individual], cases: Vec<usize>, epsilon: Vec<f64>) -> Lexicase {
        let errors = pop
            .iter()
            .flat_map(|ind| cases.iter().map(|&c| ind.case_error(c)))
            .collect();
        Lexicase {
            cases,
            epsilon,
            errors,
            ..Lexicase::default()
        }
    }
}

/// The median of `v` (sorted in place); 0 for none.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

impl Evolution {
    /// A tournament of `config.tournament` individuals: the index of the fittest.
    pub(super) fn tournament(&mut self) -> usize {
        let p = self.config.parsimony;
        let mut best = self.rng.below(self.population.len());
        for _ in 1..self.config.tournament {
            let c = self.rng.below(self.population.len());
            let (a, b) = (&self.population[c], &self.population[best]);
            if a.fitness(p)
                .total_cmp(&b.fitness(p))
                .then(a.bytes.len().cmp(&b.bytes.len()))
                .then(a.id.cmp(&b.id))
                .is_lt()
            {
                best = c;
            }
        }
        best
    }

    /// Prepares a generation's selections: for the lexicase schemes the cases (all, or
    /// the generation's down-sample) and the ε of each.
    pub(super) fn prepare_selection(&mut self) {
        let n = self.task.cases.len();
        let cases: Vec<usize> = match self.config.selection {
            Selection::Tournament => Vec::new(),
            Selection::Lexicase | Selection::EpsilonLexicase => (0..n).collect(),
            Selection::DownsampledLexicase => {
                let k = ((n as f64 * self.config.downsample).ceil() as usize).clamp(1, n);
                let mut all: Vec<usize> = (0..n).collect();
                // a partial Fisher–Yates shuffle: the first k are the sample
                for i in 0..k {
                    let j = i + self.rng.below(n - i);
                    all.swap(i, j);
                }
                all.truncate(k);
                all.sort_unstable();
                all
            }
        };
        let epsilon = if self.config.selection == Selection::EpsilonLexicase {
            cases
                .iter()
                .map(|&c| {
                    let mut errs: Vec<f64> = self
                        .population
                        .iter()
                        .map(|i| i.case_error(c))
                        .filter(|e| e.is_finite())
                        .collect();
                    let med = median(&mut errs);
                    let mut dev: Vec<f64> = errs.iter().map(|e| (e - med).abs()).collect();
                    median(&mut dev)
                })
                .collect()
        } else {
            Vec::new()
        };
        self.lexicase = Lexicase::new(&self.population, cases, epsilon);
    }

    /// One parent, by the run's selection scheme: an index into the population.
    pub(super) fn select(&mut self) -> usize {
        if self.config.selection == Selection::Tournament || self.lexicase.cases.is_empty() {
            return self.tournament();
        }
        lexicase(
            self.population.len(),
            &mut self.lexicase,
            self.config.selection == Selection::EpsilonLexicase,
            &mut self.rng,
        )
    }
}

/// One lexicase selection: filters the population through the prepared cases in a
/// random order; a random one of those left.
fn lexicase(n: usize, lx: &mut Lexicase, epsilon: bool, rng: &mut crate::rng::Rng) -> usize {
    let m = lx.cases.len();
    let Lexicase {
        epsilon: eps,
        errors,
        order,
        left,
        next,
        ..
    } = lx;
    order.clear();
    order.extend(0..m);
    left.clear();
    left.extend(0..n);
    let mut k = 0;
    while left.len() > 1 && k < m {
        // draw the next case of a random order (a Fisher–Yates step)
        let j = k + rng.below(m - k);
        order.swap(k, j);
        let slot = order[k];
        k += 1;
        let error = |i: usize| errors.get(i * m + slot).copied().unwrap_or(f64::INFINITY);
        let best = left.iter().map(|&i| error(i)).fold(f64::INFINITY, f64::min);
        let bar = if epsilon { best + eps[slot] } else { best };
        next.clear();
        next.extend(left.iter().copied().filter(|&i| error(i) <= bar));
        if !next.is_empty() {
            std::mem::swap(left, next);
        }
    }
    left[rng.below(left.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Selection::ALL {
            assert_eq!(s.as_str().parse::<Selection>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).expect("json"),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("roulette".parse::<Selection>().is_err());
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}

#[cfg(test)]
mod lexicase_tests {
    use super::*;
    use crate::evolve::population::{Eval, Score};
    use crate::id::AgentId;
    use crate::rng::Rng;
    use std::sync::Arc;

    fn ind(n: u8, errors: Vec<f64>) -> Individual {
        Individual {
            bytes: Arc::new(vec![n]),
            id: AgentId::of(&[n]),
            parents: Vec::new(),
            eval: Eval::Scored(Score::of(errors, 0)),
        }
    }

    /// A specialist (exact on one case, far off on the rest) is chosen whenever that
    /// case comes first; a generalist with a better mean would win every tournament.
    #[test]
    fn lexicase_keeps_specialists_that_tournaments_lose() {
        let pop = vec![
            ind(0, vec![0.0, 100.0, 100.0, 100.0]),
            ind(1, vec![1.0, 0.0, 1.0, 1.0]),
            ind(2, vec![1.0, 1.0, 0.0, 0.0]),
        ];
        let mut lx = Lexicase::new(&pop, vec![0, 1, 2, 3], Vec::new());
        let mut rng = Rng::new(4);
        let mut picks = [0u32; 3];
        for _ in 0..400 {
            picks[lexicase(pop.len(), &mut lx, false, &mut rng)] += 1;
        }
        // each case first a quarter of the time: 0 → the specialist, 1 → #1, 2 or 3 → #2
        assert!(picks.iter().all(|&n| n > 50), "{picks:?}");
        assert!(picks[2] > picks[1], "{picks:?}");
        // with ε wide enough to cover everyone on every case, any of them
        let mut wide = Lexicase::new(&pop, vec![0, 1, 2, 3], vec![1000.0; 4]);
        let mut seen = [false; 3];
        for _ in 0..100 {
            seen[lexicase(pop.len(), &mut wide, true, &mut rng)] = true;
        }
        assert_eq!(seen, [true; 3]);
        // the same seed, the same picks
        let mut draw = |seed| {
            let mut r = Rng::new(seed);
            (0..50)
                .map(|_| lexicase(pop.len(), &mut lx, false, &mut r))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
    }
}
