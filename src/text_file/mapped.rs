//! A regular file mapped read-only, as UTF-8 text, without copying it into fresh memory.
//!
//! Why: a 2 GB es.xml read into a `String` costs 2 GB of memory the process has never touched,
//! and on a VM the kernel (and the hypervisor behind it) charges seconds of system time for
//! every such gigabyte (docs/benchmarks.md, "100,000 hosts, third pass"). The pages of a
//! mapped file are the page cache's own: already backed, nothing to zero.
//!
//! The two hazards of a shared mapping, and what is done about them:
//! - **The file is changed in place while mapped.** The bytes under the `&str` could then stop
//!   being the bytes that were checked as UTF-8, parsed and hashed. The file's identity
//!   ([`Identity`]: device, inode, size, modification and change times) is taken from the open
//!   file before mapping and compared again by [`Mapped::unchanged`] once the text has been
//!   parsed and hashed; a difference is refused ("changed while it was read"). Replacing the
//!   file by renaming another over it (as berth, editors and OEDA's tools write) is harmless
//!   to the mapping, which keeps the old file's bytes as a copy would; it is refused all the
//!   same when it happens before the check (unlinking the old file moves its change time),
//!   so the plan is made from the file as it is now.
//! - **The file is truncated while mapped.** Reading a page past the new end raises `SIGBUS`
//!   and the process dies: a known limit, documented in docs/security.md (ripgrep has the
//!   same). It needs a writer truncating es.xml in place while berth reads it, which the
//!   identity check would refuse anyway had the process survived.
//!
//! `unsafe` is confined to this module: [`map_read_only`] (the mapping itself) and
//! [`Mapped::as_str`] (the UTF-8 view of bytes checked once, in [`Mapped::open`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;

/// What says that a file is still the one that was read: compared before and after use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Modification time, seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Status change time, seconds and nanoseconds (moves with any write, and cannot be set).
    pub ctime: (i64, i64),
}

impl Identity {
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// `Ok` when `now` is this identity; else the error every reader of a mapped file reports.
    pub fn still(&self, now: &Identity) -> io::Result<()> {
        if self == now {
            Ok(())
        } else {
            Err(io::Error::other(
                "the file changed while it was read (its size, modification time or inode is \
                 not what it was when reading began); nothing was used from it: run again once \
                 it is written",
            ))
        }
    }
}

/// An open regular file, mapped read-only, whose bytes were checked to be UTF-8.
pub struct Mapped {
    map: memmap2::Mmap,
    /// Kept open for [`Mapped::unchanged`] (`fstat` of this file, not of whatever the path
    /// names by then).
    file: File,
    identity: Identity,
}

impl Mapped {
    /// Maps `file` (a regular file whose metadata is `meta`, read from the open file) and
    /// checks that its bytes are UTF-8; `not_utf8` makes the error for bytes that are not.
    pub fn open(
        file: File,
        meta: &std::fs::Metadata,
        not_utf8: impl FnOnce(&[u8], std::str::Utf8Error) -> io::Error,
    ) -> io::Result<Mapped> {
        let identity = Identity::of(meta);
        let map = map_read_only(&file)?;
        std::str::from_utf8(&map).map_err(|e| not_utf8(&map, e))?;
        let mapped = Mapped {
            map,
            file,
            identity,
        };
        // A writer between `fstat` and the check above would leave checked bytes that are not
        // the file's: refused here already, not only after the parse.
        mapped.unchanged()?;
        Ok(mapped)
    }

    /// The text. Checked as UTF-8 in [`Mapped::open`]; [`Mapped::unchanged`] says whether the
    /// file still holds those bytes.
    pub fn as_str(&self) -> &str {
        // SAFETY: `open` is the only constructor and returned only after `from_utf8` accepted
        // these very bytes; the map is read-only, so berth never writes them. A
        // process changing the file in place breaks this (see the module documentation); that
        // is detected by `unchanged` and refused by every reader of es.xml.
        unsafe { std::str::from_utf8_unchecked(&self.map) }
    }

    /// `Ok` when the open file is still what was mapped (see [`Identity`]).
    pub fn unchanged(&self) -> io::Result<()> {
        self.identity.still(&Identity::of(&self.file.metadata()?))
    }
}

/// `file` mapped read-only and private.
///
/// The one place a file is mapped. `memmap2` marks mapping `unsafe` because another process
/// may change or truncate the file while it is mapped; the module documentation says how
/// berth guards against the first and what the second does.
fn map_read_only(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: see above: the caller keeps the identity taken before mapping and refuses the
    // text when the file changed; truncation is a documented limit (docs/security.md).
    unsafe { memmap2::MmapOptions::new().map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn open(path: &std::path::Path) -> io::Result<Mapped> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Mapped::open(file, &meta, |_, e| io::Error::other(e.to_string()))
    }

    #[test]
    fn a_file_changed_in_place_while_mapped_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("es.xml");
        std::fs::write(&path, "<engineeredSystem/>\n").unwrap();
        let mapped = open(&path).unwrap();
        assert_eq!(mapped.as_str(), "<engineeredSystem/>\n");
        mapped.unchanged().unwrap();
        // Another writer appends in place (no truncation: the mapped bytes stay readable).
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writer.write_all(b"<!-- more -->\n").unwrap();
        drop(writer);
        let err = mapped.unchanged().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the file changed while it was read"),
            "{err}"
        );
    }

    #[test]
    fn a_file_replaced_by_rename_keeps_the_mapped_bytes_and_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("es.xml");
        std::fs::write(&path, "old\n").unwrap();
        let mapped = open(&path).unwrap();
        let new = dir.path().join("es.xml.new");
        std::fs::write(&new, "new and longer\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_eq!(mapped.as_str(), "old\n");
        assert!(mapped.unchanged().is_err());
    }

    #[test]
    fn each_part_of_the_identity_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x").unwrap();
        let before = Identity::of(&std::fs::metadata(&path).unwrap());
        before.still(&before).unwrap();
        let changes: [fn(&mut Identity); 5] = [
            |i| i.dev += 1,
            |i| i.ino += 1,
            |i| i.size += 1,
            |i| i.mtime.1 += 1,
            |i| i.ctime.0 += 1,
        ];
        for change in changes {
            let mut after = before;
            change(&mut after);
            assert!(before.still(&after).is_err(), "{after:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_not_mapped_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"ab\xff").unwrap();
        let err = open(&path).err().unwrap();
        assert!(err.to_string().contains("invalid utf-8"), "{err}");
    }
}
