//! Automatic target choice for guests that must move but have no host given: guests of drained
//! and evacuated hosts, guests on a host a ban forbids, the surplus members of an anti-affinity
//! group sharing a host, and affinity groups that must come together.
//!
//! A target is chosen in three stages:
//! 1. **Rules** rule hosts out: the host must take guests (not drained, evacuated or disabled),
//!    answer, accept the guest from its source (architecture, image, CPU model for live moves),
//!    not be banned for it, hold no member of its anti-affinity groups (explicit rules and, by
//!    default, its RAC clusters), and have room for its memory and vCPUs (`cpus × overcommit`)
//!    under `max_guests`, counting every move decided so far.
//! 2. **Cost of the move**: a host with the source's CPU model (live-capable) beats one
//!    without; then one with the source's image version; then one with fewer bridges to create.
//! 3. **Least loaded**: most free memory after the move, then fewest guests, then name.
//!
//! Guests are placed biggest first (affinity groups before single guests), so the result does
//! not depend on map order and big guests are not left without room by small ones. Each move's
//! reason says why its target won and why the runner-up lost.
//!
//! Speed: hosts are grouped in classes of equal (architecture, CPU model, image version, known
//! bridges), every property the static rules and the cost look at, and classes in static groups
//! of equal (architecture, CPU model, image version). The static rules and the cost's host part
//! run once per group and guest. The bridge part of the cost is a guest's bridges that a
//! class lacks: bridges every class of a group has count once per group; for the others, each
//! (bridge, static group) has a ranking of the hosts that have it (a `BTreeSet`, best first).
//! A cost tier is a set of parts, each the classes of one group with `k` of the guest's `m`
//! other bridges: such a host lacks `m - k` of them, so it is in at least one of any
//! `m - k + 1` of their rankings, and the part is walked through the smallest ones (counting a
//! host in the first that holds it). The classes with none of its bridges are walked in the
//! group's ranking. Every walk stops at the first host that passes the load-dependent rules
//! (bans, anti-affinity, memory, vCPUs, `max_guests`), so no class is ever listed: a bridge on
//! a fixed share of the hosts (a VLAN on 1 %, the untagged client network on 90 %) does not
//! make a guest's placement grow with the fleet. A drain therefore costs about
//! `moves × (groups + hosts walked) × log(hosts)`; hosts walked grows only where the cheapest
//! parts hold few hosts that pass (a host with both of two rare bridges is searched for along
//! the rarer one's ranking).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::inventory::fast_hash::FastMap;

use crate::config::MigrationMode;
use crate::inventory::{Guest, Host, ImageVersion};

use super::capacity::Ledger;
use super::explain;
use super::fit::{
    Constraint, Need, Violation, World, capacity_violations, describe, rule_violations,
    static_violations,
};
use super::model::MoveProblem;
use super::rules::effective_mode;
use super::units::{memory_shortfall, mib, mib_signed, vcpus};

/// A guest that needs a target.
pub(crate) struct Request<'t> {
    pub guest: &'t Guest,
    pub mode: MigrationMode,
    /// Why it moves; starts the reason (`drain exa01adm01`, `ban rule "old"`).
    pub why: String,
    /// Where it leaves, for "no host can take …" (`off drained exa01adm01`).
    pub leaving: String,
}

pub(crate) enum Outcome {
    Chosen { host: String, reason: String },
    Unplaced(MoveProblem),
}

/// How many hosts a reason names besides the winner and the runner-up.
const OTHERS_IN_REASON: usize = 3;

/// Rank of a host: most free memory first, then fewest guests, then name (hosts are indexed in
/// name order, so the index breaks ties by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    free_memory: Reverse<i64>,
    guests: u32,
    host: usize,
}

impl Rank {
    fn free_memory(&self) -> i64 {
        self.free_memory.0
    }
}

/// What a move onto a host costs beyond load; lower is better, compared field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cost {
    /// The target's CPU model differs from the source's: the guest cannot move live there.
    cpu_differs: bool,
    /// The target runs another image version than the source.
    image_differs: bool,
    /// Bridges the guest needs that the target is not known to have.
    bridges_to_create: usize,
}

/// Hosts that share every property the static rules and the cost read.
struct Class<'t> {
    /// A host of the class, to evaluate the rules once for all of them.
    representative: usize,
    /// Index of the class's architecture, CPU model and image among all classes': the static
    /// checks read only these, so they run once per such group and guest.
    static_group: usize,
    bridges: &'t BTreeSet<String>,
    ranking: BTreeSet<Rank>,
}

type ClassKey<'t> = (
    Option<&'t str>,
    Option<&'t str>,
    Option<&'t ImageVersion>,
    &'t BTreeSet<String>,
);

/// The part of a host class the static checks read: architecture, CPU model, image version.
type StaticKey<'t> = (Option<&'t str>, Option<&'t str>, Option<&'t ImageVersion>);

