//! The committed JSON Schemas (schemas/*.schema.json): each must be the schema generated from
//! its types, and what berth writes must validate against it.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// Asserts that the committed schema at `relative` (from the repository) is `generated`.
/// With `BERTH_UPDATE_SCHEMAS=1` it writes `generated` there instead; `test` is the test
/// target to run for that, named in the message.
#[track_caller]
pub fn assert_committed(relative: &str, generated: &str, test: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    if std::env::var_os("BERTH_UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale or missing: its types changed. Regenerate it with\n    \
         BERTH_UPDATE_SCHEMAS=1 cargo test --test {test}\nand commit it.",
        path.display()
    );
}

/// A validator for the schema `text`, which must be a valid JSON Schema.
pub fn validator(text: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(text).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// The committed schema at `relative` (from the repository), as a validator.
pub fn committed_validator(relative: &str) -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    validator(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
    )
}

/// Asserts that `instance` validates, listing every error with its place.
#[track_caller]
pub fn assert_valid(validator: &jsonschema::Validator, name: &str, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not validate:\n{}",
        errors.join("\n")
    );
}
