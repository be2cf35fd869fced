//! Migration between the islands of an island-model evolution: the best members leave
//! as migrants, and migrants from a neighbour take the places of the worst.

use super::Evolution;
use super::population::rank;
use crate::error::Result;
use crate::genome::{Genome, Ty};
use crate::id::AgentId;
use std::collections::HashSet;

impl Evolution {
    /// The modules of the `m` best distinct members by rank (train error, fitness, id),
    /// best first; culled members never leave.
    pub fn emigrants(&self, m: usize) -> Vec<Vec<u8>> {
        let p = self.config.parsimony;
        let mut ranked: Vec<&super::Individual> = self
            .population
            .iter()
            .filter(|i| i.train_error().is_finite())
            .collect();
        ranked.sort_by(|a, b| rank(a, b, p));
        ranked.dedup_by(|a, b| a.id == b.id);
        ranked.iter().take(m).map(|i| i.bytes.to_vec()).collect()
    }

    /// Puts `modules` (migrants, read from the store: untrusted) in the places of the
    /// worst members, after scoring them as any offspring; the elites are never
    /// replaced. A module already in the population, or one that is not a typed `act`
    /// of the task's signature, is left out. Returns how many came in.
    pub fn immigrate(&mut self, modules: Vec<Vec<u8>>) -> Result<usize> {
        let params: Vec<Ty> = self.task.params.iter().map(|p| Ty::from(*p)).collect();
        let result = Ty::from(self.task.result);
        let mut seen: HashSet<AgentId> = self.population.iter().map(|i| i.id.clone()).collect();
        let room = self.population.len().saturating_sub(self.config.elitism);
        let items: Vec<(Vec<u8>, Vec<AgentId>)> = modules
            .into_iter()
            .filter(|b| {
                Genome::decode(b).is_some_and(|g| g.params == params && g.result == result)
                    && seen.insert(AgentId::of(b))
            })
            .take(room)
            .map(|b| (b, Vec::new()))
            .collect();
        if items.is_empty() {
            return Ok(0);
        }
        let n = items.len();
        let (arrived, _) = self.evaluate_all(items, n)?;
        // The worst places first.
        let p = self.config.parsimony;
        let mut order: Vec<usize> = (0..self.population.len()).collect();
        order.sort_by(|&a, &b| rank(&self.population[b], &self.population[a], p));
        for (slot, migrant) in order.into_iter().zip(arrived) {
            self.population[slot] = migrant;
        }
        Ok(n)
    }
}
