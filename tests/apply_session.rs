//! Whole applies in-process, through `apply::Session` and the real LibvirtRunner on libvirt's
//! test driver: the drain example (without what the test driver cannot do, see
//! common/drain_lab.rs) end to end, es.xml write-back, state and file modes, resume after a
//! crash at every step boundary, targeted and step-by-step applies, dropping a plan.
//!
//! The test driver keeps a host's state per connection, so every check of reality goes
//! through the session's own connections (`Session::libvirt`), and a "restarted" berth is a
//! new session over the same connections.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use berth::apply::definition::{hostdev_interfaces, stashed_interfaces};
use berth::apply::{
    ApplyError, Event, ExecOptions, LibvirtRunner, MigrationProgress, Session, StepContext,
    StepOutcome, StepRunner, journal_statuses, plan_id,
};
use berth::config::{self, Config};
use berth::inventory::esxml;
use berth::plan::{Plan, unified_diff};
use berth::schedule::{Step, StepKind};
use berth::state::{StateError, StateStore, StepStatus};
use common::drain_lab::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn load(dir: &Path) -> Config {
    config::load_dir(dir).unwrap()
}

/// Every host that defines `guest`, with the guest's state there.
fn placements(libvirt: &LibvirtRunner, guest: &str) -> Vec<(String, String)> {
    HOSTS
        .iter()
        .filter_map(|h| {
            let state = libvirt
                .hypervisor(h)
                .unwrap()
                .domain_state(guest)
                .unwrap()?;
            Some((h.to_string(), state.to_string()))
        })
        .collect()
}

/// Guests defined on no host, or on more than one.
fn lost_or_doubled(libvirt: &LibvirtRunner) -> Vec<String> {
    [VM01, VM02, VM03]
        .into_iter()
        .filter_map(|g| {
            let p = placements(libvirt, g);
            (p.len() != 1).then(|| format!("{g} is defined on {p:?}"))
        })
        .collect()
}

fn es_system(dir: &Path) -> esxml::EsSystem {
    esxml::parse(
        "es.xml",
        &std::fs::read_to_string(dir.join("es.xml")).unwrap(),
    )
    .unwrap()
}

/// The MACs of the drained guests' SR-IOV interfaces (examples/plans/drain-host/nodes).
static ORIGINAL_MACS: std::sync::LazyLock<std::collections::BTreeMap<&str, [String; 2]>> =
    std::sync::LazyLock::new(|| {
        [(VM01, "01"), (VM02, "02"), (VM03, "03")]
            .into_iter()
            .map(|(g, n)| {
                (
                    g,
                    [format!("52:54:00:01:{n}:04"), format!("52:54:00:01:{n}:05")],
                )
            })
            .collect()
    });

fn fresh_plan(session: &Session) -> Plan {
    let inv = session.read_inventory().unwrap();
    assert!(inv.drift.is_empty(), "drift: {:?}", inv.drift);
    let plan = session.make_plan(&inv).unwrap();
    assert!(plan.is_ok(), "{:?}", plan.errors);
    plan
}

/// (MAC, VF) of every SR-IOV interface of every domain defined on `host`, by domain.
fn vfs_on(libvirt: &LibvirtRunner, host: &str) -> Vec<(String, Vec<(String, String)>)> {
    let h = libvirt.hypervisor(host).unwrap();
    let names: Vec<String> = h
        .connection()
        .list_all_domains(0)
        .unwrap()
        .iter()
        .map(|d| d.name().unwrap())
        .collect();
    names
        .into_iter()
        .map(|name| {
            let xml = h.persistent_xml(&name).unwrap().unwrap();
            assert_eq!(
                stashed_interfaces(&xml).unwrap(),
                vec![],
                "{name} on {host} still has detached interfaces"
            );
            let vfs = hostdev_interfaces(&xml)
                .unwrap()
                .into_iter()
                .map(|i| (i.mac.unwrap(), i.source))
                .collect();
            (name, vfs)
        })
        .collect()
}

