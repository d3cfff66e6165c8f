//! The result of diffing desired placement against the current topology.

use serde::{Deserialize, Serialize};

use crate::config::MigrationMode;

/// One guest changing host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Move {
    pub guest: String,
    pub from: String,
    pub to: String,
    pub mode: MigrationMode,
    /// Why this move exists and, for chosen targets, why this target won.
    pub reason: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// True for a hop through a pivot host that breaks a live swap cycle.
    pub pivot: bool,
}

/// A prerequisite a move fails, explained per move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveProblem {
    /// Short stable code, e.g. `memory`, `image_version`, `name_taken`, `hostdev`.
    pub code: String,
    pub guest: String,
    pub from: String,
    pub to: String,
    pub message: String,
}
