//! Intents through the real binary: the rebalance example, and command-line shortcuts
//! (`-drain`, `-rebalance`, `-evacuate`) planning exactly what their HCL blocks plan.

#[path = "common/cli.rs"]
mod cli;
use cli::{berth, example};

use std::collections::BTreeMap;
use std::path::Path;

#[path = "common/fs.rs"]
mod fs_util;

use serde_json::Value;

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    let out = berth(dir, &all);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plan --json is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A configuration directory using `example`'s es.xml and node files, with `body` after the
/// inventory block (which the example's own main.hcl replaces).
fn config_over(example_name: &str, body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = example(example_name);
    let text = format!(
        "inventory {{\n  es_xml = \"{}\"\n  libvirt_uri = \"test:{}/nodes/{{host}}.xml\"\n}}\ndefaults {{\n  mode = \"offline\"\n  memory_reserved = \"32GiB\"\n}}\n{body}",
        source.join("es.xml").display(),
        source.display()
    );
    std::fs::write(dir.path().join("main.hcl"), text).unwrap();
    dir
}

/// A copy of an example in a temp dir, with one edit to its main.hcl.
fn example_edited(example_name: &str, from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs_util::copy_dir(&example(example_name), dir.path());
    let hcl = dir.path().join("main.hcl");
    let text = std::fs::read_to_string(&hcl).unwrap();
    assert!(
        text.contains(from),
        "{example_name}/main.hcl has no {from:?}"
    );
    std::fs::write(&hcl, text.replacen(from, to, 1)).unwrap();
    dir
}

/// guest → (from, to, mode, reason)
fn moves(plan: &Value) -> BTreeMap<String, (String, String, String, String)> {
    plan["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap().to_string();
            (s("guest"), (s("from"), s("to"), s("mode"), s("reason")))
        })
        .collect()
}

