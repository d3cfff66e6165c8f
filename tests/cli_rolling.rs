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

use berth::apply::{ExecOptions, HostAccess, LibvirtRunner, RunnerSettings, execute};
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
    // The saved plan records the flag, so applying it plans the same rolling maintenance.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rack.path().join("rolling.berth")).unwrap())
            .unwrap();
    assert_eq!(saved["intents"]["rolling"][0], rack.host(0));
    assert_eq!(saved["phases"][1]["number"], 2);
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
fn runner(rack: &Rack, sshd: &Sshd) -> Arc<LibvirtRunner> {
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
        RunnerSettings::default(),
        tokio::runtime::Handle::current(),
    ))
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
    let runner = runner(&rack, &sshd);
    let store = StateStore::open(rack.path().join("state.json")).unwrap();
    let mut state = State::new();
    let id = berth::apply::plan_id(&plan);
    let lines = || std::fs::read_to_string(&log).unwrap().lines().count();

    // Phase 1 only: its steps are done, phase 2's are held (not run, not failed).
    let opts = ExecOptions {
        stop_after_phase: Some(1),
        ..ExecOptions::default()
    };
    let report = execute(
        &plan,
        runner.clone(),
        &store,
        &mut state,
        &opts,
        &mut |_| {},
    )
    .await
    .unwrap();
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
    });
    let mut notes = Vec::new();
    let report = execute(
        &plan,
        runner.clone(),
        &store,
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
    .await
    .unwrap();
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
    let runner = runner(&rack, &sshd);
    let store = StateStore::open(rack.path().join("state.json")).unwrap();
    let mut state = State::new();
    let report = execute(
        &plan,
        runner,
        &store,
        &mut state,
        &ExecOptions::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
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
