//! The short fuzzing run of `cargo test`: each reader of untrusted input (es.xml, HCL
//! configuration, plan file, state file) gets a few hundred mutated inputs from a fixed seed,
//! and must neither panic, nor hang, nor return an error that breaks its promises.
//!
//! The long run is `cargo bench --bench fuzz` (docs/fuzzing.md); both use tests/fuzzing/.

mod fuzzing;

use std::path::PathBuf;
use std::time::Duration;

use fuzzing::mutate::{self, Syntax};
use fuzzing::targets;
use fuzzing::{Options, Report, Target, Verdict};

fn options(execs: u64) -> (tempfile::TempDir, Options) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        seed: 20261203,
        execs,
        time_limit: Duration::from_secs(10),
        findings_dir: dir.path().join("findings"),
        progress: None,
        max_time: None,
    };
    (dir, options)
}

/// Runs `target` and checks the oracle held, and that the mutations reached past the first
/// check: some inputs accepted and several different refusals.
#[track_caller]
fn short_run(target: &mut dyn Target, execs: u64, min_outcomes: usize) -> Report {
    let (_dir, options) = options(execs);
    let report = fuzzing::fuzz(target, &options);
    eprintln!("{}\n{:#?}", report.summary(), report.outcomes);
    assert!(report.clean(), "{:#?}", report.findings);
    assert_eq!(report.execs, execs);
    assert!(
        report.outcomes.get("accepted").copied().unwrap_or(0) > 0,
        "no input accepted: {:?}",
        report.outcomes
    );
    assert!(
        report.outcomes.len() >= min_outcomes,
        "only {} outcomes: {:?}",
        report.outcomes.len(),
        report.outcomes
    );
    report
}

#[test]
fn es_xml_reader_survives_mutated_files() {
    short_run(
        &mut targets::EsXml {
            max_seed_len: 64 << 10,
        },
        300,
        6,
    );
}

#[test]
fn config_loader_survives_mutated_hcl() {
    short_run(&mut targets::Config, 300, 6);
}

#[test]
fn plan_file_reader_survives_mutated_plans() {
    short_run(&mut targets::PlanFile::new(), 120, 3);
}

#[test]
fn state_reader_survives_mutated_states() {
    short_run(&mut targets::StateFile::new(), 120, 3);
}

/// A reader with planted bugs: a panic on `boom`, a slow path on `slow`, a location-less error
/// on `bad`. The harness must count each, and save each input so that it replays.
struct Planted;

impl Target for Planted {
    fn name(&self) -> &'static str {
        "planted"
    }
    fn syntax(&self) -> Syntax {
        Syntax::Json
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![
            b"[\"boom\"]".to_vec(),
            b"[\"slow\"]".to_vec(),
            b"[\"bad\"]".to_vec(),
            b"[1]".to_vec(),
        ]
    }
    fn run(&mut self, input: &[u8]) -> Verdict {
        match input {
            b"[\"boom\"]" => panic!("planted panic"),
            b"[\"slow\"]" => {
                // Busy for longer than the time limit: counted as a hang, whatever the load.
                let t0 = std::time::Instant::now();
                while t0.elapsed() < Duration::from_millis(60) {
                    std::hint::spin_loop();
                }
                Verdict::Accepted
            }
            b"[\"bad\"]" => Verdict::BadError("planted".to_string()),
            _ => Verdict::Refused("other".to_string()),
        }
    }
}

#[test]
fn harness_counts_and_saves_panics_hangs_and_bad_errors() {
    let (_dir, mut options) = options(4);
    options.time_limit = Duration::from_millis(20);
    let report = fuzzing::fuzz(&mut Planted, &options);
    assert_eq!((report.panics, report.hangs, report.bad_errors), (1, 1, 1));
    assert!(!report.clean());
    let kinds: Vec<&str> = report.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, ["panic", "hang", "bad-error"]);
    let panic = &report.findings[0];
    assert!(panic.message.contains("planted panic"), "{}", panic.message);
    let saved = std::fs::read(&panic.file).unwrap();
    assert_eq!(saved, b"[\"boom\"]");
    assert!(fuzzing::replay(&mut Planted, &saved).starts_with("PANIC"));
    // A panic outside a fuzz input still reaches the usual hook and unwinds as usual.
    assert!(std::panic::catch_unwind(|| panic!("not fuzzing")).is_err());
}

#[test]
fn same_seed_same_inputs() {
    let run = || {
        let (_dir, options) = options(150);
        fuzzing::fuzz(&mut targets::Config, &options).outcomes
    };
    assert_eq!(run(), run());
}

/// Inputs that once broke a reader, replayed on every `cargo test` (tests/fuzz-regressions/
/// TARGET-*.bin): each must now be refused or accepted without a panic or a bad error.
#[test]
fn saved_findings_replay_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let target_name = name.split('-').next().unwrap();
        let mut target = targets::by_name(target_name, false)
            .unwrap_or_else(|| panic!("{name}: no target {target_name}"));
        let input = std::fs::read(&path).unwrap();
        let outcome = fuzzing::replay(target.as_mut(), &input);
        assert!(
            !outcome.starts_with("PANIC") && !outcome.starts_with("BadError"),
            "{name}: {outcome}"
        );
    }
}

// The structure the mutations rely on.

#[test]
fn xml_element_spans_match_their_end_tags() {
    let text = b"<a><b x=\"1\">t</b><c/></a>";
    let all = mutate::tags(text);
    assert_eq!(all.len(), 5);
    assert_eq!(&text[mutate::element(&all, 0)], &text[..]);
    assert_eq!(&text[mutate::element(&all, 1)], b"<b x=\"1\">t</b>");
    assert_eq!(&text[mutate::element(&all, 3)], b"<c/>");
    let attrs = mutate::attributes(text, &all[1]);
    assert_eq!(&text[attrs[0].1.clone()], b"1");
}

#[test]
fn hcl_blocks_span_to_their_closing_brace() {
    let text = b"a {\n  b \"}\" {\n    x = 1\n  }\n}\ny = 2\n";
    let l = mutate::lines(text);
    let all = mutate::blocks(text, &l);
    assert_eq!(all.len(), 2);
    assert_eq!(&text[all[0].clone()], &text[..text.len() - 7]);
    assert_eq!(mutate::hcl_attributes(text, &l).len(), 2);
}
