//! The plan as data. Its JSON form is the machine-readable plan (`berth plan --json`) and the
//! saved plan file; schemas/plan.schema.json describes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::CommandLineIntents;
use crate::diff::{Move, MoveProblem, RebalanceOutcome};
use crate::inventory::Drift;
use crate::schedule::{SkippedStep, Step, Timing};

/// Bumped whenever the JSON shape changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// Capacity of one host before and after the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostSummary {
    pub name: String,
    /// Memory available to guests (physical minus reserved), MiB.
    pub memory_mib: u64,
    pub memory_used_mib_before: u64,
    pub memory_used_mib_after: u64,
    /// Logical CPUs.
    pub cpus: u32,
    /// vCPUs allowed on the host (cpus × overcommit ratio).
    pub vcpu_limit: u32,
    pub vcpus_used_before: u32,
    pub vcpus_used_after: u32,
    pub guests_before: usize,
    pub guests_after: usize,
    /// Highest memory use at any instant the step graph allows, MiB.
    pub memory_peak_mib: u64,
}

/// What the inputs were when the plan was made; apply refuses a plan whose inputs changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fingerprints {
    /// sha256 of the es.xml bytes.
    pub es_xml_sha256: String,
    /// sha256 over the config files (names and contents, in name order).
    pub config_sha256: String,
    /// Each guest's observed host and state: `guest -> "host/state"`.
    pub guests: BTreeMap<String, String>,
}

/// What maintenance does to one guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceAction {
    /// Moved off the host in maintenance (live where allowed, else offline).
    Moved,
    /// No host can take it: shut down on the host in maintenance, left defined there.
    StoppedInPlace,
    /// End of maintenance: started again where it was stopped in place.
    StartedInPlace,
    /// End of maintenance: moved back to the host it was moved off.
    ReturnedHome,
}

/// One guest of a host entering or leaving maintenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MaintenanceGuest {
    pub guest: String,
    /// The host in maintenance (or leaving it).
    pub host: String,
    pub action: MaintenanceAction,
    /// Where the guest ends: the target of a move, or `host` itself.
    pub to: String,
    /// The move's mode (`live`, `offline`, …).
    pub mode: crate::config::MigrationMode,
    /// How long the guest is predicted to be down in this plan, seconds, from the duration
    /// model: from its STOP_GUEST's start to its STARTUP_GUEST's end (0 for a live move; for a
    /// guest started in place, from the start of the apply). Absent for a guest stopped in
    /// place (down until its host's maintenance ends) and in plans without a prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_s: Option<f64>,
}

fn answers() -> crate::config::BackWhen {
    crate::config::BackWhen::Answers
}

/// One phase of a rolling maintenance: one host serviced, start to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Phase {
    /// 1, 2, … in the order the phases run (`--stop-after-phase N`).
    pub number: usize,
    /// The host serviced.
    pub host: String,
    /// The host command run on it over SSH, one element per argument.
    pub host_command: Vec<String>,
    /// What WAIT_HOST waits for after the command: `rebooted` (the host's boot id differs
    /// from the one read just before the command, libvirt answers, facts are read again) or
    /// `answers` (libvirt answers and facts are read again). Plans from before the setting
    /// existed waited for `answers`.
    #[serde(default = "answers")]
    pub back_when: crate::config::BackWhen,
    /// The maintenance's `run` name, recorded with the host once its phase is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Every step of the phase, in plan order: its maintenance (guests moved off or stopped in
    /// place), HOST_COMMAND, WAIT_HOST, then its end (guests started again, moved back home).
    /// Every step of phase n+1 starts after every step of phase n ended.
    pub steps: Vec<String>,
    /// Per guest of the host: moved where (and back), or stopped in place (and started again),
    /// and its predicted downtime.
    pub guests: Vec<MaintenanceGuest>,
    /// Guest moves the phase makes (a guest moved off and back home counts twice; starting
    /// or stopping in place is not a move).
    pub moves: usize,
    /// Predicted start and duration, seconds from the start of the apply (absent without a
    /// prediction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}

