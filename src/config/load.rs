//! Reading a configuration directory: every `*.hcl` file, parsed, validated and built into one
//! [`Config`].

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::build::build;
use super::error::ConfigError;
use super::model::{Config, SourceFile};
use super::safety;
use super::syntax::syntax_error;
use super::validate::validate;

/// Loads every `*.hcl` file of `dir` (in file-name order) as one configuration. All problems of
/// the load are reported together; a directory without `.hcl` files is an error naming it.
pub fn load_dir(dir: &Path) -> Result<Config, ConfigError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ConfigError::Io { path, error }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|ext| ext == "hcl") && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(ConfigError::NoFiles {
            dir: dir.to_path_buf(),
        });
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        let text = crate::text_file::read(path).map_err(io(path))?;
        files.push(SourceFile::new(display_name(path), text));
    }
    let absolute = dir.canonicalize().map_err(io(dir))?;
    load_files(files, absolute)
}

/// Loads one configuration text named `name`, with relative paths resolved against `dir`.
pub fn parse_str(name: &str, text: &str, dir: &Path) -> Result<Config, ConfigError> {
    let absolute = std::path::absolute(dir).map_err(|error| ConfigError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    load_files(vec![SourceFile::new(name, text)], absolute)
}

fn load_files(files: Vec<SourceFile>, dir: PathBuf) -> Result<Config, ConfigError> {
    let mut bodies = Vec::with_capacity(files.len());
    let mut syntax_errors = Vec::new();
    for (index, file) in files.iter().enumerate() {
        match hcl::edit::parser::parse_body(&file.text) {
            Ok(body) => bodies.push((index, body)),
            Err(error) => syntax_errors.push(syntax_error(&files, index, &error)),
        }
    }
    // A file that does not parse may hold blocks the others rely on: stop before validation.
    ConfigError::check(syntax_errors)?;
    let root = validate(&files, &bodies)?;
    safety::check(&files, &root, &dir)?;
    build(&root, files, dir)
}

/// The path as the user would type it: `./main.hcl` is shown as `main.hcl`.
fn display_name(path: &Path) -> String {
    let path = path.strip_prefix(".").unwrap_or(path);
    path.display().to_string()
}

impl Config {
    /// SHA-256 (hex) over the configuration's file names and contents, in name order, for plan
    /// fingerprints. Only the file name counts, not the directory, so the same files give the
    /// same fingerprint from wherever they are loaded. Command-line intents
    /// ([`super::COMMAND_LINE`]) are not files and do not count.
    pub fn sha256(&self) -> String {
        let mut files: Vec<(&str, &str)> = self
            .files
            .iter()
            .filter(|file| file.name != super::COMMAND_LINE)
            .map(|file| {
                let name = Path::new(&file.name)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(&file.name);
                (name, file.text.as_str())
            })
            .collect();
        files.sort_unstable();
        let mut hasher = Sha256::new();
        for (name, text) in files {
            // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
            for part in [name, text] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        hex::encode(hasher.finalize())
    }
}
