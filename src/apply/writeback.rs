//! Writing es.xml back after an apply, so that es.xml keeps saying where every guest is.
//!
//! - Only moves whose MIGRATE_GUEST step is done are written: after a partial apply es.xml
//!   matches what libvirt shows (a guest whose definition moved is under its new host; one
//!   whose definition did not move stays where it is), so the next plan sees no drift.
//! - The new text comes from a minimal rewrite of the current file (only the guest references
//!   of moved guests change); when every move of the plan is done, the change from the es.xml
//!   the plan was made from must be exactly the diff the plan showed, or nothing is written.
//! - In place, the file is first copied to `<es.xml>.berth-backup-<UTC time>` (mode 0600),
//!   once per plan; with `inventory { es_xml_out = … }` es.xml stays as it is and the result
//!   goes to that path instead.
//! - Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the
//!   directory); a rewritten es.xml keeps its file mode, new files get 0600.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::diff::Move;
use crate::inventory::load::{Inventory, sha256_hex};
use crate::plan::{Plan, build::esxml_after, unified_diff};

use super::error::ApplyError;

/// Mode of files berth creates beside es.xml (backup, `es_xml_out`).
const PRIVATE_MODE: u32 = 0o600;

/// Where the write-back goes and what it may rely on.
#[derive(Debug, Clone)]
pub struct WriteBackTarget<'a> {
    /// The es.xml the configuration names (read for the current text).
    pub es_xml: &'a Path,
    /// `inventory.es_xml_out`: write here instead of in place.
    pub out: Option<&'a Path>,
    /// The backup an earlier write-back of the same plan made (its content is the es.xml the
    /// plan was made from).
    pub earlier_backup: Option<&'a Path>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBack {
    pub path: PathBuf,
    /// The backup made now (in place only, first write of a plan).
    pub backup: Option<PathBuf>,
    /// Unified diff of what changed in this write.
    pub diff: String,
}

/// Writes es.xml for `completed` moves (in plan order). `inv` is the inventory read just
/// before (its es.xml text is the current file). `all_done`: every move of `plan` is done, so
/// the result must match `plan.es_xml_diff` exactly. Returns `None` when nothing changes.
pub fn write_back(
    target: &WriteBackTarget<'_>,
    inv: &Inventory,
    plan: &Plan,
    completed: &[Move],
    all_done: bool,
) -> Result<Option<WrittenBack>, ApplyError> {
    let mut new_text = esxml_after(inv, completed)?;
    if all_done && let Some(intended) = check_against_plan(target, inv, plan, &new_text)? {
        new_text = intended;
    }
    let dest = target.out.unwrap_or(target.es_xml);
    let current_dest = match target.out {
        None => Some(inv.es_xml_text.to_string()),
        Some(out) => read_if_exists(out)?,
    };
    if current_dest.as_deref() == Some(new_text.as_str()) {
        return Ok(None);
    }
    let backup = match (target.out, target.earlier_backup) {
        (None, Some(earlier)) if earlier.exists() => None,
        (None, _) => Some(backup(target.es_xml, &inv.es_xml_text)?),
        (Some(_), _) => None,
    };
    write_atomically(dest, &new_text)?;
    let diff = unified_diff(
        &dest.display().to_string(),
        current_dest.as_deref().unwrap_or(""),
        &new_text,
    );
    Ok(Some(WrittenBack {
        path: dest.to_path_buf(),
        backup,
        diff,
    }))
}

/// The whole plan is done: the change from the es.xml the plan was made from must be the
/// plan's diff, byte for byte.
///
/// A plan applied in parts (interrupted, or failed and continued) rewrote es.xml once per part,
/// so two guests moving into one host may have their references in another order than the
/// plan's. When `new_text` holds exactly the lines of the es.xml the plan showed, only in
/// another order, that text is returned to be written instead: the result is then the
/// reviewed diff byte for byte. Anything else is refused.
fn check_against_plan(
    target: &WriteBackTarget<'_>,
    inv: &Inventory,
    plan: &Plan,
    new_text: &str,
) -> Result<Option<String>, ApplyError> {
    let wanted = &plan.fingerprints.es_xml_sha256;
    let base = if &inv.es_xml_sha256 == wanted {
        inv.es_xml_text.to_string()
    } else {
        let from_backup = match target.earlier_backup {
            Some(b) => read_if_exists(b)?.filter(|text| &sha256_hex(text.as_bytes()) == wanted),
            None => None,
        };
        // A berth killed between backing up es.xml and journaling the backup left it beside
        // es.xml without the state knowing: any backup there holding the text the plan saw will do.
        let from_backup = match from_backup {
            Some(text) => Some(text),
            None => backup_with_sha(target.es_xml, wanted)?,
        };
        from_backup.ok_or_else(|| ApplyError::WriteBackRefused {
            reason: format!(
                "{} changed since the plan was made (sha256 {} now, the plan saw {}) and no backup of the \
                 original is left, so the result cannot be checked against the plan's diff; the moves are done: \
                 update es.xml by hand",
                target.es_xml.display(),
                inv.es_xml_sha256,
                wanted
            ),
        })?
    };
    let diff = unified_diff(&plan.es_xml_path, &base, new_text);
    if diff == plan.es_xml_diff {
        return Ok(None);
    }
    if let Some(intended) = intended_text(inv, &base, plan)
        && unified_diff(&plan.es_xml_path, &base, &intended) == plan.es_xml_diff
        && same_lines(&intended, new_text)
    {
        return Ok(Some(intended));
    }
    Err(ApplyError::WriteBackRefused {
        reason: format!(
            "the es.xml berth would write differs from the diff the plan showed (it would write:\n{diff}\nthe plan showed:\n{})",
            plan.es_xml_diff
        ),
    })
}

