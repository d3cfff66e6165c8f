//! Wording and lookups every renderer shares, so the text, markdown and DOT forms of a plan
//! agree: the summary sentence, sizes, names made safe to print, and steps resolved by wave.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;

use crate::config::MigrationMode;
use crate::plan::Plan;
use crate::schedule::Step;

/// `1 move`, `3 moves`.
pub(crate) fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// Memory as operators size guests: whole GiB when exact, MiB otherwise (never rounded).
pub(crate) fn mib(value: u64) -> String {
    if value.is_multiple_of(1024) {
        format!("{} GiB", value / 1024)
    } else {
        format!("{value} MiB")
    }
}

/// Live and offline (including offline_force) move counts.
pub(crate) fn live_offline(plan: &Plan) -> (usize, usize) {
    let migrations = || plan.moves.iter().filter(|m| m.kind.is_migrate());

    let live = migrations()
        .filter(|m| m.mode == MigrationMode::Live)
        .count();
    (live, migrations().count() - live)
}

/// Moves of `kind` (stop or start in place, service a host) in the plan.
fn in_place(plan: &Plan, kind: crate::diff::MoveKind) -> usize {
    plan.moves.iter().filter(|m| m.kind == kind).count()
}

/// The one-line verdict that ends every rendering of a plan:
/// `Plan: 3 moves (1 live, 2 offline), 17 steps in 8 waves.`, or `No changes. …`, plus the
/// number of errors when there are any.
pub fn summary_line(plan: &Plan) -> String {
    let mut line = if plan.has_changes() {
        let (live, offline) = live_offline(plan);
        let stopped = in_place(plan, crate::diff::MoveKind::StopInPlace);
        let started = in_place(plan, crate::diff::MoveKind::StartInPlace);
        let serviced = in_place(plan, crate::diff::MoveKind::HostService);
        let migrations = plan.moves.len() - stopped - started - serviced;
        let mut parts = Vec::new();
        if !plan.phases.is_empty() {
            parts.push(format!(
                "rolling maintenance of {} in {}",
                count(serviced, "host", "hosts"),
                count(plan.phases.len(), "phase", "phases")
            ));
        }
        if migrations > 0 || stopped + started == 0 {
            parts.push(format!(
                "{} ({live} live, {offline} offline)",
                count(migrations, "move", "moves")
            ));
        }
        if stopped > 0 {
            parts.push(format!("{stopped} stopped in place"));
        }
        if started > 0 {
            parts.push(format!("{started} started in place"));
        }
        format!(
            "Plan: {}, {} in {}.",
            parts.join(", "),
            count(plan.steps.len(), "step", "steps"),
            count(plan.waves.len(), "wave", "waves"),
        )
    } else if plan.is_ok() {
        "No changes. Guests are where the configuration wants them.".to_string()
    } else {
        "No moves planned.".to_string()
    };
    if !plan.is_ok() {
        line.push_str(&format!(
            " {}: apply refuses this plan.",
            count(plan.errors.len(), "error", "errors")
        ));
    }
    line
}

/// A name or message from es.xml, HCL or libvirt, made safe to print: control characters
/// (an escape sequence hidden in a guest name, a newline in a message) become visible `\u{..}`
/// escapes instead of acting on the terminal or breaking the layout. Tabs stay (es.xml is
/// often indented with them). See [`crate::printable::one_line`].
pub(crate) fn clean(text: &str) -> Cow<'_, str> {
    crate::printable::one_line(text)
}

/// The serde name of a unit enum variant (`memory_mismatch`), so renderers use the very words
/// of the JSON plan without repeating them.
pub(crate) fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::from("?"),
    }
}

/// `guest exa01vm02, host exa01adm03` for whichever of the two is known.
pub(crate) fn guest_host(guest: Option<&str>, host: Option<&str>) -> String {
    let parts: Vec<String> = [("guest", guest), ("host", host)]
        .into_iter()
        .filter_map(|(what, name)| {
            name.filter(|n| !n.is_empty())
                .map(|n| format!("{what} {}", clean(n)))
        })
        .collect();
    parts.join(", ")
}

/// One guest of a host in (or leaving) maintenance, in words: `vm01: moved to adm02 (live),
/// down 0s`, `vm02: stopped in place on adm01, down until the end of maintenance`.
pub(crate) fn maintenance_line(m: &crate::plan::MaintenanceGuest) -> String {
    use crate::plan::MaintenanceAction as A;
    let down = |what: &str| match m.downtime_s {
        Some(s) => format!("{what} {}", short_duration(s)),
        None => String::new(),
    };
    let (what, downtime) = match m.action {
        A::Moved => (
            format!("moved to {} ({})", clean(&m.to), m.mode),
            down("predicted downtime"),
        ),
        A::ReturnedHome => (
            format!("returns home to {} ({})", clean(&m.to), m.mode),
            down("predicted downtime"),
        ),
        A::StoppedInPlace => (
            format!("stopped in place on {}", clean(&m.host)),
            "down until the end of maintenance".to_string(),
        ),
        A::StartedInPlace => (
            format!("started again on {}", clean(&m.host)),
            down("down until"),
        ),
    };
    if downtime.is_empty() {
        format!("{}: {what}", clean(&m.guest))
    } else {
        format!("{}: {what}, {downtime}", clean(&m.guest))
    }
}

