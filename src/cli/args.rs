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

    /// Log more on stderr: -v info, -vv debug (with libvirt's and libxml2's own messages),
    /// -vvv trace. Warnings are always shown; RUST_LOG refines per module
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Append the log (at the -v / RUST_LOG level, with timestamps) to PATH, created with mode
    /// 0600; stderr then shows only warnings and errors
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration, the inventory it points at and apply's static preflight checks
    ///
    /// Loads the *.hcl files, es.xml and libvirt, and makes the static checks of `apply` on
    /// what would be applied now, without connecting to the hosts: the plan has no errors,
    /// `volume_command` for volume steps, the names of bridges to create, where es.xml and the
    /// state are written. "Success!" (exit 0) only when all pass. Connections (libvirt, SSH,
    /// tools on the hosts) are checked by `apply` before its first step.
    Validate(ValidateArgs),
    /// Show the moves and steps that would bring every guest where the configuration wants it
    Plan(PlanArgs),
    /// Replay a plan on the duration model: makespan, lower bound, busy time per host
    Simulate(SimulateArgs),
    /// Show a saved plan (written by `berth plan -out FILE`)
    Show(ShowArgs),
    /// Print the step graph of a plan in Graphviz DOT (`berth graph | dot -Tsvg > plan.svg`)
    Graph(GraphArgs),
    /// Carry out a plan: plan now or take a saved plan, show it, check, ask, move the guests
    ///
    /// Plans now (with the intent flags `plan` takes) or takes a saved plan (sealed, planned
    /// again, signed with BERTH_PLAN_KEY when set), shows it, checks everything its steps need
    /// before the first one (preflight: libvirt and SSH to the hosts, `ip`, the volume commands,
    /// where es.xml and the state are written; every problem at once, nothing changed), asks,
    /// then moves the guests.
    Apply(ApplyArgs),
    /// Write HCL that pins every guest where it runs today (one `guest` block each): the
    /// onboarding path for a rack that already runs; applying it plans no changes
    Import(ImportArgs),
    /// Rewrite the configuration files (*.hcl) in the canonical layout, comments kept
    Fmt(FmtArgs),
    /// Rewrite es.xml to match libvirt (each guest under the host that runs it, its memory and
    /// vCPUs): show the diff, ask, keep a backup, record it in the state file
    Refresh(RefreshArgs),
    /// Read berth's state (where it left each guest, the step journal), and move it between the
    /// local file and PostgreSQL (pull, push)
    #[command(subcommand)]
    State(StateCommand),
    /// Remove the state lock of a berth that hangs (or one on a shared filesystem without file
    /// locks); a berth that died has released its lock already
    ForceUnlock(ForceUnlockArgs),
    /// Print berth's version, the git commit it was built from and the libvirt library version
    Version(VersionArgs),
    /// Print a shell completion script (guest and host names are completed from the
    /// configuration of the directory you are in, or -C DIR)
    #[command(
        after_help = "Install: bash: berth completions bash > /etc/bash_completion.d/berth\n\
         zsh: berth completions zsh > \"${fpath[1]}/_berth\"\n\
         fish: berth completions fish > ~/.config/fish/completions/berth.fish"
    )]
    Completions(CompletionsArgs),
    /// Print the manual page (roff): `berth man | man -l -`
    Man,
    /// The names completion scripts offer (hosts or guests of es.xml), one per line
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print {"version", "git_commit", "libvirt"} as JSON
    #[arg(long)]
    pub json: bool,
}

/// Shells berth writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for
    #[arg(value_name = "SHELL")]
    pub shell: CompletionShell,
}