/// Bridges known to exist on a host; without SSH facts, those its own domains use.
fn known_bridges(host: &Host) -> &BTreeSet<String> {
    host.bridges.as_ref().unwrap_or(&host.bridges_in_use)
}

/// The hosts that take guests, ranked, and the decisions made on them.
pub(crate) struct Placer<'t> {
    hosts: Vec<&'t Host>,
    /// Per host, its memory capacity for guests (MiB): read once, where ranking a host looked
    /// its rules up by name every time it moved.
    capacity_mib: Vec<i64>,
    index_of: FastMap<&'t str, usize>,
    class_of: Vec<usize>,
    classes: Vec<Class<'t>>,
    /// Exhaustive walk only (tests; empty otherwise): bridge name → the classes whose hosts
    /// have it, leaving out the static groups in which every class has it.
    classes_with_bridge: FastMap<&'t str, Vec<usize>>,
    /// Bridge name → the static groups in which every class has it (a bridge every host has,
    /// such as the admin network's): counted once per group, not per class.
    groups_with_bridge: FastMap<&'t str, Vec<usize>>,
    /// Per static group, all its hosts ranked: the classes that have none of a guest's bridges
    /// all cost the same, so their hosts are walked in one ranking instead of class by class.
    group_ranking: Vec<BTreeSet<Rank>>,
    /// Per static group, its first classes in class order ([`OTHERS_IN_REASON`] at most): the
    /// incompatible classes a reason names.
    group_first_classes: Vec<Vec<usize>>,
    /// Per (bridge, static group) in which not every class has the bridge: the hosts of the
    /// group's classes that have it, ranked. A bridge can sit on a fixed share of a big fleet
    /// (a VLAN on 1 % of the hosts, the untagged client network on 90 %), so the classes with
    /// a guest's bridges can number tens of thousands; their cost tiers are walked through
    /// these rankings (a few hosts from the top) and never listed, so placing a guest does not
    /// grow with the fleet.
    bridge_rankings: Vec<BTreeSet<Rank>>,
    /// (bridge, static group) → its index in [`Placer::bridge_rankings`].
    bridge_ranking_of: FastMap<(&'t str, usize), usize>,
    /// Per class, the [`Placer::bridge_rankings`] its hosts are in, sorted.
    rankings_of_class: Vec<Vec<usize>>,
    /// Tests only: list the classes with a guest's bridges and walk them class by class (the
    /// way placement worked before the bridge rankings), to compare both walks.
    exhaustive: bool,
    /// Scratch for the exhaustive walk: per class, how many of the guest's bridges it has.
    bridges_present: Vec<usize>,
}