/// Every guest where the drain wants it with the MACs of its SR-IOV interfaces and VFs of its
/// new host's pool no other domain there has, es.xml changed by exactly the plan's diff, and
/// nothing left to plan.
fn assert_converged(session: &Session, dir: &Path, original_es_xml: &str, plan: &Plan) {
    let libvirt = session.libvirt();
    for (guest, host, state) in TARGETS {
        assert_eq!(
            placements(&libvirt, guest),
            [(host.to_string(), state.to_string())],
            "{guest}"
        );
    }
    let pools = berth::apply::setup::runner_settings(session.config(), &es_system(dir)).sriov_vfs;
    for host in HOSTS {
        let domains = vfs_on(&libvirt, host);
        let all: Vec<&String> = domains
            .iter()
            .flat_map(|(_, vfs)| vfs.iter().map(|(_, vf)| vf))
            .collect();
        let distinct: BTreeSet<&String> = all.iter().copied().collect();
        assert_eq!(
            all.len(),
            distinct.len(),
            "a VF given twice on {host}: {domains:?}"
        );
        for (guest, vfs) in domains
            .iter()
            .filter(|(g, _)| TARGETS.iter().any(|(t, h, _)| t == g && *h == host))
        {
            assert_eq!(
                vfs.iter().map(|(mac, _)| mac.clone()).collect::<Vec<_>>(),
                ORIGINAL_MACS[guest.as_str()].to_vec(),
                "{guest}"
            );
            assert!(
                vfs.iter().all(|(_, vf)| pools[host].contains(vf)),
                "{guest} on {host}: {vfs:?} not from its pool"
            );
        }
    }
    let es_xml = std::fs::read_to_string(dir.join("es.xml")).unwrap();
    assert_eq!(
        unified_diff(&plan.es_xml_path, original_es_xml, &es_xml),
        plan.es_xml_diff
    );
    assert!(
        !fresh_plan(session).has_changes(),
        "a plan made now still has moves"
    );
    assert!(session.unfinished().is_none());
}

#[test]
fn the_drain_runs_end_to_end_and_writes_es_xml_back() {
    let lab = drain_lab();
    let rt = runtime();
    let es_path = lab.path().join("es.xml");
    let original = std::fs::read_to_string(&es_path).unwrap();
    let es_mode = mode(&es_path);
    let mut session = Session::open(load(lab.path()), rt.handle().clone()).unwrap();

    let plan = fresh_plan(&session);
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(plan.moves.len(), 3);
    assert_eq!(
        ids.len(),
        13,
        "STOP, DETACH_INTERFACES, MIGRATE, ATTACH_INTERFACES, STARTUP for the running guests; the same but STOP for vm03: {ids:?}"
    );
    assert!(!plan.es_xml_diff.is_empty());

    session.begin(plan.clone(), None).unwrap();
    let mut events = Vec::new();
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |e| events.push(e)))
        .unwrap();
    assert!(
        outcome.report.succeeded() && outcome.finished,
        "{:?}",
        outcome.report
    );
    assert_eq!(outcome.report.done.len(), 13);

    // Events: a start and a done per step, the summary last.
    let starts = events
        .iter()
        .filter(|e| matches!(e, Event::Start { .. }))
        .count();
    let dones = events
        .iter()
        .filter(|e| matches!(e, Event::Done { .. }))
        .count();
    assert_eq!((starts, dones), (13, 13));
    assert!(matches!(
        events.last(),
        Some(Event::Summary {
            done: 13,
            failed: 0,
            ..
        })
    ));

    // es.xml: rewritten in place with the plan's diff, the original kept as a private backup.
    let written = outcome.write_back.unwrap().expect("es.xml changes");
    assert_eq!(written.path, es_path);
    let backup = written.backup.expect("a backup of the original");
    assert!(
        backup
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("es.xml.berth-backup-")
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(mode(&es_path), es_mode, "es.xml keeps its mode");

    // The state file: every step done, the topology where the guests went, mode 0600.
    let cfg = load(lab.path());
    let saved = session.store().load().unwrap().unwrap();
    assert_eq!(&saved, session.state());
    assert!(saved.in_progress.is_none());
    let statuses = journal_statuses(&saved, &outcome.report.plan_id);
    assert!(outcome.report.plan_id.starts_with(&plan_id(&plan)));
    assert_eq!(statuses.len(), 13);
    assert!(
        statuses.values().all(|s| *s == StepStatus::Done),
        "{statuses:?}"
    );
    for (guest, host, state) in TARGETS {
        let record = &saved.topology[guest];
        assert_eq!(
            (record.host.as_str(), record.state.to_string()),
            (host, state.to_string())
        );
        assert!(
            record
                .last_definition_xml
                .as_deref()
                .unwrap()
                .contains(guest)
        );
        assert!(record.detached_interfaces.is_empty(), "{guest}: given back");
    }
    assert_eq!(cfg.state.path, lab.path().join("state/berth.state.json"));
    assert_eq!(mode(&cfg.state.path), 0o600);
    let lock_path = StateStore::open(&cfg.state.path)
        .unwrap()
        .lock_path()
        .to_path_buf();
    assert!(lock_path.exists());

    assert_converged(&session, lab.path(), &original, &plan);
    drop(session);
    assert!(!lock_path.exists(), "the lock is released");
}

