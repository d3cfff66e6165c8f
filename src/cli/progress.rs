//! How `berth apply` shows its progress: one JSON event per line (`--json`), a live bar per
//! running step when stderr is a terminal, plain lines otherwise (logs, CI).

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::stream::{Level, StreamMessage};
use crate::apply::{Event, MigrationProgress};
use crate::plan::Plan;

/// Where events go.
pub enum Progress {
    Json(Json),
    Lines(Lines),
    Bars(Bars),
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise; JSON when asked.
    pub fn new(plan: &Plan, json: bool) -> Progress {
        use std::io::IsTerminal;
        if json {
            Progress::Json(Json::new(plan))
        } else if std::io::stderr().is_terminal() {
            Progress::Bars(Bars::new(plan))
        } else {
            Progress::Lines(Lines::new(plan))
        }
    }

    pub fn event(&mut self, event: Event) {
        match self {
            Progress::Json(j) => j.event(event),
            Progress::Lines(l) => l.event(&named(event)),
            Progress::Bars(b) => b.event(&named(event)),
        }
    }

    /// Prints a line that is not an event (to stderr in JSON mode, so stdout stays JSON).
    pub fn note(&self, line: &str) {
        let line = crate::printable::escape(line);
        match self {
            Progress::Json(_) => eprintln!("{line}"),
            Progress::Lines(_) => println!("{line}"),
            Progress::Bars(b) => b.multi.suspend(|| println!("{line}")),
        }
    }
}

/// `STOP_GUEST` for `vm01:STOP_GUEST`, `MIGRATE_GUEST#2` for `vm01:MIGRATE_GUEST#2`.
/// A host step (rolling maintenance) has no guest: the lines name its host, the id's prefix.
fn named(mut event: Event) -> Event {
    match &mut event {
        Event::Start { step, guest, .. }
        | Event::Progress { step, guest, .. }
        | Event::Done { step, guest, .. }
        | Event::Skip { step, guest, .. }
        | Event::Error { step, guest, .. }
            if guest.is_empty() =>
        {
            *guest = step
                .rsplit_once(':')
                .map_or(step.as_str(), |(host, _)| host)
                .to_string();
        }
        _ => {}
    }
    event
}

fn step_name(step: &str) -> &str {
    step.rsplit_once(':').map_or(step, |(_, name)| name)
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn progress_text(p: &MigrationProgress) -> String {
    let mut parts = Vec::new();
    if let Some(pct) = p.percent {
        parts.push(format!("{pct:.0}%"));
    }
    if let Some(rate) = p.mib_per_s {
        parts.push(format!("{rate:.0} MiB/s"));
    }
    if let (Some(rem), Some(total)) = (p.mem_remaining_mib, p.mem_total_mib) {
        parts.push(format!("{rem} of {total} MiB left"));
    }
    if let Some(it) = p.iteration {
        parts.push(format!("pass {it}"));
    }
    parts.join(", ")
}

/// What each step does, in words (from the plan), for the start line.
fn details(plan: &Plan) -> HashMap<String, String> {
    plan.steps
        .iter()
        .map(|s| (s.id.clone(), s.detail.clone()))
        .collect()
}

/// `--json`: the stream of [`StreamMessage`]s on stdout (after the version message, which
/// [`Json::start_stream`] writes once per apply).
pub struct Json {
    details: HashMap<String, String>,
}

impl Json {
    fn new(plan: &Plan) -> Json {
        Json {
            details: details(plan),
        }
    }

    /// The stream's first line: its format version.
    pub fn start_stream() {
        println!("{}", StreamMessage::version().to_json_line());
    }

    /// A diagnostic message: why the apply stopped.
    pub fn diagnostic(text: &str) {
        let event = Event::Diagnostic {
            summary: text.to_string(),
        };
        let message = line_for(&HashMap::new(), &event);
        println!(
            "{}",
            StreamMessage::now(Level::Error, message, event).to_json_line()
        );
    }

    fn event(&mut self, event: Event) {
        let (level, message) = self.words(&event);
        println!(
            "{}",
            StreamMessage::now(level, message, event).to_json_line()
        );
    }

    /// The `@level` and `@message` of `event`: the words the text output uses.
    fn words(&self, event: &Event) -> (Level, String) {
        let level = match event {
            Event::Error { .. } | Event::Diagnostic { .. } => Level::Error,
            Event::Summary {
                failed, not_run, ..
            } if failed + not_run > 0 => Level::Error,
            _ => Level::Info,
        };
        (level, line_for(&self.details, event))
    }
}

/// The line that tells `event` in words (plain output and the JSON stream's `@message`).
/// Errors carry what hosts answered (libvirt, a volume command's stderr): their control
/// characters are shown, never sent to the terminal (crate::printable).
fn line_for(details: &HashMap<String, String>, event: &Event) -> String {
    let line = words_for(details, event);
    match crate::printable::escape(&line) {
        std::borrow::Cow::Borrowed(_) => line,
        std::borrow::Cow::Owned(escaped) => escaped,
    }
}

fn words_for(details: &HashMap<String, String>, event: &Event) -> String {
    match event {
        Event::Version {
            berth,
            format_version,
        } => format!("berth {berth}: apply events, format {format_version}"),
        Event::Start { step, guest, .. } => {
            let detail = details.get(step).map(String::as_str).unwrap_or("");
            format!("{guest}: {} started ({detail})", step_name(step))
        }
        Event::Progress {
            step,
            guest,
            progress,
        } => format!("{guest}: {} {}", step_name(step), progress_text(progress)),
        Event::Done {
            step,
            guest,
            note: Some(note),
            elapsed_ms,
        } => format!(
            "{guest}: {} done ({note}) after {}",
            step_name(step),
            seconds(*elapsed_ms)
        ),
        Event::Done {
            step,
            guest,
            note: None,
            elapsed_ms,
        } => format!(
            "{guest}: {} done after {}",
            step_name(step),
            seconds(*elapsed_ms)
        ),
        Event::Skip {
            step,
            guest,
            reason,
        } => format!("{guest}: {} skipped: {reason}", step_name(step)),
        Event::Error {
            step,
            guest,
            message,
        } => format!("{guest}: {} FAILED: {message}", step_name(step)),
        Event::Diagnostic { summary } => summary.clone(),
        Event::Summary {
            done,
            failed,
            skipped,
            not_run,
            ..
        } => format!(
            "Apply {}: {done} done, {failed} failed, {skipped} skipped, {not_run} not run",
            if failed + not_run > 0 {
                "failed"
            } else {
                "ended"
            }
        ),
    }
}

/// Plain lines on stdout: one when a step starts and one when it ends; live-migration
/// progress every 10 %.
pub struct Lines {
    details: HashMap<String, String>,
    last_decile: HashMap<String, u64>,
}

impl Lines {
    fn new(plan: &Plan) -> Lines {
        Lines {
            details: details(plan),
            last_decile: HashMap::new(),
        }
    }

    fn event(&mut self, event: &Event) {
        match event {
            Event::Progress { step, progress, .. } => {
                let decile = progress.percent.map_or(0, |p| (p / 10.0) as u64);
                if self.last_decile.insert(step.clone(), decile) != Some(decile) {
                    println!("{}", line_for(&self.details, event));
                }
            }
            Event::Summary { .. } | Event::Version { .. } | Event::Diagnostic { .. } => {}
            _ => println!("{}", line_for(&self.details, event)),
        }
    }
}

/// One bar per running step on stderr; each finished step leaves one line above them.
pub struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    details: HashMap<String, String>,
}

