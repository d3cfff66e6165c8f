//! The saved plan file (`berth plan -out FILE`, `berth apply FILE`): the plan's JSON form,
//! sealed.
//!
//! Saving is atomic (a temp file in the same directory, fsynced, then renamed over the target),
//! so a crash never leaves a half-written plan that apply could pick up. The file is created
//! with mode 0600 from the start: a plan names every guest and host of the rack.
//!
//! **The seal.** A saved plan is the record of what was reviewed, so the file carries a
//! `seal`: the sha256 of the plan's canonical JSON (every member but `seal`, object keys in
//! sorted order, no whitespace), and, when [`PLAN_KEY_ENV`] is set, an HMAC-SHA-256 of the
//! same bytes under that key. [`load`] refuses a file whose content does not match its sha256
//! (an edited byte, a flipped bit), before anything else reads it; [`load_for_apply`] also
//! checks the signature: a signed plan needs the key and a matching HMAC, and with the key set
//! an unsigned plan is refused (a pipeline that signs accepts only what it signed).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::plan::{FORMAT_VERSION, Plan};

/// Mode of a saved plan file: readable and writable by its owner only.
pub const PLAN_FILE_MODE: u32 = 0o600;

/// The environment variable holding the key plans are signed and verified with.
pub const PLAN_KEY_ENV: &str = "BERTH_PLAN_KEY";

/// The member of the plan file's JSON object that holds the seal.
const SEAL: &str = "seal";

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

    #[error(
        "{path} has no valid seal ({reason}): a plan saved by `berth plan -out` carries the \
         sha256 of its content; make the plan again with `berth plan -out {path}`"
    )]
    Unsealed { path: PathBuf, reason: String },

    #[error(
        "{path} is corrupted or was edited after it was saved: its content has sha256 \
         {found}, its seal says {sealed}. Nothing was done; make the plan again with \
         `berth plan -out {path}`"
    )]
    Corrupted {
        path: PathBuf,
        sealed: String,
        found: String,
    },

    #[error(
        "{path}: the signature does not match (seal.hmac_sha256 under the key in {PLAN_KEY_ENV}): \
         the plan was changed, or signed with another key. Nothing was done"
    )]
    BadSignature { path: PathBuf },

    #[error(
        "{path} is signed, and {PLAN_KEY_ENV} is not set: set it to the key the plan was signed \
         with, so that the signature can be checked"
    )]
    NoKey { path: PathBuf },

    #[error(
        "{path} is not signed, and {PLAN_KEY_ENV} is set: with a key, only plans signed with it \
         are applied. Make the plan with `berth plan -out` and {PLAN_KEY_ENV} set"
    )]
    Unsigned { path: PathBuf },

    #[error("{PLAN_KEY_ENV} is set but empty: set it to the signing key, or unset it")]
    EmptyKey,
}

/// The seal of a saved plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// sha256 (hex) of the canonical JSON of every other member.
    pub sha256: String,
    /// HMAC-SHA-256 (hex) of the same bytes under the key in [`PLAN_KEY_ENV`], when it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_sha256: Option<String>,
}

/// The plan file as written: the plan's members, then the seal.
#[derive(Serialize)]
struct Sealed<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    seal: &'a Seal,
}

/// The signing key from [`PLAN_KEY_ENV`]: `None` when it is not set; an error when it is set
/// but empty (a pipeline whose secret went missing must not silently stop signing).
pub fn key_from_env() -> Result<Option<Vec<u8>>, PlanFileError> {
    use std::os::unix::ffi::OsStrExt;
    match std::env::var_os(PLAN_KEY_ENV) {
        None => Ok(None),
        Some(v) if v.is_empty() => Err(PlanFileError::EmptyKey),
        Some(v) => Ok(Some(v.as_bytes().to_vec())),
    }
}

