//! Moves into a step DAG: each move expands into OEDACLI's MIGRATE GUEST steps, and cross-move
//! edges keep every host within memory and vCPU capacity under any order the graph allows.
//! Owned by the planner work.

pub mod model;

pub use model::{SkippedStep, Step, StepKind};
