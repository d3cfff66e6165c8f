//! Errors of the state layer: each names the state (or lock) file and what went wrong.

use std::path::PathBuf;

use super::lock::LockInfo;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{action} `{}`: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    /// serde_json's message carries line and column.
    #[error("`{}` is not a valid berth state file: {error}", path.display())]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },

    #[error("`{}` has state format version {found}; this berth reads version {supported}", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// The file on disk belongs to another state history (different lineage).
    #[error("`{}` belongs to another state (lineage {found}, expected {expected}); refusing to overwrite it", path.display())]
    LineageMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },

    /// Someone wrote the file after this state was read.
    #[error("`{}` changed since it was read (serial {on_disk} on disk, {ours} in memory); reload and retry", path.display())]
    Stale {
        path: PathBuf,
        on_disk: u64,
        ours: u64,
    },

    #[error("state `{}` is locked: {info}; if that process is gone, run `berth force-unlock {}`", path.display(), info.id)]
    Locked { path: PathBuf, info: Box<LockInfo> },

    #[error("lock file `{}` exists but cannot be read ({reason}); remove it by hand once no berth runs", path.display())]
    LockUnreadable { path: PathBuf, reason: String },

    #[error("lock `{}` is held under id {} ({holder}), not {given}; nothing was removed", path.display(), holder.id)]
    LockIdMismatch {
        path: PathBuf,
        given: String,
        holder: Box<LockInfo>,
    },

    #[error("state `{}` is not locked", path.display())]
    NotLocked { path: PathBuf },
}
