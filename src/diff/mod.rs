//! Desired against current: which guest moves from where to where, and why.
//! Owned by the planner work (placement of drained/unassigned guests, prerequisites).

pub mod model;

pub use model::{Move, MoveProblem};
