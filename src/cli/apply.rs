//! `berth apply`: choose the plan (continue an unfinished one, a saved one, or plan now), show
//! it, ask, run it with progress, and summarize. The work is in [`crate::apply::Session`].

use std::collections::BTreeSet;
use std::path::Path;

use crate::apply::{
    ExecOptions, LockOptions, RunOutcome, Session, WrittenBack, interrupt, plan_id, preflight,
    resume, setup,
};
use crate::config;
use crate::inventory::load::Inventory;
use crate::plan::{self, Plan};
use crate::render;

use super::args::ApplyArgs;
use super::error::CliError;
use super::exit;
use super::progress::Progress;

/// Where the plan being applied came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// An earlier apply left it unfinished.
    Unfinished,
    /// `berth apply FILE`.
    Saved,
    /// Planned now.
    Fresh,
}

pub fn apply(args: &ApplyArgs, color: bool) -> Result<u8, CliError> {
    if !args.json {
        return run(args, color);
    }
    // The stream starts with its version, whatever follows; an error ends it with a diagnostic
    // message (and is printed on stderr as always).
    super::progress::Json::start_stream();
    let result = run(args, color);
    if let Err(e) = &result {
        super::progress::Json::diagnostic(&e.render(false));
    }
    result
}

fn run(args: &ApplyArgs, color: bool) -> Result<u8, CliError> {
    if args.json && !args.auto_approve && args.file.is_none() {
        return Err(CliError::Refused(
            "--json cannot ask for confirmation: add -auto-approve, or apply a saved plan (`berth apply FILE`)".into(),
        ));
    }
    if args.step.is_some() && (args.targets.len() != 1 || !args.excludes.is_empty()) {
        return Err(CliError::Refused(
            "--step runs one step of one guest's move: give exactly one -target GUEST".into(),
        ));
    }
    let intents = args.intents.intents();
    if let Some(file) = &args.file
        && !intents.is_empty()
    {
        return Err(CliError::Refused(format!(
            "{} is a saved plan: it is applied exactly as it was planned, so intent flags (-drain, -maintenance, \
             -end-maintenance, -evacuate, -return-home, -rebalance, -rolling) cannot change it. Give them to `berth plan -out FILE` instead, or run \
             `berth apply` with them and without FILE to plan and apply at once",
            file.display()
        )));
    }
    // The flags count for every plan made now: the first one, and the fresh plan that follows
    // an unfinished plan continued first.
    let cfg = config::load_dir(Path::new("."))?.with_command_line(&intents);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    if !args.lock.lock {
        eprintln!(
            "Warning: -lock=false: applying WITHOUT the state lock. Another berth applying to the same state at \
             the same time can move the same guests and overwrite what this one journals. Use it only when you \
             are sure no other berth runs against this state."
        );
    } else if !args.lock.lock_timeout.is_zero() {
        eprintln!("Acquiring state lock. This may take a few moments...");
    }
    let lock = LockOptions {
        lock: args.lock.lock,
        timeout: args.lock.lock_timeout,
    };
    let mut session = Session::open_locking(cfg, runtime.handle().clone(), lock)?;
    let say = |text: &str| say(args.json, text);
    for note in session.notes() {
        say(note);
    }
    for note in session.settle()? {
        say(&note);
    }
    let mut code = exit::OK;
    // A continued plan is followed by a fresh plan for whatever is left to do.
    for round in 0..2 {
        let mut inv = session.read_inventory()?;
        if args.replan && round == 0 && session.unfinished().is_some() {
            drop_unfinished(&mut session, &say)?;
            inv = session.read_inventory()?;
        }
        let (plan, source) = choose_plan(&session, args, &inv)?;
        let plan_phases = plan.phases.clone();
        if round > 0 && source == Source::Fresh && !plan.has_changes() && plan.is_ok() {
            say("Nothing else to do: every guest is where the configuration wants it.");
            break;
        }
        let Some(result) = apply_plan(&mut session, &runtime, args, plan, source, color)? else {
            break;
        };
        code = code.max(result.0);
        if !(source == Source::Unfinished && result.1 && args.step.is_none() && code == exit::OK) {
            break;
        }
        // A rolling maintenance is an action, not a placement: planning again would start it
        // over. It is done.
        if !plan_phases.is_empty() {
            say("\nThe rolling maintenance is done.");
            break;
        }
        say("\nThe unfinished plan is done. Planning again from what is now.\n");
    }
    Ok(code)
}

