//! Command-line arguments (clap derive). `--help` is the user's reference: every flag here works.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Plan and apply KVM guest placement, the way Terraform plans infrastructure",
    long_about = "berth reads the placement you want from *.hcl files (which guest runs on which host, \
which host is drained), reads what is from the OEDA es.xml and libvirt on every host, and turns the \
difference into a capacity-safe graph of MIGRATE GUEST steps that you can review before applying.\n\n\
Terraform-style single-dash flags work too: `berth plan -out=plan.berth`.",
    after_help = "Exit codes: 0 success, 1 error (bad input, drift, infeasible plan); \
with `plan --detailed-exitcode`: 0 no changes, 1 error, 2 changes."
)]
pub struct Cli {
    /// Run as if berth was started in DIR (where the *.hcl files are)
    #[arg(short = 'C', long = "chdir", global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// Never colour the output (NO_COLOR=1 does the same)
    #[arg(long, global = true)]
    pub no_color: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration and the inventory it points at (es.xml, libvirt), without planning
    Validate(ValidateArgs),
    /// Show the moves and steps that would bring every guest where the configuration wants it
    Plan(PlanArgs),
    /// Replay a plan on the duration model: makespan, lower bound, busy time per host
    Simulate(SimulateArgs),
    /// Show a saved plan (written by `berth plan -out FILE`)
    Show(ShowArgs),
    /// Print the step graph of a plan in Graphviz DOT (`berth graph | dot -Tsvg > plan.svg`)
    Graph(GraphArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the result as JSON ({"valid": bool, "errors": [...], "drift": [...]})
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OutputFormat {
    /// Print the machine-readable JSON plan (schemas/plan.schema.json) instead of text
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,

    /// Print a Markdown summary for a pull-request comment (at most 65,535 characters)
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Also save the plan to FILE (mode 0600), to be shown with `berth show FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub format: OutputFormat,

    /// Exit 0 when there are no changes, 1 on error, 2 when the plan has changes
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan saved with `berth plan -out FILE`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    #[command(flatten)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// A saved plan; without it, berth plans now and prints that plan's graph
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A saved plan; without it, berth plans now and replays that plan
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,

    /// Steps running at once (default: the plan's)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallelism: Option<u32>,

    /// Migrations into one host at once (default: the plan's)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_inbound: Option<u32>,

    /// Migrations out of one host at once (default: the plan's)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_outbound: Option<u32>,

    /// Bandwidth of every host's migration link, MiB/s (default: the plan's)
    #[arg(long, value_name = "MIB_S", value_parser = clap::value_parser!(u32).range(1..))]
    pub link_bandwidth: Option<u32>,
}
