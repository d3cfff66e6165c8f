//! apply: carries out a plan. [`hypervisor`] acts on libvirt (stop, start, define, undefine,
//! offline and live moves); the SSH edge lives in [`crate::remote`].

pub mod error;
pub mod hypervisor;

pub use error::ApplyError;
pub use hypervisor::{Hypervisor, MigrationProgress, migrate_live, move_offline};
