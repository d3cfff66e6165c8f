//! The local state lock: an OS file lock on `<state>.lock`, whose content names who took it.
//! The kernel releases the lock of a process that dies, so a crashed berth leaves nothing to
//! clean up. `berth force-unlock <id>` removes the file (for shared filesystems without file
//! locks, or a holder that hangs), but only when the id matches, so an operator cannot remove
//! a lock someone else just took.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// The plan the holder is applying, once it has one (the PostgreSQL backend records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "held by {} (pid {}) for `{}`{} since {} (lock id {})",
            self.owner,
            self.pid,
            self.operation,
            self.plan
                .as_ref()
                .map(|p| format!(" of plan {p}"))
                .unwrap_or_default(),
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
    pub(super) fn for_this_process(operation: &str) -> LockInfo {
        let host = local_host();
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            owner: format!("{}@{}", local_user(), host),
            pid: std::process::id(),
            host,
            operation: operation.to_string(),
            created: Utc::now(),
            plan: None,
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

/// Takes the lock at `path`, waiting up to `wait` for a holder to let go, or reports who holds
/// it.
///
/// The lock is the OS file lock (`flock`) on `<state>.lock`, which the kernel drops when its
/// holder dies (even `kill -9`): a dead berth leaves no lock behind. The file still records
/// the holder, for the refusal message and for `force-unlock` (needed only where file locks
/// do not reach, such as some shared filesystems, or for a holder that hangs).
pub(super) fn acquire(
    path: &Path,
    operation: &str,
    wait: Duration,
) -> Result<LockGuard, StateError> {
    // None: a wait longer than the clock can count (`-lock-timeout 18446744073709551615s`),
    // that is, for good.
    let deadline = Instant::now().checked_add(wait);
    let mut races = 0;
    loop {
        match try_acquire(path, operation)? {
            Attempt::Taken(guard) => return Ok(guard),
            // The holder released (and removed) the file between our open and our lock: open
            // again (a file replaced over and over is someone else's doing, not a lock).
            Attempt::Raced if races < 100 => races += 1,
            Attempt::Raced => {
                return Err(StateError::LockUnreadable {
                    path: path.to_path_buf(),
                    reason: "it is replaced faster than it can be locked".into(),
                });
            }
            Attempt::Held(file) => {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left.is_some_and(|left| left.is_zero()) {
                    return Err(held_error(path, &file));
                }
                std::thread::sleep(left.map_or(LOCK_POLL, |left| LOCK_POLL.min(left)));
            }
        }
    }
}

/// How often a waiting berth asks again (the kernel has no timed `flock`).
const LOCK_POLL: Duration = Duration::from_millis(100);

enum Attempt {
    Taken(LockGuard),
    Raced,
    Held(File),
}

/// Why a held lock refuses us: its record, or that the record cannot be read.
fn held_error(path: &Path, _file: &File) -> StateError {
    match read(path) {
        Ok(Some(holder)) => StateError::Locked {
            path: path.to_path_buf(),
            info: Box::new(holder),
        },
        Ok(None) => StateError::LockUnreadable {
            path: path.to_path_buf(),
            reason: "it vanished while being read".into(),
        },
        Err(e) => e,
    }
}

// `File::try_lock` is Rust 1.89, which the locked dependencies need already; Cargo.toml's
// `rust-version` is corrected to it separately (issue 12, dependency hygiene).
#[allow(clippy::incompatible_msrv)]
fn try_acquire(path: &Path, operation: &str) -> Result<Attempt, StateError> {
    let io = |action, error| StateError::Io {
        action,
        path: path.to_path_buf(),
        error,
    };
    // O_NOFOLLOW: a symbolic link planted at the lock path (a state directory others can
    // write to) must not make berth create, truncate and overwrite the file it points to.
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(_) if is_symlink(path) => {
            return Err(StateError::LockUnreadable {
                path: path.to_path_buf(),
                reason: "it is a symbolic link, which berth does not follow there".into(),
            });
        }
        Err(e) => return Err(io("opening lock", e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Attempt::Held(file)),
        Err(TryLockError::Error(e)) => return Err(io("locking", e)),
    }
    // A holder removes the file before it unlocks: the inode we locked must still be the
    // one at `path`, or we hold a lock nobody else can see.
    let ours = file.metadata().map_err(|e| io("reading lock", e))?;
    match std::fs::metadata(path) {
        Ok(at_path) if at_path.ino() == ours.ino() && at_path.dev() == ours.dev() => {}
        Ok(_) => return Ok(Attempt::Raced),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Attempt::Raced),
        Err(e) => return Err(io("reading lock", e)),
    }
    // Whatever the file holds (a dead holder's record, a torn write) is stale now.
    let info = LockInfo::for_this_process(operation);
    let text = serde_json::to_string_pretty(&info).map_err(|e| io("writing lock", e.into()))?;
    file.set_len(0).map_err(|e| io("writing lock", e))?;
    file.write_all_at(text.as_bytes(), 0)
        .map_err(|e| io("writing lock", e))?;
    file.sync_all().map_err(|e| io("syncing lock", e))?;
    let held = FileLock {
        path: path.to_path_buf(),
        id: info.id.clone(),
        file: Some(file),
    };
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(|e| io("syncing directory of lock", e))?;
    }
    Ok(Attempt::Taken(LockGuard::new(info, Box::new(held))))
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
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

/// A held lock, of whichever backend; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    info: LockInfo,
    /// What keeps the lock (the open lock file, the database session); dropped last.
    _held: Box<dyn std::fmt::Debug + Send + Sync>,
}

impl LockGuard {
    pub(super) fn new(info: LockInfo, held: Box<dyn std::fmt::Debug + Send + Sync>) -> LockGuard {
        LockGuard { info, _held: held }
    }

    pub fn info(&self) -> &LockInfo {
        &self.info
    }
}

/// The local lock file held open (and OS-locked).
#[derive(Debug)]
struct FileLock {
    path: PathBuf,
    id: String,
    /// The OS lock lives as long as the file is open.
    file: Option<File>,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Remove the file while still holding the lock (a waiter that opened it meanwhile sees
        // the inode is gone and opens afresh), and only our own: after a force-unlock someone
        // else may hold the file now at this path.
        if let Ok(Some(holder)) = read(&self.path)
            && holder.id == self.id
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove state lock");
        }
        // Closing the file releases the OS lock.
        drop(self.file.take());
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
