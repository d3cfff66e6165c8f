//! The JSON Schema of the plan (schemas/plan.schema.json), generated from the [`Plan`] type so
//! it cannot drift from what `berth plan --json` and saved plan files contain.

use crate::plan::Plan;

/// Path of the committed schema, relative to the crate root.
pub const PLAN_SCHEMA_PATH: &str = "schemas/plan.schema.json";

/// The JSON Schema of [`Plan`] as pretty JSON text, ending with a newline (the committed file's
/// exact contents).
pub fn plan_json_schema() -> String {
    json_schema_text::<Plan>()
}

/// The JSON Schema of `T` as pretty JSON text ending with a newline: how every committed schema
/// of berth (schemas/*.schema.json) is written.
pub fn json_schema_text<T: schemars::JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    let mut text = serde_json::to_string_pretty(&schema)
        .expect("a schemars Schema is a JSON value and always serializes");
    text.push('\n');
    text
}
