//! One function per subcommand: run the pipeline stages in order, then print.

use std::io::Write;
use std::path::Path;

use crate::config::{self, Config};
use crate::inventory::load::Inventory;
use crate::plan::{self, Plan};
use crate::render;
use crate::state::LockGuard;

use super::args::{Cli, Command, GraphArgs, OutputFormat, PlanArgs, ShowArgs, ValidateArgs};
use super::error::CliError;
use super::exit;

pub fn run(cli: &Cli) -> Result<u8, CliError> {
    if let Some(dir) = &cli.chdir {
        std::env::set_current_dir(dir).map_err(|source| CliError::Chdir {
            path: dir.clone(),
            source,
        })?;
    }
    let color = !cli.no_color && render::color_enabled_for_stdout();
    match &cli.command {
        Command::Validate(args) => validate(args),
        Command::Plan(args) => plan_cmd(args, color),
        Command::Simulate(args) => super::simulate::run(args),
        Command::Show(args) => show(args, color),
        Command::Graph(args) => graph(args),
        Command::Apply(args) => super::apply::apply(args, color),
        Command::State(cmd) => super::state_cmd::state(cmd),
        Command::ForceUnlock(args) => super::state_cmd::force_unlock(args),
    }
}

/// Reads the configuration of the working directory and the inventory it names.
fn load() -> Result<(Config, Inventory), CliError> {
    let cfg = config::load_dir(Path::new("."))?;
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
fn plan_lock(cfg: &Config, timeout: std::time::Duration) -> Result<LockGuard, CliError> {
    let store = crate::state::open(&cfg.state)?;
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
    Ok(guard)
}

fn validate(args: &ValidateArgs) -> Result<u8, CliError> {
    let (cfg, inv) = load()?;
    // Name resolution and intent checks are part of validation; capacity is the plan's job.
    crate::diff::desired(&cfg, &inv.topology)
        .map_err(|errs| CliError::Config(plan::build::diff_errors(&cfg, errs)))?;
    let drift_blocks = plan::build::blocking_drift(&cfg, &inv.drift) > 0;
    if args.json {
        let report = serde_json::json!({
            "valid": !drift_blocks,
            "hosts": inv.topology.hosts.len(),
            "guests": inv.topology.guests.len(),
            "drift": inv.drift,
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
        for d in &inv.drift {
            out.push_str(&format!("drift: {}\n", d.message));
        }
        if drift_blocks {
            out.push_str("The configuration is valid, but es.xml and libvirt disagree: `berth plan` will stop until the drift is fixed or `drift_source` says which side wins.\n");
        } else {
            out.push_str("Success! The configuration is valid.\n");
        }
        print(&out)?;
    }
    Ok(if drift_blocks { exit::ERROR } else { exit::OK })
}

fn plan_cmd(args: &PlanArgs, color: bool) -> Result<u8, CliError> {
    let cfg = config::load_dir(Path::new("."))?.with_command_line(&args.intents.intents());
    let _lock = if args.lock.lock {
        Some(plan_lock(&cfg, args.lock.lock_timeout)?)
    } else {
        None
    };
    let inv = plan::build::load_inventory(&cfg)?;
    let plan = plan::build::build(&cfg, &inv, crate::state::history::history(&cfg))?;
    // A plan with errors would be refused by apply: like Terraform, do not save it.
    let save_to = args.out.as_ref().filter(|_| plan.is_ok());
    if let Some(path) = save_to {
        plan::file::save(&plan, path)?;
    }
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
    print_plan(&plan, &args.format, color)?;
    Ok(exit::OK)
}

fn graph(args: &GraphArgs) -> Result<u8, CliError> {
    let plan = match &args.file {
        Some(path) => plan::file::load(path)?,
        None => make_plan()?,
    };
    print(&render::plan_dot(&plan))?;
    Ok(if plan.is_ok() { exit::OK } else { exit::ERROR })
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
