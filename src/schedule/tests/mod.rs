mod budgets;
mod expansion;
mod holds;
mod ordering;
mod scale;

use crate::config::MigrationMode;
use crate::diff::Move;

use super::{Limits, Schedule, Step};

/// A move as diff would make it (sizes are informative only: the scheduler reads the topology).
pub(super) fn mv(guest: &str, from: &str, to: &str, mode: MigrationMode) -> Move {
    Move {
        guest: guest.into(),
        from: from.into(),
        to: to.into(),
        mode,
        reason: "test".into(),
        memory_mib: 0,
        vcpus: 0,
        pivot: false,
        kind: Default::default(),
        domain: None,
        transport: None,
    }
}

/// Physical limits, pivots allowed.
pub(super) fn limits() -> Limits {
    Limits {
        allow_pivot: true,
        ..Limits::default()
    }
}

pub(super) fn step<'a>(schedule: &'a Schedule, id: &str) -> &'a Step {
    schedule
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} in {:#?}", ids(schedule)))
}

pub(super) fn ids(schedule: &Schedule) -> Vec<&str> {
    schedule.steps.iter().map(|s| s.id.as_str()).collect()
}
