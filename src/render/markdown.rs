//! The plan as a pull-request comment (GitHub-flavoured markdown).
//!
//! The short, decisive parts come first (summary, errors, drift, host capacity), the long ones
//! last (moves, steps, es.xml diff), because a comment holds at most [`COMMENT_LIMIT`]
//! characters: a longer plan is cut at a line boundary, open blocks are closed, and a last line
//! says how much was left out.

use std::fmt::Write as _;

use crate::plan::Plan;
use crate::render::format::{
    WaveEntry, clean, count, cross_move_dependencies, guest_host, mib, phase_starts, serde_name,
    steps_by_id, summary_line, waves,
};

/// Most characters a GitHub comment may hold.
pub const COMMENT_LIMIT: usize = 65_535;

/// The plan as a markdown comment of at most [`COMMENT_LIMIT`] characters.
pub fn plan_markdown(plan: &Plan) -> String {
    plan_markdown_within(plan, COMMENT_LIMIT)
}

/// The plan as markdown of at most `limit` characters (see [`plan_markdown`]).
pub fn plan_markdown_within(plan: &Plan, limit: usize) -> String {
    let mut doc = Doc::default();
    summary(plan, &mut doc);
    errors(plan, &mut doc);
    drift(plan, &mut doc);
    hosts(plan, &mut doc);
    maintenance(plan, &mut doc);
    phases(plan, &mut doc);
    already_serviced(plan, &mut doc);
    moves(plan, &mut doc);
    steps(plan, &mut doc);
    diff(plan, &mut doc);
    doc.render_within(limit)
}

/// What a line of the comment shows, to count what a cut leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Move,
    Step,
    SkippedStep,
    DiffLine,
    Host,
    Drift,
    Error,
    Other,
}

impl Part {
    /// How a cut names the left-out lines of this part; moves, steps and diff lines are always
    /// named, the rest only when some are left out.
    const REPORTED: [(Part, &'static str, &'static str, bool); 7] = [
        (Part::Move, "move", "moves", true),
        (Part::Step, "step", "steps", true),
        (Part::DiffLine, "diff line", "diff lines", true),
        (Part::SkippedStep, "skipped step", "skipped steps", false),
        (Part::Host, "host", "hosts", false),
        (Part::Drift, "drift item", "drift items", false),
        (Part::Error, "error", "errors", false),
    ];
}

struct Line {
    text: String,
    part: Part,
    /// Index into `Doc::closers`: what closes the blocks open after this line.
    closers: usize,
}

/// The comment as tagged lines, with what it takes to close open blocks at any line.
struct Doc {
    lines: Vec<Line>,
    /// Closing text of each distinct set of open blocks (innermost first); 0 is "none open".
    closers: Vec<String>,
    open: Vec<String>,
    current: usize,
}

impl Default for Doc {
    fn default() -> Self {
        Doc {
            lines: Vec::new(),
            closers: vec![String::new()],
            open: Vec::new(),
            current: 0,
        }
    }
}

impl Doc {
    fn push(&mut self, part: Part, text: impl Into<String>) {
        self.lines.push(Line {
            text: text.into(),
            part,
            closers: self.current,
        });
    }

    fn blank(&mut self) {
        self.push(Part::Other, "");
    }

    /// Pushes the line that opens a block and remembers `closer` until [`Doc::close`].
    fn open(&mut self, opening: impl Into<String>, closer: impl Into<String>) {
        self.open.push(closer.into());
        self.snapshot();
        self.push(Part::Other, opening);
    }

    /// Pushes the line that closes the innermost open block.
    fn close(&mut self) {
        if let Some(closer) = self.open.pop() {
            self.snapshot();
            self.push(Part::Other, closer);
        }
    }

    fn snapshot(&mut self) {
        let text: Vec<&str> = self.open.iter().rev().map(String::as_str).collect();
        self.closers.push(text.join("\n"));
        self.current = self.closers.len() - 1;
    }

