//! Rebalancing: evening out the memory and/or vCPU utilisation of a set of hosts with as few
//! moves as it takes, within a move budget.
//!
//! Utilisation is use over capacity (memory: physical minus reserve; vCPUs: `cpus ×
//! overcommit`); the *spread* is the most used host's utilisation minus the least used one's.
//! While the spread is above the threshold and the budget lasts, the greedy takes the single
//! move (one guest onto one host, every rule checked) that lowers the imbalance `Σ u²` the most,
//! and only if it lowers it by more than [`MIN_GAIN`] without widening the spread.
//!
//! **No thrashing, by construction.** The search reads nothing but the current placement, so
//! where it stops is a fixed point: it stops either inside the threshold (a rebalance on the
//! result sees the same spread and stops at once) or because no move gains more than
//! [`MIN_GAIN`] (a rebalance on the result finds the same moves and none of them qualifies). A
//! rebalance right after a rebalance therefore proposes nothing. Only a stop on the budget
//! (`max_moves`, `max_moved`) leaves work for the next plan, which continues the same descent:
//! `Σ u²` falls with every move, so no guest is ever moved back and forth.

use std::collections::{BTreeMap, HashMap};

use crate::config::{BalanceOn, MigrationMode};
use crate::inventory::Guest;

use super::capacity::Ledger;
use super::fit::{World, first_violation};
use super::intents::Rebalance;
use super::model::{RebalanceOutcome, RebalanceStop as Stop, ResourceSpread};
use super::units::mib;

/// A move must lower `Σ u²` (summed over the balanced resources) by more than this: a tenth of
/// a percentage point squared per host pair would be noise, this is about moving 3 % of a host
/// across a 2-point gap. It keeps tiny guests from being shuffled for nothing.
pub(crate) const MIN_GAIN: f64 = 1e-3;
/// Sources are the most used, targets the least used hosts; both sides look at this many.
const EXTREMES: usize = 16;

/// One rebalancing move.
pub(crate) struct Decision<'t> {
    pub guest: &'t Guest,
    pub to: &'t str,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Memory,
    Vcpus,
}

fn resources(on: BalanceOn) -> &'static [Resource] {
    match on {
        BalanceOn::Memory => &[Resource::Memory],
        BalanceOn::Vcpus => &[Resource::Vcpus],
        BalanceOn::Both => &[Resource::Memory, Resource::Vcpus],
    }
}

/// A host of the set: its capacities.
struct Member<'t> {
    name: &'t str,
    memory: f64,
    vcpus: f64,
}

/// The set being balanced and what each host holds.
struct Balance<'a, 't> {
    hosts: Vec<Member<'t>>,
    resources: &'static [Resource],
    ledger: &'a mut Ledger<'t>,
}

impl<'t> Balance<'_, 't> {
    fn utilisation(&self, host: usize, resource: Resource) -> f64 {
        let load = self.ledger.load(self.hosts[host].name);
        match resource {
            Resource::Memory => load.memory_mib as f64 / self.hosts[host].memory,
            Resource::Vcpus => load.vcpus as f64 / self.hosts[host].vcpus,
        }
    }

    fn share(&self, guest: &Guest, host: usize, resource: Resource) -> f64 {
        match resource {
            Resource::Memory => guest.memory_held_mib() as f64 / self.hosts[host].memory,
            Resource::Vcpus => f64::from(guest.vcpus_held()) / self.hosts[host].vcpus,
        }
    }

    /// Per resource: utilisations sorted from the most used host down.
    fn sorted(&self) -> Vec<Vec<(f64, usize)>> {
        self.resources
            .iter()
            .map(|&r| {
                let mut all: Vec<(f64, usize)> = (0..self.hosts.len())
                    .map(|h| (self.utilisation(h, r), h))
                    .collect();
                all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                all
            })
            .collect()
    }

    /// Per resource: most used minus least used.
    fn spreads(&self, sorted: &[Vec<(f64, usize)>]) -> Vec<f64> {
        sorted
            .iter()
            .map(|all| all.first().map_or(0.0, |f| f.0) - all.last().map_or(0.0, |l| l.0))
            .collect()
    }
}

