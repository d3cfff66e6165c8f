//! One function per subcommand: run the pipeline stages in order, then print.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::apply;
use crate::config::{self, Config};
use crate::inventory::load::Inventory;
use crate::plan::{self, Plan};
use crate::render;
use crate::state::LockGuard;

use super::args::{Cli, Command, GraphArgs, OutputFormat, PlanArgs, ShowArgs, ValidateArgs};
use super::error::CliError;
use super::exit;

/// Whether stderr is coloured (`--no-color`, NO_COLOR, a terminal), for [`report_errors`].
static STDERR_COLOR: AtomicBool = AtomicBool::new(false);

pub fn run(cli: &Cli) -> Result<u8, CliError> {
    if let Some(dir) = &cli.chdir {
        std::env::set_current_dir(dir).map_err(|source| CliError::Chdir {
            path: dir.clone(),
            source,
        })?;
    }
    let color = !cli.no_color && render::color_enabled_for_stdout();
    STDERR_COLOR.store(
        !cli.no_color && render::color_enabled_for_stderr(),
        Ordering::Relaxed,
    );
    match &cli.command {
        Command::Validate(args) => validate(args),
        Command::Plan(args) => plan_cmd(args, color),
        Command::Simulate(args) => super::simulate::run(args),
        Command::Show(args) => show(args, color),
        Command::Graph(args) => graph(args),
        Command::Apply(args) => super::apply::apply(args, color),
        Command::Import(args) => super::import::import(args),
        Command::Fmt(args) => super::fmt::fmt(args),
        Command::Refresh(args) => super::refresh::refresh(args),
        Command::State(cmd) => super::state_cmd::state(cmd),
        Command::ForceUnlock(args) => super::state_cmd::force_unlock(args),
        Command::Version(args) => super::shell::version(args),
        Command::Completions(args) => super::shell::completions(args),
        Command::Man => super::shell::man(),
        Command::Complete(args) => super::shell::complete(args),
    }
}

/// Reads the configuration of the working directory. Its `inventory.connect_timeout_s` reaches
/// every libvirt open through the inventory's spec (`plan::build::inventory_spec`) and apply's
/// runner settings, never through process-wide state.
pub(super) fn load_config() -> Result<Config, CliError> {
    Ok(config::load_dir(Path::new("."))?)
}

/// Reads the configuration of the working directory and the inventory it names.
fn load() -> Result<(Config, Inventory), CliError> {
    let cfg = load_config()?;
    let inv = plan::build::load_inventory(&cfg)?;
    Ok((cfg, inv))
}

pub(super) fn make_plan() -> Result<Plan, CliError> {
    make_plan_with(&config::CommandLineIntents::default())
}

/// Plans with the intents given as flags added to the configuration.
fn make_plan_with(intents: &config::CommandLineIntents) -> Result<Plan, CliError> {
    let (cfg, inv) = load()?;
    let cfg = cfg.with_command_line(intents);
    Ok(plan::build::build(
        &cfg,
        &inv,
        crate::state::history::history(&cfg),
    )?)
}

/// The state lock for `plan` (so that nobody plans against hosts an apply is changing), and a
/// warning when an apply left a plan unfinished.
///
/// `plan` writes nothing but its `-out` file. Where the local state directory does not exist
/// yet no apply has ever run (apply creates it before it takes the lock), so there is nothing
/// to lock and nothing is created: `None`. Otherwise the lock file exists while planning and
/// is removed after, leaving the directory as it was. PostgreSQL is always locked.
fn plan_lock(cfg: &Config, timeout: std::time::Duration) -> Result<Option<LockGuard>, CliError> {
    if matches!(cfg.state.backend, crate::config::StateBackendConfig::Local)
        && !crate::atomic_file::parent_dir(&cfg.state.path).is_dir()
    {
        return Ok(None);
    }
    let (store, _created) = crate::state::open(&cfg.state)?;
    if !timeout.is_zero() {
        eprintln!("Acquiring state lock. This may take a few moments...");
    }
    let guard = store.lock("plan", timeout)?;
    if let Some(u) = store.load()?.and_then(|s| s.in_progress) {
        eprintln!(
            "Warning: plan {} of an earlier apply is unfinished; `berth apply` continues it before anything else \
             (`berth apply -replan` drops it).",
            u.plan_id
        );
    }
    Ok(Some(guard))
}

