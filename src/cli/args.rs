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
    after_help = "Exit codes: 0 success, 1 error (bad input, drift, infeasible plan, a failed step); \
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
    /// Carry out a plan: plan now (with the intent flags `plan` takes) or take a saved plan, show
    /// it, ask, then move the guests
    Apply(ApplyArgs),
    /// Read berth's state (where it left each guest, the step journal), and move it between the
    /// local file and PostgreSQL (pull, push)
    #[command(subcommand)]
    State(StateCommand),
    /// Remove the state lock of a berth that hangs (or one on a shared filesystem without file
    /// locks); a berth that died has released its lock already
    ForceUnlock(ForceUnlockArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `berth plan -out FILE`: applied exactly, without asking, if what it
    /// was made from still holds (es.xml, configuration, guests, room on the hosts)
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Do not ask for confirmation
    #[arg(long)]
    pub auto_approve: bool,

    /// Only the moves of this guest (repeat for several guests); full or short name
    #[arg(long = "target", value_name = "GUEST")]
    pub targets: Vec<String>,

    /// Run only this step of the move of the one `-target` guest (e.g. STOP_GUEST, or
    /// MIGRATE_GUEST#2 for its second move); the steps before it must be done
    #[arg(long, value_name = "STEP_NAME")]
    pub step: Option<String>,

    /// After a failure, let the steps that do not depend on it finish
    #[arg(long)]
    pub keep_going: bool,

    /// Print one JSON event per line (start, progress, done, skip, error, summary); needs
    /// -auto-approve unless FILE is given
    #[arg(long)]
    pub json: bool,

    /// Steps running at once (default: `defaults { parallelism }`, 4)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallelism: Option<u32>,

    /// Drop the plan an earlier apply left unfinished and plan afresh from what is now
    /// (guests it stopped and did not start again stay stopped; they are named)
    #[arg(long)]
    pub replan: bool,

    #[command(flatten)]
    pub lock: LockArgs,

    // Intents for the plan made now, as with `berth plan`; refused with a saved plan FILE,
    // which was planned with the flags it was made with.
    #[command(flatten)]
    pub intents: IntentArgs,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Every guest berth moved: host, state, last step
    List,
    /// Print the whole state as JSON (schemas/state.schema.json), from whichever backend the
    /// configuration names; with -out, write it to a local state file instead
    Pull {
        /// Write the state to FILE (mode 0600, atomically) instead of printing it
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write a local state file into the configured backend (e.g. move the local file into a
    /// PostgreSQL workspace); refused when the backend holds another lineage or a newer serial
    Push {
        /// The state file to push (e.g. state/berth.state.json)
        #[arg(value_name = "FILE")]
        file: PathBuf,

        #[command(flatten)]
        lock: LockArgs,
    },
    /// One guest's record and every journal entry about it
    Show {
        /// Guest name (full or short)
        #[arg(value_name = "GUEST")]
        guest: String,
    },
}

#[derive(Debug, Args)]
pub struct ForceUnlockArgs {
    /// The lock id, as the refusal message (or the lock file) shows it
    #[arg(value_name = "LOCK_ID")]
    pub lock_id: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the result as JSON ({"valid": bool, "hosts": N, "guests": N, "drift": [...]}); configuration
    /// and es.xml errors are reported as text, with exit code 1
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

    #[command(flatten)]
    pub lock: LockArgs,

    #[command(flatten)]
    pub intents: IntentArgs,
}

/// The state lock flags of `plan` and `apply` (Terraform's `-lock` and `-lock-timeout`).
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Take the state lock (`-lock=false`: plan while an apply runs; apply without it, which
    /// berth warns loudly about, since two applies could then overwrite each other)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub lock: bool,

    /// How long to wait for the state lock while another berth holds it (`30s`, `5m`, `1h`,
    /// `500ms`); 0 refuses at once, naming the holder
    #[arg(long = "lock-timeout", value_name = "DURATION", default_value = "0s",
          value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,
}

/// `30s`, `5m`, `1h`, `500ms`, `0` (Terraform's duration syntax, one unit): a duration.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. 30s, 5m, 1h or 500ms"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number (e.g. 30s)"))?;
    let seconds = |factor: u64| {
        n.checked_mul(factor)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long"))
    };
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => Err(format!(
            "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
        )),
    }
}

/// Intents given as flags: each is the same as its HCL block, and plans the same.
#[derive(Debug, Default, Args)]
pub struct IntentArgs {
    /// Empty HOST for maintenance, like `host "HOST" { drain = true }` (repeatable)
    #[arg(long, value_name = "HOST")]
    pub drain: Vec<String>,

    /// HOST is dead: define its guests on other hosts (offline_force), like
    /// `host "HOST" { evacuate = true }` (repeatable)
    #[arg(long, value_name = "HOST")]
    pub evacuate: Vec<String>,

    /// Bring back the guests earlier plans moved off HOST (from the state file), like
    /// `host "HOST" { return_home = true }` (repeatable)
    #[arg(long = "return-home", value_name = "HOST")]
    pub return_home: Vec<String>,

    /// Even out memory over every host, like `rebalance "all" {}`
    #[arg(long)]
    pub rebalance: bool,
}

impl IntentArgs {
    pub fn intents(&self) -> crate::config::CommandLineIntents {
        crate::config::CommandLineIntents {
            drain: self.drain.clone(),
            evacuate: self.evacuate.clone(),
            return_home: self.return_home.clone(),
            rebalance: self.rebalance,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_terraform_units() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "30", "s", "-5s", "1.5s", "3d", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