    /// The whole document when it fits in `limit` characters; otherwise the longest prefix of
    /// whole lines that fits together with the closers of its open blocks and the cut notice.
    fn render_within(&self, limit: usize) -> String {
        let lengths: Vec<usize> = self
            .lines
            .iter()
            .map(|l| l.text.chars().count() + 1)
            .collect();
        if lengths.iter().sum::<usize>() <= limit {
            return self.lines.iter().map(|l| format!("{}\n", l.text)).collect();
        }
        // left_after[k][p]: lines of part p among lines[k..].
        let parts = Part::REPORTED.len();
        let mut left_after = vec![vec![0usize; parts]; self.lines.len() + 1];
        for k in (0..self.lines.len()).rev() {
            left_after[k] = left_after[k + 1].clone();
            if let Some(p) = Part::REPORTED
                .iter()
                .position(|r| r.0 == self.lines[k].part)
            {
                left_after[k][p] += 1;
            }
        }
        let tail = |k: usize| -> String {
            let closers = if k == 0 {
                ""
            } else {
                self.closers[self.lines[k - 1].closers].as_str()
            };
            let closers = if closers.is_empty() {
                String::new()
            } else {
                format!("{closers}\n")
            };
            format!("{closers}\n{}\n", cut_notice(&left_after[k], limit))
        };
        let mut best = 0;
        let mut prefix = 0;
        for k in 0..=self.lines.len() {
            if prefix + tail(k).chars().count() <= limit {
                best = k;
            }
            match lengths.get(k) {
                Some(len) if prefix + len <= limit => prefix += len,
                _ => break,
            }
        }
        let mut out: String = self.lines[..best]
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect();
        out.push_str(&tail(best));
        out
    }
}

/// The last line of a cut comment: what was left out.
fn cut_notice(left: &[usize], limit: usize) -> String {
    let named: Vec<String> = Part::REPORTED
        .iter()
        .zip(left)
        .filter(|((_, _, _, always), n)| *always || **n > 0)
        .map(|((_, singular, plural, _), n)| count(*n, singular, plural))
        .collect();
    format!(
        "> **Plan cut short** to fit a comment of {limit} characters: {} left out. Run `berth plan` for the whole plan.",
        named.join(", ")
    )
}

/// Text from es.xml, HCL or libvirt, escaped so markdown and HTML in it show as typed.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in clean(text).chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '$' | '@' => {
                out.push('\\');
                out.push(c);
            }
            '&' => out.push_str("&amp;"),
            _ => out.push(c),
        }
    }
    out
}

fn table_row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

fn summary(plan: &Plan, doc: &mut Doc) {
    doc.push(Part::Other, "### berth plan");
    doc.blank();
    doc.push(Part::Other, format!("**{}**", md(&summary_line(plan))));
    doc.blank();
    doc.push(
        Part::Other,
        format!(
            "es.xml: {} · made {} by berth {}",
            md(&plan.es_xml_path),
            md(&plan.created_at),
            md(&plan.berth_version)
        ),
    );
}

/// `**code** (guest g, host h): message`
fn finding(code: &str, guest: Option<&str>, host: Option<&str>, message: &str) -> String {
    let subject = guest_host(guest, host);
    let subject = if subject.is_empty() {
        String::new()
    } else {
        format!(" ({})", md(&subject))
    };
    format!("**{}**{subject}: {}", md(code), md(message))
}

fn errors(plan: &Plan, doc: &mut Doc) {
    if plan.errors.is_empty() {
        return;
    }
    doc.blank();
    doc.push(
        Part::Other,
        format!(
            "#### ❌ Errors ({}): apply refuses this plan",
            plan.errors.len()
        ),
    );
    doc.blank();
    for e in &plan.errors {
        doc.push(
            Part::Error,
            format!(
                "- {}",
                finding(&e.code, e.guest.as_deref(), e.host.as_deref(), &e.message)
            ),
        );
    }
}

