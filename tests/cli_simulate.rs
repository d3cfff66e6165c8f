//! `berth simulate` through the real binary, on the examples (libvirt's test driver).

#[path = "common/cli.rs"]
mod cli;
use cli::{berth, example};

use std::process::Output;

use serde_json::Value;

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn simulating_now_matches_the_plans_prediction_and_its_bound() {
    let dir = example("drain-host");
    let plan = json(&berth(&dir, &["plan", "--json"]));
    let out = berth(&dir, &["simulate", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    let predicted = plan["timing"]["makespan_s"]
        .as_f64()
        .expect("the plan predicts its duration");
    let makespan = report["makespan_s"].as_f64().unwrap();
    assert!(
        (makespan - predicted).abs() < 1e-2,
        "{makespan} vs {predicted}"
    );
    let bound = report["lower_bound"]["overall_s"].as_f64().unwrap();
    assert!(
        bound > 0.0 && makespan + 1e-9 >= bound,
        "{makespan} below its bound {bound}"
    );
    assert_eq!(
        report["steps"].as_u64(),
        Some(plan["steps"].as_array().unwrap().len() as u64)
    );
}

#[test]
fn a_saved_plan_replays_with_other_limits() {
    let dir = example("drain-host");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("drain.berth");
    let saved = berth(&dir, &["plan", "--out", file.to_str().unwrap()]);
    assert_eq!(
        saved.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let default = json(&berth(
        &dir,
        &["simulate", file.to_str().unwrap(), "--json"],
    ));
    let serial = json(&berth(
        &dir,
        &[
            "simulate",
            file.to_str().unwrap(),
            "--json",
            "--parallelism",
            "1",
        ],
    ));
    assert_eq!(serial["concurrency"]["parallelism"], 1);
    assert!(
        serial["makespan_s"].as_f64() > default["makespan_s"].as_f64(),
        "{serial} vs {default}"
    );
    let text = String::from_utf8_lossy(&berth(&dir, &["simulate", file.to_str().unwrap()]).stdout)
        .into_owned();
    assert!(
        text.contains("makespan")
            && text.contains("lower bound")
            && text.contains("exa01adm01.example.com"),
        "{text}"
    );
}

#[path = "common/fs.rs"]
mod fs;

#[test]
fn an_empty_plan_simulates_to_zero_without_a_minus_sign() {
    let tmp = tempfile::tempdir().unwrap();
    fs::copy_dir(&example("drain-host"), tmp.path());
    let hcl = tmp.path().join("main.hcl");
    let text = std::fs::read_to_string(&hcl).unwrap();
    std::fs::write(&hcl, text.replace("drain = true", "drain = false")).unwrap();
    let out = berth(tmp.path(), &["simulate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Simulated 0 steps"), "{text}");
    assert!(!text.contains("-0"), "a negative zero in:\n{text}");
}
