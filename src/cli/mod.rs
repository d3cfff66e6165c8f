//! The command line: `berth validate | plan | show | graph | apply | state | force-unlock`,
//! Terraform's verbs for guest placement.
//!
//! This module only parses arguments, runs the pipeline stages in order and prints; the work is
//! in the stages (config, inventory, diff, schedule, plan, render).

mod apply;
mod args;
mod commands;
mod confirm;
mod error;
mod fmt;
mod import;
mod logging;
mod progress;
mod refresh;
mod shell;
mod simulate;
mod state_cmd;
mod terraform_flags;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use args::Cli;
pub use error::CliError;

/// Exit codes, as Terraform uses them with `-detailed-exitcode`.
pub mod exit {
    /// Success; with `--detailed-exitcode`: success and no changes.
    pub const OK: u8 = 0;
    /// Any error: bad input, unreachable inventory, a plan that cannot be carried out.
    pub const ERROR: u8 = 1;
    /// With `--detailed-exitcode`: success, and the plan has changes.
    pub const CHANGES: u8 = 2;
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let flags = terraform_flags::Flags::of(&Cli::command());
    let argv = terraform_flags::normalize(std::env::args_os(), &flags);
    let cli = match Cli::try_parse_from(argv.args) {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` print and succeed; a usage error exits 1 like every other
            // bad input (clap's own 2 would read as "changes" under --detailed-exitcode).
            // `--help` goes to stdout as clap prints it; only errors are reworded.
            if argv.rewritten.is_empty() || !e.use_stderr() {
                let _ = e.print();
            } else {
                let text = e.render().to_string();
                eprint!("{}", terraform_flags::reword_error(text, &argv.rewritten));
            }
            return ExitCode::from(if e.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            });
        }
    };
    let color = !cli.no_color && crate::render::color_enabled_for_stderr();
    // `-C DIR` applies to every path of the command line, the log file's too: it is opened
    // here, before the change of directory, so that what follows is logged.
    let log_file = cli.log_file.as_deref().map(|path| match &cli.chdir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    });
    if let Err(err) = logging::init(cli.verbose, log_file.as_deref(), color) {
        eprintln!("{}", err.render(color));
        return ExitCode::from(exit::ERROR);
    }
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("{}", err.render(color));
            ExitCode::from(exit::ERROR)
        }
    }
}