fn used_after(plan: &Value) -> Vec<(String, f64)> {
    plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_string(),
                h["memory_used_mib_after"].as_f64().unwrap() / h["memory_mib"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn spread(used: &[(String, f64)]) -> f64 {
    let max = used.iter().map(|(_, u)| *u).fold(f64::MIN, f64::max);
    let min = used.iter().map(|(_, u)| *u).fold(f64::MAX, f64::min);
    max - min
}

#[test]
fn the_rebalance_example_evens_the_rack_within_its_budget_and_rules() {
    let plan = json(&example("rebalance"), &[]);
    assert!(
        plan["errors"].as_array().unwrap().is_empty(),
        "{}",
        plan["errors"]
    );
    let moves = moves(&plan);
    assert!(!moves.is_empty() && moves.len() <= 4, "{moves:#?}");
    let moved_mib: u64 = plan["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["memory_mib"].as_u64().unwrap())
        .sum();
    assert!(moved_mib <= 256 * 1024, "{moved_mib} MiB moved");
    assert!(
        !moves.contains_key("exa01adm01vm03.example.com"),
        "the pinned guest moved"
    );
    for (from, _, _, reason) in moves.values() {
        assert!(
            from.starts_with("exa01adm01"),
            "only the crowded host gives: {moves:#?}"
        );
        assert!(
            reason.starts_with("rebalance \"rack1\" (memory spread 66.7% → "),
            "{reason}"
        );
    }
    // The spread before is 80 % - 13.3 %; after, inside the 10 % threshold.
    assert!(
        spread(&used_after(&plan)) <= 0.10 + 1e-9,
        "{:?}",
        used_after(&plan)
    );
    // RAC members never share a host afterwards: vm01 is not with adm02vm01 (exa01cl01), vm02 not with adm03vm01 (exa01cl02).
    assert_ne!(
        moves["exa01adm01vm01.example.com"].1,
        "exa01adm02.example.com"
    );
    assert_ne!(
        moves["exa01adm01vm02.example.com"].1,
        "exa01adm03.example.com"
    );
}

#[test]
fn dash_rebalance_plans_what_a_rebalance_all_block_plans() {
    let block = config_over("rebalance", "rebalance \"all\" {}\n");
    let flag = config_over("rebalance", "");
    let by_block = json(block.path(), &[]);
    let by_flag = json(flag.path(), &["-rebalance"]);
    assert!(!moves(&by_block).is_empty());
    assert_eq!(moves(&by_block), moves(&by_flag));
    assert_eq!(by_block["steps"], by_flag["steps"]);
}

#[test]
fn dash_drain_plans_what_a_drain_block_plans() {
    let by_block = json(&example("drain-host"), &[]);
    // The same example (SR-IOV pools and all) with only its drain line switched off.
    let flag = example_edited("drain-host", "  drain = true\n", "  drain = false\n");
    // The short name works on the command line as in HCL.
    let by_flag = json(flag.path(), &["-drain", "exa01adm01"]);
    assert_eq!(moves(&by_block).len(), 3);
    assert_eq!(moves(&by_block), moves(&by_flag));
    // Without the flag nothing moves.
    assert!(moves(&json(flag.path(), &[])).is_empty());
}

#[test]
fn a_flag_naming_an_unknown_host_points_at_the_flag() {
    let dir = config_over("drain-host", "");
    let out = berth(dir.path(), &["plan", "-drain", "exa01adm09"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("host \"exa01adm09\" is not in the topology"),
        "{stderr}"
    );
    assert!(stderr.contains("<command line>:1:8"), "{stderr}");
}

#[test]
fn dash_evacuate_refuses_a_host_that_answers() {
    let dir = config_over("drain-host", "");
    let out = berth(dir.path(), &["plan", "-evacuate", "exa01adm01"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("host exa01adm01.example.com is marked dead (`evacuate = true`), but libvirt on it answers"), "{stderr}");
}

#[test]
fn dash_evacuate_defines_the_guests_of_a_dead_host_elsewhere_offline_force() {
    // exa01adm01's libvirt does not answer: an error of its own (not drift), which stops a
    // plain plan...
    let dead = "host \"exa01adm01\" {\n  libvirt_uri = \"test:///nonexistent/dead.xml\"\n}\n";
    let dir = config_over("drain-host", dead);
    let plain = json(dir.path(), &[]);
    assert_eq!(plain["errors"][0]["code"], "host_unreachable");
    assert_eq!(plain["errors"][0]["host"], "exa01adm01.example.com");
    assert!(plain["drift"].as_array().unwrap().is_empty());
    assert!(moves(&plain).is_empty());
    // ...but not a plan that declares the host dead: its unreachability is expected.
    let plan = json(dir.path(), &["-evacuate", "exa01adm01"]);
    assert!(
        plan["errors"].as_array().unwrap().is_empty(),
        "{}",
        plan["errors"]
    );
    assert!(
        plan["drift"].as_array().unwrap().is_empty(),
        "a dead host is not drift: {}",
        plan["drift"]
    );
    let moves = moves(&plan);
    assert_eq!(moves.len(), 3);
    for (from, to, mode, reason) in moves.values() {
        assert_eq!(from, "exa01adm01.example.com");
        assert_ne!(to, from);
        assert_eq!(mode, "offline_force");
        assert!(
            reason.starts_with("evacuate exa01adm01.example.com (dead host, offline_force): "),
            "{reason}"
        );
    }
    // Nothing runs on the dead host: no step acts on it.
    for step in plan["steps"].as_array().unwrap() {
        let kind = step["kind"].as_str().unwrap();
        assert!(
            !["STOP_GUEST", "DETACH_INTERFACES", "DETACH_VOLUMES"].contains(&kind),
            "{step}"
        );
    }
}

#[test]
fn plan_and_apply_help_list_the_intent_flags() {
    for command in ["plan", "apply"] {
        let out = berth(&example("drain-host"), &[command, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in [
            "--drain <HOST>",
            "--evacuate <HOST>",
            "--return-home <HOST>",
            "--rebalance",
        ] {
            assert!(
                help.contains(flag),
                "{command} --help lacks {flag}:\n{help}"
            );
        }
    }
}

/// A state file in `dir` whose journal has one live move of `guest` from `home` to where es.xml
/// has it now (exa01adm01), routed through `pivot`: two completed migrations of one plan.
fn journal_pivoted_move(dir: &Path, guest: &str, home: &str, pivot: &str) {
    use berth::schedule::StepKind;
    use berth::state::{JournalEntry, State, StateStore, StepStatus};
    let hop = |step_id: &str, from: &str, to: &str, minute: u32| JournalEntry {
        plan_id: "swap".into(),
        step_id: step_id.into(),
        kind: StepKind::MigrateGuest,
        guest: guest.into(),
        from: from.into(),
        to: to.into(),
        status: StepStatus::Done,
        started_at: None,
        finished_at: chrono::DateTime::from_timestamp(60 * i64::from(minute), 0),
        error: None,
        boot_id: None,
        once_marker: None,
    };
    let mut state = State::new();
    state.journal = vec![
        hop(&format!("{guest}:MIGRATE_GUEST"), home, pivot, 1),
        hop(
            &format!("{guest}:MIGRATE_GUEST#2"),
            pivot,
            "exa01adm01.example.com",
            2,
        ),
    ];
    let path = dir.join("state/berth.state.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    StateStore::open(&path).unwrap().save(&mut state).unwrap();
}

#[test]
fn return_home_takes_a_guest_back_to_where_it_was_before_a_pivoted_move_never_to_the_pivot() {
    // The example (with its SR-IOV pools) without its drain.
    let dir = example_edited("drain-host", "  drain = true\n", "  drain = false\n");
    let vm02 = "exa01adm01vm02.example.com";
    journal_pivoted_move(
        dir.path(),
        vm02,
        "exa01adm02.example.com",
        "exa01adm03.example.com",
    );
    // vm02 only passed through exa01adm03: nothing of it to bring back there.
    let pivot = json(dir.path(), &["-return-home", "exa01adm03"]);
    assert!(
        pivot["errors"].as_array().unwrap().is_empty(),
        "{}",
        pivot["errors"]
    );
    assert!(moves(&pivot).is_empty(), "{:#?}", moves(&pivot));
    // Its home is exa01adm02, where it was before the move.
    let home = json(dir.path(), &["-return-home", "exa01adm02"]);
    assert!(
        home["errors"].as_array().unwrap().is_empty(),
        "{}",
        home["errors"]
    );
    let moves = moves(&home);
    assert_eq!(moves.len(), 1, "{moves:#?}");
    let (from, to, _, reason) = &moves[vm02];
    assert_eq!(
        (from.as_str(), to.as_str()),
        ("exa01adm01.example.com", "exa01adm02.example.com")
    );
    assert!(reason.starts_with("return home: "), "{reason}");
}

#[test]
fn a_plan_says_when_a_rebalance_stopped_at_its_budget_in_text_and_json() {
    let dir = example_edited("rebalance", "  max_moves = 4\n", "  max_moves = 1\n");
    let plan = json(dir.path(), &[]);
    assert_eq!(moves(&plan).len(), 1);
    let outcome = &plan["rebalances"][0];
    assert_eq!(outcome["name"], "rack1");
    assert_eq!(outcome["stop"], "budget");
    assert_eq!(outcome["budget"], serde_json::json!(["max_moves = 1"]));
    assert_eq!(outcome["moves"], 1);
    let after = outcome["spreads"][0]["after"].as_f64().unwrap();
    let above = outcome["above_threshold"].as_f64().unwrap();
    assert!(
        after > 0.10 && (above - (after - 0.10)).abs() < 1e-9,
        "{outcome}"
    );
    assert!(
        (spread(&used_after(&plan)) - after).abs() < 1e-9,
        "{outcome}"
    );
    let message = outcome["message"].as_str().unwrap();
    assert!(
        message.starts_with("rebalance \"rack1\" stopped at its budget (max_moves = 1) after 1 move: memory spread 66.7% → ")
            && message.ends_with(&format!(
                "still {:.1} points above the threshold of 10.0%; the next plan continues it",
                above * 100.0
            )),
        "{message}"
    );

    let text = berth(dir.path(), &["plan", "-no-color"]);
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8_lossy(&text.stdout);
    let section = &text[text.find("\nRebalance:\n").expect("a Rebalance section")..];
    let section = &section[..section.find("\nHosts").unwrap()];
    let joined = section.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(joined.contains(&format!("~ {message}")), "{section}");

    // Without the cut, the rebalance completes within its threshold, and says so.
    let full = json(&example("rebalance"), &[]);
    assert_eq!(full["rebalances"][0]["stop"], "within_threshold");
    assert_eq!(full["rebalances"][0]["above_threshold"], 0.0);
}
