//! Terraform's command-line conventions through the real binary: single-dash long flags for
//! every flag clap knows, and unknown ones named as written.

#[path = "common/cli.rs"]
mod cli;
use cli::{berth, example};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_long_flag_works_with_one_dash_including_simulates() {
    let dir = example("drain-host");
    let two = berth(
        &dir,
        &[
            "simulate",
            "--json",
            "--max-inbound=1",
            "--link-bandwidth",
            "500",
        ],
    );
    let one = berth(
        &dir,
        &[
            "simulate",
            "-json",
            "-max-inbound=1",
            "-link-bandwidth",
            "500",
        ],
    );
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert_eq!(one.stdout, two.stdout);
}

#[test]
fn an_unknown_single_dash_flag_is_named_as_written() {
    let dir = example("drain-host");
    let out = berth(&dir, &["plan", "-lol"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("unexpected argument '-lol' found"), "{text}");
    assert!(!text.contains("'-l'"), "{text}");
    // A flag of another subcommand, with one dash: named as written too.
    let out = berth(&dir, &["simulate", "-out=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unexpected argument '-out' found"),
        "{}",
        stderr(&out)
    );
}
