//! Replacing a file atomically: the one way berth writes the state, saved plans and es.xml.
//!
//! The bytes go to a temp file in the same directory (so the rename cannot cross filesystems),
//! created with its final mode from the start (`O_EXCL`, never readable by others, not even for
//! an instant), fsynced, renamed over the target, and the directory is fsynced so the rename is
//! durable. A crash leaves the old file or the new one, never half of one; on any error the
//! target is untouched and no temp file remains.

use std::ffi::OsString;
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Which part of the write failed (`"creating a temporary file for"`, `"writing"`, …: it reads
/// before the path), and the OS error. Callers wrap it in their layer's error with the path.
#[derive(Debug)]
pub struct AtomicWriteError {
    pub action: &'static str,
    pub source: io::Error,
}

/// Replaces `path` with `bytes`, atomically, with file mode `mode` (e.g. `0o600`).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    let fail = |action| move |source| AtomicWriteError { action, source };
    let dir = parent_dir(path);
    let file_name = path.file_name().ok_or_else(|| AtomicWriteError {
        action: "naming",
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
    })?;
    // Renaming over a device node, FIFO or socket would replace it with a regular file: for
    // root, `-out /dev/null` would leave the system without /dev/null. A symbolic link is
    // replaced as a link; the file it points to is never written.
    if let Ok(existing) = std::fs::symlink_metadata(path) {
        let kind = existing.file_type();
        if !kind.is_file() && !kind.is_symlink() {
            return Err(AtomicWriteError {
                action: "replacing",
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is not a regular file (a directory, device, FIFO or socket), which berth does not replace",
                ),
            });
        }
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(file_name))
        .suffix(TEMP_SUFFIX)
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(fail("creating a temporary file for"))?;
    tmp.write_all(bytes).map_err(fail("writing"))?;
    tmp.as_file().sync_all().map_err(fail("syncing"))?;
    tmp.persist(path).map_err(|e| fail("replacing")(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("syncing the directory of"))
}

/// A temp file is named `.<file name>.<random>.tmp`.
fn temp_prefix(file_name: &std::ffi::OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    prefix
}

const TEMP_SUFFIX: &str = ".tmp";

/// Removes the temp files a killed [`write`] of `path` left beside it (a process killed
/// between creating its temp file and renaming it cannot remove it; the target itself is
/// intact). Only regular files named as [`write`] names them are removed; returns their paths.
///
/// Call it only where no other process can be writing `path` at the same time — for the
/// state file, while holding its lock — or a write in progress would lose its temp file and
/// fail (it would not corrupt anything: the target is replaced only by a complete rename).
pub fn remove_leftovers(path: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let Some(file_name) = path.file_name() else {
        return Ok(Vec::new());
    };
    let prefix = temp_prefix(file_name);
    let prefix = prefix.as_encoded_bytes();
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(parent_dir(path))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        // `.<file name>.` + tempfile's random part (never empty) + `.tmp`.
        let ours = name.len() > prefix.len() + TEMP_SUFFIX.len()
            && name.starts_with(prefix)
            && name.ends_with(TEMP_SUFFIX.as_bytes())
            && !name[prefix.len()..name.len() - TEMP_SUFFIX.len()].contains(&b'.');
        if ours && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    removed.sort();
    Ok(removed)
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "old").unwrap();
        write(&path, b"new", 0o640).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("state.json")]);
    }

    #[test]
    fn leftovers_of_killed_writes_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "intact").unwrap();
        // What `write` names its temp files, as a killed write leaves them.
        let mut tmp = tempfile::Builder::new()
            .prefix(&temp_prefix(path.file_name().unwrap()))
            .suffix(TEMP_SUFFIX)
            .tempfile_in(dir.path())
            .unwrap();
        tmp.write_all(b"half").unwrap();
        let (_, left) = tmp.keep().unwrap();
        let kept = [
            ".state.json.tmp",             // no random part
            ".state.json.a.b.tmp",         // another file's: `.state.json.a` written by berth
            ".other.json.AbC123.tmp",      // another file's
            "state.json.AbC123.tmp",       // not hidden: not berth's
            ".state.json.AbC123.tmp.keep", // another suffix
        ];
        for name in kept {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join(".state.json.D1r000.tmp")).unwrap();
        assert_eq!(
            remove_leftovers(&path).unwrap(),
            std::slice::from_ref(&left)
        );
        assert!(!left.exists());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "intact");
        for name in kept {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        assert!(dir.path().join(".state.json.D1r000.tmp").is_dir());
        assert_eq!(
            remove_leftovers(&path).unwrap(),
            Vec::<std::path::PathBuf>::new()
        );
    }

    #[test]
    fn a_failed_write_says_which_part_failed() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(&dir.path().join("missing/state.json"), b"x", 0o600).unwrap_err();
        assert_eq!(err.action, "creating a temporary file for");
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
        let err = write(Path::new("/"), b"x", 0o600).unwrap_err();
        assert_eq!(err.action, "naming");
    }

    #[test]
    fn only_files_and_links_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
        for path in [sub.clone(), dir.path().join("sock")] {
            let err = write(&path, b"x", 0o600).unwrap_err();
            assert_eq!(err.action, "replacing");
            assert!(err.source.to_string().contains("not a regular file"));
        }
        assert!(sub.is_dir());
        drop(socket);
        let target = dir.path().join("target");
        std::fs::write(&target, "kept").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write(&link, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
    }
}