#[cfg(test)]
thread_local! {
    /// Tests set this to make [`Placer`] walk classes one by one (see `Placer::exhaustive`).
    pub(crate) static EXHAUSTIVE_TIERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn exhaustive_tiers() -> bool {
    #[cfg(test)]
    if EXHAUSTIVE_TIERS.with(|o| o.get()) {
        return true;
    }
    false
}

/// Classes that cost the same for a guest: parts holding the classes with some of its
/// bridges, and static groups whose classes with none of its bridges all belong here.
#[derive(Default)]
struct Tier {
    parts: Vec<Part>,
    groups: Vec<usize>,
}

/// The classes of one static group that have `present` of a guest's bridges (counted
/// without the bridges every class of the group has). `classes` lists them only in the
/// exhaustive walk; otherwise the part is walked through the bridge rankings and may be empty.
struct Part {
    group: usize,
    present: usize,
    classes: Vec<usize>,
}

/// What a walk of a tier looks for, and what it skips.
struct Search<'a, 'w, 't> {
    world: &'a World<'w, 't>,
    ledger: &'a Ledger<'t>,
    guest: &'a Guest,
    need: Need,
    current: Option<usize>,
    excluded: Option<usize>,
    /// Per static group, the guest's bridges that only some of its classes have, with their
    /// [`Placer::bridge_rankings`], smallest ranking first.
    in_group: Vec<Vec<(&'a str, usize)>>,
}

/// The best host found in a walk, and better-ranked hosts that failed with why.
#[derive(Default)]
struct Walk {
    best: Option<Rank>,
    passed_over: Vec<(Rank, String)>,
}

impl<'t> Placer<'t> {
    /// Candidates are the hosts that answer and take guests, ranked by `ledger` as it is now.
    pub fn new(world: &World<'_, 't>, ledger: &Ledger<'t>) -> Self {
        let hosts: Vec<&Host> = world
            .topo
            .hosts
            .values()
            .filter(|h| h.reachable && world.hosts.get(&h.name).is_some_and(|r| r.accepts_guests()))
            .collect();
        // FxHash: a class key holds the host's whole bridge set, hashed once per host.
        let mut class_index: FastMap<ClassKey, usize> = FastMap::default();
        let mut static_index: FastMap<StaticKey, usize> = FastMap::default();
        let mut classes: Vec<Class> = Vec::new();
        let mut class_of = Vec::with_capacity(hosts.len());
        for (i, host) in hosts.iter().enumerate() {
            let bridges = known_bridges(host);
            let static_key = (
                host.arch.as_deref(),
                host.cpu_model.as_deref(),
                host.image_version.as_ref(),
            );
            let groups = static_index.len();
            let static_group = *static_index.entry(static_key).or_insert(groups);
            let key = (static_key.0, static_key.1, static_key.2, bridges);
            let class = *class_index.entry(key).or_insert_with(|| {
                classes.push(Class {
                    representative: i,
                    static_group,
                    bridges,
                    ranking: BTreeSet::new(),
                });
                classes.len() - 1
            });
            class_of.push(class);
        }
        let index_of = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.as_str(), i))
            .collect();
        let static_groups = static_index.len();
        let mut classes_in_group = vec![0usize; static_groups];
        let mut with_bridge_in_group: FastMap<(&str, usize), usize> = FastMap::default();
        for class in &classes {
            classes_in_group[class.static_group] += 1;
            for bridge in class.bridges {
                *with_bridge_in_group
                    .entry((bridge.as_str(), class.static_group))
                    .or_default() += 1;
            }
        }
        let everywhere_in_group = |bridge: &str, group: usize| {
            with_bridge_in_group.get(&(bridge, group)) == Some(&classes_in_group[group])
        };
        let exhaustive = exhaustive_tiers();
        let mut classes_with_bridge: FastMap<&str, Vec<usize>> = FastMap::default();
        let mut bridge_ranking_of: FastMap<(&str, usize), usize> = FastMap::default();
        let mut rankings_of_class: Vec<Vec<usize>> = vec![Vec::new(); classes.len()];
        for (c, class) in classes.iter().enumerate() {
            for bridge in class.bridges {
                if !everywhere_in_group(bridge, class.static_group) {
                    if exhaustive {
                        classes_with_bridge
                            .entry(bridge.as_str())
                            .or_default()
                            .push(c);
                    }
                    let rankings = bridge_ranking_of.len();
                    let ranking = *bridge_ranking_of
                        .entry((bridge.as_str(), class.static_group))
                        .or_insert(rankings);
                    rankings_of_class[c].push(ranking);
                }
            }
        }
        for rankings in &mut rankings_of_class {
            rankings.sort_unstable();
        }
        let mut groups_with_bridge: FastMap<&str, Vec<usize>> = FastMap::default();
        let mut universal: Vec<(&str, usize)> = with_bridge_in_group
            .keys()
            .filter(|(bridge, group)| everywhere_in_group(bridge, *group))
            .copied()
            .collect();
        universal.sort_unstable();
        for (bridge, group) in universal {
            groups_with_bridge.entry(bridge).or_default().push(group);
        }
        let mut group_first_classes = vec![Vec::new(); static_groups];
        for (c, class) in classes.iter().enumerate() {
            let first = &mut group_first_classes[class.static_group];
            if first.len() < OTHERS_IN_REASON {
                first.push(c);
            }
        }
        let bridges_present = vec![0; if exhaustive { classes.len() } else { 0 }];
        let capacity_mib = hosts
            .iter()
            .map(|h| {
                world
                    .hosts
                    .get(&h.name)
                    .map_or(0, |r| r.memory_capacity_mib) as i64
            })
            .collect();
        let mut placer = Placer {
            hosts,
            capacity_mib,
            index_of,
            class_of,
            classes,
            classes_with_bridge,
            groups_with_bridge,
            group_ranking: vec![BTreeSet::new(); static_groups],
            group_first_classes,
            bridge_rankings: vec![BTreeSet::new(); bridge_ranking_of.len()],
            bridge_ranking_of,
            rankings_of_class,
            exhaustive,
            bridges_present,
        };
        placer.rank_all(ledger);
        placer
    }

    /// Fills every ranking with every host: the ranks sorted once, then each ranking built
    /// from its share in order (a bulk build), instead of a million inserts at random places
    /// of the trees on a 100,000-host fleet (each host is in its class's, its group's and one
    /// ranking per rarer bridge).
    fn rank_all(&mut self, ledger: &Ledger) {
        let mut ranks: Vec<Rank> = (0..self.hosts.len())
            .map(|i| self.rank(i, ledger))
            .collect();
        ranks.sort_unstable();
        let mut classes: Vec<Vec<Rank>> = vec![Vec::new(); self.classes.len()];
        let mut groups: Vec<Vec<Rank>> = vec![Vec::new(); self.group_ranking.len()];
        let mut bridges: Vec<Vec<Rank>> = vec![Vec::new(); self.bridge_rankings.len()];
        for rank in ranks {
            let c = self.class_of[rank.host];
            classes[c].push(rank);
            groups[self.classes[c].static_group].push(rank);
            for &ranking in &self.rankings_of_class[c] {
                bridges[ranking].push(rank);
            }
        }
        for (class, ranks) in self.classes.iter_mut().zip(classes) {
            class.ranking = ranks.into_iter().collect();
        }
        for (ranking, ranks) in self.group_ranking.iter_mut().zip(groups) {
            *ranking = ranks.into_iter().collect();
        }
        for (ranking, ranks) in self.bridge_rankings.iter_mut().zip(bridges) {
            *ranking = ranks.into_iter().collect();
        }
    }

    fn insert_rank(&mut self, host: usize, rank: Rank) {
        let c = self.class_of[host];
        let class = &mut self.classes[c];
        class.ranking.insert(rank);
        self.group_ranking[class.static_group].insert(rank);
        for &ranking in &self.rankings_of_class[c] {
            self.bridge_rankings[ranking].insert(rank);
        }
    }

    fn remove_rank(&mut self, host: usize, rank: &Rank) {
        let c = self.class_of[host];
        let class = &mut self.classes[c];
        class.ranking.remove(rank);
        self.group_ranking[class.static_group].remove(rank);
        for &ranking in &self.rankings_of_class[c] {
            self.bridge_rankings[ranking].remove(rank);
        }
    }

    fn rank(&self, host: usize, ledger: &Ledger) -> Rank {
        let load = ledger.load(&self.hosts[host].name);
        Rank {
            free_memory: Reverse(self.capacity_mib[host] - load.memory_mib as i64),
            guests: load.guests,
            host,
        }
    }

    /// Records `guest` moving to `to` in `ledger`, keeping the rankings of both hosts in step.
    pub fn apply(&mut self, ledger: &mut Ledger<'t>, guest: &'t Guest, to: &'t str) {
        let from = ledger.host_of(&guest.name);
        let touched: Vec<usize> = [from, Some(to)]
            .into_iter()
            .flatten()
            .filter_map(|h| self.index_of.get(h).copied())
            .collect();
        for &host in &touched {
            let rank = self.rank(host, ledger);
            self.remove_rank(host, &rank);
        }
        ledger.apply(guest, to);
        for &host in &touched {
            let rank = self.rank(host, ledger);
            self.insert_rank(host, rank);
        }
    }

    /// Chooses a target for one guest and records it, or explains why none fits.
    pub fn place(
        &mut self,
        world: &World<'_, 't>,
        ledger: &mut Ledger<'t>,
        request: &Request<'t>,
    ) -> Outcome {
        let guest = request.guest;
        let (mode, _) = effective_mode(guest, request.mode);
        let need = Need::of(guest);
        let current = ledger
            .host_of(&guest.name)
            .and_then(|h| self.index_of.get(h).copied());
        let source = world.topo.hosts.get(&guest.host);
        let wanted = guest.bridges();

        // The static checks read only the host's architecture, CPU model and image (candidates
        // all answer and take guests): check each such group once per guest, not once per class.
        // The cost's host part (CPU model, image) is also per static group; its bridge part is
        // the wanted bridges a class lacks, counted through the bridge indexes: per group for
        // bridges all its classes have, per class for the others.
        let (checked, host_cost): (Vec<Option<Violation>>, Vec<Cost>) = self
            .group_first_classes
            .iter()
            .map(|classes| {
                let representative = self.hosts[self.classes[classes[0]].representative];
                let violation = static_violations(world, guest, mode, representative)
                    .into_iter()
                    .next();
                (violation, Self::host_cost(source, representative))
            })
            .unzip();
        let mut everywhere = vec![0usize; checked.len()];
        for bridge in &wanted {
            for &group in self
                .groups_with_bridge
                .get(bridge.as_str())
                .into_iter()
                .flatten()
            {
                everywhere[group] += 1;
            }
        }
        let in_group: Vec<Vec<(&str, usize)>> = (0..checked.len())
            .map(|group| {
                let mut rankings: Vec<(&str, usize)> = wanted
                    .iter()
                    .filter_map(|bridge| {
                        let ranking = *self.bridge_ranking_of.get(&(bridge.as_str(), group))?;
                        Some((bridge.as_str(), ranking))
                    })
                    .collect();
                rankings.sort_by_key(|&(_, ranking)| self.bridge_rankings[ranking].len());
                rankings
            })
            .collect();
        let mut with_bridges: Vec<usize> = Vec::new();
        let parts = if self.exhaustive {
            self.parts_by_class(&wanted, &checked, &mut with_bridges)
        } else {
            // Every count of the guest's bridges a class of the group can have; a part with
            // no class is walked at no cost.
            let mut parts = Vec::new();
            for (group, bridges) in in_group.iter().enumerate() {
                if checked[group].is_none() {
                    parts.extend((1..=bridges.len()).map(|present| Part {
                        group,
                        present,
                        classes: Vec::new(),
                    }));
                }
            }
            parts
        };
        let mut tiers: BTreeMap<Cost, Tier> = BTreeMap::new();
        for part in parts {
            let cost = Cost {
                bridges_to_create: wanted.len() - everywhere[part.group] - part.present,
                ..host_cost[part.group]
            };
            tiers.entry(cost).or_default().parts.push(part);
        }
        for (group, violation) in checked.iter().enumerate() {
            if violation.is_none() {
                let cost = Cost {
                    bridges_to_create: wanted.len() - everywhere[group],
                    ..host_cost[group]
                };
                tiers.entry(cost).or_default().groups.push(group);
            }
        }
        // The first incompatible classes in class order, by their best-ranked host.
        let mut incompatible: Vec<(usize, usize)> = checked
            .iter()
            .enumerate()
            .filter(|(_, violation)| violation.is_some())
            .flat_map(|(group, _)| {
                self.group_first_classes[group]
                    .iter()
                    .map(move |&c| (c, group))
            })
            .collect();
        incompatible.sort_unstable();
        incompatible.truncate(OTHERS_IN_REASON);
        let tiers: Vec<(Cost, Tier)> = tiers.into_iter().collect();

        let mut search = Search {
            world,
            ledger,
            guest,
            need,
            current,
            excluded: None,
            in_group,
        };
        let mut passed_over: Vec<(Rank, String)> = Vec::new();
        let mut winner: Option<(usize, Rank)> = None;
        for (t, (_, members)) in tiers.iter().enumerate() {
            let walk = self.best(&search, members);
            passed_over.extend(walk.passed_over);
            if let Some(best) = walk.best {
                winner = Some((t, best));
                break;
            }
        }
        let Some((tier, winner)) = winner else {
            self.clear_bridges_present(&with_bridges);
            return Outcome::Unplaced(self.unplaced(world, ledger, request, mode, need));
        };
        // The runner-up search also finds the hosts between the winner and the runner-up that
        // fail a rule: with no runner-up, they say why the winner is the only host.
        search.excluded = Some(winner.host);
        let mut runner_up = None;
        for (t, (_, members)) in tiers.iter().enumerate().skip(tier) {
            let walk = self.best(&search, members);
            for (rank, why) in walk.passed_over {
                if !passed_over.iter().any(|(r, _)| r.host == rank.host) {
                    passed_over.push((rank, why));
                }
            }
            if let Some(best) = walk.best {
                runner_up = Some((t, best));
                break;
            }
        }
        let names = |rank: &Rank| self.hosts[rank.host].name.as_str();
        let mut reason = format!("{}: ", request.why);
        let after = |rank: &Rank| mib_signed(rank.free_memory() - need.memory as i64);
        match runner_up {
            None => reason.push_str(&format!(
                "{} is the only host that can take it ({} free after the move)",
                names(&winner),
                after(&winner)
            )),
            Some((t, second)) if t != tier => {
                let (won, lost) = cost_gap(
                    source,
                    self.hosts[winner.host],
                    self.hosts[second.host],
                    &wanted,
                );
                reason.push_str(&format!(
                    "{} is the cheapest move ({won}); runner-up {}: {lost}",
                    names(&winner),
                    names(&second)
                ));
            }
            Some((_, second)) => {
                reason.push_str(&format!(
                    "{} has the most free memory after the move ({})",
                    names(&winner),
                    after(&winner)
                ));
                let why = if second.free_memory() < winner.free_memory() {
                    format!("less free memory after the move ({})", after(&second))
                } else if second.guests > winner.guests {
                    format!(
                        "as much free memory, but more guests ({} against {})",
                        second.guests, winner.guests
                    )
                } else {
                    "as much free memory and as many guests, later in name order".to_string()
                };
                reason.push_str(&format!("; runner-up {}: {why}", names(&second)));
            }
        }
        passed_over.sort();
        let others = passed_over
            .iter()
            .map(|(rank, why)| format!("{}: {why}", names(rank)))
            .chain(incompatible.iter().filter_map(|&(class, group)| {
                let top = self.classes[class].ranking.first()?;
                let why = checked[group].as_ref().map_or("", |v| v.detail.as_str());
                Some(format!("{}: {why}", self.hosts[top.host].name))
            }));
        for other in others.take(OTHERS_IN_REASON) {
            reason.push_str("; ");
            reason.push_str(&other);
        }

        self.clear_bridges_present(&with_bridges);
        let target = self.hosts[winner.host];
        self.apply(ledger, guest, &target.name);
        Outcome::Chosen {
            host: target.name.clone(),
            reason,
        }
    }

    /// The exhaustive walk's parts: every class with some of the guest's bridges (whose
    /// static group passes the static checks), counted and listed; `with_bridges` gets the
    /// classes counted, to clear afterwards.
    fn parts_by_class(
        &mut self,
        wanted: &BTreeSet<String>,
        checked: &[Option<Violation>],
        with_bridges: &mut Vec<usize>,
    ) -> Vec<Part> {
        for bridge in wanted {
            for &c in self
                .classes_with_bridge
                .get(bridge.as_str())
                .into_iter()
                .flatten()
            {
                if self.bridges_present[c] == 0 {
                    with_bridges.push(c);
                }
                self.bridges_present[c] += 1;
            }
        }
        let mut parts: Vec<Part> = Vec::new();
        for &c in with_bridges.iter() {
            let group = self.classes[c].static_group;
            if checked[group].is_none() {
                let present = self.bridges_present[c];
                match parts
                    .iter_mut()
                    .find(|p| p.group == group && p.present == present)
                {
                    Some(part) => part.classes.push(c),
                    None => parts.push(Part {
                        group,
                        present,
                        classes: vec![c],
                    }),
                }
            }
        }
        parts
    }

    fn clear_bridges_present(&mut self, classes: &[usize]) {
        for &c in classes {
            self.bridges_present[c] = 0;
        }
    }

    /// The best-ranked host of `tier` that passes the rules depending on load, leaving out
    /// the guest's current host and the excluded one. Better-ranked hosts that fail come back
    /// in [`Walk::passed_over`], with the best-ranked host that lacks memory when none passes.
    ///
    /// Every ranking walked is sorted best first and stops at its first host that passes, is
    /// ranked below the best found so far, or lacks memory (every later one lacks more), so
    /// the result does not depend on the order or the split of the rankings: a part is walked
    /// through the smallest rankings of the guest's bridges in its group that must hold its
    /// hosts (see the module's "Speed"), or class by class in the exhaustive walk of the
    /// tests; a static group of the tier is walked in its ranking, skipping the hosts of
    /// classes with some of the guest's bridges (they belong to cheaper tiers).
    fn best(&self, search: &Search, tier: &Tier) -> Walk {
        let mut walk = Walk::default();
        let mut short_of_memory: Option<(Rank, String)> = None;
        // How many of `bridges` the class of `host` has: a class is in the ranking of each of
        // its bridges (but those every class of its group has), so its sorted ranking indexes
        // answer without comparing names.
        let count = |host: usize, bridges: &[(&str, usize)]| {
            let have = &self.rankings_of_class[self.class_of[host]];
            bridges
                .iter()
                .filter(|(_, ranking)| have.binary_search(ranking).is_ok())
                .count()
        };
        for part in &tier.parts {
            if self.exhaustive {
                for &class in &part.classes {
                    let ranking = &self.classes[class].ranking;
                    self.walk(search, ranking, |_| true, &mut walk, &mut short_of_memory);
                }
                continue;
            }
            // A host with `present` of the group's `m` bridges lacks `m - present`, so it is in
            // at least one of any `m - present + 1` of their rankings: walk the smallest ones,
            // each host counted in the first of them that holds it.
            let bridges = &search.in_group[part.group];
            let walked = &bridges[..bridges.len() - part.present + 1];
            for (i, &(_, ranking)) in walked.iter().enumerate() {
                let in_part = |host: usize| {
                    count(host, bridges) == part.present && count(host, &walked[..i]) == 0
                };
                let ranking = &self.bridge_rankings[ranking];
                self.walk(search, ranking, in_part, &mut walk, &mut short_of_memory);
            }
        }
        for &group in &tier.groups {
            let ranking = &self.group_ranking[group];
            let bridges = &search.in_group[group];
            let without_bridges = |host: usize| count(host, bridges) == 0;
            self.walk(
                search,
                ranking,
                without_bridges,
                &mut walk,
                &mut short_of_memory,
            );
        }
        match walk.best {
            Some(best) => walk.passed_over.retain(|(rank, _)| *rank < best),
            None => walk.passed_over.extend(short_of_memory),
        }
        walk
    }

    /// Walks one ranking for [`Placer::best`], looking only at hosts `counts` accepts.
    fn walk(
        &self,
        search: &Search,
        ranking: &BTreeSet<Rank>,
        counts: impl Fn(usize) -> bool,
        walk: &mut Walk,
        short_of_memory: &mut Option<(Rank, String)>,
    ) {
        let world = search.world;
        for rank in ranking {
            if walk.best.is_some_and(|b| *rank > b) {
                break;
            }
            if Some(rank.host) == search.current
                || Some(rank.host) == search.excluded
                || !counts(rank.host)
            {
                continue;
            }
            if rank.free_memory() < search.need.memory as i64 {
                if short_of_memory.as_ref().is_none_or(|(r, _)| rank < r) {
                    let capacity = world
                        .hosts
                        .get(&self.hosts[rank.host].name)
                        .map(|r| r.memory_capacity_mib);
                    let why = memory_shortfall(rank.free_memory(), capacity, search.need.memory);
                    *short_of_memory = Some((*rank, why));
                }
                break;
            }
            let host = &self.hosts[rank.host].name;
            let blocked = rule_violations(world, search.ledger, search.guest, &[], host, true)
                .into_iter()
                .next()
                .or_else(|| {
                    capacity_violations(world, search.ledger, search.need, host, false)
                        .into_iter()
                        .next()
                });
            match blocked {
                Some(violation) => walk.passed_over.push((*rank, describe(world, &violation))),
                None => {
                    walk.best = Some(*rank);
                    break;
                }
            }
        }
    }

    /// The part of a move's cost the target host decides (CPU model, image); bridges are
    /// counted per class in [`Placer::place`].
    fn host_cost(source: Option<&Host>, target: &Host) -> Cost {
        let differs =
            |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a != b);
        Cost {
            cpu_differs: source.is_some_and(|s| differs(s.cpu_model.as_deref(), target.cpu_model.as_deref())),
            image_differs: source.is_some_and(|s| matches!((&s.image_version, &target.image_version), (Some(a), Some(b)) if a != b)),
            bridges_to_create: 0,
        }
    }

    fn unplaced(
        &self,
        world: &World,
        ledger: &Ledger,
        request: &Request,
        mode: MigrationMode,
        need: Need,
    ) -> MoveProblem {
        let guest = request.guest;
        let current = ledger.host_of(&guest.name).unwrap_or(guest.host.as_str());
        let per_host: Vec<(String, Vec<Violation>)> = world
            .topo
            .hosts
            .values()
            .filter(|h| h.name != current)
            .map(|host| {
                (
                    host.name.clone(),
                    super::fit::all_violations(world, ledger, guest, mode, host),
                )
            })
            .collect();
        let subject = format!(
            "{} ({}, {}) {}",
            guest.name,
            mib(need.memory),
            vcpus(need.vcpus as i64),
            request.leaving
        );
        MoveProblem {
            code: "no_target".into(),
            guest: guest.name.clone(),
            from: guest.host.clone(),
            to: String::new(),
            message: explain::no_host(world, &subject, &per_host),
        }
    }

    /// Chooses one host for all of `members` (an affinity group; `fixed` when a member is
    /// placed by the configuration) and records their moves: the host that moves the least
    /// memory, then the least loaded. The group must leave the hosts of `avoid`, where a member
    /// shares the host with an anti-affinity peer that stays. `Err` explains why no host can
    /// take the group.
    pub fn place_group(
        &mut self,
        world: &World<'_, 't>,
        ledger: &mut Ledger<'t>,
        group: usize,
        members: &[Request<'t>],
        fixed: Option<&'t str>,
        avoid: &[&'t str],
    ) -> Result<(String, String), String> {
        let names: Vec<&str> = members.iter().map(|m| m.guest.name.as_str()).collect();
        let group_name = world
            .rules
            .affinity
            .get(group)
            .map_or("", |g| g.name.as_str());
        let candidates: Vec<&'t Host> = match fixed {
            Some(host) => world.topo.hosts.get(host).into_iter().collect(),
            None => self.hosts.clone(),
        };
        // (memory moved, rank after, host) of every host that takes the group; violations of the others.
        let mut fits: Vec<(u64, Rank, &'t Host)> = Vec::new();
        let mut refused: Vec<(String, Vec<Violation>)> = Vec::new();
        for host in candidates {
            if avoid.contains(&host.name.as_str()) {
                // The members already there break a rule with a guest that stays.
                let staying = members
                    .iter()
                    .filter(|m| ledger.host_of(&m.guest.name) == Some(host.name.as_str()));
                let violations = distinct(staying.flat_map(|m| {
                    rule_violations(world, ledger, m.guest, &names, &host.name, false)
                }));
                refused.push((host.name.clone(), violations));
                continue;
            }
            let incoming: Vec<&Request> = members
                .iter()
                .filter(|m| ledger.host_of(&m.guest.name) != Some(host.name.as_str()))
                .collect();
            let need = incoming
                .iter()
                .fold(Need::default(), |total, m| total.add(Need::of(m.guest)));
            let mut violations = distinct(incoming.iter().flat_map(|m| {
                let (mode, _) = effective_mode(m.guest, m.mode);
                static_violations(world, m.guest, mode, host)
                    .into_iter()
                    .chain(rule_violations(
                        world, ledger, m.guest, &names, &host.name, false,
                    ))
            }));
            violations.extend(capacity_violations(world, ledger, need, &host.name, true));
            if violations.is_empty() {
                let load = ledger.load(&host.name);
                let capacity = world
                    .hosts
                    .get(&host.name)
                    .map_or(0, |r| r.memory_capacity_mib);
                let rank = Rank {
                    free_memory: Reverse(capacity as i64 - (load.memory_mib + need.memory) as i64),
                    guests: load.guests + need.guests,
                    host: self
                        .index_of
                        .get(host.name.as_str())
                        .copied()
                        .unwrap_or(usize::MAX),
                };
                let moved = incoming.iter().map(|m| m.guest.memory_mib).sum();
                fits.push((moved, rank, host));
            } else {
                refused.push((host.name.clone(), violations));
            }
        }
        fits.sort_by(|a, b| (a.0, a.1, &a.2.name).cmp(&(b.0, b.1, &b.2.name)));
        let total = members
            .iter()
            .fold(Need::default(), |t, m| t.add(Need::of(m.guest)));
        let Some(&(moved, rank, target)) = fits.first() else {
            if let Some(host) = fixed {
                // Every other host is ruled out by the member placed on `host`: a pinned one
                // when there is one (a member placed by a guest block is not known here).
                let there: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|n| ledger.host_of(n) == Some(host))
                    .collect();
                let pinned: Vec<&str> = there
                    .iter()
                    .copied()
                    .filter(|n| world.rules.pinned.contains_key(*n))
                    .collect();
                let held = if pinned.is_empty() { there } else { pinned };
                let verb = if held.len() == 1 { "stays" } else { "stay" };
                let detail = format!("{} {verb} on {host}", held.join(", "));
                for other in world.topo.hosts.keys().filter(|h| h.as_str() != host) {
                    refused.push((
                        other.clone(),
                        vec![Violation {
                            constraint: Constraint::Affinity(group),
                            detail: detail.clone(),
                        }],
                    ));
                }
            }
            let subject = format!(
                "affinity group \"{group_name}\" ({}: {}, {} together)",
                names.join(", "),
                mib(total.memory),
                vcpus(total.vcpus as i64)
            );
            return Err(explain::no_host(world, &subject, &refused));
        };
        let mut reason = format!(
            "affinity rule \"{group_name}\" keeps {} together: {} moves the least memory ({})",
            names.join(", "),
            target.name,
            mib(moved)
        );
        match fits.get(1) {
            Some((second_moved, second_rank, second)) if *second_moved > moved => {
                reason.push_str(&format!(
                    "; runner-up {}: would move {}",
                    second.name,
                    mib(*second_moved)
                ));
            }
            Some((_, second_rank, second)) => {
                let why = if second_rank.free_memory() < rank.free_memory() {
                    format!(
                        "as much to move, less free memory after ({})",
                        mib_signed(second_rank.free_memory())
                    )
                } else {
                    "as much to move and as much free memory, later in order".to_string()
                };
                reason.push_str(&format!("; runner-up {}: {why}", second.name));
            }
            None => reason.push_str(&format!(
                "; no other host takes the group ({} together)",
                mib(total.memory)
            )),
        }
        for member in members {
            if ledger.host_of(&member.guest.name) != Some(target.name.as_str()) {
                self.apply(ledger, member.guest, &target.name);
            }
        }
        Ok((target.name.clone(), reason))
    }
}

