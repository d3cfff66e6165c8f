//! Steps of a move, as OEDACLI's MIGRATE GUEST names them.

use serde::{Deserialize, Serialize};

/// The steps of MIGRATE GUEST, in their per-move order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepKind {
    StopGuest,
    CreateBridges,
    DetachInterfaces,
    DetachVolumes,
    AttachVolumes,
    MigrateGuest,
    AttachInterfaces,
    StartupGuest,
    /// Rolling maintenance: the operator's host command (patch, reboot) over SSH on the host
    /// of the phase. Never run twice: started and not finished, it is not run again.
    HostCommand,
    /// Rolling maintenance: waits until the host is back (libvirt answers, facts read again)
    /// and still has what the plan counted on.
    WaitHost,
}

impl StepKind {
    /// In the order of an offline move's chain.
    pub const ALL: [StepKind; 8] = [
        StepKind::CreateBridges,
        StepKind::StopGuest,
        StepKind::DetachInterfaces,
        StepKind::DetachVolumes,
        StepKind::AttachVolumes,
        StepKind::MigrateGuest,
        StepKind::AttachInterfaces,
        StepKind::StartupGuest,
    ];

    /// Every kind: a move's ([`StepKind::ALL`]) and a rolling maintenance's host steps.
    pub const EVERY: [StepKind; 10] = [
        StepKind::CreateBridges,
        StepKind::StopGuest,
        StepKind::DetachInterfaces,
        StepKind::DetachVolumes,
        StepKind::AttachVolumes,
        StepKind::MigrateGuest,
        StepKind::AttachInterfaces,
        StepKind::StartupGuest,
        StepKind::HostCommand,
        StepKind::WaitHost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::StopGuest => "STOP_GUEST",
            StepKind::CreateBridges => "CREATE_BRIDGES",
            StepKind::DetachInterfaces => "DETACH_INTERFACES",
            StepKind::DetachVolumes => "DETACH_VOLUMES",
            StepKind::AttachVolumes => "ATTACH_VOLUMES",
            StepKind::MigrateGuest => "MIGRATE_GUEST",
            StepKind::AttachInterfaces => "ATTACH_INTERFACES",
            StepKind::StartupGuest => "STARTUP_GUEST",
            StepKind::HostCommand => "HOST_COMMAND",
            StepKind::WaitHost => "WAIT_HOST",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StepKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepKind::EVERY
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = StepKind::EVERY.iter().map(|k| k.as_str()).collect();
                format!("unknown step `{s}`; expected one of {}", names.join(", "))
            })
    }
}

impl StepKind {
    /// A step that acts on a host, not on a guest (rolling maintenance).
    pub fn is_host_step(self) -> bool {
        matches!(self, StepKind::HostCommand | StepKind::WaitHost)
    }
}

/// One node of the step graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Step {
    /// Stable id: `<guest>:<KIND>` (with `#<n>` for the n-th move of the same guest, n ≥ 2).
    pub id: String,
    pub kind: StepKind,
    pub guest: String,
    pub from: String,
    pub to: String,
    /// Index into the plan's moves.
    pub move_index: usize,
    /// Ids of the steps that must finish before this one starts.
    pub depends_on: Vec<String>,
    /// What the step will do, in words (bridges to create, interfaces to detach, …).
    pub detail: String,
    /// Bridges CREATE_BRIDGES creates; interfaces or volumes the (de)attach steps touch.
    pub items: Vec<String>,
}

/// A step left out because it has nothing to do, with the reason (shown by the plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SkippedStep {
    pub guest: String,
    pub kind: StepKind,
    pub reason: String,
}

/// When the duration model expects the plan's steps to run, in seconds from the start of the
/// apply, under the concurrency limits (see `schedule::duration` and `schedule::timeline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timing {
    /// Every step, in the plan's step order.
    pub steps: Vec<StepTiming>,
    /// Per wave, in wave order: from its first step's start to its last step's end (waves
    /// overlap: a step starts as soon as its own dependencies are done).
    pub waves: Vec<WaveTiming>,
    /// When the last step ends.
    pub makespan_s: f64,
    pub lower_bound: LowerBound,
    pub model: super::duration::DurationModel,
    pub concurrency: super::duration::Concurrency,
    /// Which of the list scheduler's priority orders gave this schedule (0: the plain one; 1–7
    /// the backlog perturbations; 8 and up the improver's orders; see
    /// `schedule::timeline::best_of`), so a replay of the plan orders its steps the same way.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority_seed: u64,
    /// Ordering edges the scheduler added so that a slot is kept free for a step that is not
    /// ready yet (see `schedule::holds`): each is also in the waiting step's `depends_on`, so
    /// `berth apply` and `berth simulate` follow it exactly as planned. Absent when there are
    /// none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    /// Per offline move of a running guest: how long the guest is predicted to be down. Steps
    /// that can be done while it runs (CREATE_BRIDGES) come before its STOP_GUEST and do not
    /// count. Absent when no move stops a guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downtime: Vec<GuestDowntime>,
}

/// `step` starts only once `waits_for` has ended, so that a limit `step` would take is free
/// for `waits_for` when it becomes ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hold {
    pub step: String,
    pub waits_for: String,
}

/// One guest's predicted downtime during one move: from the start of its STOP_GUEST to the end
/// of its STARTUP_GUEST, waits for capacity included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GuestDowntime {
    pub guest: String,
    /// The STOP_GUEST step it starts with.
    pub from_step: String,
    /// The STARTUP_GUEST step it ends with.
    pub to_step: String,
    pub downtime_s: f64,
}

fn is_zero(seed: &u64) -> bool {
    *seed == 0
}

/// One step's predicted start and duration, seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepTiming {
    pub step: String,
    pub start_s: f64,
    pub duration_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaveTiming {
    pub start_s: f64,
    pub finish_s: f64,
}

/// No schedule of the step graph can be shorter than any of these, seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LowerBound {
    /// The largest of the bounds below.
    pub overall_s: f64,
    /// The longest dependency chain, every step at its duration when alone.
    pub critical_path_s: f64,
    /// The busiest host link: its MiB out (or in) over the rate it can carry (its bandwidth,
    /// or the per-migration cap times the host's migration limit when that is lower).
    pub link_s: f64,
    /// The host of [`LowerBound::link_s`], when any bytes move.
    pub link_host: Option<String>,
    /// Every step's duration alone, summed, over the global parallelism.
    pub parallelism_s: f64,
    /// The busiest host's migrations (durations alone) over its migration limit.
    pub host_migrations_s: f64,
    /// The busiest disruption budget: its members' unavailable time (alone) over its places.
    pub budget_s: f64,
}
