//! Desired against current: the moves, and every prerequisite each move fails.

use crate::config::{Config, MigrationMode};
use crate::inventory::{Guest, Host, Topology};

use super::capacity::{HostRules, Ledger, sriov_interfaces};
use super::desired::{Desired, Origin};

use super::model::{Move, MoveKind, MoveProblem};
use super::rules::{Blocker, effective_mode, host_blockers, live_guest_blockers};
use super::units::{mib, vcpus};

/// The moves that bring the topology to `desired` (guests already in place do not move, moves
/// come in guest name order), and the prerequisites they fail, each as a [`MoveProblem`] with a
/// stable code. Guests of a drained host that fit nowhere are reported too (`no_target`).
///
/// Capacity codes (`memory`, `vcpus`, `max_guests`, `anti_affinity`) look at the final placement
/// with every move done; whether each instant on the way stays within capacity is the
/// scheduler's business.
pub fn moves(cfg: &Config, topo: &Topology, desired: &Desired) -> (Vec<Move>, Vec<MoveProblem>) {
    moves_from(cfg, topo, desired, Ledger::new(topo, &desired.rules))
}

/// [`desired_with`](super::desired_with) and [`moves`] in one: the ledger `moves` checks the
/// final placement on is built on a second thread while the placement runs.
pub fn desired_and_moves(
    cfg: &Config,
    topo: &Topology,
    history: &super::History,
) -> Result<(Desired, Vec<Move>, Vec<MoveProblem>), Vec<super::DiffError>> {
    let (desired, ledger) = super::desired::desired_and_ledger(cfg, topo, history, true)?;
    let ledger = ledger.unwrap_or_else(|| Ledger::new(topo, &desired.rules));
    let (moves, problems) = moves_from(cfg, topo, &desired, ledger);
    Ok((desired, moves, problems))
}

/// [`moves`] with `after`, the ledger of the topology as it is now (under `desired`'s rules).
fn moves_from<'t>(
    cfg: &Config,
    topo: &'t Topology,
    desired: &'t Desired,
    mut after: Ledger<'t>,
) -> (Vec<Move>, Vec<MoveProblem>) {
    let mut problems = desired.unplaced.clone();
    // Each move with its guest and target (borrowed from `desired`, for the ledger).
    let mut planned: Vec<(Move, &Guest, &str)> = Vec::new();
    let mut in_place_moves: Vec<Move> = Vec::new();
    // Both maps are in name order: the topology's guests are walked beside the desired ones
    // rather than a million names each looked up down the topology's tree.
    let mut topo_guests = topo.guests.iter().peekable();
    for (name, want) in &desired.guests {
        while topo_guests.next_if(|(t, _)| *t < name).is_some() {}
        let Some((_, guest)) = topo_guests.next_if(|(t, _)| *t == name) else {
            problems.push(problem(
                "unknown_guest",
                name,
                "",
                &want.host,
                format!("{name} is not in the topology"),
            ));
            continue;
        };
        let in_place = match &want.origin {
            Origin::StopInPlace { reason } if guest.state.holds_resources() => {
                Some((MoveKind::StopInPlace, reason))
            }
            Origin::StartInPlace { reason } if !guest.state.holds_resources() => {
                Some((MoveKind::StartInPlace, reason))
            }
            _ => None,
        };
        if let Some((kind, reason)) = in_place {
            // Nothing migrates: no prerequisites to check; capacity and budgets are the
            // scheduler's.
            in_place_moves.push(Move {
                guest: guest.name.clone(),
                from: guest.host.clone(),
                to: guest.host.clone(),
                mode: MigrationMode::Offline,
                reason: reason.clone(),
                memory_mib: guest.memory_mib,
                vcpus: guest.vcpus,
                pivot: false,
                kind,
                domain: guest.domain.clone(),
                transport: None,
            });
            continue;
        }
        if want.host == guest.host {
            continue;
        }
        let requested = want.mode.unwrap_or(cfg.defaults.mode.value);
        let (mode, note) = effective_mode(guest, requested);
        let mut reason = match &want.origin {
            Origin::Pinned { .. } => format!("config pins {} to {}", guest.name, want.host),
            Origin::Chosen { reason } => reason.clone(),
            Origin::Stays
            | Origin::Unplaced
            | Origin::StopInPlace { .. }
            | Origin::StartInPlace { .. } => {
                format!("desired host of {} is {}", guest.name, want.host)
            }
        };
        if let Some(note) = note {
            reason.push_str(&format!(" ({note})"));
        }
        let mv = Move {
            guest: guest.name.clone(),
            from: guest.host.clone(),
            to: want.host.clone(),
            mode,
            reason,
            memory_mib: guest.memory_mib,
            vcpus: guest.vcpus,
            pivot: false,
            kind: Default::default(),
            domain: guest.domain.clone(),
            transport: (mode == MigrationMode::Live).then_some(cfg.defaults.live.transport),
        };
        planned.push((mv, guest, want.host.as_str()));
    }

    for &(_, guest, to) in &planned {
        after.apply(guest, to);
    }
    for (mv, guest, _) in &planned {
        problems.extend(prerequisites(cfg, topo, desired, &after, mv, guest));
    }
    let mut moves: Vec<Move> = planned.into_iter().map(|(mv, _, _)| mv).collect();
    moves.extend(in_place_moves);
    moves.sort_by(|a, b| a.guest.cmp(&b.guest));
    (moves, problems)
}

