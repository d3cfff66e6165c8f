//! `berth fmt`: every `*.hcl` of the working directory in the canonical layout.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::fmt::format_hcl;
use crate::plan::unified_diff;

use super::args::FmtArgs;
use super::commands::print;
use super::error::CliError;
use super::exit;

pub fn fmt(args: &FmtArgs) -> Result<u8, CliError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(".")
        .map_err(|e| CliError::Refused(format!("cannot list the configuration directory: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hcl") && p.is_file())
        .collect();
    files.sort();
    let mut unformatted = 0;
    let mut failed = 0;
    for path in &files {
        let name = path.strip_prefix(".").unwrap_or(path).display().to_string();
        let text = crate::text_file::read(path)
            .map_err(|e| CliError::Refused(format!("cannot read {name}: {e}")))?;
        let formatted = match format_hcl(&text) {
            Ok(f) => f,
            Err(why) => {
                eprintln!("{name}: {why}");
                failed += 1;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        unformatted += 1;
        print(&format!("{name}\n"))?;
        if args.diff {
            print(&unified_diff(&name, &text, &formatted))?;
        }
        if !args.check {
            write(path, &formatted)?;
        }
    }
    Ok(if failed > 0 || (args.check && unformatted > 0) {
        exit::ERROR
    } else {
        exit::OK
    })
}

/// Replaces `path` atomically, keeping its mode.
fn write(path: &Path, text: &str) -> Result<(), CliError> {
    let fail =
        |e: std::io::Error| CliError::Refused(format!("cannot write {}: {e}", path.display()));
    let permissions = std::fs::metadata(path).map_err(fail)?.permissions();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".berth-fmt-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().set_permissions(permissions).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}
