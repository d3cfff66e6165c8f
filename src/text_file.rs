//! Reading a text file (es.xml, `*.hcl`) that must be UTF-8. `std::fs::read_to_string` says
//! only "stream did not contain valid UTF-8"; an es.xml saved as Latin-1 with one accented
//! letter in a comment deserves the line and column of that letter.
//!
//! A leaf module: `config` and `inventory` read their files through it.
//!
//! es.xml, which may be gigabytes, is read with [`read_text`]: a regular file of
//! [`MAP_FROM_BYTES`] or more is mapped rather than copied (see [`mapped`] for why and how it is
//! kept safe); a smaller file or a FIFO is read into memory.

use std::io;
use std::path::Path;
use std::sync::Arc;

mod mapped;

/// The content of `path` as UTF-8 text; when it is not UTF-8, an `InvalidData` error naming
/// the line and column (in characters) of the first byte that is not, and the byte.
///
/// A device (`/dev/zero` would be read until memory runs out), a socket or a directory is
/// refused before reading. A FIFO is read: `es_xml = "/dev/fd/63"` from a shell's process
/// substitution is one.
pub fn read(path: &Path) -> io::Result<String> {
    if !readable_kind(&std::fs::metadata(path)?.file_type()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a device, socket or directory, not a file to read",
        ));
    }
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|e| not_utf8(e.as_bytes(), e.utf8_error()))
}

/// The error for `bytes` that are not UTF-8 from `error.valid_up_to()` on: line, column and
/// byte.
fn not_utf8(bytes: &[u8], error: std::str::Utf8Error) -> io::Error {
    let valid = &bytes[..error.valid_up_to()];
    // The prefix is valid UTF-8 by construction.
    let before = std::str::from_utf8(valid).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "not UTF-8: line {}, column {} (byte 0x{:02x}); save it as UTF-8",
            before.matches('\n').count() + 1,
            before[line_start..].chars().count() + 1,
            bytes[valid.len()]
        ),
    )
}

/// The text of a file as [`read_text`] gives it: a large regular file mapped, anything else (a
/// smaller file, a FIFO, text made in memory) owned. Reads as a `&str` (`Deref`); cloning a mapped text shares the
/// mapping.
#[derive(Clone)]
pub struct FileText(Repr);

#[derive(Clone)]
enum Repr {
    Owned(String),
    Mapped(Arc<mapped::Mapped>),
}

impl FileText {
    /// Whether the file is still the one that was read (always, for owned text). A mapped
    /// file changed in place since it was opened is an error: call this after parsing and
    /// hashing the text, so that both are known to describe the same bytes.
    pub fn unchanged(&self) -> io::Result<()> {
        match &self.0 {
            Repr::Owned(_) => Ok(()),
            Repr::Mapped(m) => m.unchanged(),
        }
    }

    /// Whether the text is a map of its file rather than a copy.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped(_))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Owned(s) => s,
            Repr::Mapped(m) => m.as_str(),
        }
    }
}

impl std::ops::Deref for FileText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for FileText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for FileText {
    fn from(s: String) -> FileText {
        FileText(Repr::Owned(s))
    }
}

impl From<&str> for FileText {
    fn from(s: &str) -> FileText {
        FileText(Repr::Owned(s.to_string()))
    }
}

impl PartialEq for FileText {
    fn eq(&self, other: &FileText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for FileText {}

impl PartialEq<str> for FileText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FileText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for FileText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<FileText> for String {
    fn eq(&self, other: &FileText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for FileText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for FileText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// From this size on, [`read_text`] maps a regular file instead of copying it: the es.xml of a
/// fleet of about 3,000 hosts. A real rack's es.xml (a few hundred KiB) is copied, and so
/// never exposed to the one hazard of a mapping that no check can refuse (a writer truncating
/// the file in place kills the reader with `SIGBUS`, docs/security.md); at fleet sizes the
/// copy's fresh memory costs seconds (docs/benchmarks.md), and mapping is worth it.
pub const MAP_FROM_BYTES: u64 = 64 << 20;

/// [`read`] for a file that may be large (es.xml): a regular file of [`MAP_FROM_BYTES`] or
/// more is mapped instead of copied, with the same checks (UTF-8, with the place of the first
/// bad byte; no devices, sockets or directories). A smaller file or a FIFO is read. Call
/// [`FileText::unchanged`] once the text has been used, to refuse a file changed meanwhile.
pub fn read_text(path: &Path) -> io::Result<FileText> {
    read_text_mapping_from(path, MAP_FROM_BYTES)
}

/// [`read_text`] with the size from which a file is mapped (tests map small files).
fn read_text_mapping_from(path: &Path, map_from: u64) -> io::Result<FileText> {
    if !readable_kind(&std::fs::metadata(path)?.file_type()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a device, socket or directory, not a file to read",
        ));
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !(meta.is_file() && meta.len() > 0 && meta.len() >= map_from) {
        // The kind is taken again from the open file: the path may name another by now.
        if !readable_kind(&meta.file_type()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a device, socket or directory, not a file to read",
            ));
        }
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut &file, &mut bytes)?;
        return String::from_utf8(bytes)
            .map(FileText::from)
            .map_err(|e| not_utf8(e.as_bytes(), e.utf8_error()));
    }
    let mapped = mapped::Mapped::open(file, &meta, not_utf8)?;
    Ok(FileText(Repr::Mapped(Arc::new(mapped))))
}

/// A regular file or a FIFO: what berth reads its inputs from.
pub fn readable_kind(kind: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    kind.is_file() || kind.is_fifo()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_that_is_not_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "a\nbé\n".as_bytes()).unwrap();
        assert_eq!(read(&path).unwrap(), "a\nbé\n");
        std::fs::write(&path, b"a\n\xc3\xa9b\xff\n").unwrap();
        let err = read(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "not UTF-8: line 2, column 3 (byte 0xff); save it as UTF-8"
        );
        assert_eq!(
            read(&dir.path().join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        for not_a_file in [Path::new("/dev/null"), dir.path()] {
            let err = read(not_a_file).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("not a file to read"), "{err}");
        }
    }

    #[test]
    fn read_text_maps_a_regular_file_with_the_checks_of_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "a\nbé\n".as_bytes()).unwrap();
        assert!(
            !read_text(&path).unwrap().is_mapped(),
            "a small file is copied"
        );
        let text = read_text_mapping_from(&path, 1).unwrap();
        assert!(text.is_mapped());
        assert_eq!(text, "a\nbé\n");
        text.unchanged().unwrap();
        std::fs::write(&path, b"a\n\xc3\xa9b\xff\n").unwrap();
        let err = read_text_mapping_from(&path, 1).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "not UTF-8: line 2, column 3 (byte 0xff); save it as UTF-8"
        );
        for not_a_file in [Path::new("/dev/null"), dir.path()] {
            let err = read_text(not_a_file).err().unwrap();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        std::fs::write(&path, "").unwrap();
        let empty = read_text_mapping_from(&path, 0).unwrap();
        assert!(!empty.is_mapped());
        assert_eq!(empty, "");
    }

    #[test]
    fn read_text_reads_a_fifo_into_memory() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, "<engineeredSystem/>").unwrap())
        };
        let text = read_text(&fifo).unwrap();
        writer.join().unwrap();
        assert!(!text.is_mapped());
        assert_eq!(text, "<engineeredSystem/>");
        text.unchanged().unwrap();
    }
}
