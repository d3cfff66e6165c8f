//! The state lock: `<state>.lock`, created exclusively (`O_CREAT|O_EXCL`), holding who took
//! it. A crashed berth leaves it behind on purpose; `berth force-unlock <id>` removes it, but
//! only when the id matches, so an operator cannot remove a lock someone else just took.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::StateError;

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random id; `force-unlock` needs it.
    pub id: String,
    /// `user@host`.
    pub owner: String,
    pub pid: u32,
    pub host: String,
    /// What the holder is doing (`apply`, `state rm`, …).
    pub operation: String,
    pub created: DateTime<Utc>,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "held by {} (pid {}) for `{}` since {} (lock id {})",
            self.owner,
            self.pid,
            self.operation,
            self.created
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.id
        )
    }
}

fn local_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// The user from the environment, or else (cron, systemd units, `sudo -i` shells have no
/// `USER`) the name of this process's uid in /etc/passwd, or `uid N`.
fn local_user() -> String {
    use std::os::unix::fs::MetadataExt;
    if let Some(user) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
    {
        return user;
    }
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown-user".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_of_uid(&passwd, uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name /etc/passwd (`name:x:uid:gid:…` lines) gives `uid`.
fn user_of_uid(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

impl LockInfo {
    fn for_this_process(operation: &str) -> LockInfo {
        let host = local_host();
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            owner: format!("{}@{}", local_user(), host),
            pid: std::process::id(),
            host,
            operation: operation.to_string(),
            created: Utc::now(),
        }
    }
}

/// Reads the lock file; `None` when there is none.
pub(super) fn read(path: &Path) -> Result<Option<LockInfo>, StateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::LockUnreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(StateError::Io {
            action: "reading lock",
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// Takes the lock at `path` or reports who holds it.
pub(super) fn acquire(path: &Path, operation: &str) -> Result<LockGuard, StateError> {
    let info = LockInfo::for_this_process(operation);
    let io = |action, error| StateError::Io {
        action,
        path: path.to_path_buf(),
        error,
    };
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return Err(match read(path)? {
                Some(holder) => StateError::Locked {
                    path: path.to_path_buf(),
                    info: Box::new(holder),
                },
                // Removed between our attempt and our read: report rather than race again.
                None => StateError::LockUnreadable {
                    path: path.to_path_buf(),
                    reason: "it vanished while being read".into(),
                },
            });
        }
        Err(e) => return Err(io("creating lock", e)),
    };
    // From here on the lock exists: the guard removes it again if writing fails.
    let mut guard = LockGuard {
        path: path.to_path_buf(),
        info,
        written: false,
    };
    let text =
        serde_json::to_string_pretty(&guard.info).map_err(|e| io("writing lock", e.into()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| io("writing lock", e))?;
    file.sync_all().map_err(|e| io("syncing lock", e))?;
    guard.written = true;
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(|e| io("syncing directory of lock", e))?;
    }
    Ok(guard)
}

/// Removes the lock at `path` when it is held under `id`.
pub(super) fn force_remove(path: &Path, id: &str) -> Result<LockInfo, StateError> {
    let holder = read(path)?.ok_or_else(|| StateError::NotLocked {
        path: path.to_path_buf(),
    })?;
    if holder.id != id {
        return Err(StateError::LockIdMismatch {
            path: path.to_path_buf(),
            given: id.to_string(),
            holder: Box::new(holder),
        });
    }
    std::fs::remove_file(path).map_err(|error| StateError::Io {
        action: "removing lock",
        path: path.to_path_buf(),
        error,
    })?;
    Ok(holder)
}

/// fsync of a directory, so that a create, rename or unlink in it is durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    info: LockInfo,
    /// False until the lock file holds our info completely.
    written: bool,
}

impl LockGuard {
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Remove only our own lock: after a force-unlock someone else may hold the file.
        match read(&self.path) {
            Ok(Some(holder)) if holder.id == self.info.id => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "could not remove state lock");
                }
            }
            // Our own write failed half-way: the unreadable file is still ours.
            Err(StateError::LockUnreadable { .. }) if !self.written => {
                let _ = std::fs::remove_file(&self.path);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_is_named_by_its_passwd_line() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\nberth:x:1001:1001::/home/berth:/bin/sh\n";
        assert_eq!(user_of_uid(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_of_uid(passwd, 1001).as_deref(), Some("berth"));
        assert_eq!(user_of_uid(passwd, 7), None);
    }
}
