//! What a host may hold, and a running account of what it holds as moves are decided.

use crate::config::{Defaults, HostIntent};
use crate::inventory::fast_hash::{FastMap, map_with_capacity};
use crate::inventory::{Guest, Host, Topology};

use super::ruleset::RuleSet;

/// The rules of one host after applying its `host` block (if any) over the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRules {
    /// `drain = true`: its guests get targets chosen automatically, nothing moves onto it.
    pub drain: bool,
    /// `evacuate = true`: the host is dead; its guests move `offline_force`, nothing moves onto it.
    pub evacuate: bool,
    /// `return_home = true`: guests earlier plans moved off it come back.
    pub return_home: bool,
    /// `disabled = true`: nothing moves onto it.
    pub disabled: bool,
    /// `maintenance = true`: its guests leave as from a drained host, but those no host can
    /// take are stopped in place instead of failing the plan; nothing moves onto it.
    pub maintenance: bool,
    /// `maintenance = false`: guests stopped in place on it are started again, and guests
    /// moved off it come back (as `return_home`).
    pub end_maintenance: bool,
    pub max_guests: Option<u32>,
    /// Memory guests may use: physical memory minus the host's reserve and minus what domains
    /// outside es.xml hold, MiB.
    pub memory_capacity_mib: u64,
    /// vCPUs guests may use: `cpus × vcpu_overcommit`, rounded down.
    pub vcpu_limit: u32,
    /// The host's `sriov_vfs` pool against what its domains use now; `None` when the host has
    /// no pool configured (then no guest with SR-IOV interfaces may move onto it).
    pub sriov: Option<SriovPool>,
}

/// SR-IOV virtual functions of one host's configured pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SriovPool {
    /// VFs listed in `sriov_vfs`.
    pub configured: u32,
    /// Of those, VFs a domain defined on the host passes through now.
    pub in_use: u32,
}

impl SriovPool {
    /// VFs of the pool no domain uses now. VFs of guests that leave the host during the plan
    /// are not counted: nothing orders their release before another guest's arrival.
    pub fn free(&self) -> u32 {
        self.configured.saturating_sub(self.in_use)
    }

    /// Why the host cannot give `wanted` more VFs when `arriving` are already promised to
    /// other guests moving in (`None`: it can).
    pub fn shortfall(&self, arriving: u32, wanted: u32) -> Option<String> {
        let free = self.free();
        (wanted > free.saturating_sub(arriving)).then(|| {
            let vfs = |n: u32| {
                if n == 1 {
                    "1 free VF".to_string()
                } else {
                    format!("{n} free VFs")
                }
            };
            let promised = if arriving > 0 {
                format!(", and other guests moving in need {arriving} of them")
            } else {
                String::new()
            };
            format!(
                "its `sriov_vfs` pool has {} of {} ({} in use){promised}",
                vfs(free),
                self.configured,
                self.in_use
            )
        })
    }
}

impl HostRules {
    pub fn new(host: &Host, intent: Option<&HostIntent>, defaults: &Defaults) -> Self {
        let reserved = intent
            .and_then(|i| i.memory_reserved_mib)
            .unwrap_or(defaults.memory_reserved_mib);
        let overcommit = intent
            .and_then(|i| i.vcpu_overcommit)
            .unwrap_or(defaults.vcpu_overcommit);
        HostRules {
            drain: intent.is_some_and(|i| i.drain),
            evacuate: intent.is_some_and(|i| i.evacuate),
            return_home: intent.is_some_and(|i| i.return_home || i.maintenance == Some(false)),
            maintenance: intent.is_some_and(|i| i.maintenance == Some(true)),
            end_maintenance: intent.is_some_and(|i| i.maintenance == Some(false)),
            disabled: intent.is_some_and(|i| i.disabled),
            max_guests: intent
                .and_then(|i| i.max_guests.as_ref())
                .map(|m| m.value)
                .or(defaults.max_guests),
            memory_capacity_mib: host
                .memory_mib
                .saturating_sub(reserved)
                .saturating_sub(host.unmanaged_memory_mib),
            vcpu_limit: vcpu_limit(host.cpus, overcommit).saturating_sub(host.unmanaged_vcpus),
            sriov: intent
                .and_then(|i| i.sriov_vfs.as_ref())
                .map(|pool| SriovPool {
                    configured: pool.value.len() as u32,
                    in_use: pool
                        .value
                        .iter()
                        .filter(|vf| host.vfs_in_use.contains(*vf))
                        .count() as u32,
                }),
        }
    }