/// Text that is not an event: on stdout, or on stderr with `--json` (stdout is events only).
fn say(json: bool, text: &str) {
    if json {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// `-replan`: forgets the unfinished plan, after writing es.xml for the moves it completed.
fn drop_unfinished(session: &mut Session, say: &dyn Fn(&str)) -> Result<(), CliError> {
    let dropped = session.abandon()?;
    say(&format!("Dropped the unfinished plan {}.", dropped.plan_id));
    if let Some(w) = &dropped.write_back {
        say(&write_back_line(w));
    }
    for guest in &dropped.left_stopped {
        say(&format!(
            "Warning: {guest} was shut down by the dropped plan and was not started again; berth will not start it."
        ));
    }
    for guest in &dropped.left_detached {
        say(&format!(
            "Warning: the dropped plan took the SR-IOV interfaces out of {guest} and did not give them back; \
             they are recorded in its definition's <metadata> (berth:detached-interfaces), to be given VFs by hand."
        ));
    }
    Ok(())
}

fn choose_plan(
    session: &Session,
    args: &ApplyArgs,
    inv: &Inventory,
) -> Result<(Plan, Source), CliError> {
    if let Some(u) = session.unfinished() {
        if let Some(file) = &args.file {
            let saved = plan::file::load_for_apply(file, plan::file::key_from_env()?.as_deref())?;
            if plan_id(&saved) != plan_id(&u.plan) {
                return Err(CliError::Refused(format!(
                    "plan {} of an earlier apply (started {}) is unfinished, and {} is another plan: finish the \
                     unfinished one with `berth apply`, or drop it with `berth apply -replan`",
                    u.plan_id,
                    u.started_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    file.display()
                )));
            }
        }
        let blockers = session.resume_blockers(inv);
        if !blockers.is_empty() {
            return Err(CliError::Refused(format!(
                "plan {} of an earlier apply is unfinished and cannot be continued:\n  - {}\n\
                 Put things back, or drop that plan and plan afresh with `berth apply -replan`.",
                u.plan_id,
                blockers.join("\n  - ")
            )));
        }
        return Ok((u.plan.clone(), Source::Unfinished));
    }
    if let Some(file) = &args.file {
        let saved = match plan::file::load_for_apply(file, plan::file::key_from_env()?.as_deref()) {
            Err(e @ plan::file::PlanFileError::Corrupted { .. }) => {
                // Refused whatever it says; what it says, compared with a plan made now, shows
                // where it was changed.
                let mut message = e.to_string();
                let differences = plan::file::salvage(file)
                    .map(|p| session.stale_reasons(&p, inv))
                    .unwrap_or_default();
                if !differences.is_empty() {
                    message.push_str(&format!(
                        "\nWhat it says differs from a plan made now:\n  - {}",
                        differences.join("\n  - ")
                    ));
                }
                return Err(CliError::Refused(message));
            }
            other => other?,
        };
        // Applied once, like a Terraform plan: after it, the world it was made for is gone,
        // even where it looks the same again (guests moved back by hand, es.xml not rewritten).
        if let Some(entry) = session.applied_before(&saved) {
            let when = entry
                .finished_at
                .or(entry.started_at)
                .map_or_else(String::new, |t| {
                    format!(
                        " (last step {})",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                });
            return Err(CliError::Refused(format!(
                "the saved plan {} was already applied: plan {} is in the state's journal{when}. A saved plan \
                 is applied once; make a new plan: berth plan -out {}",
                file.display(),
                entry.plan_id,
                file.display()
            )));
        }
        // A plan with errors is never applied; planning it again (below) finds them too, even
        // if they were taken out of the file.
        let reasons = session.stale_reasons(&saved, inv);
        if !reasons.is_empty() {
            return Err(CliError::Refused(format!(
                "the saved plan {} no longer matches what is:\n  - {}\nMake a new plan: berth plan -out {}",
                file.display(),
                reasons.join("\n  - "),
                file.display()
            )));
        }
        return Ok((saved, Source::Saved));
    }
    Ok((session.make_plan(inv)?, Source::Fresh))
}

/// The guest `name` designates in `plan`: a guest of its moves or of its fingerprints, by full
/// name or first DNS label.
fn resolve_guest(plan: &Plan, flag: &str, name: &str) -> Result<String, CliError> {
    let known: BTreeSet<&str> = plan
        .fingerprints
        .guests
        .keys()
        .map(String::as_str)
        .chain(plan.moves.iter().map(|m| m.guest.as_str()))
        .collect();
    if known.contains(name) {
        return Ok(name.to_string());
    }
    let by_short: Vec<&str> = known
        .iter()
        .copied()
        .filter(|g| g.split('.').next() == Some(name))
        .collect();
    match by_short.as_slice() {
        [one] => Ok(one.to_string()),
        [] => {
            let moved: BTreeSet<&str> = plan.moves.iter().map(|m| m.guest.as_str()).collect();
            let moved: Vec<&str> = moved.into_iter().collect();
            Err(CliError::Refused(format!(
                "{flag} {name}: no such guest; the plan moves {}",
                if moved.is_empty() {
                    "nothing".to_string()
                } else {
                    moved.join(", ")
                }
            )))
        }
        many => Err(CliError::Refused(format!(
            "{flag} {name} is ambiguous: {}",
            many.join(", ")
        ))),
    }
}

/// The step id `--step NAME` designates for `guest`: `NAME` is a step kind (`STOP_GUEST`,
/// any case, with `#n` for the guest's n-th move) or a whole step id.
fn resolve_step(plan: &Plan, guest: &str, name: &str) -> Result<String, CliError> {
    if plan.steps.iter().any(|s| s.id == name && s.guest == guest) {
        return Ok(name.to_string());
    }
    let (kind, suffix) = name
        .split_once('#')
        .map_or((name, String::new()), |(k, n)| (k, format!("#{n}")));
    let kind: crate::schedule::StepKind = kind
        .parse()
        .map_err(|e: String| CliError::Refused(format!("--step: {e}")))?;
    let id = format!("{guest}:{kind}{suffix}");
    if plan.steps.iter().any(|s| s.id == id) {
        return Ok(id);
    }
    if let Some(skipped) = plan
        .skipped_steps
        .iter()
        .find(|s| s.guest == guest && s.kind == kind)
    {
        return Err(CliError::Refused(format!(
            "--step {name}: not a step of this plan: {}",
            skipped.reason
        )));
    }
    let steps: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| s.guest == guest)
        .map(|s| s.id.as_str())
        .collect();
    Err(CliError::Refused(format!(
        "--step {name}: {guest} has no such step in this plan; its steps: {}",
        if steps.is_empty() {
            "none".to_string()
        } else {
            steps.join(", ")
        }
    )))
}

/// Asks before the moves are applied.
fn confirm(moves: usize) -> Result<bool, CliError> {
    let noun = if moves == 1 { "move" } else { "moves" };
    super::confirm::ask_yes(
        &format!("Do you want to apply these {moves} {noun}?"),
        "Run `berth apply -auto-approve` to apply without asking, or save the plan (`berth plan \
         -out FILE`), review it, and run `berth apply FILE`.",
    )
}

/// Shows, confirms and runs `plan`. Returns (exit code, finished), or `None` when there was
/// nothing to do.
fn apply_plan(
    session: &mut Session,
    runtime: &tokio::runtime::Runtime,
    args: &ApplyArgs,
    plan: Plan,
    source: Source,
    color: bool,
) -> Result<Option<(u8, bool)>, CliError> {
    let mut targets = match args.targets.is_empty() {
        true => None,
        false => Some(
            args.targets
                .iter()
                .map(|t| resolve_guest(&plan, "-target", t))
                .collect::<Result<BTreeSet<_>, _>>()?,
        ),
    };
    // `-exclude G`: every guest in scope but those (the plan's moved guests, or the targets).
    if !args.excludes.is_empty() {
        let excluded = args
            .excludes
            .iter()
            .map(|g| resolve_guest(&plan, "-exclude", g))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let base = targets
            .take()
            .unwrap_or_else(|| plan.moves.iter().map(|m| m.guest.clone()).collect());
        targets = Some(base.difference(&excluded).cloned().collect());
    }
    let single_step = match (&args.step, &targets) {
        (Some(step), Some(t)) => t
            .iter()
            .next()
            .map(|g| resolve_step(&plan, g, step))
            .transpose()?,
        _ => None,
    };
    super::commands::report_errors(&plan);
    if !args.json {
        show(session, &plan, source, color);
    }
    if !plan.is_ok() {
        return Err(CliError::Refused(
            "the plan has errors (listed before it); nothing was applied".into(),
        ));
    }
    if args.stop_after_phase.is_some() && plan.phases.is_empty() {
        return Err(CliError::Refused(
            "--stop-after-phase goes through a rolling maintenance phase by phase, and this plan has no phases \
             (plan one with `-rolling HOST,HOST,…` or `rolling_maintenance { hosts = [...] }`)"
                .into(),
        ));
    }
    let scope = match (source, session.unfinished()) {
        (Source::Unfinished, Some(u)) => {
            if let (Some(t), Some(scope)) = (&targets, &u.targets)
                && let Some(outside) = t.iter().find(|g| !scope.contains(*g))
            {
                return Err(CliError::Refused(format!(
                    "-target {outside}: the unfinished plan {} covers only {}",
                    u.plan_id,
                    scope.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            resume::unfinished_by_guest(session.state(), u)
                .into_keys()
                .filter(|g| resume::in_scope(&targets, g))
                .collect::<BTreeSet<_>>()
        }
        _ => plan
            .moves
            .iter()
            .map(|m| m.guest.clone())
            .filter(|g| resume::in_scope(&targets, g))
            .collect(),
    };
    // An unfinished plan with every step done only lacks its es.xml write-back: run it.
    if scope.is_empty() && source != Source::Unfinished {
        if !args.json && targets.is_some() {
            println!("\nNo changes for the targeted guests.");
        }
        return Ok(None);
    }
    // Guest moves (a rolling maintenance's host services are not).
    let moves = plan
        .moves
        .iter()
        .filter(|m| !m.guest.is_empty() && scope.contains(&m.guest))
        .count();
    // Preflight: everything the steps will need, before asking and before the first step.
    let done: BTreeSet<String> = match (source, session.unfinished()) {
        (Source::Unfinished, Some(u)) => {
            let left: BTreeSet<&str> = resume::unfinished_steps(session.state(), u)
                .into_iter()
                .map(|s| s.id.as_str())
                .collect();
            plan.steps
                .iter()
                .filter(|s| !left.contains(s.id.as_str()))
                .map(|s| s.id.clone())
                .collect()
        }
        _ => BTreeSet::new(),
    };
    let steps = preflight::steps_to_run(&plan, &scope, single_step.as_deref(), &done);
    let problems = session.preflight(&plan, &steps);
    if !problems.is_empty() {
        return Err(CliError::Refused(format!(
            "preflight found {} problem{} that would stop this apply before it finishes; nothing was changed:\n  - {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  - ")
        )));
    }
    if source != Source::Saved && moves > 0 && !args.auto_approve && !confirm(moves)? {
        println!("Apply cancelled.");
        return Ok(Some((exit::ERROR, false)));
    }
    let mut progress = Progress::new(&plan, args.json);
    // A targeted (or step-by-step) apply keeps its guests as the plan's scope, so that a later
    // `berth apply` finishes exactly those moves.
    session.begin(plan, targets.clone())?;
    let opts = ExecOptions {
        keep_going: args.keep_going,
        targets: targets.clone(),
        single_step,
        stop_after_phase: args.stop_after_phase.map(|n| n as usize),
        ..setup::exec_options(session.config(), args.parallelism.map(|p| p as usize))
    };
    // From here on Ctrl-C is graceful (no sooner: it must still cancel the confirmation).
    catch_interrupts(runtime, args.json);
    let outcome = runtime.block_on(session.run(&opts, &mut |e| progress.event(e)))?;
    Ok(Some((
        summarize(&outcome, &progress, args),
        outcome.finished,
    )))
}

fn show(session: &Session, plan: &Plan, source: Source, color: bool) {
    match (source, session.unfinished()) {
        (Source::Unfinished, Some(u)) => {
            let left = resume::unfinished_steps(session.state(), u).len();
            println!(
                "Continuing the unfinished apply of plan {} (started {}): {} of {} steps in its scope are not done yet.\n",
                u.plan_id,
                u.started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                left,
                plan.steps
                    .iter()
                    .filter(|s| resume::in_scope(&u.targets, &s.guest))
                    .count()
            );
        }
        (Source::Saved, _) => println!("Applying the saved plan {}.\n", plan_id(plan)),
        _ => {}
    }
    print!(
        "{}",
        render::plan_text(
            plan,
            &render::TextOptions {
                color,
                // On stderr already (`report_errors`).
                omit_errors: true,
                ..Default::default()
            }
        )
    );
}

fn write_back_line(w: &WrittenBack) -> String {
    match &w.backup {
        Some(b) => format!(
            "es.xml written back: {} (previous version saved as {})",
            w.path.display(),
            b.display()
        ),
        None => format!("es.xml written back: {}", w.path.display()),
    }
}

/// Handles SIGINT and SIGTERM for the rest of the process (see `apply::interrupt`): the first
/// stops new steps, the second also aborts running live migrations.
fn catch_interrupts(runtime: &tokio::runtime::Runtime, json: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        runtime.spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                tracing::warn!("cannot catch SIGINT/SIGTERM; they stop berth at once");
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let text = match interrupt::request() {
                    1 => "\nInterrupted: no new step starts; running steps finish and are journaled, then berth exits. \
                          Interrupt again to abort running live migrations (the guests stay on their sources).",
                    2 => "\nInterrupted again: aborting running live migrations; berth exits once they have ended.",
                    _ => continue,
                };
                // Text, not an event: stderr keeps --json's stdout clean.
                if json {
                    eprintln!("{text}");
                } else {
                    println!("{text}");
                }
            }
        });
    });
}