/// Where in a step berth is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// After the n-th step (0-based, in start order) is journaled running, before it acts.
    Before(usize),
    /// After the n-th step acted, before it is journaled done.
    After(usize),
    /// Half-way through the n-th MIGRATE_GUEST: defined on the target, not yet undefined on
    /// the source.
    MidMigrate(usize),
    /// After the first STOP_GUEST acted, before it is journaled done.
    AfterFirstStop,
}

/// Acts through the libvirt runner until the crash point, then "dies": tells the test, which
/// drops the executor mid-run (nothing more is journaled), and acts no more.
struct Crashing {
    inner: Arc<LibvirtRunner>,
    at: Crash,
    started: AtomicUsize,
    migrations: AtomicUsize,
    dead: AtomicBool,
    crashed: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: Mutex<mpsc::Receiver<()>>,
    /// Guests found on no host (or two) at a step boundary.
    violations: Mutex<Vec<String>>,
}

impl Crashing {
    fn die(&self) -> ApplyError {
        if !self.dead.swap(true, Ordering::SeqCst) {
            if let Some(tx) = self.crashed.lock().unwrap().take() {
                let _ = tx.send(());
            }
            // Wait until the test has dropped the executor, so that nothing is journaled.
            let _ = self.release.lock().unwrap().recv();
        }
        ApplyError::Unsupported {
            step: "-".into(),
            message: "berth was killed".into(),
        }
    }
}

impl StepRunner for Crashing {
    fn before_start(
        &self,
        step: &Step,
        ctx: &StepContext,
    ) -> Result<berth::apply::StartRecord, ApplyError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(self.die());
        }
        self.inner.before_start(step, ctx)
    }

    fn is_done(&self, step: &Step, ctx: &StepContext) -> Result<bool, ApplyError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(self.die());
        }
        // A step boundary: every guest is defined on exactly one host.
        self.violations
            .lock()
            .unwrap()
            .extend(lost_or_doubled(&self.inner));
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        if self.at == Crash::Before(n) {
            return Err(self.die());
        }
        self.inner.is_done(step, ctx)
    }

    fn run(
        &self,
        step: &Step,
        ctx: &StepContext,
        progress: &mut dyn FnMut(MigrationProgress),
    ) -> Result<StepOutcome, ApplyError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(self.die());
        }
        // With parallelism 1 the step running is the last one started.
        let n = self.started.load(Ordering::SeqCst) - 1;
        if step.kind == StepKind::MigrateGuest {
            let m = self.migrations.fetch_add(1, Ordering::SeqCst);
            if self.at == Crash::MidMigrate(m) {
                let xml = self
                    .inner
                    .hypervisor(&step.from)?
                    .migratable_xml(&step.guest)?;
                self.inner.hypervisor(&step.to)?.define(&xml)?;
                return Err(self.die());
            }
        }
        let outcome = self.inner.run(step, ctx, progress)?;
        if self.at == Crash::After(n)
            || (self.at == Crash::AfterFirstStop && step.kind == StepKind::StopGuest)
        {
            return Err(self.die());
        }
        Ok(outcome)
    }
}

