//! Desired against current: which guest moves from where to where, and why.
//!
//! - [`desired`] resolves the configuration's blocks (guests, hosts, rules, rebalances, budgets)
//!   against the topology and gives every guest a desired host: targets chosen for guests that
//!   must move (drain, evacuate, rule repairs; rules first, then cost of the move, then least
//!   loaded), guests returned home, hosts rebalanced. Infeasible intents are explained by the
//!   smallest conflicting set of rules and capacities.
//! - [`moves`] turns the difference into [`Move`]s and checks each move's prerequisites.
//! - [`rules`] holds the host/guest compatibility rules the scheduler reuses for pivot hosts.

mod blocks;
pub mod capacity;
mod desired;
mod error;
mod explain;
mod fit;
#[cfg(test)]
pub(crate) mod fixtures;
mod intents;
pub mod model;
mod moves;
mod placement;
mod rebalance;
pub mod resolve;
mod rolling;
pub mod rules;
pub mod ruleset;
mod suggest;
pub use suggest::closest as closest_name;
pub mod units;

pub use capacity::{HostRules, SriovPool};
pub use desired::{Desired, DesiredGuest, History, Origin, desired, desired_with};
pub use error::DiffError;
pub use model::{Move, MoveKind, MoveProblem, RebalanceOutcome, RebalanceStop, ResourceSpread};
pub use moves::{desired_and_moves, moves};
pub use rolling::{Serviced, already_serviced, rolling_hosts};
pub use ruleset::{DisruptionBudget, Group, GroupSource, RuleSet};

#[cfg(test)]
mod tests;
