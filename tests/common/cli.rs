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
    assert_cmd::Command::cargo_bin("berth")
        .unwrap()
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}
