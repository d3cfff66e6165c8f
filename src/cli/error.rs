//! Errors as the user sees them: each layer's error, rendered with its context.

use std::path::PathBuf;

use crate::config::{self, ConfigError};
use crate::inventory::load::InventoryError;
use crate::plan::file::PlanFileError;

/// Everything a command can fail with. Each variant wraps one layer's error type.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error(transparent)]
    Simulate(#[from] crate::simulate::SimulateError),
    #[error("cannot change to directory {path}: {source}")]
    Chdir { path: PathBuf, source: std::io::Error },
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
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
                text
            }
        }
    }
}
