//! Breaking live swap cycles through a pivot host, or explaining why none can be broken.
//!
//! Offline moves never form a capacity cycle: a release (STOP_GUEST) is the first step of its
//! move and waits for nothing. Live moves hold on both hosts while they migrate, so two full
//! hosts swapping running guests wait on each other. One guest of the cycle then migrates first
//! to a third host (the pivot) with room that stays free whatever else happens, and on to its
//! target from there: the hop needs no release, and its end frees the room the other guest was
//! waiting for.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::config::MigrationMode;
use crate::diff::Move;
use crate::diff::rules::host_blockers;
use crate::diff::units::{mib_signed, vcpus};
use crate::inventory::{Host, Topology};

use super::capacity::{CapacityPlan, Usage};
use super::error::ScheduleError;
use super::expand::Expansion;
use super::limits::Limits;

/// How many hosts an explanation names per guest before summarising.
const HOSTS_IN_EXPLANATION: usize = 6;

/// A move to route through `host`.
pub(crate) struct Pivot {
    pub move_index: usize,
    pub host: String,
    pub reason: String,
}

/// One pivot per cycle, chosen against the same state so that two pivots of one round never
/// count the same room twice; or why a cycle cannot be broken.
pub(crate) fn break_cycles(
    cycles: &[Vec<usize>],
    moves: &[Move],
    expansion: &Expansion,
    capacity: &CapacityPlan,
    topo: &Topology,
    limits: &Limits,
    current: &HashMap<&str, Usage>,
) -> Result<Vec<Pivot>, ScheduleError> {
    let mut room = RoomLedger::new(moves, expansion, topo, limits, current);
    let mut pivots = Vec::new();
    for cycle in cycles {
        let story = Story::of(cycle, moves, expansion, capacity, topo);
        if !limits.allow_pivot {
            return Err(
                story.infeasible("Pivot moves through a third host are not allowed.".into())
            );
        }
        let mut failures = Vec::new();
        let mut chosen = None;
        for candidate in candidates(cycle, moves, expansion, topo) {
            match room.choose(candidate, moves, topo, limits) {
                Ok(pivot) => {
                    chosen = Some(pivot);
                    break;
                }
                Err(why) => failures.push(why),
            }
        }
        match chosen {
            Some((move_index, host, free)) => {
                let reason = format!(
                    "pivot: {} stops over on {host} so that the live moves between {} can proceed ({host} has the most room: {})",
                    moves[move_index].guest,
                    story
                        .hosts
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" and "),
                    free.describe()
                );
                pivots.push(Pivot {
                    move_index,
                    host,
                    reason,
                });
            }
            None if failures.is_empty() => {
                return Err(story.infeasible(
                    "No live move of this cycle can be routed through a pivot host.".into(),
                ));
            }
            None => return Err(story.infeasible(failures.join(" "))),
        }
    }
    Ok(pivots)
}

/// Routes each chosen move through its pivot: `from → pivot` (a new move, `pivot = true`),
/// then the original move leaves from the pivot.
pub(crate) fn insert(mut moves: Vec<Move>, mut pivots: Vec<Pivot>) -> Vec<Move> {
    pivots.sort_by_key(|p| std::cmp::Reverse(p.move_index));
    for pivot in pivots {
        let original = &mut moves[pivot.move_index];
        let hop = Move {
            to: pivot.host.clone(),
            reason: pivot.reason,
            pivot: true,
            ..original.clone()
        };
        original.from = pivot.host.clone();
        original
            .reason
            .push_str(&format!(" (via pivot {})", pivot.host));
        moves.insert(pivot.move_index, hop);
    }
    moves
}

/// Live moves of the cycle whose claim waits inside it, smallest guest first, skipping guests
/// already routed through a pivot.
fn candidates(
    cycle: &[usize],
    moves: &[Move],
    expansion: &Expansion,
    topo: &Topology,
) -> Vec<usize> {
    let in_cycle: HashSet<usize> = cycle.iter().copied().collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for mv in moves {
        *seen.entry(mv.guest.as_str()).or_default() += 1;
    }
    let mut found: Vec<usize> = (0..moves.len())
        .filter(|&i| moves[i].mode == MigrationMode::Live && seen[moves[i].guest.as_str()] == 1)
        .filter(|&i| expansion.claim[i].is_some_and(|c| in_cycle.contains(&c)))
        .collect();
    let memory = |i: usize| {
        topo.guests
            .get(&moves[i].guest)
            .map_or(0, |g| g.memory_held_mib())
    };
    found.sort_by(|a, b| (memory(*a), &moves[*a].guest).cmp(&(memory(*b), &moves[*b].guest)));
    found
}