fn drift(plan: &Plan, doc: &mut Doc) {
    if plan.drift.is_empty() {
        return;
    }
    doc.blank();
    doc.push(
        Part::Other,
        format!(
            "#### Drift: es.xml and libvirt disagree ({})",
            plan.drift.len()
        ),
    );
    doc.blank();
    for d in &plan.drift {
        let line = finding(
            &serde_name(&d.kind),
            d.guest.as_deref(),
            d.host.as_deref(),
            &d.message,
        );
        doc.push(
            Part::Drift,
            format!(
                "- {line} (es.xml: {}; libvirt: {})",
                md(&d.es_xml),
                md(&d.libvirt)
            ),
        );
    }
}

fn hosts(plan: &Plan, doc: &mut Doc) {
    if plan.hosts.is_empty() {
        return;
    }
    doc.blank();
    doc.push(Part::Other, "#### Hosts (before → after / capacity)");
    doc.blank();
    doc.push(
        Part::Other,
        "| Host | Memory used | Peak | vCPUs | Guests |",
    );
    doc.push(Part::Other, "| --- | --- | ---: | --- | --- |");
    for h in &plan.hosts {
        let over = h.memory_used_mib_after > h.memory_mib
            || h.memory_peak_mib > h.memory_mib
            || h.vcpus_used_after > h.vcpu_limit;
        let name = if over {
            format!("⚠️ {}", md(&h.name))
        } else {
            md(&h.name)
        };
        let row = table_row(&[
            name,
            format!(
                "{} → {} / {}",
                mib(h.memory_used_mib_before),
                mib(h.memory_used_mib_after),
                mib(h.memory_mib)
            ),
            mib(h.memory_peak_mib),
            format!(
                "{} → {} / {}",
                h.vcpus_used_before, h.vcpus_used_after, h.vcpu_limit
            ),
            format!("{} → {}", h.guests_before, h.guests_after),
        ]);
        doc.push(Part::Host, row);
    }
    let notes = super::format::over_capacity_notes(plan);
    if !notes.is_empty() {
        doc.blank();
        for note in notes {
            doc.push(Part::Other, format!("⚠️ {}", md(&note)));
        }
    }
}

/// Per guest of a host in (or leaving) maintenance: moved where, or stopped or started in
/// place, and its predicted downtime.
fn maintenance(plan: &Plan, doc: &mut Doc) {
    if plan.maintenance.is_empty() {
        return;
    }
    doc.blank();
    doc.push(Part::Other, "#### Maintenance");
    doc.blank();
    for m in &plan.maintenance {
        doc.push(
            Part::Other,
            format!("- {}", md(&super::format::maintenance_line(m))),
        );
    }
}

/// A rolling maintenance, phase by phase (host, predicted times, what happens to each guest,
/// the host command and the wait).
fn phases(plan: &Plan, doc: &mut Doc) {
    if plan.phases.is_empty() {
        return;
    }
    doc.blank();
    doc.push(
        Part::Other,
        format!(
            "#### Rolling maintenance ({}; each starts once the one before it has ended)",
            count(plan.phases.len(), "phase", "phases")
        ),
    );
    for p in &plan.phases {
        doc.blank();
        doc.push(
            Part::Other,
            format!("**{}**", md(&super::format::phase_heading(p))),
        );
        doc.blank();
        for (_, line) in super::format::phase_lines(p) {
            doc.push(Part::Other, format!("- {}", md(&line)));
        }
    }
}

/// The hosts of the `rolling_maintenance` block that earlier applies serviced already.
fn already_serviced(plan: &Plan, doc: &mut Doc) {
    let lines = super::format::already_serviced_lines(plan);
    if lines.is_empty() {
        return;
    }
    doc.blank();
    doc.push(Part::Other, "#### Rolling maintenance, done already");
    doc.blank();
    for line in lines {
        doc.push(Part::Other, format!("- {}", md(&line)));
    }
}

