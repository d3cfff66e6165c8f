//! The plan for a terminal, in the manner of `terraform plan`: what drifted, what moves where
//! and why, what each host holds before and after, the steps wave by wave, what is wrong, and
//! the es.xml change, closed by one summary line.

use std::fmt::Write as _;

use crate::diff::RebalanceStop;
use crate::plan::Plan;
use crate::render::format::{
    WaveEntry, clean, count, cross_move_dependencies, guest_host, mib, phase_starts, serde_name,
    steps_by_id, summary_line, waves,
};
use crate::render::style::{Painter, Role, color_enabled_for_stdout};
use crate::render::table::{Cell, Table, wrap};
use crate::schedule::Timing;

/// Width used when the terminal's is unknown.
pub const DEFAULT_WIDTH: usize = 100;

/// How to render the plan as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextOptions {
    /// ANSI colours (green `+`, red `-`, yellow `~`).
    pub color: bool,
    /// Columns available; long reasons wrap to fit. 0: never wrap.
    pub width: usize,
    /// Leave the errors out: the CLI prints them on stderr, before the plan
    /// ([`plan_errors_text`]).
    pub omit_errors: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            color: false,
            width: DEFAULT_WIDTH,
            omit_errors: false,
        }
    }
}

impl TextOptions {
    /// Options for printing on stdout: colour per [`color_enabled_for_stdout`], the terminal's
    /// width when stdout is one.
    pub fn for_stdout() -> Self {
        let width = console::Term::stdout()
            .size_checked()
            .map_or(DEFAULT_WIDTH, |(_, cols)| usize::from(cols));
        TextOptions {
            color: color_enabled_for_stdout(),
            width,
            omit_errors: false,
        }
    }
}

/// The whole plan as terminal text, ending with the summary line.
pub fn plan_text(plan: &Plan, opts: &TextOptions) -> String {
    let painter = Painter { color: opts.color };
    let sections = [
        header(plan, painter),
        drift_section(plan, painter),
        moves_section(plan, opts, painter),
        rebalance_section(plan, opts, painter),
        maintenance_section(plan, opts, painter),
        phases_section(plan, opts, painter),
        already_serviced_section(plan, opts, painter),
        hosts_section(plan, opts, painter),
        steps_section(plan, painter),
        if opts.omit_errors {
            String::new()
        } else {
            errors_section(plan, painter)
        },
        diff_section(plan, painter),
    ];
    let mut out: String = sections
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    let summary = summary_line(plan);
    let role = if !plan.is_ok() {
        Role::Error
    } else {
        Role::Heading
    };
    out.push_str(&painter.paint(role, &summary));
    out.push('\n');
    out
}

fn heading(painter: Painter, title: &str) -> String {
    format!("{}\n", painter.paint(Role::Heading, title))
}

fn header(plan: &Plan, painter: Painter) -> String {
    let mut out = heading(
        painter,
        &format!("berth plan for {}", clean(&plan.es_xml_path)),
    );
    let sha = plan
        .fingerprints
        .es_xml_sha256
        .get(..12)
        .unwrap_or(&plan.fingerprints.es_xml_sha256);
    let _ = writeln!(
        out,
        "  made {} by berth {}; es.xml sha256 {}…",
        clean(&plan.created_at),
        clean(&plan.berth_version),
        clean(sha)
    );
    out
}

fn drift_section(plan: &Plan, painter: Painter) -> String {
    if plan.drift.is_empty() {
        return String::new();
    }
    let mut out = heading(
        painter,
        &format!(
            "Drift: es.xml and libvirt disagree ({}):",
            count(plan.drift.len(), "item", "items")
        ),
    );
    for d in &plan.drift {
        let subject = guest_host(d.guest.as_deref(), d.host.as_deref());
        let _ = writeln!(
            out,
            "  {} {}{}: {}",
            painter.paint(Role::Change, "~"),
            serde_name(&d.kind),
            if subject.is_empty() {
                String::new()
            } else {
                format!(" ({subject})")
            },
            clean(&d.message),
        );
        let _ = writeln!(
            out,
            "      es.xml: {}; libvirt: {}",
            clean(&d.es_xml),
            clean(&d.libvirt)
        );
    }
    out
}