/// The canonical bytes of a plan file's JSON: every member but the seal, keys sorted (serde_json's
/// map is ordered by key), no whitespace.
fn canonical(value: &Value) -> Vec<u8> {
    let mut value = value.clone();
    if let Value::Object(map) = &mut value {
        map.remove(SEAL);
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

fn hmac_hex(key: &[u8], bytes: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key");
    mac.update(bytes);
    hex::encode(mac.finalize().into_bytes())
}

/// The seal of `value` (a plan's JSON), signed when `key` is given.
fn seal_of(value: &Value, key: Option<&[u8]>) -> Seal {
    let bytes = canonical(value);
    Seal {
        sha256: hex::encode(Sha256::digest(&bytes)),
        hmac_sha256: key.map(|k| hmac_hex(k, &bytes)),
    }
}

/// The sealed JSON text of `plan` (pretty, with a final newline), signed when `key` is given.
pub fn sealed_json(plan: &Plan, key: Option<&[u8]>) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(plan)?;
    let seal = seal_of(&value, key);
    let mut json = serde_json::to_vec_pretty(&Sealed { plan, seal: &seal })?;
    json.push(b'\n');
    Ok(json)
}

/// `bytes` (a plan file's JSON, possibly edited) with its `seal` made to match what it now
/// holds, signed when `key` is given; `None` when the bytes are not a JSON object. Any `seal`
/// they had is replaced.
///
/// For tooling and fuzzing: the fuzz target `plan_resealed` (tests/fuzzing/) reseals mutated
/// plans, so that they get past the seal check to the parser and to apply's comparison. It
/// does not weaken apply: the seal only says the file was not corrupted or edited since it was
/// sealed. `berth apply FILE` still plans again from the current inputs and the intents the
/// file records, and refuses a plan whose moves, steps, errors or fingerprints are not what it
/// plans now (`apply::freshness`); with [`PLAN_KEY_ENV`] set, it also needs that key's HMAC,
/// which only the key's holder can make.
pub fn reseal(bytes: &[u8], key: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(bytes).ok()?;
    value.as_object_mut()?.remove(SEAL);
    let seal = serde_json::to_value(seal_of(&value, key)).ok()?;
    value.as_object_mut()?.insert(SEAL.to_string(), seal);
    let mut json = serde_json::to_vec_pretty(&value).ok()?;
    json.push(b'\n');
    Some(json)
}

/// Writes `plan` as sealed pretty JSON to `path`, atomically and with mode 0600; signed when
/// `key` is given (see [`key_from_env`]).
///
/// An existing file at `path` is replaced whole; on any error it is left untouched and no
/// temp file remains.
pub fn save(plan: &Plan, path: &Path, key: Option<&[u8]>) -> Result<(), PlanFileError> {
    let unwritable = |source: io::Error| PlanFileError::Unwritable {
        path: path.to_path_buf(),
        source,
    };
    let json = sealed_json(plan, key).map_err(|e| unwritable(io::Error::other(e)))?;

    crate::atomic_file::write(path, &json, PLAN_FILE_MODE).map_err(|e| unwritable(e.source))
}

/// Reads a plan saved by [`save`], telling apart a file that cannot be read, one that is not a
/// berth plan, a plan from a newer berth, one whose content does not match its seal, and a plan
/// with an invalid field. The signature, if any, is not checked (see [`load_for_apply`]).
pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
    read_sealed(path).map(|(plan, _, _)| plan)
}

/// [`load`], and the signature policy of `berth apply` with the signing key `key`: a signed
/// plan needs the key and a matching HMAC; with a key, an unsigned plan is refused.
pub fn load_for_apply(path: &Path, key: Option<&[u8]>) -> Result<Plan, PlanFileError> {
    let (plan, seal, bytes) = read_sealed(path)?;
    let path = path.to_path_buf();
    match (&seal.hmac_sha256, key) {
        (None, None) => Ok(plan),
        (None, Some(_)) => Err(PlanFileError::Unsigned { path }),
        (Some(_), None) => Err(PlanFileError::NoKey { path }),
        (Some(signature), Some(key)) => {
            let mut mac =
                <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key");
            mac.update(&bytes);
            let given = hex::decode(signature)
                .map_err(|_| PlanFileError::BadSignature { path: path.clone() })?;
            // Constant-time comparison.
            mac.verify_slice(&given)
                .map_err(|_| PlanFileError::BadSignature { path: path.clone() })?;
            Ok(plan)
        }
    }
}

/// What a plan file whose seal does not hold says, when it still reads as a plan: only to
/// explain a [`PlanFileError::Corrupted`] refusal (which fields differ from a plan made now).
/// Never apply or show what this returns.
pub fn salvage(path: &Path) -> Option<Plan> {
    let mut value: Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    value.as_object_mut()?.remove(SEAL);
    serde_json::from_value(value).ok()
}

/// [`load`] of a plan file's bytes already read (`path` names it in errors): the same checks,
/// for callers that hold the bytes (the fuzzing harness).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Plan, PlanFileError> {
    parse_sealed(path, bytes).map(|(plan, _, _)| plan)
}