    /// Whether guests may be moved onto the host at all.
    pub fn accepts_guests(&self) -> bool {
        self.refusal().is_none()
    }

    /// Whether the host's guests must all leave (drained or evacuated).
    pub fn empties(&self) -> bool {
        self.drain || self.evacuate || self.maintenance
    }

    /// Why the host takes no guests, when it does not (`evacuated`, `drained`, `disabled`).
    pub fn refusal(&self) -> Option<&'static str> {
        if self.evacuate {
            Some("evacuated")
        } else if self.maintenance {
            Some("in maintenance")
        } else if self.drain {
            Some("drained")
        } else if self.disabled {
            Some("disabled")
        } else {
            None
        }
    }
}

/// How many SR-IOV VFs `guest` takes on a new host: one per host-specific interface.
pub fn sriov_interfaces(guest: &Guest) -> u32 {
    guest.host_specific_interfaces().count() as u32
}

/// `cpus × overcommit`, rounded down; a ratio that is not a positive number counts as 1.
pub fn vcpu_limit(cpus: u32, overcommit: f64) -> u32 {
    let ratio = if overcommit.is_finite() && overcommit > 0.0 {
        overcommit
    } else {
        1.0
    };
    (f64::from(cpus) * ratio).floor().min(f64::from(u32::MAX)) as u32
}

/// What a host holds: memory and vCPUs of its guests that hold resources, and its guest count
/// (every domain, running or not, counts towards `max_guests`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub memory_mib: u64,
    pub vcpus: u64,
    pub guests: u32,
    /// SR-IOV VFs the guests moving in need (what guests moving out give back is not counted,
    /// see [`SriovPool::free`]).
    pub sriov_vfs_arriving: u32,
}

/// The load and the guests of every host, updated move by move: where each guest is, and where
/// the members of each anti-affinity group are.
pub(crate) struct Ledger<'t> {
    loads: FastMap<&'t str, Load>,
    /// Guest → where it is and its anti-affinity groups: one table, so that building the
    /// ledger looks each group member up once (a cache miss per guest at a million guests).
    guests: FastMap<&'t str, Placed<'t>>,
    /// Anti-affinity group (index into [`RuleSet::anti_affinity`]) → where its members are.
    spread: Vec<Spread<'t>>,
    /// The group lists of guests in more than one anti-affinity group ([`GroupsOf::Many`]).
    more_groups: Vec<Vec<usize>>,
}

/// One guest in the [`Ledger`].
struct Placed<'t> {
    /// Its name, as the topology spells it (the key, kept for the group lists).
    name: &'t str,
    host: &'t str,
    groups: GroupsOf,
}

/// Groups of at most this many members keep their (host, member) pairs in one list, scanned:
/// a RAC cluster has two members, and a fleet of a million guests has half a million of them,
/// where a hash map (and a list per host) per group cost millions of allocations per ledger.
const FEW_MEMBERS: usize = 8;

/// Where the members of one anti-affinity group are.
#[derive(Clone)]
enum Spread<'t> {
    /// (host, member) pairs of a small group, in the order the members arrived on their host
    /// (group order at first, a member that moves goes last): the members on one host are
    /// listed in the order [`Spread::Many`] keeps them.
    Few(Vec<(&'t str, &'t str)>),
    /// Host → its members, in the order they arrived.
    Many(FastMap<&'t str, Vec<&'t str>>),
}