fn moves_section(plan: &Plan, opts: &TextOptions, painter: Painter) -> String {
    if plan.moves.is_empty() {
        return String::new();
    }
    // A rolling maintenance's host services are its phases, shown in their own section.
    let guest_moves: Vec<_> = plan.guest_moves().collect();
    if guest_moves.is_empty() {
        return String::new();
    }
    let mut out = heading(painter, &format!("Moves ({}):", guest_moves.len()));
    let mut table = Table::new(&["GUEST", "FROM → TO", "MODE", "MEMORY", "VCPUS", "REASON"]);
    for m in guest_moves {
        let mode = if !m.kind.is_migrate() {
            m.kind.as_str().to_string()
        } else if m.pivot {
            format!("{}, pivot", m.mode_label())
        } else {
            m.mode_label()
        };
        let route = if m.kind.is_migrate() {
            format!("{} → {}", clean(&m.from), clean(&m.to))
        } else {
            format!("stays on {}", clean(&m.to))
        };
        table.row(
            Cell::styled("~", Some(Role::Change)),
            vec![
                Cell::plain(clean(&m.guest)),
                Cell::plain(route),
                Cell::plain(mode),
                Cell::plain(mib(m.memory_mib)),
                Cell::plain(m.vcpus.to_string()),
                Cell::plain(clean(&m.reason)),
            ],
        );
    }
    out.push_str(&table.render(2, opts.width, painter));
    if plan.moves.iter().any(|m| m.pivot) {
        out.push_str("  pivot: a hop through another host that breaks a cycle of live swaps.\n");
    }
    out
}

/// How each rebalance ended; one stopped by its budget is marked, as the next plan continues it.
fn rebalance_section(plan: &Plan, opts: &TextOptions, painter: Painter) -> String {
    if plan.rebalances.is_empty() {
        return String::new();
    }
    const INDENT: usize = 4;
    let width = (opts.width > 0).then(|| opts.width.saturating_sub(INDENT).max(20));
    let mut out = heading(painter, "Rebalance:");
    for r in &plan.rebalances {
        let mark = match r.stop {
            RebalanceStop::Budget => painter.paint(Role::Change, "~"),
            RebalanceStop::WithinThreshold | RebalanceStop::NoGain => " ".to_string(),
        };
        write_wrapped(
            &mut out,
            &clean(&r.message),
            width,
            &format!("  {mark} "),
            INDENT,
        );
    }
    out
}

/// Per guest of a host in (or leaving) maintenance: moved where, or stopped or started in
/// place, and its predicted downtime.
fn maintenance_section(plan: &Plan, opts: &TextOptions, painter: Painter) -> String {
    if plan.maintenance.is_empty() {
        return String::new();
    }
    let width = (opts.width > 0).then(|| opts.width.saturating_sub(4).max(20));
    let mut out = heading(painter, "Maintenance:");
    for m in &plan.maintenance {
        let lead = format!("  {} ", painter.paint(Role::Change, "~"));
        write_wrapped(
            &mut out,
            &super::format::maintenance_line(m),
            width,
            &lead,
            4,
        );
    }
    out
}