fn validate(args: &ValidateArgs) -> Result<u8, CliError> {
    let (cfg, inv) = load()?;
    // Name resolution and intent checks are part of validation; capacity is the plan's job.
    crate::diff::desired(&cfg, &inv.topology)
        .map_err(|errs| CliError::Config(plan::build::diff_errors(&cfg, errs)))?;
    let drift_blocks = plan::build::blocking_drift(&cfg, &inv.drift) > 0;
    let unreachable = plan::build::unreachable_hosts(&cfg, &inv.drift);
    let drift: Vec<&crate::inventory::Drift> = inv
        .drift
        .iter()
        .filter(|d| d.kind != crate::inventory::reconcile::DriftKind::HostUnreachable)
        .collect();
    // The static checks of `berth apply` (no connection), on what would be applied now: the
    // plan has no errors (apply refuses one that has), then the static preflight. So
    // "Success!" means apply would get as far as connecting to the hosts. Blocking drift is
    // reported on its own below.
    let apply_problems = if drift_blocks || !unreachable.is_empty() {
        Vec::new()
    } else {
        let history = crate::state::history::history(&cfg);
        let plan = plan::build::build(&cfg, &inv, history).map_err(CliError::Config)?;
        if plan.is_ok() {
            let steps: Vec<&crate::schedule::Step> = plan.steps.iter().collect();
            apply::preflight::static_problems(&cfg, &plan, &steps)
        } else {
            plan.errors
                .iter()
                .map(|e| {
                    format!(
                        "the plan has an error ({}): {} (`berth plan` shows the plan)",
                        e.code, e.message
                    )
                })
                .collect()
        }
    };
    let valid = !drift_blocks && unreachable.is_empty() && apply_problems.is_empty();
    if args.json {
        let report = serde_json::json!({
            "valid": valid,
            "hosts": inv.topology.hosts.len(),
            "guests": inv.topology.guests.len(),
            "unreachable": unreachable,
            "drift": drift,
            "apply_problems": apply_problems,
        });
        print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ))?;
    } else {
        let mut out = format!(
            "es.xml {}: {} KVM hosts, {} guests, {} clusters.\n",
            cfg.inventory.es_xml.value.display(),
            inv.topology.hosts.len(),
            inv.topology.guests.len(),
            inv.topology.clusters.len()
        );
        // Messages quote what libvirt showed (a domain may be named anything but `/`): one
        // line each, whatever they hold (crate::printable).
        let line = crate::printable::one_line;
        for d in &unreachable {
            out.push_str(&format!("unreachable: {}\n", line(&d.message)));
        }
        for d in &drift {
            out.push_str(&format!("drift: {}\n", line(&d.message)));
        }
        for p in &apply_problems {
            out.push_str(&format!("apply would refuse: {}\n", line(p)));
        }
        if !unreachable.is_empty() {
            out.push_str("The configuration is valid, but berth cannot read every host: `berth plan` will stop until libvirt answers on each (or the host is declared `evacuate = true`).\n");
        } else if drift_blocks {
            out.push_str("The configuration is valid, but es.xml and libvirt disagree: `berth plan` will stop until the drift is fixed or `drift_source` says which side wins.\n");
        } else if !apply_problems.is_empty() {
            out.push_str("The configuration is valid, but `berth apply` would refuse what it plans now, before the first step (above).\n");
        } else {
            out.push_str("Success! The configuration is valid.\n");
        }
        if !drift_blocks {
            out.push_str(
                "(Checked without connecting: the plan's errors, the volume command, bridge names, where es.xml and the state are written. \
                 `berth apply` also checks, before the first step, libvirt and SSH to every host involved, \
                 `ip` for bridges and the volume commands' programs on the hosts.)\n",
            );
        }
        print(&out)?;
    }
    Ok(if valid { exit::OK } else { exit::ERROR })
}

fn plan_cmd(args: &PlanArgs, color: bool) -> Result<u8, CliError> {
    let cfg = load_config()?.with_command_line(&args.intents.intents());
    let _lock = if args.lock.lock {
        plan_lock(&cfg, args.lock.lock_timeout)?
    } else {
        None
    };
    let inv = plan::build::load_inventory(&cfg)?;
    let scope = plan::build::Scope {
        targets: args.targets.clone(),
        excludes: args.excludes.clone(),
    };
    if !scope.is_everything() {
        eprintln!(
            "Warning: -target/-exclude in effect: the plan moves only some guests, and may leave what the \
             configuration asks for unfinished; a later `berth plan` shows the rest."
        );
    }
    let plan = plan::build::build_scoped(&cfg, &inv, crate::state::history::history(&cfg), &scope)?;
    // A plan with errors would be refused by apply: like Terraform, do not save it.
    let save_to = args.out.as_ref().filter(|_| plan.is_ok());
    if let Some(path) = save_to {
        plan::file::save(&plan, path, plan::file::key_from_env()?.as_deref())?;
    }
    report_errors(&plan);
    print_plan(&plan, &args.format, color)?;
    match (&args.out, save_to) {
        (Some(path), Some(_)) if !args.format.json => {
            eprintln!(
                "Saved the plan to {}. To apply exactly this plan: berth apply {}",
                path.display(),
                path.display()
            )
        }
        (Some(path), None) => eprintln!("The plan has errors: not saved to {}.", path.display()),
        _ => {}
    }
    Ok(if !plan.is_ok() {
        exit::ERROR
    } else if args.detailed_exitcode && plan.has_changes() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

fn show(args: &ShowArgs, color: bool) -> Result<u8, CliError> {
    let plan = plan::file::load(&args.file)?;
    report_errors(&plan);
    print_plan(&plan, &args.format, color)?;
    Ok(exit::OK)
}

fn graph(args: &GraphArgs) -> Result<u8, CliError> {
    let plan = match &args.file {
        Some(path) => plan::file::load(path)?,
        None => make_plan()?,
    };
    report_errors(&plan);
    print(&render::plan_dot(&plan))?;
    Ok(if plan.is_ok() { exit::OK } else { exit::ERROR })
}

/// A plan's errors, on stderr and before the plan: the first thing read, not the last lines of a
/// long plan (and not mixed into a JSON or Markdown plan on stdout, which keeps its own list).
pub(super) fn report_errors(plan: &Plan) {
    let errors = render::plan_errors_text(plan, STDERR_COLOR.load(Ordering::Relaxed));
    if !errors.is_empty() {
        eprint!("{errors}");
    }
}

fn print_plan(plan: &Plan, format: &OutputFormat, color: bool) -> Result<(), CliError> {
    let text = if format.json {
        render::plan_json(plan)
    } else if format.markdown {
        render::plan_markdown(plan)
    } else {
        render::plan_text(
            plan,
            &render::TextOptions {
                color,
                // On stderr already (`report_errors`).
                omit_errors: true,
                ..Default::default()
            },
        )
    };
    print(&text)
}

/// Writes to stdout; a closed pipe (`berth plan | head`) is not an error.
pub(super) fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| {
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    }) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(CliError::Stdout),
    }
}
