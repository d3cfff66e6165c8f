//! schemas/apply-events.schema.json is the committed JSON Schema of one `berth apply --json`
//! message. It must equal the schema generated from the stream types; messages of every kind
//! validate, and what is not a message does not. (A real apply's stream is validated against
//! it in tests/cli_apply.rs.)
//!
//! To regenerate it after changing the event types:
//! `BERTH_UPDATE_SCHEMAS=1 cargo test --test apply_events_schema`

use std::path::PathBuf;

use berth::apply::stream::{
    APPLY_EVENTS_SCHEMA_PATH, Level, StreamMessage, apply_events_json_schema,
};
use berth::apply::{Event, MigrationProgress};
use berth::schedule::StepKind;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(APPLY_EVENTS_SCHEMA_PATH)
}

#[test]
fn committed_schema_matches_the_stream_types() {
    let generated = apply_events_json_schema();
    let path = schema_path();
    if std::env::var_os("BERTH_UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale or missing: the event types changed. Regenerate it with\n    \
         BERTH_UPDATE_SCHEMAS=1 cargo test --test apply_events_schema\nand commit it.",
        path.display()
    );
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&apply_events_json_schema()).unwrap();
    jsonschema::validator_for(&schema).expect("the generated schema is a valid JSON Schema")
}

fn every_kind() -> Vec<StreamMessage> {
    let step = "vm01:MIGRATE_GUEST".to_string();
    let guest = "vm01".to_string();
    let events = [
        Event::Start {
            step: step.clone(),
            kind: StepKind::MigrateGuest,
            guest: guest.clone(),
            from: "adm01".into(),
            to: "adm02".into(),
        },
        Event::Progress {
            step: step.clone(),
            guest: guest.clone(),
            progress: MigrationProgress {
                percent: Some(42.0),
                mib_per_s: Some(900.0),
                mem_total_mib: Some(1024),
                mem_processed_mib: Some(400),
                mem_remaining_mib: Some(624),
                iteration: Some(1),
                elapsed_ms: Some(1200),
                mem_processed_bytes: None,
            },
        },
        Event::Done {
            step: step.clone(),
            guest: guest.clone(),
            note: None,
            elapsed_ms: 1500,
        },
        Event::Skip {
            step: step.clone(),
            guest: guest.clone(),
            reason: "done in an earlier run".into(),
        },
        Event::Error {
            step,
            guest,
            message: "host adm02: connection refused".into(),
        },
        Event::Diagnostic {
            summary: "error: state `state/berth.state.json` is locked".into(),
        },
        Event::Summary {
            plan_id: "p1".into(),
            done: 1,
            failed: 1,
            skipped: 1,
            not_run: 0,
            elapsed_ms: 2000,
        },
    ];
    let mut all = vec![StreamMessage::version()];
    all.extend(
        events
            .into_iter()
            .map(|e| StreamMessage::now(Level::Info, "words".into(), e)),
    );
    all
}

#[test]
fn messages_of_every_kind_validate() {
    let validator = validator();
    for message in every_kind() {
        let value: serde_json::Value = serde_json::from_str(&message.to_json_line()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{value}: {errors:?}");
    }
}

#[test]
fn schema_rejects_what_is_not_a_message() {
    let validator = validator();
    let good: serde_json::Value =
        serde_json::from_str(&StreamMessage::version().to_json_line()).unwrap();
    assert!(validator.is_valid(&good));
    for (field, bad) in [
        ("@timestamp", serde_json::json!("yesterday")),
        ("@level", serde_json::json!("loud")),
        ("event", serde_json::json!("explode")),
    ] {
        let mut message = good.clone();
        message[field] = bad;
        assert!(!validator.is_valid(&message), "{field} accepted: {message}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("@timestamp");
    assert!(!validator.is_valid(&missing));
}
