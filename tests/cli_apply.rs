//! `berth apply`, `berth state`, `berth force-unlock` through the real binary, on copies of the
//! drain example (common/drain_lab.rs) in temporary directories.
//!
//! Each berth process opens libvirt's test driver afresh from the node files, so what one
//! process changed in libvirt is gone for the next; what carries over is what berth writes:
//! the state file, the lock, es.xml and its backup. The tests check those across processes;
//! resuming after a crash is tested in-process (tests/apply_session.rs).

mod common;

use std::path::Path;
use std::process::Output;

use berth::inventory::load::sha256_hex;
use berth::plan::unified_diff;
use berth::state::StateStore;
use common::drain_lab::*;
use common::schema;
use serde_json::Value;

// The binary as given: unlike `common::cli::berth`, `plan` keeps its state lock, which the
// lock tests here need.
use common::cli::{assert_contains, assert_exit, run as berth, stderr, stdout};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn state_path(dir: &Path) -> std::path::PathBuf {
    dir.join("state/berth.state.json")
}

/// The drain lab with its state directory and the store there (to hold its lock).
fn lab_with_state_store() -> (tempfile::TempDir, StateStore) {
    let lab = drain_lab();
    std::fs::create_dir(lab.path().join("state")).unwrap();
    let store = StateStore::open(state_path(lab.path())).unwrap();
    (lab, store)
}

fn backups(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("es.xml.berth-backup-")
        })
        .collect()
}

