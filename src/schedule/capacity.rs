//! Cross-move edges that keep every host within memory and vCPU capacity at every instant.
//!
//! # Model
//!
//! A guest that holds resources (running, paused, unknown) holds them on its source until its
//! move's *release* and on its target from its move's *claim*:
//!
//! | mode          | claim                      | release                              |
//! |---------------|----------------------------|--------------------------------------|
//! | offline       | start of STARTUP_GUEST     | end of STOP_GUEST                    |
//! | live          | start of MIGRATE_GUEST     | end of MIGRATE_GUEST (both hold meanwhile) |
//! | offline_force | start of STARTUP_GUEST     | end of STOP_GUEST; none if the source is dead |
//!
//! A shut-off guest claims and releases nothing. An edge `a → b` means `b` starts after `a`
//! ends; steps without a path between them may run in any order or overlap.
//!
//! # Construction, per host `h`
//!
//! `free = capacity − usage now` (both dimensions; may be negative if `h` is already over).
//! Incoming claims are taken in a fixed order (pivot hops, then live moves, then biggest first):
//! those that fit together into `free` form the set `F` and get no edge. The others form a chain
//! `C₁ … Cₖ`; outgoing releases are ordered `R₁ … Rₘ` (offline releases first, since STOP_GUEST
//! waits for nothing and so can never close a cycle, then live ones; biggest first), and `Cᵢ`
//! gets an edge from every release of the shortest prefix `Pᵢ = R₁ … Rⱼ` with
//! `free + Σ Pᵢ ≥ Σ F + Σ C₁…Cᵢ` in both dimensions. Prefixes grow with `i`.
//!
//! # Invariant
//!
//! Under every execution order the graph allows, at every instant and for every host `h`,
//! memory and vCPU usage stay ≤ `max(capacity, usage now)`, i.e. within capacity whenever the
//! host starts within it, and a host already above it never climbs higher.
//!
//! Proof sketch: at any instant let `i` be the highest chain index whose claim has started
//! (`i = 0` if none). Claims started ⊆ `F ∪ {C₁ … Cᵢ}`, and `Cᵢ` started only after all of `Pᵢ`
//! ended, so releases ended ⊇ `Pᵢ`. Hence usage ≤ `now + ΣF + ΣC₁…Cᵢ − ΣPᵢ ≤ capacity`
//! (for `i = 0`: `now + ΣF ≤ capacity`, or `now` when `F` is empty). No claim-to-claim edge is
//! needed: the bound uses the *highest* started index, whatever started below it. Leaving such
//! edges out avoids orderings that could close cycles for nothing.
//!
//! The same bound gives each host's peak: `max(now, now + ΣF, maxᵢ(now + ΣF + ΣC₁…Cᵢ − ΣPᵢ))`,
//! an upper bound on the worst instant any execution order reaches.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Add, Sub};

use crate::config::MigrationMode;
use crate::diff::Move;
use crate::diff::units::{mib, mib_signed, vcpus};
use crate::inventory::Topology;

use super::error::ScheduleError;
use super::expand::Expansion;
use super::limits::Limits;

/// Memory (MiB) and vCPUs, signed so that room can be negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub memory: i64,
    pub vcpus: i64,
}

impl Usage {
    pub fn new(memory: u64, vcpus: u64) -> Self {
        Usage {
            memory: memory as i64,
            vcpus: vcpus as i64,
        }
    }

    /// Both dimensions within `room`.
    pub fn fits_in(self, room: Usage) -> bool {
        self.memory <= room.memory && self.vcpus <= room.vcpus
    }

    fn max(self, other: Usage) -> Usage {
        Usage {
            memory: self.memory.max(other.memory),
            vcpus: self.vcpus.max(other.vcpus),
        }
    }

    /// `192 GiB and 8 vCPUs`.
    pub fn describe(self) -> String {
        format!("{} and {}", mib_signed(self.memory), vcpus(self.vcpus))
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            memory: self.memory + o.memory,
            vcpus: self.vcpus + o.vcpus,
        }
    }
}

impl Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage {
            memory: self.memory - o.memory,
            vcpus: self.vcpus - o.vcpus,
        }
    }
}

/// What each host holds now.
pub(crate) fn current_usage(topo: &Topology) -> HashMap<&str, Usage> {
    let mut usage: HashMap<&str, Usage> = topo
        .hosts
        .keys()
        .map(|h| (h.as_str(), Usage::default()))
        .collect();
    for guest in topo.guests.values() {
        let u = usage.entry(guest.host.as_str()).or_default();
        *u = *u + Usage::new(guest.memory_held_mib(), u64::from(guest.vcpus_held()));
    }
    usage
}

/// A chained claim and what it waits for; kept to explain cycles.
#[derive(Debug, Clone)]
pub(crate) struct Wait {
    pub host: String,
    pub claim_move: usize,
    pub claim_node: usize,
    pub need: Usage,
    /// Room left on the host for this claim before any release.
    pub room: Usage,
    /// (move, release step) of every release it waits for.
    pub releases: Vec<(usize, usize)>,
}

pub(crate) struct CapacityPlan {
    /// (release step, claim step): the claim starts after the release ends.
    pub edges: Vec<(usize, usize)>,
    pub waits: Vec<Wait>,
    /// Host → (peak memory MiB, peak vCPUs).
    pub peaks: BTreeMap<String, (u64, u32)>,
}

/// One claim or release of a move on a host.
#[derive(Debug, Clone, Copy)]
struct Flow {
    move_index: usize,
    node: usize,
    usage: Usage,
    live: bool,
    pivot: bool,
}

#[derive(Default)]
struct HostFlows {
    claims: Vec<Flow>,
    releases: Vec<Flow>,
}

