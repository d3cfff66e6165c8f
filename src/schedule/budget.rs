//! Disruption budgets: at most `max_unavailable` members of a set (a RAC cluster) stopped or
//! migrating at any instant, under every execution order the graph allows.
//!
//! # Model
//!
//! A member is unavailable from the start of its STOP_GUEST (offline; the first step of its
//! move when offline_force has no STOP_GUEST) or MIGRATE_GUEST (live) to the end of its
//! STARTUP_GUEST or MIGRATE_GUEST: one *interval* per move. Members already down (shut off,
//! crashed) count against the budget for the whole plan, as a pod disruption budget counts
//! unhealthy pods: the room left is `max_unavailable − down`.
//!
//! # Construction
//!
//! The list scheduler ([`super::timeline`]) runs the graph with each budget as a set of `k`
//! places: an interval takes a free place when it starts and gives it back when it ends. Then,
//! per place, consecutive intervals are chained: `end(previous) → start(next)`.
//!
//! # Invariant
//!
//! Under every execution order the graph allows, at most `k` intervals of a budget are open at
//! once: intervals of one place are totally ordered by the chain edges (each starts after the
//! previous one ended), and there are `k` places. The edges never close a cycle: the simulated
//! run respects every one of them (a place is reused only after its previous holder ended), so
//! the run is an execution order of the new graph.
//!
//! An interval whose end waits (through capacity edges) for other intervals of its budget to
//! start commits a place for each of them too, so the simulation does not start it while
//! they could not follow; if intervals need more places at once than the budget has, the
//! budget cannot hold and the plan is infeasible, with the guests named.

use std::collections::BTreeMap;

use crate::config::MigrationMode;
use crate::diff::{Move, MoveKind};
use crate::inventory::Topology;

use super::error::ScheduleError;
use super::expand::{Expansion, Node};
use super::packing;
use super::timeline::{Interval, Stuck};
use super::timing::Resource;

/// A disruption budget: at most `max_unavailable` of `members` stopped or migrating at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpec {
    /// What the configuration calls it (`rule "disruption_budget" "NAME"`), for messages.
    pub name: String,
    /// Guest names.
    pub members: Vec<String>,
    pub max_unavailable: u32,
}

impl BudgetSpec {
    /// A budget over the members of the RAC cluster named `cluster`; `None` when the topology
    /// has no such cluster.
    pub fn for_cluster(
        name: &str,
        topo: &Topology,
        cluster: &str,
        max_unavailable: u32,
    ) -> Option<BudgetSpec> {
        let c = topo.clusters.values().find(|c| c.name == cluster)?;
        Some(BudgetSpec {
            name: name.to_string(),
            members: c.members.clone(),
            max_unavailable,
        })
    }
}

/// The intervals of the budgets that a plan touches, ready for the timeline.
pub(crate) struct Budgets {
    pub intervals: Vec<Interval>,
    /// Per budget index (into `specs`), the places left after members already down.
    pub capacity: Vec<u32>,
    /// Per interval, the intervals of its budget that must start before it can end.
    pub needs: Vec<Vec<usize>>,
    /// Per interval, the move it belongs to.
    pub moves: Vec<usize>,
}

/// The intervals of every budget with a member that moves.
pub(crate) fn intervals(
    specs: &[BudgetSpec],
    moves: &[Move],
    expansion: &Expansion,
    topo: &Topology,
) -> Result<Budgets, ScheduleError> {
    let mut budgets_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (b, spec) in specs.iter().enumerate() {
        for member in &spec.members {
            budgets_of.entry(member.as_str()).or_default().push(b);
        }
    }
    let first_node = first_nodes(&expansion.nodes, moves.len());
    let mut out = Budgets {
        intervals: Vec::new(),
        capacity: Vec::new(),
        needs: Vec::new(),
        moves: Vec::new(),
    };
    for (m, mv) in moves.iter().enumerate() {
        let Some(budgets) = budgets_of.get(mv.guest.as_str()) else {
            continue;
        };
        let Some(guest) = topo.guests.get(&mv.guest) else {
            continue;
        };
        if !guest.state.holds_resources() || mv.kind == MoveKind::StopInPlace {
            // Down already and staying down, or stopped for good in this plan (maintenance):
            // counted below as a member that is down for the whole plan.
            continue;
        }
        let (start, end) = match (
            mv.mode,
            expansion.release[m],
            expansion.claim[m],
            first_node[m],
        ) {
            (MigrationMode::Live, _, Some(migrate), _) => (migrate, migrate),
            (_, Some(stop), Some(startup), _) => (stop, startup),
            (_, None, Some(startup), Some(first)) => (first, startup),
            _ => continue,
        };
        for &budget in budgets {
            out.intervals.push(Interval { start, end, budget });
            out.moves.push(m);
        }
    }
    let stopped_in_place: BTreeMap<&str, &Move> = moves
        .iter()
        .filter(|m| m.kind == MoveKind::StopInPlace)
        .map(|m| (m.guest.as_str(), m))
        .collect();
    for spec in specs {
        let down = spec
            .members
            .iter()
            .filter(|g| {
                topo.guests
                    .get(*g)
                    .is_some_and(|g| !g.state.holds_resources())
            })
            .count() as u32;
        let stopping: Vec<&Move> = spec
            .members
            .iter()
            .filter_map(|g| stopped_in_place.get(g.as_str()).copied())
            .collect();
        if down + stopping.len() as u32 > spec.max_unavailable && !stopping.is_empty() {
            return Err(too_many_stopped(spec, &stopping, down));
        }
        out.capacity.push(
            spec.max_unavailable
                .saturating_sub(down + stopping.len() as u32),
        );
    }
    for (k, interval) in out.intervals.iter().enumerate() {
        if out.capacity[interval.budget] == 0 {
            return Err(no_room(&specs[interval.budget], &moves[out.moves[k]], topo));
        }
    }
    out.needs = needs(&out.intervals, &expansion.nodes);
    Ok(out)
}

