//! Rolling maintenance (`-rolling`, `rolling_maintenance { … }`) on libvirt's test driver:
//! the phased plan (order, phase barriers, capacity and budgets per phase, moves), its views,
//! validation errors, and the executor's phase handling (`--stop-after-phase`, a host command
//! never run twice) with the host command run over SSH on a private sshd.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/fs.rs"]
mod fs_util;
#[path = "common/rack.rs"]
mod rack;
#[path = "common/sshd.rs"]
mod sshd;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth::apply::{
    ApplyReport, Event, ExecOptions, HostAccess, LibvirtRunner, RunnerSettings, Session, execute,
};
use berth::config::BackWhen;
use berth::plan::{MaintenanceAction, Plan};
use berth::schedule::StepKind;
use berth::state::{JournalEntry, State, StateStore, StepStatus};
use cli::berth;
use rack::Rack;
use sshd::Sshd;

fn by_host_name(host_name: &str, _machine_id: &str) -> String {
    host_name.to_string()
}

const COMMAND: &str = r#"rolling_maintenance {
  host_command = ["/usr/sbin/patch-and-reboot", "--yes"]
}
"#;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn plan_of(dir: &Path, args: &[&str]) -> Plan {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    let out = berth(dir, &all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every step `id` depends on, directly or not.
fn ancestors<'a>(plan: &'a Plan, id: &str) -> BTreeSet<&'a str> {
    let by_id: HashMap<&str, &berth::schedule::Step> =
        plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = by_id[id].depends_on.iter().map(String::as_str).collect();
    while let Some(d) = todo.pop() {
        if seen.insert(d) {
            todo.extend(by_id[d].depends_on.iter().map(String::as_str));
        }
    }
    seen
}

/// Each phase starts once the phase before it has ended: every step of phase n+1 comes after
/// every step of phase n in the graph.
#[track_caller]
fn phases_are_sequential(plan: &Plan) {
    for pair in plan.phases.windows(2) {
        let before: BTreeSet<&str> = pair[0].steps.iter().map(String::as_str).collect();
        for step in &pair[1].steps {
            let up = ancestors(plan, step);
            let missing: Vec<_> = before.difference(&up).collect();
            assert!(
                missing.is_empty(),
                "{step} (phase {}) does not wait for {missing:?} of phase {}",
                pair[1].number,
                pair[0].number
            );
        }
    }
}

#[test]
fn a_two_host_rack_is_serviced_host_by_host_stopping_one_member_per_cluster_in_its_own_phase() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, COMMAND);
    let (h0, h1) = (rack.host(0).to_string(), rack.host(1).to_string());
    let order = format!("{h1},{h0}");
    let plan = plan_of(rack.path(), &["-rolling", &order]);
    assert!(plan.is_ok(), "{:?}", plan.errors);
    // In the order given, one host each.
    let hosts: Vec<&str> = plan.phases.iter().map(|p| p.host.as_str()).collect();
    assert_eq!(hosts, [h1.as_str(), h0.as_str()]);
    phases_are_sequential(&plan);
    for (p, host) in plan.phases.iter().zip([&h1, &h0]) {
        // Every RAC member on the host is stopped in place and started again in this phase,
        // and the clusters span both hosts, so each cluster has exactly one member down.
        let stopped: Vec<&str> = p
            .guests
            .iter()
            .filter(|g| g.action == MaintenanceAction::StoppedInPlace)
            .map(|g| g.guest.as_str())
            .collect();
        let started: BTreeSet<&str> = p
            .guests
            .iter()
            .filter(|g| g.action == MaintenanceAction::StartedInPlace)
            .map(|g| g.guest.as_str())
            .collect();
        assert!(!stopped.is_empty(), "phase {}", p.number);
        assert_eq!(stopped.iter().copied().collect::<BTreeSet<_>>(), started);
        let on_host: BTreeSet<String> = rack
            .guests_on(if host == &h0 { 0 } else { 1 })
            .into_iter()
            .collect();
        assert!(stopped.iter().all(|g| on_host.contains(*g)), "{stopped:?}");
        // The host's steps: HOST_COMMAND after every stop, WAIT_HOST after it, every start
        // after WAIT_HOST.
        let command = format!("{host}:HOST_COMMAND");
        let wait = format!("{host}:WAIT_HOST");
        assert!(p.steps.contains(&command) && p.steps.contains(&wait));
        let before_command = ancestors(&plan, &command);
        for g in &stopped {
            assert!(before_command.contains(format!("{g}:STOP_GUEST").as_str()));
            let start = plan
                .steps
                .iter()
                .find(|s| {
                    s.guest == *g && s.kind == StepKind::StartupGuest && p.steps.contains(&s.id)
                })
                .unwrap();
            assert!(ancestors(&plan, &start.id).contains(wait.as_str()));
        }
        let step = plan.steps.iter().find(|s| s.id == command).unwrap();
        assert_eq!(step.items, ["/usr/sbin/patch-and-reboot", "--yes"]);
        // A guest stopped in place is down during its own phase only: its downtime ends
        // within the phase's predicted span.
        let (start, duration) = (p.start_s.unwrap(), p.duration_s.unwrap());
        for g in p
            .guests
            .iter()
            .filter(|g| g.action == MaintenanceAction::StoppedInPlace)
        {
            let down = g
                .downtime_s
                .expect("a downtime for a guest stopped in place");
            assert!(
                down > 0.0 && down <= duration,
                "{g:?} in {start}+{duration}"
            );
        }
    }
    // Phase times add up to the plan's prediction.
    let timing = plan.timing.as_ref().unwrap();
    let last = plan.phases.last().unwrap();
    assert!((last.start_s.unwrap() + last.duration_s.unwrap() - timing.makespan_s).abs() < 1e-6);
    // es.xml ends as it began: every guest is back where it was.
    assert!(plan.es_xml_diff.is_empty(), "{}", plan.es_xml_diff);
}