/// A rolling maintenance, phase by phase: the host, the predicted times, each guest moved
/// where (and back) or stopped in place, and the host command and wait.
fn phases_section(plan: &Plan, opts: &TextOptions, painter: Painter) -> String {
    if plan.phases.is_empty() {
        return String::new();
    }
    let width = (opts.width > 0).then(|| opts.width.saturating_sub(6).max(20));
    let moves: usize = plan.phases.iter().map(|p| p.moves).sum();
    let mut out = heading(
        painter,
        &format!(
            "Rolling maintenance ({}, {}; each phase starts once the one before it has ended):",
            count(plan.phases.len(), "phase", "phases"),
            count(moves, "guest move", "guest moves")
        ),
    );
    for p in &plan.phases {
        let _ = writeln!(
            out,
            "  {}",
            painter.paint(Role::Heading, &super::format::phase_heading(p))
        );
        for (guest, text) in super::format::phase_lines(p) {
            let mark = if guest {
                format!("{} ", painter.paint(Role::Change, "~"))
            } else {
                format!("{} ", painter.paint(Role::Change, "*"))
            };
            write_wrapped(&mut out, &text, width, &format!("    {mark}"), 6);
        }
    }
    out
}

/// The hosts of the `rolling_maintenance` block that earlier applies serviced already.
fn already_serviced_section(plan: &Plan, opts: &TextOptions, painter: Painter) -> String {
    let lines = super::format::already_serviced_lines(plan);
    if lines.is_empty() {
        return String::new();
    }
    let width = (opts.width > 0).then(|| opts.width.saturating_sub(4).max(20));
    let mut out = heading(painter, "Rolling maintenance, done already:");
    for text in lines {
        write_wrapped(&mut out, &text, width, "  = ", 4);
    }
    out
}

/// Writes `text` wrapped to `width`: its first line after `lead` (a mark, maybe coloured), the
/// others after `indent` spaces, under the text.
fn write_wrapped(out: &mut String, text: &str, width: Option<usize>, lead: &str, indent: usize) {
    for (i, line) in wrap(text, width).iter().enumerate() {
        let _ = if i == 0 {
            writeln!(out, "{lead}{line}")
        } else {
            writeln!(out, "{}{line}", " ".repeat(indent))
        };
    }
}

fn hosts_section(plan: &Plan, opts: &TextOptions, painter: Painter) -> String {
    if plan.hosts.is_empty() {
        return String::new();
    }
    let mut out = heading(painter, "Hosts (before → after / capacity):");
    let mut table = Table::new(&["HOST", "MEMORY USED", "PEAK", "VCPUS", "GUESTS"]);
    for h in &plan.hosts {
        let memory_over = h.memory_used_mib_after > h.memory_mib;
        let peak_over = h.memory_peak_mib > h.memory_mib;
        let vcpus_over = h.vcpus_used_after > h.vcpu_limit;
        let changed = h.memory_used_mib_before != h.memory_used_mib_after
            || h.vcpus_used_before != h.vcpus_used_after
            || h.guests_before != h.guests_after;
        let (mark, mark_role) = if memory_over || peak_over || vcpus_over {
            ("!", Some(Role::Error))
        } else if changed {
            ("~", Some(Role::Change))
        } else {
            ("", None)
        };
        let over = |is_over: bool| is_over.then_some(Role::Error);
        table.row(
            Cell::styled(mark, mark_role),
            vec![
                Cell::plain(clean(&h.name)),
                Cell::styled(
                    format!(
                        "{} → {} / {}",
                        mib(h.memory_used_mib_before),
                        mib(h.memory_used_mib_after),
                        mib(h.memory_mib)
                    ),
                    over(memory_over),
                ),
                Cell::styled(mib(h.memory_peak_mib), over(peak_over)),
                Cell::styled(
                    format!(
                        "{} → {} / {}",
                        h.vcpus_used_before, h.vcpus_used_after, h.vcpu_limit
                    ),
                    over(vcpus_over),
                ),
                Cell::plain(format!("{} → {}", h.guests_before, h.guests_after)),
            ],
        );
    }
    out.push_str(&table.render(2, opts.width, painter));
    let width = (opts.width > 0).then(|| opts.width.saturating_sub(4).max(20));
    for note in super::format::over_capacity_notes(plan) {
        let lead = format!("  {} ", painter.paint(Role::Error, "!"));
        write_wrapped(&mut out, &note, width, &lead, 4);
    }
    out
}

