//! The one error type of the schedule layer.

/// Why no step graph could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No execution order keeps every host within capacity. The message names the hosts, the
    /// guests and the numbers (what is needed, what is free, what waits for what).
    #[error("{message}")]
    Infeasible {
        message: String,
        hosts: Vec<String>,
        guests: Vec<String>,
    },
    #[error("the move of {guest} names host {host}, which is not in the topology")]
    UnknownHost { guest: String, host: String },
    #[error("the plan moves {guest}, which is not in the topology")]
    UnknownGuest { guest: String },
    /// A plan's steps do not form a graph that can be replayed.
    #[error("step {step}: {message}")]
    BadPlan { step: String, message: String },
}