fn problem(code: &str, guest: &str, from: &str, to: &str, message: String) -> MoveProblem {
    MoveProblem {
        code: code.into(),
        guest: guest.into(),
        from: from.into(),
        to: to.into(),
        message,
    }
}

/// Every prerequisite `mv` fails. `after` is the load with all moves done.
fn prerequisites(
    cfg: &Config,
    topo: &Topology,
    desired: &Desired,
    after: &Ledger,
    mv: &Move,
    guest: &Guest,
) -> Vec<MoveProblem> {
    let cannot = |code: &str, why: String| {
        problem(
            code,
            &mv.guest,
            &mv.from,
            &mv.to,
            format!(
                "cannot move {} from {} to {}: {why}",
                mv.guest, mv.from, mv.to
            ),
        )
    };
    let Some(target) = topo.hosts.get(&mv.to) else {
        return vec![cannot(
            "unknown_host",
            format!("{} is not in the topology", mv.to),
        )];
    };
    let source = topo.hosts.get(&mv.from);
    let mut found = Vec::new();
    if target.domains.contains(mv.domain_name()) {
        found.push(cannot(
            "name_taken",
            format!(
                "a domain named {} is already defined on {}",
                mv.domain_name(),
                mv.to
            ),
        ));
    }
    let blockers: Vec<Blocker> = host_blockers(guest, source, target, mv.mode);
    found.extend(
        blockers
            .into_iter()
            .map(|b| cannot(b.code, format!("{} {}", mv.to, b.message))),
    );
    if let Some(rules) = desired.hosts.get(&mv.to) {
        found.extend(
            final_state_problems(rules, after, mv, guest)
                .into_iter()
                .map(|(code, why)| cannot(code, why)),
        );
        // A live move cannot take SR-IOV interfaces along at all (code `hostdev`).
        if mv.mode != MigrationMode::Live {
            found
                .extend(sriov_problem(rules, after, mv, guest).map(|why| cannot("sriov_vfs", why)));
        }
    }
    found.extend(
        rule_problems(desired, after, mv)
            .into_iter()
            .map(|(code, why)| cannot(code, why)),
    );
    if mv.mode == MigrationMode::Live {
        found.extend(
            live_guest_blockers(guest, &cfg.defaults.shared_storage)
                .into_iter()
                .map(|b| cannot(b.code, b.message)),
        );
    }
    if mv.mode != MigrationMode::OfflineForce && !source.is_some_and(|s: &Host| s.reachable) {
        found.push(cannot(
            "source_unreachable",
            format!(
                "libvirt on {} does not answer, and {} moves need the source; use mode = \"offline_force\" to define {} on {} from its last known definition",
                mv.from, mv.mode, mv.guest, mv.to
            ),
        ));
    }
    found
}