#[test]
fn guests_move_only_in_their_own_hosts_phase_off_and_back_and_capacity_holds_in_every_phase() {
    let dir = tempfile::tempdir().unwrap();
    fs_util::copy_dir(&cli::example("quickstart"), dir.path());
    let hcl = std::fs::read_to_string(dir.path().join("main.hcl")).unwrap();
    std::fs::write(
        dir.path().join("main.hcl"),
        hcl.replace("  drain = true\n", "") + COMMAND,
    )
    .unwrap();
    let plan = plan_of(
        dir.path(),
        &[
            "-rolling",
            "exa01adm01",
            "-rolling",
            "exa01adm02,exa01adm03",
        ],
    );
    assert!(plan.is_ok(), "{:?}", plan.errors);
    assert_eq!(plan.phases.len(), 3);
    phases_are_sequential(&plan);
    let start = plan_of(dir.path(), &[]);
    let home: BTreeMap<String, String> = start
        .fingerprints
        .guests
        .iter()
        .map(|(g, hs)| (g.clone(), hs.split('/').next().unwrap().to_string()))
        .collect();
    let mut moves_total = 0;
    for p in &plan.phases {
        let ids: BTreeSet<&str> = p.steps.iter().map(String::as_str).collect();
        let indices: BTreeSet<usize> = plan
            .steps
            .iter()
            .filter(|s| ids.contains(s.id.as_str()))
            .map(|s| s.move_index)
            .collect();
        let mut per_guest: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for m in indices.iter().map(|&i| &plan.moves[i]) {
            if m.kind.is_migrate() {
                per_guest
                    .entry(&m.guest)
                    .or_default()
                    .push((m.from.as_str(), m.to.as_str()));
            }
        }
        for (guest, hops) in &per_guest {
            // Only the phase's host's guests move, off it and straight back.
            assert_eq!(home[*guest], p.host, "{guest} moved in phase {}", p.number);
            assert_eq!(hops.len(), 2, "{guest}: {hops:?}");
            assert_eq!(hops[0].0, p.host);
            assert_eq!(hops[1], (hops[0].1, p.host.as_str()));
        }
        let counted: usize = per_guest.values().map(Vec::len).sum();
        assert_eq!(p.moves, counted);
        moves_total += counted;
    }
    assert_eq!(
        moves_total,
        plan.moves.iter().filter(|m| m.kind.is_migrate()).count()
    );
    // No host above its capacity at any instant of any phase.
    for h in &plan.hosts {
        assert!(h.memory_peak_mib <= h.memory_mib, "{h:?}");
    }
    let text = stdout(&berth(
        dir.path(),
        &["plan", "-rolling", "exa01adm01,exa01adm02,exa01adm03"],
    ));
    for needle in [
        "Rolling maintenance (3 phases",
        "Phase 1: exa01adm01.example.com",
        "── Phase 3: exa01adm03.example.com",
        "exa01adm02.example.com: HOST_COMMAND",
        "rolling maintenance of 3 hosts in 3 phases",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn views_show_the_phases() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, COMMAND);
    let order = format!("{},{}", rack.host(0), rack.host(1));
    let markdown = stdout(&berth(
        rack.path(),
        &["plan", "--markdown", "-rolling", &order],
    ));
    assert!(
        markdown.contains("#### Rolling maintenance (2 phases"),
        "{markdown}"
    );
    assert!(markdown.contains("##### Phase 2: "), "{markdown}");
    let out = berth(
        rack.path(),
        &["plan", "-rolling", &order, "-out", "rolling.berth"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dot = stdout(&berth(rack.path(), &["graph", "rolling.berth"]));
    assert!(dot.contains("subgraph \"cluster_phase_1\""), "{dot}");
    assert!(dot.contains("subgraph \"cluster_phase_2\""), "{dot}");
    assert!(
        dot.contains("HOST_COMMAND") && dot.contains("WAIT_HOST"),
        "{dot}"
    );
    let shown = stdout(&berth(rack.path(), &["show", "rolling.berth"]));
    assert!(shown.contains("Phase 1: "), "{shown}");
    // What WAIT_HOST waits for: a reboot by default, said in the text and in the JSON.
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(&shown).contains(
            "WAIT_HOST until it has rebooted (its boot id changed; back_when = \"rebooted\")"
        ),
        "{shown}"
    );
    // The saved plan records the flag, so applying it plans the same rolling maintenance.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rack.path().join("rolling.berth")).unwrap())
            .unwrap();
    assert_eq!(saved["intents"]["rolling"][0], rack.host(0));
    assert_eq!(saved["phases"][1]["number"], 2);
    assert_eq!(saved["phases"][1]["back_when"], "rebooted");
    let wait = saved["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "WAIT_HOST")
        .unwrap();
    assert!(
        wait["detail"]
            .as_str()
            .unwrap()
            .contains("has rebooted and is back (its boot id differs"),
        "{wait}"
    );
    // With back_when = "answers" the plan says no reboot is awaited.
    let answers = Rack::new(
        "elastic_sample.xml",
        by_host_name,
        "rolling_maintenance {\n  host_command = [\"/usr/sbin/patch\"]\n  back_when = \"answers\"\n}\n",
    );
    let text = stdout(&berth(
        answers.path(),
        &["plan", "-rolling", answers.host(0)],
    ));
    assert!(
        words(&text).contains("no reboot awaited: back_when = \"answers\""),
        "{text}"
    );
    // Replayed on the duration model, it takes as long as predicted, and its host services
    // are not counted as moves.
    let guest_moves = saved["moves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] != "host_service")
        .count();
    let simulated = stdout(&berth(rack.path(), &["simulate", "rolling.berth"]));
    assert!(
        simulated.contains(&format!("steps of {guest_moves} moves")),
        "{simulated}"
    );
}

#[test]
fn bad_rolling_maintenances_are_refused_naming_where() {
    let rack = Rack::new("elastic_sample.xml", by_host_name, COMMAND);
    let h0 = rack.host(0).to_string();
    let short = h0.split('.').next().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-rolling".into(), "iad103712exdcl04".into()],
            "is a storage cell",
        ),
        (
            vec!["-rolling".into(), "nosuchhost".into()],
            "host \"nosuchhost\" is not in the topology",
        ),
        (
            vec!["-rolling".into(), format!("{h0},{short}")],
            "names host",
        ),
        (
            vec![
                "-rolling".into(),
                h0.clone(),
                "-maintenance".into(),
                short.clone(),
            ],
            "also has `maintenance = true`",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["plan"];
        all.extend(args.iter().map(String::as_str));
        let out = berth(rack.path(), &all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        assert!(err.contains("<command line>"), "{args:?}: where? {err}");
    }
    // The phases start from a settled placement: other moves first (quickstart drains
    // exa01adm01).
    let settled = tempfile::tempdir().unwrap();
    fs_util::copy_dir(&cli::example("quickstart"), settled.path());
    let hcl = std::fs::read_to_string(settled.path().join("main.hcl")).unwrap();
    std::fs::write(settled.path().join("main.hcl"), hcl + COMMAND).unwrap();
    let out = berth(settled.path(), &["plan", "-rolling", "exa01adm02"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("[rolling_start]"), "{err}");
    // Without a host command, the error points at the hosts in main.hcl.
    let bare = Rack::new(
        "elastic_sample.xml",
        by_host_name,
        &format!("rolling_maintenance {{\n  hosts = [\"{h0}\"]\n}}\n"),
    );
    let out = berth(bare.path(), &["plan"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("host_command") && err.contains("main.hcl:"),
        "{err}"
    );
    // An unknown back_when is refused where it is written, naming the values.
    let when = Rack::new(
        "elastic_sample.xml",
        by_host_name,
        "rolling_maintenance {\n  host_command = [\"true\"]\n  back_when = \"sometimes\"\n}\n",
    );
    let out = berth(when.path(), &["plan", "-rolling", when.host(0)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("invalid value \"sometimes\" for `back_when`")
            && err.contains("valid values: \"rebooted\", \"answers\"")
            && err.contains("main.hcl:"),
        "{err}"
    );
    // A program that is an option is refused where it is written.
    let dash = Rack::new(
        "elastic_sample.xml",
        by_host_name,
        "rolling_maintenance {\n  host_command = [\"-oProxyCommand=x\"]\n}\n",
    );
    let out = berth(dash.path(), &["plan"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("starts with `-`") && err.contains("main.hcl:"),
        "{err}"
    );
    // --stop-after-phase is for rolling plans, and changes nothing elsewhere.
    let out = berth(
        rack.path(),
        &[
            "apply",
            "-auto-approve",
            "--stop-after-phase",
            "1",
            "-maintenance",
            &h0,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--stop-after-phase"),
        "{}",
        stderr(&out)
    );
    assert!(!rack.path().join("berth.state").exists());
}

/// The runner over `plan`'s hosts: each a test-driver node file of the rack, with SSH to the
/// private sshd for the host command.
fn runner(rack: &Rack, sshd: &Sshd, settings: RunnerSettings) -> Arc<LibvirtRunner> {
    let hosts: BTreeMap<String, HostAccess> = rack
        .es
        .hosts
        .iter()
        .map(|h| {
            let node = rack.path().join("nodes").join(format!("{}.xml", h.name));
            (
                h.name.clone(),
                HostAccess {
                    uri: format!("test://{}", node.display()),
                    migration_uri: None,
                    peer_uri: None,
                    ssh: Some(sshd.target(sshd.known_hosts())),
                },
            )
        })
        .collect();
    Arc::new(LibvirtRunner::new(
        hosts,
        settings,
        tokio::runtime::Handle::current(),
    ))
}

/// The runner's settings for a host command that reboots (`rebooted`) or does not
/// (`answers`), waiting at most `back_timeout_s` for the host.
/// Applies `plan` with the rack's own state file, `state` holding the journal so far.
async fn apply(
    rack: &Rack,
    plan: &Plan,
    runner: Arc<LibvirtRunner>,
    state: &mut State,
    opts: &ExecOptions,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> ApplyReport {
    let store = StateStore::open(rack.path().join("state.json")).unwrap();
    execute(plan, runner, &store, state, opts, on_event)
        .await
        .unwrap()
}

/// The plan applied once with an empty state, default options and no event listener; the
/// report and the state it left.
async fn apply_from_scratch(
    rack: &Rack,
    plan: &Plan,
    runner: Arc<LibvirtRunner>,
) -> (ApplyReport, State) {
    let mut state = State::new();
    let report = apply(
        rack,
        plan,
        runner,
        &mut state,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .await;
    (report, state)
}

fn settings(back_when: BackWhen, back_timeout_s: u64) -> RunnerSettings {
    RunnerSettings {
        back_when,
        back_timeout: Duration::from_secs(back_timeout_s),
        ..RunnerSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn phases_run_in_order_stop_after_a_phase_and_never_run_a_started_host_command_twice() {
    let sshd = Sshd::start();
    let log = sshd.path("commands.log");
    std::fs::write(&log, "").unwrap();
    let hcl = format!(
        "rolling_maintenance {{\n  host_command = [\"sh\", \"-c\", \"echo \\\"$0\\\" >> {}\", \"ran\"]\n}}\n",
        log.display()
    );
    let rack = Rack::new("elastic_sample.xml", by_host_name, &hcl);
    let (h0, h1) = (rack.host(0).to_string(), rack.host(1).to_string());
    let plan = plan_of(rack.path(), &["-rolling", &format!("{h0},{h1}")]);
    assert!(plan.is_ok(), "{:?}", plan.errors);
    // The command only logs: it does not reboot.
    let runner = runner(&rack, &sshd, settings(BackWhen::Answers, 60));
    let mut state = State::new();
    let id = berth::apply::plan_id(&plan);
    let lines = || std::fs::read_to_string(&log).unwrap().lines().count();

    // Phase 1 only: its steps are done, phase 2's are held (not run, not failed).
    let opts = ExecOptions {
        stop_after_phase: Some(1),
        ..ExecOptions::default()
    };
    let report = apply(&rack, &plan, runner.clone(), &mut state, &opts, &mut |_| {}).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(lines(), 1, "the host command ran once, on the first host");
    let phase = |n: usize| &plan.phases[n - 1].steps;
    let statuses = berth::apply::journal_statuses(&state, &id);
    for step in phase(1) {
        assert_eq!(statuses.get(step), Some(&StepStatus::Done), "{step}");
    }
    for step in phase(2) {
        assert!(!statuses.contains_key(step), "{step} ran before phase 2");
    }
    assert_eq!(report.held.len(), phase(2).len());

    // An apply killed while phase 2's host command ran left it journaled as running: the
    // next apply does not run it again and goes on with WAIT_HOST and the rest.
    let command = format!("{h1}:HOST_COMMAND");
    state.upsert(JournalEntry {
        plan_id: id.clone(),
        step_id: command.clone(),
        kind: StepKind::HostCommand,
        guest: String::new(),
        from: h1.clone(),
        to: h1.clone(),
        status: StepStatus::Running,
        started_at: Some(chrono::Utc::now()),
        finished_at: None,
        error: None,
        boot_id: None,
        once_marker: None,
    });
    let mut notes = Vec::new();
    let report = apply(
        &rack,
        &plan,
        runner.clone(),
        &mut state,
        &ExecOptions::default(),
        &mut |e| {
            if let berth::apply::Event::Done {
                step,
                note: Some(n),
                ..
            } = e
            {
                notes.push((step, n));
            }
        },
    )
    .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(lines(), 1, "the started host command was not run again");
    assert!(
        notes
            .iter()
            .any(|(s, n)| *s == command && n.contains("not run again")),
        "{notes:?}"
    );
    let statuses = berth::apply::journal_statuses(&state, &id);
    assert!(
        plan.steps
            .iter()
            .all(|s| statuses.get(&s.id) == Some(&StepStatus::Done))
    );
}

/// A host that comes back with less memory than the plan counted on stops the phase at
/// WAIT_HOST, naming what changed, before any guest is moved back or started again.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_that_comes_back_smaller_stops_the_phase_before_anything_moves_back() {
    let sshd = Sshd::start();
    let hcl = "rolling_maintenance {\n  host_command = [\"true\"]\n}\n";
    let rack = Rack::new("elastic_sample.xml", by_host_name, hcl);
    let h0 = rack.host(0).to_string();
    let mut plan = plan_of(rack.path(), &["-rolling", &h0]);
    // The plan counted on 1 MiB more than the host has when it is back.
    let service = plan
        .moves
        .iter_mut()
        .find(|m| m.kind == berth::diff::MoveKind::HostService)
        .unwrap();
    service.memory_mib += 1;
    let counted = service.memory_mib;
    let runner = runner(&rack, &sshd, settings(BackWhen::Answers, 60));
    let (report, state) = apply_from_scratch(&rack, &plan, runner).await;
    let wait = format!("{h0}:WAIT_HOST");
    let (failed, message) = &report.failed[0];
    assert_eq!(failed, &wait, "{report:?}");
    assert!(
        message.contains(&format!("(the plan counted {counted} MiB)"))
            && message.contains("nothing is moved back"),
        "{message}"
    );
    let statuses = berth::apply::journal_statuses(&state, &berth::apply::plan_id(&plan));
    let after_wait: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| ancestors(&plan, &s.id).contains(wait.as_str()))
        .map(|s| s.id.as_str())
        .collect();
    assert!(!after_wait.is_empty());
    for step in after_wait {
        assert_ne!(statuses.get(step), Some(&StepStatus::Done), "{step}");
    }
}

/// The boot id every `Sshd::start_with_boot_id` host starts with.
const FIRST_BOOT: &str = "0b0b0b0b-1111-4111-8111-000000000001";

/// A rolling maintenance of the rack's first host whose host command is `script` (run with
/// `/bin/sh` on the private sshd), planned; and the WAIT_HOST and HOST_COMMAND step ids.
fn one_host_plan(sshd: &Sshd, script: &str) -> (Rack, Plan, String, String) {
    let path = sshd.path("host-command.sh");
    std::fs::write(&path, script).unwrap();
    let hcl = format!(
        "rolling_maintenance {{\n  host_command = [\"/bin/sh\", \"{}\"]\n}}\n",
        path.display()
    );
    let rack = Rack::new("elastic_sample.xml", by_host_name, &hcl);
    let h0 = rack.host(0).to_string();
    let plan = plan_of(rack.path(), &["-rolling", &h0]);
    assert!(plan.is_ok(), "{:?}", plan.errors);
    (
        rack,
        plan,
        format!("{h0}:HOST_COMMAND"),
        format!("{h0}:WAIT_HOST"),
    )
}

/// The state an apply killed while `command` (a HOST_COMMAND) ran leaves: every step before
/// it journaled done, it journaled running with `boot_id` and `once_marker` (what berth
/// journals with its start; `None` for both where an older berth journaled it).
fn killed_at(
    plan: &Plan,
    command: &str,
    boot_id: Option<&str>,
    once_marker: Option<&str>,
) -> State {
    let mut state = State::new();
    let id = berth::apply::plan_id(plan);
    let before: BTreeSet<&str> = ancestors(plan, command);
    for s in &plan.steps {
        let status = if s.id == command {
            StepStatus::Running
        } else if before.contains(s.id.as_str()) {
            StepStatus::Done
        } else {
            continue;
        };
        state.upsert(JournalEntry {
            plan_id: id.clone(),
            step_id: s.id.clone(),
            kind: s.kind,
            guest: s.guest.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
            status,
            started_at: Some(chrono::Utc::now()),
            finished_at: None,
            error: None,
            boot_id: (s.id == command)
                .then(|| boot_id.map(str::to_string))
                .flatten(),
            once_marker: (s.id == command)
                .then(|| once_marker.map(str::to_string))
                .flatten(),
        });
    }
    state
}

/// The apply that resumes from `state`; with `reboot`, the sshd's host "reboots" into that
/// boot id as soon as `command` (its HOST_COMMAND) is done. The report and every event.
async fn resume(
    rack: &Rack,
    plan: &Plan,
    runner: Arc<LibvirtRunner>,
    state: &mut State,
    command: &str,
    reboot: Option<(&Sshd, &str)>,
) -> (ApplyReport, Vec<Event>) {
    let mut events = Vec::new();
    let report = apply(
        rack,
        plan,
        runner,
        state,
        &ExecOptions::default(),
        &mut |e| {
            if let (Event::Done { step, .. }, Some((sshd, next))) = (&e, reboot)
                && step == command
            {
                std::fs::write(sshd.boot_id_file(), format!("{next}\n")).unwrap();
            }
            events.push(e);
        },
    )
    .await;
    (report, events)
}

/// Every Done event's note, by step.
fn done_notes(events: &[Event]) -> HashMap<String, String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Done { step, note, .. } => {
                Some((step.clone(), note.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect()
}

/// A host command that only schedules the reboot and returns at once (`shutdown -r +1`):
/// the "reboot" (a new boot id) happens once the test sees HOST_COMMAND done. WAIT_HOST must
/// not take the host as back before it: when it is done, the host's boot id has changed, and
/// its note names the journaled id and the new one.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_that_returns_before_its_reboot_makes_wait_host_wait_for_the_new_boot_id() {
    let sshd = Sshd::start_with_boot_id();
    let script = r#"dir=$(dirname "$0")
( while [ ! -e "$dir/go" ]; do sleep 0.1; done
  cat /proc/sys/kernel/random/uuid > /proc/sys/kernel/random/boot_id ) </dev/null >/dev/null 2>&1 &
"#;
    let (rack, plan, command, wait) = one_host_plan(&sshd, script);
    let runner = runner(&rack, &sshd, settings(BackWhen::Rebooted, 60));
    let mut state = State::new();
    let go = sshd.path("go");
    let mut events = Vec::new();
    let mut boot_id_when_back = None;
    let report = apply(
        &rack,
        &plan,
        runner,
        &mut state,
        &ExecOptions::default(),
        &mut |e| {
            if let Event::Done { step, .. } = &e {
                if *step == command {
                    std::fs::write(&go, "").unwrap();
                }
                if *step == wait {
                    boot_id_when_back = Some(sshd.boot_id());
                }
            }
            events.push(e);
        },
    )
    .await;
    assert!(report.succeeded(), "{report:?}");
    let entry = state.journal.iter().find(|e| e.step_id == command).unwrap();
    assert_eq!(
        entry.boot_id.as_deref(),
        Some(FIRST_BOOT),
        "journaled before the command"
    );
    let now = sshd.boot_id();
    assert_ne!(now, FIRST_BOOT, "the scheduled reboot happened");
    assert_eq!(
        boot_id_when_back.as_deref(),
        Some(now.as_str()),
        "WAIT_HOST was done only after the host rebooted"
    );
    let notes = done_notes(&events);
    assert!(
        notes[&wait].contains(&format!("rebooted (boot id {FIRST_BOOT} → {now})")),
        "{notes:?}"
    );
}

/// A command whose SSH connection dies under it (the reboot kills the host's sshd session) has
/// ended: HOST_COMMAND is done with a note and WAIT_HOST sees the new boot id. With
/// `back_when = "answers"` the same cut is an error, and so is, with "rebooted", a command
/// that exits with a status of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_the_reboot_cuts_ends_the_host_command_but_a_failing_command_fails() {
    // New boot id, then kill the sshd session process serving this command (the first sshd
    // among the command's ancestors), as a reboot would.
    let cut = r#"cat /proc/sys/kernel/random/uuid > /proc/sys/kernel/random/boot_id
p=$$
while [ "$p" -gt 1 ]; do
  case "$(cat /proc/$p/comm)" in sshd*) kill -9 "$p"; sleep 5; exit 0 ;; esac
  p=$(cut -d' ' -f4 /proc/$p/stat)
done
exit 9
"#;
    for (back_when, script, ok) in [
        (BackWhen::Rebooted, cut, true),
        (BackWhen::Answers, cut, false),
        (BackWhen::Rebooted, "exit 3\n", false),
    ] {
        let sshd = Sshd::start_with_boot_id();
        let (rack, plan, command, wait) = one_host_plan(&sshd, script);
        let runner = runner(&rack, &sshd, settings(back_when, 60));
        let mut state = State::new();
        let mut events = Vec::new();
        let report = apply(
            &rack,
            &plan,
            runner,
            &mut state,
            &ExecOptions::default(),
            &mut |e| events.push(e),
        )
        .await;
        let case = format!("{back_when:?} {script:?}");
        if ok {
            assert!(report.succeeded(), "{case}: {report:?}");
            let notes = done_notes(&events);
            assert!(
                notes[&command].contains("the SSH connection ended while the command ran"),
                "{case}: {notes:?}"
            );
            assert!(
                notes[&wait].contains("rebooted (boot id"),
                "{case}: {notes:?}"
            );
        } else {
            let (failed, message) = &report.failed[0];
            assert_eq!(failed, &command, "{case}: {report:?}");
            assert!(message.contains("host command"), "{case}: {message}");
            let statuses = berth::apply::journal_statuses(&state, &berth::apply::plan_id(&plan));
            assert_ne!(statuses.get(&wait), Some(&StepStatus::Done), "{case}");
        }
    }
}

/// A host command that does not reboot, with the default `back_when = "rebooted"`: WAIT_HOST
/// never takes the host as back, and its error names the host, the unchanged boot id and
/// the setting for commands that do not reboot; nothing after it runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_whose_boot_id_never_changes_is_not_taken_as_back() {
    let sshd = Sshd::start_with_boot_id();
    let (rack, plan, _, wait) = one_host_plan(&sshd, "exit 0\n");
    let runner = runner(&rack, &sshd, settings(BackWhen::Rebooted, 1));
    let (report, state) = apply_from_scratch(&rack, &plan, runner).await;
    let (failed, message) = &report.failed[0];
    assert_eq!(failed, &wait, "{report:?}");
    assert!(
        message.contains(rack.host(0))
            && message.contains(&format!("its boot id is still `{FIRST_BOOT}`"))
            && message.contains("set `back_when = \"answers\"`"),
        "{message}"
    );
    let statuses = berth::apply::journal_statuses(&state, &berth::apply::plan_id(&plan));
    for s in plan
        .steps
        .iter()
        .filter(|s| ancestors(&plan, &s.id).contains(wait.as_str()))
    {
        assert_ne!(statuses.get(&s.id), Some(&StepStatus::Done), "{}", s.id);
    }
}

/// Resuming after a kill: a HOST_COMMAND journaled running by an older berth (a boot id, no
/// start marker: nothing on the host to ask) is not run again, and WAIT_HOST compares with that journaled id, not with one read after
/// the reboot (the host "reboots" once the resumed apply has passed HOST_COMMAND: a WAIT_HOST
/// that read a fresh id then would wait forever). A running HOST_COMMAND journaled without a
/// boot id (an older berth started it) is not taken as rebooted.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_wait_host_compares_with_the_boot_id_journaled_before_the_kill() {
    for journaled in [Some(FIRST_BOOT), None] {
        let sshd = Sshd::start_with_boot_id();
        let log = sshd.path("ran");
        let (rack, plan, command, wait) =
            one_host_plan(&sshd, &format!("echo ran >> {}\n", log.display()));
        let runner = runner(&rack, &sshd, settings(BackWhen::Rebooted, 30));
        let mut state = killed_at(&plan, &command, journaled, None);
        // Reality as the killed apply left it: the steps before HOST_COMMAND are marked done
        // in the journal; the executor asks reality before acting, so it checks them again.
        let (report, events) = resume(
            &rack,
            &plan,
            runner,
            &mut state,
            &command,
            Some((&sshd, "0b0b0b0b-2222-4222-8222-000000000002")),
        )
        .await;
        assert!(
            !log.exists(),
            "{journaled:?}: the started host command was not run again"
        );
        let notes = done_notes(&events);
        assert!(notes[&command].contains("not run again"), "{notes:?}");
        match journaled {
            Some(old) => {
                assert!(report.succeeded(), "{report:?}");
                assert!(
                    notes[&wait].contains(&format!(
                        "rebooted (boot id {old} → 0b0b0b0b-2222-4222-8222-000000000002)"
                    )),
                    "{notes:?}"
                );
            }
            None => {
                let (failed, message) = &report.failed[0];
                assert_eq!(failed, &wait, "{report:?}");
                assert!(message.contains("no boot id of host"), "{message}");
            }
        }
    }
}

/// The kill between journaling HOST_COMMAND as started and the command's start: the resumed
/// apply asks the host through the command's guard, with the start marker and boot id the
/// killed apply journaled. A command that never began (no marker on the host, same boot) runs
/// now, once; one that began (its marker is there) or whose host rebooted since (another boot
/// id; with `back_when = "answers"` too) is not run again. Each case then reboots (or has
/// rebooted) and converges.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_host_command_runs_only_if_the_host_shows_it_never_began() {
    const NEXT_BOOT: &str = "0b0b0b0b-3333-4333-8333-000000000003";
    let cases = [
        ("never began", BackWhen::Rebooted),
        ("began", BackWhen::Rebooted),
        ("rebooted since", BackWhen::Rebooted),
        // A command that does not reboot: its host rebooted for another reason meanwhile.
        ("rebooted since", BackWhen::Answers),
    ];
    for (case, back_when) in cases {
        let sshd = Sshd::start_with_boot_id();
        let log = sshd.path("ran");
        let (rack, plan, command, wait) =
            one_host_plan(&sshd, &format!("echo ran >> {}\n", log.display()));
        let runner = runner(&rack, &sshd, settings(back_when, 30));
        let marker = berth::remote::new_once_marker();
        // The sshd's /dev/shm, as its commands see it.
        let on_host = sshd.shm_dir().join(&marker);
        let journaled_boot = match case {
            "rebooted since" => "0b0b0b0b-0000-4000-8000-000000000000",
            _ => FIRST_BOOT,
        };
        if case == "began" {
            std::fs::create_dir(&on_host).unwrap();
        }
        let mut state = killed_at(&plan, &command, Some(journaled_boot), Some(&marker));
        // The command "reboots" the host once it has ended (or was not run again).
        let reboot = (case != "rebooted since").then_some((&sshd, NEXT_BOOT));
        let (report, events) = resume(&rack, &plan, runner, &mut state, &command, reboot).await;
        let ran = std::fs::read_to_string(&log).unwrap_or_default();
        let notes = done_notes(&events);
        assert!(report.succeeded(), "{case}: {report:?}");
        match case {
            "never began" => {
                assert_eq!(ran, "ran\n", "{case}: run once");
                assert!(
                    notes[&command].contains("never began: run now"),
                    "{notes:?}"
                );
            }
            "began" => {
                assert_eq!(ran, "", "{case}: not run again");
                assert!(
                    notes[&command].contains(&format!("start marker `{marker}`")),
                    "{notes:?}"
                );
            }
            _ => {
                assert_eq!(ran, "", "{case}: not run again");
                assert!(notes[&command].contains("rebooted since"), "{notes:?}");
            }
        }
        if back_when == BackWhen::Rebooted {
            assert!(
                notes[&wait].contains(&format!("rebooted (boot id {journaled_boot} →")),
                "{notes:?}"
            );
        } else {
            assert!(notes[&wait].contains("libvirt answers"), "{notes:?}");
        }
        // The marker has served once WAIT_HOST is done, and is gone.
        assert!(!on_host.exists(), "{case}: marker removed");
        let statuses = berth::apply::journal_statuses(&state, &berth::apply::plan_id(&plan));
        assert_eq!(statuses.get(&command), Some(&StepStatus::Done), "{case}");
    }
}

/// A rolling maintenance written in HCL converges, like the rest of the configuration: once
/// apply has serviced a host (its whole phase done), the state records it, and the next plan of
/// the same block services only the others and says which are done; when every host is done
/// the plan has no changes (`--detailed-exitcode` 0). A new `run`, or another host command,
/// services them again; hosts named with `-rolling` are an order given once and always run.
#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_maintenance_in_hcl_converges_once_applied() {
    let sshd = Sshd::start();
    let log = sshd.path("commands.log");
    std::fs::write(&log, "").unwrap();
    let rack = Rack::new("elastic_sample.xml", by_host_name, "");
    let (h0, h1) = (rack.host(0).to_string(), rack.host(1).to_string());
    let write_block = |hosts: &[&str], run: &str, word: &str| {
        let hosts: Vec<String> = hosts.iter().map(|h| format!("\"{h}\"")).collect();
        let block = format!(
            "rolling_maintenance {{\n  hosts = [{}]\n  host_command = [\"sh\", \"-c\", \"echo \\\"$0\\\" >> {}\", \"{word}\"]\n  back_when = \"answers\"\n  run = \"{run}\"\n}}\n",
            hosts.join(", "),
            log.display()
        );
        std::fs::write(rack.path().join("rolling.hcl"), block).unwrap();
    };
    let phase_hosts =
        |plan: &Plan| -> Vec<String> { plan.phases.iter().map(|p| p.host.clone()).collect() };
    let serviced_hosts = |plan: &Plan| -> Vec<String> {
        plan.already_serviced
            .iter()
            .map(|s| s.host.clone())
            .collect()
    };
    write_block(&[&h0, &h1], "2026-12", "ran");
    let plan = plan_of(rack.path(), &[]);
    assert_eq!(phase_hosts(&plan), [h0.as_str(), h1.as_str()]);
    assert!(plan.already_serviced.is_empty());

    // Phase 1 only: the first host is serviced, the second is not.
    let runner = runner(&rack, &sshd, settings(BackWhen::Answers, 60));
    let cfg = berth::config::load_dir(rack.path()).unwrap();
    let mut session = Session::open_with(cfg.clone(), runner.clone()).unwrap();
    let inv = session.read_inventory().unwrap();
    let planned = session.make_plan(&inv).unwrap();
    session.begin(planned, None).unwrap();
    let stop = ExecOptions {
        stop_after_phase: Some(1),
        ..ExecOptions::default()
    };
    let outcome = session.run(&stop, &mut |_| {}).await.unwrap();
    assert!(
        outcome.report.succeeded() && !outcome.finished,
        "{:?}",
        outcome.report
    );
    let serviced = &session.state().serviced;
    assert_eq!(serviced.len(), 1, "{serviced:?}");
    assert_eq!(
        (serviced[0].host.as_str(), serviced[0].run.as_deref()),
        (h0.as_str(), Some("2026-12"))
    );
    assert_eq!(serviced[0].host_command[3], "ran");
    // With `back_when = "answers"` too, the command's start journaled the host's boot id (read
    // where it can be) and a start marker, which WAIT_HOST removed once the host answered.
    let started = session
        .state()
        .journal
        .iter()
        .find(|e| e.kind == berth::schedule::StepKind::HostCommand)
        .unwrap();
    let here = std::fs::read_to_string(berth::remote::BOOT_ID_PATH).unwrap();
    assert_eq!(started.boot_id.as_deref(), Some(here.trim()));
    let marker = started.once_marker.as_deref().unwrap();
    assert!(marker.starts_with("berth-once-"), "{marker}");
    assert!(
        !std::path::Path::new(berth::remote::ONCE_MARKER_DIR)
            .join(marker)
            .exists()
    );
    drop(session);
    let plan = plan_of(rack.path(), &[]);
    assert_eq!(phase_hosts(&plan), [h1.as_str()]);
    assert_eq!(serviced_hosts(&plan), [h0.as_str()]);

    // The rest of the apply: both are serviced, the command ran once on each.
    let mut session = Session::open_with(cfg, runner.clone()).unwrap();
    let outcome = session
        .run(&ExecOptions::default(), &mut |_| {})
        .await
        .unwrap();
    assert!(
        outcome.report.succeeded() && outcome.finished,
        "{:?}",
        outcome.report
    );
    drop(session);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\nran\n");
    let plan = plan_of(rack.path(), &[]);
    assert!(plan.phases.is_empty() && !plan.has_changes(), "{plan:?}");
    assert_eq!(serviced_hosts(&plan), [h0.as_str(), h1.as_str()]);
    let out = berth(rack.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Rolling maintenance, done already:")
            && text.contains(&format!("= {h0}: serviced with this host command"))
            && text.contains(&format!("= {h1}: serviced with this host command"))
            && text.matches("`2026-12`").count() == 2,
        "{text}"
    );

    // A new run, or another command, services them again; `-rolling` always does.
    write_block(&[&h0, &h1], "2027-01", "ran");
    let plan = plan_of(rack.path(), &[]);
    assert_eq!(phase_hosts(&plan), [h0.as_str(), h1.as_str()]);
    assert!(plan.already_serviced.is_empty());
    write_block(&[&h0, &h1], "2026-12", "patched");
    assert_eq!(
        phase_hosts(&plan_of(rack.path(), &[])),
        [h0.as_str(), h1.as_str()]
    );
    write_block(&[&h1], "2026-12", "ran");
    let plan = plan_of(rack.path(), &["-rolling", &h0]);
    // h1 (the block's) is done; h0 (the flag's) runs though it is done too.
    assert_eq!(phase_hosts(&plan), [h0.as_str()]);
    assert_eq!(serviced_hosts(&plan), [h1.as_str()]);
}