/// Applies the drain with berth killed at `at`, then restarts berth (a new session over the
/// same hosts) and lets it continue. Returns the dead session's lock id and the restarted
/// session.
fn crash_then_restart(
    lab: &Path,
    rt: &tokio::runtime::Runtime,
    at: Crash,
) -> (Session, Plan, Vec<String>) {
    let cfg = load(lab);
    let mut first = Session::open(cfg.clone(), rt.handle().clone()).unwrap();
    let libvirt = first.libvirt();
    let plan = fresh_plan(&first);
    first.begin(plan.clone(), None).unwrap();
    let (crashed_tx, crashed_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let crashing = Arc::new(Crashing {
        inner: Arc::clone(&libvirt),
        at,
        started: AtomicUsize::new(0),
        migrations: AtomicUsize::new(0),
        dead: AtomicBool::new(false),
        crashed: Mutex::new(Some(crashed_tx)),
        release: Mutex::new(release_rx),
        violations: Mutex::new(Vec::new()),
    });
    first.set_runner(crashing.clone());
    let opts = ExecOptions {
        parallelism: 1,
        ..ExecOptions::default()
    };
    let mut ignore = |_| {};
    let crashed = rt.block_on(async {
        tokio::select! {
            outcome = first.run(&opts, &mut ignore) => panic!("{at:?}: the run ended without crashing: {:?}", outcome.map(|o| o.report)),
            _ = crashed_rx => true,
        }
    });
    assert!(crashed);
    let _ = release_tx.send(());
    let mut violations = crashing.violations.lock().unwrap().clone();
    // Killed half-way through a migration the guest may be on both hosts, never on none.
    for guest in [VM01, VM02, VM03] {
        if placements(&libvirt, guest).is_empty() {
            violations.push(format!(
                "{at:?}: {guest} is defined on no host after the crash"
            ));
        }
    }

    // The dead session is only forgotten here, its lock file still open in this process: like
    // a berth that hangs, it keeps the lock, and the restarted berth is refused until
    // force-unlock. (A berth that really dies releases the OS lock: tests/cli_apply.rs.)
    let lock_id = first.lock_info().unwrap().id.clone();
    std::mem::forget(first);
    match Session::open_with(cfg.clone(), Arc::clone(&libvirt)) {
        Err(ApplyError::State(StateError::Locked { info, .. })) => assert_eq!(info.id, lock_id),
        other => panic!(
            "{at:?}: expected the dead berth's lock, got {:?}",
            other.err()
        ),
    }
    StateStore::open(&cfg.state.path)
        .unwrap()
        .force_unlock(&lock_id)
        .unwrap();
    let restarted = Session::open_with(cfg, libvirt).unwrap();
    (restarted, plan, violations)
}

/// Kills the drain at `at`, restarts berth and checks that it continues to the same end as
/// an uninterrupted apply, with no guest ever on no host (or left on two).
fn resumes_and_converges_after(at: Crash) {
    let rt = runtime();
    let lab = drain_lab();
    let original = std::fs::read_to_string(lab.path().join("es.xml")).unwrap();
    let (mut session, plan, violations) = crash_then_restart(lab.path(), &rt, at);
    assert!(violations.is_empty(), "{at:?}: {violations:?}");

    let u = session
        .unfinished()
        .expect("the killed apply left its plan unfinished")
        .clone();
    assert!(u.plan_id.starts_with(&plan_id(&plan)));
    assert_eq!(u.plan, plan);
    let journal = journal_statuses(session.state(), &u.plan_id);
    assert_eq!(
        journal
            .values()
            .filter(|s| **s == StepStatus::Running)
            .count(),
        1,
        "{at:?}: {journal:?}"
    );

    let notes = session.settle().unwrap();
    assert_eq!(
        notes.len(),
        usize::from(matches!(at, Crash::MidMigrate(_))),
        "{at:?}: {notes:?}"
    );
    assert_eq!(
        lost_or_doubled(&session.libvirt()),
        Vec::<String>::new(),
        "{at:?} after settling"
    );
    let inv = session.read_inventory().unwrap();
    assert_eq!(
        session.resume_blockers(&inv),
        Vec::<String>::new(),
        "{at:?}"
    );

    session.begin(u.plan.clone(), None).unwrap();
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    assert!(
        outcome.report.succeeded() && outcome.finished,
        "{at:?}: {:?}",
        outcome.report
    );
    outcome.write_back.unwrap();
    assert_converged(&session, lab.path(), &original, &plan);
}

/// One test per crash point (the drain has 13 steps and 3 migrations), each well under a
/// second; together: killed before and after every step, and inside every migration.
macro_rules! crash_points {
    ($($name:ident: $at:expr;)*) => {
        $(#[test] fn $name() { resumes_and_converges_after($at) })*
    };
}

crash_points! {
    killed_before_step_1: Crash::Before(0);
    killed_before_step_2: Crash::Before(1);
    killed_before_step_3: Crash::Before(2);
    killed_before_step_4: Crash::Before(3);
    killed_before_step_5: Crash::Before(4);
    killed_before_step_6: Crash::Before(5);
    killed_before_step_7: Crash::Before(6);
    killed_before_step_8: Crash::Before(7);
    killed_before_step_9: Crash::Before(8);
    killed_before_step_10: Crash::Before(9);
    killed_before_step_11: Crash::Before(10);
    killed_before_step_12: Crash::Before(11);
    killed_before_step_13: Crash::Before(12);
    killed_after_step_1: Crash::After(0);
    killed_after_step_2: Crash::After(1);
    killed_after_step_3: Crash::After(2);
    killed_after_step_4: Crash::After(3);
    killed_after_step_5: Crash::After(4);
    killed_after_step_6: Crash::After(5);
    killed_after_step_7: Crash::After(6);
    killed_after_step_8: Crash::After(7);
    killed_after_step_9: Crash::After(8);
    killed_after_step_10: Crash::After(9);
    killed_after_step_11: Crash::After(10);
    killed_after_step_12: Crash::After(11);
    killed_after_step_13: Crash::After(12);
    killed_inside_migration_1: Crash::MidMigrate(0);
    killed_inside_migration_2: Crash::MidMigrate(1);
    killed_inside_migration_3: Crash::MidMigrate(2);
}

#[test]
fn targeted_and_step_by_step_applies_keep_to_their_scope() {
    let lab = drain_lab();
    let rt = runtime();
    let mut session = Session::open(load(lab.path()), rt.handle().clone()).unwrap();
    let libvirt = session.libvirt();

    // -target vm03: only its move; es.xml gets only its move; the plan is done for its scope.
    let plan = fresh_plan(&session);
    session
        .begin(plan, Some(BTreeSet::from([VM03.to_string()])))
        .unwrap();
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    let kinds = ["DETACH_INTERFACES", "MIGRATE_GUEST", "ATTACH_INTERFACES"];
    assert_eq!(outcome.report.done, kinds.map(|k| format!("{VM03}:{k}")));
    assert!(outcome.finished && session.unfinished().is_none());
    assert!(outcome.write_back.unwrap().unwrap().backup.is_some());
    assert_eq!(
        placements(&libvirt, VM03),
        [(ADM02.to_string(), "shut off".to_string())]
    );
    assert_eq!(
        placements(&libvirt, VM01),
        [(ADM01.to_string(), "running".to_string())]
    );
    assert_eq!(
        (es_host(lab.path(), VM03), es_host(lab.path(), VM01)),
        (ADM02.to_string(), ADM01.to_string())
    );

    // Step by step through vm01's move (OEDACLI's WHERE STEPNAME): the plan stays in
    // progress until its last step.
    let plan = fresh_plan(&session);
    assert_eq!(plan.moves.len(), 2, "vm03's move is no longer a move");
    session
        .begin(plan, Some(BTreeSet::from([VM01.to_string()])))
        .unwrap();
    let steps = [
        ("STOP_GUEST", false),
        ("DETACH_INTERFACES", false),
        ("MIGRATE_GUEST", false),
        ("ATTACH_INTERFACES", false),
        ("STARTUP_GUEST", true),
    ];
    for (kind, finished) in steps {
        let id = format!("{VM01}:{kind}");
        let opts = ExecOptions {
            single_step: Some(id.clone()),
            ..ExecOptions::default()
        };
        let outcome = rt.block_on(session.run(&opts, &mut |_| {})).unwrap();
        assert_eq!(outcome.report.done, [id], "{kind}");
        assert_eq!(outcome.finished, finished, "{kind}");
        assert_eq!(session.unfinished().is_none(), finished, "{kind}");
        outcome.write_back.unwrap();
    }
    assert_eq!(
        placements(&libvirt, VM01),
        [(ADM03.to_string(), "running".to_string())]
    );
    assert_eq!(es_host(lab.path(), VM01), ADM03);
    assert_eq!(
        placements(&libvirt, VM02),
        [(ADM01.to_string(), "running".to_string())]
    );
    // A step whose dependencies are not done is skipped, not run.
    let plan = fresh_plan(&session);
    session
        .begin(plan, Some(BTreeSet::from([VM02.to_string()])))
        .unwrap();
    let opts = ExecOptions {
        single_step: Some(format!("{VM02}:STARTUP_GUEST")),
        ..ExecOptions::default()
    };
    let outcome = rt.block_on(session.run(&opts, &mut |_| {})).unwrap();
    assert!(outcome.report.done.is_empty());
    assert!(
        outcome.report.skipped[0].1.contains("ATTACH_INTERFACES"),
        "{:?}",
        outcome.report.skipped
    );
    assert_eq!(
        placements(&libvirt, VM02),
        [(ADM01.to_string(), "running".to_string())]
    );
}

#[test]
fn a_plan_that_cannot_continue_names_why_and_can_be_dropped() {
    let lab = drain_lab();
    let rt = runtime();
    // Killed right after vm01 (or vm02: whichever started first) was shut down.
    let (mut session, _, _) = crash_then_restart(lab.path(), &rt, Crash::AfterFirstStop);
    session.settle().unwrap();
    let u = session.unfinished().unwrap().clone();
    let running = journal_statuses(session.state(), &u.plan_id)
        .into_iter()
        .find(|(_, s)| *s == StepStatus::Running);
    let stopped = running
        .and_then(|(id, _)| id.strip_suffix(":STOP_GUEST").map(str::to_string))
        .expect("killed after a stop");
    let libvirt = session.libvirt();
    let stopped_state = placements(&libvirt, &stopped);

    // Someone moves vm03 by hand meanwhile: the plan's picture no longer holds.
    let xml = libvirt
        .hypervisor(ADM01)
        .unwrap()
        .migratable_xml(VM03)
        .unwrap();
    libvirt.hypervisor(ADM03).unwrap().define(&xml).unwrap();
    libvirt.hypervisor(ADM01).unwrap().undefine(VM03).unwrap();
    let inv = session.read_inventory().unwrap();
    let blockers = session.resume_blockers(&inv);
    assert!(
        blockers.contains(&format!(
            "guest {VM03} is now on {ADM03}, the unfinished plan left it on {ADM01} or {ADM02}"
        )),
        "{blockers:?}"
    );

    // Dropping the plan closes its journal against reality and names the guest it left stopped.
    let journal_id = session.unfinished().unwrap().plan_id.clone();
    let dropped = session.abandon().unwrap();
    assert_eq!(dropped.plan_id, journal_id);
    assert_eq!(dropped.left_stopped, [stopped]);
    // Guests whose interfaces the plan took out (vm03's DETACH may have run before the crash,
    // and its definition went to exa01adm03 with them detached) are named exactly when their
    // definitions still hold them detached.
    for guest in [VM01, VM02, VM03] {
        let [(host, _)] = placements(&libvirt, guest).try_into().unwrap();
        let xml = libvirt
            .hypervisor(&host)
            .unwrap()
            .persistent_xml(guest)
            .unwrap()
            .unwrap();
        let detached = !stashed_interfaces(&xml).unwrap().is_empty();
        assert_eq!(
            dropped.left_detached.contains(&guest.to_string()),
            detached,
            "{guest}"
        );
    }
    assert_eq!(stopped_state, [(ADM01.to_string(), "shut off".to_string())]);
    assert!(session.unfinished().is_none());
    let journal = journal_statuses(session.state(), &journal_id);
    assert!(
        !journal.values().any(|s| *s == StepStatus::Running),
        "{journal:?}"
    );
    assert_eq!(session.store().load().unwrap().unwrap().in_progress, None);
}

#[test]
fn a_changed_configuration_blocks_continuing() {
    let lab = drain_lab();
    let rt = runtime();
    let (session, _, _) = crash_then_restart(lab.path(), &rt, Crash::Before(0));
    let libvirt = session.libvirt();
    drop(session);
    let main = lab.path().join("main.hcl");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, text + "\n# edited after the crash\n").unwrap();
    let session = Session::open_with(load(lab.path()), libvirt).unwrap();
    let inv = session.read_inventory().unwrap();
    let blockers = session.resume_blockers(&inv);
    assert_eq!(blockers.len(), 1, "{blockers:?}");
    assert!(blockers[0].starts_with(
        "the configuration (*.hcl) changed since the unfinished plan was made (sha256 "
    ));
}

#[test]
fn the_lab_keeps_only_what_the_test_driver_can_do() {
    let text = "<a>\n  <i k='x'>1</i>\n  <i k='y'>2</i>\n</a>\n";
    assert_eq!(
        strip_elements(text, "<i", "</i>", |e| e.contains("'x'")),
        "<a>\n  <i k='y'>2</i>\n</a>\n"
    );
    let lab = drain_lab();
    let node = std::fs::read_to_string(lab.path().join(format!("nodes/{ADM01}.xml"))).unwrap();
    assert!(
        node.contains("type='hostdev'")
            && !node.contains("vmbondeth0.1")
            && node.contains("vmbondeth0'")
    );
}

#[test]
fn with_es_xml_out_es_xml_stays_and_the_result_goes_there() {
    let lab = drain_lab();
    let rt = runtime();
    let main = lab.path().join("main.hcl");
    let hcl = std::fs::read_to_string(&main).unwrap().replace(
        "es_xml = \"es.xml\"",
        "es_xml = \"es.xml\"\n  es_xml_out = \"es.new.xml\"",
    );
    std::fs::write(&main, hcl).unwrap();
    let original = std::fs::read_to_string(lab.path().join("es.xml")).unwrap();
    let mut session = Session::open(load(lab.path()), rt.handle().clone()).unwrap();
    let plan = fresh_plan(&session);
    session.begin(plan.clone(), None).unwrap();
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    let written = outcome.write_back.unwrap().unwrap();
    assert_eq!(
        (written.path, written.backup),
        (lab.path().join("es.new.xml"), None)
    );
    assert_eq!(
        std::fs::read_to_string(lab.path().join("es.xml")).unwrap(),
        original
    );
    let new = std::fs::read_to_string(lab.path().join("es.new.xml")).unwrap();
    assert_eq!(
        unified_diff(&plan.es_xml_path, &original, &new),
        plan.es_xml_diff
    );
    assert_eq!(mode(&lab.path().join("es.new.xml")), 0o600);
}

#[test]
fn es_xml_edited_during_the_apply_is_not_overwritten_and_the_write_back_is_retried() {
    let lab = drain_lab();
    let rt = runtime();
    let es_path = lab.path().join("es.xml");
    let original = std::fs::read_to_string(&es_path).unwrap();
    let mut session = Session::open(load(lab.path()), rt.handle().clone()).unwrap();
    let plan = fresh_plan(&session);
    session.begin(plan.clone(), None).unwrap();
    std::fs::write(
        &es_path,
        original.clone() + "<!-- edited while berth ran -->\n",
    )
    .unwrap();
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    assert!(outcome.report.succeeded() && outcome.finished);
    let err = outcome.write_back.unwrap_err().to_string();
    assert!(
        err.contains("changed since the plan was made") && err.contains("update es.xml by hand"),
        "{err}"
    );
    assert!(
        std::fs::read_to_string(&es_path)
            .unwrap()
            .ends_with("<!-- edited while berth ran -->\n")
    );
    assert!(
        session.unfinished().is_some(),
        "kept until es.xml is written"
    );

    // Put back, the next run has no step left and only writes es.xml.
    std::fs::write(&es_path, &original).unwrap();
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    assert!(outcome.report.done.is_empty());
    outcome.write_back.unwrap().unwrap();
    assert_converged(&session, lab.path(), &original, &plan);
}

#[test]
fn a_pool_without_enough_free_vfs_is_a_plan_error_naming_host_and_numbers() {
    let lab = drain_lab();
    let main = lab.path().join("main.hcl");
    let text = std::fs::read_to_string(&main).unwrap();
    let start = text.find("host \"exa01adm02\" {").unwrap();
    let end = start + text[start..].find("\n}\n").unwrap() + 3;
    let small = "host \"exa01adm02\" {\n  sriov_vfs = [\"0000:3b:02.0\", \"0000:5e:02.0\", \"0000:3b:02.1\"]\n}\n\
                 guest \"exa01adm01vm02\" {\n  host = \"exa01adm02\"\n}\n";
    std::fs::write(&main, format!("{}{small}{}", &text[..start], &text[end..])).unwrap();
    let rt = runtime();
    let session = Session::open(load(lab.path()), rt.handle().clone()).unwrap();
    let plan = session
        .make_plan(&session.read_inventory().unwrap())
        .unwrap();
    // exa01adm02vm01 uses the first pair: one VF of three is free, vm02 (pinned) needs two.
    let errors: Vec<(&str, &str)> = plan
        .errors
        .iter()
        .map(|e| (e.code.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "sriov_vfs");
    assert!(
        errors[0].1.ends_with(&format!(
            "{VM02} needs 2 SR-IOV VFs on {ADM02}, and its `sriov_vfs` pool has 1 free VF of 3 (2 in use)"
        )),
        "{}",
        errors[0].1
    );
    // The drain sends vm03 where VFs are free, and says why not exa01adm02.
    let vm03 = plan.moves.iter().find(|m| m.guest == VM03).unwrap();
    assert_eq!(vm03.to, ADM03);
    assert!(
        vm03.reason.contains(&format!(
            "{ADM02}: its `sriov_vfs` pool has 1 free VF of 3 (2 in use), and other guests moving in need 2 of them"
        )),
        "{}",
        vm03.reason
    );
}
