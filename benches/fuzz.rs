//! The long fuzzing run of issue 10: every reader of untrusted input (es.xml, HCL
//! configuration, plan file, state file) fed mutated inputs, one target after the other.
//!
//! ```text
//! cargo bench --bench fuzz -- --execs 10000000 --seed 1        # split over the four targets
//! cargo bench --bench fuzz -- --target esxml --execs 1000000   # one target
//! cargo bench --bench fuzz -- --replay esxml FILE              # one saved input
//! ```
//!
//! Options: `--execs N` (total, split evenly over the targets run; default 100000),
//! `--seed S` (default 1), `--target NAME` (repeatable; esxml, config, plan, state),
//! `--time-limit-ms MS` (an input slower than this is a hang; default 2000),
//! `--max-seconds S` (stop each target after S seconds even if fewer inputs ran),
//! `--findings DIR` (default target/tmp/fuzz-findings). Prints one line per target (execs,
//! execs/s, panics, hangs, bad errors, slowest input) and the outcome histogram; exits 1 when
//! anything was found. The harness is tests/fuzzing/ (docs/fuzzing.md).

#[path = "../tests/fuzzing/mod.rs"]
mod fuzzing;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fuzzing::targets;

fn usage(message: &str) -> ExitCode {
    eprintln!("fuzz: {message}");
    eprintln!(
        "usage: cargo bench --bench fuzz -- [--execs N] [--seed S] [--target NAME]... \
         [--time-limit-ms MS] [--max-seconds S] [--findings DIR] | --replay TARGET FILE"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut execs: u64 = 100_000;
    let mut seed: u64 = 1;
    let mut names: Vec<String> = Vec::new();
    let mut time_limit = Duration::from_secs(2);
    let mut findings = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings");
    let mut replay: Option<(String, PathBuf)> = None;
    let mut max_time: Option<Duration> = None;

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or_else(|| format!("{arg} needs {what}"));
        let parsed: Result<(), String> = (|| {
            match arg.as_str() {
                // What `cargo bench` passes to every bench binary.
                "--bench" => {}
                "--execs" => {
                    execs = value("a number")?
                        .parse()
                        .map_err(|e| format!("--execs: {e}"))?
                }
                "--seed" => {
                    seed = value("a number")?
                        .parse()
                        .map_err(|e| format!("--seed: {e}"))?
                }
                "--target" => names.push(value("a target name")?),
                "--time-limit-ms" => {
                    time_limit = Duration::from_millis(
                        value("milliseconds")?
                            .parse()
                            .map_err(|e| format!("--time-limit-ms: {e}"))?,
                    )
                }
                "--max-seconds" => {
                    max_time = Some(Duration::from_secs(
                        value("seconds")?
                            .parse()
                            .map_err(|e| format!("--max-seconds: {e}"))?,
                    ))
                }
                "--findings" => findings = PathBuf::from(value("a directory")?),
                "--replay" => {
                    let target = value("a target name")?;
                    let file = PathBuf::from(value("a file")?);
                    replay = Some((target, file));
                }
                other => return Err(format!("unknown argument {other}")),
            }
            Ok(())
        })();
        if let Err(message) = parsed {
            return usage(&message);
        }
    }

    if let Some((name, file)) = replay {
        let Some(mut target) = targets::by_name(&name, true) else {
            return usage(&format!("no target {name}"));
        };
        let input = match std::fs::read(&file) {
            Ok(input) => input,
            Err(e) => return usage(&format!("{}: {e}", file.display())),
        };
        let outcome = fuzzing::replay(target.as_mut(), &input);
        println!("{name} {}: {outcome}", file.display());
        return if outcome.starts_with("PANIC") || outcome.starts_with("BadError") {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }

    if names.is_empty() {
        names = targets::NAMES.iter().map(|n| n.to_string()).collect();
    }
    let per_target = execs / names.len() as u64;
    println!(
        "fuzz: seed {seed}, {per_target} execs per target, time limit {time_limit:?}, findings in {}",
        findings.display()
    );
    let mut clean = true;
    let mut total_execs = 0;
    let mut total_time = Duration::ZERO;
    for name in &names {
        let Some(mut target) = targets::by_name(name, true) else {
            return usage(&format!("no target {name}"));
        };
        let options = fuzzing::Options {
            // Each target its own stream, so `--target X` alone gives the same inputs.
            seed: seed ^ fnv(name),
            execs: per_target,
            time_limit,
            findings_dir: findings.clone(),
            progress: Some(Duration::from_secs(60)),
            max_time,
        };
        let report = fuzzing::fuzz(target.as_mut(), &options);
        println!("{}", report.summary());
        let mut outcomes: Vec<(&String, &u64)> = report.outcomes.iter().collect();
        outcomes.sort_by(|a, b| b.1.cmp(a.1));
        let shown: Vec<String> = outcomes
            .iter()
            .take(12)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("        outcomes: {}", shown.join(", "));
        for finding in &report.findings {
            println!(
                "        {} {}: {}",
                finding.kind,
                finding.file.display(),
                finding.message
            );
        }
        clean &= report.clean();
        total_execs += report.execs;
        total_time += report.elapsed;
    }
    println!(
        "total   execs={total_execs} time={:.1}s execs/s={:.0} {}",
        total_time.as_secs_f64(),
        total_execs as f64 / total_time.as_secs_f64().max(1e-9),
        if clean { "clean" } else { "FINDINGS" }
    );
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// FNV-1a of a target name: a per-target seed that does not depend on the order targets run.
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