fn steps_section(plan: &Plan, painter: Painter) -> String {
    if plan.steps.is_empty() && plan.skipped_steps.is_empty() {
        return String::new();
    }
    let mut out = heading(
        painter,
        &format!(
            "Steps ({} in {}):",
            count(plan.steps.len(), "step", "steps"),
            count(plan.waves.len(), "wave", "waves")
        ),
    );
    let by_id = steps_by_id(plan);
    let wave_times = plan
        .timing
        .as_ref()
        .map(|t| t.waves.as_slice())
        .unwrap_or_default();
    let phase_starts = phase_starts(plan);
    for (n, wave) in waves(plan).iter().enumerate() {
        if let Some(p) = phase_starts.get(&n) {
            let _ = writeln!(
                out,
                "  {}",
                painter.paint(
                    Role::Heading,
                    &format!("── {}", super::format::phase_heading(p))
                )
            );
        }
        match wave_times.get(n) {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "  Wave {}: +{} → +{}",
                    n + 1,
                    duration(t.start_s),
                    duration(t.finish_s)
                );
            }
            None => {
                let _ = writeln!(out, "  Wave {}:", n + 1);
            }
        }
        for entry in wave {
            let step = match entry {
                WaveEntry::Step(step) => step,
                WaveEntry::Unknown(id) => {
                    let _ = writeln!(
                        out,
                        "    {}",
                        painter.paint(
                            Role::Error,
                            &format!("{} (not a step of this plan)", clean(id))
                        )
                    );
                    continue;
                }
            };
            // Host steps (rolling maintenance) have no guest: they name their host.
            let subject = if step.guest.is_empty() {
                &step.to
            } else {
                &step.guest
            };
            let mut line = format!(
                "{}: {}",
                clean(subject),
                painter.paint(Role::Change, step.kind.as_str())
            );
            if !step.detail.is_empty() {
                let _ = write!(line, " ({})", clean(&step.detail));
            }
            let cross = cross_move_dependencies(step, &by_id);
            if !cross.is_empty() {
                let names: Vec<String> = cross.iter().map(|d| clean(d).into_owned()).collect();
                let _ = write!(line, " after {}", names.join(", "));
            }
            let _ = writeln!(out, "    {line}");
        }
    }
    if let Some(t) = &plan.timing {
        let _ = writeln!(out, "  {}", predicted_line(t));
        if !t.downtime.is_empty() {
            let _ = writeln!(
                out,
                "  Predicted downtime (STOP_GUEST to STARTUP_GUEST; bridges are created before the stop):"
            );
            for d in &t.downtime {
                let _ = writeln!(out, "    {}: {}", clean(&d.guest), duration(d.downtime_s));
            }
        }
        if !t.holds.is_empty() {
            let _ = writeln!(
                out,
                "  Held on purpose (a limit kept free for a step not ready yet; apply waits the same way):"
            );
            for h in &t.holds {
                let _ = writeln!(
                    out,
                    "    {} waits for {}",
                    clean(&h.step),
                    clean(&h.waits_for)
                );
            }
        }
    }
    if !plan.skipped_steps.is_empty() {
        let _ = writeln!(out, "  Skipped ({}):", plan.skipped_steps.len());
        for s in &plan.skipped_steps {
            let line = format!(
                "{}: {} skipped: {}",
                clean(&s.guest),
                s.kind.as_str(),
                clean(&s.reason)
            );
            let _ = writeln!(out, "    {}", painter.paint(Role::Dim, &line));
        }
    }
    out
}

