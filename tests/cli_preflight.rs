//! Preflight through the real binary (issue 10, item 3), on copies of the drain example
//! (common/drain_lab.rs): what the static checks find is refused before the first step, all
//! at once, and nothing changes; `validate` finds the same.

mod common;

use std::path::Path;
use std::process::Output;

use common::drain_lab::*;

use common::cli::{assert_contains, run as berth, stderr, stdout};

fn text(o: &Output) -> String {
    stdout(o) + &stderr(o)
}

/// The drain lab writing es.xml back into a directory that does not exist, and with EDV
/// volumes but no `volume_command`.
fn lab_with(es_xml_out: &str, volumes: bool) -> tempfile::TempDir {
    let lab = drain_lab();
    let hcl = lab.path().join("main.hcl");
    let text = std::fs::read_to_string(&hcl).unwrap();
    let text = text.replacen(
        "  es_xml = \"es.xml\"\n",
        &format!("  es_xml = \"es.xml\"\n  es_xml_out = \"{es_xml_out}\"\n"),
        1,
    );
    assert_contains(&text, "es_xml_out");
    std::fs::write(&hcl, text).unwrap();
    if volumes {
        let original = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plans/drain-host/es.xml"),
        )
        .unwrap();
        std::fs::write(lab.path().join("es.xml"), original).unwrap();
    }
    lab
}

#[test]
fn an_es_xml_out_in_a_missing_directory_is_refused_before_the_first_step() {
    let lab = lab_with("missing/es.xml", true);
    let dir = lab.path();
    let es_before = std::fs::read(dir.join("es.xml")).unwrap();
    let out = berth(dir, &["apply", "-auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert_contains(
        &all,
        "preflight found 5 problems that would stop this apply before it finishes; nothing was changed",
    );
    assert_contains(&all, "/missing/es.xml (inventory.es_xml_out)");
    // Every problem at once: the volume command, and SSH to each host with a volume step.
    assert_contains(&all, "`inventory.volume_command`");
    for host in HOSTS {
        assert_contains(&all, &format!("no SSH to {host}, which "));
    }
    assert!(!all.contains("STOP_GUEST started"), "{all}");
    assert_eq!(std::fs::read(dir.join("es.xml")).unwrap(), es_before);
    assert!(!dir.join("state/berth.state.json").exists(), "nothing ran");
    assert!(!dir.join("missing").exists());

    // validate finds both without connecting anywhere.
    let validated = berth(dir, &["validate"]);
    assert_eq!(validated.status.code(), Some(1), "{}", text(&validated));
    let v = text(&validated);
    assert!(
        v.contains("apply would refuse: es.xml cannot be written back to ")
            && v.contains("/missing/es.xml (inventory.es_xml_out)"),
        "{v}"
    );
    assert_contains(&v, "apply would refuse: the volume steps (");
    assert!(!v.contains("no SSH"), "validate connects to no host: {v}");
}

#[test]
fn with_the_directory_there_the_same_apply_runs() {
    let lab = lab_with("out/es.xml", false);
    let dir = lab.path();
    std::fs::create_dir(dir.join("out")).unwrap();
    let out = berth(dir, &["apply", "-auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(dir.join("out/es.xml").exists());
}
