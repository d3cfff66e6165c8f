//! Terraform's command-line conventions through the real binary: single-dash long flags for
//! every flag clap knows, and unknown ones named as written.

#[path = "common/cli.rs"]
mod cli;
use cli::{berth, example};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_long_flag_works_with_one_dash_including_simulates() {
    let dir = example("drain-host");
    let two = berth(
        &dir,
        &[
            "simulate",
            "--json",
            "--max-inbound=1",
            "--link-bandwidth",
            "500",
        ],
    );
    let one = berth(
        &dir,
        &[
            "simulate",
            "-json",
            "-max-inbound=1",
            "-link-bandwidth",
            "500",
        ],
    );
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert_eq!(one.stdout, two.stdout);
}

#[test]
fn an_unknown_single_dash_flag_is_named_as_written() {
    let dir = example("drain-host");
    let out = berth(&dir, &["plan", "-lol"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("unexpected argument '-lol' found"), "{text}");
    assert!(!text.contains("'-l'"), "{text}");
    // A flag of another subcommand, with one dash: named as written too.
    let out = berth(&dir, &["simulate", "-out=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unexpected argument '-out' found"),
        "{}",
        stderr(&out)
    );
}

fn moved(out: &std::process::Output) -> Vec<String> {
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", stderr(out));
    });
    plan["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["guest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn plan_target_and_exclude_limit_the_moves_planned() {
    let dir = example("drain-host");
    let all = moved(&berth(&dir, &["plan", "--json"]));
    assert_eq!(all.len(), 3, "{all:?}");
    let vm01 = "exa01adm01vm01.example.com";

    let out = berth(&dir, &["plan", "-json", "-target", "exa01adm01vm01"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(moved(&out), [vm01]);
    assert!(stderr(&out).contains("-target/-exclude in effect"));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert!(steps.iter().all(|s| s["guest"] == vm01), "{steps:?}");

    let out = berth(
        &dir,
        &["plan", "-json", "-exclude", vm01, "-exclude=exa01adm01vm02"],
    );
    assert_eq!(moved(&out), ["exa01adm01vm03.example.com"]);

    // A name that is no guest is an error on stderr, first, and the plan is not saved.
    let out = berth(&dir, &["plan", "-target", "nosuchvm", "-out=never.berth"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("✗ [scope]: -target nosuchvm: no such guest in es.xml"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("never.berth").exists());
}

#[test]
fn help_after_a_single_dash_flag_still_prints_on_stdout() {
    let dir = example("drain-host");
    // `berth()` adds `-lock=false` to plan: a rewritten flag before `--help`.
    let out = berth(&dir, &["plan", "-help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("--target <GUEST>"),
        "{}",
        stderr(&out)
    );
}
