//! Reading and writing the state file.
//!
//! A write never leaves a torn file: the new content goes to a temporary file in the same
//! directory (mode 0600), is fsynced, renamed over the old file, and the directory is fsynced.

use std::path::{Path, PathBuf};

use std::time::Duration;

use chrono::Utc;

use super::backend::Backend;
use super::dirs::CreatedDirs;
use super::error::StateError;
use super::lock::{self, LockGuard, LockInfo};
use super::model::{FORMAT_VERSION, State};
use super::secrets;
use crate::atomic_file::parent_dir;

/// Mode of the state file: it names every guest and host, readable by its owner only.
const STATE_FILE_MODE: u32 = 0o600;

/// The state file at one path (and its lock beside it).
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
    lock_path: PathBuf,
}

impl StateStore {
    /// A store for the state file at `path`. The directory must exist; the file need not.
    pub fn open(path: impl Into<PathBuf>) -> Result<StateStore, StateError> {
        let path = path.into();
        let dir = parent_dir(&path);
        if !dir.is_dir() {
            return Err(StateError::Io {
                action: "opening state directory",
                path: dir.to_path_buf(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        if path.is_dir() {
            return Err(StateError::Io {
                action: "opening state file",
                path: path.clone(),
                error: std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
            });
        }
        let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
        lock_name.push(".lock");
        let lock_path = path.with_file_name(lock_name);
        Ok(StateStore { path, lock_path })
    }

    /// [`StateStore::open`], creating the directory (mode 0700) when missing; what it created
    /// comes back as a [`CreatedDirs`] guard (see [`super::dirs`]).
    pub fn open_creating(path: &Path) -> Result<(StateStore, CreatedDirs), StateError> {
        let created = super::dirs::create_parent(path)?;
        Ok((StateStore::open(path)?, created))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// The state, or `None` when no state file exists yet.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        // A device (`state push /dev/zero`) would be read until memory runs out. Checked
        // through links, which a state path may be.
        match std::fs::metadata(&self.path) {
            Ok(meta) if !crate::text_file::readable_kind(&meta.file_type()) => {
                return Err(StateError::Io {
                    action: "reading state",
                    path: self.path.clone(),
                    error: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "a device, socket or directory, not a file to read",
                    ),
                });
            }
            _ => {}
        }
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(StateError::Io {
                    action: "reading state",
                    path: self.path.clone(),
                    error,
                });
            }
        };
        // Check the version before the full shape, so an old or new file gets the clear message.
        #[derive(serde::Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let version: VersionOnly =
            serde_json::from_str(&text).map_err(|error| StateError::Parse {
                path: self.path.clone(),
                error,
            })?;
        if version.version != FORMAT_VERSION {
            return Err(StateError::UnsupportedVersion {
                path: self.path.clone(),
                found: version.version,
                supported: FORMAT_VERSION,
            });
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| StateError::Parse {
                path: self.path.clone(),
                error,
            })
    }

    /// Loads the state, or starts a new one when there is no file.
    pub fn load_or_new(&self) -> Result<State, StateError> {
        Ok(self.load()?.unwrap_or_default())
    }

    /// Writes `state` atomically, after incrementing its serial and stamping the time and
    /// berth version. Refuses to overwrite a file of another lineage or one written after
    /// `state` was read (a higher serial on disk).
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        if let Some(on_disk) = self.load()? {
            if on_disk.lineage != state.lineage {
                return Err(StateError::LineageMismatch {
                    path: self.path.clone(),
                    found: on_disk.lineage.to_string(),
                    expected: state.lineage.to_string(),
                });
            }
            if on_disk.serial > state.serial {
                return Err(StateError::Stale {
                    path: self.path.clone(),
                    on_disk: on_disk.serial,
                    ours: state.serial,
                });
            }
        }
        let mut next = state.clone();
        next.serial += 1;
        next.updated_at = Utc::now();
        next.berth_version = env!("CARGO_PKG_VERSION").to_string();
        self.write_atomically(&next)?;
        *state = next;
        Ok(())
    }