impl Bars {
    fn new(plan: &Plan) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            details: details(plan),
        }
    }

    fn spinner() -> ProgressStyle {
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn bar() -> ProgressStyle {
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}% [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
    }

    fn event(&mut self, event: &Event) {
        match event {
            Event::Start { step, guest, .. } => {
                let bar = self
                    .multi
                    .add(ProgressBar::new_spinner().with_style(Self::spinner()));
                let detail = self.details.get(step).cloned().unwrap_or_default();
                bar.set_message(format!("{guest}: {} ({detail})", step_name(step)));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars.insert(step.clone(), bar);
            }
            Event::Progress {
                step,
                guest,
                progress,
            } => {
                if let Some(bar) = self.bars.get(step) {
                    if let Some(pct) = progress.percent {
                        if bar.length().is_none() {
                            bar.set_length(100);
                            bar.set_style(Self::bar());
                        }
                        bar.set_position(pct.clamp(0.0, 100.0) as u64);
                    }
                    bar.set_message(format!(
                        "{guest}: {} {}",
                        step_name(step),
                        progress_text(progress)
                    ));
                }
            }
            Event::Done {
                step,
                guest,
                note,
                elapsed_ms,
            } => {
                let text = match note {
                    Some(note) => {
                        format!(
                            "✓ {guest}: {} done ({note}) after {}",
                            step_name(step),
                            seconds(*elapsed_ms)
                        )
                    }
                    None => format!(
                        "✓ {guest}: {} done after {}",
                        step_name(step),
                        seconds(*elapsed_ms)
                    ),
                };
                self.finish(step, text);
            }
            Event::Error {
                step,
                guest,
                message,
            } => {
                self.finish(
                    step,
                    format!("✗ {guest}: {} failed: {message}", step_name(step)),
                );
            }
            Event::Skip {
                step,
                guest,
                reason,
            } => {
                let _ = self.multi.println(crate::printable::escape(&format!(
                    "- {guest}: {} skipped: {reason}",
                    step_name(step)
                )));
            }
            Event::Summary { .. } | Event::Version { .. } | Event::Diagnostic { .. } => {}
        }
    }

    /// Replaces the step's bar by a permanent line above the running bars.
    fn finish(&mut self, step: &str, text: String) {
        if let Some(bar) = self.bars.remove(step) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.println(crate::printable::escape(&text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_and_progress_read_well() {
        assert_eq!(
            step_name("vm01.example.com:MIGRATE_GUEST#2"),
            "MIGRATE_GUEST#2"
        );
        let p = MigrationProgress {
            percent: Some(42.4),
            mib_per_s: Some(850.2),
            mem_total_mib: Some(65536),
            mem_processed_mib: None,
            mem_remaining_mib: Some(37000),
            iteration: Some(1),
            elapsed_ms: None,
            mem_processed_bytes: None,
        };
        assert_eq!(
            progress_text(&p),
            "42%, 850 MiB/s, 37000 of 65536 MiB left, pass 1"
        );
        assert_eq!(seconds(1234), "1.2s");
    }

    #[test]
    fn what_a_host_answers_cannot_drive_the_terminal() {
        let failed = Event::Error {
            step: "vm01:ATTACH_VOLUMES".into(),
            guest: "vm01".into(),
            message: "edvutil: \u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}[2Jdone\rok".into(),
        };
        let line = line_for(&HashMap::new(), &failed);
        assert_eq!(
            line,
            "vm01: ATTACH_VOLUMES FAILED: edvutil: \\u{1b}]52;c;cm0gLXJmIH4=\\u{7}\\u{1b}[2Jdone\\u{d}ok"
        );
    }
}