/// What `berth __complete` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NameKind {
    Hosts,
    Guests,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    #[arg(value_name = "KIND")]
    pub kind: NameKind,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `berth plan -out FILE`: applied exactly, without asking, if its seal
    /// (sha256) holds, its signature too when signed or when BERTH_PLAN_KEY is set, what it was
    /// made from still holds (es.xml, configuration, guests, room on the hosts), and planning
    /// again with the intents it records gives the same moves and steps
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Do not ask for confirmation
    #[arg(long)]
    pub auto_approve: bool,

    /// Only the moves of this guest (repeat for several guests); full or short name
    #[arg(long = "target", value_name = "GUEST")]
    pub targets: Vec<String>,

    /// Leave out the moves of this guest (repeatable); full or short name
    #[arg(long = "exclude", value_name = "GUEST")]
    pub excludes: Vec<String>,

    /// Run only this step of the move of the one `-target` guest (e.g. STOP_GUEST, or
    /// MIGRATE_GUEST#2 for its second move); the steps before it must be done
    #[arg(long, value_name = "STEP_NAME")]
    pub step: Option<String>,

    /// After a failure, let the steps that do not depend on it finish
    #[arg(long)]
    pub keep_going: bool,

    /// Print a versioned JSON stream, one message per line (version first, then start,
    /// progress, done, skip, error, summary or diagnostic; each with @level, @message and
    /// @timestamp; schemas/apply-events.schema.json); needs -auto-approve unless FILE is given
    #[arg(long)]
    pub json: bool,

    /// Steps running at once (default: `defaults { parallelism }`, 4)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallelism: Option<u32>,

    /// Drop the plan an earlier apply left unfinished and plan afresh from what is now
    /// (guests it stopped and did not start again stay stopped; they are named)
    #[arg(long)]
    pub replan: bool,

    /// Rolling maintenance: stop cleanly once phase N is done (its host serviced and its guests
    /// back); the next `berth apply` continues with phase N+1
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub stop_after_phase: Option<u32>,

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
pub struct ImportArgs {
    /// Write the HCL to FILE (which must not exist yet) instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Change nothing; exit 1 when a file is not formatted (for CI)
    #[arg(long)]
    pub check: bool,

    /// Print the changes as a unified diff
    #[arg(long)]
    pub diff: bool,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Write without asking
    #[arg(long = "auto-approve")]
    pub auto_approve: bool,
}

#[derive(Debug, Args)]
pub struct ForceUnlockArgs {
    /// The lock id, as the refusal message (or the lock file) shows it
    #[arg(value_name = "LOCK_ID")]
    pub lock_id: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the result as JSON ({"valid": bool, "hosts": N, "guests": N, "drift": [...],
    /// "apply_problems": [...]}); configuration
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
    /// Also save the plan to FILE (mode 0600, sealed with its sha256; signed with HMAC-SHA-256
    /// when BERTH_PLAN_KEY is set), to be applied with `berth apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub format: OutputFormat,

    /// Exit 0 when there are no changes, 1 on error, 2 when the plan has changes
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Plan only the moves of this guest (repeatable); full or short name. The other guests
    /// stay where they are, and the plan is checked for room with these moves alone
    #[arg(long = "target", value_name = "GUEST")]
    pub targets: Vec<String>,

    /// Leave this guest where it is (repeatable); full or short name
    #[arg(long = "exclude", value_name = "GUEST")]
    pub excludes: Vec<String>,

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
    /// Empty HOST: every guest gets a target, or the plan says why not (see --maintenance), like
    /// `host "HOST" { drain = true }` (repeatable)
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

    /// Service HOST: move the guests that can move, stop the others in place (one member of
    /// each RAC cluster at a time), like `host "HOST" { maintenance = true }` (repeatable)
    #[arg(long, value_name = "HOST")]
    pub maintenance: Vec<String>,

    /// End HOST's maintenance: start the guests stopped in place, return the moved ones home
    /// (from the state file), like `host "HOST" { maintenance = false }` (repeatable)
    #[arg(long = "end-maintenance", value_name = "HOST")]
    pub end_maintenance: Vec<String>,

    /// Even out memory over every host, like `rebalance "all" {}`
    #[arg(long)]
    pub rebalance: bool,

    /// Rolling maintenance: service these hosts one after another, one phase each
    /// (maintenance, `rolling_maintenance.host_command` over SSH, wait until the host is back:
    /// rebooted, its boot id changed, unless the block sets `back_when = "answers"`; end of
    /// maintenance), like `rolling_maintenance { hosts = [...] }` (comma list or repeatable; in
    /// this order), but an order given once: these hosts are serviced whatever the state
    /// records (a block's `hosts` already serviced with its command and `run` are not)
    #[arg(long, value_name = "HOST,…", value_delimiter = ',')]
    pub rolling: Vec<String>,
}

impl IntentArgs {
    pub fn intents(&self) -> crate::config::CommandLineIntents {
        crate::config::CommandLineIntents {
            drain: self.drain.clone(),
            evacuate: self.evacuate.clone(),
            return_home: self.return_home.clone(),
            maintenance: self.maintenance.clone(),
            end_maintenance: self.end_maintenance.clone(),
            rebalance: self.rebalance,
            rolling: self.rolling.clone(),
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
