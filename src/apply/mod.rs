//! apply: carries out a plan.
//!
//! - [`hypervisor`] acts on libvirt (stop, start, define, undefine, offline and live moves);
//!   the SSH edge lives in [`crate::remote`]; [`interrupted`] settles a live migration whose
//!   berth died.
//! - [`executor`] walks the plan's step graph with bounded parallelism, journaling every
//!   transition in the state file; [`runner`] is the seam between graph walking and acting,
//!   and [`libvirt_runner`] acts on real hosts.
//! - [`session`] is one whole apply: lock, state, resuming an unfinished plan ([`resume`]),
//!   checking a saved plan ([`freshness`]), running, and writing es.xml back ([`writeback`]);
//!   [`setup`] maps the configuration onto runner and executor settings; [`preflight`] checks
//!   everything the steps need before the first one runs.

pub mod definition;
pub mod error;
pub mod events;
pub mod executor;
pub mod freshness;
pub mod hypervisor;
pub mod interfaces;
pub mod interrupt;
pub mod interrupted;
pub mod libvirt_runner;
pub mod preflight;
pub mod resume;
pub mod runner;
pub mod session;
pub mod setup;
pub mod stall;
pub mod stream;
pub mod writeback;

pub use crate::state::CreatedDirs;
pub use error::ApplyError;
pub use events::Event;
pub use executor::{ApplyReport, ExecOptions, Kept, execute, journal_statuses, plan_id};
pub use hypervisor::{Hypervisor, MigrationProgress, migrate_live, move_offline};
pub use libvirt_runner::{HostAccess, LibvirtRunner, RunnerSettings, volume_argv};
pub use runner::{StartRecord, StepContext, StepOutcome, StepRunner};
pub use session::{Abandoned, LockOptions, RunOutcome, Session, open_store};
pub use writeback::WrittenBack;
