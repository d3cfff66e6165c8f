//! Reading a text file (es.xml, `*.hcl`) that must be UTF-8. `std::fs::read_to_string` says
//! only "stream did not contain valid UTF-8"; an es.xml saved as Latin-1 with one accented
//! letter in a comment deserves the line and column of that letter.
//!
//! A leaf module: `config` and `inventory` read their files through it.

use std::io;
use std::path::Path;

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
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = &bytes[..e.utf8_error().valid_up_to()];
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
    })
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
}
