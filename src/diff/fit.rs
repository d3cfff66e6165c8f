//! Whether one guest fits one host: every rule and capacity that keeps it off, named so that
//! the automatic placement, the rebalancer and the explanations of infeasible intents all use
//! the same checks and the same words.

use std::collections::BTreeMap;

use crate::config::MigrationMode;
use crate::inventory::{Guest, Host, Topology};

use super::capacity::{HostRules, Ledger, sriov_interfaces};
use super::rules::host_blockers;
use super::ruleset::RuleSet;
use super::units::{memory_shortfall, vcpu_shortfall};

/// The hosts and rules every placement decision reads.
pub(crate) struct World<'a, 't> {
    pub topo: &'t Topology,
    pub hosts: &'a BTreeMap<String, HostRules>,
    pub rules: &'a RuleSet,
}

/// A rule or capacity, as one unit of an explanation: the smallest conflicting set is a set of
/// these. Ordered the way explanations list them (configuration before facts).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Constraint {
    /// The host takes no guests: `drained`, `evacuated` or `disabled`.
    Refusal(&'static str),
    /// A `ban` rule, by name.
    Ban(String),
    /// An anti-affinity group (index into [`RuleSet::anti_affinity`]).
    AntiAffinity(usize),
    /// An affinity group (index into [`RuleSet::affinity`]) that wants another host.
    Affinity(usize),
    MaxGuests,
    Memory,
    Vcpus,
    /// Free VFs of the host's `sriov_vfs` pool (or no pool at all) for SR-IOV interfaces.
    SriovVfs,
    /// libvirt on the host does not answer.
    Unreachable,
    /// A host property the guest cannot move across (`arch`, `image_version`, `cpu_model`).
    Host(&'static str),
}

/// One reason a host cannot take a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub constraint: Constraint,
    /// About this host, e.g. `32 GiB free, 64 GiB needed` or `vm01b is there`.
    pub detail: String,
}

/// Resources a guest takes on its target: what it holds now (nothing when shut off), and a VF
/// of the target's `sriov_vfs` pool per SR-IOV interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Need {
    pub memory: u64,
    pub vcpus: u64,
    /// Guests (for `max_guests`).
    pub guests: u32,
    pub sriov_vfs: u32,
}

impl Need {
    pub fn of(guest: &Guest) -> Self {
        Need {
            memory: guest.memory_held_mib(),
            vcpus: u64::from(guest.vcpus_held()),
            guests: 1,
            sriov_vfs: sriov_interfaces(guest),
        }
    }

    pub fn add(self, other: Need) -> Need {
        Need {
            memory: self.memory + other.memory,
            vcpus: self.vcpus + other.vcpus,
            guests: self.guests + other.guests,
            sriov_vfs: self.sriov_vfs + other.sriov_vfs,
        }
    }
}

/// The checks that depend only on the host, not on what is on it: whether it takes guests,
/// answers, and can receive this guest from its source (architecture, image, CPU model).
pub(crate) fn static_violations(
    world: &World,
    guest: &Guest,
    mode: MigrationMode,
    host: &Host,
) -> Vec<Violation> {
    let mut found = Vec::new();
    if let Some(refusal) = world.hosts.get(&host.name).and_then(HostRules::refusal) {
        found.push(Violation {
            constraint: Constraint::Refusal(refusal),
            detail: refusal.to_string(),
        });
    }
    if !host.reachable {
        found.push(Violation {
            constraint: Constraint::Unreachable,
            detail: "libvirt does not answer".into(),
        });
    }
    let source = world.topo.hosts.get(&guest.host);
    for blocker in host_blockers(guest, source, host, mode) {
        if blocker.code != "target_unreachable" {
            found.push(Violation {
                constraint: Constraint::Host(blocker.code),
                detail: blocker.message,
            });
        }
    }
    found
}

/// The rules that depend on what the host holds, with the moves decided so far: bans and
/// anti-affinity. `others` are guests moving together with this one (an affinity group), which
/// do not count as anti-affinity peers. With `first_only`, stops at the first violation.
pub(crate) fn rule_violations(
    world: &World,
    ledger: &Ledger,
    guest: &Guest,
    others: &[&str],
    host: &str,
    first_only: bool,
) -> Vec<Violation> {
    let mut found = Vec::new();
    if let Some(rule) = world.rules.ban(&guest.name, host) {
        found.push(Violation {
            constraint: Constraint::Ban(rule.to_string()),
            detail: format!("{} may not run there", guest.name),
        });
        if first_only {
            return found;
        }
    }
    let mut seen_groups = Vec::new();
    for (group, member) in ledger.anti_affinity_conflicts(&guest.name, host) {
        if others.contains(&member) || seen_groups.contains(&group) {
            continue;
        }
        seen_groups.push(group);
        found.push(Violation {
            constraint: Constraint::AntiAffinity(group),
            detail: format!("{member} is there"),
        });
        if first_only {
            return found;
        }
    }
    found
}

