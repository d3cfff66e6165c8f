//! The plan: moves, steps, per-host capacity before and after, drift and errors, plus the
//! fingerprints of its inputs. Built by running diff and schedule; rendered or applied.

pub mod model;

pub use model::*;
