//! The state's directory, created on demand and removed again when nothing was written in it.
//!
//! berth promises that a refused command changes nothing on disk. The local state backend
//! needs its directory before it can take the lock, so the directories it creates are handed
//! back as a [`CreatedDirs`] guard: kept alive for as long as the store is used, they are
//! removed again (when still empty) as the guard drops, so a refused apply or a read of a
//! state that does not exist leaves no empty `state/` behind.

use std::path::{Path, PathBuf};

use super::error::StateError;

/// Directories [`create_parent`] created (outermost first). Dropping it removes those that are
/// still empty, innermost first, and stops at the first that is not (a state file or a lock
/// someone else took is never touched: `remove_dir` only removes empty directories).
#[derive(Debug, Default)]
pub struct CreatedDirs(Vec<PathBuf>);

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// Creates the directory `path` lives in (mode 0700) when it is missing, with any missing
/// ancestors; returns what it created.
pub fn create_parent(path: &Path) -> Result<CreatedDirs, StateError> {
    let mut created = CreatedDirs::default();
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        // The missing ancestors, outermost first (what `create_dir_all` creates).
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| StateError::Io {
                action: "creating state directory",
                path: dir.to_path_buf(),
                error,
            })?;
        created.0 = missing;
    }
    Ok(created)
}
