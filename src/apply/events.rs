//! What the executor reports while it runs: one event per transition, serializable as one
//! JSON object per line (`berth apply --json`).

use serde::{Deserialize, Serialize};

use super::hypervisor::MigrationProgress;
use crate::schedule::StepKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The first message of `berth apply --json` (written by the CLI, never by the executor):
    /// which version of this stream's format follows, and which berth writes it.
    Version {
        /// The stream format's `major.minor`: a reader refuses a major it does not know.
        format_version: String,
        berth: String,
    },
    /// A step begins (its journal entry is already saved as running).
    Start {
        step: String,
        kind: StepKind,
        guest: String,
        from: String,
        to: String,
    },
    /// Live-migration progress of a running step.
    Progress {
        step: String,
        guest: String,
        progress: MigrationProgress,
    },
    /// A step finished; `note` says when nothing had to be done.
    Done {
        step: String,
        guest: String,
        note: Option<String>,
        elapsed_ms: u64,
    },
    /// A step is not run in this apply, and why.
    Skip {
        step: String,
        guest: String,
        reason: String,
    },
    /// A step failed.
    Error {
        step: String,
        guest: String,
        message: String,
    },
    /// Why `berth apply --json` stopped before or instead of running (a refusal, a plan with
    /// errors, a held lock): written by the CLI, the same text as on stderr.
    Diagnostic { summary: String },
    /// The end of the run.
    Summary {
        plan_id: String,
        done: usize,
        failed: usize,
        skipped: usize,
        not_run: usize,
        elapsed_ms: u64,
    },
}

impl Event {
    /// The event as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serializing plain strings, numbers and options cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