impl<'t> Spread<'t> {
    fn new(members: usize) -> Self {
        if members <= FEW_MEMBERS {
            Spread::Few(Vec::with_capacity(members))
        } else {
            Spread::Many(FastMap::default())
        }
    }

    fn add(&mut self, host: &'t str, member: &'t str) {
        match self {
            Spread::Few(pairs) => pairs.push((host, member)),
            Spread::Many(hosts) => hosts.entry(host).or_default().push(member),
        }
    }

    /// `member` leaves `from` for `to`.
    fn relocate(&mut self, member: &'t str, from: &str, to: &'t str) {
        match self {
            Spread::Few(pairs) => {
                pairs.retain(|(_, m)| *m != member);
                pairs.push((to, member));
            }
            Spread::Many(hosts) => {
                if let Some(there) = hosts.get_mut(from) {
                    there.retain(|m| *m != member);
                }
                hosts.entry(to).or_default().push(member);
            }
        }
    }

    /// The members on `host`, in the order they arrived.
    fn on<'s>(&'s self, host: &'s str) -> MembersOn<'s, 't> {
        match self {
            Spread::Few(pairs) => MembersOn::Few(pairs.iter(), host),
            Spread::Many(hosts) => {
                MembersOn::Many(hosts.get(host).map_or(&[][..], Vec::as_slice).iter())
            }
        }
    }

    /// Whether some host holds more than one member (without listing them: asked of every
    /// group, nearly all of which are spread).
    fn crowded(&self) -> bool {
        match self {
            Spread::Few(pairs) => pairs
                .iter()
                .enumerate()
                .any(|(i, (host, _))| pairs[..i].iter().any(|(h, _)| h == host)),
            Spread::Many(hosts) => hosts.values().any(|members| members.len() > 1),
        }
    }

    /// Every host with its members (hosts in no particular order).
    fn by_host(&self) -> Vec<(&'t str, Vec<&'t str>)> {
        match self {
            Spread::Few(pairs) => {
                let mut by_host: Vec<(&str, Vec<&str>)> = Vec::new();
                for &(host, member) in pairs {
                    match by_host.iter_mut().find(|(h, _)| *h == host) {
                        Some((_, members)) => members.push(member),
                        None => by_host.push((host, vec![member])),
                    }
                }
                by_host
            }
            Spread::Many(hosts) => hosts.iter().map(|(h, m)| (*h, m.clone())).collect(),
        }
    }
}

/// [`Spread::on`]: the members of a group on one host.
enum MembersOn<'s, 't> {
    Few(std::slice::Iter<'s, (&'t str, &'t str)>, &'s str),
    Many(std::slice::Iter<'s, &'t str>),
}

impl<'t> Iterator for MembersOn<'_, 't> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        match self {
            MembersOn::Few(pairs, host) => pairs.find(|(h, _)| h == host).map(|(_, m)| *m),
            MembersOn::Many(members) => members.next().copied(),
        }
    }
}

/// The anti-affinity groups of one guest: nearly always none or one (its RAC cluster), kept
/// inline; a guest in several has its list in [`Ledger::more_groups`].
#[derive(Clone, Copy)]
enum GroupsOf {
    None,
    One(usize),
    /// Index into [`Ledger::more_groups`].
    Many(usize),
}

impl GroupsOf {
    fn with(self, group: usize, more: &mut Vec<Vec<usize>>) -> GroupsOf {
        match self {
            GroupsOf::None => GroupsOf::One(group),
            GroupsOf::One(first) => {
                more.push(vec![first, group]);
                GroupsOf::Many(more.len() - 1)
            }
            GroupsOf::Many(list) => {
                more[list].push(group);
                GroupsOf::Many(list)
            }
        }
    }
}