/// Evens out `spec.hosts` in `ledger`. `movable` says which guests the rebalance may move
/// (not pinned, not placed by the configuration, not in an affinity group); `mode_of` gives
/// each guest's mode. Returns the moves in the order they were decided, and how the rebalance
/// ended (`None` when fewer than two of its hosts can take guests: nothing to even out).
pub(crate) fn rebalance<'t>(
    world: &World<'_, 't>,
    ledger: &mut Ledger<'t>,
    spec: &Rebalance,
    mode_of: &dyn Fn(&Guest) -> MigrationMode,
    movable: &dyn Fn(&Guest) -> bool,
) -> (Vec<Decision<'t>>, Option<RebalanceOutcome>) {
    let intent = spec.intent;
    let resources = resources(intent.on);
    let hosts: Vec<Member<'t>> = spec
        .hosts
        .iter()
        .filter_map(|name| world.topo.hosts.get_key_value(name))
        .filter(|(_, host)| host.reachable)
        .filter_map(|(name, _)| {
            let rules = world.hosts.get(name).filter(|r| r.accepts_guests())?;
            let member = Member {
                name: name.as_str(),
                memory: rules.memory_capacity_mib as f64,
                vcpus: f64::from(rules.vcpu_limit),
            };
            let usable = resources.iter().all(|r| match r {
                Resource::Memory => member.memory > 0.0,
                Resource::Vcpus => member.vcpus > 0.0,
            });
            usable.then_some(member)
        })
        .collect();
    if hosts.len() < 2 {
        return (Vec::new(), None);
    }
    let index: HashMap<&str, usize> = hosts.iter().enumerate().map(|(i, h)| (h.name, i)).collect();
    let start: BTreeMap<&'t str, &'t str> = world
        .topo
        .guests
        .values()
        .filter_map(|g| {
            ledger
                .host_of(&g.name)
                .filter(|h| index.contains_key(*h))
                .map(|h| (g.name.as_str(), h))
        })
        .collect();
    let mut progress = Progress::new(world, start, &index);
    let balance = Balance {
        hosts,
        resources,
        ledger,
    };
    let before = balance.spreads(&balance.sorted());

    let mut steps: Vec<Step<'t>> = Vec::new();
    // The limits the last search ran into (what stopped it, when the budget did).
    let mut spent = Spent::default();
    let stop = loop {
        let sorted = balance.sorted();
        let spreads = balance.spreads(&sorted);
        let worst = spreads.iter().copied().fold(0.0, f64::max);
        if worst <= intent.threshold + 1e-12 {
            break Stop::WithinThreshold;
        }
        let (candidates, over_budget) =
            candidates(&balance, &sorted, &spreads, &progress, intent, movable);
        spent = over_budget;
        let chosen = candidates.iter().enumerate().find(|(_, c)| {
            let guest = c.guest;
            let target = &world.topo.hosts[balance.hosts[c.to].name];
            first_violation(world, balance.ledger, guest, mode_of(guest), target).is_none()
        });
        let Some((position, choice)) = chosen else {
            break if over_budget.any() {
                Stop::Budget
            } else {
                Stop::NoGain
            };
        };
        let runner_up = candidates[position + 1..].iter().find(|c| {
            let target = &world.topo.hosts[balance.hosts[c.to].name];
            first_violation(world, balance.ledger, c.guest, mode_of(c.guest), target).is_none()
        });
        let (from, to) = (choice.from, choice.to);
        let shown = resources[0];
        let before_move = (
            balance.utilisation(from, shown),
            balance.utilisation(to, shown),
        );
        let guest = choice.guest;
        let runner_up =
            runner_up.map(|r| format!("{} to {}", r.guest.name, balance.hosts[r.to].name));
        balance.ledger.apply(guest, balance.hosts[to].name);
        progress.record(guest, from, to, balance.hosts[to].name);
        steps.push(Step {
            guest,
            from: balance.hosts[from].name,
            to: balance.hosts[to].name,
            source: (before_move.0, balance.utilisation(from, shown)),
            target: (before_move.1, balance.utilisation(to, shown)),
            runner_up,
        });
    };
    let after = balance.spreads(&balance.sorted());
    let outcome = outcome(
        intent,
        resources,
        &before,
        &after,
        stop,
        spent,
        &progress.start,
        balance.ledger,
    );
    let summary = summary(intent, &outcome);
    let decisions = steps
        .into_iter()
        .map(|step| {
            let what = match resources[0] {
                Resource::Memory => "memory",
                Resource::Vcpus => "vCPUs",
            };
            let mut reason = format!(
                "{summary}: {} ({}) from {} ({what} {} → {}) to {} ({} → {}), the move that evens the hosts out most",
                step.guest.name,
                mib(step.guest.memory_held_mib()),
                step.from,
                percent(step.source.0),
                percent(step.source.1),
                step.to,
                percent(step.target.0),
                percent(step.target.1)
            );
            if let Some(second) = step.runner_up {
                reason.push_str(&format!("; runner-up: {second}"));
            }
            Decision { guest: step.guest, to: step.to, reason }
        })
        .collect();
    (decisions, Some(outcome))
}

