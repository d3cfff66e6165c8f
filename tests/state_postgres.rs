//! The PostgreSQL state backend against a real server (tests/common/pg.rs): concurrent applies
//! on many workspaces, two on one workspace serialized by the advisory lock, a killed holder
//! releasing its lock, a crashed server keeping what was journaled, `state push` / `pull`,
//! and the recovery file of an apply that lost the database.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth::apply::{
    ApplyError, ExecOptions, Kept, MigrationProgress, Session, StepContext, StepOutcome, StepRunner,
};
use berth::config::{self, PostgresSettings};
use berth::schedule::Step;
use berth::state::postgres::PgBackend;
use berth::state::{Backend, State, StateStore, StepStatus};

use common::drain_lab::*;
use common::pg::{PgServer, shared};

/// A drain lab whose state lives in `workspace` (schema `schema`) of the server the URL in
/// `BERTH_PG_URL` names.
fn pg_lab(workspace: &str, schema: &str) -> tempfile::TempDir {
    pg_lab_at(workspace, schema, None)
}

/// [`pg_lab`] with the URL in the HCL (`None`: from `BERTH_PG_URL`).
fn pg_lab_at(workspace: &str, schema: &str, url: Option<&str>) -> tempfile::TempDir {
    let lab = drain_lab();
    let hcl = lab.path().join("main.hcl");
    let mut text = std::fs::read_to_string(&hcl).unwrap();
    let url = url
        .map(|u| format!("  url       = \"{u}\"\n"))
        .unwrap_or_default();
    text.push_str(&format!(
        "\nstate {{\n  backend   = \"postgres\"\n  workspace = \"{workspace}\"\n  schema    = \"{schema}\"\n{url}}}\n"
    ));
    std::fs::write(&hcl, text).unwrap();
    lab
}

fn berth_cmd(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("berth"));
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("BERTH_PG_URL", url);
    cmd
}

