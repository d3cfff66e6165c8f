//! The state: where berth last left every guest it moved, and the journal of every step it
//! ran (so an interrupted apply resumes where it stopped), guarded by a lock so that two
//! applies never run against the same state. It lives in a [`Backend`]: the local file
//! ([`StateStore`], locked with an OS file lock) or a PostgreSQL workspace
//! ([`postgres::PgBackend`], locked with an advisory lock).
//!
//! schemas/state.schema.json describes the file (and `berth state pull`'s output).

pub mod backend;
pub mod dirs;
pub mod error;
pub mod history;
pub mod lock;
pub mod model;
pub mod pg_tls;
pub mod pg_url;
pub mod postgres;
pub mod secrets;
pub mod store;

pub use backend::{Backend, replay_recovery, write_recovery};
pub use dirs::CreatedDirs;

pub use error::StateError;
pub use lock::{LockGuard, LockInfo};
pub use model::{
    DetachedInterface, FORMAT_VERSION, GuestRecord, InProgress, JournalEntry, RefreshRecord, State,
    StepStatus, state_schema,
};
pub use store::StateStore;

/// The backend `cfg` names. The local file's directory is created (mode 0700) when missing,
/// and comes back as a [`CreatedDirs`] that removes it again, when still empty, as it drops;
/// PostgreSQL is connected on first use.
pub fn open(
    cfg: &crate::config::StateConfig,
) -> Result<(Box<dyn Backend>, CreatedDirs), StateError> {
    use crate::config::StateBackendConfig;
    match &cfg.backend {
        StateBackendConfig::Local => {
            let (store, created) = StateStore::open_creating(&cfg.path)?;
            Ok((Box::new(store), created))
        }
        StateBackendConfig::Postgres(settings) => {
            let dir = crate::atomic_file::parent_dir(&cfg.path);
            Ok((
                Box::new(postgres::PgBackend::new(settings, dir)?),
                CreatedDirs::default(),
            ))
        }
    }
}
