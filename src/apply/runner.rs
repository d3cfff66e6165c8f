//! How one step is carried out, behind a small trait: the executor walks the graph, a
//! [`StepRunner`] acts. [`super::LibvirtRunner`] acts on real hosts; tests use recording ones.

use crate::diff::Move;
use crate::inventory::GuestState;
use crate::plan::Plan;
use crate::schedule::Step;
use crate::state::{DetachedInterface, State};

use super::error::ApplyError;
use super::hypervisor::MigrationProgress;

/// What a runner gets besides the step.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The move the step belongs to (mode, memory, …).
    pub mv: Move,
    /// The guest's last known definition from the state file (for `offline_force` moves).
    pub last_definition_xml: Option<String>,
    /// SR-IOV interfaces the state file records as taken out of the guest's definition and
    /// not given back yet (ATTACH_INTERFACES falls back on them when the definition lacks
    /// its own record).
    pub detached_interfaces: Vec<DetachedInterface>,
    /// An earlier apply journaled this step as started and never as finished (it was killed
    /// while the step ran). A HOST_COMMAND in that case is run again only where the host
    /// shows it never began (see [`crate::remote::OnceOutcome`]).
    pub started_before: bool,
    /// What was journaled with this step's start, by this apply or (with `started_before`) by
    /// the killed one it resumes. Set when the step is journaled as running.
    pub start: StartRecord,
    /// WAIT_HOST: what its HOST_COMMAND journaled with its start (by this apply or one that
    /// was killed): with `back_when = "rebooted"` WAIT_HOST waits for a boot id other than
    /// that one; the command's start marker is removed once the host is back.
    pub host_command_start: StartRecord,
}

impl StepContext {
    /// The libvirt domain the step acts on: the guest's, as the plan's move names it.
    pub fn domain(&self) -> &str {
        self.mv.domain_name()
    }

    /// The context of `step` of `plan`, from what `state` records about its guest.
    pub fn for_step(state: &State, plan: &Plan, step: &Step) -> Option<StepContext> {
        let record = state.topology.get(&step.guest);
        Some(StepContext {
            mv: plan.moves.get(step.move_index)?.clone(),
            last_definition_xml: record.and_then(|r| r.last_definition_xml.clone()),
            detached_interfaces: record
                .map(|r| r.detached_interfaces.clone())
                .unwrap_or_default(),
            started_before: false,
            start: StartRecord::default(),
            host_command_start: StartRecord::default(),
        })
    }
}

/// What a finished step learned, recorded in the state's topology.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutcome {
    /// Set when nothing had to be done (already true in reality).
    pub note: Option<String>,
    /// The guest's state after the step, when the step knows it.
    pub guest_state: Option<GuestState>,
    /// The guest's definition as read before it moved.
    pub definition_xml: Option<String>,
    /// What the state file is to record as the guest's detached SR-IOV interfaces from now on
    /// (`Some(empty)`: none any more); `None` leaves the record as it is.
    pub detached_interfaces: Option<Vec<DetachedInterface>>,
}

/// What a step journals with its start, in the same write that marks it running: read from
/// reality just before the step acts, for the steps after it and for an apply that resumes
/// after a kill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartRecord {
    /// HOST_COMMAND: the host's boot id before the command (always with `back_when =
    /// "rebooted"`, where it can be read with `"answers"`).
    pub boot_id: Option<String>,
    /// HOST_COMMAND: the marker the command's guard makes on the host as it starts it
    /// ([`crate::remote::new_once_marker`]); `None` in a journal of an older berth, whose
    /// started commands are never run again.
    pub once_marker: Option<String>,
}

impl StartRecord {
    /// What `entry` journaled with its step's start.
    pub fn journaled(entry: &crate::state::JournalEntry) -> StartRecord {
        StartRecord {
            boot_id: entry.boot_id.clone(),
            once_marker: entry.once_marker.clone(),
        }
    }

    /// Journals this record in `entry` (the inverse of [`StartRecord::journaled`]).
    pub fn journal_in(self, entry: &mut crate::state::JournalEntry) {
        (entry.boot_id, entry.once_marker) = (self.boot_id, self.once_marker);
    }
}

/// Carries out steps. Called on blocking threads: implementations may block.
pub trait StepRunner: Send + Sync {
    /// Whether reality already shows the step's effect (so it must not run again).
    fn is_done(&self, step: &Step, ctx: &StepContext) -> Result<bool, ApplyError>;

    /// Reads what the step's start is journaled with ([`StartRecord`]), before it acts; a
    /// failure fails the step before anything ran. Not called for a step an earlier apply
    /// started (its record is kept). No default: a runner that wraps another must pass it on,
    /// or a reboot-safe HOST_COMMAND would lose its boot id.
    fn before_start(&self, step: &Step, ctx: &StepContext) -> Result<StartRecord, ApplyError>;

    /// Runs the step, reporting live-migration progress through `progress`.
    fn run(
        &self,
        step: &Step,
        ctx: &StepContext,
        progress: &mut dyn FnMut(MigrationProgress),
    ) -> Result<StepOutcome, ApplyError>;
}