/// One phase of a rolling maintenance, in words: `Phase 1: adm01, 4 moves, predicted +0s →
/// +14m 14s (14m 14s)`.
pub(crate) fn phase_heading(p: &crate::plan::Phase) -> String {
    let when = match (p.start_s, p.duration_s) {
        (Some(start), Some(d)) => format!(
            ", predicted +{} → +{} ({})",
            short_duration(start),
            short_duration(start + d),
            short_duration(d)
        ),
        _ => String::new(),
    };
    format!(
        "Phase {}: {}, {}{when}",
        p.number,
        clean(&p.host),
        count(p.moves, "move", "moves")
    )
}

/// The host steps of a phase, in words.
pub(crate) fn phase_host_line(p: &crate::plan::Phase) -> String {
    let until = match p.back_when {
        crate::config::BackWhen::Rebooted => {
            "it has rebooted (its boot id changed; back_when = \"rebooted\"), libvirt answers and facts are read again"
        }
        crate::config::BackWhen::Answers => {
            "libvirt answers and facts are read again (no reboot awaited: back_when = \"answers\")"
        }
    };
    format!(
        "{}: HOST_COMMAND `{}` over SSH (never run twice), then WAIT_HOST until {until}",
        clean(&p.host),
        clean(&p.host_command.join(" "))
    )
}

/// A phase's lines in the order they happen: guests leaving (or stopped), the host's
/// command and wait, guests coming back (or started); each with whether it is a guest's.
pub(crate) fn phase_lines(p: &crate::plan::Phase) -> Vec<(bool, String)> {
    use crate::plan::MaintenanceAction as A;
    let entering =
        |m: &&crate::plan::MaintenanceGuest| matches!(m.action, A::Moved | A::StoppedInPlace);
    let mut lines: Vec<(bool, String)> = p
        .guests
        .iter()
        .filter(entering)
        .map(|m| (true, phase_guest_line(m)))
        .collect();
    lines.push((false, phase_host_line(p)));
    lines.extend(
        p.guests
            .iter()
            .filter(|m| !entering(m))
            .map(|m| (true, phase_guest_line(m))),
    );
    lines
}

/// One guest of a rolling maintenance phase: as [`maintenance_line`], but a guest stopped in
/// place starts again within its phase, so its downtime is known.
pub(crate) fn phase_guest_line(m: &crate::plan::MaintenanceGuest) -> String {
    use crate::plan::MaintenanceAction as A;
    match (m.action, m.downtime_s) {
        (A::StoppedInPlace, Some(s)) => format!(
            "{}: stopped in place on {}, predicted downtime {} (started again in this phase)",
            clean(&m.guest),
            clean(&m.host),
            short_duration(s)
        ),
        (A::StartedInPlace, _) => {
            format!("{}: started again on {}", clean(&m.guest), clean(&m.host))
        }
        _ => maintenance_line(m),
    }
}

/// `45s`, `12m 30s`, `3h 05m`: rounded to what a person plans around.
pub(crate) fn short_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => {
            // Round to the minute first, so 7,170 s reads "2h 00m", never "1h 60m".
            let minutes = (s + 30) / 60;
            format!("{}h {:02}m", minutes / 60, minutes % 60)
        }
    }
}

/// Why a host of the capacity table is marked over capacity, one sentence per such host. A
/// host can be over before the plan moves anything (es.xml's or libvirt's own figures exceed
/// what `memory_reserved` and `vcpu_overcommit` leave): the mark must say so, or it reads as
/// a fault of the plan.
pub(crate) fn over_capacity_notes(plan: &Plan) -> Vec<String> {
    plan.hosts
        .iter()
        .filter_map(|h| {
            let mut what = Vec::new();
            let memory_before = h.memory_used_mib_before > h.memory_mib;
            let vcpus_before = h.vcpus_used_before > h.vcpu_limit;
            if memory_before {
                what.push(format!(
                    "{} of memory in use of {}",
                    crate::diff::units::mib(h.memory_used_mib_before),
                    crate::diff::units::mib(h.memory_mib)
                ));
            }
            if vcpus_before {
                what.push(format!(
                    "{} vCPUs in use of {}",
                    h.vcpus_used_before, h.vcpu_limit
                ));
            }
            if !what.is_empty() {
                let change = if h.memory_used_mib_after > h.memory_used_mib_before
                    || h.vcpus_used_after > h.vcpus_used_before
                {
                    "and the plan adds to it"
                } else {
                    "the plan adds nothing to it"
                };
                return Some(format!(
                    "{} is over its capacity before any move ({}; capacity is physical memory minus \
                     `memory_reserved`, CPUs times `vcpu_overcommit`): {change}. Check those settings, or the \
                     guests' sizes in es.xml and libvirt",
                    clean(&h.name),
                    what.join(", ")
                ));
            }
            let over_after = h.memory_used_mib_after > h.memory_mib
                || h.memory_peak_mib > h.memory_mib
                || h.vcpus_used_after > h.vcpu_limit;
            over_after.then(|| {
                format!(
                    "{} would be over its capacity during or after the plan",
                    clean(&h.name)
                )
            })
        })
        .collect()
}

