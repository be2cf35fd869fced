//! The parameters of a run.

use super::selection::Selection;
use serde::{Deserialize, Serialize};

/// Parameters of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvolveConfig {
    /// The seed of every random choice. Default 1.
    pub seed: u64,
    /// Generations after the initial one. Default 60.
    pub generations: u32,
    /// Population size. Default 300.
    pub population: usize,
    /// Tournament size. Default 4.
    pub tournament: usize,
    /// Best individuals copied unchanged. Default 2.
    pub elitism: usize,
    /// Share of offspring made by crossover. Default 0.3.
    pub crossover_rate: f64,
    /// Fitness = mean train error + parsimony × size in bytes. Default 1e-4.
    pub parsimony: f64,
    /// Depth of the random initial expressions. Default 4.
    pub init_depth: u32,
    /// Worker threads for evaluation (results do not depend on it). Default: all cores.
    pub threads: usize,
    /// Whether the genome may hold control flow and extra locals: the mutators of
    /// loops, conditionals, exits and locals join the mix, and crossover also swaps
    /// statements. Default true ([`EvolveConfig::for_task`] chooses by task kind);
    /// false (straight-line code only) for a run stored before the field existed, so
    /// it resumes as it ran.
    #[serde(default)]
    pub control_flow: bool,
    /// How parents are chosen. Default tournament (also for a run stored before the
    /// field existed).
    #[serde(default)]
    pub selection: Selection,
    /// The share of the training cases down-sampled lexicase filters through, drawn per
    /// generation (0 < share ≤ 1). Default 0.25.
    #[serde(default = "default_downsample")]
    pub downsample: f64,
    /// At most this many quarantine records per outcome word and generation; the rest
    /// are counted (`quarantine_withheld` in the fitness log and checkpoint) but not
    /// written. Default 16; unlimited for a run stored before the field existed.
    #[serde(default = "unlimited")]
    pub quarantine_per_outcome: u32,
}

fn unlimited() -> u32 {
    u32::MAX
}

impl EvolveConfig {
    /// The default configuration for `task`: control flow for integer tasks (every
    /// param and the result i64: the program-synthesis kind, where loops and branches
    /// are what solutions need), straight-line code for tasks with an f64 (symbolic
    /// regression, where measured loops only cost: quartic went from 19/20 solved to
    /// unsolved at seed 1 with them).
    pub fn for_task(task: &crate::task::Task) -> EvolveConfig {
        let integer = task.result == runtime::Param::I64
            && task.params.iter().all(|p| *p == runtime::Param::I64);
        EvolveConfig {
            control_flow: integer,
            ..EvolveConfig::default()
        }
    }
}

fn default_downsample() -> f64 {
    0.25
}

impl Default for EvolveConfig {
    fn default() -> Self {
        EvolveConfig {
            seed: 1,
            generations: 60,
            population: 300,
            tournament: 4,
            elitism: 2,
            crossover_rate: 0.3,
            parsimony: 1e-4,
            init_depth: 4,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            control_flow: true,
            selection: Selection::Tournament,
            downsample: default_downsample(),
            quarantine_per_outcome: 16,
        }
    }
}