fn berth(dir: &Path, url: &str, args: &[&str]) -> Output {
    berth_cmd(dir, url, args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

fn backend(server: &PgServer, workspace: &str, schema: &str, dir: &Path) -> PgBackend {
    PgBackend::new(
        &PostgresSettings {
            url: Some(server.url()),
            workspace: workspace.into(),
            schema: schema.into(),
            tls: Default::default(),
        },
        dir,
    )
    .unwrap()
}

/// Step ids and statuses of every plan journaled in `state`, by plan.
fn plans(state: &State) -> Vec<String> {
    let mut ids: Vec<String> = state.journal.iter().map(|e| e.plan_id.clone()).collect();
    ids.dedup();
    ids
}

fn all_done(state: &State, plan: &str) -> bool {
    let entries: Vec<_> = state.journal.iter().filter(|e| e.plan_id == plan).collect();
    !entries.is_empty() && entries.iter().all(|e| e.status == StepStatus::Done)
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn eight_applies_on_eight_workspaces_all_succeed() {
    let server = shared();
    let url = server.url();
    let labs: Vec<_> = (0..8)
        .map(|i| pg_lab(&format!("rack{i}"), "eight"))
        .collect();
    let children: Vec<_> = labs
        .iter()
        .map(|lab| {
            berth_cmd(lab.path(), &url, &["apply", "-auto-approve"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_exit(&child.wait_with_output().unwrap(), 0);
    }
    for (i, lab) in labs.iter().enumerate() {
        let state = backend(&server, &format!("rack{i}"), "eight", lab.path())
            .load()
            .unwrap()
            .expect("the workspace has a state");
        let ids = plans(&state);
        assert_eq!(ids.len(), 1, "rack{i}: {ids:?}");
        assert!(all_done(&state, &ids[0]), "rack{i}: {:?}", state.journal);
        assert!(state.in_progress.is_none());
        for (guest, host, _) in TARGETS {
            assert_eq!(state.topology[guest].host, host, "rack{i}");
        }
        // Nothing of the local backend was written.
        assert!(!lab.path().join("state/berth.state.json").exists());
    }
}

#[test]
fn two_applies_on_one_workspace_are_serialized_and_a_waiting_one_is_refused_naming_the_holder() {
    let server = shared();
    let url = server.url();
    let (a, b) = (pg_lab("shared", "two"), pg_lab("shared", "two"));
    let probe = backend(&server, "shared", "two", a.path());

    // A holder mid-apply: a second berth waits its -lock-timeout, then is refused naming it.
    let held = common::held::apply_holding_lock(a.path(), &[], &[("BERTH_PG_URL", &url)], |pid| {
        probe
            .lock_info()
            .ok()
            .flatten()
            .is_some_and(|i| i.pid == pid)
    });
    let pid = held.child.id();
    let refused = berth(b.path(), &url, &["plan", "-lock-timeout=500ms"]);
    assert_exit(&refused, 1);
    let err = text(&refused.stderr);
    assert!(err.contains("is locked"), "{err}");
    assert!(err.contains(&format!("(pid {pid}) for `apply`")), "{err}");
    assert!(err.contains("PostgreSQL workspace `shared`"), "{err}");
    held.kill_9();

    // Two applies started together on one workspace: both succeed, one after the other.
    let children: Vec<_> = [&a, &b]
        .iter()
        .map(|lab| {
            berth_cmd(
                lab.path(),
                &url,
                &["apply", "-auto-approve", "-lock-timeout=5m"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        assert_exit(&child.wait_with_output().unwrap(), 0);
    }
    let state = probe.load().unwrap().unwrap();
    let ids = plans(&state);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let span = |plan: &str| {
        let entries = state.journal.iter().filter(|e| e.plan_id == plan);
        let started = entries.clone().filter_map(|e| e.started_at).min().unwrap();
        let finished = entries.filter_map(|e| e.finished_at).max().unwrap();
        (started, finished)
    };
    let (first, second) = (span(&ids[0]), span(&ids[1]));
    assert!(all_done(&state, &ids[0]) && all_done(&state, &ids[1]));
    assert!(
        first.1 <= second.0,
        "the second apply started a step ({}) before the first finished its last ({})",
        second.0,
        first.1
    );
}

#[test]
fn kill_9_of_a_holder_frees_its_lock_at_once() {
    let server = shared();
    let url = server.url();
    let lab = pg_lab("killed", "kill");
    let probe = backend(&server, "killed", "kill", lab.path());
    let held =
        common::held::apply_holding_lock(lab.path(), &[], &[("BERTH_PG_URL", &url)], |pid| {
            probe
                .lock_info()
                .ok()
                .flatten()
                .is_some_and(|i| i.pid == pid)
        });
    held.kill_9();
    // The server ends the dead client's session as soon as it sees the socket close.
    wait_for("the dead session's lock to go", || {
        probe.lock_info().unwrap().is_none()
    });
    let out = berth(lab.path(), &url, &["apply", "-auto-approve"]);
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("Apply complete!"));
    assert!(probe.lock_info().unwrap().is_none(), "released at exit");
}

#[test]
fn a_crashed_and_restarted_server_keeps_every_journaled_step() {
    let server = PgServer::start();
    let url = server.url();
    let lab = pg_lab("durable", "berth");
    assert_exit(&berth(lab.path(), &url, &["apply", "-auto-approve"]), 0);
    let probe = backend(&server, "durable", "berth", lab.path());
    let before = probe.load().unwrap().unwrap();
    assert!(all_done(&before, &plans(&before)[0]));

    server.crash();
    server.start_again();
    let after = backend(&server, "durable", "berth", lab.path())
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(after, before);
    let listed = berth(lab.path(), &url, &["state", "list"]);
    assert_exit(&listed, 0);
    for (guest, host, _) in TARGETS {
        assert!(
            text(&listed.stdout)
                .lines()
                .any(|l| l.starts_with(guest) && l.contains(host)),
            "{}",
            text(&listed.stdout)
        );
    }
}

#[test]
fn push_and_pull_move_the_state_between_the_local_file_and_postgres() {
    let server = shared();
    let url = server.url();
    // Applied with the local file first.
    let lab = drain_lab();
    let dir = lab.path();
    assert_exit(&berth(dir, &url, &["apply", "-auto-approve"]), 0);
    let local_path = dir.join("state/berth.state.json");
    let store = StateStore::open(&local_path).unwrap();
    let mut local = store.load().unwrap().unwrap();
    // A rolling maintenance's HOST_COMMAND journals the host's boot id: it makes the trip too.
    local.journal[0].boot_id = Some("6f1c2a54-1b0e-4d4e-9a43-0d3f2b7c9e11".into());
    // And the marker its guard makes on the host as the command starts.
    local.journal[0].once_marker = Some("berth-once-5b0c8f7e2d3a4c1b9e6f0a7d8c2b1e4f".into());
    // So do the hosts a rolling maintenance serviced (a `rolling_maintenance` block's `hosts`
    // are not serviced again).
    local.serviced.push(berth::diff::Serviced {
        host: "adm01".into(),
        host_command: vec!["/usr/sbin/patch-and-reboot".into(), "--yes".into()],
        run: Some("2026-12".into()),
        plan_id: local.journal[0].plan_id.clone(),
        at: chrono::Utc::now(),
    });
    store.save(&mut local).unwrap();
    // timestamptz keeps microseconds: that is all the round trip can keep.
    berth::state::postgres::to_microseconds(&mut local);

    // Then the configuration moves to PostgreSQL.
    let hcl = dir.join("main.hcl");
    let mut text_hcl = std::fs::read_to_string(&hcl).unwrap();
    text_hcl.push_str("\nstate {\n  backend   = \"postgres\"\n  workspace = \"moved\"\n  schema    = \"push\"\n}\n");
    std::fs::write(&hcl, text_hcl).unwrap();
    let empty = berth(dir, &url, &["state", "list"]);
    assert_exit(&empty, 0);
    assert!(text(&empty.stdout).contains("No state yet"));

    let pushed = berth(dir, &url, &["state", "push", "state/berth.state.json"]);
    assert_exit(&pushed, 0);
    assert!(
        text(&pushed.stdout)
            .contains("Pushed state/berth.state.json into PostgreSQL workspace `moved`")
    );

    let pulled = berth(dir, &url, &["state", "pull", "-out", "pulled.json"]);
    assert_exit(&pulled, 0);
    let back = StateStore::open(dir.join("pulled.json"))
        .unwrap()
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(back.serial, local.serial + 1);
    assert_eq!(back.lineage, local.lineage);
    assert_eq!(back.topology, local.topology);
    assert_eq!(back.in_progress, local.in_progress);
    assert_eq!(back.serviced, local.serviced);
    assert_eq!(back.journal.len(), local.journal.len());
    for (b, l) in back.journal.iter().zip(&local.journal) {
        assert_eq!(b, l);
    }
    let printed = berth(dir, &url, &["state", "pull"]);
    assert_exit(&printed, 0);
    let printed: State = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(printed, back);

    // The old file is older than the workspace now: pushing it again is refused.
    let stale = berth(dir, &url, &["state", "push", "state/berth.state.json"]);
    assert_exit(&stale, 1);
    assert!(
        text(&stale.stderr).contains("is newer than"),
        "{}",
        text(&stale.stderr)
    );
    // So is a file of another state history.
    let mut other = State::new();
    StateStore::open(dir.join("other.json"))
        .unwrap()
        .save(&mut other)
        .unwrap();
    let foreign = berth(dir, &url, &["state", "push", "other.json"]);
    assert_exit(&foreign, 1);
    assert!(
        text(&foreign.stderr).contains("another state"),
        "{}",
        text(&foreign.stderr)
    );
}

/// Runs every step through the libvirt runner, calling `hook` once before the first.
struct Hooked {
    inner: Arc<dyn StepRunner>,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl StepRunner for Hooked {
    fn before_start(
        &self,
        step: &Step,
        ctx: &StepContext,
    ) -> Result<berth::apply::StartRecord, ApplyError> {
        self.inner.before_start(step, ctx)
    }
    fn is_done(&self, step: &Step, ctx: &StepContext) -> Result<bool, ApplyError> {
        self.inner.is_done(step, ctx)
    }
    fn run(
        &self,
        step: &Step,
        ctx: &StepContext,
        progress: &mut dyn FnMut(MigrationProgress),
    ) -> Result<StepOutcome, ApplyError> {
        if let Some(hook) = self.hook.lock().unwrap().take() {
            hook();
        }
        self.inner.run(step, ctx, progress)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Applies the drain in-process, with `hook` run as the first step starts; returns how the
/// run ended, the plan id and the libvirt connections (the test driver's hosts live in this
/// process: a later session must act on the same ones).
fn apply_with_hook(
    rt: &tokio::runtime::Runtime,
    lab: &Path,
    hook: Box<dyn FnOnce() + Send>,
) -> (
    Result<berth::apply::RunOutcome, ApplyError>,
    String,
    Arc<berth::apply::LibvirtRunner>,
) {
    let cfg = config::load_dir(lab).unwrap();
    let mut session = Session::open(cfg, rt.handle().clone()).unwrap();
    let inv = session.read_inventory().unwrap();
    let plan = session.make_plan(&inv).unwrap();
    session.begin(plan, None).unwrap();
    let plan_id = session.unfinished().unwrap().plan_id.clone();
    let libvirt = session.libvirt();
    session.set_runner(Arc::new(Hooked {
        inner: libvirt.clone(),
        hook: Mutex::new(Some(hook)),
    }));
    let opts = ExecOptions {
        parallelism: 1,
        ..ExecOptions::default()
    };
    let outcome = rt.block_on(session.run(&opts, &mut |_| {}));
    (outcome, plan_id, libvirt)
}

#[test]
fn an_apply_that_loses_the_database_keeps_its_steps_in_a_recovery_file_the_next_apply_replays() {
    let server = Arc::new(PgServer::start());
    let lab = pg_lab_at("lost", "berth", Some(&server.url()));
    let rt = runtime();
    let down = Arc::clone(&server);
    let (outcome, plan_id, libvirt) =
        apply_with_hook(&rt, lab.path(), Box::new(move || down.crash()));
    let err = outcome.unwrap_err();
    let recovery = lab.path().join("state/lost.recovery.json");
    match &err {
        ApplyError::StateInterrupted { kept, done, .. } => {
            assert!(
                matches!(kept, Kept::RecoveryFile(p) if *p == recovery),
                "{err}"
            );
            // The step that was running when the database went settled, and nothing after it.
            assert_eq!(*done, 1, "{err}");
        }
        other => panic!("expected StateInterrupted, got {other}"),
    }
    assert!(err.to_string().contains("recovery file"), "{err}");
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&recovery).unwrap()).unwrap();
    let kept_state: State = serde_json::from_value(kept["state"].clone()).unwrap();
    let done_steps: Vec<_> = kept_state
        .journal
        .iter()
        .filter(|e| e.plan_id == plan_id && e.status == StepStatus::Done)
        .collect();
    assert_eq!(done_steps.len(), 1, "{:?}", kept_state.journal);

    server.start_again();
    let probe = backend(&server, "lost", "berth", lab.path());
    let before = probe.load().unwrap().unwrap();
    assert_ne!(
        before
            .entry(&plan_id, &done_steps[0].step_id)
            .map(|e| e.status),
        Some(StepStatus::Done),
        "the database missed the step's end"
    );
    // The next apply replays the file first, then continues the plan to its end (on the same
    // test-driver hosts, which live in this process).
    let cfg = config::load_dir(lab.path()).unwrap();
    let mut session = Session::open_with(cfg, libvirt).unwrap();
    assert!(
        session
            .notes()
            .iter()
            .any(|n| n.starts_with(&format!("Replayed {}", recovery.display()))),
        "{:?}",
        session.notes()
    );
    assert!(!recovery.exists());
    assert_eq!(
        session
            .state()
            .entry(&plan_id, &done_steps[0].step_id)
            .map(|e| e.status),
        Some(StepStatus::Done)
    );
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    assert!(outcome.finished, "{:?}", outcome.report);
    drop(session);
    let after = probe.load().unwrap().unwrap();
    assert!(all_done(&after, &plan_id), "{:?}", after.journal);
    assert!(after.in_progress.is_none());
}

#[test]
fn an_apply_whose_database_restarts_journals_the_running_steps_on_reconnect() {
    let server = Arc::new(PgServer::start());
    let lab = pg_lab_at("bounced", "berth", Some(&server.url()));
    let rt = runtime();
    let bounce = Arc::clone(&server);
    let seen = Arc::new(Mutex::new(None));
    let (url, seen_in_hook) = (server.url(), Arc::clone(&seen));
    let (outcome, plan_id, libvirt) = apply_with_hook(
        &rt,
        lab.path(),
        Box::new(move || {
            // Mid-apply, the lock row names this process, the operation and the plan.
            let probe = PgBackend::new(
                &PostgresSettings {
                    url: Some(url),
                    workspace: "bounced".into(),
                    schema: "berth".into(),
                    tls: Default::default(),
                },
                Path::new("."),
            )
            .unwrap();
            *seen_in_hook.lock().unwrap() = probe.lock_info().unwrap();
            drop(probe);
            bounce.crash();
            bounce.start_again();
        }),
    );
    let holder = seen.lock().unwrap().clone().expect("the lock was held");
    assert_eq!(
        (
            holder.pid,
            holder.operation.as_str(),
            holder.plan.as_deref()
        ),
        (std::process::id(), "apply", Some(plan_id.as_str()))
    );
    assert!(
        holder
            .to_string()
            .contains(&format!("for `apply` of plan {plan_id}")),
        "{holder}"
    );
    let err = outcome.unwrap_err();
    match &err {
        ApplyError::StateInterrupted { kept, done, .. } => {
            assert!(matches!(kept, Kept::Journaled), "{err}");
            assert_eq!(*done, 1, "{err}");
        }
        other => panic!("expected StateInterrupted, got {other}"),
    }
    assert!(!lab.path().join("state/bounced.recovery.json").exists());
    let probe = backend(&server, "bounced", "berth", lab.path());
    let journaled = probe.load().unwrap().unwrap();
    let done: Vec<_> = journaled
        .journal
        .iter()
        .filter(|e| e.plan_id == plan_id && e.status == StepStatus::Done)
        .collect();
    assert_eq!(done.len(), 1, "{:?}", journaled.journal);

    let cfg = config::load_dir(lab.path()).unwrap();
    let mut session = Session::open_with(cfg, libvirt).unwrap();
    assert!(session.notes().is_empty());
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    assert!(outcome.finished, "{:?}", outcome.report);
    drop(session);
    assert!(all_done(&probe.load().unwrap().unwrap(), &plan_id));
}

// ---- TLS ---------------------------------------------------------------------------------
// Against a server listening on 127.0.0.1 with `ssl = on` and a certificate chain made for the
// run (tests/common/pg.rs `Pki`: root → intermediate → server certificate for db.berth.test).
// Tests connect to the name with `hostaddr=127.0.0.1`, so no name resolution is involved.

/// In every URL of these tests, and never in any output.
const PASSWORD: &str = "pw-never-shown-7c1d";

/// `postgresql://postgres:PASSWORD@HOST:PORT/postgres?hostaddr=127.0.0.1&PARAMS`.
fn tls_url(server: &PgServer, host: &str, params: &str) -> String {
    format!(
        "postgresql://postgres:{PASSWORD}@{host}:{}/postgres?hostaddr=127.0.0.1&{params}",
        server.port
    )
}

/// Whether berth created `schema` (it does on its first connection, so not after a refusal).
fn schema_exists(server: &PgServer, schema: &str) -> bool {
    server
        .admin()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .unwrap()
        .get(0)
}

/// `berth plan` (which takes the lock, so connects) on a lab whose state is in `schema`.
fn plan_over(server: &PgServer, schema: &str, url: &str) -> Output {
    let lab = pg_lab("tls", schema);
    let out = berth(lab.path(), url, &["plan"]);
    assert!(
        !text(&out.stdout).contains(PASSWORD) && !text(&out.stderr).contains(PASSWORD),
        "the password was printed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let _ = server;
    out
}

/// `plan_over` connected: exit 0, and berth made its schema on the server.
#[track_caller]
fn assert_connects(server: &PgServer, schema: &str, url: &str) {
    assert_exit(&plan_over(server, schema, url), 0);
    assert!(schema_exists(server, schema), "{schema} was not created");
}

/// [`assert_connects`] to 127.0.0.1 with each of `modes` as `sslmode`.
#[track_caller]
fn assert_connects_in_modes(server: &PgServer, schema: &str, modes: &[&str]) {
    for mode in modes {
        let url = tls_url(server, "127.0.0.1", &format!("sslmode={mode}"));
        assert_connects(server, schema, &url);
    }
}

/// `plan_over` refused with exit 1, every part of `expected` in its message, and nothing made
/// on the server.
#[track_caller]
fn assert_refused(server: &PgServer, schema: &str, url: &str, expected: &[&str]) {
    let out = plan_over(server, schema, url);
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    for part in expected {
        assert!(err.contains(part), "`{part}` missing from:\n{err}");
    }
    assert!(!schema_exists(server, schema), "{schema} was created");
}

#[test]
fn tls_require_encrypts_the_session() {
    let server = common::pg::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let backend = PgBackend::new(
        &PostgresSettings {
            url: Some(tls_url(
                &server,
                "127.0.0.1",
                "sslmode=require&application_name=berth-tls-probe",
            )),
            workspace: "encrypted".into(),
            schema: "tls_require".into(),
            tls: Default::default(),
        },
        dir.path(),
    )
    .unwrap();
    let lock = backend.lock("apply", Duration::ZERO).unwrap();
    let mut state = State::new();
    backend.save(&mut state).unwrap();
    assert_eq!(backend.load().unwrap().unwrap().serial, state.serial);
    // Both sessions berth holds, the lock's and the data's, are TLS, seen from the server.
    let sessions: Vec<(i32, bool, Option<String>)> = server
        .admin()
        .query(
            "SELECT a.pid, s.ssl, s.version FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.application_name = 'berth-tls-probe'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let lock_pid: i32 = server
        .admin()
        .query_one(
            "SELECT backend_pid FROM tls_require.locks WHERE workspace = 'encrypted'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(sessions.iter().any(|s| s.0 == lock_pid), "{sessions:?}");
    for (pid, ssl, version) in &sessions {
        assert!(ssl, "berth's session {pid} is in clear text");
        assert!(
            version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")),
            "{version:?}"
        );
    }
    drop(lock);

    // Only an address (no host name): TLS all the same.
    let by_address = format!(
        "postgresql://postgres:{PASSWORD}@/postgres?hostaddr=127.0.0.1&port={}&sslmode=require",
        server.port
    );
    assert_connects(&server, "tls_by_address", &by_address);
    // The default (no sslmode) is require too.
    let out = plan_over(
        &server,
        "tls_default",
        &tls_url(&server, "127.0.0.1", "application_name=berth"),
    );
    assert_exit(&out, 0);
}

#[test]
fn tls_verify_full_with_the_right_ca_and_host_works() {
    let server = common::pg::shared_tls();
    let pki = server.pki.as_ref().unwrap();
    let url = tls_url(
        &server,
        common::pg::SERVER_NAME,
        &format!("sslmode=verify-full&sslrootcert={}", pki.root_ca.display()),
    );
    assert_connects(&server, "tls_full", &url);
    assert!(schema_exists(&server, "tls_full"));
    // The key/value form says the same.
    let kv = format!(
        "host={} hostaddr=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres sslmode=verify-full sslrootcert='{}'",
        common::pg::SERVER_NAME,
        server.port,
        pki.root_ca.display()
    );
    assert_connects(&server, "tls_full_kv", &kv);
}

#[test]
fn tls_carries_a_scram_password_login_with_channel_binding() {
    use common::pg::{SCRAM_PASSWORD, SCRAM_USER, SERVER_NAME};
    let server = common::pg::shared_tls();
    let pki = server.pki.as_ref().unwrap();
    let url = |password: &str| {
        format!(
            "postgresql://{SCRAM_USER}:{password}@{SERVER_NAME}:{}/postgres?hostaddr=127.0.0.1&channel_binding=require&sslmode=verify-full&sslrootcert={}",
            server.port,
            pki.root_ca.display()
        )
    };
    // channel_binding=require: SCRAM-SHA-256-PLUS, bound to the server's TLS certificate.
    let lab = pg_lab("tls", "tls_scram");
    let out = berth(lab.path(), &url(SCRAM_PASSWORD), &["plan"]);
    assert_exit(&out, 0);
    assert!(!text(&out.stdout).contains(SCRAM_PASSWORD));
    let wrong = "not-the-password-9d2e";
    let out = berth(lab.path(), &url(wrong), &["plan"]);
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "password authentication failed for user \"{SCRAM_USER}\""
        )),
        "{err}"
    );
    assert!(
        !err.contains(wrong) && !text(&out.stdout).contains(wrong),
        "{err}"
    );
}

#[test]
fn tls_sslrootcert_system_takes_the_systems_cas() {
    use common::pg::SERVER_NAME;
    let server = common::pg::shared_tls();
    let pki = server.pki.as_ref().unwrap();
    let url = tls_url(
        &server,
        SERVER_NAME,
        "sslmode=verify-full&sslrootcert=system",
    );
    let lab = pg_lab("tls", "tls_system");
    // The system's CAs as OpenSSL finds them: SSL_CERT_FILE overrides the distribution's bundle
    // (the test does not touch the machine's own store).
    let with_cas = |file: &Path| {
        berth_cmd(lab.path(), &url, &["plan"])
            .env("SSL_CERT_FILE", file)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap()
    };
    let refused = with_cas(&pki.other_ca);
    assert_exit(&refused, 1);
    let err = text(&refused.stderr);
    assert!(
        err.contains(
            "certificate not trusted: the server's certificate is not signed by the system's CAs"
        ),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    assert_exit(&with_cas(&pki.root_ca), 0);
}

#[test]
fn tls_verify_full_with_another_ca_is_refused() {
    let server = common::pg::shared_tls();
    let pki = server.pki.as_ref().unwrap();
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = tls_url(
            &server,
            common::pg::SERVER_NAME,
            &format!("sslmode={mode}&sslrootcert={}", pki.other_ca.display()),
        );
        assert_refused(
            &server,
            "tls_wrong_ca",
            &url,
            &[
                &format!(
                    "cannot connect to postgresql://postgres@{}:{}/postgres?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
                    common::pg::SERVER_NAME,
                    server.port,
                    pki.other_ca.display()
                ),
                "certificate not trusted",
                &format!("not signed by the CA in `{}`", pki.other_ca.display()),
            ],
        );
    }
}

/// Every file under `dir` with its bytes (to show that a refused apply changed nothing).
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.push((path, bytes));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn tls_an_apply_refused_by_the_certificate_check_changes_nothing() {
    let server = common::pg::shared_tls();
    let pki = server.pki.as_ref().unwrap();
    let lab = pg_lab("tls", "tls_apply_refused");
    let before = files_under(lab.path());
    let url = tls_url(
        &server,
        common::pg::SERVER_NAME,
        &format!("sslmode=verify-full&sslrootcert={}", pki.other_ca.display()),
    );
    let out = berth(lab.path(), &url, &["apply", "-auto-approve"]);
    assert_exit(&out, 1);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stderr.contains("certificate not trusted"), "{stderr}");
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "{stdout}\n{stderr}"
    );
    assert_eq!(files_under(lab.path()), before, "the lab changed");
    assert!(!schema_exists(&server, "tls_apply_refused"));
}

#[test]
fn tls_verify_full_against_a_host_name_not_in_the_certificate_is_refused() {
    let server = common::pg::shared_tls();
    let pki = server.pki.as_ref().unwrap();
    let params = |mode: &str| format!("sslmode={mode}&sslrootcert={}", pki.root_ca.display());
    assert_refused(
        &server,
        "tls_wrong_name",
        &tls_url(&server, "127.0.0.1", &params("verify-full")),
        &[
            "host name mismatch",
            "certificate is for db.berth.test, not `127.0.0.1`",
        ],
    );
    assert_refused(
        &server,
        "tls_wrong_name",
        &tls_url(&server, "other.berth.test", &params("verify-full")),
        &["host name mismatch", "not `other.berth.test`"],
    );
    // verify-ca checks the chain only: the same connection goes through.
    let ca_only = tls_url(&server, "127.0.0.1", &params("verify-ca"));
    assert_connects(&server, "tls_ca_only", &ca_only);
}

#[test]
fn tls_require_against_a_server_without_tls_is_refused() {
    let server = PgServer::start_tcp(None, "host all all 127.0.0.1/32 trust");
    for params in ["sslmode=require", "application_name=berth"] {
        assert_refused(
            &server,
            "no_tls",
            &tls_url(&server, "127.0.0.1", params),
            &[
                "server does not support TLS (sslmode=require",
                "sslmode=disable",
            ],
        );
    }
    // Saying so connects in clear text; `prefer` falls back to it.
    assert_connects_in_modes(&server, "no_tls", &["disable", "prefer"]);
}

#[test]
fn a_hostssl_only_server_refuses_sslmode_disable() {
    let server = common::pg::shared_tls();
    assert_refused(
        &server,
        "tls_disabled",
        &tls_url(&server, "127.0.0.1", "sslmode=disable"),
        &["no pg_hba.conf entry", "no encryption", "sslmode=disable"],
    );
    // `allow` tries clear text first, then TLS; `prefer` TLS first.
    assert_connects_in_modes(&server, "tls_fallback", &["allow", "prefer"]);
}

#[test]
fn tls_settings_in_the_state_block_and_a_client_certificate() {
    use common::pg::{CERT_USER, SERVER_NAME};
    let server = common::pg::shared_tls();
    let pki = server.pki.as_ref().unwrap();
    let lab = pg_lab("tls", "tls_hcl");
    // The CA beside the configuration, named relative to it.
    std::fs::create_dir(lab.path().join("certs")).unwrap();
    for (from, to) in [
        (&pki.root_ca, "ca.pem"),
        (&pki.client_cert, "client.pem"),
        (&pki.client_key, "client.key"),
    ] {
        std::fs::copy(from, lab.path().join("certs").join(to)).unwrap();
    }
    let hcl = lab.path().join("main.hcl");
    let with = |extra: &str| {
        let text = std::fs::read_to_string(&hcl).unwrap();
        let text = text.replace(
            "  schema    = \"tls_hcl\"\n",
            &format!("  schema    = \"tls_hcl\"\n{extra}"),
        );
        std::fs::write(&hcl, text).unwrap();
    };
    with("  sslmode     = \"verify-full\"\n  sslrootcert = \"certs/ca.pem\"\n");
    let url = format!(
        "postgresql://{CERT_USER}@{SERVER_NAME}:{}/postgres?hostaddr=127.0.0.1",
        server.port
    );
    // pg_hba.conf wants the client certificate of this user.
    let refused = berth(lab.path(), &url, &["plan"]);
    assert_exit(&refused, 1);
    assert!(
        text(&refused.stderr).contains("connection requires a valid client certificate"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!schema_exists(&server, "tls_hcl"));
    with("  sslcert     = \"certs/client.pem\"\n  sslkey      = \"certs/client.key\"\n");
    let out = berth(lab.path(), &url, &["plan"]);
    assert_exit(&out, 0);
    assert!(schema_exists(&server, "tls_hcl"));
    // The URL may repeat the state block, not contradict it.
    let contradicting = format!("{url}&sslmode=require");
    let out = berth(lab.path(), &contradicting, &["plan"]);
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr)
            .contains("`sslmode` is `require` in the URL but `verify-full` in the `state` block"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn prefer_falls_back_to_clear_text_when_the_server_refuses_tls_sessions() {
    // TLS on, but pg_hba.conf admits TCP sessions only in clear text.
    let server = PgServer::start_tcp(
        Some(common::pg::Pki::generate()),
        "hostnossl all all 127.0.0.1/32 trust",
    );
    assert_refused(
        &server,
        "nossl",
        &tls_url(&server, "127.0.0.1", "sslmode=require"),
        &["no pg_hba.conf entry", "SSL encryption"],
    );
    assert_connects_in_modes(&server, "nossl", &["prefer"]);
}
