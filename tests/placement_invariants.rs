//! Placement invariants on random fleets: seeded generators build 5–20 hosts and 20–100
//! guests (bridges on hosts and guests, so placement weighs bridges to create) with RAC clusters, anti-affinity, affinity, pin and ban rules, max_guests and vCPU
//! overcommit (every rule holding at the start), then plan drains and rebalances through the
//! HCL and check that
//! - every rule holds in the final placement, and no capacity is exceeded there or at any
//!   instant of the schedule;
//! - a drain moves exactly the guests of the drained host, once each, or explains the ones it
//!   cannot place by naming rules and hosts;
//! - a rebalance keeps to its budget, never widens the spread, and a rebalance right after it
//!   proposes nothing (after a budget stop, the following plans converge without moving a
//!   guest back and forth);
//! - an infeasible drain is explained by the smallest conflicting set, naming the rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use berth::config::{Config, parse_str};
use berth::diff::{Desired, Move, MoveProblem, desired, moves};
use berth::inventory::{Cluster, Guest, GuestState, Host, Interface, InterfaceKind, Topology};
use berth::schedule::{Limits, schedule};

/// Bridges hosts may have and guests may use: placement prefers hosts with fewer to create.
const BRIDGES: [&str; 4] = ["vmbondeth0", "vmbondeth1", "vmeth100", "vmeth200"];

/// splitmix64: small, seeded, good enough to shuffle fleets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const GIB: u64 = 1024;
const RESERVED_GIB: u64 = 16;

/// A random fleet whose placement satisfies its rules, and the HCL of those rules.
struct Fleet {
    topo: Topology,
    overcommit: f64,
    max_guests: BTreeMap<String, u32>,
    anti_affinity: Vec<Vec<String>>,
    affinity: Vec<Vec<String>>,
    pinned: BTreeSet<String>,
    /// guest → banned hosts
    banned: BTreeMap<String, BTreeSet<String>>,
}

