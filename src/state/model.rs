//! The state file's content.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::inventory::GuestState;
use crate::plan::Plan;
use crate::schedule::StepKind;

/// Bumped whenever the file's shape changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// Where a guest was left, as berth last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestRecord {
    pub host: String,
    pub state: GuestState,
    /// The persistent libvirt definition last read from the guest's host (migratable form):
    /// what an `offline_force` move defines on a new host when the old one is unreachable.
    pub last_definition_xml: Option<String>,
    /// SR-IOV interfaces DETACH_INTERFACES took out of the guest's definition and
    /// ATTACH_INTERFACES has not put back yet (the definition's own metadata holds them too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detached_interfaces: Vec<DetachedInterface>,
}

/// One `<interface type='hostdev'>` taken out of a guest's definition before a move, to be
/// given back on the target with a virtual function of the target's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetachedInterface {
    /// The guest-side MAC address, kept on the target.
    pub mac: Option<String>,
    /// The host PCI address of the virtual function it had (`0000:3b:02.1`).
    pub source: String,
    /// The whole element as the definition had it (MAC, driver, model, VLAN, guest address).
    pub xml: String,
}

/// Progress of one plan step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
    /// Not run: a step it depends on failed, or it was filtered out.
    Skipped,
}

/// One step of one plan, as it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// Identifies the plan (hash of its JSON), so that resuming matches the same plan.
    pub plan_id: String,
    pub step_id: String,
    pub kind: StepKind,
    pub guest: String,
    pub from: String,
    pub to: String,
    pub status: StepStatus,
    #[schemars(with = "Option<String>")]
    pub started_at: Option<DateTime<Utc>>,
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// HOST_COMMAND of a rolling maintenance: the host's boot id
    /// (`/proc/sys/kernel/random/boot_id`) read just before the command ran (always with
    /// `back_when = "rebooted"`, where it could be read with `"answers"`), journaled in the
    /// same write that marks the step running. With `"rebooted"` WAIT_HOST takes the host as
    /// back only once its boot id differs; an apply resuming after a kill still has it, and
    /// does not start the command again on a host that rebooted since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// HOST_COMMAND: the name of the marker its guard makes on the host (in `/dev/shm`,
    /// emptied at boot) as it starts the command, journaled with the start. An apply resuming
    /// after a kill asks the host: a command that never began runs, one that did (or whose
    /// host rebooted since) does not. Absent in journals of older berths: never run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once_marker: Option<String>,
}

/// The plan an apply is carrying out, kept until every step in its scope is done, so that an
/// interrupted or failed apply is continued (not re-planned half-way through a move).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InProgress {
    /// The id this plan's journal entries carry: `apply::plan_id` of `plan` (its content)
    /// and a random suffix, so that two applies of equal plans never share journal entries.
    pub plan_id: String,
    pub plan: Plan,
    /// Guests whose moves this apply carries out (`-target`); `None` = every move.
    pub targets: Option<std::collections::BTreeSet<String>>,
    #[schemars(with = "String")]
    pub started_at: DateTime<Utc>,
    /// The copy of es.xml taken before the first in-place write-back of this plan (the text
    /// the plan was made from).
    pub es_xml_backup: Option<std::path::PathBuf>,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Incremented on every write; a write based on an older serial is refused.
    pub serial: u64,
    /// Fixed when the state is created; a file with another lineage is never overwritten.
    #[schemars(with = "String")]
    pub lineage: uuid::Uuid,
    /// berth version that last wrote the file.
    pub berth_version: String,
    #[schemars(with = "String")]
    pub updated_at: DateTime<Utc>,
    /// Guest name → where it is.
    pub topology: BTreeMap<String, GuestRecord>,
    pub journal: Vec<JournalEntry>,
    /// The apply that has not finished yet (interrupted, failed, or run step by step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<InProgress>,
    /// Every `berth refresh` that rewrote es.xml, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refreshes: Vec<RefreshRecord>,
    /// Every host a rolling maintenance serviced (every step of its phase done), oldest first:
    /// a `rolling_maintenance` block's `hosts` are not serviced again with the same command
    /// and `run`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serviced: Vec<crate::diff::Serviced>,
}

/// One `berth refresh`: es.xml rewritten to match libvirt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRecord {
    #[schemars(with = "String")]
    pub at: DateTime<Utc>,
    /// The file written.
    pub es_xml: String,
    /// The copy of the file before (in-place refreshes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    pub sha256_before: String,
    pub sha256_after: String,
    /// One line per change (`vm01: host adm01 → adm02`).
    pub changes: Vec<String>,
}

impl State {
    /// An empty state with a fresh lineage (serial 0: nothing written yet).
    pub fn new() -> State {
        State {
            version: FORMAT_VERSION,
            serial: 0,
            lineage: uuid::Uuid::new_v4(),
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
            updated_at: Utc::now(),
            topology: BTreeMap::new(),
            journal: Vec::new(),
            in_progress: None,
            refreshes: Vec::new(),
            serviced: Vec::new(),
        }
    }

    /// The journal entry of `step_id` in plan `plan_id`.
    pub fn entry(&self, plan_id: &str, step_id: &str) -> Option<&JournalEntry> {
        self.journal
            .iter()
            .rev()
            .find(|e| e.plan_id == plan_id && e.step_id == step_id)
    }

    /// Mutable access to the entry of `step_id` in plan `plan_id`.
    pub fn entry_mut(&mut self, plan_id: &str, step_id: &str) -> Option<&mut JournalEntry> {
        self.journal
            .iter_mut()
            .rev()
            .find(|e| e.plan_id == plan_id && e.step_id == step_id)
    }

    /// Inserts `entry`, replacing the existing entry of the same plan and step.
    pub fn upsert(&mut self, entry: JournalEntry) {
        match self.entry_mut(&entry.plan_id, &entry.step_id) {
            Some(existing) => *existing = entry,
            None => self.journal.push(entry),
        }
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// The JSON Schema of the state file (committed as schemas/state.schema.json).
pub fn state_schema() -> serde_json::Value {
    schemars::schema_for!(State).to_value()
}
