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

/// The same mutations, resealed: they get past the seal check (nearly all of `plan`'s inputs
/// die there, as `Corrupted`), to the parser's field errors (`Invalid`) and, when accepted, to
/// apply's comparison with the plans made now, which must name a difference for every plan
/// that is not one of them.
#[test]
fn resealed_plans_reach_the_parser_and_apply_s_comparison() {
    let raw = short_run(&mut targets::PlanFile::new(), 120, 3);
    let resealed = short_run(&mut targets::ResealedPlanFile::new(), 120, 3);
    let count = |r: &Report, outcome: &str| r.outcomes.get(outcome).copied().unwrap_or(0);
    assert!(
        count(&resealed, "Corrupted") * 4 < count(&raw, "Corrupted"),
        "raw {:?}, resealed {:?}",
        raw.outcomes,
        resealed.outcomes
    );
    assert!(count(&resealed, "Invalid") > 0, "{:?}", resealed.outcomes);
    assert!(
        count(&resealed, "accepted") > count(&raw, "accepted"),
        "raw {:?}, resealed {:?}",
        raw.outcomes,
        resealed.outcomes
    );
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

/// Inputs at the edges the mutations only reach by chance: nesting far past any real file
/// (a recursive reader would overflow its stack, which no `catch_unwind` catches), entity
/// expansion, numbers past every integer type, a NUL byte. Each reader must refuse or accept
/// them with a proper error, without panicking. Findings of the long run are added here.
#[test]
fn edge_inputs_are_refused_or_accepted_without_panic() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/plans/lab");
    let es = std::fs::read_to_string(examples.join("es.xml")).unwrap();
    let hcl = std::fs::read_to_string(examples.join("main.hcl")).unwrap();
    let machine = es.find("<machine ").unwrap();
    let after_tag = machine + es[machine..].find('>').unwrap() + 1;
    let deep = |open: &str, close: &str, depth: usize| open.repeat(depth) + &close.repeat(depth);
    let laughs = (b'b'..=b'h').fold(
        "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\">".to_string(),
        |doc, c| {
            let prev = (c - 1) as char;
            format!(
                "{doc}<!ENTITY {} \"{}\">",
                c as char,
                format!("&{prev};").repeat(10)
            )
        },
    ) + "]>";

    let es_xml: Vec<String> = vec![
        format!(
            "{}{}{}",
            &es[..machine],
            deep("<a>", "</a>", 50_000),
            &es[machine..]
        ),
        format!(
            "{}{}{}",
            &es[..after_tag],
            deep("<a>", "</a>", 50_000),
            &es[after_tag..]
        ),
        format!("{}{}", &es[..machine], "<machine>".repeat(50_000)),
        format!("{laughs}{}", &es[es.find("?>").map_or(0, |i| i + 2)..]).replacen("KVM", "&h;", 3),
        es.replacen("<machine ", "<machine id=\"&#1114112;\" ", 1),
        es.replace('>', ">\u{0}"),
        "<".repeat(100_000),
    ];
    let mut target = targets::EsXml {
        max_seed_len: usize::MAX,
    };
    for input in &es_xml {
        assert_proper(&mut target, input.as_bytes());
    }

    let config: Vec<String> = vec![
        format!("{hcl}\nx = {}\n", deep("[", "]", 50_000)),
        format!("{hcl}\nx = {}1{}\n", "(".repeat(50_000), ")".repeat(50_000)),
        format!("{hcl}\n{}", deep("host \"h\" {\n", "}\n", 50_000)),
        format!("{hcl}\nx = \"{}\"\n", "${".repeat(50_000)),
        format!("{hcl}\nx = {}1\n", "-".repeat(50_000)),
        format!("{hcl}\nx = <<EOT\n{}", "line\n".repeat(10_000)),
        hcl.replace("=", "= 340282366920938463463374607431768211456 +"),
        hcl.replace('\n', "\n\u{0}"),
    ];
    for input in &config {
        assert_proper(&mut targets::Config, input.as_bytes());
    }

    let json: Vec<String> = vec![
        deep("[", "]", 100_000),
        deep("{\"a\":", "}", 100_000).replace("}}", "1}}"),
        "{\"format_version\": 18446744073709551616, \"version\": 1e400}".to_string(),
        "{\"format_version\": 1, \"format_version\": 1, \"berth_version\": \"x\"}".to_string(),
        "{\"version\": 1, \"serial\": -1}".to_string(),
        "\u{feff}{}".to_string(),
    ];
    let mut plan = targets::PlanFile::new();
    let mut state = targets::StateFile::new();
    for input in &json {
        assert_proper(&mut plan, input.as_bytes());
        assert_proper(&mut state, input.as_bytes());
    }
}

// Findings of the long run (docs/fuzzing.md), each with the smallest input that shows it.

/// Found by the long run (config, 2026-12-03): an error whose label sits past column 65,535 of
/// its line made `config::render` panic inside miette ("Formatting argument out of range"),
/// and `berth validate` exit 101. Tabs count 4 columns, so 17,000 of them are enough.
fn far_right_error(padding: &str) -> String {
    format!(
        "inventory {{\n  es_xml = \"es.xml\"\n}}\n\nhost \"h\" {{\n  drain = {padding}\"yes\"\n}}\n"
    )
}

#[test]
fn an_error_far_right_on_a_long_line_renders_as_file_line_col() {
    for (padding, column) in [(" ".repeat(70_000), 70_011), ("\t".repeat(17_000), 17_011)] {
        let text = far_right_error(&padding);
        let err = berth::config::parse_str("main.hcl", &text, std::path::Path::new("/etc/berth"))
            .unwrap_err();
        let rendered = berth::config::render(&err, false);
        let place = format!("main.hcl:6:{column}");
        assert!(rendered.contains(&place), "{place} not in {rendered}");
        assert!(rendered.contains("drain"), "{rendered}");
    }
    // An error on a short line keeps its snippet.
    let err = berth::config::parse_str(
        "main.hcl",
        &far_right_error(""),
        std::path::Path::new("/etc/berth"),
    )
    .unwrap_err();
    assert!(berth::config::render(&err, false).contains("╭─[main.hcl:6:11]"));
}

#[test]
fn validate_refuses_an_error_far_right_on_a_long_line_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.hcl"),
        far_right_error(&"\t".repeat(17_000)),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("-C")
        .arg(dir.path())
        .arg("validate")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("main.hcl:6:17011"), "{stderr}");
}

#[track_caller]
fn assert_proper(target: &mut dyn Target, input: &[u8]) {
    match fuzzing::run_one(target, input) {
        Ok(Verdict::Accepted | Verdict::Refused(_)) => {}
        other => panic!(
            "{}: {other:?} on {:?}…",
            target.name(),
            String::from_utf8_lossy(&input[..input.len().min(200)])
        ),
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