impl Fleet {
    fn generate(seed: u64) -> Fleet {
        let mut rng = Rng(seed);
        let host_count = rng.range(5, 20);
        let guest_count = rng.range(20, 100);
        let overcommit = [1.0, 1.5, 2.0][rng.below(3)];
        let hosts: Vec<Host> = (0..host_count)
            .map(|i| {
                let name = format!("h{i:02}");
                Host {
                    machine_id: format!("{name}_id"),
                    memory_mib: [256, 512, 768, 1024][rng.below(4)] * GIB,
                    cpus: [48, 96][rng.below(2)],
                    arch: Some("x86_64".into()),
                    cpu_model: Some(
                        if rng.chance(80) {
                            "Icelake-Server"
                        } else {
                            "Skylake-Server"
                        }
                        .into(),
                    ),
                    image_version: Some(
                        if rng.chance(80) { "24.1.0" } else { "25.1.0" }
                            .parse()
                            .unwrap(),
                    ),
                    bridges: Some(
                        BRIDGES
                            .iter()
                            .filter(|_| rng.chance(50))
                            .map(|b| b.to_string())
                            .collect(),
                    ),
                    bridges_in_use: BTreeSet::new(),
                    unmanaged_memory_mib: 0,
                    unmanaged_vcpus: 0,
                    vfs_in_use: Default::default(),
                    reachable: true,
                    domains: BTreeSet::new(),
                    name,
                }
            })
            .collect();
        let mut max_guests = BTreeMap::new();
        for host in &hosts {
            if rng.chance(20) {
                max_guests.insert(host.name.clone(), rng.range(3, 8) as u32);
            }
        }
        let mut guests: Vec<Guest> = (0..guest_count)
            .map(|i| {
                let name = format!("g{i:03}");
                Guest {
                    machine_id: format!("{name}_id"),
                    domain: None,
                    es_host: None,
                    host: String::new(),
                    state: if rng.chance(10) {
                        GuestState::ShutOff
                    } else {
                        GuestState::Running
                    },
                    vcpus: [2, 4, 8, 16][rng.below(4)],
                    memory_mib: 8 * rng.range(1, 16) as u64 * GIB,
                    image_version: None,
                    clusters: Vec::new(),
                    interfaces: BRIDGES
                        .iter()
                        .filter(|_| rng.chance(30))
                        .map(|b| Interface {
                            kind: InterfaceKind::Bridge,
                            source: b.to_string(),
                            mac: None,
                        })
                        .collect(),
                    disks: Vec::new(),
                    volumes: Vec::new(),
                    hostdevs: Vec::new(),
                    name,
                }
            })
            .collect();

        // Groups over disjoint guests: RAC clusters, explicit anti-affinity, affinity pairs.
        let mut order: Vec<usize> = (0..guests.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut next = order.into_iter();
        let mut take =
            |n: usize| -> Vec<String> { (&mut next).take(n).map(|i| format!("g{i:03}")).collect() };
        let clusters: Vec<Vec<String>> = (0..rng.range(0, 4))
            .map(|_| take(rng.range(2, 4)))
            .collect();
        let anti_affinity: Vec<Vec<String>> = (0..rng.range(0, 2))
            .map(|_| take(rng.range(2, 3)))
            .collect();
        let affinity: Vec<Vec<String>> = (0..rng.range(0, 2)).map(|_| take(2)).collect();
        let rest: Vec<String> = take(guest_count);
        let pinned: BTreeSet<String> = rest.iter().filter(|_| rng.chance(5)).cloned().collect();
        let mut banned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for guest in rest.iter().filter(|g| !pinned.contains(*g)) {
            if rng.chance(10) {
                let hosts: BTreeSet<String> = (0..rng.range(1, 2))
                    .map(|_| rng.pick(&hosts).name.clone())
                    .collect();
                banned.insert(guest.clone(), hosts);
            }
        }

        // Place affinity groups first (together), then everyone else, each on a random host
        // that keeps every rule; a guest that fits nowhere is left out of the fleet.
        let mut fleet = Fleet {
            topo: Topology {
                hosts: hosts.iter().map(|h| (h.name.clone(), h.clone())).collect(),
                ..Topology::default()
            },
            overcommit,
            max_guests,
            anti_affinity: anti_affinity.clone(),
            affinity: Vec::new(),
            pinned,
            banned,
        };
        let mut all_anti = clusters.clone();
        all_anti.extend(anti_affinity);
        let by_name: BTreeMap<String, Guest> =
            guests.drain(..).map(|g| (g.name.clone(), g)).collect();
        let mut units: Vec<Vec<String>> = affinity.clone();
        units.extend(
            by_name
                .keys()
                .filter(|g| !affinity.iter().flatten().any(|a| a == *g))
                .map(|g| vec![g.clone()]),
        );
        for unit in units {
            let members: Vec<Guest> = unit.iter().map(|g| by_name[g].clone()).collect();
            let start = rng.below(host_count);
            let host = (0..host_count)
                .map(|k| hosts[(start + k) % host_count].name.clone())
                .find(|h| fleet.fits(&members, h, &all_anti));
            if let Some(host) = host {
                for mut guest in members {
                    guest.host = host.clone();
                    fleet.topo.guests.insert(guest.name.clone(), guest);
                }
                if unit.len() > 1 {
                    fleet.affinity.push(unit);
                }
            }
        }
        let placed: BTreeSet<String> = fleet.topo.guests.keys().cloned().collect();
        let present = |group: &Vec<String>| -> Vec<String> {
            group
                .iter()
                .filter(|g| placed.contains(*g))
                .cloned()
                .collect()
        };
        for (i, members) in clusters.iter().map(present).enumerate() {
            for m in &members {
                fleet
                    .topo
                    .guests
                    .get_mut(m)
                    .unwrap()
                    .clusters
                    .push(format!("cl{i}"));
            }
            fleet.topo.clusters.insert(
                format!("cl{i}_id"),
                Cluster {
                    id: format!("cl{i}_id"),
                    name: format!("cl{i}"),
                    members,
                },
            );
        }
        fleet.anti_affinity = fleet
            .anti_affinity
            .iter()
            .map(present)
            .filter(|g| g.len() > 1)
            .collect();
        fleet.pinned.retain(|g| placed.contains(g));
        fleet.banned.retain(|g, _| placed.contains(g));
        fleet
    }

    fn memory_cap(&self, host: &str) -> u64 {
        self.topo.hosts[host].memory_mib - RESERVED_GIB * GIB
    }

    fn vcpu_cap(&self, host: &str) -> u64 {
        (f64::from(self.topo.hosts[host].cpus) * self.overcommit).floor() as u64
    }

    /// Whether `members` may all join `host` now.
    fn fits(&self, members: &[Guest], host: &str, anti: &[Vec<String>]) -> bool {
        let on: Vec<&Guest> = self
            .topo
            .guests
            .values()
            .filter(|g| g.host == host)
            .collect();
        let memory: u64 = on
            .iter()
            .chain(members.iter().collect::<Vec<_>>().iter())
            .map(|g| g.memory_held_mib())
            .sum();
        let vcpus: u64 = on
            .iter()
            .chain(members.iter().collect::<Vec<_>>().iter())
            .map(|g| u64::from(g.vcpus_held()))
            .sum();
        let count = on.len() + members.len();
        if memory > self.memory_cap(host) || vcpus > self.vcpu_cap(host) {
            return false;
        }
        if self
            .max_guests
            .get(host)
            .is_some_and(|max| count > *max as usize)
        {
            return false;
        }
        members.iter().all(|m| {
            !self.banned.get(&m.name).is_some_and(|b| b.contains(host))
                && anti
                    .iter()
                    .filter(|g| g.contains(&m.name))
                    .all(|g| !on.iter().any(|o| g.contains(&o.name)))
        })
    }

    /// The HCL of the fleet's rules with `drained` drained, plus `extra`.
    fn hcl(&self, drained: Option<&str>, extra: &str) -> String {
        let list = |names: &[String]| {
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!(
            "inventory {{\n  es_xml = \"es.xml\"\n}}\ndefaults {{\n  memory_reserved = \"{RESERVED_GIB}GiB\"\n  vcpu_overcommit = {:.1}\n}}\n",
            self.overcommit
        );
        let hosts: BTreeSet<&str> = self
            .max_guests
            .keys()
            .map(String::as_str)
            .chain(drained)
            .collect();
        for host in hosts {
            text.push_str(&format!("host \"{host}\" {{\n"));
            if let Some(max) = self.max_guests.get(host) {
                text.push_str(&format!("  max_guests = {max}\n"));
            }
            if drained == Some(host) {
                text.push_str("  drain = true\n");
            }
            text.push_str("}\n");
        }
        for (i, group) in self.anti_affinity.iter().enumerate() {
            text.push_str(&format!(
                "rule \"anti_affinity\" \"aa{i}\" {{\n  guests = [{}]\n}}\n",
                list(group)
            ));
        }
        for (i, group) in self.affinity.iter().enumerate() {
            text.push_str(&format!(
                "rule \"affinity\" \"af{i}\" {{\n  guests = [{}]\n}}\n",
                list(group)
            ));
        }
        if !self.pinned.is_empty() {
            let pinned: Vec<String> = self.pinned.iter().cloned().collect();
            text.push_str(&format!(
                "rule \"pin\" \"pinned\" {{\n  guests = [{}]\n}}\n",
                list(&pinned)
            ));
        }
        for (i, (guest, hosts)) in self.banned.iter().enumerate() {
            let hosts: Vec<String> = hosts.iter().cloned().collect();
            text.push_str(&format!(
                "rule \"ban\" \"ban{i}\" {{\n  guests = [\"{guest}\"]\n  hosts = [{}]\n}}\n",
                list(&hosts)
            ));
        }
        text.push_str(extra);
        text
    }

    fn config(&self, drained: Option<&str>, extra: &str) -> Config {
        let text = self.hcl(drained, extra);
        parse_str("main.hcl", &text, Path::new("/fleet"))
            .unwrap_or_else(|e| panic!("generated HCL is invalid: {e}\n{text}"))
    }

    /// Where every guest is with `moves` done.
    fn placement_after(&self, mvs: &[Move]) -> BTreeMap<String, String> {
        let mut placement: BTreeMap<String, String> = self
            .topo
            .guests
            .values()
            .map(|g| (g.name.clone(), g.host.clone()))
            .collect();
        for mv in mvs {
            placement.insert(mv.guest.clone(), mv.to.clone());
        }
        placement
    }

    fn after(&self, mvs: &[Move]) -> Fleet {
        let placement = self.placement_after(mvs);
        let mut topo = self.topo.clone();
        for (guest, host) in placement {
            topo.guests.get_mut(&guest).unwrap().host = host;
        }
        Fleet {
            topo,
            ..self.clone_rules()
        }
    }

    fn clone_rules(&self) -> Fleet {
        Fleet {
            topo: Topology::default(),
            overcommit: self.overcommit,
            max_guests: self.max_guests.clone(),
            anti_affinity: self.anti_affinity.clone(),
            affinity: self.affinity.clone(),
            pinned: self.pinned.clone(),
            banned: self.banned.clone(),
        }
    }

    /// Every rule and capacity in the placement after `mvs`; `drained` hosts must be empty
    /// but for `unplaced` guests.
    fn check_final(&self, seed: u64, mvs: &[Move], drained: &[&str], unplaced: &BTreeSet<String>) {
        let placement = self.placement_after(mvs);
        let ctx = |what: &str| format!("seed {seed}: {what}\n{}", self.hcl(None, ""));
        let mut anti = self.anti_affinity.clone();
        anti.extend(self.topo.clusters.values().map(|c| c.members.clone()));
        for group in &anti {
            let hosts: Vec<&String> = group.iter().map(|g| &placement[g]).collect();
            let distinct: BTreeSet<&&String> = hosts.iter().collect();
            assert_eq!(
                distinct.len(),
                hosts.len(),
                "{}",
                ctx(&format!("anti-affinity {group:?} shares a host: {hosts:?}"))
            );
        }
        for group in &self.affinity {
            let hosts: BTreeSet<&String> = group.iter().map(|g| &placement[g]).collect();
            assert_eq!(
                hosts.len(),
                1,
                "{}",
                ctx(&format!("affinity {group:?} split over {hosts:?}"))
            );
        }
        for guest in &self.pinned {
            assert_eq!(
                placement[guest],
                self.topo.guests[guest].host,
                "{}",
                ctx(&format!("pinned {guest} moved"))
            );
        }
        for (guest, hosts) in &self.banned {
            assert!(
                !hosts.contains(&placement[guest]),
                "{}",
                ctx(&format!("{guest} on banned {}", placement[guest]))
            );
        }
        for host in self.topo.hosts.keys() {
            let on: Vec<&Guest> = self
                .topo
                .guests
                .values()
                .filter(|g| placement[&g.name] == *host)
                .collect();
            let memory: u64 = on.iter().map(|g| g.memory_held_mib()).sum();
            let vcpus: u64 = on.iter().map(|g| u64::from(g.vcpus_held())).sum();
            assert!(
                memory <= self.memory_cap(host),
                "{}",
                ctx(&format!("{host} holds {memory} MiB"))
            );
            assert!(
                vcpus <= self.vcpu_cap(host),
                "{}",
                ctx(&format!("{host} runs {vcpus} vCPUs"))
            );
            if let Some(max) = self.max_guests.get(host) {
                assert!(
                    on.len() <= *max as usize,
                    "{}",
                    ctx(&format!("{host} holds {} guests", on.len()))
                );
            }
            if drained.contains(&host.as_str()) {
                assert!(
                    on.iter().all(|g| unplaced.contains(&g.name)),
                    "{}",
                    ctx(&format!("drained {host} still holds guests"))
                );
            }
        }
    }
}

/// Plans `cfg`: the desired placement, its moves and problems, and checks the schedule keeps
/// every host within its limits at every instant.
fn plan(seed: u64, fleet: &Fleet, cfg: &Config) -> (Desired, Vec<Move>, Vec<MoveProblem>) {
    let d = desired(cfg, &fleet.topo).unwrap_or_else(|e| {
        panic!(
            "seed {seed}: config rejected: {e:#?}\n{}",
            fleet.hcl(None, "")
        )
    });
    let (mvs, problems) = moves(cfg, &fleet.topo, &d);
    let limits = Limits::from_desired(&d, true);
    match schedule(&mvs, &fleet.topo, &limits) {
        Ok(s) => {
            for (host, (memory, vcpus)) in &s.peaks {
                let limit = limits.of(&fleet.topo.hosts[host]);
                assert!(
                    *memory <= limit.memory_mib,
                    "seed {seed}: {host} peaks at {memory} MiB"
                );
                assert!(
                    *vcpus <= limit.vcpus,
                    "seed {seed}: {host} peaks at {vcpus} vCPUs"
                );
            }
        }
        // A schedule may be infeasible (a full fleet with cyclic moves); the final placement is
        // still checked, and the error must name what blocks.
        Err(e) => assert!(!e.to_string().is_empty(), "seed {seed}"),
    }
    (d, mvs, problems)
}

/// The imbalance the rebalancer lowers: Σ utilisation² over hosts that take guests.
fn imbalance(fleet: &Fleet) -> f64 {
    fleet
        .topo
        .hosts
        .keys()
        .map(|h| {
            let used: u64 = fleet
                .topo
                .guests
                .values()
                .filter(|g| g.host == *h)
                .map(|g| g.memory_held_mib())
                .sum();
            let u = used as f64 / fleet.memory_cap(h) as f64;
            u * u
        })
        .sum()
}

fn memory_spread(fleet: &Fleet, placement: &BTreeMap<String, String>) -> f64 {
    let utilisation: Vec<f64> = fleet
        .topo
        .hosts
        .keys()
        .map(|h| {
            let used: u64 = fleet
                .topo
                .guests
                .values()
                .filter(|g| placement[&g.name] == *h)
                .map(|g| g.memory_held_mib())
                .sum();
            used as f64 / fleet.memory_cap(h) as f64
        })
        .collect();
    utilisation.iter().copied().fold(f64::MIN, f64::max)
        - utilisation.iter().copied().fold(f64::MAX, f64::min)
}

const SEEDS: u64 = 60;

#[test]
fn a_drain_moves_exactly_the_guests_of_the_drained_host_and_keeps_every_rule() {
    let mut placed_all = 0;
    for seed in 0..SEEDS {
        let fleet = Fleet::generate(seed);
        let mut rng = Rng(seed ^ 0xD7A1);
        // A host with guests, none of them pinned (pinning a guest on a drained host is a
        // contradiction the configuration reports, tested elsewhere).
        let candidates: Vec<&String> = fleet
            .topo
            .hosts
            .keys()
            .filter(|h| {
                let on: Vec<&Guest> = fleet
                    .topo
                    .guests
                    .values()
                    .filter(|g| g.host == **h)
                    .collect();
                !on.is_empty() && on.iter().all(|g| !fleet.pinned.contains(&g.name))
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let drained = rng.pick(&candidates).as_str();
        let cfg = fleet.config(Some(drained), "");
        let (_, mvs, problems) = plan(seed, &fleet, &cfg);
        let on_drained: BTreeSet<&str> = fleet
            .topo
            .guests
            .values()
            .filter(|g| g.host == drained)
            .map(|g| g.name.as_str())
            .collect();
        let moved: BTreeSet<&str> = mvs.iter().map(|m| m.guest.as_str()).collect();
        assert_eq!(moved.len(), mvs.len(), "seed {seed}: a guest moves twice");
        assert!(
            mvs.iter().all(|m| m.from == drained),
            "seed {seed}: a guest off another host moved: {mvs:#?}"
        );
        let mut unplaced = BTreeSet::new();
        for problem in &problems {
            assert_eq!(problem.code, "no_target", "seed {seed}: {problem:#?}");
            assert!(
                problem.message.contains("the smallest conflicting set is"),
                "seed {seed}: {}",
                problem.message
            );
            assert!(
                fleet
                    .topo
                    .hosts
                    .keys()
                    .any(|h| problem.message.contains(h.as_str())),
                "seed {seed}: names no host: {}",
                problem.message
            );
            unplaced.insert(problem.guest.clone());
        }
        // Every guest of the drained host moves, or is explained (an affinity group is
        // explained once, for all its members).
        for guest in &on_drained {
            let in_unplaced_group = fleet
                .affinity
                .iter()
                .any(|g| g.iter().any(|m| m == guest) && g.iter().any(|m| unplaced.contains(m)));
            assert!(
                moved.contains(guest) || unplaced.contains(*guest) || in_unplaced_group,
                "seed {seed}: {guest} neither moved nor explained"
            );
        }
        let stuck: BTreeSet<String> = on_drained
            .iter()
            .filter(|g| !moved.contains(*g))
            .map(|g| g.to_string())
            .collect();
        if stuck.is_empty() {
            placed_all += 1;
            assert_eq!(mvs.len(), on_drained.len(), "seed {seed}");
        }
        fleet.check_final(seed, &mvs, &[drained], &stuck);
        // Planning again on the result moves nothing more off the drained host.
        let again = fleet.after(&mvs);
        let (_, mvs2, _) = plan(seed, &again, &cfg);
        assert!(
            mvs2.iter().all(|m| stuck.contains(&m.guest)),
            "seed {seed}: second plan moves {mvs2:#?}"
        );
    }
    assert!(
        placed_all >= SEEDS / 2,
        "only {placed_all} of {SEEDS} drains placed every guest: the generator is too tight"
    );
}

#[test]
fn a_rebalance_keeps_its_budget_and_rules_and_a_second_rebalance_proposes_nothing() {
    let mut moved_some = 0;
    for seed in 0..SEEDS {
        let fleet = Fleet::generate(seed);
        let mut rng = Rng(seed ^ 0x4EBA);
        let threshold = [0.05, 0.1, 0.2][rng.below(3)];
        let max_moves = rng.chance(40).then(|| rng.range(1, 5));
        let max_moved = rng.chance(30).then(|| 64 * rng.range(1, 4));
        let mut block = format!("rebalance \"r\" {{\n  threshold = {threshold}\n");
        if let Some(m) = max_moves {
            block.push_str(&format!("  max_moves = {m}\n"));
        }
        if let Some(m) = max_moved {
            block.push_str(&format!("  max_moved = \"{m}GiB\"\n"));
        }
        block.push_str("}\n");
        let cfg = fleet.config(None, &block);
        let (_, mvs, problems) = plan(seed, &fleet, &cfg);
        assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
        fleet.check_final(seed, &mvs, &[], &BTreeSet::new());
        if let Some(max) = max_moves {
            assert!(
                mvs.len() <= max,
                "seed {seed}: {} moves, max {max}",
                mvs.len()
            );
        }
        if let Some(max) = max_moved {
            let memory: u64 = mvs.iter().map(|m| m.memory_mib).sum();
            assert!(
                memory <= max as u64 * GIB,
                "seed {seed}: {memory} MiB moved, max {max} GiB"
            );
        }
        let before: BTreeMap<String, String> = fleet
            .topo
            .guests
            .values()
            .map(|g| (g.name.clone(), g.host.clone()))
            .collect();
        assert!(
            memory_spread(&fleet, &fleet.placement_after(&mvs))
                <= memory_spread(&fleet, &before) + 1e-9,
            "seed {seed}: spread widened"
        );
        if !mvs.is_empty() {
            moved_some += 1;
        }

        // Again and again on the result: nothing at once unless the budget stopped it; and
        // every further plan lowers the imbalance, so it ends without moving guests back.
        let budget_stop = mvs
            .iter()
            .any(|m| m.reason.contains("stopped by the budget"));
        let mut current = fleet.after(&mvs);
        for round in 0.. {
            let (_, next, _) = plan(seed, &current, &cfg);
            if !budget_stop {
                assert!(
                    next.is_empty(),
                    "seed {seed}: a rebalance after a rebalance proposes {next:#?}"
                );
            }
            if next.is_empty() {
                break;
            }
            assert!(round < 50, "seed {seed}: no fixed point after 50 plans");
            let following = current.after(&next);
            assert!(
                imbalance(&following) < imbalance(&current),
                "seed {seed}: round {round} did not lower the imbalance"
            );
            following.check_final(seed, &[], &[], &BTreeSet::new());
            current = following;
        }
    }
    assert!(
        moved_some >= SEEDS / 4,
        "only {moved_some} of {SEEDS} fleets needed rebalancing: the generator is too even"
    );
}

#[test]
fn an_infeasible_drain_names_the_conflicting_rules_and_hosts() {
    let mut checked = 0;
    for seed in 0..SEEDS {
        let fleet = Fleet::generate(seed);
        // A guest outside every group on a host of its own choosing, made anti-affine with one
        // guest on every other host (or banned from hosts without one): it can go nowhere.
        let in_groups: BTreeSet<&String> = fleet
            .anti_affinity
            .iter()
            .chain(&fleet.affinity)
            .flatten()
            .chain(fleet.topo.clusters.values().flat_map(|c| &c.members))
            .collect();
        let free = |g: &&Guest| {
            !in_groups.contains(&g.name)
                && !fleet.pinned.contains(&g.name)
                && !fleet.banned.contains_key(&g.name)
        };
        let Some(victim) = fleet.topo.guests.values().find(free) else {
            continue;
        };
        let drained = victim.host.as_str();
        let mut peers = vec![victim.name.clone()];
        let mut bans = Vec::new();
        for host in fleet.topo.hosts.keys().filter(|h| h.as_str() != drained) {
            match fleet
                .topo
                .guests
                .values()
                .filter(|g| g.host == *host)
                .find(free)
            {
                Some(peer) => peers.push(peer.name.clone()),
                None => bans.push(host.clone()),
            }
        }
        if peers.len() < 2
            || fleet
                .topo
                .guests
                .values()
                .any(|g| g.host == drained && fleet.pinned.contains(&g.name))
        {
            continue;
        }
        let quoted = |names: &[String]| {
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut extra = format!(
            "rule \"anti_affinity\" \"trap\" {{\n  guests = [{}]\n}}\n",
            quoted(&peers)
        );
        if !bans.is_empty() {
            extra.push_str(&format!(
                "rule \"ban\" \"nowhere\" {{\n  guests = [\"{}\"]\n  hosts = [{}]\n}}\n",
                victim.name,
                quoted(&bans)
            ));
        }
        let cfg = fleet.config(Some(drained), &extra);
        let (_, mvs, problems) = plan(seed, &fleet, &cfg);
        assert!(
            mvs.iter().all(|m| m.guest != victim.name),
            "seed {seed}: {} moved",
            victim.name
        );
        let problem = problems
            .iter()
            .find(|p| p.guest == victim.name)
            .unwrap_or_else(|| panic!("seed {seed}: no explanation: {problems:#?}"));
        assert_eq!(problem.code, "no_target");
        let message = &problem.message;
        assert!(
            message.starts_with(&format!("no host can take {} (", victim.name)),
            "seed {seed}: {message}"
        );
        assert!(
            message.contains("the smallest conflicting set is"),
            "seed {seed}: {message}"
        );
        // The trap is the reason unless capacity alone already rules every host out.
        if message.contains("anti-affinity trap") {
            assert!(
                message.contains(&format!(
                    "anti-affinity trap ({} members need {} hosts)",
                    peers.len(),
                    peers.len()
                )),
                "{message}"
            );
            for peer in &peers[1..] {
                let host = &fleet.topo.guests[peer].host;
                assert!(
                    message.contains(host.as_str()) || message.contains(" more"),
                    "seed {seed}: {host} not named: {message}"
                );
            }
            checked += 1;
        }
        if !bans.is_empty() && message.contains("anti-affinity trap") {
            assert!(
                message.contains("ban rule \"nowhere\""),
                "seed {seed}: {message}"
            );
        }
    }
    assert!(
        checked >= SEEDS / 3,
        "only {checked} traps were explained by their rule"
    );
}
