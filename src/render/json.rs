//! The machine-readable plan (`berth plan --json`): the serde form of [`Plan`], the same JSON a
//! saved plan file holds and schemas/plan.schema.json describes.

use crate::plan::Plan;

/// The plan as pretty JSON, `format_version` first, ending with a newline.
pub fn plan_json(plan: &Plan) -> String {
    // Plan holds only strings, numbers, lists, string-keyed maps and unit enums: serializing it
    // to a String cannot fail.
    let mut json = serde_json::to_string_pretty(plan).expect("a Plan always serializes to JSON");
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::sample_plan;
    use serde_json::Value;

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn has_keys(value: &Value, wanted: &[&str]) {
        let present = keys(value);
        for key in wanted {
            assert!(present.contains(key), "missing `{key}` in {value}");
        }
    }

    #[test]
    fn format_version_comes_first() {
        let json = plan_json(&sample_plan());
        assert!(json.starts_with("{\n  \"format_version\": 1,\n"), "{json}");
    }

    #[test]
    fn json_has_the_documented_field_names_and_values() {
        let plan = sample_plan();
        let value: Value = serde_json::from_str(&plan_json(&plan)).unwrap();

        let moves = value["moves"].as_array().unwrap();
        assert_eq!(moves.len(), 3);
        has_keys(
            &moves[0],
            &[
                "guest",
                "from",
                "to",
                "mode",
                "reason",
                "memory_mib",
                "vcpus",
                "pivot",
            ],
        );
        assert_eq!(moves[0]["mode"], "live");
        assert_eq!(moves[1]["mode"], "offline");
        assert_eq!(moves[1]["memory_mib"], 32768);

        let steps = value["steps"].as_array().unwrap();
        assert_eq!(steps.len(), plan.steps.len());
        has_keys(
            &steps[0],
            &["id", "kind", "guest", "from", "to", "depends_on", "detail"],
        );
        let migrate = steps
            .iter()
            .find(|s| s["id"] == "exa01vm03:MIGRATE_GUEST")
            .unwrap();
        assert_eq!(migrate["kind"], "MIGRATE_GUEST");
        assert_eq!(
            migrate["depends_on"],
            serde_json::json!(["exa01vm03:ATTACH_VOLUMES", "exa01vm01:MIGRATE_GUEST"])
        );

        let hosts = value["hosts"].as_array().unwrap();
        has_keys(
            &hosts[0],
            &[
                "name",
                "memory_mib",
                "memory_used_mib_before",
                "memory_used_mib_after",
                "vcpus_used_before",
                "vcpus_used_after",
                "vcpu_limit",
                "memory_peak_mib",
            ],
        );
        assert_eq!(hosts[1]["memory_used_mib_after"], 49152);

        assert_eq!(value["drift"][0]["kind"], "memory_mismatch");
        assert_eq!(value["errors"][0]["code"], "image_version");
        assert_eq!(value["skipped_steps"][0]["kind"], "STOP_GUEST");
        assert_eq!(value["waves"].as_array().unwrap().len(), 8);
        assert!(
            value["es_xml_diff"]
                .as_str()
                .unwrap()
                .starts_with("--- /u01/oeda/exa01/es.xml\n")
        );
    }

    #[test]
    fn json_reads_back_into_the_same_plan() {
        let plan = sample_plan();
        let back: Plan = serde_json::from_str(&plan_json(&plan)).unwrap();
        assert_eq!(back, plan);
    }
}
