//! The one error type of the apply layer: every variant names what was being done, to which
//! guest, on which host, and keeps libvirt's (or ssh's) own message.

use std::path::PathBuf;
use std::time::Duration;

use crate::inventory::GuestState;
use crate::inventory::esxml::EsXmlError;
use crate::inventory::load::InventoryError;
use crate::remote::RemoteError;
use crate::state::StateError;

/// What a stalled live migration was doing when berth aborted it.
#[derive(Debug, thiserror::Error)]
#[error(
    "live migration of guest `{guest}` from host `{from}` to host `{to}` stalled: {what} did not move for {waited:.1?}; berth asked libvirt to abort it{outcome}"
)]
pub struct Stall {
    pub guest: String,
    pub from: String,
    pub to: String,
    /// What did not progress ("the migration's memory transfer (at 12 MiB)").
    pub what: String,
    pub waited: Duration,
    /// How the abort ended ("; the guest stays on `labh1`").
    pub outcome: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// libvirt on a host could not be reached.
    /// Rolling maintenance: the host did not come back in time.
    #[error("host `{host}` did not come back within {waited_s} s after its host command: {last}")]
    HostNotBack {
        host: String,
        waited_s: u64,
        last: String,
    },
    /// Rolling maintenance, `back_when = "rebooted"`: the host answers but was never seen
    /// rebooting.
    #[error(
        "host `{host}` was not seen rebooting within {waited_s} s after its host command: its boot id is still `{boot_id}` \
         (read before the command ran), so nothing is moved back onto it. If the host command does not reboot the host, \
         set `back_when = \"answers\"` in the `rolling_maintenance` block"
    )]
    HostNotRebooted {
        host: String,
        waited_s: u64,
        boot_id: String,
    },
    /// Rolling maintenance, `back_when = "rebooted"`: no boot id was journaled before the host
    /// command ran, so a reboot cannot be told from a host that never went down.
    #[error(
        "no boot id of host `{host}` was journaled before its host command ran (a berth without boot ids started it), \
         so berth cannot tell whether the host rebooted and moves nothing back onto it. Check the host, then plan again \
         (`berth apply -replan`)"
    )]
    NoBootId { host: String },
    /// Rolling maintenance: the host came back with less than the plan counted on for the
    /// guests still to come to it; nothing is moved back.
    #[error(
        "host `{host}` came back with {what}; the plan counted on more for the guests it is to take back in this and later phases, so nothing is moved back. Check the host, then plan again (`berth apply -replan`)"
    )]
    HostChanged { host: String, what: String },
    #[error("cannot connect to libvirt on host `{host}` ({uri}): {message}")]
    Connect {
        host: String,
        uri: String,
        message: String,
    },

    /// A libvirt call failed; `message` is libvirt's own text.
    #[error("{action} guest `{guest}` on host `{host}` failed: {message}")]
    Libvirt {
        action: &'static str,
        guest: String,
        host: String,
        message: String,
    },

    /// libvirt refused or aborted a live migration; the guest stays on the source.
    #[error(
        "live migration of guest `{guest}` from host `{from}` to host `{to}` failed: {message}"
    )]
    Migration {
        guest: String,
        from: String,
        to: String,
        message: String,
    },

    /// A live migration made no progress for the stall timeout; berth aborted it, and the
    /// guest stays on its source.
    #[error("{0}")]
    Stalled(Box<Stall>),

    /// A state change did not finish in time.
    #[error("{action} guest `{guest}` on host `{host}`: still {state} after {waited:?}")]
    Timeout {
        action: &'static str,
        guest: String,
        host: String,
        state: GuestState,
        waited: Duration,
    },

    /// The guest is in a state the operation cannot start from.
    #[error("guest `{guest}` is {state} on host `{host}`: {why}")]
    WrongState {
        guest: String,
        host: String,
        state: GuestState,
        why: String,
    },

    /// The guest is defined on neither side of a move.
    #[error("guest `{guest}` is defined on neither host `{from}` nor host `{to}`")]
    GuestMissing {
        guest: String,
        from: String,
        to: String,
    },

    /// The target holds another domain (different UUID) under the guest's name.
    #[error(
        "guest `{guest}`: host `{host}` already holds a different domain of that name (uuid {found}, expected {expected})"
    )]
    NameTaken {
        guest: String,
        host: String,
        found: String,
        expected: String,
    },

    /// A domain definition could not be read or edited as berth needs.
    #[error("the definition of guest `{guest}` on host `{host}` cannot be used: {message}")]
    Definition {
        guest: String,
        host: String,
        message: String,
    },

    /// The target's `sriov_vfs` pool has too few virtual functions no domain uses.
    #[error(
        "guest `{guest}` needs {needed} SR-IOV VFs on host `{host}`, but its `sriov_vfs` pool has {free} of {configured} free (the others are passed through to domains defined there)"
    )]
    NoFreeVfs {
        guest: String,
        host: String,
        needed: usize,
        free: usize,
        configured: usize,
    },

    /// A command on a host over SSH failed.
    #[error("{action} on host `{host}` failed: {error}")]
    Remote {
        action: String,
        host: String,
        error: Box<RemoteError>,
    },

    /// A step cannot be run with what the plan and configuration give (e.g. unknown host).
    #[error("step `{step}` cannot run: {message}")]
    Unsupported { step: String, message: String },

    /// A step of the plan failed; `error` says how.
    #[error("step `{step}` failed: {error}")]
    Step {
        step: String,
        error: Box<ApplyError>,
    },

    #[error(transparent)]
    State(#[from] StateError),

    /// The state backend failed during a run (the database went away).
    #[error(
        "the state could not be written during the apply: {cause}. No step was started after that, \
         the running ones settled ({done} done in this run, {not_run} not run), and {kept}. Run `berth apply` \
         again to continue"
    )]
    StateInterrupted {
        cause: Box<ApplyError>,
        kept: super::executor::Kept,
        done: usize,
        not_run: usize,
    },

    /// Reading es.xml or the hosts failed.
    #[error(transparent)]
    Inventory(Box<InventoryError>),

    /// Host facts could not be gathered over SSH (`gather_facts = true`).
    #[error(transparent)]
    Facts(Box<crate::inventory::facts::FactsError>),

    /// es.xml could not be rewritten for the moves that were carried out.
    #[error("cannot rewrite es.xml for the moves carried out: {0}")]
    EsXml(Box<EsXmlError>),

    /// A file apply writes (es.xml, its backup) could not be written.
    #[error("{action} `{}`: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    /// berth refuses to write es.xml back, and says why; the moves themselves are done.
    #[error("es.xml was not written back: {reason}")]
    WriteBackRefused { reason: String },

    /// The apply cannot start or continue as asked (stale plan, unknown target, …).
    #[error("{0}")]
    Refused(String),
}

impl From<InventoryError> for ApplyError {
    fn from(e: InventoryError) -> Self {
        ApplyError::Inventory(Box::new(e))
    }
}

impl From<crate::inventory::facts::FactsError> for ApplyError {
    fn from(e: crate::inventory::facts::FactsError) -> Self {
        ApplyError::Facts(Box::new(e))
    }
}

impl From<EsXmlError> for ApplyError {
    fn from(e: EsXmlError) -> Self {
        ApplyError::EsXml(Box::new(e))
    }
}

impl ApplyError {
    /// Wraps `error` with the id of the plan step it happened in.
    pub fn in_step(self, step: &str) -> ApplyError {
        let already_named = match &self {
            ApplyError::Step { .. } => true,
            ApplyError::Unsupported { step: named, .. } => named == step,
            _ => false,
        };
        if already_named {
            self
        } else {
            ApplyError::Step {
                step: step.to_string(),
                error: Box::new(self),
            }
        }
    }
}
