//! The state file: where berth last left every guest it moved, and the journal of every step
//! it ran (so an interrupted apply resumes where it stopped), guarded by a lock file so that
//! two applies never run against the same state.
//!
//! schemas/state.schema.json describes the file.

pub mod error;
pub mod history;
pub mod lock;
pub mod model;
pub mod secrets;
pub mod store;

pub use error::StateError;
pub use lock::{LockGuard, LockInfo};
pub use model::{
    DetachedInterface, FORMAT_VERSION, GuestRecord, InProgress, JournalEntry, RefreshRecord, State,
    StepStatus, state_schema,
};
pub use store::StateStore;