/// A wave entry: the step, or the id a (hand-edited or inconsistent) plan names but lacks.
pub(crate) enum WaveEntry<'a> {
    Step(&'a Step),
    Unknown(&'a str),
}

/// One line per host of a `rolling_maintenance` block that is serviced already (and so not
/// again): when, by which apply, and how to service it again.
pub(crate) fn already_serviced_lines(plan: &Plan) -> Vec<String> {
    plan.already_serviced
        .iter()
        .map(|s| {
            let run = s
                .run
                .as_ref()
                .map_or_else(String::new, |r| format!(" (run `{}`)", clean(r)));
            format!(
                "{}: serviced with this host command{run} at {} by apply {}; not serviced again (give the block another `run` to service it again)",
                clean(&s.host),
                s.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                clean(&s.plan_id)
            )
        })
        .collect()
}

/// The wave each phase of a rolling maintenance begins with (where text and Markdown put the
/// phase's heading).
pub(crate) fn phase_starts(plan: &Plan) -> HashMap<usize, &crate::plan::Phase> {
    let mut starts = HashMap::new();
    for p in &plan.phases {
        if let Some(first) = plan
            .waves
            .iter()
            .position(|w| w.iter().any(|id| p.steps.contains(id)))
        {
            starts.entry(first).or_insert(p);
        }
    }
    starts
}

/// Steps by id, for resolving waves and dependencies.
pub(crate) fn steps_by_id(plan: &Plan) -> HashMap<&str, &Step> {
    plan.steps.iter().map(|s| (s.id.as_str(), s)).collect()
}

/// The plan's waves with their steps resolved.
pub(crate) fn waves(plan: &Plan) -> Vec<Vec<WaveEntry<'_>>> {
    let by_id = steps_by_id(plan);
    plan.waves
        .iter()
        .map(|wave| {
            wave.iter()
                .map(|id| {
                    by_id
                        .get(id.as_str())
                        .map_or(WaveEntry::Unknown(id), |s| WaveEntry::Step(s))
                })
                .collect()
        })
        .collect()
}

/// The dependencies of `step` that belong to another move: capacity or ordering edges between
/// moves, which a reviewer wants to see.
pub(crate) fn cross_move_dependencies<'a>(
    step: &'a Step,
    by_id: &HashMap<&str, &Step>,
) -> Vec<&'a str> {
    step.depends_on
        .iter()
        .filter(|d| {
            by_id
                .get(d.as_str())
                .is_some_and(|dep| dep.move_index != step.move_index)
        })
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::{sample_no_change_plan, sample_pivot_plan, sample_plan};

    #[test]
    fn an_empty_name_is_left_out_never_printed_as_a_blank_field() {
        assert_eq!(guest_host(Some("vm1"), Some("")), "guest vm1");
        assert_eq!(guest_host(Some(""), Some("adm01")), "host adm01");
        assert_eq!(
            guest_host(Some("vm1"), Some("adm01")),
            "guest vm1, host adm01"
        );
    }

    #[test]
    fn summary_counts_moves_steps_and_waves() {
        assert_eq!(
            summary_line(&sample_pivot_plan()),
            "Plan: 3 moves (3 live, 0 offline), 6 steps in 6 waves."
        );
        assert_eq!(
            summary_line(&sample_plan()),
            "Plan: 3 moves (1 live, 2 offline), 17 steps in 8 waves. 1 error: apply refuses this plan."
        );
    }

    #[test]
    fn summary_without_moves() {
        let plan = sample_no_change_plan();
        assert_eq!(
            summary_line(&plan),
            "No changes. Guests are where the configuration wants them."
        );
        let mut failed = plan;
        failed.errors = sample_plan().errors;
        assert_eq!(
            summary_line(&failed),
            "No moves planned. 1 error: apply refuses this plan."
        );
    }

    #[test]
    fn offline_force_counts_as_offline() {
        let mut plan = sample_plan();
        plan.moves[0].mode = MigrationMode::OfflineForce;
        assert_eq!(live_offline(&plan), (0, 3));
    }

    #[test]
    fn sizes_are_exact() {
        assert_eq!(mib(16384), "16 GiB");
        assert_eq!(mib(0), "0 GiB");
        assert_eq!(mib(1536), "1536 MiB");
    }

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(clean("exa01vm01"), "exa01vm01");
        assert_eq!(clean("vm\u{1b}[31m\n"), "vm\\u{1b}[31m\\u{a}");
        assert_eq!(clean("\t<machine/>"), "\t<machine/>");
    }
}
