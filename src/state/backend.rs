//! Where the state lives, behind one trait: the local file ([`super::StateStore`]) or a
//! PostgreSQL workspace ([`super::postgres::PgBackend`]). The executor and the session write
//! through [`Backend`] and never know which one it is.
//!
//! A backend that fails in the middle of an apply (the database connection drops) loses no
//! step: the executor starts nothing new, lets the running steps settle, and then either
//! journals their outcome once the backend answers again or writes the whole state to a local
//! recovery file ([`write_recovery`]), which the next apply replays into the backend
//! ([`replay_recovery`]) before anything else.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::StateError;
use super::lock::{LockGuard, LockInfo};
use super::model::State;
use super::store::write_json_atomically;

/// One place the state lives.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// What the user should recognise in messages: `state file `…``, `PostgreSQL workspace …`.
    fn describe(&self) -> String;

    /// The state, or `None` when nothing was ever written.
    fn load(&self) -> Result<Option<State>, StateError>;

    /// Writes `state` as one atomic update, after incrementing its serial and stamping the
    /// time and berth version. Refuses another lineage or a state written after `state` was
    /// read (a higher serial in the backend).
    fn save(&self, state: &mut State) -> Result<(), StateError>;

    /// Takes the lock for `operation`, waiting up to `wait` for the holder to let go, then
    /// fails with [`StateError::Locked`] naming the holder.
    fn lock(&self, operation: &str, wait: Duration) -> Result<LockGuard, StateError>;

    /// Who holds the lock, if anyone.
    fn lock_info(&self) -> Result<Option<LockInfo>, StateError>;

    /// Removes the lock held under `id` (and only then); returns its holder.
    fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError>;

    /// The local file an apply that lost its backend writes the state to.
    fn recovery_path(&self) -> PathBuf;

    /// The id of the lock this backend holds now, when it tracks it.
    fn lock_id(&self) -> Option<String> {
        None
    }

    /// The lock id the last successful write carried, when the backend records it (so that
    /// a recovery file knows whether an ambiguous last write was its own).
    fn last_writer(&self) -> Result<Option<String>, StateError> {
        Ok(None)
    }
}

/// What a recovery file holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// The backend the state belongs to ([`Backend::describe`]).
    pub backend: String,
    /// The lock the interrupted apply held.
    pub lock_id: Option<String>,
    /// Why the backend could not be written.
    pub reason: String,
    pub state: State,
}

/// Writes `state` to `backend`'s recovery file (atomically, mode 0600). Returns its path.
pub fn write_recovery(
    backend: &dyn Backend,
    state: &State,
    lock_id: Option<&str>,
    reason: &str,
) -> Result<PathBuf, StateError> {
    let path = backend.recovery_path();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| StateError::Io {
                action: "creating directory of recovery file",
                path: dir.to_path_buf(),
                error,
            })?;
    }
    let recovery = Recovery {
        backend: backend.describe(),
        lock_id: lock_id.map(str::to_string),
        reason: reason.to_string(),
        state: state.clone(),
    };
    write_json_atomically(&path, &recovery)?;
    Ok(path)
}

/// Replays a recovery file an interrupted apply left into `backend` (whose lock the caller
/// holds), then removes it. Returns a note for the user when there was one.
///
/// The file is applied only when the backend still holds the state it was based on: the same
/// serial, or one more when that last write was the interrupted apply's own (its commit went
/// through but the answer was lost). Otherwise someone wrote in between; the file is kept and
/// the apply refused, because silently dropping either side would lose journaled steps.
pub fn replay_recovery(backend: &dyn Backend) -> Result<Option<String>, StateError> {
    let path = backend.recovery_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StateError::Io {
                action: "reading recovery file",
                path,
                error,
            });
        }
    };
    let recovery: Recovery = serde_json::from_str(&text).map_err(|error| StateError::Parse {
        path: path.clone(),
        error,
    })?;
    let mut state = recovery.state;
    let refuse = |why: String| StateError::Recovery {
        path: path.clone(),
        why,
    };
    match backend.load()? {
        None if state.serial == 0 => {}
        None => {
            return Err(refuse(format!(
                "{} holds no state, but the file continues serial {}",
                backend.describe(),
                state.serial
            )));
        }
        Some(current) => {
            if current.lineage != state.lineage {
                return Err(refuse(format!(
                    "{} has lineage {}, the file {}",
                    backend.describe(),
                    current.lineage,
                    state.lineage
                )));
            }
            let own_last_write = current.serial == state.serial + 1
                && recovery.lock_id.is_some()
                && backend.last_writer()? == recovery.lock_id;
            if current.serial != state.serial && !own_last_write {
                return Err(refuse(format!(
                    "{} is at serial {} since, the file continues serial {}: someone wrote in between",
                    backend.describe(),
                    current.serial,
                    state.serial
                )));
            }
            state.serial = current.serial;
        }
    }
    backend.save(&mut state)?;
    std::fs::remove_file(&path).map_err(|error| StateError::Io {
        action: "removing replayed recovery file",
        path: path.clone(),
        error,
    })?;
    Ok(Some(format!(
        "Replayed {} into {} (an earlier apply lost the state backend: {}).",
        path.display(),
        backend.describe(),
        recovery.reason
    )))
}