/// Whether the target's `sriov_vfs` pool can give every guest moving onto it a VF per SR-IOV
/// interface (ATTACH_INTERFACES takes them from the pool).
fn sriov_problem(rules: &HostRules, after: &Ledger, mv: &Move, guest: &Guest) -> Option<String> {
    let wanted = sriov_interfaces(guest);
    if wanted == 0 {
        return None;
    }
    let Some(pool) = &rules.sriov else {
        return Some(format!(
            "{} has {wanted} SR-IOV interfaces, which get virtual functions of the target's pool, and {} has no `sriov_vfs` pool configured; list its free VFs in `host \"{}\" {{ sriov_vfs = [\"0000:3b:02.0\", …] }}`",
            mv.guest, mv.to, mv.to
        ));
    };
    let others = after.load(&mv.to).sriov_vfs_arriving.saturating_sub(wanted);
    pool.shortfall(others, wanted).map(|why| {
        format!(
            "{} needs {wanted} SR-IOV VFs on {}, and {why}",
            mv.guest, mv.to
        )
    })
}

/// Host rules and capacity of the target with every planned move done.
fn final_state_problems(
    rules: &HostRules,
    after: &Ledger,
    mv: &Move,
    guest: &Guest,
) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    if let Some(refusal) = rules.refusal() {
        let code = "host_disabled";
        found.push((
            code,
            format!("{} is {refusal}: no guest may move onto it", mv.to),
        ));
    }
    let load = after.load(&mv.to);
    if load.memory_mib > rules.memory_capacity_mib {
        found.push((
            "memory",
            format!(
                "with every planned move done {} would hold {} of memory, more than its {} usable ({} brings {})",
                mv.to,
                mib(load.memory_mib),
                mib(rules.memory_capacity_mib),
                mv.guest,
                mib(guest.memory_held_mib())
            ),
        ));
    }
    if load.vcpus > u64::from(rules.vcpu_limit) {
        found.push((
            "vcpus",
            format!(
                "with every planned move done {} would run {}, more than its limit of {} ({} brings {})",
                mv.to,
                vcpus(load.vcpus as i64),
                vcpus(i64::from(rules.vcpu_limit)),
                mv.guest,
                vcpus(i64::from(guest.vcpus_held()))
            ),
        ));
    }
    if let Some(max) = rules.max_guests
        && load.guests > max
    {
        found.push((
            "max_guests",
            format!(
                "{} would hold {} guests, more than max_guests = {max}",
                mv.to, load.guests
            ),
        ));
    }
    found
}

/// The placement rules with every planned move done: anti-affinity, bans, affinity.
fn rule_problems(desired: &Desired, after: &Ledger, mv: &Move) -> Vec<(&'static str, String)> {
    let rules = &desired.rules;
    let mut found = Vec::new();
    if let Some((group, member)) = after.anti_affinity_conflict(&mv.guest, &mv.to) {
        let label = rules
            .anti_affinity
            .get(group)
            .map_or_else(|| "anti-affinity".to_string(), |g| g.anti_affinity_label());
        found.push((
            "anti_affinity",
            format!(
                "{} and {member} of {label} would both run on {}",
                mv.guest, mv.to
            ),
        ));
    }
    if let Some(rule) = rules.ban(&mv.guest, &mv.to) {
        found.push((
            "ban",
            format!("ban rule \"{rule}\" forbids {} on {}", mv.guest, mv.to),
        ));
    }
    if let Some(group) = rules
        .affinity_of(&mv.guest)
        .and_then(|g| rules.affinity.get(g))
    {
        let apart: Vec<String> = group
            .members
            .iter()
            .filter_map(|m| {
                after
                    .host_of(m)
                    .filter(|h| *h != mv.to)
                    .map(|h| format!("{m} on {h}"))
            })
            .collect();
        if !apart.is_empty() {
            found.push((
                "affinity",
                format!(
                    "affinity rule \"{}\" keeps its guests together, but {} would stay apart ({})",
                    group.name,
                    mv.guest,
                    apart.join(", ")
                ),
            ));
        }
    }
    found
}
