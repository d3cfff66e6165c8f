//! schemas/apply-events.schema.json is the committed JSON Schema of one `berth apply --json`
//! message. It must equal the schema generated from the stream types; messages of every kind
//! validate, and what is not a message does not. (A real apply's stream is validated against
//! it in tests/cli_apply.rs.)
//!
//! To regenerate it after changing the event types:
//! `BERTH_UPDATE_SCHEMAS=1 cargo test --test apply_events_schema`

#[path = "common/schema.rs"]
mod schema;

use berth::apply::stream::{
    APPLY_EVENTS_SCHEMA_PATH, Level, StreamMessage, apply_events_json_schema,
};
use berth::apply::{Event, MigrationProgress};
use berth::schedule::StepKind;

#[test]
fn committed_schema_matches_the_stream_types() {
    schema::assert_committed(
        APPLY_EVENTS_SCHEMA_PATH,
        &apply_events_json_schema(),
        "apply_events_schema",
    );
}

fn validator() -> jsonschema::Validator {
    schema::validator(&apply_events_json_schema())
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
        schema::assert_valid(&validator, &value.to_string(), &value);
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