/// The es.xml the plan was made from (`base`) with every move of the plan written, as the plan
/// showed it; `None` when `base` does not parse (then there is nothing to compare with).
fn intended_text(inv: &Inventory, base: &str, plan: &Plan) -> Option<String> {
    let (es, layout) = crate::inventory::esxml::parse_with_layout("es.xml", base).ok()?;
    let from_base = Inventory {
        es,
        es_xml_text: base.into(),
        es_layout: Some(layout),
        ..inv.clone()
    };
    esxml_after(&from_base, &plan.moves).ok()
}

/// Whether `a` and `b` hold the same lines, in any order.
fn same_lines(a: &str, b: &str) -> bool {
    fn sorted(t: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = t.lines().collect();
        lines.sort_unstable();
        lines
    }
    sorted(a) == sorted(b)
}

/// The text of a backup of `es_xml` (`<name>.berth-backup-*` beside it) whose sha256 is
/// `sha256`, if there is one.
fn backup_with_sha(es_xml: &Path, sha256: &str) -> Result<Option<String>, ApplyError> {
    let name = es_xml
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let prefix = format!("{name}.berth-backup-");
    let dir = match es_xml.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        if let Some(text) = read_if_exists(&entry.path())?
            && sha256_hex(text.as_bytes()) == sha256
        {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

fn read_if_exists(path: &Path) -> Result<Option<String>, ApplyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ApplyError::Io {
            action: "reading",
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// Writes `new_text` (a refreshed es.xml) to `out`, or in place over `es_xml` after a backup
/// of `current` (its text now). Returns where it went, the backup, and the diff.
pub fn write_es_xml(
    es_xml: &Path,
    out: Option<&Path>,
    current: &str,
    new_text: &str,
) -> Result<WrittenBack, ApplyError> {
    let dest = out.unwrap_or(es_xml);
    let before = match out {
        None => Some(current.to_string()),
        Some(out) => read_if_exists(out)?,
    };
    let backup = match out {
        None => Some(backup(es_xml, current)?),
        Some(_) => None,
    };
    write_atomically(dest, new_text)?;
    Ok(WrittenBack {
        path: dest.to_path_buf(),
        backup,
        diff: unified_diff(
            &dest.display().to_string(),
            before.as_deref().unwrap_or(""),
            new_text,
        ),
    })
}

/// Copies `text` (the current es.xml) to a new `<es.xml>.berth-backup-<time>` file.
fn backup(es_xml: &Path, text: &str) -> Result<PathBuf, ApplyError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let name = es_xml
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    for n in 0..100 {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let path = es_xml.with_file_name(format!("{name}.berth-backup-{stamp}{suffix}"));
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_MODE)
            .open(&path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => {
                return Err(ApplyError::Io {
                    action: "creating es.xml backup",
                    path,
                    error,
                });
            }
        };
        let io = |error| ApplyError::Io {
            action: "writing es.xml backup",
            path: path.clone(),
            error,
        };
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        return Ok(path);
    }
    Err(ApplyError::Io {
        action: "creating es.xml backup",
        path: es_xml.to_path_buf(),
        error: std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "100 backups already exist for this second",
        ),
    })
}

/// Replaces `path` with `text` atomically, keeping the mode of an existing file.
///
/// An es.xml that is a symbolic link (`es.xml -> rack-2026-11.xml`, a common way to keep
/// OEDA's versions side by side) is written through: the file it points to is replaced, in
/// its own directory, and the link stays. Replacing the link itself would leave OEDA's file
/// with the old placement while berth's path shows the new one.
fn write_atomically(path: &Path, text: &str) -> Result<(), ApplyError> {
    let io = |action, error| ApplyError::Io {
        action,
        path: path.to_path_buf(),
        error,
    };
    let resolved;
    let path = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(path).map_err(|e| io("following the link", e))?;
            resolved.as_path()
        }
        _ => path,
    };
    let mode = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(_) => PRIVATE_MODE,
    };
    crate::atomic_file::write(path, text.as_bytes(), mode).map_err(|e| io(e.action, e.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_the_state_never_recorded_is_found_by_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let es = dir.path().join("es.xml");
        std::fs::write(&es, "after").unwrap();
        std::fs::write(
            dir.path().join("es.xml.berth-backup-20261203T000000Z"),
            "other",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("es.xml.berth-backup-20261203T000001Z"),
            "before",
        )
        .unwrap();
        std::fs::write(dir.path().join("unrelated"), "before").unwrap();
        let sha = sha256_hex(b"before");
        assert_eq!(
            backup_with_sha(&es, &sha).unwrap().as_deref(),
            Some("before")
        );
        assert_eq!(backup_with_sha(&es, &sha256_hex(b"none")).unwrap(), None);
    }

    #[test]
    fn an_es_xml_that_is_a_link_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let versions = dir.path().join("versions");
        std::fs::create_dir(&versions).unwrap();
        let real = versions.join("rack-2026-11.xml");
        std::fs::write(&real, "before").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("es.xml");
        std::os::unix::fs::symlink("versions/rack-2026-11.xml", &link).unwrap();

        let written = write_es_xml(&link, None, "before", "after").unwrap();

        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "after");
        assert_eq!(
            std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let backup = written.backup.expect("an in-place write keeps a backup");
        assert_eq!(std::fs::read_to_string(backup).unwrap(), "before");
    }
}