/// `Predicted duration: 12m 30s, …`: the total, the bound it is measured against and the
/// limits it assumes.
fn predicted_line(t: &Timing) -> String {
    let b = &t.lower_bound;
    let binding = [
        (b.critical_path_s, "longest chain of steps"),
        (b.link_s, "busiest migration link"),
        (b.parallelism_s, "steps at once"),
        (b.host_migrations_s, "migrations per host"),
        (b.budget_s, "disruption budget"),
    ]
    .into_iter()
    .fold(
        (0.0, ""),
        |best, (s, what)| if s > best.0 { (s, what) } else { best },
    );
    let c = &t.concurrency;
    format!(
        "Predicted duration: {} (no order can beat {}: {}), {} steps at once, {} migrations into and {} out of a host at once",
        duration(t.makespan_s),
        duration(b.overall_s),
        binding.1,
        c.parallelism,
        c.max_inbound_per_host,
        c.max_outbound_per_host
    )
}

fn duration(seconds: f64) -> String {
    super::format::short_duration(seconds)
}

fn errors_section(plan: &Plan, painter: Painter) -> String {
    if plan.errors.is_empty() {
        return String::new();
    }
    let mut out = painter.paint(
        Role::Error,
        &format!(
            "{} (apply refuses a plan with errors):",
            heading_count(plan.errors.len(), "Error", "Errors")
        ),
    );
    out.push('\n');
    for e in &plan.errors {
        let subject = guest_host(e.guest.as_deref(), e.host.as_deref());
        let _ = writeln!(
            out,
            "  {} [{}]{}: {}",
            painter.paint(Role::Error, "✗"),
            clean(&e.code),
            if subject.is_empty() {
                String::new()
            } else {
                format!(" {subject}")
            },
            clean(&e.message)
        );
    }
    out
}

/// The plan's errors alone (empty when it has none): what the CLI prints on stderr before
/// the plan, so that they are the first thing read, not the last of a long plan.
pub fn plan_errors_text(plan: &Plan, color: bool) -> String {
    errors_section(plan, Painter { color })
}

/// `Error` / `Errors (3)`-style title.
fn heading_count(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        singular.to_string()
    } else {
        format!("{plural} ({n})")
    }
}

