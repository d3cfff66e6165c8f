//! A saved plan is a sealed record of what was reviewed (issue 10, item 2), through the real
//! binary on copies of the drain example (common/drain_lab.rs): every tampering is refused
//! before anything runs, names what differs, and changes nothing (no state, es.xml and the
//! libvirt node files as they were).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use berth::plan::file::reseal;
use common::drain_lab::*;
use serde_json::Value;

const KEY_ENV: &str = "BERTH_PLAN_KEY";

use common::cli::{assert_contains, assert_exit, run as berth};

/// Runs the binary with the signing key `key` in the environment (never an inherited one).
fn berth_with(dir: &Path, args: &[&str], key: Option<&str>) -> Output {
    match key {
        Some(key) => common::cli::run_with(dir, args, &[(KEY_ENV, key)]),
        None => berth(dir, args),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Everything apply could change: es.xml, the node files, and whether a state file exists.
fn snapshot(dir: &Path) -> (BTreeMap<PathBuf, Vec<u8>>, bool) {
    let mut files = BTreeMap::new();
    files.insert(
        dir.join("es.xml"),
        std::fs::read(dir.join("es.xml")).unwrap(),
    );
    for host in HOSTS {
        let p = dir.join(format!("nodes/{host}.xml"));
        files.insert(p.clone(), std::fs::read(&p).unwrap());
    }
    let journaled = dir.join("state/berth.state.json").exists();
    (files, journaled)
}

#[track_caller]
fn assert_nothing_changed(dir: &Path, before: &(BTreeMap<PathBuf, Vec<u8>>, bool)) {
    let after = snapshot(dir);
    assert_eq!(after.0, before.0, "es.xml or a node file changed");
    assert!(!after.1, "a state file was written: something ran");
}

/// A fresh drain lab and its plan, saved (signed with `key` when given).
fn saved_lab(key: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let lab = drain_lab();
    let saved = lab.path().join("drain.berth");
    let out = berth_with(
        lab.path(),
        &["plan", &format!("-out={}", saved.display())],
        key,
    );
    assert_exit(&out, 0);
    (lab, saved)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Writes `value` (a plan's JSON) re-sealed with a correct sha256 by `plan::file::reseal`, as
/// someone who edits the file and recomputes the digest would: apply must still refuse it
/// for what differs from the plan it makes now.
fn write_resealed(path: &Path, value: Value) {
    let bytes = serde_json::to_vec(&value).unwrap();
    std::fs::write(path, reseal(&bytes, None).unwrap()).unwrap();
}

#[test]
fn a_flipped_bit_in_a_target_is_refused_as_corrupted_before_anything() {
    let (lab, saved) = saved_lab(None);
    let dir = lab.path();
    let before = snapshot(dir);
    let original = std::fs::read_to_string(&saved).unwrap();
    // `exa01adm03` → `exa01adm02` would be a valid host; flip the low bit of the digit.
    let at = original.find(&format!("\"to\": \"{ADM03}\"")).unwrap() + "\"to\": \"exa01adm0".len();
    let mut bytes = original.into_bytes();
    bytes[at] ^= 1;
    std::fs::write(&saved, &bytes).unwrap();

    let out = berth(dir, &["apply", saved.to_str().unwrap()]);
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert_contains(&err, "is corrupted or was edited after it was saved");
    // The flipped bit made adm03 into adm02: named, though the file is refused anyway.
    assert!(
        err.contains(&format!(
            "move of guest {VM01}: `to` saved \"{ADM02}\", now \"{ADM03}\""
        )),
        "{err}"
    );
    assert!(
        !text(&out.stdout).contains("STOP_GUEST"),
        "no step was even shown as running"
    );
    assert_nothing_changed(dir, &before);
}

#[test]
fn a_hand_edited_target_with_a_recomputed_digest_is_refused_naming_the_difference() {
    let (lab, saved) = saved_lab(None);
    let dir = lab.path();
    let before = snapshot(dir);
    let value = read_json(&saved);
    // Send vm01 to adm02 instead of adm03, consistently: its move, its steps, the es.xml diff.
    let index = value["moves"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m["guest"] == VM01)
        .unwrap();
    assert_eq!(value["moves"][index]["to"], ADM03);
    let edited = serde_json::to_string(&value).unwrap().replace(
        &format!("\"to\":\"{ADM03}\""),
        &format!("\"to\":\"{ADM02}\""),
    );
    let mut value: Value = serde_json::from_str(&edited).unwrap();
    let diff = value["es_xml_diff"].as_str().unwrap().to_string();
    value["es_xml_diff"] = diff.replace("exa01adm03", "exa01adm02").into();
    write_resealed(&saved, value);

    let out = berth(dir, &["apply", saved.to_str().unwrap()]);
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert_contains(&err, "no longer matches what is");
    assert!(
        err.contains(&format!(
            "move of guest {VM01}: `to` saved \"{ADM02}\", now \"{ADM03}\""
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "step {VM01}:MIGRATE_GUEST: `to` saved \"{ADM02}\", now \"{ADM03}\""
        )),
        "{err}"
    );
    assert_nothing_changed(dir, &before);
}

#[test]
fn a_plan_with_errors_is_never_applied_even_with_its_errors_emptied() {
    let lab = drain_lab();
    let dir = lab.path();
    let before = snapshot(dir);
    // Draining every host leaves the guests nowhere to go: the plan has errors and
    // `plan -out` does not save it. Take its JSON instead, empty the errors, seal it.
    let out = berth(
        dir,
        &[
            "plan",
            "--json",
            "-lock=false",
            "-drain",
            ADM02,
            "-drain",
            ADM03,
        ],
    );
    assert_exit(&out, 1);
    let mut value: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!value["errors"].as_array().unwrap().is_empty(), "{value}");
    assert_eq!(value["intents"]["drain"], serde_json::json!([ADM02, ADM03]));
    value["errors"] = serde_json::json!([]);
    let saved = dir.join("emptied.berth");
    write_resealed(&saved, value);

    let out = berth(dir, &["apply", saved.to_str().unwrap()]);
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert_contains(&err, "planned now, it has an error: ");
    assert_nothing_changed(dir, &before);
}

#[test]
fn the_intents_a_plan_was_made_with_are_recorded_and_planned_again() {
    let lab = drain_lab();
    let dir = lab.path();
    let hcl = dir.join("main.hcl");
    let config = std::fs::read_to_string(&hcl).unwrap();
    std::fs::write(&hcl, config.replacen("  drain = true\n", "", 1)).unwrap();
    let saved = dir.join("drain.berth");
    assert_exit(
        &berth(
            dir,
            &[
                "plan",
                "-drain",
                "exa01adm01",
                &format!("-out={}", saved.display()),
            ],
        ),
        0,
    );
    assert_eq!(
        read_json(&saved)["intents"],
        serde_json::json!({"drain": ["exa01adm01"]})
    );
    // Dropping the recorded intent (digest recomputed) makes the plan differ from what the
    // configuration plans without it: every move is named.
    let before = snapshot(dir);
    let pristine = std::fs::read(&saved).unwrap();
    let mut value = read_json(&saved);
    value.as_object_mut().unwrap().remove("intents");
    write_resealed(&saved, value);
    let out = berth(dir, &["apply", saved.to_str().unwrap()]);
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    for (guest, _, _) in TARGETS {
        assert!(
            err.contains(&format!("move of guest {guest} ({ADM01} → "))
                && err.contains("planned now there is none"),
            "{guest}: {err}"
        );
    }
    assert_nothing_changed(dir, &before);

    // As saved, it applies.
    std::fs::write(&saved, pristine).unwrap();
    let out = berth(dir, &["apply", saved.to_str().unwrap()]);
    assert_exit(&out, 0);
}

#[test]
fn signed_plans_apply_with_their_key_only() {
    let (lab, saved) = saved_lab(Some("first key"));
    let dir = lab.path();
    let file = saved.to_str().unwrap();
    let before = snapshot(dir);
    assert!(
        read_json(&saved)["seal"]["hmac_sha256"].is_string(),
        "the plan is signed"
    );

    let wrong = berth_with(dir, &["apply", file], Some("second key"));
    assert_exit(&wrong, 1);
    assert!(
        text(&wrong.stderr).contains("the signature does not match"),
        "{}",
        text(&wrong.stderr)
    );
    let keyless = berth(dir, &["apply", file]);
    assert_exit(&keyless, 1);
    assert!(
        text(&keyless.stderr).contains("is signed, and BERTH_PLAN_KEY is not set"),
        "{}",
        text(&keyless.stderr)
    );
    let empty = berth_with(dir, &["apply", file], Some(""));
    assert_exit(&empty, 1);
    assert!(text(&empty.stderr).contains("BERTH_PLAN_KEY is set but empty"));
    assert_nothing_changed(dir, &before);

    // An unsigned plan is refused while a key is set.
    let (unsigned_lab, unsigned) = saved_lab(None);
    let before_unsigned = snapshot(unsigned_lab.path());
    let out = berth_with(
        unsigned_lab.path(),
        &["apply", unsigned.to_str().unwrap()],
        Some("first key"),
    );
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("is not signed, and BERTH_PLAN_KEY is set"),
        "{}",
        text(&out.stderr)
    );
    assert_nothing_changed(unsigned_lab.path(), &before_unsigned);

    let right = berth_with(dir, &["apply", file], Some("first key"));
    assert_exit(&right, 0);
    assert!(text(&right.stdout).contains("Apply complete!"));
}

/// A saved plan is applied once. Replayed after it was applied (here where the world looks as
/// it did before: es.xml is written to `es_xml_out` and the test driver's hosts start afresh
/// in every process, as hosts would after someone moved the guests back by hand), it is
/// refused as already applied, naming the plan, and nothing runs or is written.
#[test]
fn a_saved_plan_is_applied_once_and_refused_when_replayed() {
    let lab = drain_lab();
    let dir = lab.path();
    let hcl = std::fs::read_to_string(dir.join("main.hcl")).unwrap();
    let with_out = hcl.replacen(
        "es_xml = \"es.xml\"",
        "es_xml = \"es.xml\"\n  es_xml_out = \"es.out.xml\"",
        1,
    );
    assert_ne!(hcl, with_out);
    std::fs::write(dir.join("main.hcl"), with_out).unwrap();
    let saved = dir.join("drain.berth");
    assert_exit(&berth_with(dir, &["plan", "-out=drain.berth"], None), 0);
    let first = berth_with(dir, &["apply", "drain.berth"], None);
    assert_exit(&first, 0);
    assert!(text(&first.stdout).contains("Apply complete!"));

    let files = |dir: &Path| {
        ["state/berth.state.json", "es.out.xml", "es.xml"]
            .map(|f| std::fs::read(dir.join(f)).unwrap())
    };
    let before = files(dir);
    let again = berth_with(dir, &["apply", &saved.display().to_string()], None);
    assert_exit(&again, 1);
    let err = text(&again.stderr);
    assert!(
        err.contains("drain.berth") && err.contains("was already applied"),
        "{err}"
    );
    assert!(!text(&again.stdout).contains("STOP_GUEST started"));
    assert!(
        files(dir) == before,
        "the state, es.xml or es.out.xml changed"
    );
}
