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
    /// How parents are chosen. Tournament in `EvolveConfig::default()` and for a run
    /// stored before the field existed; [`EvolveConfig::for_task`] (what `tdev evolve`
    /// uses) picks lexicase or epsilon-lexicase by the task's kind.
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
    /// The default configuration for `task`, by its kind (measured with the `evolve`
    /// and `psb` benches, BENCHMARKS.md):
    /// - integer tasks (every param and the result i64: the program-synthesis kind):
    ///   control flow, where loops and branches are what solutions need, and lexicase
    ///   selection (even-5-parity 13/20 against 1/20 with tournament, smallest 8/20
    ///   against 0/20, max3 20/20 against 5/20);
    /// - tasks with an f64 (symbolic regression): straight-line code (with loops,
    ///   quartic went from solved to unsolved at seed 1) and epsilon-lexicase (quartic
    ///   19/20 in a median of 3 generations, against 13 with tournament).
    pub fn for_task(task: &crate::task::Task) -> EvolveConfig {
        let integer = task.result == runtime::Param::I64
            && task.params.iter().all(|p| *p == runtime::Param::I64);
        EvolveConfig {
            control_flow: integer,
            selection: if integer {
                Selection::Lexicase
            } else {
                Selection::EpsilonLexicase
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;

    /// A task of one case, every value 1.
    fn task(params: &[&str], result: &str) -> Task {
        let one = |t: &str| if t == "f64" { "1.0" } else { "1" };
        let names: Vec<String> = params.iter().map(|p| format!("\"{p}\"")).collect();
        let args: Vec<&str> = params.iter().map(|p| one(p)).collect();
        Task::parse(
            &format!(
                "name = \"t\"\nparams = [{}]\nresult = \"{result}\"\nerror = \"abs\"\n\
                 success_threshold = 0.0\ncases = [ {{ args = [{}], expect = {} }} ]\n",
                names.join(", "),
                args.join(", "),
                one(result)
            ),
            false,
        )
        .expect("task")
    }

    #[test]
    fn the_defaults_follow_the_task_kind() {
        let int = EvolveConfig::for_task(&task(&["i64", "i64"], "i64"));
        assert_eq!(
            (int.control_flow, int.selection),
            (true, Selection::Lexicase)
        );
        for (params, result) in [(&["f64"][..], "f64"), (&["i64", "f64"][..], "i64")] {
            let real = EvolveConfig::for_task(&task(params, result));
            assert_eq!(
                (real.control_flow, real.selection),
                (false, Selection::EpsilonLexicase)
            );
        }
        // a run stored before the field existed keeps tournament
        assert_eq!(EvolveConfig::default().selection, Selection::Tournament);
    }
}