/// The first step of each move (steps of a move are contiguous).
fn first_nodes(nodes: &[Node], moves: usize) -> Vec<Option<usize>> {
    let mut first = vec![None; moves];
    for (i, node) in nodes.iter().enumerate() {
        first[node.move_index].get_or_insert(i);
    }
    first
}

/// For each interval, the other intervals of its budget whose start it reaches its end through
/// (start(J) →* end(I)). Only budgets with several intervals are searched, each search pruned
/// to the steps a topological order puts no later than the budget's last end.
fn needs(intervals: &[Interval], nodes: &[Node]) -> Vec<Vec<usize>> {
    let mut needs = vec![Vec::new(); intervals.len()];
    let mut by_budget: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (k, interval) in intervals.iter().enumerate() {
        by_budget.entry(interval.budget).or_default().push(k);
    }
    if by_budget.values().all(|ks| ks.len() < 2) {
        return needs;
    }
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for &d in &node.deps {
            successors[d].push(i);
        }
    }
    let position = topological_positions(nodes, &successors);
    // Stamped with the number of the search that reached the step: no clearing between searches.
    let mut seen = vec![usize::MAX; nodes.len()];
    let mut stack = Vec::new();
    let searches = by_budget
        .values()
        .filter(|ks| ks.len() >= 2)
        .flat_map(|ks| ks.iter().map(move |&j| (j, ks)));
    for (search, (j, ks)) in searches.enumerate() {
        let horizon = ks
            .iter()
            .map(|&k| position[intervals[k].end])
            .max()
            .unwrap_or(0);
        stack.push(intervals[j].start);
        seen[intervals[j].start] = search;
        while let Some(node) = stack.pop() {
            for &next in &successors[node] {
                if position[next] <= horizon && seen[next] != search {
                    seen[next] = search;
                    stack.push(next);
                }
            }
        }
        for &i in ks.iter().filter(|&&i| i != j) {
            if seen[intervals[i].end] == search {
                needs[i].push(j);
            }
        }
    }
    needs
}

fn topological_positions(nodes: &[Node], successors: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = nodes.iter().map(|n| n.deps.len()).collect();
    let mut order: Vec<usize> = (0..nodes.len()).filter(|&i| waiting[i] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        let i = order[next];
        next += 1;
        for &s in &successors[i] {
            waiting[s] -= 1;
            if waiting[s] == 0 {
                order.push(s);
            }
        }
    }
    let mut position = vec![usize::MAX; nodes.len()];
    for (p, &i) in order.iter().enumerate() {
        position[i] = p;
    }
    position
}

/// Chains the intervals that shared a place, in the order they held it: the edges
/// (end of one, start of the next) that make the budget hold under any order.
pub(crate) fn chain_edges(
    budgets: &Budgets,
    slot: &[usize],
    start_time: &[f64],
) -> Vec<(usize, usize)> {
    let mut places: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for (k, interval) in budgets.intervals.iter().enumerate() {
        places
            .entry((interval.budget, slot[k]))
            .or_default()
            .push(k);
    }
    let mut edges = Vec::new();
    for holders in places.values_mut() {
        holders.sort_by(|&a, &b| {
            start_time[budgets.intervals[a].start]
                .total_cmp(&start_time[budgets.intervals[b].start])
                .then(a.cmp(&b))
        });
        for pair in holders.windows(2) {
            let (before, after) = (budgets.intervals[pair[0]], budgets.intervals[pair[1]]);
            if before.end != after.start {
                edges.push((before.end, after.start));
            }
        }
    }
    edges
}

