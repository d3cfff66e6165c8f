//! Errors as the user sees them: each layer's error, rendered with its context.

use std::path::PathBuf;

use crate::apply::ApplyError;
use crate::config::{self, ConfigError};
use crate::plan::build::InventoryLoadError;
use crate::plan::file::PlanFileError;
use crate::state::StateError;

/// Everything a command can fail with. Each variant wraps one layer's error type.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Boxed: es.xml errors carry their location and would make every `Result` large.
    #[error(transparent)]
    Inventory(Box<InventoryLoadError>),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error(transparent)]
    Simulate(#[from] crate::simulate::SimulateError),
    #[error("cannot change to directory {path}: {source}")]
    Chdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    State(#[from] StateError),
    /// The command will not do what was asked, and the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    #[error("cannot open the log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot read the confirmation from standard input: {0}")]
    Stdin(std::io::Error),
}

impl From<InventoryLoadError> for CliError {
    fn from(e: InventoryLoadError) -> Self {
        CliError::Inventory(Box::new(e))
    }
}

impl CliError {
    /// Rendered for the terminal: config errors as source snippets with labels, the rest as
    /// `error: …` with every cause on its own line.
    pub fn render(&self, color: bool) -> String {
        match self {
            CliError::Config(e) => config::render(e, color),
            other => {
                let mut text = format!("error: {other}");
                let mut source = std::error::Error::source(other);
                while let Some(cause) = source {
                    let line = cause.to_string();
                    if !text.contains(&line) {
                        text.push_str(&format!("\n  caused by: {line}"));
                    }
                    source = cause.source();
                }
                // Names and ids from es.xml, HCL and libvirt are shown, never sent to the
                // terminal (crate::printable).
                crate::printable::escape(&text).into_owned()
            }
        }
    }
}
