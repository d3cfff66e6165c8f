//! Throughput of the state backends: state writes per second (one journal transition per
//! write, as the executor makes them) and whole applies per second of the drain lab on
//! libvirt's test driver, for the local file and a private PostgreSQL server (the one the
//! tests start: tests/common/pg.rs). Medians of one run; docs/state.md records the figures.
//!
//!   nice cargo bench --bench state_backend

#[path = "../tests/common/drain_lab.rs"]
#[allow(dead_code)]
mod drain_lab;
#[path = "../tests/common/pg.rs"]
mod pg;

use std::path::Path;
use std::time::{Duration, Instant};

use berth::apply::{ExecOptions, Session};
use berth::config::{self, PostgresSettings};
use berth::schedule::StepKind;
use berth::state::postgres::PgBackend;
use berth::state::{Backend, JournalEntry, StateStore, StepStatus};

const WRITES: usize = 400;
const APPLIES: usize = 15;
const CONCURRENT: usize = 8;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn per_second(d: Duration) -> f64 {
    1.0 / d.as_secs_f64()
}

/// `WRITES` saves, each adding one journal entry and then marking it done (two writes per
/// step, as the executor journals running and done). Returns the median write time.
fn writes(backend: &dyn Backend) -> Duration {
    let _lock = backend.lock("bench", Duration::ZERO).unwrap();
    let mut state = backend.load().unwrap().unwrap_or_default();
    let mut times = Vec::with_capacity(WRITES);
    for i in 0..WRITES / 2 {
        let mut entry = JournalEntry {
            plan_id: "bench".into(),
            step_id: format!("vm{i}:MIGRATE_GUEST"),
            kind: StepKind::MigrateGuest,
            guest: format!("vm{i}"),
            from: "adm01".into(),
            to: "adm02".into(),
            status: StepStatus::Running,
            started_at: Some(chrono::Utc::now()),
            finished_at: None,
            error: None,
            boot_id: None,
            once_marker: None,
        };
        state.upsert(entry.clone());
        let t = Instant::now();
        backend.save(&mut state).unwrap();
        times.push(t.elapsed());
        entry.status = StepStatus::Done;
        entry.finished_at = Some(chrono::Utc::now());
        state.upsert(entry);
        let t = Instant::now();
        backend.save(&mut state).unwrap();
        times.push(t.elapsed());
    }
    median(times)
}

/// A drain lab whose state is in PostgreSQL workspace `workspace` (URL in the HCL).
fn lab(url: Option<&str>, workspace: &str) -> tempfile::TempDir {
    let lab = drain_lab::drain_lab();
    if let Some(url) = url {
        let hcl = lab.path().join("main.hcl");
        let mut text = std::fs::read_to_string(&hcl).unwrap();
        text.push_str(&format!(
            "\nstate {{\n  backend = \"postgres\"\n  workspace = \"{workspace}\"\n  url = \"{url}\"\n}}\n"
        ));
        std::fs::write(&hcl, text).unwrap();
    }
    lab
}

/// One whole apply (lock, plan, 13 steps journaled, es.xml written back) in-process.
fn apply(rt: &tokio::runtime::Runtime, dir: &Path) -> Duration {
    let t = Instant::now();
    let cfg = config::load_dir(dir).unwrap();
    let mut session = Session::open(cfg, rt.handle().clone()).unwrap();
    let inv = session.read_inventory().unwrap();
    let plan = session.make_plan(&inv).unwrap();
    session.begin(plan, None).unwrap();
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    assert!(outcome.finished && outcome.report.succeeded());
    drop(session);
    t.elapsed()
}

fn applies(rt: &tokio::runtime::Runtime, url: Option<&str>, tag: &str) -> (Duration, f64) {
    let labs: Vec<_> = (0..APPLIES)
        .map(|i| lab(url, &format!("{tag}-seq{i}")))
        .collect();
    let one = median(labs.iter().map(|l| apply(rt, l.path())).collect());
    // CONCURRENT applies at once, each on its own workspace (its own state file locally).
    let labs: Vec<_> = (0..CONCURRENT)
        .map(|i| lab(url, &format!("{tag}-par{i}")))
        .collect();
    let t = Instant::now();
    std::thread::scope(|s| {
        for l in &labs {
            s.spawn(|| apply(rt, l.path()));
        }
    });
    (one, CONCURRENT as f64 / t.elapsed().as_secs_f64())
}

fn main() {
    let server = pg::PgServer::start();
    let url = server.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let local = StateStore::open(dir.path().join("bench.state.json")).unwrap();
    let pg = PgBackend::new(
        &PostgresSettings {
            url: Some(url.clone()),
            workspace: "bench-writes".into(),
            schema: PostgresSettings::DEFAULT_SCHEMA.into(),
            tls: Default::default(),
        },
        dir.path(),
    )
    .unwrap();
    let local_write = writes(&local);
    let pg_write = writes(&pg);
    println!(
        "state writes ({WRITES}, journal growing to {} entries), median: local file {:.2} ms ({:.0}/s), PostgreSQL {:.2} ms ({:.0}/s)",
        WRITES / 2,
        local_write.as_secs_f64() * 1e3,
        per_second(local_write),
        pg_write.as_secs_f64() * 1e3,
        per_second(pg_write)
    );
    let (local_one, local_par) = applies(&rt, None, "local");
    let (pg_one, pg_par) = applies(&rt, Some(&url), "pg");
    println!(
        "drain-lab applies (13 steps, test driver), median of {APPLIES}: local file {:.0} ms ({:.1}/s), PostgreSQL {:.0} ms ({:.1}/s)",
        local_one.as_secs_f64() * 1e3,
        per_second(local_one),
        pg_one.as_secs_f64() * 1e3,
        per_second(pg_one)
    );
    println!(
        "{CONCURRENT} applies at once on {CONCURRENT} workspaces: local file {local_par:.1} applies/s, PostgreSQL {pg_par:.1} applies/s"
    );
}