fn moves(plan: &Plan, doc: &mut Doc) {
    let guest_moves: Vec<_> = plan.guest_moves().collect();
    if guest_moves.is_empty() {
        return;
    }
    doc.blank();
    doc.push(Part::Other, format!("#### Moves ({})", guest_moves.len()));
    doc.blank();
    doc.push(
        Part::Other,
        "| Guest | From | To | Mode | Memory | vCPUs | Reason |",
    );
    doc.push(Part::Other, "| --- | --- | --- | --- | ---: | ---: | --- |");
    for m in guest_moves {
        let mode = if !m.kind.is_migrate() {
            m.kind.as_str().to_string()
        } else if m.pivot {
            format!("{} (pivot)", m.mode_label())
        } else {
            m.mode_label()
        };
        let row = table_row(&[
            md(&m.guest),
            md(&m.from),
            md(&m.to),
            mode,
            mib(m.memory_mib),
            m.vcpus.to_string(),
            md(&m.reason),
        ]);
        doc.push(Part::Move, row);
    }
}

fn steps(plan: &Plan, doc: &mut Doc) {
    if plan.steps.is_empty() && plan.skipped_steps.is_empty() {
        return;
    }
    doc.blank();
    // The blank line before `</details>` ends the markdown inside it.
    doc.open("<details>", "\n</details>");
    let mut title = format!(
        "Steps: {} in {}",
        count(plan.steps.len(), "step", "steps"),
        count(plan.waves.len(), "wave", "waves")
    );
    if !plan.skipped_steps.is_empty() {
        let _ = write!(title, ", {} skipped", plan.skipped_steps.len());
    }
    doc.push(Part::Other, format!("<summary>{title}</summary>"));
    let by_id = steps_by_id(plan);
    let phase_starts = phase_starts(plan);
    for (n, wave) in waves(plan).iter().enumerate() {
        if let Some(p) = phase_starts.get(&n) {
            doc.blank();
            doc.push(
                Part::Other,
                format!("##### {}", md(&super::format::phase_heading(p))),
            );
        }
        doc.blank();
        doc.push(Part::Other, format!("**Wave {}**", n + 1));
        doc.blank();
        for entry in wave {
            let line = match entry {
                WaveEntry::Step(step) => {
                    let subject = if step.guest.is_empty() {
                        &step.to
                    } else {
                        &step.guest
                    };
                    let mut line = format!("- {}: `{}`", md(subject), step.kind);
                    if !step.detail.is_empty() {
                        let _ = write!(line, " — {}", md(&step.detail));
                    }
                    let cross: Vec<String> = cross_move_dependencies(step, &by_id)
                        .into_iter()
                        .map(md)
                        .collect();
                    if !cross.is_empty() {
                        let _ = write!(line, " (after {})", cross.join(", "));
                    }
                    line
                }
                WaveEntry::Unknown(id) => format!("- ⚠️ {} (not a step of this plan)", md(id)),
            };
            doc.push(Part::Step, line);
        }
    }
    if !plan.skipped_steps.is_empty() {
        doc.blank();
        doc.push(Part::Other, "**Skipped**");
        doc.blank();
        for s in &plan.skipped_steps {
            doc.push(
                Part::SkippedStep,
                format!("- {}: `{}`: {}", md(&s.guest), s.kind, md(&s.reason)),
            );
        }
    }
    doc.close();
}

fn diff(plan: &Plan, doc: &mut Doc) {
    if plan.es_xml_diff.is_empty() {
        return;
    }
    doc.blank();
    doc.push(
        Part::Other,
        format!("#### es.xml diff ({})", md(&plan.es_xml_path)),
    );
    doc.blank();
    let fence = fence_for(&plan.es_xml_diff);
    doc.open(format!("{fence}diff"), fence.clone());
    for line in plan.es_xml_diff.lines() {
        doc.push(Part::DiffLine, line);
    }
    doc.close();
}

