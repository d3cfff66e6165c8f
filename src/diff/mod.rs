//! Desired against current: which guest moves from where to where, and why.
//!
//! - [`desired`] resolves the configuration's guest and host blocks against the topology and
//!   gives every guest a desired host, choosing targets for guests of drained hosts
//!   ([`placement`](self) rules: least loaded compatible host, RAC anti-affinity).
//! - [`moves`] turns the difference into [`Move`]s and checks each move's prerequisites.
//! - [`rules`] holds the host/guest compatibility rules the scheduler reuses for pivot hosts.

pub mod capacity;
mod desired;
mod error;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod model;
mod moves;
mod placement;
pub mod resolve;
pub mod rules;
mod suggest;
pub mod units;

pub use capacity::{HostRules, SriovPool};
pub use desired::{Desired, DesiredGuest, Origin, desired};
pub use error::DiffError;
pub use model::{Move, MoveProblem};
pub use moves::moves;

#[cfg(test)]
mod tests;