impl<'t> Ledger<'t> {
    /// The current state of `topo`, in one pass over guests and groups. Group members that are
    /// not in the topology are left out (name resolution has reported them).
    pub fn new(topo: &'t Topology, rules: &RuleSet) -> Self {
        let mut loads: FastMap<&str, Load> = topo
            .hosts
            .keys()
            .map(|h| (h.as_str(), Load::default()))
            .collect();
        let mut guests: FastMap<&str, Placed> = map_with_capacity(topo.guests.len());
        for guest in topo.guests.values() {
            let load = loads.entry(guest.host.as_str()).or_default();
            load.memory_mib += guest.memory_held_mib();
            load.vcpus += u64::from(guest.vcpus_held());
            load.guests += 1;
            let placed = Placed {
                name: guest.name.as_str(),
                host: guest.host.as_str(),
                groups: GroupsOf::None,
            };
            guests.insert(guest.name.as_str(), placed);
        }
        let mut spread = Vec::with_capacity(rules.anti_affinity.len());
        let mut more_groups = Vec::new();
        for (index, group) in rules.anti_affinity.iter().enumerate() {
            let mut hosts = Spread::new(group.members.len());
            for member in &group.members {
                // The topology's guests by name: a hash lookup, where the topology's own map
                // would compare names along a tree path.
                let Some(placed) = guests.get_mut(member.as_str()) else {
                    continue;
                };
                hosts.add(placed.host, placed.name);
                placed.groups = placed.groups.with(index, &mut more_groups);
            }
            spread.push(hosts);
        }
        Ledger {
            loads,
            guests,
            spread,
            more_groups,
        }
    }

    pub fn load(&self, host: &str) -> Load {
        self.loads.get(host).copied().unwrap_or_default()
    }