/// The budget limits a move would exceed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Spent {
    moves: bool,
    memory: bool,
}

impl Spent {
    fn any(self) -> bool {
        self.moves || self.memory
    }
}

struct Step<'t> {
    guest: &'t Guest,
    from: &'t str,
    to: &'t str,
    /// Utilisation (first balanced resource) of the source and target, before and after.
    source: (f64, f64),
    target: (f64, f64),
    runner_up: Option<String>,
}

/// A move the greedy may take: `gain` is how much it lowers `Σ u²`.
struct Candidate<'t> {
    guest: &'t Guest,
    from: usize,
    to: usize,
    gain: f64,
}

/// Every move from one of the most used to one of the least used hosts that gains more than
/// [`MIN_GAIN`], does not widen the spread and fits the budget; best first. Rules are checked
/// by the caller, lazily, on the best ones only. The flag says whether a move that would
/// qualify was left out for the budget alone.
fn candidates<'t>(
    balance: &Balance<'_, 't>,
    sorted: &[Vec<(f64, usize)>],
    spreads: &[f64],
    progress: &Progress<'t>,
    intent: &crate::config::RebalanceIntent,
    movable: &dyn Fn(&Guest) -> bool,
) -> (Vec<Candidate<'t>>, Spent) {
    let count = balance.hosts.len();
    let score: Vec<f64> = (0..count)
        .map(|h| {
            balance
                .resources
                .iter()
                .map(|&r| balance.utilisation(h, r))
                .sum()
        })
        .collect();
    let mut by_score: Vec<usize> = (0..count).collect();
    by_score.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let sources: Vec<usize> = by_score.iter().copied().take(EXTREMES).collect();
    let targets: Vec<usize> = by_score.iter().rev().copied().take(EXTREMES).collect();

    let worst = spreads.iter().copied().fold(0.0, f64::max);
    let mut found = Vec::new();
    let mut over_budget = Spent::default();
    for &from in &sources {
        for &guest in &progress.on[from] {
            if !movable(guest) || (guest.memory_held_mib() == 0 && guest.vcpus_held() == 0) {
                continue;
            }
            for &to in &targets {
                if to == from {
                    continue;
                }
                let mut gain = 0.0;
                let mut new_worst: f64 = 0.0;
                for (r, &resource) in balance.resources.iter().enumerate() {
                    let (us, ut) = (
                        balance.utilisation(from, resource),
                        balance.utilisation(to, resource),
                    );
                    let (ds, dt) = (
                        balance.share(guest, from, resource),
                        balance.share(guest, to, resource),
                    );
                    let (ns, nt) = (us - ds, ut + dt);
                    gain += us * us + ut * ut - ns * ns - nt * nt;
                    // The extremes among the other hosts: within the first and last three.
                    let other = |(_, h): &&(f64, usize)| *h != from && *h != to;
                    let hi = sorted[r]
                        .iter()
                        .take(3)
                        .find(other)
                        .map_or(f64::MIN, |(u, _)| *u);
                    let lo = sorted[r]
                        .iter()
                        .rev()
                        .take(3)
                        .find(other)
                        .map_or(f64::MAX, |(u, _)| *u);
                    new_worst = new_worst.max(hi.max(ns).max(nt) - lo.min(ns).min(nt));
                }
                if gain > MIN_GAIN && new_worst <= worst + 1e-12 {
                    let spent = progress.spent(guest, balance.hosts[to].name, intent);
                    if !spent.any() {
                        found.push(Candidate {
                            guest,
                            from,
                            to,
                            gain,
                        });
                    } else {
                        over_budget.moves |= spent.moves;
                        over_budget.memory |= spent.memory;
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| {
        b.gain
            .total_cmp(&a.gain)
            .then(a.guest.memory_mib.cmp(&b.guest.memory_mib))
            .then(a.guest.name.cmp(&b.guest.name))
            .then(a.to.cmp(&b.to))
    });
    (found, over_budget)
}

/// Where the rebalance found each guest of its hosts, where they are now, and what has moved.
struct Progress<'t> {
    start: BTreeMap<&'t str, &'t str>,
    /// Host index → its guests now.
    on: Vec<Vec<&'t Guest>>,
    /// Guests away from where the rebalance found them → their memory.
    moved: BTreeMap<&'t str, u64>,
    moved_memory: u64,
}

impl<'t> Progress<'t> {
    fn new(
        world: &World<'_, 't>,
        start: BTreeMap<&'t str, &'t str>,
        index: &HashMap<&'t str, usize>,
    ) -> Self {
        let mut on = vec![Vec::new(); index.len()];
        for (guest, host) in &start {
            if let (Some(guest), Some(&i)) = (world.topo.guests.get(*guest), index.get(host)) {
                on[i].push(guest);
            }
        }
        Progress {
            start,
            on,
            moved: BTreeMap::new(),
            moved_memory: 0,
        }
    }

    fn record(&mut self, guest: &'t Guest, from: usize, to: usize, to_name: &str) {
        self.on[from].retain(|g| g.name != guest.name);
        self.on[to].push(guest);
        if let Some(memory) = self.moved.remove(guest.name.as_str()) {
            self.moved_memory -= memory;
        }
        if self.start.get(guest.name.as_str()) != Some(&to_name) {
            self.moved.insert(guest.name.as_str(), guest.memory_mib);
            self.moved_memory += guest.memory_mib;
        }
    }

    /// Which limits (`max_moves`, `max_moved`) moving `guest` to `to` would exceed (counting
    /// guests away from where the rebalance found them); none: it is within the budget.
    fn spent(&self, guest: &Guest, to: &str, intent: &crate::config::RebalanceIntent) -> Spent {
        let back_home = self.start.get(guest.name.as_str()) == Some(&to);
        let already = self.moved.get(guest.name.as_str()).copied();
        let moves = self.moved.len() - usize::from(already.is_some()) + usize::from(!back_home);
        let memory =
            self.moved_memory - already.unwrap_or(0) + if back_home { 0 } else { guest.memory_mib };
        Spent {
            moves: intent.max_moves.is_some_and(|max| moves > max as usize),
            memory: intent.max_moved_mib.is_some_and(|max| memory > max),
        }
    }
}

fn resource_name(resource: Resource) -> &'static str {
    match resource {
        Resource::Memory => "memory",
        Resource::Vcpus => "vcpus",
    }
}

/// How the rebalance ended: spreads, moves, why it stopped, and that in one sentence.
#[allow(clippy::too_many_arguments)]
fn outcome(
    intent: &crate::config::RebalanceIntent,
    resources: &[Resource],
    before: &[f64],
    after: &[f64],
    stop: Stop,
    spent: Spent,
    start: &BTreeMap<&str, &str>,
    ledger: &Ledger,
) -> RebalanceOutcome {
    let moves = start
        .iter()
        .filter(|(g, from)| ledger.host_of(g).is_some_and(|now| now != **from))
        .count();
    let mut budget = Vec::new();
    if stop == Stop::Budget {
        if let Some(moves) = intent.max_moves.filter(|_| spent.moves) {
            budget.push(format!("max_moves = {moves}"));
        }
        if let Some(memory) = intent.max_moved_mib.filter(|_| spent.memory) {
            budget.push(format!("max_moved = {}", mib(memory)));
        }
    }
    let widest = after.iter().copied().fold(0.0, f64::max);
    let above_threshold = (widest - intent.threshold).max(0.0);
    let spreads: Vec<ResourceSpread> = resources
        .iter()
        .zip(before.iter().zip(after))
        .map(|(&r, (&before, &after))| ResourceSpread {
            resource: resource_name(r).into(),
            before,
            after,
        })
        .collect();
    let mut outcome = RebalanceOutcome {
        name: intent.name.value.clone(),
        spreads,
        threshold: intent.threshold,
        moves,
        stop,
        budget,
        above_threshold,
        message: String::new(),
    };
    outcome.message = message(&outcome);
    outcome
}

fn spread_names(outcome: &RebalanceOutcome) -> String {
    let names: Vec<&str> = outcome
        .spreads
        .iter()
        .map(|s| {
            if s.resource == "vcpus" {
                "vCPU"
            } else {
                "memory"
            }
        })
        .collect();
    names.join("/")
}

fn percents(values: impl Iterator<Item = f64>) -> String {
    values.map(percent).collect::<Vec<_>>().join("/")
}

/// `memory spread 50.0% → 37.5%` (`memory/vCPU spread 50.0%/20.0% → …` for both).
fn spread_text(outcome: &RebalanceOutcome) -> String {
    format!(
        "{} spread {} → {}",
        spread_names(outcome),
        percents(outcome.spreads.iter().map(|s| s.before)),
        percents(outcome.spreads.iter().map(|s| s.after))
    )
}

/// `memory spread 5.0%`: the spread of a rebalance that moves nothing.
fn spread_now(outcome: &RebalanceOutcome) -> String {
    format!(
        "{} spread {}",
        spread_names(outcome),
        percents(outcome.spreads.iter().map(|s| s.after))
    )
}

/// The plan's sentence about a rebalance: where it got, why it stopped, and whether the next
/// plan has more to do.
fn message(outcome: &RebalanceOutcome) -> String {
    let moves = match outcome.moves {
        1 => "1 move".to_string(),
        n => format!("{n} moves"),
    };
    let name = &outcome.name;
    let threshold = percent(outcome.threshold);
    let spread = if outcome.moves == 0 {
        spread_now(outcome)
    } else {
        spread_text(outcome)
    };
    let above = points(outcome.above_threshold);
    match (outcome.stop, outcome.moves) {
        (Stop::WithinThreshold, 0) => format!(
            "rebalance \"{name}\" has nothing to do: {spread}, within the threshold of {threshold}"
        ),
        (Stop::WithinThreshold, _) => format!(
            "rebalance \"{name}\" completes with {moves}: {spread}, within the threshold of {threshold}"
        ),
        (Stop::NoGain, 0) => format!(
            "rebalance \"{name}\" has nothing to do: {spread}, {above} points above the threshold of {threshold}, \
             but no move evens the hosts out"
        ),
        (Stop::NoGain, _) => format!(
            "rebalance \"{name}\" completes with {moves}: {spread}, {above} points above the threshold of {threshold}, \
             but no further move evens the hosts out (the next plan proposes nothing more)"
        ),
        (Stop::Budget, _) => format!(
            "rebalance \"{name}\" stopped at its budget ({}) after {moves}: {spread}, still {above} points above \
             the threshold of {threshold}; the next plan continues it",
            outcome.budget.join(", ")
        ),
    }
}

/// The prefix of each rebalancing move's reason.
fn summary(intent: &crate::config::RebalanceIntent, outcome: &RebalanceOutcome) -> String {
    let mut text = format!(
        "rebalance \"{}\" ({}, threshold {}, {} move{}",
        intent.name.value,
        spread_text(outcome),
        percent(intent.threshold),
        outcome.moves,
        if outcome.moves == 1 { "" } else { "s" }
    );
    match outcome.stop {
        Stop::WithinThreshold => {}
        Stop::NoGain => text.push_str("; no further move evens the hosts out"),
        Stop::Budget => text.push_str(&format!(
            "; stopped by the budget ({})",
            outcome.budget.join(", ")
        )),
    }
    text.push(')');
    text
}

/// A utilisation difference in percentage points: `27.5`.
fn points(value: f64) -> String {
    format!("{:.1}", value * 100.0)
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}
