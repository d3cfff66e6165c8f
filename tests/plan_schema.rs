//! schemas/plan.schema.json is the committed JSON Schema of the plan. It must equal the schema
//! generated from the `Plan` type, and the JSON berth renders must validate against it.
//!
//! To regenerate it after changing the plan types:
//! `BERTH_UPDATE_SCHEMAS=1 cargo test --test plan_schema`

#[path = "common/schema.rs"]
mod schema;

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

#[test]
fn committed_schema_matches_the_plan_type() {
    schema::assert_committed(PLAN_SCHEMA_PATH, &plan_json_schema(), "plan_schema");
}

fn validator() -> jsonschema::Validator {
    schema::validator(&plan_json_schema())
}

fn assert_valid(name: &str, json: &str) {
    let instance: serde_json::Value = serde_json::from_str(json).unwrap();
    schema::assert_valid(&validator(), name, &instance);
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
