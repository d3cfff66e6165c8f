//! The saved plan file (`berth plan -out FILE`, `berth apply FILE`): the plan's JSON form.
//!
//! Saving is atomic (a temp file in the same directory, fsynced, then renamed over the target),
//! so a crash never leaves a half-written plan that apply could pick up. The file is created
//! with mode 0600 from the start: a plan names every guest and host of the rack.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::plan::{FORMAT_VERSION, Plan};

/// Mode of a saved plan file: readable and writable by its owner only.
pub const PLAN_FILE_MODE: u32 = 0o600;

/// Why a plan file could not be saved or loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan file {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },

    #[error("cannot write plan file {path}: {source}")]
    Unwritable { path: PathBuf, source: io::Error },

    #[error("{path} is not a berth plan: {reason}")]
    NotAPlan { path: PathBuf, reason: String },

    #[error(
        "{path} is a berth plan of format version {found}, newer than this berth ({berth}) \
         supports (up to {supported}); use a newer berth or make the plan again"
    )]
    TooNew {
        path: PathBuf,
        found: u64,
        supported: u32,
        berth: &'static str,
    },

    #[error("{path}: invalid plan at `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Writes `plan` as pretty JSON to `path`, atomically and with mode 0600.
///
/// An existing file at `path` is replaced whole; on any error it is left untouched and no
/// temp file remains.
pub fn save(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    let unwritable = |source: io::Error| PlanFileError::Unwritable {
        path: path.to_path_buf(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(plan).map_err(|e| unwritable(io::Error::other(e)))?;
    json.push(b'\n');

    crate::atomic_file::write(path, &json, PLAN_FILE_MODE).map_err(|e| unwritable(e.source))
}

/// Reads a plan saved by [`save`], telling apart a file that cannot be read, one that is not a
/// berth plan, a plan from a newer berth, and a plan with an invalid field.
pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
    let bytes = fs::read(path).map_err(|source| PlanFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let not_a_plan = |reason: String| PlanFileError::NotAPlan {
        path: path.to_path_buf(),
        reason,
    };

    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        not_a_plan(format!(
            "not JSON (line {}, column {}: {e})",
            e.line(),
            e.column()
        ))
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| not_a_plan("the JSON is not an object".to_string()))?;
    let version = match object.get("format_version") {
        None => return Err(not_a_plan("it has no `format_version`".to_string())),
        Some(v) => v.as_u64().ok_or_else(|| {
            not_a_plan(format!("`format_version` is {v}, not a positive integer"))
        })?,
    };
    if version == 0 {
        return Err(not_a_plan("`format_version` is 0".to_string()));
    }
    if version > u64::from(FORMAT_VERSION) {
        return Err(PlanFileError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
            berth: env!("CARGO_PKG_VERSION"),
        });
    }
    if !object.contains_key("berth_version") {
        return Err(not_a_plan("it has no `berth_version`".to_string()));
    }

    serde_path_to_error::deserialize(value).map_err(|e| PlanFileError::Invalid {
        path: path.to_path_buf(),
        field: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// The directory a file path lives in; `.` for a bare file name.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::sample_plan;
    use std::fs::Permissions;
    use std::os::unix::fs::PermissionsExt;

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn saved_plan_loads_back_equal_with_mode_0600_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drain.plan");
        let plan = sample_plan();
        save(&plan, &path).unwrap();

        assert_eq!(load(&path).unwrap(), plan);
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(dir_entries(dir.path()), vec!["drain.plan".to_string()]);
    }

    #[test]
    fn save_replaces_an_existing_world_readable_file_with_a_0600_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        fs::write(&path, "old contents").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();

        let mut plan = sample_plan();
        plan.moves.truncate(1);
        save(&plan, &path).unwrap();

        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(load(&path).unwrap(), plan);
        assert_eq!(dir_entries(dir.path()), vec!["plan.json".to_string()]);
    }

    #[test]
    fn save_into_a_missing_directory_names_the_path_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("plan.json");
        let err = save(&sample_plan(), &path).unwrap_err();
        assert!(matches!(err, PlanFileError::Unwritable { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-dir/plan.json"), "{err}");
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[test]
    fn save_to_a_directory_path_fails_without_leaving_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        let err = save(&sample_plan(), &target).unwrap_err();
        assert!(matches!(err, PlanFileError::Unwritable { .. }), "{err:?}");
        assert_eq!(dir_entries(dir.path()), vec!["taken".to_string()]);
    }

    fn load_text(text: &str) -> (PlanFileError, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.plan");
        fs::write(&path, text).unwrap();
        let err = load(&path).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("bad.plan"),
            "message does not name the file: {message}"
        );
        (err, message)
    }

    #[test]
    fn missing_file_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&dir.path().join("absent.plan")).unwrap_err();
        assert!(matches!(err, PlanFileError::Unreadable { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.plan"), "{err}");
    }

    #[test]
    fn non_json_is_not_a_plan() {
        let (err, message) = load_text("terraform plan output\n");
        assert!(matches!(err, PlanFileError::NotAPlan { .. }), "{err:?}");
        assert!(
            message.contains("not a berth plan") && message.contains("not JSON"),
            "{message}"
        );
    }

    #[test]
    fn other_json_is_not_a_plan() {
        let (err, message) = load_text(r#"{"resource_changes": []}"#);
        assert!(matches!(err, PlanFileError::NotAPlan { .. }), "{err:?}");
        assert!(message.contains("format_version"), "{message}");

        let (err, _) = load_text("[1, 2, 3]");
        assert!(matches!(err, PlanFileError::NotAPlan { .. }), "{err:?}");

        let (err, message) = load_text(r#"{"format_version": "one"}"#);
        assert!(matches!(err, PlanFileError::NotAPlan { .. }), "{err:?}");
        assert!(message.contains("\"one\""), "{message}");
    }

    #[test]
    fn newer_format_version_is_refused_with_both_versions() {
        let mut value = serde_json::to_value(sample_plan()).unwrap();
        let newer = u64::from(FORMAT_VERSION) + 1;
        value["format_version"] = newer.into();
        let (err, message) = load_text(&value.to_string());
        match err {
            PlanFileError::TooNew {
                found, supported, ..
            } => {
                assert_eq!(found, newer);
                assert_eq!(supported, FORMAT_VERSION);
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
        assert!(
            message.contains(&format!("format version {newer}")),
            "{message}"
        );
    }

    #[test]
    fn invalid_field_is_reported_with_its_json_path() {
        let mut value = serde_json::to_value(sample_plan()).unwrap();
        value["steps"][2]["kind"] = "TELEPORT_GUEST".into();
        let (err, message) = load_text(&value.to_string());
        match &err {
            PlanFileError::Invalid { field, message, .. } => {
                assert_eq!(field, "steps[2].kind");
                assert!(message.contains("TELEPORT_GUEST"), "{message}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(message.contains("steps[2].kind"), "{message}");
    }
}