fn diff_section(plan: &Plan, painter: Painter) -> String {
    if plan.es_xml_diff.is_empty() {
        return String::new();
    }
    let mut out = heading(
        painter,
        &format!("es.xml changes ({}):", clean(&plan.es_xml_path)),
    );
    for line in plan.es_xml_diff.lines() {
        let role = if line.starts_with("+++") || line.starts_with("---") {
            Role::Heading
        } else if line.starts_with('+') {
            Role::Add
        } else if line.starts_with('-') {
            Role::Remove
        } else if line.starts_with("@@") {
            Role::Dim
        } else {
            let _ = writeln!(out, "  {}", clean(line));
            continue;
        };
        let _ = writeln!(out, "  {}", painter.paint(role, &clean(line)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::{sample_no_change_plan, sample_pivot_plan, sample_plan};

    fn plain(plan: &Plan) -> String {
        plan_text(
            plan,
            &TextOptions {
                color: false,
                width: 0,
                ..Default::default()
            },
        )
    }

    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    }

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn sections_come_in_order_and_the_summary_is_last() {
        let text = plain(&sample_plan());
        let order = [
            "berth plan for /u01/oeda/exa01/es.xml",
            "Drift: es.xml and libvirt disagree (1 item):",
            "Moves (3):",
            "Hosts (before → after / capacity):",
            "Steps (17 steps in 8 waves):",
            "Error (apply refuses a plan with errors):",
            "es.xml changes (/u01/oeda/exa01/es.xml):",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|s| {
                text.find(s)
                    .unwrap_or_else(|| panic!("missing {s:?} in\n{text}"))
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "sections out of order:\n{text}"
        );
        assert_eq!(
            text.lines().last(),
            Some(
                "Plan: 3 moves (1 live, 2 offline), 17 steps in 8 waves. 1 error: apply refuses this plan."
            )
        );
    }

    #[test]
    fn moves_table_shows_route_mode_size_and_reason() {
        let text = plain(&sample_plan());
        assert_eq!(
            words(line_with(&text, "exa01vm01  ")),
            words(
                "~ exa01vm01 exa01adm01 → exa01adm02 live 16 GiB 4 host exa01adm01 is drained; exa01adm02 has the most free memory (40 GiB)"
            )
        );
        assert_eq!(
            &words(line_with(&text, "~ exa01vm02"))[..9],
            words("~ exa01vm02 exa01adm01 → exa01adm03 offline 32 GiB 8")
        );
        assert!(
            !text.contains("pivot"),
            "no pivot move in this plan:\n{text}"
        );
    }

    #[test]
    fn pivot_moves_are_marked() {
        let text = plain(&sample_pivot_plan());
        let marked: Vec<&str> = text.lines().filter(|l| l.contains("live, pivot")).collect();
        assert_eq!(marked.len(), 2, "{text}");
        assert!(marked.iter().all(|l| l.contains("exa01vm04")));
        assert!(line_with(&text, "~ exa01vm05").contains(" live "));
        assert!(text.contains("pivot: a hop through another host"));
    }

    #[test]
    fn hosts_table_shows_before_after_and_capacity() {
        let text = plain(&sample_plan());
        assert_eq!(
            words(line_with(&text, "exa01adm01  56")),
            words("~ exa01adm01 56 GiB → 0 GiB / 64 GiB 56 GiB 14 → 0 / 32 3 → 0")
        );
        assert_eq!(
            words(line_with(&text, "exa01adm02  24")),
            words("~ exa01adm02 24 GiB → 48 GiB / 64 GiB 48 GiB 6 → 12 / 32 1 → 3")
        );
    }

    #[test]
    fn overcommitted_host_is_flagged() {
        let mut plan = sample_plan();
        plan.hosts[1].memory_peak_mib = 80 * 1024;
        let text = plain(&plan);
        assert!(
            line_with(&text, "exa01adm02  24")
                .trim_start()
                .starts_with("! exa01adm02"),
            "{text}"
        );
        assert!(
            line_with(&text, "exa01adm03  16")
                .trim_start()
                .starts_with("~ exa01adm03"),
            "{text}"
        );
    }

    #[test]
    fn steps_are_listed_by_wave_with_skips_and_cross_move_waits() {
        let plan = sample_plan();
        let text = plain(&plan);
        let wave_titles: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("Wave "))
            .collect();
        assert_eq!(wave_titles.len(), plan.waves.len());
        let timing = plan
            .timing
            .as_ref()
            .expect("the sample plan has a prediction");
        let first = &timing.waves[0];
        assert_eq!(
            wave_titles[0].trim(),
            format!(
                "Wave 1: +{} → +{}",
                duration(first.start_s),
                duration(first.finish_s)
            )
        );
        assert!(
            line_with(&text, "Predicted duration: ").contains(&format!(
                "Predicted duration: {} (",
                duration(timing.makespan_s)
            )),
            "{text}"
        );
        // Every step appears once, in its wave.
        let steps_block = &text[text.find("Wave 1:").unwrap()..text.find("Skipped (7):").unwrap()];
        for step in &plan.steps {
            let entry = format!("{}: {} ({})", step.guest, step.kind, step.detail);
            assert_eq!(
                steps_block.matches(&entry).count(),
                1,
                "{entry:?} in\n{steps_block}"
            );
        }
        let wave2 = &steps_block
            [steps_block.find("Wave 2:").unwrap()..steps_block.find("Wave 3:").unwrap()];
        assert!(
            wave2.contains("exa01vm01: MIGRATE_GUEST (live migration exa01adm01 → exa01adm02)"),
            "{wave2}"
        );
        assert!(
            line_with(&text, "exa01vm03: MIGRATE_GUEST")
                .ends_with(" after exa01vm01:MIGRATE_GUEST"),
            "{text}"
        );
        assert!(text.contains("exa01vm02: CREATE_BRIDGES skipped: bridges vmeth0, vmbondeth0.101 already exist on exa01adm03"));
        assert_eq!(
            text.matches("skipped: live migration keeps the guest running")
                .count(),
            6
        );
    }

    #[test]
    fn holds_are_listed_under_the_prediction() {
        let mut plan = sample_plan();
        assert!(!plain(&plan).contains("Held on purpose"));
        let timing = plan.timing.as_mut().expect("a prediction");
        timing.holds.push(crate::schedule::Hold {
            step: "exa01vm03:MIGRATE_GUEST".into(),
            waits_for: "exa01vm01:MIGRATE_GUEST".into(),
        });
        let text = plain(&plan);
        let at = text.find("Held on purpose").expect("listed");
        assert!(
            text[at..]
                .contains("\n    exa01vm03:MIGRATE_GUEST waits for exa01vm01:MIGRATE_GUEST\n"),
            "{text}"
        );
    }

    #[test]
    fn errors_can_be_printed_apart_from_the_plan() {
        let plan = sample_plan();
        let errors = plan_errors_text(&plan, false);
        assert!(errors.starts_with("Error"), "{errors}");
        assert!(errors.contains("[image_version]"), "{errors}");
        let rest = plan_text(
            &plan,
            &TextOptions {
                width: 0,
                omit_errors: true,
                ..Default::default()
            },
        );
        assert!(!rest.contains("[image_version]"), "{rest}");
        assert!(rest.contains("apply refuses this plan"), "{rest}");
        assert_eq!(plan_errors_text(&sample_no_change_plan(), false), "");
    }

    #[test]
    fn errors_and_drift_name_guest_and_host() {
        let text = plain(&sample_plan());
        assert!(
            text.contains(
                "✗ [image_version] guest exa01vm02, host exa01adm03: exa01vm02 runs image 23.1.10"
            ),
            "{text}"
        );
        assert!(text.contains(
            "~ memory_mismatch (guest exa01vm04, host exa01adm02): exa01vm04 has 24576 MiB"
        ));
        assert!(text.contains("es.xml: 16384 MiB; libvirt: 24576 MiB"));
    }

    #[test]
    fn es_xml_diff_is_shown() {
        let plan = sample_plan();
        let text = plain(&plan);
        let section = &text[text.find("es.xml changes").unwrap()..];
        for line in plan.es_xml_diff.lines() {
            assert!(
                section.contains(&format!("  {line}\n")),
                "diff line {line:?} missing"
            );
        }
        assert!(section.contains("  -      <machine id=\"exa01vm01.example.com_id\"/>"));
    }

    #[test]
    fn no_changes_says_so_and_shows_no_empty_sections() {
        let text = plain(&sample_no_change_plan());
        assert_eq!(
            text.lines().last(),
            Some("No changes. Guests are where the configuration wants them.")
        );
        for absent in ["Moves", "Steps", "Drift", "Error", "es.xml changes"] {
            assert!(!text.contains(absent), "{absent:?} in\n{text}");
        }
    }

    #[test]
    fn plain_text_has_no_escape_codes_even_from_hostile_names() {
        let mut plan = sample_plan();
        plan.moves[0].guest = "evil\u{1b}[2J\u{1b}]0;owned\u{7}".to_string();
        plan.errors[0].message = "line one\nline two".to_string();
        let text = plain(&plan);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(text.contains("evil\\u{1b}[2J"));
        assert!(text.contains("line one\\u{a}line two"));
    }

    #[test]
    fn colour_marks_additions_removals_and_changes() {
        let plan = sample_plan();
        let coloured = plan_text(
            &plan,
            &TextOptions {
                color: true,
                width: 0,
                ..Default::default()
            },
        );
        let green = "\u{1b}[32m";
        let red = "\u{1b}[31m";
        let yellow = "\u{1b}[33m";
        assert!(
            coloured.contains(&format!(
                "{green}+      <machine id=\"exa01vm01.example.com_id\"/>"
            )),
            "{coloured:?}"
        );
        assert!(coloured.contains(&format!(
            "{red}-      <machine id=\"exa01vm01.example.com_id\"/>"
        )));
        assert!(coloured.contains(&format!("{yellow}~")));
        // Colour adds escapes and nothing else.
        assert_eq!(console::strip_ansi_codes(&coloured), plain(&plan));
    }

    #[test]
    fn rebalance_outcomes_are_shown_and_a_budget_stop_is_marked() {
        let text = plan_text(
            &sample_plan(),
            &TextOptions {
                color: false,
                width: 100,
                ..Default::default()
            },
        );
        let start = text.find("Rebalance:\n").expect("a Rebalance section");
        let section = &text[start..text.find("Hosts").unwrap()];
        assert!(
            section.contains(
                "\n  ~ rebalance \"rack1\" stopped at its budget (max_moves = 1) after 1 move:"
            ),
            "{section}"
        );
        // Wrapped under itself within the width.
        assert!(section.contains("\n    "), "{section}");
        for line in section.lines() {
            assert!(console::measure_text_width(line) <= 100, "{line:?}");
        }
        // A plan without a rebalance has no such section.
        assert!(!plain(&sample_no_change_plan()).contains("Rebalance:"));
    }

    #[test]
    fn long_reasons_wrap_to_the_width() {
        let text = plan_text(
            &sample_plan(),
            &TextOptions {
                color: false,
                width: 100,
                ..Default::default()
            },
        );
        let moves = &text[text.find("Moves (3):").unwrap()..text.find("Hosts").unwrap()];
        for line in moves.lines() {
            assert!(console::measure_text_width(line) <= 100, "{line:?}");
        }
        let reason: Vec<&str> = words(moves)
            .into_iter()
            .skip_while(|w| *w != "4")
            .skip(1)
            .take(12)
            .collect();
        assert_eq!(
            reason.join(" "),
            "host exa01adm01 is drained; exa01adm02 has the most free memory (40 GiB)"
        );
    }

    #[test]
    fn a_host_over_capacity_before_the_plan_is_explained_not_just_marked() {
        let mut plan = sample_plan();
        let h = &mut plan.hosts[0];
        h.vcpus_used_before = h.vcpu_limit + 64;
        h.vcpus_used_after = h.vcpus_used_before - 8;
        let name = h.name.clone();
        let text = plain(&plan);
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with('!') && l.contains(&name))
            .unwrap_or_else(|| panic!("no ! row for {name}:\n{text}"));
        assert!(row.contains(&name), "{row}");
        let note = text
            .lines()
            .find(|l| l.contains("is over its capacity before any move"))
            .unwrap_or_else(|| panic!("no explanation:\n{text}"));
        assert!(note.contains(&name), "{note}");
        assert!(text.contains("the plan adds nothing to it"), "{text}");
        assert!(
            crate::render::plan_markdown(&plan).contains("is over its capacity before any move")
        );
    }

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(59.6), "1m 00s");
        assert_eq!(duration(750.0), "12m 30s");
        assert_eq!(duration(3.0 * 3600.0 + 5.0 * 60.0 + 10.0), "3h 05m");
        assert_eq!(duration(-2.0), "0s");
        for s in 7170..7200 {
            assert_eq!(duration(f64::from(s)), "2h 00m", "{s} s");
        }
        assert_eq!(duration(7169.0), "1h 59m");
        assert_eq!(duration(3600.0), "1h 00m");
    }

    #[test]
    fn a_plan_without_a_prediction_shows_plain_waves() {
        let mut plan = sample_plan();
        plan.timing = None;
        let text = plain(&plan);
        assert!(text.lines().any(|l| l.trim() == "Wave 1:"), "{text}");
        assert!(!text.contains("Predicted duration"), "{text}");
    }
}