/// Prints what completed, failed and was skipped; returns the exit code.
fn summarize(outcome: &RunOutcome, progress: &Progress, args: &ApplyArgs) -> u8 {
    let r = &outcome.report;
    let mut lines = vec![String::new()];
    for (step, message) in &r.failed {
        lines.push(format!("Failed: {step}: {message}"));
    }
    if !r.not_run.is_empty() {
        let mut by_guest: std::collections::BTreeMap<&str, usize> =
            std::collections::BTreeMap::new();
        for step in &r.not_run {
            *by_guest
                .entry(step.rsplit_once(':').map_or(step.as_str(), |(g, _)| g))
                .or_default() += 1;
        }
        let guests: Vec<String> = by_guest.iter().map(|(g, n)| format!("{g} ({n})")).collect();
        let why = if r.interrupted {
            "the apply was interrupted"
        } else {
            "the apply stopped at the failure (-keep-going lets independent steps finish)"
        };
        lines.push(format!(
            "Not run, because {why}: {} step(s) of {}",
            r.not_run.len(),
            guests.join(", ")
        ));
    }
    let write_back_failed = match &outcome.write_back {
        Ok(Some(w)) => {
            lines.push(write_back_line(w));
            false
        }
        Ok(None) => false,
        Err(e) => {
            lines.push(format!("error: {e}"));
            true
        }
    };
    // `--step` that ran nothing (done before, or its earlier steps are not done) did not do
    // what was asked: say why, and exit 1 so that a script notices.
    let step_did_nothing = match &args.step {
        Some(step) if r.done.is_empty() && r.failed.is_empty() => {
            let why: Vec<&str> = r.skipped.iter().map(|(_, why)| why.as_str()).collect();
            lines.push(format!(
                "--step {step} did nothing: {}.",
                if why.is_empty() {
                    "no step was selected".to_string()
                } else {
                    why.join("; ")
                }
            ));
            true
        }
        _ => false,
    };
    let ok = r.succeeded() && !write_back_failed && !step_did_nothing;
    let counts = format!(
        "{} step{} done, {} failed, {} skipped, {} not run",
        r.done.len(),
        if r.done.len() == 1 { "" } else { "s" },
        r.failed.len(),
        r.skipped.len(),
        r.not_run.len()
    );
    if ok && !r.held.is_empty() {
        let next = args.stop_after_phase.map_or(0, |n| n + 1);
        lines.push(format!(
            "Stopped after phase {} as asked (--stop-after-phase): {counts}, {} step(s) of later phases held. \
             `berth apply` continues with phase {next}.",
            next.saturating_sub(1),
            r.held.len()
        ));
    } else if ok && outcome.finished {
        lines.push(format!("Apply complete! {counts}."));
    } else if step_did_nothing {
        lines.push(format!("Nothing applied: {counts}."));
    } else if ok {
        lines.push(format!(
            "Applied what was asked: {counts}. The plan is not finished; `berth apply` continues it{}.",
            if args.step.is_some() { " (or run the next step with --step)" } else { "" }
        ));
    } else if r.interrupted {
        lines.push(format!(
            "Apply interrupted: {counts}. Run `berth apply` again to continue."
        ));
    } else {
        lines.push(format!(
            "Apply failed: {counts}. Fix the cause and run `berth apply` again to continue."
        ));
    }
    for line in lines {
        progress.note(&line);
    }
    if ok { exit::OK } else { exit::ERROR }
}