/// The capacity edges and peaks for `moves` as expanded in `expansion` (see the module docs).
pub(crate) fn plan(
    moves: &[Move],
    expansion: &Expansion,
    topo: &Topology,
    limits: &Limits,
    current: &HashMap<&str, Usage>,
) -> Result<CapacityPlan, ScheduleError> {
    let mut flows: BTreeMap<&str, HostFlows> = BTreeMap::new();
    for (index, mv) in moves.iter().enumerate() {
        let Some(guest) = topo.guests.get(&mv.guest) else {
            continue;
        };
        let usage = Usage::new(guest.memory_held_mib(), u64::from(guest.vcpus_held()));
        let flow = |node| Flow {
            move_index: index,
            node,
            usage,
            live: mv.mode == MigrationMode::Live,
            pivot: mv.pivot,
        };
        if let Some(node) = expansion.claim[index] {
            flows
                .entry(mv.to.as_str())
                .or_default()
                .claims
                .push(flow(node));
        }
        if let Some(node) = expansion.release[index] {
            flows
                .entry(mv.from.as_str())
                .or_default()
                .releases
                .push(flow(node));
        }
    }

    let mut plan = CapacityPlan {
        edges: Vec::new(),
        waits: Vec::new(),
        peaks: BTreeMap::new(),
    };
    for host in topo.hosts.values() {
        let now = current.get(host.name.as_str()).copied().unwrap_or_default();
        plan.peaks.insert(host.name.clone(), to_peak(now));
    }
    for (host, mut flow) in flows {
        let Some(h) = topo.hosts.get(host) else {
            continue;
        };
        let limit = limits.of(h);
        let capacity = Usage::new(limit.memory_mib, u64::from(limit.vcpus));
        let now = current.get(host).copied().unwrap_or_default();
        let key = |f: &Flow| {
            let guest = moves[f.move_index].guest.as_str();
            (
                std::cmp::Reverse(f.usage.memory),
                std::cmp::Reverse(f.usage.vcpus),
                guest,
                f.move_index,
            )
        };
        flow.claims
            .sort_by(|a, b| (!a.pivot, !a.live, key(a)).cmp(&(!b.pivot, !b.live, key(b))));
        flow.releases
            .sort_by(|a, b| (a.live, key(a)).cmp(&(b.live, key(b))));
        let peak = order_host(host, capacity, now, &flow, moves, &mut plan)?;
        plan.peaks.insert(host.to_string(), to_peak(peak));
    }
    Ok(plan)
}

/// Splits `host`'s claims into those that fit now and the chain, adds the chain's edges, and
/// returns the host's peak.
fn order_host(
    host: &str,
    capacity: Usage,
    now: Usage,
    flow: &HostFlows,
    moves: &[Move],
    plan: &mut CapacityPlan,
) -> Result<Usage, ScheduleError> {
    let free = capacity - now;
    let mut claimed = Usage::default();
    let mut chain = Vec::new();
    for claim in &flow.claims {
        if (claimed + claim.usage).fits_in(free) {
            claimed = claimed + claim.usage;
        } else {
            chain.push(*claim);
        }
    }
    let mut peak = now.max(now + claimed);
    let mut released = Usage::default();
    let mut prefix = 0;
    for claim in chain {
        let room = free - claimed;
        claimed = claimed + claim.usage;
        while !claimed.fits_in(free + released) && prefix < flow.releases.len() {
            released = released + flow.releases[prefix].usage;
            prefix += 1;
        }
        if !claimed.fits_in(free + released) {
            return Err(overcommitted(host, capacity, now, flow, moves));
        }
        let waited = &flow.releases[..prefix];
        plan.edges
            .extend(waited.iter().map(|r| (r.node, claim.node)));
        plan.waits.push(Wait {
            host: host.to_string(),
            claim_move: claim.move_index,
            claim_node: claim.node,
            need: claim.usage,
            room,
            releases: waited.iter().map(|r| (r.move_index, r.node)).collect(),
        });
        peak = peak.max(now + claimed - released);
    }
    Ok(peak)
}

fn to_peak(usage: Usage) -> (u64, u32) {
    (
        usage.memory.max(0) as u64,
        usage.vcpus.clamp(0, i64::from(u32::MAX)) as u32,
    )
}

/// Even with every move off it done, `host` cannot hold every move onto it.
fn overcommitted(
    host: &str,
    capacity: Usage,
    now: Usage,
    flow: &HostFlows,
    moves: &[Move],
) -> ScheduleError {
    let total = |flows: &[Flow]| flows.iter().fold(Usage::default(), |sum, f| sum + f.usage);
    let names = |flows: &[Flow]| -> Vec<String> {
        flows
            .iter()
            .map(|f| moves[f.move_index].guest.clone())
            .collect()
    };
    let (incoming, outgoing) = (total(&flow.claims), total(&flow.releases));
    let after = now + incoming - outgoing;
    let message = format!(
        "{host} cannot hold every guest planned onto it: {} usable, {} in use now; moves onto it ({}) bring {}, \
         moves off it ({}) free {}, which leaves {} in use after the plan",
        format_args!(
            "{} and {}",
            mib(capacity.memory as u64),
            vcpus(capacity.vcpus)
        ),
        now.describe(),
        names(&flow.claims).join(", "),
        incoming.describe(),
        if flow.releases.is_empty() {
            "none".to_string()
        } else {
            names(&flow.releases).join(", ")
        },
        outgoing.describe(),
        after.describe(),
    );
    let mut guests = names(&flow.claims);
    guests.sort();
    ScheduleError::Infeasible {
        message,
        hosts: vec![host.to_string()],
        guests,
    }
}