/// Room that stays free on each host whatever the order: capacity − usage now − every claim
/// planned onto it; and how many guests each host may end up with.
struct RoomLedger<'t> {
    room: HashMap<&'t str, Usage>,
    guests: HashMap<&'t str, u32>,
}

impl<'t> RoomLedger<'t> {
    fn new(
        moves: &[Move],
        expansion: &Expansion,
        topo: &'t Topology,
        limits: &Limits,
        current: &HashMap<&str, Usage>,
    ) -> Self {
        let mut room: HashMap<&str, Usage> = HashMap::with_capacity(topo.hosts.len());
        for host in topo.hosts.values() {
            let limit = limits.of(host);
            let now = current.get(host.name.as_str()).copied().unwrap_or_default();
            room.insert(
                host.name.as_str(),
                Usage::new(limit.memory_mib, u64::from(limit.vcpus)) - now,
            );
        }
        let mut guests: HashMap<&str, u32> = HashMap::with_capacity(topo.hosts.len());
        for guest in topo.guests.values() {
            if let Some((name, _)) = topo.hosts.get_key_value(&guest.host) {
                *guests.entry(name.as_str()).or_default() += 1;
            }
        }
        for (index, mv) in moves.iter().enumerate() {
            let Some((name, _)) = topo.hosts.get_key_value(&mv.to) else {
                continue;
            };
            *guests.entry(name.as_str()).or_default() += 1;
            if expansion.claim[index].is_some()
                && let Some(guest) = topo.guests.get(&mv.guest)
            {
                let need = Usage::new(guest.memory_held_mib(), u64::from(guest.vcpus_held()));
                if let Some(r) = room.get_mut(name.as_str()) {
                    *r = *r - need;
                }
            }
        }
        RoomLedger { room, guests }
    }

    /// The host with the most room that satisfies the guest's rules (ties: fewer guests, name),
    /// booked for it; or why no host does.
    fn choose(
        &mut self,
        index: usize,
        moves: &[Move],
        topo: &'t Topology,
        limits: &Limits,
    ) -> Result<(usize, String, Usage), String> {
        let mv = &moves[index];
        let Some(guest) = topo.guests.get(&mv.guest) else {
            return Err(format!("{} is not in the topology.", mv.guest));
        };
        let need = Usage::new(guest.memory_held_mib(), u64::from(guest.vcpus_held()));
        let avoid = cluster_hosts(&mv.guest, moves, topo);
        let (source, target) = (topo.hosts.get(&mv.from), topo.hosts.get(&mv.to));
        let mut best: Option<(&Host, Usage, u32)> = None;
        let mut refusals = Vec::new();
        for host in topo
            .hosts
            .values()
            .filter(|h| h.name != mv.from && h.name != mv.to)
        {
            match self.refusal(host, need, &mv.guest, source, target, guest, &avoid, limits) {
                Some(why) => refusals.push(format!("{}: {why}", host.name)),
                None => {
                    let room = self.room[host.name.as_str()];
                    let count = self.guests.get(host.name.as_str()).copied().unwrap_or(0);
                    if best.is_none_or(|(_, r, c)| {
                        room.memory > r.memory || (room.memory == r.memory && count < c)
                    }) {
                        best = Some((host, room, count));
                    }
                }
            }
        }
        if let Some((host, room, _)) = best {
            let name = host.name.as_str();
            if let Some(r) = self.room.get_mut(name) {
                *r = *r - need;
            }
            *self.guests.entry(name).or_default() += 1;
            return Ok((index, host.name.clone(), room));
        }
        let shown = refusals.len().min(HOSTS_IN_EXPLANATION);
        let mut why = format!(
            "No pivot host can hold {} ({}) meanwhile",
            mv.guest,
            need.describe()
        );
        if refusals.is_empty() {
            why.push_str(": there is no third host.");
        } else {
            why.push_str(&format!(": {}", refusals[..shown].join("; ")));
            if refusals.len() > shown {
                why.push_str(&format!("; and {} more hosts", refusals.len() - shown));
            }
            why.push('.');
        }
        Err(why)
    }

    #[allow(clippy::too_many_arguments)]
    fn refusal(
        &self,
        host: &Host,
        need: Usage,
        guest_name: &str,
        source: Option<&Host>,
        target: Option<&Host>,
        guest: &crate::inventory::Guest,
        avoid: &BTreeSet<&str>,
        limits: &Limits,
    ) -> Option<String> {
        let limit = limits.of(host);
        if !limit.accepts_guests {
            return Some("takes no guests (drained or disabled)".into());
        }
        if let Some(b) = host_blockers(guest, source, host, MigrationMode::Live)
            .into_iter()
            .next()
        {
            return Some(b.message);
        }
        if let Some(target) = target
            && let Some(b) = host_blockers(guest, Some(host), target, MigrationMode::Live)
                .into_iter()
                .next()
        {
            return Some(format!(
                "{} could not follow from there ({})",
                guest_name, b.message
            ));
        }
        let room = self
            .room
            .get(host.name.as_str())
            .copied()
            .unwrap_or_default();
        if !need.fits_in(room) {
            return Some(format!(
                "only {} and {} free after the planned moves",
                mib_signed(room.memory),
                vcpus(room.vcpus)
            ));
        }
        if let Some(max) = limit.max_guests
            && self.guests.get(host.name.as_str()).copied().unwrap_or(0) >= max
        {
            return Some(format!("already at max_guests = {max}"));
        }
        if avoid.contains(host.name.as_str()) {
            return Some(format!(
                "a RAC cluster peer of {guest_name} is or will be there"
            ));
        }
        None
    }
}