/// The capacities of `host` against `need` on top of what it holds: `max_guests`, memory
/// (unless the caller has checked it) and vCPUs.
pub(crate) fn capacity_violations(
    world: &World,
    ledger: &Ledger,
    need: Need,
    host: &str,
    check_memory: bool,
) -> Vec<Violation> {
    let mut found = Vec::new();
    let Some(rules) = world.hosts.get(host) else {
        return found;
    };
    let load = ledger.load(host);
    if let Some(max) = rules.max_guests
        && load.guests + need.guests > max
    {
        found.push(Violation {
            constraint: Constraint::MaxGuests,
            detail: format!("already at max_guests = {max}"),
        });
    }
    let free_memory = rules.memory_capacity_mib as i64 - load.memory_mib as i64;
    if check_memory && free_memory < need.memory as i64 {
        found.push(Violation {
            constraint: Constraint::Memory,
            detail: memory_shortfall(free_memory, Some(rules.memory_capacity_mib), need.memory),
        });
    }
    let limit = u64::from(rules.vcpu_limit);
    if load.vcpus + need.vcpus > limit {
        found.push(Violation {
            constraint: Constraint::Vcpus,
            detail: vcpu_shortfall(load.vcpus, limit, need.vcpus),
        });
    }
    if need.sriov_vfs > 0 {
        let shortfall = match &rules.sriov {
            None => Some(format!(
                "no `sriov_vfs` pool configured, needed for {} SR-IOV interfaces",
                need.sriov_vfs
            )),
            Some(pool) => pool.shortfall(load.sriov_vfs_arriving, need.sriov_vfs),
        };
        if let Some(detail) = shortfall {
            found.push(Violation {
                constraint: Constraint::SriovVfs,
                detail,
            });
        }
    }
    found
}

/// Every violation of moving `guest` onto `host` now (static ones first).
pub(crate) fn all_violations(
    world: &World,
    ledger: &Ledger,
    guest: &Guest,
    mode: MigrationMode,
    host: &Host,
) -> Vec<Violation> {
    let mut found = static_violations(world, guest, mode, host);
    found.extend(rule_violations(
        world,
        ledger,
        guest,
        &[],
        &host.name,
        false,
    ));
    found.extend(capacity_violations(
        world,
        ledger,
        Need::of(guest),
        &host.name,
        true,
    ));
    found
}

/// Whether `guest` may move onto `host` now, and the first reason when not.
pub(crate) fn first_violation(
    world: &World,
    ledger: &Ledger,
    guest: &Guest,
    mode: MigrationMode,
    host: &Host,
) -> Option<Violation> {
    if let Some(first) = static_violations(world, guest, mode, host)
        .into_iter()
        .next()
    {
        return Some(first);
    }
    if let Some(first) = rule_violations(world, ledger, guest, &[], &host.name, true)
        .into_iter()
        .next()
    {
        return Some(first);
    }
    capacity_violations(world, ledger, Need::of(guest), &host.name, true)
        .into_iter()
        .next()
}

/// How a violation reads after a host's name: `RAC cluster exa01cl01 (vm01b is there)`,
/// `ban rule "old"`, `only 32 GiB free, 64 GiB needed`.
pub(crate) fn describe(world: &World, violation: &Violation) -> String {
    match &violation.constraint {
        Constraint::AntiAffinity(_) | Constraint::Affinity(_) => {
            format!(
                "{} ({})",
                constraint_name(world, &violation.constraint),
                violation.detail
            )
        }
        Constraint::Ban(_) => constraint_name(world, &violation.constraint),
        _ => violation.detail.clone(),
    }
}

/// The short name of a constraint in explanations: `ban rule "old"`, `RAC cluster exa01cl01`,
/// `memory`, …
pub(crate) fn constraint_name(world: &World, constraint: &Constraint) -> String {
    match constraint {
        Constraint::Refusal(what) => match *what {
            "drained" => "drain".into(),
            "evacuated" => "evacuate".into(),
            other => other.to_string(),
        },
        Constraint::Ban(rule) => format!("ban rule \"{rule}\""),
        Constraint::AntiAffinity(group) => world
            .rules
            .anti_affinity
            .get(*group)
            .map_or_else(|| "anti-affinity".to_string(), |g| g.anti_affinity_label()),
        Constraint::Affinity(group) => world.rules.affinity.get(*group).map_or_else(
            || "affinity".to_string(),
            |g| format!("affinity rule \"{}\"", g.name),
        ),
        Constraint::MaxGuests => "max_guests".into(),
        Constraint::Memory => "memory".into(),
        Constraint::Vcpus => "vCPUs".into(),
        Constraint::SriovVfs => "SR-IOV VFs".into(),
        Constraint::Unreachable => "reachability".into(),
        Constraint::Host(code) => match *code {
            "arch" => "architecture".into(),
            "image_version" => "image version".into(),
            "cpu_model" => "CPU model (live migration)".into(),
            other => other.replace('_', " "),
        },
    }
}
