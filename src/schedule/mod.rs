//! Moves into a step DAG: each move expands into OEDACLI's MIGRATE GUEST steps, and cross-move
//! edges keep every host within memory and vCPU capacity under any order the graph allows.
//!
//! - [`expand`](self) turns a move into steps, leaving out (and recording) steps with nothing to do.
//! - [`capacity`](self) adds release → claim edges; its docs state and prove the invariant.
//! - [`pivot`](self) breaks live swap cycles through a third host, or explains the deadlock.
//! - [`graph`](self) finds cycles (petgraph) and lays the DAG out in waves.
//! - [`duration`] says how long each step takes; [`timeline`](self) list-schedules the graph on
//!   it (critical path first, within the concurrency limits) to predict start times.
//! - [`budget`](self) adds chains that keep disruption budgets under any order; its docs state
//!   and prove the invariant.

mod budget;
mod capacity;
pub mod duration;
mod error;
mod expand;
mod graph;
mod holds;
mod limits;
pub mod model;
mod packing;
mod pivot;
mod timeline;
mod timing;

use std::collections::BTreeMap;

use crate::diff::Move;
use crate::inventory::Topology;

pub use budget::BudgetSpec;
pub use duration::{Concurrency, DurationModel, Work};
pub use error::ScheduleError;
pub use limits::{HostLimit, Limits};
pub use model::{
    GuestDowntime, Hold, LowerBound, SkippedStep, Step, StepKind, StepTiming, Timing, WaveTiming,
};
pub use timing::{HostActivity, Replay, predict, replay};

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
    /// When each step is expected to run (list scheduling on `limits.durations` within
    /// `limits.concurrency`), the predicted total and the lower bounds it is measured against.
    pub timing: Timing,
}

/// Expands `moves` into steps and orders them so that, under every execution order the
/// returned graph allows (steps may overlap when unordered), no host ever uses more memory or
/// vCPUs than `limits` give it (see `capacity` for the construction and the proof) and no
/// disruption budget has more members unavailable than it allows (see `budget`). Live swap
/// cycles are broken through a pivot host when `limits.allow_pivot`; otherwise, or when no
/// pivot host fits, or when a budget cannot hold, the result is [`ScheduleError::Infeasible`]
/// with the hosts, guests and numbers involved. The schedule's [`Timing`] predicts when each
/// step runs.
pub fn schedule(
    moves: &[Move],
    topo: &Topology,
    limits: &Limits,
) -> Result<Schedule, ScheduleError> {
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
            let (timing, waves) = time(&moves, &mut expansion, topo, limits)?;
            return Ok(finish(moves, expansion, capacity.peaks, timing, waves));
        }
        let pivots = pivot::break_cycles(
            &cycles, &moves, &expansion, &capacity, topo, limits, &current,
        )?;
        moves = pivot::insert(moves, pivots);
    }
}

/// List-schedules the (acyclic) graph on the duration model, adds the chains that keep the
/// disruption budgets, and returns the predicted timing and the waves of the final graph.
fn time(
    moves: &[Move],
    expansion: &mut expand::Expansion,
    topo: &Topology,
    limits: &Limits,
) -> Result<(Timing, Vec<Vec<usize>>), ScheduleError> {
    let shapes = expansion.nodes.iter().map(|n| timing::Shape {
        kind: n.kind,
        move_index: n.move_index,
        items: n.items.len(),
        deps: n.deps.clone(),
    });
    let graph = timing::Graph::new(shapes, moves, &limits.durations);
    let budgets = budget::intervals(&limits.budgets, moves, expansion, topo)?;
    let (head, tail) = graph.heads_and_tails();
    let lower_bound = graph.lower_bound(
        limits.concurrency,
        budget::bound(&budgets, &graph.alone, &head, &tail),
    );
    let priority = graph.priority();
    let setup = timeline::Setup {
        jobs: &graph.jobs,
        bandwidth: &graph.bandwidth,
        concurrency: limits.concurrency,
        priority: &priority,
        alone: &graph.alone,
        jitter: 0,
        intervals: &budgets.intervals,
        capacity: &budgets.capacity,
        needs: &budgets.needs,
    };
    let (priority_seed, run) = timeline::best_of(&setup)
        .map_err(|stuck| budget::stuck(&limits.budgets, &budgets, &stuck, moves))?;
    let holds = holds::improve(
        &timeline::Setup {
            jitter: priority_seed,
            ..setup
        },
        run,
    );
    let run = holds.run;
    for &(held, blocker) in &holds.edges {
        expansion.nodes[blocker].deps.push(held);
    }
    let chains = budget::chain_edges(&budgets, &run.slot, &run.start);
    if !chains.is_empty() || !holds.edges.is_empty() {
        for (end, start) in chains {
            expansion.nodes[start].deps.push(end);
        }
        for node in &mut expansion.nodes {
            node.deps.sort_unstable();
            node.deps.dedup();
        }
    }
    let ids: Vec<&str> = expansion.nodes.iter().map(|n| n.id.as_str()).collect();
    let waves = graph::waves(&expansion.nodes);
    let timing = timing::timing(
        &ids,
        &waves,
        &run,
        lower_bound,
        &limits.durations,
        limits.concurrency,
        priority_seed,
    );
    let timing = Timing {
        holds: holds
            .edges
            .iter()
            .map(|&(held, blocker)| Hold {
                step: ids[blocker].to_string(),
                waits_for: ids[held].to_string(),
            })
            .collect(),
        ..timing
    };
    Ok((timing, waves))
}

fn finish(
    moves: Vec<Move>,
    expansion: expand::Expansion,
    peaks: BTreeMap<String, (u64, u32)>,
    timing: Timing,
    waves: Vec<Vec<usize>>,
) -> Schedule {
    let waves = waves
        .into_iter()
        .map(|wave| {
            wave.into_iter()
                .map(|i| expansion.nodes[i].id.clone())
                .collect()
        })
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
                depends_on: node
                    .deps
                    .iter()
                    .map(|&d| expansion.nodes[d].id.clone())
                    .collect(),
                detail: node.detail.clone(),
                items: node.items.clone(),
            }
        })
        .collect();
    Schedule {
        moves,
        steps,
        skipped: expansion.skipped,
        waves,
        peaks,
        timing,
    }
}

#[cfg(test)]
mod tests;