/// Maintenance would stop more members of a budget in place than it allows down.
fn too_many_stopped(spec: &BudgetSpec, stopping: &[&Move], down: u32) -> ScheduleError {
    let names: Vec<&str> = stopping.iter().map(|m| m.guest.as_str()).collect();
    let hosts: Vec<String> = stopping.iter().map(|m| m.from.clone()).collect();
    let message = format!(
        "disruption budget `{}` allows {} of its members unavailable at once, but maintenance would stop {} in place ({}){}: \
         no host can take them, so they would all be down together. Service those hosts one after the other (one plan each)",
        spec.name,
        spec.max_unavailable,
        stopping.len(),
        names.join(", "),
        if down > 0 {
            format!(" with {down} already down")
        } else {
            String::new()
        },
    );
    ScheduleError::Infeasible {
        message,
        hosts,
        guests: names.iter().map(|n| n.to_string()).collect(),
    }
}

/// The budget has no room at all: members already down use it up.
fn no_room(spec: &BudgetSpec, mv: &Move, topo: &Topology) -> ScheduleError {
    let down: Vec<String> = spec
        .members
        .iter()
        .filter(|g| {
            topo.guests
                .get(*g)
                .is_some_and(|g| !g.state.holds_resources())
        })
        .cloned()
        .collect();
    let message = format!(
        "disruption budget `{}` allows {} of its members unavailable at once, and {} already down ({}): moving {} ({} → {}) would take one more down",
        spec.name,
        spec.max_unavailable,
        if down.len() == 1 {
            "1 is".to_string()
        } else {
            format!("{} are", down.len())
        },
        down.join(", "),
        mv.guest,
        mv.from,
        mv.to,
    );
    ScheduleError::Infeasible {
        message,
        hosts: vec![mv.from.clone(), mv.to.clone()],
        guests: vec![mv.guest.clone()],
    }
}

/// The scheduler could not place the waiting intervals within their budgets.
pub(crate) fn stuck(
    specs: &[BudgetSpec],
    budgets: &Budgets,
    stuck: &Stuck,
    moves: &[Move],
) -> ScheduleError {
    let mut by_budget: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &k in &stuck.waiting {
        by_budget
            .entry(budgets.intervals[k].budget)
            .or_default()
            .push(k);
    }
    let mut parts = Vec::new();
    let mut guests = Vec::new();
    let mut hosts = Vec::new();
    for (b, ks) in &by_budget {
        let spec = &specs[*b];
        let mut together: Vec<usize> = Vec::new();
        for &k in ks {
            together.push(budgets.moves[k]);
            together.extend(budgets.needs[k].iter().map(|&j| budgets.moves[j]));
        }
        together.sort_unstable();
        together.dedup();
        let described: Vec<String> = together
            .iter()
            .map(|&m| format!("{} ({} → {})", moves[m].guest, moves[m].from, moves[m].to))
            .collect();
        for &m in &together {
            hosts.extend([moves[m].from.clone(), moves[m].to.clone()]);
            guests.push(moves[m].guest.clone());
        }
        parts.push(format!(
            "disruption budget `{}` allows {} of its members unavailable at once (after those already down), but the moves of {} \
             need more of them unavailable together: each waits for room another one's move frees",
            spec.name,
            budgets.capacity[*b],
            described.join(", ")
        ));
    }
    guests.sort();
    guests.dedup();
    hosts.sort();
    hosts.dedup();
    ScheduleError::Infeasible {
        message: parts.join("; "),
        hosts,
        guests,
    }
}

/// The busiest budget's lower bound: its intervals' durations alone (the steps of a move from
/// the interval's start to its end run one after another) over its places, plus the earliest
/// any interval can start and the least that must follow the end of any (see
/// `timing::Resource`), or where intervals cannot share its places, the ones that must follow
/// each other (see `packing`).
pub(crate) fn bound(budgets: &Budgets, alone: &[f64], head: &[f64], tail: &[f64]) -> f64 {
    let mut resources = vec![Resource::default(); budgets.capacity.len()];
    let mut items: Vec<Vec<packing::Item>> = vec![Vec::new(); budgets.capacity.len()];
    for interval in &budgets.intervals {
        let length = alone[interval.start..=interval.end].iter().sum::<f64>();
        resources[interval.budget].add(length, head[interval.start], tail[interval.end]);
        items[interval.budget].push(packing::Item {
            duration: length,
            head: head[interval.start],
            tail: tail[interval.end],
        });
    }
    resources
        .iter()
        .zip(&items)
        .zip(&budgets.capacity)
        .map(|((r, items), &c)| r.bound(f64::from(c.max(1))).max(packing::bound(items, c)))
        .fold(0.0, f64::max)
}