/// Hosts where a member of one of `guest`'s RAC clusters is now or is moving to.
fn cluster_hosts<'t>(guest: &str, moves: &'t [Move], topo: &'t Topology) -> BTreeSet<&'t str> {
    let peers: HashSet<&str> = topo
        .clusters
        .values()
        .filter(|c| c.members.iter().any(|m| m == guest))
        .flat_map(|c| c.members.iter().map(String::as_str))
        .filter(|m| *m != guest)
        .collect();
    let mut hosts: BTreeSet<&str> = peers
        .iter()
        .filter_map(|p| topo.guests.get(*p))
        .map(|g| g.host.as_str())
        .collect();
    hosts.extend(
        moves
            .iter()
            .filter(|m| peers.contains(m.guest.as_str()))
            .map(|m| m.to.as_str()),
    );
    hosts
}

/// What waits for what in one cycle, in words.
struct Story {
    sentences: Vec<String>,
    hosts: BTreeSet<String>,
    guests: BTreeSet<String>,
}

impl Story {
    fn of(
        cycle: &[usize],
        moves: &[Move],
        expansion: &Expansion,
        capacity: &CapacityPlan,
        topo: &Topology,
    ) -> Self {
        let in_cycle: HashSet<usize> = cycle.iter().copied().collect();
        let mut story = Story {
            sentences: Vec::new(),
            hosts: BTreeSet::new(),
            guests: BTreeSet::new(),
        };
        for &node in cycle {
            story
                .guests
                .insert(moves[expansion.nodes[node].move_index].guest.clone());
        }
        for wait in capacity
            .waits
            .iter()
            .filter(|w| in_cycle.contains(&w.claim_node))
        {
            let blocking: Vec<usize> = wait
                .releases
                .iter()
                .filter(|(_, node)| in_cycle.contains(node))
                .map(|(m, _)| *m)
                .collect();
            if blocking.is_empty() {
                continue;
            }
            let claimant = &moves[wait.claim_move].guest;
            let off: Vec<String> = blocking
                .iter()
                .map(|m| {
                    let guest = &moves[*m].guest;
                    match topo.guests.get(guest) {
                        Some(g) => format!("{guest}, {}", mib_signed(g.memory_held_mib() as i64)),
                        None => guest.clone(),
                    }
                })
                .collect();
            let towards: BTreeSet<&str> = blocking.iter().map(|m| moves[*m].to.as_str()).collect();
            let (needed, available) = shortfall(wait.need, wait.room);
            story.sentences.push(format!(
                "{} needs {needed} free for {claimant} but has {available}; moves off it ({}) wait for room on {}",
                wait.host,
                off.join("; "),
                towards.into_iter().collect::<Vec<_>>().join(", ")
            ));
            story.hosts.insert(wait.host.clone());
            story
                .hosts
                .extend(blocking.iter().map(|m| moves[*m].to.clone()));
        }
        story
    }

    fn infeasible(&self, tail: String) -> ScheduleError {
        let message = format!(
            "no order of the moves keeps every host within capacity: the live moves of {} wait on each other: {}. {tail}",
            self.guests.iter().cloned().collect::<Vec<_>>().join(", "),
            self.sentences.join("; ")
        );
        ScheduleError::Infeasible {
            message,
            hosts: self.hosts.iter().cloned().collect(),
            guests: self.guests.iter().cloned().collect(),
        }
    }
}

/// (needed, available) in the dimension that falls short: memory, vCPUs, or both.
/// Room below zero (a host already over capacity) is shown as none.
fn shortfall(need: Usage, room: Usage) -> (String, String) {
    let memory_short = need.memory > room.memory;
    let vcpus_short = need.vcpus > room.vcpus;
    let room = Usage {
        memory: room.memory.max(0),
        vcpus: room.vcpus.max(0),
    };
    match (memory_short, vcpus_short) {
        (true, true) => (need.describe(), room.describe()),
        (false, true) => (vcpus(need.vcpus), vcpus(room.vcpus)),
        _ => (mib_signed(need.memory), mib_signed(room.memory)),
    }
}