/// The plan, its seal and the canonical bytes the seal covers.
/// Largest plan file berth reads. A plan of 10 000 moves is a few tens of MiB; anything
/// larger is not a plan berth wrote, and reading it whole could exhaust memory.
const MAX_PLAN_FILE_BYTES: u64 = 512 * 1024 * 1024;

fn read_sealed(path: &Path) -> Result<(Plan, Seal, Vec<u8>), PlanFileError> {
    let unreadable = |source| PlanFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    // A plan is a regular file: a device (`/dev/zero`), a FIFO or a directory would be read
    // forever, block, or fail obscurely. The size is checked on the open file (no race
    // with a replacement), and the read is bounded in case it grows.
    let file = File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(unreadable(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > MAX_PLAN_FILE_BYTES {
        return Err(unreadable(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_PLAN_FILE_BYTES} bytes: not a berth plan"),
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    io::Read::read_to_end(
        &mut io::Read::take(file, MAX_PLAN_FILE_BYTES + 1),
        &mut bytes,
    )
    .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_PLAN_FILE_BYTES {
        return Err(unreadable(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_PLAN_FILE_BYTES} bytes: not a berth plan"),
        )));
    }
    parse_sealed(path, &bytes)
}

fn parse_sealed(path: &Path, bytes: &[u8]) -> Result<(Plan, Seal, Vec<u8>), PlanFileError> {
    let not_a_plan = |reason: String| PlanFileError::NotAPlan {
        path: path.to_path_buf(),
        reason,
    };

    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| {
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

    // The seal is checked before any field is interpreted: a corrupted plan is refused as
    // corrupted, whatever the corruption made of it.
    let unsealed = |reason: &str| PlanFileError::Unsealed {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let seal: Seal = match value.as_object_mut().and_then(|o| o.remove(SEAL)) {
        None => return Err(unsealed("it has no `seal`")),
        Some(v) => {
            serde_json::from_value(v).map_err(|e| unsealed(&format!("`seal` is malformed: {e}")))?
        }
    };
    let canonical = canonical(&value);
    let found = hex::encode(Sha256::digest(&canonical));
    if !found.eq_ignore_ascii_case(&seal.sha256) {
        return Err(PlanFileError::Corrupted {
            path: path.to_path_buf(),
            sealed: seal.sha256.clone(),
            found,
        });
    }

    let plan = serde_path_to_error::deserialize(value).map_err(|e| PlanFileError::Invalid {
        path: path.to_path_buf(),
        field: e.path().to_string(),
        message: e.into_inner().to_string(),
    })?;
    Ok((plan, seal, canonical))
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
        save(&plan, &path, None).unwrap();

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
        save(&plan, &path, None).unwrap();

        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(load(&path).unwrap(), plan);
        assert_eq!(dir_entries(dir.path()), vec!["plan.json".to_string()]);
    }

    #[test]
    fn save_into_a_missing_directory_names_the_path_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("plan.json");
        let err = save(&sample_plan(), &path, None).unwrap_err();
        assert!(matches!(err, PlanFileError::Unwritable { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-dir/plan.json"), "{err}");
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[test]
    fn save_to_a_directory_path_fails_without_leaving_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        let err = save(&sample_plan(), &target, None).unwrap_err();
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
        // Sealed after the edit: the seal holds, the field does not.
        value["seal"] = serde_json::to_value(seal_of(&value, None)).unwrap();
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

    fn saved_text(key: Option<&[u8]>) -> String {
        String::from_utf8(sealed_json(&sample_plan(), key).unwrap()).unwrap()
    }

    #[test]
    fn an_unsealed_plan_is_refused() {
        let (err, message) = load_text(&serde_json::to_string(&sample_plan()).unwrap());
        assert!(matches!(err, PlanFileError::Unsealed { .. }), "{err:?}");
        assert!(message.contains("no valid seal"), "{message}");
    }

    #[test]
    fn every_edited_byte_of_a_value_is_detected() {
        let text = saved_text(None);
        // A flipped bit in a move's target (the last character of the host name).
        let at = text.find("\"to\": \"").unwrap() + "\"to\": \"".len();
        let end = at + text[at..].find('"').unwrap();
        let mut bytes = text.clone().into_bytes();
        bytes[end - 1] ^= 1;
        let (err, message) = load_text(&String::from_utf8(bytes).unwrap());
        assert!(matches!(err, PlanFileError::Corrupted { .. }), "{err:?}");
        assert!(message.contains("corrupted or was edited"), "{message}");

        // Emptying `errors` by hand, or any other edit of a value, is the same.
        let edited = text.replacen("\"created_at\": \"", "\"created_at\": \"1", 1);
        assert_ne!(edited, text);
        let (err, _) = load_text(&edited);
        assert!(matches!(err, PlanFileError::Corrupted { .. }), "{err:?}");

        // Whitespace is not content: re-indenting keeps the seal valid.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.plan");
        let compact =
            serde_json::to_string(&serde_json::from_str::<Value>(&text).unwrap()).unwrap();
        fs::write(&path, compact).unwrap();
        assert_eq!(load(&path).unwrap(), sample_plan());
    }

    #[test]
    fn signatures_are_checked_by_the_apply_loader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.plan");
        let key = b"pipeline secret".as_slice();

        fs::write(&path, saved_text(Some(key))).unwrap();
        assert_eq!(load_for_apply(&path, Some(key)).unwrap(), sample_plan());
        assert!(matches!(
            load_for_apply(&path, Some(b"another key")),
            Err(PlanFileError::BadSignature { .. })
        ));
        assert!(matches!(
            load_for_apply(&path, None),
            Err(PlanFileError::NoKey { .. })
        ));
        // `load` (show, graph) checks the digest only.
        assert_eq!(load(&path).unwrap(), sample_plan());

        // Re-sealing an edited plan with a fresh sha256 does not forge the signature.
        let mut value: Value = serde_json::from_str(&saved_text(Some(key))).unwrap();
        value["es_xml_path"] = "elsewhere.xml".into();
        let hmac = value["seal"]["hmac_sha256"].clone();
        value["seal"] = serde_json::to_value(seal_of(&value, None)).unwrap();
        value["seal"]["hmac_sha256"] = hmac;
        fs::write(&path, value.to_string()).unwrap();
        assert!(matches!(
            load_for_apply(&path, Some(key)),
            Err(PlanFileError::BadSignature { .. })
        ));

        fs::write(&path, saved_text(None)).unwrap();
        assert_eq!(load_for_apply(&path, None).unwrap(), sample_plan());
        assert!(matches!(
            load_for_apply(&path, Some(key)),
            Err(PlanFileError::Unsigned { .. })
        ));
    }

    #[test]
    fn reseal_makes_an_edited_plan_pass_the_seal_and_only_the_key_signs() {
        let path = Path::new("edited.plan");
        let text = saved_text(None);
        let edited = text.replacen("\"created_at\": \"", "\"created_at\": \"1", 1);
        assert!(matches!(
            parse(path, edited.as_bytes()),
            Err(PlanFileError::Corrupted { .. })
        ));
        let resealed = reseal(edited.as_bytes(), None).unwrap();
        let plan = parse(path, &resealed).unwrap();
        assert_eq!(plan.created_at, format!("1{}", sample_plan().created_at));
        // The seal it had is replaced, whatever it was; what is not a JSON object stays so.
        assert_eq!(reseal(&resealed, None).unwrap(), resealed);
        assert_eq!(reseal(b"[1]", None), None);
        assert_eq!(reseal(b"{\"a\":", None), None);

        // Signed resealing needs the key apply verifies with.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.plan");
        let key = b"pipeline secret".as_slice();
        fs::write(&file, reseal(edited.as_bytes(), Some(b"a guess")).unwrap()).unwrap();
        assert!(matches!(
            load_for_apply(&file, Some(key)),
            Err(PlanFileError::BadSignature { .. })
        ));
        fs::write(&file, &resealed).unwrap();
        assert!(matches!(
            load_for_apply(&file, Some(key)),
            Err(PlanFileError::Unsigned { .. })
        ));
        fs::write(&file, reseal(edited.as_bytes(), Some(key)).unwrap()).unwrap();
        assert_eq!(load_for_apply(&file, Some(key)).unwrap(), plan);
    }

    #[test]
    fn parse_checks_bytes_like_load_does() {
        let bytes = sealed_json(&sample_plan(), None).unwrap();
        let path = Path::new("held.plan");
        assert_eq!(parse(path, &bytes).unwrap(), sample_plan());
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 3] {
            let err = parse(path, &bytes[..cut]).unwrap_err();
            assert!(err.to_string().contains("held.plan"), "{err}");
        }
    }
}
