//! Issue 2's benchmark: plan the drain of 5 % of a 10,000-host, 100,000-guest fleet.
//!
//! `cargo bench --bench plan_fleet` (release). The parent writes a synthetic es.xml once, then
//! re-executes itself once per run (`--child`), so every run's peak RSS (VmHWM) is the peak of
//! one plan in a fresh process, not the maximum over runs. Each child times its stages and
//! prints one line of `key=value` pairs; the parent reports the median of each stage.
//!
//! Stages, as `berth plan` runs them (libvirt is replaced by observations that match es.xml,
//! as if every host had been read):
//! - `read`: es.xml from disk (`text_file::read_text`: mapped, as `berth plan` reads it);
//! - `parse`: `inventory::esxml::parse`;
//! - `reconcile`: `inventory::reconcile_owned` with the synthetic observations (taken apart, as
//!   `inventory::load` does), plus the fingerprint;
//! - `config`: `config::parse_str` of an HCL file that drains every 20th host;
//! - `plan`: `plan::build::build` (diff, schedule, host summaries, es.xml diff).
//!
//! Environment: `BERTH_BENCH_HOSTS` (10000), `BERTH_BENCH_GUESTS_PER_HOST` (10),
//! `BERTH_BENCH_RUNS` (5), `BERTH_BENCH_DRAIN_EVERY` (20, i.e. 5 %); `BERTH_BENCH_DUMP=FILE`
//! writes every move's guest, target and reason to FILE (to compare placement before/after).

#[path = "support/fleet.rs"]
mod fleet;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use berth::plan;

use fleet::{FleetSpec, median, peak_rss_kib};

/// Stages in the order they run; `plan_total` is their sum.
const STAGES: [&str; 5] = ["read", "parse", "reconcile", "config", "plan"];

#[global_allocator]
static ALLOCATOR: berth::alloc::Allocator = berth::alloc::Allocator {};

fn main() {
    berth::alloc::configure();
    let args: Vec<String> = std::env::args().collect();
    let spec = FleetSpec::from_env();
    // `--write DIR` leaves the es.xml in DIR, to profile `--child DIR` on its own.
    if let Some(i) = args.iter().position(|a| a == "--write") {
        spec.write(Path::new(args.get(i + 1).expect("--write DIR")));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let dir = PathBuf::from(args.get(i + 1).expect("--child DIR"));
        child(&spec, &dir);
        return;
    }
    parent(&spec);
}

fn parent(spec: &FleetSpec) {
    let runs: usize = fleet::env_or("BERTH_BENCH_RUNS", 5);
    let dir = tempfile::tempdir().expect("temporary directory");
    let started = Instant::now();
    let written = spec.write(dir.path());
    eprintln!(
        "plan_fleet: {} hosts, {} guests, draining {} hosts; es.xml {:.1} MiB written in {:.2?}",
        spec.hosts,
        spec.hosts * spec.guests_per_host,
        spec.drained().count(),
        written as f64 / 1048576.0,
        started.elapsed()
    );

    let exe = std::env::current_exe().expect("own path");
    let mut samples: Vec<Vec<(String, f64)>> = Vec::new();
    for run in 1..=runs {
        let out = Command::new(&exe)
            .arg("--child")
            .arg(dir.path())
            .stderr(Stdio::inherit())
            .output()
            .expect("run child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed:\n{stdout}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with("stages "))
            .expect("child printed its stages");
        let values: Vec<(String, f64)> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().expect("number")))
            .collect();
        eprintln!("run {run}/{runs}: {}", line.trim_start_matches("stages "));
        samples.push(values);
    }

    let column = |key: &str| -> Vec<f64> {
        samples
            .iter()
            .filter_map(|s| s.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
            .collect()
    };
    println!("\nplan_fleet: median of {runs} runs, each in a fresh process");
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "stage", "wall", "cpu", "of it sys"
    );
    for key in STAGES.iter().copied().chain(["plan_total", "render_text"]) {
        println!(
            "{:<28} {:>8.3} s {:>8.2} s {:>8.2} s",
            key,
            median(column(key)),
            median(column(&format!("{key}_cpu"))),
            median(column(&format!("{key}_sys")))
        );
    }
    for key in ["moves", "steps", "waves", "errors"] {
        println!("{:<28} {:>10}", key, median(column(key)));
    }
    let rss = column("peak_rss_mib");
    println!(
        "{:<28} {:>6.0} MiB (max over runs {:.0} MiB)",
        "peak RSS (VmHWM)",
        median(rss.clone()),
        rss.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "{:<28} {:>6.0} MiB",
        "peak RSS after render",
        median(column("peak_rss_after_render_mib"))
    );
}

