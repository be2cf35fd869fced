//! Breeding: elites, crossover and mutation.

use super::Evolution;
use super::population::Individual;
use crate::genome::Genome;
use crate::id::AgentId;
use crate::mutators;
use crate::words::Cull;
use std::sync::Arc;

impl Evolution {
    /// Offspring of the current population: elites, then crossover and mutation.
    pub(super) fn breed(&mut self) -> Vec<(Vec<u8>, Vec<AgentId>)> {
        self.prepare_selection();
        let p = self.config.parsimony;
        let cap = self.sandbox.policy().limits.module_bytes as usize;
        let mut order: Vec<usize> = (0..self.population.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.population[a], &self.population[b]);
            x.fitness(p).total_cmp(&y.fitness(p)).then(x.id.cmp(&y.id))
        });
        let mut out: Vec<(Vec<u8>, Vec<AgentId>)> = order
            .iter()
            .take(self.config.elitism.min(self.population.len()))
            .map(|&i| {
                let ind = &self.population[i];
                (ind.bytes.to_vec(), vec![ind.id.clone()])
            })
            .collect();
        let mut bred: Vec<Option<Arc<Genome>>> = vec![None; out.len()];
        // Parents are decoded once per generation, however often they are picked.
        let mut decoded: Vec<Option<Option<Arc<Genome>>>> = vec![None; self.population.len()];
        let mut genome = |i: usize, pop: &[Individual]| -> Option<Arc<Genome>> {
            decoded[i]
                .get_or_insert_with(|| Genome::decode(&pop[i].bytes).map(Arc::new))
                .clone()
        };
        while out.len() < self.config.population {
            let a = self.select();
            let parent = &self.population[a];
            let Some(ga) = genome(a, &self.population) else {
                out.push((parent.bytes.to_vec(), vec![parent.id.clone()]));
                bred.push(None);
                continue;
            };
            let mut parents = vec![parent.id.clone()];
            let child = if self.rng.chance(self.config.crossover_rate) {
                let b = self.select();
                parents.push(self.population[b].id.clone());
                genome(b, &self.population).and_then(|gb| {
                    mutators::crossover(&ga, &gb, self.config.control_flow, &mut self.rng)
                })
            } else {
                let total: u32 = self.mutators.iter().map(|(_, w)| *w).sum();
                let mut pick = self.rng.below(total as usize) as u32;
                let mut chosen = 0;
                for (i, (_, w)) in self.mutators.iter().enumerate() {
                    if pick < *w {
                        chosen = i;
                        break;
                    }
                    pick -= *w;
                }
                self.mutators[chosen].0.mutate(&ga, &mut self.rng)
            };
            let Some(child) = child else { continue };
            let bytes = child.encode();
            self.tally.produced += 1;
            if bytes.len() > cap {
                // Nothing over the size cap survives.
                *self.culled.entry(Cull::SizeCap).or_default() += 1;
                self.tally.invalid += 1;
                continue;
            }
            out.push((bytes, parents));
            bred.push(Some(Arc::new(child)));
        }
        self.bred = bred;
        out
    }
}