    /// Where `guest` is with the moves decided so far.
    pub fn host_of(&self, guest: &str) -> Option<&'t str> {
        self.guests.get(guest).map(|placed| placed.host)
    }

    /// Records `guest` moving from where it is now to `to`.
    pub fn apply(&mut self, guest: &'t Guest, to: &'t str) {
        let Some(from) = self.host_of(&guest.name) else {
            return;
        };
        if from == to {
            return;
        }
        let memory = guest.memory_held_mib();
        let vcpus = u64::from(guest.vcpus_held());
        let source = self.loads.entry(from).or_default();
        source.memory_mib = source.memory_mib.saturating_sub(memory);
        source.vcpus = source.vcpus.saturating_sub(vcpus);
        source.guests = source.guests.saturating_sub(1);
        let target = self.loads.entry(to).or_default();
        target.memory_mib += memory;
        target.vcpus += vcpus;
        target.guests += 1;
        target.sriov_vfs_arriving += sriov_interfaces(guest);
        let Some(placed) = self.guests.get_mut(guest.name.as_str()) else {
            return;
        };
        placed.host = to;
        let (name, groups) = (placed.name, placed.groups);
        let groups = match groups {
            GroupsOf::None => &[][..],
            GroupsOf::One(ref group) => std::slice::from_ref(group),
            GroupsOf::Many(list) => &self.more_groups[list][..],
        };
        for &group in groups {
            self.spread[group].relocate(name, from, to);
        }
    }

    /// The anti-affinity groups of `guest` (indexes into [`RuleSet::anti_affinity`]).
    fn groups_of(&self, guest: &str) -> &[usize] {
        match self.guests.get(guest) {
            None => &[],
            Some(placed) => match &placed.groups {
                GroupsOf::None => &[],
                GroupsOf::One(group) => std::slice::from_ref(group),
                GroupsOf::Many(list) => &self.more_groups[*list],
            },
        }
    }

    /// The first other member of one of `guest`'s anti-affinity groups on `host`:
    /// (group index, member).
    pub fn anti_affinity_conflict(&self, guest: &str, host: &str) -> Option<(usize, &'t str)> {
        self.anti_affinity_conflicts(guest, host).next()
    }

    /// Every other member of `guest`'s anti-affinity groups on `host`, by group.
    pub fn anti_affinity_conflicts<'s>(
        &'s self,
        guest: &'s str,
        host: &'s str,
    ) -> impl Iterator<Item = (usize, &'t str)> + 's {
        self.groups_of(guest).iter().flat_map(move |&group| {
            self.spread[group]
                .on(host)
                .filter(move |m| *m != guest)
                .map(move |m| (group, m))
        })
    }

    /// Hosts holding more than one member of anti-affinity group `group`, with the members.
    pub fn crowded(&self, group: usize) -> Vec<(&'t str, Vec<&'t str>)> {
        if !self.spread[group].crowded() {
            return Vec::new();
        }
        let mut crowded: Vec<(&str, Vec<&str>)> = self.spread[group]
            .by_host()
            .into_iter()
            .filter(|(_, members)| members.len() > 1)
            .map(|(host, mut members)| {
                members.sort_unstable();
                (host, members)
            })
            .collect();
        crowded.sort_unstable();
        crowded
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_limit_rounds_down_and_ignores_nonsense_ratios() {
        assert_eq!(vcpu_limit(96, 1.0), 96);
        assert_eq!(vcpu_limit(96, 1.5), 144);
        assert_eq!(vcpu_limit(3, 1.5), 4);
        assert_eq!(vcpu_limit(8, f64::NAN), 8);
        assert_eq!(vcpu_limit(8, -2.0), 8);
    }
}

#[cfg(test)]
mod spread_tests {
    use super::*;

    /// The list kept for small anti-affinity groups answers as the per-host map of large ones:
    /// the same members on every host, in the same order (the first conflict found names the
    /// member a placement reason quotes), after members move back and forth.
    #[test]
    fn a_small_groups_list_lists_members_as_the_per_host_map() {
        let hosts = ["h0", "h1", "h2", "h3"];
        let members = ["a", "b", "c", "d", "e", "f"];
        let mut few = Spread::Few(Vec::new());
        let mut many = Spread::Many(FastMap::default());
        let mut at: Vec<&str> = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let host = hosts[i % 2];
            few.add(host, m);
            many.add(host, m);
            at.push(host);
        }
        // A fixed pseudo-random walk of moves, some back to where a member was.
        let mut x: u32 = 7;
        for _ in 0..200 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let i = (x >> 8) as usize % members.len();
            let to = hosts[(x >> 20) as usize % hosts.len()];
            if at[i] == to {
                continue;
            }
            few.relocate(members[i], at[i], to);
            many.relocate(members[i], at[i], to);
            at[i] = to;
            for h in hosts {
                let listed: Vec<&str> = few.on(h).collect();
                assert_eq!(listed, many.on(h).collect::<Vec<_>>(), "members on {h}");
                let expected = members.iter().zip(&at).filter(|(_, a)| **a == h).count();
                assert_eq!(listed.len(), expected, "members on {h}");
            }
            let sorted = |s: &Spread<'static>| {
                let mut v: Vec<_> = s
                    .by_host()
                    .into_iter()
                    .filter(|(_, m)| !m.is_empty())
                    .collect();
                v.sort();
                v
            };
            assert_eq!(sorted(&few), sorted(&many));
            assert_eq!(few.crowded(), many.crowded());
            assert_eq!(few.crowded(), sorted(&few).iter().any(|(_, m)| m.len() > 1));
        }
    }
}

#[cfg(test)]
mod unmanaged_tests {
    use super::*;
    use crate::diff::fixtures::host;

    #[test]
    fn domains_outside_es_xml_shrink_the_room_for_guests() {
        let mut h = host("adm01", 512, 96);
        let defaults = Defaults {
            memory_reserved_mib: 32 * 1024,
            ..Defaults::default()
        };
        let clean = HostRules::new(&h, None, &defaults);
        h.unmanaged_memory_mib = 16 * 1024;
        h.unmanaged_vcpus = 4;
        let busy = HostRules::new(&h, None, &defaults);
        assert_eq!(
            clean.memory_capacity_mib - busy.memory_capacity_mib,
            16 * 1024
        );
        assert_eq!(clean.vcpu_limit - busy.vcpu_limit, 4);
    }
}