/// `plan::build::build` again, one part at a time (after the peak RSS was read), to find hot spots.
fn breakdown(cfg: &berth::config::Config, inv: &berth::inventory::Inventory) {
    let topo = &inv.topology;
    let t = Part::start();
    std::hint::black_box(berth::inventory::load::sha256_hex(
        inv.es_xml_text.as_bytes(),
    ));
    eprintln!("  {:<50} {}", "sha256 of es.xml", t.took());
    let t = Part::start();
    let reconciled = berth::inventory::reconcile_owned(
        &inv.es,
        fleet::observations(&FleetSpec::from_env(), &inv.es),
        berth::inventory::DriftPolicy::StopOnDrift,
        &berth::inventory::DomainNaming::default(),
    );
    eprintln!("  {:<50} {}", "observations + reconcile", t.took());
    drop(reconciled);
    let t = Part::start();
    let desired = berth::diff::desired(cfg, topo).expect("desired");
    eprintln!("  {:<50} {}", "diff::desired", t.took());
    let t = Part::start();
    let (moves, _) = berth::diff::moves(cfg, topo, &desired);
    eprintln!("  {:<50} {}", "diff::moves", t.took());
    let limits = berth::schedule::Limits::from_desired(&desired, true);
    let t = Part::start();
    let s = berth::schedule::schedule(&moves, topo, &limits).expect("schedule");
    eprintln!("  {:<50} {}", "schedule", t.took());
    let t = Part::start();
    let hosts = plan::build::host_summaries(topo, &limits, &s.moves, &s.peaks);
    eprintln!("  {:<50} {}", "host_summaries", t.took());
    let t = Part::start();
    let after = plan::build::esxml_after(inv, &s.moves).expect("rewrite");
    eprintln!(
        "  {:<50} {}",
        "esxml_after (apply's checked rewrite, not in plan)",
        t.took()
    );
    std::hint::black_box((hosts, after));
}

/// Wall and CPU time of one part of the breakdown (CPU: the whole process, every thread; the
/// system part of it separately).
struct Part {
    wall: Instant,
    cpu: (f64, f64),
}

impl Part {
    fn start() -> Part {
        Part {
            wall: Instant::now(),
            cpu: fleet::cpu_user_system(),
        }
    }

    fn took(&self) -> String {
        let (user, system) = fleet::cpu_user_system();
        format!(
            "{:.3} s wall, {:.2} s CPU ({:.2} s sys)",
            self.wall.elapsed().as_secs_f64(),
            user + system - self.cpu.0 - self.cpu.1,
            system - self.cpu.1
        )
    }
}

