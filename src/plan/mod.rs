//! The plan: moves, steps, per-host capacity before and after, drift and errors, plus the
//! fingerprints of its inputs. Built by running diff and schedule; rendered or applied.

pub mod build;
pub mod file;
pub mod model;
pub mod refresh;
mod rolling;
pub mod schema;
mod udiff;

#[cfg(test)]
pub(crate) mod sample;

pub use model::*;
pub use udiff::{unified_diff, unified_diff_of_edits};
