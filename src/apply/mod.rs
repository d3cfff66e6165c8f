//! apply: carries out a plan.
//!
//! - [`hypervisor`] acts on libvirt (stop, start, define, undefine, offline and live moves);
//!   the SSH edge lives in [`crate::remote`].
//! - [`executor`] walks the plan's step graph with bounded parallelism, journaling every
//!   transition in the state file; [`runner`] is the seam between graph walking and acting,
//!   and [`libvirt_runner`] acts on real hosts.

pub mod error;
pub mod events;
pub mod executor;
pub mod hypervisor;
pub mod libvirt_runner;
pub mod runner;

pub use error::ApplyError;
pub use events::Event;
pub use executor::{ApplyReport, ExecOptions, execute, journal_statuses, plan_id};
pub use hypervisor::{Hypervisor, MigrationProgress, migrate_live, move_offline};
pub use libvirt_runner::{HostAccess, LibvirtRunner, RunnerSettings};
pub use runner::{StepContext, StepOutcome, StepRunner};
