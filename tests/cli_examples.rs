//! Every example under examples/plans/ planned through the real binary, on libvirt's test driver.
//! The JSON plans are validated against schemas/plan.schema.json.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/fs.rs"]
mod fs;
#[path = "common/schema.rs"]
mod schema;
use cli::{assert_contains, assert_exit, berth, example, stderr, stdout};
use fs::repo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Plans `dir` as JSON, checks it against the committed schema and returns it.
fn json_plan(dir: &Path) -> (Value, Option<i32>) {
    let out = berth(dir, &["plan", "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plan --json is not JSON ({e}): {}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    schema::assert_valid(
        &schema::committed_validator("schemas/plan.schema.json"),
        "plan JSON (schemas/plan.schema.json)",
        &plan,
    );
    (plan, out.status.code())
}

fn steps_by_id(plan: &Value) -> BTreeMap<String, Value> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// True when `later` transitively depends on `earlier` in the plan's step graph.
fn depends(plan: &Value, later: &str, earlier: &str) -> bool {
    let steps = steps_by_id(plan);
    let mut stack = vec![later.to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(id) = stack.pop() {
        if id == earlier {
            return true;
        }
        if seen.insert(id.clone()) {
            for d in steps[&id]["depends_on"].as_array().unwrap() {
                stack.push(d.as_str().unwrap().to_string());
            }
        }
    }
    false
}

fn step_id(plan: &Value, guest_prefix: &str, kind: &str) -> String {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["guest"].as_str().unwrap().starts_with(guest_prefix) && s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} step for {guest_prefix}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn assert_within_capacity(plan: &Value) {
    for h in plan["hosts"].as_array().unwrap() {
        let cap = h["memory_mib"].as_u64().unwrap();
        for key in [
            "memory_used_mib_before",
            "memory_used_mib_after",
            "memory_peak_mib",
        ] {
            let v = h[key].as_u64().unwrap();
            // Before may already be over (a user's fleet can be); the plan must not make it worse.
            if key != "memory_used_mib_before" {
                assert!(
                    v <= cap,
                    "{} {key} {v} MiB exceeds capacity {cap} MiB",
                    h["name"]
                );
            }
        }
    }
}

#[test]
fn drain_host_moves_every_guest_off_the_drained_host() {
    let (plan, code) = json_plan(&example("drain-host"));
    assert_eq!(code, Some(0));
    let moves = plan["moves"].as_array().unwrap();
    assert!(!moves.is_empty());
    for m in moves {
        assert!(m["from"].as_str().unwrap().starts_with("exa01adm01"), "{m}");
        assert!(!m["to"].as_str().unwrap().starts_with("exa01adm01"), "{m}");
        assert!(!m["reason"].as_str().unwrap().is_empty());
    }
    let drained = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"].as_str().unwrap().starts_with("exa01adm01"))
        .unwrap();
    assert_eq!(drained["guests_after"], 0);
    assert_within_capacity(&plan);
}

#[test]
fn drain_host_creates_bridges_while_the_guests_run_and_predicts_their_downtime() {
    let (plan, _) = json_plan(&example("drain-host"));
    // vm01 and vm02 need a VLAN bridge their target lacks; both run.
    let timing = |id: &str| {
        let t = plan["timing"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["step"] == id)
            .unwrap_or_else(|| panic!("no timing for {id}"));
        let start = t["start_s"].as_f64().unwrap();
        (start, start + t["duration_s"].as_f64().unwrap())
    };
    let downtime = plan["timing"]["downtime"].as_array().unwrap();
    for guest in ["exa01adm01vm01", "exa01adm01vm02"] {
        let bridges = step_id(&plan, guest, "CREATE_BRIDGES");
        let stop = step_id(&plan, guest, "STOP_GUEST");
        let startup = step_id(&plan, guest, "STARTUP_GUEST");
        assert!(depends(&plan, &stop, &bridges), "{stop} after {bridges}");
        assert!(!depends(&plan, &bridges, &stop), "{bridges} before {stop}");
        let d = downtime
            .iter()
            .find(|d| d["guest"].as_str().unwrap().starts_with(guest))
            .unwrap_or_else(|| panic!("no downtime for {guest}: {downtime:?}"));
        assert_eq!(
            (d["from_step"].as_str(), d["to_step"].as_str()),
            (Some(stop.as_str()), Some(startup.as_str()))
        );
        let predicted = d["downtime_s"].as_f64().unwrap();
        assert!(
            (predicted - (timing(&startup).1 - timing(&stop).0)).abs() < 0.002,
            "{d}"
        );
        assert!(timing(&bridges).1 <= timing(&stop).0, "{guest}");
    }
    // vm03 is shut off: it is not stopped, so it has no downtime.
    assert_eq!(downtime.len(), 2, "{downtime:?}");

    let text = stdout(&berth(&example("drain-host"), &["plan"]));
    let at = text
        .find("Predicted downtime (STOP_GUEST to STARTUP_GUEST; bridges are created before the stop):")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text[at..].contains("    exa01adm01vm01.example.com: "),
        "{text}"
    );
}

#[test]
fn live_move_creates_the_missing_bridge_before_migrating() {
    let (plan, code) = json_plan(&example("live-move"));
    assert_eq!(code, Some(0));
    assert_eq!(plan["moves"].as_array().unwrap().len(), 1);
    assert_eq!(plan["moves"][0]["mode"], "live");
    let kinds: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert!(
        !kinds.contains(&"STOP_GUEST") && !kinds.contains(&"STARTUP_GUEST"),
        "live move must not stop the guest: {kinds:?}"
    );
    let bridges = step_id(&plan, "exa01adm01vm02", "CREATE_BRIDGES");
    let migrate = step_id(&plan, "exa01adm01vm02", "MIGRATE_GUEST");
    assert!(depends(&plan, &migrate, &bridges));
}

#[test]
fn swap_of_two_full_hosts_stops_both_guests_before_starting_either() {
    let (plan, code) = json_plan(&example("swap"));
    assert_eq!(code, Some(0), "{plan}");
    assert_eq!(plan["moves"].as_array().unwrap().len(), 2);
    for (a, b) in [
        ("exa01adm01vm01", "exa01adm02vm01"),
        ("exa01adm02vm01", "exa01adm01vm01"),
    ] {
        let start_a = step_id(&plan, a, "STARTUP_GUEST");
        let stop_b = step_id(&plan, b, "STOP_GUEST");
        assert!(
            depends(&plan, &start_a, &stop_b),
            "{start_a} must wait for {stop_b}"
        );
    }
    assert_within_capacity(&plan);
}

#[test]
fn drift_stops_the_plan_and_names_the_guest() {
    let out = berth(&example("drift"), &["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.to_lowercase().contains("drift"), "{text}");
    assert_contains(&text, "exa01adm01vm02");
}

#[test]
fn detailed_exitcode_reports_changes_and_saved_plan_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("plan.berth");
    let out = berth(
        &example("drain-host"),
        &[
            "plan",
            "-detailed-exitcode",
            &format!("-out={}", saved.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let shown = berth(&example("drain-host"), &["show", saved.to_str().unwrap()]);
    assert_eq!(shown.status.code(), Some(0));
    // `show` prints the same plan `plan` printed (both without colour).
    assert_eq!(stdout(&shown), stdout(&out));
    let dot = berth(&example("drain-host"), &["graph", saved.to_str().unwrap()]);
    assert!(stdout(&dot).starts_with("digraph"), "{}", stdout(&dot));
}

#[test]
fn markdown_summary_names_every_move() {
    let out = berth(&example("drain-host"), &["plan", "--markdown"]);
    assert_eq!(out.status.code(), Some(0));
    let (plan, _) = json_plan(&example("drain-host"));
    let md = stdout(&out);
    for m in plan["moves"].as_array().unwrap() {
        assert_contains(&md, m["guest"].as_str().unwrap());
    }
    assert!(md.len() <= 65_535);
}

#[test]
fn validate_accepts_the_quickstart_and_names_what_apply_needs_for_the_others() {
    let out = berth(&example("quickstart"), &["validate"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("Success! The configuration is valid."));
    assert!(
        stdout(&out).contains("Checked without connecting"),
        "validate says which checks are static: {}",
        stdout(&out)
    );
    // These examples plan, but their volume steps need a `volume_command`: validate runs
    // apply's static preflight checks and says so (it said "Success!" before).
    for name in ["drain-host", "live-move", "swap"] {
        let out = berth(&example(name), &["validate"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        assert!(
            text.contains("apply would refuse: the volume steps (")
                && text.contains("`inventory.volume_command`"),
            "{name}: {text}"
        );
        assert!(!text.contains("Success!"), "{name}: {text}");
    }
    assert_eq!(
        berth(&example("drift"), &["validate"]).status.code(),
        Some(1)
    );
}

#[test]
fn validate_json_reports_what_it_read_and_the_drift() {
    let ok: Value =
        serde_json::from_slice(&berth(&example("quickstart"), &["validate", "--json"]).stdout)
            .unwrap();
    assert_eq!(
        (
            ok["valid"].as_bool(),
            ok["hosts"].as_u64(),
            ok["guests"].as_u64()
        ),
        (Some(true), Some(3), Some(5))
    );
    assert!(ok["drift"].as_array().unwrap().is_empty());
    assert!(ok["apply_problems"].as_array().unwrap().is_empty());
    let needs: Value =
        serde_json::from_slice(&berth(&example("drain-host"), &["validate", "--json"]).stdout)
            .unwrap();
    assert_eq!(needs["valid"], false);
    assert_eq!(
        needs["apply_problems"].as_array().unwrap().len(),
        1,
        "{needs}"
    );
    let out = berth(&example("drift"), &["validate", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let drifted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(drifted["valid"], false);
    assert_eq!(drifted["drift"].as_array().unwrap().len(), 1);
}

/// A scratch copy of an example, and every file in it with its bytes.
fn scratch(name: &str) -> (tempfile::TempDir, BTreeMap<PathBuf, Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    fs::copy_dir(&example(name), dir.path());
    let files = files(dir.path());
    (dir, files)
}

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// The es.xml host of each guest.
fn placement(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("es.xml")).unwrap();
    let es = berth::inventory::esxml::parse("es.xml", &text).unwrap();
    es.guests
        .iter()
        .map(|g| {
            let host = es.hosts.iter().find(|h| h.id == g.host_id).unwrap();
            (g.name.clone(), host.name.clone())
        })
        .collect()
}

const QUICKSTART_TARGETS: [(&str, &str); 3] = [
    ("exa01adm01vm01.example.com", "exa01adm03.example.com"),
    ("exa01adm01vm02.example.com", "exa01adm02.example.com"),
    ("exa01adm01vm03.example.com", "exa01adm02.example.com"),
];

#[test]
fn the_quickstart_applies_end_to_end_on_the_test_driver() {
    let (lab, _) = scratch("quickstart");
    let dir = lab.path();
    let saved = dir.join("plan.berth");
    let planned = berth(dir, &["plan", &format!("-out={}", saved.display())]);
    assert_eq!(planned.status.code(), Some(0), "{}", stderr(&planned));
    assert_contains(&stdout(&planned), "Plan: 3 moves");

    let applied = berth(dir, &["apply", saved.to_str().unwrap()]);
    assert_exit(&applied, 0);
    assert_contains(
        &stdout(&applied),
        "Apply complete! 13 steps done, 0 failed, 0 skipped, 0 not run.",
    );
    let after = placement(dir);
    for (guest, host) in QUICKSTART_TARGETS {
        assert_eq!(after[guest], host, "es.xml written back: {guest}");
    }
    let list = berth(dir, &["state", "list"]);
    assert_eq!(list.status.code(), Some(0));
    for (guest, host) in QUICKSTART_TARGETS {
        assert!(
            stdout(&list)
                .lines()
                .any(|l| l.starts_with(guest) && l.contains(host)),
            "{guest} on {host} in:\n{}",
            stdout(&list)
        );
    }
}

#[test]
fn demo_sh_plans_applies_and_lists_the_state_on_a_scratch_copy_only() {
    let before = files(&example("quickstart"));
    let out = std::process::Command::new(repo().join("examples/demo.sh"))
        .env("BERTH", assert_cmd::cargo::cargo_bin("berth"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let order: Vec<usize> = [
        "$ berth plan -out plan.berth",
        "Plan: 3 moves",
        "$ berth apply plan.berth",
        "Apply complete! 13 steps done",
        "$ berth state list",
        "exa01adm01vm01.example.com  exa01adm03.example.com  running",
    ]
    .iter()
    .map(|s| {
        text.find(s)
            .unwrap_or_else(|| panic!("{s:?} missing from:\n{text}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(
        files(&example("quickstart")),
        before,
        "the example was changed"
    );
    let scratch = text
        .lines()
        .find_map(|l| l.strip_prefix("Working on a scratch copy: "))
        .unwrap();
    assert!(!Path::new(scratch).exists(), "the scratch copy is removed");
}

#[test]
fn every_other_example_is_refused_before_anything_changes_saying_what_it_needs() {
    // (examples/plans/lab needs the KVM lab of tests/lab and is left to the lab tests.)
    for (name, needs) in [
        (
            "drain-host",
            &[
                "`inventory.volume_command`",
                "no SSH to exa01adm02.example.com, which",
            ][..],
        ),
        (
            "live-move",
            &[
                "`inventory.volume_command`",
                "no SSH to exa01adm02.example.com, which",
            ],
        ),
        (
            "swap",
            &[
                "`inventory.volume_command`",
                "no SSH to exa01adm01.example.com, which",
            ],
        ),
        (
            "rebalance",
            &[
                "`inventory.volume_command`",
                "no SSH to exa01adm04.example.com, which",
            ],
        ),
        (
            "drift",
            &["es.xml and libvirt disagree", "nothing was applied"],
        ),
    ] {
        let (lab, before) = scratch(name);
        let out = berth(lab.path(), &["apply", "-auto-approve"]);
        let all = stdout(&out) + &stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {all}");
        for need in needs {
            assert!(all.contains(need), "{name}: {need:?} missing from:\n{all}");
        }
        if name != "drift" {
            assert!(
                stderr(&out).contains("nothing was changed"),
                "{name}: {all}"
            );
            assert!(!all.contains("STOP_GUEST started"), "{name}: {all}");
        }
        let mut after = files(lab.path());
        assert!(
            !after.keys().any(|p| p.starts_with("state")),
            "{name}: a state file was written"
        );
        after.retain(|p, _| !p.starts_with("state"));
        assert_eq!(after, before, "{name}: a file changed");
    }
}
