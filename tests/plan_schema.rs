//! schemas/plan.schema.json is the committed JSON Schema of the plan. It must equal the schema
//! generated from the `Plan` type, and the JSON berth renders must validate against it.
//!
//! To regenerate it after changing the plan types:
//! `BERTH_UPDATE_SCHEMAS=1 cargo test --test plan_schema`

use std::path::PathBuf;

use berth::plan::schema::{PLAN_SCHEMA_PATH, plan_json_schema};
use berth::render::plan_json;

#[allow(dead_code)]
mod sample {
    use std::collections::BTreeMap;

    use berth::config::MigrationMode;
    use berth::diff::{Move, RebalanceOutcome, RebalanceStop, ResourceSpread};
    use berth::inventory::{Drift, DriftKind};
    use berth::plan::{FORMAT_VERSION, Fingerprints, HostSummary, Plan, PlanError, unified_diff};
    use berth::schedule::{Concurrency, DurationModel, SkippedStep, Step, StepKind, predict};

    include!("support/sample_plan.rs");
}

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(PLAN_SCHEMA_PATH)
}

#[test]
fn committed_schema_matches_the_plan_type() {
    let generated = plan_json_schema();
    let path = schema_path();
    if std::env::var_os("BERTH_UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale or missing: the Plan types changed. Regenerate it with\n    \
         BERTH_UPDATE_SCHEMAS=1 cargo test --test plan_schema\nand commit it.",
        path.display()
    );
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&plan_json_schema()).unwrap();
    jsonschema::validator_for(&schema).expect("the generated schema is a valid JSON Schema")
}

fn assert_valid(name: &str, json: &str) {
    let instance: serde_json::Value = serde_json::from_str(json).unwrap();
    let errors: Vec<String> = validator()
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not validate:\n{}",
        errors.join("\n")
    );
}

#[test]
fn rendered_sample_plans_validate() {
    assert_valid("drain plan", &plan_json(&sample::sample_plan()));
    assert_valid("pivot plan", &plan_json(&sample::sample_pivot_plan()));
    assert_valid(
        "no-change plan",
        &plan_json(&sample::sample_no_change_plan()),
    );
    assert_valid("huge plan", &plan_json(&sample::sample_huge_plan(50)));
}

#[test]
fn schema_rejects_what_is_not_a_plan() {
    let validator = validator();
    let mut plan: serde_json::Value =
        serde_json::from_str(&plan_json(&sample::sample_plan())).unwrap();
    plan["moves"][0]["mode"] = "teleport".into();
    assert!(
        !validator.is_valid(&plan),
        "an unknown migration mode must not validate"
    );

    let mut plan: serde_json::Value =
        serde_json::from_str(&plan_json(&sample::sample_plan())).unwrap();
    plan.as_object_mut().unwrap().remove("steps");
    assert!(
        !validator.is_valid(&plan),
        "a plan without steps must not validate"
    );

    let mut plan: serde_json::Value =
        serde_json::from_str(&plan_json(&sample::sample_plan())).unwrap();
    plan["hosts"][0]["memory_mib"] = (-1).into();
    assert!(
        !validator.is_valid(&plan),
        "negative memory must not validate"
    );
}