    /// Writes `state` as it may be on disk: see [`without_secrets`].
    fn write_atomically(&self, state: &State) -> Result<(), StateError> {
        write_json_atomically(&self.path, &*without_secrets(state))
    }

    /// Takes the state lock for `operation`; fails at once with [`StateError::Locked`]
    /// naming the holder when another process has it.
    pub fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        self.lock_within(operation, Duration::ZERO)
    }

    /// Takes the lock, waiting up to `wait`; then, as no other berth can be writing the state
    /// file, removes the temp files a killed write of it left.
    fn lock_within(&self, operation: &str, wait: Duration) -> Result<LockGuard, StateError> {
        let guard = lock::acquire(&self.lock_path, operation, wait)?;
        match crate::atomic_file::remove_leftovers(&self.path) {
            Ok(removed) => {
                for path in removed {
                    tracing::info!(path = %path.display(), "removed a temporary state file a killed write left");
                }
            }
            // Leftovers are untidy, not wrong: the state file itself is intact.
            Err(error) => {
                tracing::warn!(%error, "could not look for temporary state files left by a killed write")
            }
        }
        Ok(guard)
    }

    /// Who holds the lock, if anyone.
    pub fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        lock::read(&self.lock_path)
    }

    /// Removes a stale lock, only when `id` is the id it is held under. Returns the removed
    /// lock's holder.
    pub fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        lock::force_remove(&self.lock_path, id)
    }
}

/// Writes `state` to the state file at `path` as it is (serial included), atomically, mode
/// 0600, creating the directory: what `berth state pull -out` writes.
pub fn write_state_file(path: &Path, state: &State) -> Result<(), StateError> {
    // A directory created here holds the file once written; if the write fails it goes again.
    let (_store, _created) = StateStore::open_creating(path)?;
    write_json_atomically(path, &*without_secrets(state))
}

/// Writes `value` as pretty JSON to `path` atomically: a temporary file in the same directory
/// (mode 0600), fsynced, renamed over `path`, and the directory fsynced.
pub(super) fn write_json_atomically<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), StateError> {
    let io = |action, error| StateError::Io {
        action,
        path: path.to_path_buf(),
        error,
    };
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| io("serializing state", e.into()))?;
    text.push('\n');
    crate::atomic_file::write(path, text.as_bytes(), STATE_FILE_MODE)
        .map_err(|e| io(e.action, e.source))
}

impl Backend for StateStore {
    fn describe(&self) -> String {
        format!("state file `{}`", self.path.display())
    }

    fn load(&self) -> Result<Option<State>, StateError> {
        StateStore::load(self)
    }

    fn save(&self, state: &mut State) -> Result<(), StateError> {
        StateStore::save(self, state)
    }

    fn lock(&self, operation: &str, wait: Duration) -> Result<LockGuard, StateError> {
        self.lock_within(operation, wait)
    }

    fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        StateStore::lock_info(self)
    }

    fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError> {
        StateStore::force_unlock(self, id)
    }

    fn recovery_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".recovery");
        self.path.with_file_name(name)
    }
}

/// `state` with the secrets of its recorded definitions removed ([`secrets::strip_secrets`]);
/// a definition that cannot be read well enough to tell is not recorded at all.
pub(crate) fn without_secrets(state: &State) -> std::borrow::Cow<'_, State> {
    let holds_secret = |xml: &String| secrets::strip_secrets(xml).as_ref() != Some(xml);
    if !state
        .topology
        .values()
        .any(|r| r.last_definition_xml.as_ref().is_some_and(holds_secret))
    {
        return std::borrow::Cow::Borrowed(state);
    }
    let mut clean = state.clone();
    for record in clean.topology.values_mut() {
        record.last_definition_xml = record
            .last_definition_xml
            .as_deref()
            .and_then(secrets::strip_secrets);
    }
    std::borrow::Cow::Owned(clean)
}