/// A code fence longer than any run of backticks in `content`, so nothing in it can close it.
fn fence_for(content: &str) -> String {
    let longest = content.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::{sample_huge_plan, sample_pivot_plan, sample_plan};
    use crate::plan::unified_diff;

    /// The numbers the cut notice reports, by name.
    fn left_out(markdown: &str, what: &str) -> usize {
        let notice = markdown.lines().last().unwrap();
        assert!(notice.starts_with("> **Plan cut short**"), "{notice}");
        let body =
            &notice[notice.find("characters: ").unwrap() + 12..notice.find(" left out").unwrap()];
        body.split(", ")
            .find_map(|item| {
                let (n, name) = item.split_once(' ')?;
                (name.trim_end_matches('s') == what.trim_end_matches('s'))
                    .then(|| n.parse().unwrap())
            })
            .unwrap_or_else(|| panic!("{what} not in {notice}"))
    }

    #[test]
    fn small_plan_has_every_section_uncut() {
        let plan = sample_plan();
        let markdown = plan_markdown(&plan);
        assert!(markdown.contains(
            "**Plan: 3 moves (1 live, 2 offline), 17 steps in 8 waves. 1 error: apply refuses this plan.**"
        ));
        assert!(markdown.contains("| exa01vm01 | exa01adm01 | exa01adm02 | live | 16 GiB | 4 | host exa01adm01 is drained;"));
        assert!(
            markdown.contains(
                "| exa01adm02 | 24 GiB → 48 GiB / 64 GiB | 48 GiB | 6 → 12 / 32 | 1 → 3 |"
            )
        );
        assert!(markdown.contains("<summary>Steps: 17 steps in 8 waves, 7 skipped</summary>"));
        assert!(
            markdown.contains(
                "- exa01vm03: `MIGRATE_GUEST` — offline migration exa01adm01 → exa01adm02"
            )
        );
        assert!(markdown.contains("(after exa01vm01:MIGRATE\\_GUEST)"));
        assert!(markdown.contains(
            "- **image\\_version** (guest exa01vm02, host exa01adm03): exa01vm02 runs image"
        ));
        assert!(markdown.contains("- **memory\\_mismatch** (guest exa01vm04, host exa01adm02)"));
        assert!(
            markdown.contains("```diff\n--- /u01/oeda/exa01/es.xml\n+++ /u01/oeda/exa01/es.xml\n")
        );
        assert!(markdown.trim_end().ends_with("```"));
        assert!(!markdown.contains("Plan cut short"));
        // Decisive parts come before the long ones.
        let at = |s: &str| markdown.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(at("#### ❌ Errors") < at("#### Drift") && at("#### Drift") < at("#### Hosts"));
        assert!(at("#### Hosts") < at("#### Moves") && at("#### Moves") < at("<details>"));
        assert!(at("</details>") < at("#### es.xml diff"));
    }

    #[test]
    fn pivot_moves_are_marked() {
        let markdown = plan_markdown(&sample_pivot_plan());
        assert_eq!(markdown.matches("| live (pivot) |").count(), 2);
    }

    #[test]
    fn names_cannot_inject_markdown_or_html() {
        let mut plan = sample_plan();
        plan.moves[0].guest = "vm|<img src=x>**`".to_string();
        plan.moves[0].reason = "a\nb".to_string();
        let markdown = plan_markdown(&plan);
        let row = markdown.lines().find(|l| l.contains("vm\\|")).unwrap();
        assert!(
            row.starts_with("| vm\\|\\<img src=x\\>\\*\\*\\` | exa01adm01 |"),
            "{row}"
        );
        assert!(row.contains("| a\\\\u{a}b |"), "{row}");
        assert_eq!(
            row.matches(" | ").count(),
            6,
            "a name must not add table cells: {row}"
        );
    }

    #[test]
    fn diff_fence_outlasts_backticks_in_the_diff() {
        let mut plan = sample_plan();
        plan.es_xml_diff = unified_diff("es.xml", "a\n", "```\n````\n");
        let markdown = plan_markdown(&plan);
        assert!(markdown.contains("\n`````diff\n"), "{markdown}");
        assert!(markdown.trim_end().ends_with("\n`````"));
    }

    #[test]
    fn huge_plan_is_cut_at_a_line_and_counts_what_it_left_out() {
        let plan = sample_huge_plan(2_000);
        let markdown = plan_markdown(&plan);
        assert!(
            markdown.chars().count() <= COMMENT_LIMIT,
            "{} characters",
            markdown.chars().count()
        );
        assert!(
            markdown.chars().count() > COMMENT_LIMIT - 500,
            "cut far too early"
        );
        assert!(markdown.ends_with(" Run `berth plan` for the whole plan.\n"));
        // Summary and hosts survive; the cut falls within the moves table.
        assert!(
            markdown
                .contains("**Plan: 2000 moves (0 live, 2000 offline), 16000 steps in 8 waves.**")
        );
        assert_eq!(markdown.matches("| 32 GiB → 32 GiB / 64 GiB |").count(), 8);
        let shown_moves = markdown
            .lines()
            .filter(|l| l.starts_with("| exa01vm"))
            .count();
        assert!(shown_moves > 0);
        assert_eq!(shown_moves + left_out(&markdown, "moves"), plan.moves.len());
        assert_eq!(left_out(&markdown, "steps"), plan.steps.len());
        assert_eq!(
            left_out(&markdown, "diff lines"),
            plan.es_xml_diff.lines().count()
        );
        // Every kept line is whole: each table row is complete.
        for row in markdown.lines().filter(|l| l.starts_with("| exa01vm")) {
            assert_eq!(row.matches(" | ").count(), 6, "{row}");
            assert!(row.ends_with(" |"), "{row}");
        }
    }

    #[test]
    fn cut_inside_the_steps_closes_the_details_block() {
        let plan = sample_huge_plan(300);
        let markdown = plan_markdown(&plan);
        assert!(markdown.chars().count() <= COMMENT_LIMIT);
        assert_eq!(left_out(&markdown, "moves"), 0);
        let shown_steps = markdown
            .lines()
            .filter(|l| l.starts_with("- exa01vm"))
            .count();
        assert!(shown_steps > 0);
        assert_eq!(shown_steps + left_out(&markdown, "steps"), plan.steps.len());
        assert_eq!(markdown.matches("<details>").count(), 1);
        assert_eq!(markdown.matches("</details>").count(), 1);
        assert!(markdown.find("</details>").unwrap() > markdown.rfind("- exa01vm").unwrap());
    }

    #[test]
    fn cut_inside_the_diff_closes_the_fence() {
        let mut plan = sample_plan();
        let before: String = (0..20_000)
            .map(|i| format!("<machine id=\"vm{i}\"/>\n"))
            .collect();
        plan.es_xml_diff = unified_diff("es.xml", &before, &before.replace("vm", "guest"));
        let markdown = plan_markdown(&plan);
        assert!(markdown.chars().count() <= COMMENT_LIMIT);
        assert_eq!(left_out(&markdown, "moves"), 0);
        assert_eq!(left_out(&markdown, "steps"), 0);
        let shown = markdown
            .lines()
            .filter(|l| l.starts_with("-<machine") || l.starts_with("+<machine"))
            .count();
        assert!(shown > 0);
        // Hunk header and file headers are diff lines too.
        assert_eq!(
            shown + 3 + left_out(&markdown, "diff lines"),
            plan.es_xml_diff.lines().count()
        );
        let fences = markdown.lines().filter(|l| l.starts_with("```")).count();
        assert_eq!(fences, 2, "the diff fence must be closed");
        let lines: Vec<&str> = markdown.lines().collect();
        assert_eq!(lines[lines.len() - 3], "```");
        assert_eq!(lines[lines.len() - 2], "");
    }

    #[test]
    fn tiny_limit_still_gives_a_valid_notice() {
        let plan = sample_plan();
        let markdown = plan_markdown_within(&plan, 400);
        assert!(markdown.chars().count() <= 400, "{markdown}");
        assert_eq!(
            left_out(&markdown, "moves")
                + markdown
                    .lines()
                    .filter(|l| l.starts_with("| exa01vm"))
                    .count(),
            3
        );
    }
}
