//! Moves into a step DAG: each move expands into OEDACLI's MIGRATE GUEST steps, and cross-move
//! edges keep every host within memory and vCPU capacity under any order the graph allows.
//!
//! - [`expand`](self) turns a move into steps, leaving out (and recording) steps with nothing to do.
//! - [`capacity`](self) adds release → claim edges; its docs state and prove the invariant.
//! - [`pivot`](self) breaks live swap cycles through a third host, or explains the deadlock.
//! - [`graph`](self) finds cycles (petgraph) and lays the DAG out in waves.

mod capacity;
mod error;
mod expand;
mod graph;
mod limits;
pub mod model;
mod pivot;

use std::collections::BTreeMap;

use crate::diff::Move;
use crate::inventory::Topology;

pub use error::ScheduleError;
pub use limits::{HostLimit, Limits};
pub use model::{SkippedStep, Step, StepKind};

/// The schedule of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The input moves, in order, with any pivot hop inserted before the move it serves
    /// (`Move::pivot = true`; the served move then leaves from the pivot host).
    pub moves: Vec<Move>,
    /// The steps; `Step::move_index` indexes [`Schedule::moves`].
    pub steps: Vec<Step>,
    /// Steps left out because they have nothing to do.
    pub skipped: Vec<SkippedStep>,
    /// Step ids by wave: every step of wave `n` depends only on steps of earlier waves.
    pub waves: Vec<Vec<String>>,
    /// Every host of the topology → (peak memory MiB, peak vCPUs): an upper bound on the usage
    /// any execution order the graph allows can reach, never above the host's limits unless it
    /// already starts above them.
    pub peaks: BTreeMap<String, (u64, u32)>,
}

/// Expands `moves` into steps and orders them so that, under every execution order the
/// returned graph allows (steps may overlap when unordered), no host ever uses more memory or
/// vCPUs than `limits` give it (see `capacity` for the construction and the proof). Live swap
/// cycles are broken through a pivot host when `limits.allow_pivot`; otherwise, or when no
/// pivot host fits, the result is [`ScheduleError::Infeasible`] with the hosts, guests and
/// numbers involved.
pub fn schedule(moves: &[Move], topo: &Topology, limits: &Limits) -> Result<Schedule, ScheduleError> {
    let current = capacity::current_usage(topo);
    let mut moves = moves.to_vec();
    // Each round routes at least one more guest through a pivot, and a guest is routed at most
    // once, so this ends within `moves.len()` rounds.
    loop {
        let mut expansion = expand::expand(&moves, topo)?;
        let capacity = capacity::plan(&moves, &expansion, topo, limits, &current)?;
        for &(release, claim) in &capacity.edges {
            expansion.nodes[claim].deps.push(release);
        }
        for node in &mut expansion.nodes {
            node.deps.sort_unstable();
            node.deps.dedup();
        }
        let cycles = graph::cycles(&expansion.nodes);
        if cycles.is_empty() {
            return Ok(finish(moves, expansion, capacity.peaks));
        }
        let pivots = pivot::break_cycles(&cycles, &moves, &expansion, &capacity, topo, limits, &current)?;
        moves = pivot::insert(moves, pivots);
    }
}

fn finish(moves: Vec<Move>, expansion: expand::Expansion, peaks: BTreeMap<String, (u64, u32)>) -> Schedule {
    let waves = graph::waves(&expansion.nodes)
        .into_iter()
        .map(|wave| wave.into_iter().map(|i| expansion.nodes[i].id.clone()).collect())
        .collect();
    let steps = expansion
        .nodes
        .iter()
        .map(|node| {
            let mv = &moves[node.move_index];
            Step {
                id: node.id.clone(),
                kind: node.kind,
                guest: mv.guest.clone(),
                from: mv.from.clone(),
                to: mv.to.clone(),
                move_index: node.move_index,
                depends_on: node.deps.iter().map(|&d| expansion.nodes[d].id.clone()).collect(),
                detail: node.detail.clone(),
                items: node.items.clone(),
            }
        })
        .collect();
    Schedule { moves, steps, skipped: expansion.skipped, waves, peaks }
}

#[cfg(test)]
mod tests;