/// `violations` with each constraint once (the first of its kind): members of a group often
/// break the same rule.
fn distinct(violations: impl Iterator<Item = Violation>) -> Vec<Violation> {
    let mut found: Vec<Violation> = Vec::new();
    for v in violations {
        if !found.iter().any(|seen| seen.constraint == v.constraint) {
            found.push(v);
        }
    }
    found
}

/// Why the winner's cost beats the runner-up's, at the first part where they differ:
/// (what the winner has, what the runner-up lacks).
fn cost_gap(
    source: Option<&Host>,
    winner: &Host,
    second: &Host,
    wanted: &BTreeSet<String>,
) -> (String, String) {
    let source_name = source.map_or("the source", |s| s.name.as_str());
    let same =
        |a: &Option<String>, b: &Option<String>| !matches!((a, b), (Some(a), Some(b)) if a != b);
    if let Some(source) = source {
        if same(&source.cpu_model, &winner.cpu_model) && !same(&source.cpu_model, &second.cpu_model)
        {
            return (
                format!("same CPU model as {source_name}, so it can move live"),
                format!(
                    "CPU model {} differs from {source_name}'s {} (no live migration)",
                    second.cpu_model.as_deref().unwrap_or("?"),
                    source.cpu_model.as_deref().unwrap_or("?")
                ),
            );
        }
        let image = |h: &Host| h.image_version.as_ref().map(ToString::to_string);
        if same(&image(source), &image(winner)) && !same(&image(source), &image(second)) {
            return (
                format!("same image as {source_name}"),
                format!(
                    "image {} differs from {source_name}'s {}",
                    image(second).unwrap_or_default(),
                    image(source).unwrap_or_default()
                ),
            );
        }
    }
    let missing = |h: &Host| -> Vec<String> {
        let known = known_bridges(h);
        wanted
            .iter()
            .filter(|b| !known.contains(*b))
            .cloned()
            .collect()
    };
    let (won, lost) = (missing(winner), missing(second));
    let won = if won.is_empty() {
        "no bridges to create".to_string()
    } else {
        format!("only {} to create", won.join(", "))
    };
    (
        won,
        format!("would need bridges {} created", lost.join(", ")),
    )
}