/// An error that makes the plan unusable (the plan is still shown, with these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanError {
    pub code: String,
    pub message: String,
    pub guest: Option<String>,
    pub host: Option<String>,
}

impl From<MoveProblem> for PlanError {
    /// The host is the move's target; a problem without one (`no_target`: nowhere to go) names
    /// the host the guest is on, never an empty name.
    fn from(p: MoveProblem) -> Self {
        let host = [p.to, p.from].into_iter().find(|h| !h.is_empty());
        PlanError {
            code: p.code,
            message: p.message,
            guest: Some(p.guest).filter(|g| !g.is_empty()),
            host,
        }
    }
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    pub format_version: u32,
    pub berth_version: String,
    /// RFC 3339 time the plan was made.
    pub created_at: String,
    /// es.xml path the plan was made from (and apply writes back to).
    pub es_xml_path: String,
    pub moves: Vec<Move>,
    pub steps: Vec<Step>,
    pub skipped_steps: Vec<SkippedStep>,
    /// Step ids grouped in waves: every step of wave n depends only on steps of waves < n.
    pub waves: Vec<Vec<String>>,
    pub hosts: Vec<HostSummary>,
    pub drift: Vec<Drift>,
    pub errors: Vec<PlanError>,
    /// How each `rebalance` ended: a rebalance stopped by its budget (`stop = "budget"`) is not
    /// done, and the next plan continues it. Absent when the configuration has no rebalance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebalances: Vec<RebalanceOutcome>,
    /// Per guest of a host entering or leaving maintenance: moved where, stopped or started in
    /// place, and its predicted downtime. Absent when no host is in maintenance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<MaintenanceGuest>,
    /// Rolling maintenance: the phases, one host each, in the order they run. Absent in
    /// other plans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// Hosts of the `rolling_maintenance` block's `hosts` that the state records as serviced
    /// with the same `host_command` and `run`: not serviced again (a new `run` would). Absent
    /// when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub already_serviced: Vec<crate::diff::Serviced>,
    pub fingerprints: Fingerprints,
    /// The intents given as flags when the plan was made (`-drain`, `-evacuate`,
    /// `-return-home`, `-rebalance`); `berth apply FILE` plans again with them and applies
    /// only if that plan is this one. Absent when no flag was given.
    #[serde(default, skip_serializing_if = "CommandLineIntents::is_empty")]
    pub intents: CommandLineIntents,
    /// What apply will change in es.xml: a unified diff (`---`/`+++` headers naming
    /// `es_xml_path`, 3 lines of context) of the current text against the text apply writes.
    /// Empty when es.xml stays as it is. Made with `plan::unified_diff`.
    pub es_xml_diff: String,
    /// When the duration model expects each step to run, the predicted total and its lower
    /// bounds; absent in plans without steps or made before berth predicted durations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

impl Plan {
    /// The moves of guests, without a rolling maintenance's host services (which are its
    /// phases, not moves): what every view counts and lists as "moves".
    pub fn guest_moves(&self) -> impl Iterator<Item = &Move> {
        self.moves
            .iter()
            .filter(|m| m.kind != crate::diff::MoveKind::HostService)
    }

    pub fn has_changes(&self) -> bool {
        !self.moves.is_empty()
    }
    /// The phase `step` (an id) belongs to, for rolling maintenance plans.
    pub fn phase_of(&self, step: &str) -> Option<usize> {
        self.phases
            .iter()
            .find(|p| p.steps.iter().any(|s| s == step))
            .map(|p| p.number)
    }
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(from: &str, to: &str) -> MoveProblem {
        MoveProblem {
            code: "no_target".into(),
            guest: "vm1".into(),
            from: from.into(),
            to: to.into(),
            message: "no host can take it".into(),
        }
    }

    #[test]
    fn a_problem_without_a_target_names_the_guests_host_not_an_empty_one() {
        let e = PlanError::from(problem("adm01", ""));
        assert_eq!(e.host.as_deref(), Some("adm01"));
        let e = PlanError::from(problem("adm01", "adm02"));
        assert_eq!(e.host.as_deref(), Some("adm02"));
        let e = PlanError::from(problem("", ""));
        assert_eq!(e.host, None);
    }
}