#[test]
fn without_a_terminal_apply_refuses_to_ask_and_changes_nothing() {
    let lab = drain_lab();
    let es_before = read(&lab.path().join("es.xml"));
    let out = berth(lab.path(), &["apply"]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("Moves (3)"),
        "the plan is shown first:\n{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert_contains(&err, "standard input is not a terminal");
    assert_contains(&err, "-auto-approve");
    assert_eq!(read(&lab.path().join("es.xml")), es_before);
    assert!(!state_path(lab.path()).exists(), "nothing was journaled");
    assert!(
        !lab.path().join("state/berth.state.json.lock").exists(),
        "the lock is released"
    );

    let json = berth(lab.path(), &["apply", "--json"]);
    assert_exit(&json, 1);
    assert!(stderr(&json).contains("-auto-approve"), "{}", stderr(&json));
}

#[test]
fn an_approved_apply_moves_every_guest_records_state_and_writes_es_xml_back() {
    let lab = drain_lab();
    let dir = lab.path();
    let original = read(&dir.join("es.xml"));
    let planned: Value =
        serde_json::from_slice(&berth(dir, &["plan", "--json", "-lock=false"]).stdout).unwrap();

    let out = berth(dir, &["apply", "-auto-approve"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert_contains(&text, &format!("{VM01}: STOP_GUEST started"));
    assert_contains(&text, &format!("{VM01}: STARTUP_GUEST done"));
    assert_contains(
        &text,
        "Apply complete! 13 steps done, 0 failed, 0 skipped, 0 not run.",
    );
    assert_contains(&text, "es.xml written back");

    // es.xml changed by exactly the diff the plan showed; the original is a private backup.
    let now = read(&dir.join("es.xml"));
    assert_eq!(
        unified_diff(planned["es_xml_path"].as_str().unwrap(), &original, &now),
        planned["es_xml_diff"]
    );
    let backups = backups(dir);
    assert_eq!(backups.len(), 1);
    assert_eq!(read(&backups[0]), original);
    assert_eq!(mode(&backups[0]), 0o600);
    assert_eq!(
        (mode(&state_path(dir)), mode(&dir.join("state"))),
        (0o600, 0o700)
    );

    let list = berth(dir, &["state", "list"]);
    assert_exit(&list, 0);
    let list = stdout(&list);
    for (guest, host, state) in TARGETS {
        let line = list
            .lines()
            .find(|l| l.starts_with(guest))
            .unwrap_or_else(|| panic!("{guest} missing:\n{list}"));
        let cells: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(&cells[1..3], [host, state], "{line}");
        assert!(cells[3].ends_with(" done"), "{line}");
    }
    let show = berth(dir, &["state", "show", "exa01adm01vm01"]);
    assert_exit(&show, 0);
    let show = stdout(&show);
    assert_contains(&show, &format!("  host:  {ADM03}"));
    for kind in [
        "STOP_GUEST",
        "DETACH_INTERFACES",
        "MIGRATE_GUEST",
        "ATTACH_INTERFACES",
        "STARTUP_GUEST",
    ] {
        assert!(
            show.contains(&format!("{VM01}:{kind}  done")),
            "{kind}:\n{show}"
        );
    }
    let unknown = berth(dir, &["state", "show", "nosuchvm"]);
    assert_exit(&unknown, 1);
    assert_contains(&stderr(&unknown), "records nothing about guest nosuchvm");

    // The next berth process reads the test driver's node files afresh (the guests are back on
    // exa01adm01) while es.xml says where apply put them: that is drift, and berth stops.
    let again = berth(dir, &["apply", "-auto-approve"]);
    assert_exit(&again, 1);
    assert_contains(&stdout(&again), "es.xml and libvirt disagree");
}

#[test]
fn json_output_is_one_event_per_line() {
    let lab = drain_lab();
    let out = berth(lab.path(), &["apply", "-auto-approve", "--json"]);
    assert_exit(&out, 0);
    let events: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // The stream says its format first; every message validates against the committed schema.
    assert_eq!(kinds.first(), Some(&"version"));
    assert_eq!(
        events[0]["format_version"],
        berth::apply::stream::FORMAT_VERSION
    );
    let validator = schema::committed_validator(berth::apply::stream::APPLY_EVENTS_SCHEMA_PATH);
    for event in &events {
        schema::assert_valid(&validator, &event.to_string(), event);
        assert_eq!(event["@level"], "info", "{event}");
        assert!(event["@message"].as_str().is_some_and(|m| !m.is_empty()));
        let stamp = event["@timestamp"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp}: {e}"));
    }
    assert_eq!(kinds[1], "start");
    let first_step = format!(
        "{}: {} started (",
        events[1]["guest"].as_str().unwrap(),
        events[1]["kind"].as_str().unwrap()
    );
    assert!(
        events[1]["@message"]
            .as_str()
            .unwrap()
            .starts_with(&first_step),
        "{}",
        events[1]
    );
    assert_eq!(kinds.iter().filter(|k| **k == "start").count(), 13);
    assert_eq!(kinds.iter().filter(|k| **k == "done").count(), 13);
    let summary = events.last().unwrap();
    assert_eq!(
        (
            summary["event"].as_str(),
            summary["done"].as_u64(),
            summary["failed"].as_u64()
        ),
        (Some("summary"), Some(13), Some(0))
    );
    assert!(
        stderr(&out).contains("Apply complete!"),
        "the summary text goes to stderr: {}",
        stderr(&out)
    );
}

#[test]
fn a_held_lock_refuses_apply_and_plan_until_force_unlock_with_its_id() {
    let (lab, store) = lab_with_state_store();
    let dir = lab.path();
    let guard = store.lock("apply").unwrap();
    let info = guard.info().clone();

    let out = berth(dir, &["apply", "-auto-approve"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for part in [
        "is locked".to_string(),
        format!("held by {} (pid {})", info.owner, info.pid),
        "for `apply`".into(),
        info.created
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        format!("berth force-unlock {}", info.id),
    ] {
        assert!(err.contains(&part), "missing `{part}` in: {err}");
    }
    assert!(info.owner.ends_with(&format!("@{}", info.host)));
    assert_exit(&berth(dir, &["plan"]), 1);
    assert_exit(&berth(dir, &["plan", "-lock=false"]), 0);

    let wrong = berth(dir, &["force-unlock", "not-the-id"]);
    assert_exit(&wrong, 1);
    assert_contains(&stderr(&wrong), &format!("is held under id {}", info.id));
    assert!(store.lock_path().exists());
    let right = berth(dir, &["force-unlock", &info.id]);
    assert_exit(&right, 0);
    assert_contains(&stdout(&right), &format!("Removed lock {}", info.id));
    assert!(!store.lock_path().exists());
    let none = berth(dir, &["force-unlock", &info.id]);
    assert_exit(&none, 1);
    assert!(stderr(&none).contains("is not locked"), "{}", stderr(&none));
    drop(guard);

    assert_exit(&berth(dir, &["apply", "-auto-approve"]), 0);
}

/// Reads the local lock file's holder pid, if there is a complete record.
fn lock_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("state/berth.state.json.lock")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["pid"].as_u64().map(|p| p as u32)
}

#[test]
fn a_berth_killed_mid_apply_leaves_no_lock_behind() {
    let lab = drain_lab();
    let dir = lab.path();
    let held = common::held::apply_holding_lock(dir, &[], &[], |pid| lock_pid(dir) == Some(pid));
    let pid = held.child.id();

    let refused = berth(dir, &["plan"]);
    assert_exit(&refused, 1);
    assert_contains(&stderr(&refused), &format!("(pid {pid}) for `apply`"));

    held.kill_9();
    // Its record stays in the file, but the OS lock died with it: no force-unlock needed.
    assert_eq!(lock_pid(dir), Some(pid));
    let out = berth(dir, &["apply", "-auto-approve"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("Apply complete!"), "{}", stdout(&out));
    assert!(!dir.join("state/berth.state.json.lock").exists());
}

#[test]
fn lock_timeout_waits_for_the_holder_and_lock_false_applies_without_the_lock() {
    let (lab, store) = lab_with_state_store();
    let dir = lab.path();
    let guard = store.lock("apply").unwrap();

    // A bounded wait still ends in the refusal naming the holder.
    let out = berth(dir, &["plan", "-lock-timeout=300ms"]);
    assert_exit(&out, 1);
    assert_contains(&stderr(&out), &format!("(pid {})", std::process::id()));
    let bad = berth(dir, &["plan", "-lock-timeout", "5 parsecs"]);
    assert_exit(&bad, 1);
    assert!(stderr(&bad).contains("lock-timeout"), "{}", stderr(&bad));

    // A plan waiting with a long timeout goes on as soon as the holder lets go.
    let mut waiter = std::process::Command::new(assert_cmd::cargo::cargo_bin("berth"))
        .arg("-C")
        .arg(dir)
        .args(["plan", "-lock-timeout", "2m"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(waiter.stderr.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_contains(&line, "Acquiring state lock");
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "it waits while the lock is held"
    );
    drop(guard);
    let waited = waiter.wait_with_output().unwrap();
    assert_exit(&waited, 0);
    assert_contains(&stdout(&waited), "MIGRATE_GUEST");

    // -lock=false applies under someone else's lock, with a loud warning.
    let guard = store.lock("apply").unwrap();
    let out = berth(dir, &["apply", "-auto-approve", "-lock=false"]);
    assert_exit(&out, 0);
    assert_contains(
        &stderr(&out),
        "Warning: -lock=false: applying WITHOUT the state lock",
    );
    assert_eq!(
        store.lock_info().unwrap().map(|i| i.id),
        Some(guard.info().id.clone()),
        "the holder's lock is untouched"
    );
}

/// Saves a plan of a fresh lab, lets `edit` change the lab, and applies the saved plan.
fn apply_saved_after(edit: impl FnOnce(&Path)) -> (Output, tempfile::TempDir) {
    let lab = drain_lab();
    let saved = lab.path().join("drain.berth");
    assert_exit(
        &berth(lab.path(), &["plan", &format!("-out={}", saved.display())]),
        0,
    );
    edit(lab.path());
    let out = berth(lab.path(), &["apply", saved.to_str().unwrap()]);
    (out, lab)
}

#[test]
fn a_saved_plan_is_applied_without_asking_only_while_it_still_holds() {
    let (out, lab) = apply_saved_after(|_| {});
    assert_exit(&out, 0);
    assert_contains(&stdout(&out), "Applying the saved plan");
    assert!(stdout(&out).contains("Apply complete!"), "{}", stdout(&out));
    assert_eq!(es_host(lab.path(), VM01), ADM03);

    let mut shas = (String::new(), String::new());
    let (es_edited, lab) = apply_saved_after(|dir| {
        let path = dir.join("es.xml");
        let before = read(&path);
        let after = before.clone() + "<!-- edited by hand -->\n";
        std::fs::write(&path, &after).unwrap();
        shas = (sha256_hex(before.as_bytes()), sha256_hex(after.as_bytes()));
    });
    assert_exit(&es_edited, 1);
    let err = stderr(&es_edited);
    assert_contains(&err, "no longer matches what is");
    let wanted = format!(
        "es.xml changed since the plan was made (sha256 {}…→{}…)",
        &shas.0[..12],
        &shas.1[..12]
    );
    assert_contains(&err, &wanted);
    assert!(!state_path(lab.path()).exists(), "nothing ran");

    let (config_edited, _lab) = apply_saved_after(|dir| {
        let path = dir.join("main.hcl");
        std::fs::write(&path, read(&path) + "\n# edited\n").unwrap();
    });
    assert_exit(&config_edited, 1);
    assert!(
        stderr(&config_edited)
            .contains("the configuration (*.hcl) changed since the plan was made (sha256 ")
    );

    let (started, _lab) = apply_saved_after(|dir| {
        let path = dir.join(format!("nodes/{ADM01}.xml"));
        std::fs::write(
            &path,
            read(&path).replace(
                "<test:runstate>5</test:runstate>",
                "<test:runstate>1</test:runstate>",
            ),
        )
        .unwrap();
    });
    assert_exit(&started, 1);
    let err = stderr(&started);
    assert!(
        err.contains(&format!(
            "guest {VM03} is now running on {ADM01}, the plan saw it shut off"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("host {ADM01} now has ")),
        "the room on the host changed too: {err}"
    );
}

#[test]
fn targets_and_single_steps_limit_what_runs() {
    let lab = drain_lab();
    let dir = lab.path();
    let refused = |args: &[&str], wanted: &str| {
        let out = berth(dir, args);
        assert_exit(&out, 1);
        assert!(stderr(&out).contains(wanted), "{args:?}: {}", stderr(&out));
    };
    refused(
        &["apply", "-auto-approve", "-target", "nosuchvm"],
        "-target nosuchvm: no such guest; the plan moves",
    );
    refused(
        &["apply", "-auto-approve", "--step", "STOP_GUEST"],
        "exactly one -target",
    );
    refused(
        &[
            "apply",
            "-auto-approve",
            "--step",
            "BOGUS",
            "-target",
            "exa01adm01vm01",
        ],
        "unknown step `BOGUS`",
    );
    refused(
        &[
            "apply",
            "-auto-approve",
            "--step",
            "STOP_GUEST",
            "-target",
            "exa01adm01vm03",
        ],
        &format!("not a step of this plan: {VM03} is shut off: nothing to stop"),
    );

    // One step of one move: the plan stays in progress for that guest.
    let out = berth(
        dir,
        &[
            "apply",
            "-auto-approve",
            "--step",
            "STOP_GUEST",
            "-target",
            "exa01adm01vm01",
        ],
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert_contains(&text, "Applied what was asked: 1 step done");
    assert_contains(&text, "or run the next step with --step");
    let show = stdout(&berth(dir, &["state", "show", VM01]));
    assert_contains(&show, &format!("{VM01}:STOP_GUEST  done"));
    assert!(!show.contains("MIGRATE_GUEST"), "{show}");
    assert_contains(&show, "Unfinished plan");
    assert!(
        backups(dir).is_empty(),
        "no move completed, es.xml is untouched"
    );

    // A targeted apply moves only its guest, and es.xml only for it.
    let lab = drain_lab();
    let out = berth(
        lab.path(),
        &["apply", "-auto-approve", "-target", "exa01adm01vm03"],
    );
    assert_exit(&out, 0);
    assert_contains(&stdout(&out), "Apply complete! 3 steps done");
    assert_eq!(es_host(lab.path(), VM03), ADM02);
    assert_eq!(
        (es_host(lab.path(), VM01), es_host(lab.path(), VM02)),
        (ADM01.to_string(), ADM01.to_string())
    );
}

#[test]
fn replan_drops_an_unfinished_plan_and_names_the_guests_it_left_stopped() {
    let lab = drain_lab();
    let dir = lab.path();
    assert_exit(
        &berth(
            dir,
            &[
                "apply",
                "-auto-approve",
                "--step",
                "STOP_GUEST",
                "-target",
                VM01,
            ],
        ),
        0,
    );
    let plan_warning = berth(dir, &["plan"]);
    assert_contains(&stderr(&plan_warning), "of an earlier apply is unfinished");

    let out = berth(dir, &["apply", "-auto-approve", "-replan"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert_contains(&text, "Dropped the unfinished plan");
    assert!(
        text.contains(&format!(
            "Warning: {VM01} was shut down by the dropped plan"
        )),
        "{text}"
    );
    assert_contains(&text, "Apply complete!");
}

/// The drain lab with its `drain = true` line taken out: nothing to do without a flag.
fn undrained_lab() -> tempfile::TempDir {
    let lab = drain_lab();
    let hcl = lab.path().join("main.hcl");
    let text = read(&hcl);
    assert_contains(&text, "  drain = true\n");
    std::fs::write(&hcl, text.replacen("  drain = true\n", "", 1)).unwrap();
    lab
}

#[test]
fn apply_with_an_intent_flag_plans_with_it_and_applies_that_plan() {
    let lab = undrained_lab();
    let dir = lab.path();
    let plain = berth(dir, &["apply", "-auto-approve"]);
    assert_exit(&plain, 0);
    assert!(!stdout(&plain).contains("Moves ("), "{}", stdout(&plain));
    assert!(!state_path(dir).exists(), "nothing ran");

    // The flag plans what `berth plan -drain` shows, and applies it.
    let planned: Value = serde_json::from_slice(
        &berth(
            dir,
            &["plan", "--json", "-lock=false", "-drain", "exa01adm01"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(planned["moves"].as_array().unwrap().len(), 3);
    let out = berth(dir, &["apply", "-auto-approve", "-drain", "exa01adm01"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert_contains(&text, "Moves (3)");
    assert_contains(
        &text,
        "Apply complete! 13 steps done, 0 failed, 0 skipped, 0 not run.",
    );
    for (guest, host, _) in TARGETS {
        assert_eq!(es_host(dir, guest), host, "{guest}");
    }
}

#[test]
fn apply_refuses_intent_flags_with_a_saved_plan() {
    let lab = undrained_lab();
    let dir = lab.path();
    let saved = dir.join("drain.berth");
    let saved = saved.to_str().unwrap();
    assert_exit(
        &berth(
            dir,
            &["plan", "-drain", "exa01adm01", &format!("-out={saved}")],
        ),
        0,
    );
    for flags in [
        &["-drain", "exa01adm01"][..],
        &["-rebalance"],
        &["-evacuate", "exa01adm02"],
        &["-return-home", "exa01adm01"],
        &["-maintenance", "exa01adm02"],
        &["-end-maintenance", "exa01adm02"],
        &["-rolling", "exa01adm02,exa01adm03"],
    ] {
        let mut args = vec!["apply", saved];
        args.extend_from_slice(flags);
        let out = berth(dir, &args);
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{saved} is a saved plan"))
                && err.contains(
                    "intent flags (-drain, -maintenance, -end-maintenance, -evacuate, -return-home, -rebalance, -rolling) cannot change it"
                ),
            "{flags:?}: {err}"
        );
        assert!(!state_path(dir).exists(), "{flags:?}: nothing ran");
    }
    // Without the flags, the saved plan (made with -drain) is applied as it is.
    let out = berth(dir, &["apply", saved]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("Apply complete!"), "{}", stdout(&out));
    assert_eq!(es_host(dir, VM01), ADM03);
}

#[test]
fn a_step_that_did_nothing_exits_1_and_says_why() {
    let lab = drain_lab();
    let dir = lab.path();
    let step = |name: &str| {
        berth(
            dir,
            &["apply", "-auto-approve", "--step", name, "-target", VM01],
        )
    };
    // Its earlier steps are not done: nothing runs.
    let out = step("MIGRATE_GUEST");
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert_contains(&text, "--step MIGRATE_GUEST did nothing: depends on");
    assert_contains(&text, "Nothing applied: 0 steps done");

    assert_exit(&step("STOP_GUEST"), 0);
    // Done in an earlier run: nothing to do again.
    let out = step("STOP_GUEST");
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert_contains(
        &text,
        "--step STOP_GUEST did nothing: done in an earlier run.",
    );
}

#[test]
fn apply_exclude_leaves_those_guests_alone() {
    let lab = drain_lab();
    let dir = lab.path();
    let out = berth(dir, &["apply", "-auto-approve", "-exclude", "nosuchvm"]);
    assert_exit(&out, 1);
    assert_contains(
        &stderr(&out),
        "-exclude nosuchvm: no such guest; the plan moves",
    );
    let out = berth(
        dir,
        &[
            "apply",
            "-auto-approve",
            "-exclude",
            "exa01adm01vm01",
            "-exclude=exa01adm01vm02",
        ],
    );
    assert_exit(&out, 0);
    assert_eq!(es_host(dir, VM03), ADM02);
    assert_eq!(
        (es_host(dir, VM01), es_host(dir, VM02)),
        (ADM01.to_string(), ADM01.to_string())
    );
}

#[test]
fn a_refused_json_apply_ends_its_stream_with_a_diagnostic() {
    let lab = drain_lab();
    let out = berth(lab.path(), &["apply", "--json"]);
    assert_exit(&out, 1);
    let messages: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["event"], "version");
    assert_eq!(messages[1]["event"], "diagnostic");
    assert_eq!(messages[1]["@level"], "error");
    let summary = messages[1]["summary"].as_str().unwrap();
    assert_contains(summary, "--json cannot ask for confirmation");
    assert_eq!(messages[1]["@message"].as_str(), Some(summary));
    assert!(stderr(&out).contains("--json cannot ask for confirmation"));
}

/// `berth ARGS…` in `dir`, with `setup` run in the child just before it execs berth (it may
/// call only async-signal-safe functions).
fn berth_set_up(
    dir: &Path,
    args: &[&str],
    setup: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("-C").arg(dir).args(args).env("NO_COLOR", "1");
    // SAFETY: the callers' closures call only async-signal-safe functions (setrlimit, signal,
    // umask) and touch nothing else between fork and exec.
    unsafe {
        cmd.pre_exec(setup);
    }
    cmd.output().unwrap()
}

/// `berth ARGS…` in `dir` with a file size limit (RLIMIT_FSIZE) of `limit` bytes and SIGXFSZ
/// ignored: a write past the limit fails with EFBIG, as one on a full disk fails with ENOSPC.
/// Both settings survive exec.
fn berth_with_file_size_limit(dir: &Path, limit: u64, args: &[&str]) -> Output {
    berth_set_up(dir, args, move || {
        let rlimit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: plain system calls on values owned here.
        unsafe {
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0
                || libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    })
}

/// Under `umask 000` (nothing masked), every file berth creates that holds the plan, the state
/// or what the log says is still mode 0600, and the state directory 0700: the saved plan, the
/// state, the es.xml backup, `es_xml_out`, the log file and a pulled state.
#[test]
fn files_berth_creates_are_private_even_under_umask_000() {
    let lab = drain_lab();
    let dir = lab.path();
    let hcl = read(&dir.join("main.hcl"));
    let umask_000 = || {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(0) };
        Ok(())
    };
    for args in [
        &["plan", "-lock=false", "-out=p.berth"][..],
        &["apply", "--log-file=berth.log", "p.berth"],
        &["state", "pull", "-out=pulled.json"],
    ] {
        assert_exit(&berth_set_up(dir, args, umask_000), 0);
    }
    // es.xml written to a file of its own (a new file) rather than in place.
    std::fs::write(
        dir.join("main.hcl"),
        hcl.replacen(
            "es_xml = \"es.xml\"",
            "es_xml = \"es.xml.orig\"\n  es_xml_out = \"es.out.xml\"",
            1,
        ),
    )
    .unwrap();
    std::fs::copy(&backups(dir)[0], dir.join("es.xml.orig")).unwrap();
    std::fs::remove_dir_all(dir.join("state")).unwrap();
    assert_exit(
        &berth_set_up(dir, &["apply", "-auto-approve"], umask_000),
        0,
    );

    let mut private = vec![
        dir.join("p.berth"),
        state_path(dir),
        dir.join("berth.log"),
        dir.join("pulled.json"),
        dir.join("es.out.xml"),
    ];
    private.extend(backups(dir));
    assert_eq!(private.len(), 6);
    for path in &private {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(&dir.join("state")), 0o700);
}

/// A disk that fills up under the state: whichever write fails (the first one, or one in the
/// middle of the apply), berth exits 1 naming the state file and why, leaves no temporary or
/// half-written file, keeps the last state whole (or, when the first write failed, no state
/// directory at all) and es.xml untouched; once there is room, `berth apply` continues the
/// plan and finishes it.
#[test]
fn a_full_disk_under_the_state_leaves_the_last_state_whole_and_the_next_apply_finishes() {
    let lab = drain_lab();
    let dir = lab.path();
    let original = read(&dir.join("es.xml"));
    let mut limit = 4096;
    let failed = loop {
        assert!(
            limit <= 1 << 20,
            "no size limit made the apply fail half-way"
        );
        let out = berth_with_file_size_limit(dir, limit, &["apply", "-auto-approve"]);
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert_contains(&err, "berth.state.json");
        assert_contains(&err, "File too large");
        assert_eq!(read(&dir.join("es.xml")), original, "limit {limit}");
        if state_path(dir).exists() {
            break err;
        }
        assert!(!dir.join("state").exists(), "limit {limit}: {err}");
        limit += 2048;
    };
    assert_contains(&failed, "the state could not be written during the apply");
    let left: Vec<String> = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["berth.state.json"], "nothing half-written beside it");
    let store = StateStore::open(state_path(dir)).unwrap();
    let state = store.load().unwrap().expect("the last state reads");
    assert!(state.in_progress.is_some(), "the plan in progress is kept");

    let out = berth(dir, &["apply", "-auto-approve"]);
    assert_exit(&out, 0);
    assert_contains(&stdout(&out), "Apply complete!");
    assert!(store.load().unwrap().unwrap().in_progress.is_none());
}

/// A step's error is what a host answered (libvirt, a volume command's stderr), kept in the
/// state: `state show` and `state list` show its control characters instead of sending them
/// to the terminal.
#[test]
fn state_show_prints_what_hosts_answered_without_terminal_controls() {
    let lab = drain_lab();
    let dir = lab.path();
    assert_exit(&berth(dir, &["apply", "-auto-approve"]), 0);
    let path = state_path(dir);
    let mut state: Value = serde_json::from_str(&read(&path)).unwrap();
    let entry = state["journal"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["guest"] == VM01)
        .unwrap();
    entry["status"] = "failed".into();
    entry["error"] = "edvutil: \u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}[2J\r\u{9b}2Jok".into();
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    for args in [&["state", "show", VM01][..], &["state", "list"]] {
        let out = berth(dir, args);
        assert_exit(&out, 0);
        let text = stdout(&out);
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\r', '\u{9b}']),
            "{args:?}: {text:?}"
        );
    }
    assert_contains(
        &stdout(&berth(dir, &["state", "show", VM01])),
        "edvutil: \\u{1b}]52;c;cm0gLXJmIH4=\\u{7}\\u{1b}[2J\\u{d}\\u{9b}2Jok",
    );
}
