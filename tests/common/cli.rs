//! Running the real `berth` binary on the repository's examples.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// `examples/plans/NAME` in the repository.
pub fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/plans")
        .join(name)
}

/// Runs `berth -C dir ARGS…` without colour. The examples are planned in place by tests
/// running in parallel: `plan` gets `-lock=false`, or they would refuse each other the state lock.
pub fn berth(dir: &Path, args: &[&str]) -> Output {
    let args: Vec<&str> = match args.split_first() {
        Some((&"plan", rest)) => ["plan", "-lock=false"]
            .into_iter()
            .chain(rest.iter().copied())
            .collect(),
        _ => args.to_vec(),
    };
    run(dir, &args)
}

/// Runs `berth -C dir ARGS…` as given (unlike [`berth`], `plan` keeps its state lock), without
/// colour.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    run_with(dir, args, &[])
}

/// [`run`] with the environment variables `env` set (name, value). `BERTH_PLAN_KEY` is never
/// inherited: it is set only when `env` sets it.
pub fn run_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = assert_cmd::Command::cargo_bin("berth").unwrap();
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("BERTH_PLAN_KEY");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing both outputs when it is another.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Asserts that `output` contains `expected`, showing the whole output when it does not.
#[track_caller]
pub fn assert_contains(output: &str, expected: &str) {
    assert!(
        output.contains(expected),
        "expected {expected:?} in:\n{output}"
    );
}