/// One plan, timed stage by stage; prints `stages key=value …`.
fn child(spec: &FleetSpec, dir: &Path) {
    let mut timings: Vec<(String, f64)> = Vec::new();
    let mut cpu_mark = fleet::cpu_user_system();
    let mut time = |name: &'static str, started: Instant| {
        let (user, system) = fleet::cpu_user_system();
        timings.push((name.to_string(), started.elapsed().as_secs_f64()));
        timings.push((
            format!("{name}_cpu"),
            user + system - cpu_mark.0 - cpu_mark.1,
        ));
        timings.push((format!("{name}_sys"), system - cpu_mark.1));
        timings.push((format!("{name}_rss_mib"), fleet::rss_kib() as f64 / 1024.0));
        // The anonymous part: what the process allocated, without the mapped es.xml's pages
        // (the page cache's, counted in `_rss_mib` once touched but costing no fresh memory).
        timings.push((
            format!("{name}_anon_mib"),
            fleet::rss_anon_kib() as f64 / 1024.0,
        ));
        cpu_mark = (user, system);
    };

    // Through berth's own reader, as `berth plan` reads it: a regular file is mapped.
    let t = Instant::now();
    let text = berth::text_file::read_text(&dir.join("es.xml")).expect("read es.xml");
    time("read", t);

    let t = Instant::now();
    let (es, layout) = berth::inventory::esxml::parse_with_layout("es.xml", &text)
        .expect("synthetic es.xml parses");
    time("parse", t);

    // What libvirt would show: built outside the timed stages, as the real reads are I/O.
    let t = Instant::now();
    let observations = fleet::observations(spec, &es);
    time("observations", t);

    let t = Instant::now();
    let inv = fleet::inventory(es, layout, text, observations);
    // As `inventory::load` does once the text is parsed and hashed.
    inv.es_xml_text
        .unchanged()
        .expect("es.xml unchanged while read");
    time("reconcile", t);

    let t = Instant::now();
    let cfg =
        berth::config::parse_str("main.hcl", &spec.hcl(dir), dir).expect("generated HCL loads");
    time("config", t);

    let t = Instant::now();
    let plan = plan::build::build(&cfg, &inv, Ok(Default::default())).expect("plans");
    time("plan", t);
    let rss_plan = peak_rss_kib();
    if let Some(path) = std::env::var_os("BERTH_BENCH_DUMP") {
        // Every move's guest, target and reason, one per line: compared byte for byte before
        // and after a change to placement, to show that its choices and reasons are unchanged.
        let mut dump = String::new();
        for m in &plan.moves {
            dump.push_str(&format!("{}\t{}\t{}\n", m.guest, m.to, m.reason));
        }
        std::fs::write(path, dump).expect("write BERTH_BENCH_DUMP");
    }
    if std::env::var_os("BERTH_BENCH_BREAKDOWN").is_some() {
        breakdown(&cfg, &inv);
    }

    // Timed apart from the stages: the breakdown, if any, ran in between.
    let t = Instant::now();
    let cpu = fleet::cpu_user_system();
    let text = berth::render::plan_text(&plan, &berth::render::TextOptions::default());
    let after = fleet::cpu_user_system();
    timings.push(("render_text".into(), t.elapsed().as_secs_f64()));
    timings.push(("render_text_cpu".into(), after.0 + after.1 - cpu.0 - cpu.1));
    timings.push(("render_text_sys".into(), after.1 - cpu.1));
    std::hint::black_box(&text);

    let sum = |suffix: &str| -> f64 {
        timings
            .iter()
            .filter(|(k, _)| STAGES.iter().any(|s| format!("{s}{suffix}") == *k))
            .map(|(_, v)| v)
            .sum()
    };
    let (total, total_cpu, total_sys) = (sum(""), sum("_cpu"), sum("_sys"));
    let mut line = String::from("stages");
    for (k, v) in &timings {
        line.push_str(&format!(" {k}={v:.4}"));
    }
    line.push_str(&format!(
        " plan_total={total:.4} plan_total_cpu={total_cpu:.4} plan_total_sys={total_sys:.4}"
    ));
    line.push_str(&format!(
        " moves={} steps={} waves={} errors={}",
        plan.moves.len(),
        plan.steps.len(),
        plan.waves.len(),
        plan.errors.len()
    ));
    line.push_str(&format!(" peak_rss_mib={:.1}", rss_plan as f64 / 1024.0));
    line.push_str(&format!(
        " peak_rss_after_render_mib={:.1}",
        peak_rss_kib() as f64 / 1024.0
    ));
    if let Some(e) = plan.errors.first() {
        eprintln!("first plan error: {}", e.message);
    }
    println!("{line}");
}
