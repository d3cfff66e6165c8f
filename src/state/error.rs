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

    /// Someone holds the lock (after waiting `-lock-timeout`, if any).
    #[error("state `{}` is locked: {info}; wait for it (`-lock-timeout 5m`), or if that berth hangs, run `berth force-unlock {}`", path.display(), info.id)]
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

    /// A recovery file of an interrupted apply cannot be replayed safely.
    #[error("recovery file `{}` of an interrupted apply cannot be replayed: {why}; compare it with the state (`berth state pull`) and remove it by hand once you have kept what you need", path.display())]
    Recovery { path: PathBuf, why: String },

    /// The PostgreSQL backend failed.
    #[error("{action} ({target}): {message}")]
    Postgres {
        action: &'static str,
        /// Host, database and workspace (never the password).
        target: String,
        message: String,
    },

    /// `backend = "postgres"` without a URL anywhere.
    #[error(
        "the state backend is PostgreSQL, but no URL is set: set `url` in the `state` block or the environment variable {env} (which keeps the password out of HCL)"
    )]
    NoPostgresUrl { env: &'static str },

    /// Connecting failed: the URL (without its password) and why, in the user's terms
    /// ("server does not support TLS", "certificate not trusted", "host name mismatch", …).
    #[error("cannot connect to {url} ({target}): {reason}")]
    PostgresConnect {
        url: String,
        target: String,
        reason: String,
    },

    /// The TLS parameters cannot be used (a bad `sslmode`, a CA file that does not read, …).
    #[error("TLS settings of the PostgreSQL state backend ({url}): {message}")]
    PostgresTls { url: String, message: String },

    /// The URL does not parse.
    #[error("the PostgreSQL URL is not valid: {message}")]
    BadPostgresUrl { message: String },

    /// Our lock was taken from us (force-unlock, or our database session ended) and another
    /// berth may hold it now: writing would overwrite its state.
    #[error("{target}: this berth no longer holds the state lock ({why}); nothing was written")]
    LockLost { target: String, why: String },
}
