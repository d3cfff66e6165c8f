//! Bad inputs through the real binary: each gives a located error, exit code 1, and changes nothing.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/fs.rs"]
mod fs_util;
use cli::{assert_contains, run as berth};
use fs_util::{example_copy, replace, repo};

/// A copy of the drain-host example in a temp dir, with `edit` applied to its files.
fn workdir(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = example_copy("drain-host");
    edit(dir.path());
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn plan(dir: &Path) -> Output {
    berth(dir, &["plan", "-out=p.berth"])
}

/// Runs `berth plan` in `dir`, asserts exit 1, no plan written, and returns stderr + stdout.
fn fails(dir: &Path) -> String {
    let out = plan(dir);
    let text = format!("{}{}", cli::stderr(&out), cli::stdout(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1, got {:?}:\n{text}",
        out.status.code()
    );
    assert!(
        !dir.join("p.berth").exists(),
        "a failed plan must not write a plan file"
    );
    text
}

/// [`fails`] on the drain-host example with `extra.hcl` holding `text`.
fn fails_with_extra_hcl(text: &str) -> String {
    let dir = workdir(|d| write(d, "extra.hcl", text));
    fails(dir.path())
}

#[test]
fn unknown_attribute_is_located_with_a_suggestion() {
    let dir = workdir(|d| replace(d, "main.hcl", "drain = true", "drian = true"));
    let err = fails(dir.path());
    assert_contains(&err, "main.hcl:");
    assert_contains(&err, "drian");
    assert_contains(&err, "drain");
}

#[test]
fn bad_mode_lists_the_valid_ones() {
    let dir = workdir(|d| {
        replace(
            d,
            "main.hcl",
            "mode            = \"offline\"",
            "mode = \"teleport\"",
        )
    });
    let err = fails(dir.path());
    assert_contains(&err, "teleport");
    assert_contains(&err, "live");
    assert_contains(&err, "offline_force");
    assert_contains(&err, "main.hcl:");
}

#[test]
fn unknown_guest_in_hcl_is_located() {
    let err = fails_with_extra_hcl("guest \"exa09adm01vm07\" {\n  host = \"exa01adm02\"\n}\n");
    assert_contains(&err, "extra.hcl:1:");
    assert_contains(&err, "exa09adm01vm07");
}

#[test]
fn unknown_host_in_hcl_is_located() {
    let err = fails_with_extra_hcl("guest \"exa01adm01vm01\" {\n  host = \"exa07adm02\"\n}\n");
    assert_contains(&err, "extra.hcl:2:");
    assert_contains(&err, "exa07adm02");
}

#[test]
fn duplicate_guest_block_names_both_places() {
    let block = "guest \"exa01adm01vm01\" {\n  host = \"exa01adm02\"\n}\n";
    let err = fails_with_extra_hcl(&format!("{block}{block}"));
    assert_contains(&err, "extra.hcl:1:");
    assert_contains(&err, "extra.hcl:4:");
}

#[test]
fn hcl_syntax_error_is_located() {
    let err = fails_with_extra_hcl("guest \"x\" {\n  host = \n");
    assert_contains(&err, "extra.hcl:");
}

#[test]
fn truncated_es_xml_is_located() {
    let dir = workdir(|d| {
        let text = std::fs::read_to_string(d.join("es.xml")).unwrap();
        write(d, "es.xml", &text[..text.len() / 2]);
    });
    let err = fails(dir.path());
    assert_contains(&err, "es.xml");
}

#[test]
fn xen_es_xml_is_refused_with_the_reason() {
    let dir = workdir(|d| {
        let xen =
            std::fs::read_to_string(repo().join("../shared/oeda-fixtures/minimal.xml")).unwrap();
        write(d, "es.xml", &xen);
    });
    let err = fails(dir.path());
    assert_contains(&err, "Xen");
}

#[test]
fn dangling_guest_reference_names_the_id() {
    let dir = workdir(|d| {
        let text = std::fs::read_to_string(d.join("es.xml")).unwrap();
        // Point the first host's guest reference at a machine that does not exist.
        let reference = "<machine id=\"exa01adm01vm01.example.com_id\" />";
        assert!(text.contains(reference));
        write(
            d,
            "es.xml",
            &text.replacen(reference, "<machine id=\"no-such-machine_id\" />", 1),
        );
    });
    let err = fails(dir.path());
    assert_contains(&err, "no-such-machine_id");
}

#[test]
fn missing_es_xml_names_the_path() {
    let dir = workdir(|d| std::fs::remove_file(d.join("es.xml")).unwrap());
    let err = fails(dir.path());
    assert_contains(&err, "es.xml");
}

#[test]
fn unreachable_libvirt_names_host_and_uri() {
    let dir =
        workdir(|d| std::fs::remove_file(d.join("nodes/exa01adm02.example.com.xml")).unwrap());
    let err = fails(dir.path());
    assert_contains(&err, "exa01adm02");
    // Its own error, not "drift", and no advice to pick a drift_source.
    assert_contains(&err, "[host_unreachable] host exa01adm02.example.com");
    assert!(err.contains("exa01adm02.example.com.xml"), "the URI: {err}");
    assert!(!err.contains("drift"), "{err}");
    // Even with a drift_source, a host berth cannot read stops the plan.
    replace(
        dir.path(),
        "main.hcl",
        "inventory {",
        "inventory {\n  drift_source = \"libvirt\"",
    );
    let err = fails(dir.path());
    assert_contains(&err, "[host_unreachable]");
    let out = berth(dir.path(), &["validate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_contains(&text, "unreachable: libvirt on host exa01adm02");
    assert!(!text.contains("drift:"), "{text}");
}

#[test]
fn capacity_while_stopped_on_drift_follows_memory_reserved_and_overcommit() {
    let dir = example_copy("drift");
    let hcl = dir.path().join("main.hcl");
    let text = std::fs::read_to_string(&hcl).unwrap();
    std::fs::write(
        &hcl,
        format!(
            "{text}\ndefaults {{\n  memory_reserved = \"64GiB\"\n  vcpu_overcommit = 2.0\n}}\n"
        ),
    )
    .unwrap();
    let out = berth(dir.path(), &["plan", "-lock=false", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["errors"][0]["code"], "drift");
    for h in plan["hosts"].as_array().unwrap() {
        let cpus = h["cpus"].as_u64().unwrap();
        assert_eq!(h["vcpu_limit"].as_u64(), Some(cpus * 2), "{h}");
    }
    // Memory is physical minus the 64 GiB reserve: the same figure a plan without drift shows.
    replace(
        dir.path(),
        "main.hcl",
        "inventory {",
        "inventory {\n  drift_source = \"libvirt\"",
    );
    let out = berth(dir.path(), &["plan", "-lock=false", "--json"]);
    let planned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (stopped, planned) in plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(planned["hosts"].as_array().unwrap())
    {
        assert_eq!(
            stopped["memory_mib"], planned["memory_mib"],
            "{stopped} vs {planned}"
        );
        assert_eq!(stopped["vcpu_limit"], planned["vcpu_limit"]);
    }
}

#[test]
fn a_usage_error_exits_1_not_2() {
    // 2 means "changes" under --detailed-exitcode: a typo must never look like that.
    let out = Command::cargo_bin("berth")
        .unwrap()
        .args(["plan", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let help = Command::cargo_bin("berth")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
}

/// A host whose libvirt accepts the connection and never answers (a socket nobody reads) is
/// reported unreachable by name once `inventory.connect_timeout_s` has passed, by `plan`,
/// `validate`, `apply`, `import` and `refresh`, instead of hanging; nothing is written or
/// changed. The timeout reaches each of them through the inventory's spec (or apply's runner
/// settings), not through process-wide state.
#[test]
fn a_libvirt_that_never_answers_is_unreachable_after_connect_timeout_s() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = workdir(|d| {
        replace(
            d,
            "main.hcl",
            "libvirt_uri = \"test:nodes/{host}.xml\"",
            "libvirt_uri = \"test:nodes/{host}.xml\"\n  connect_timeout_s = 1",
        );
        replace(
            d,
            "main.hcl",
            "host \"exa01adm02\" {",
            &format!(
                "host \"exa01adm02\" {{\n  libvirt_uri = \"qemu+tcp://127.0.0.1:{port}/system\""
            ),
        );
    });
    let nodes = |d: &Path| {
        let mut files: Vec<_> = std::fs::read_dir(d.join("nodes"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        files.sort();
        files
    };
    let before = nodes(dir.path());
    let err = fails(dir.path());
    assert_contains(&err, "[host_unreachable] host exa01adm02.example.com");
    assert_contains(&err, "no answer within 1 s");
    assert!(!err.contains("drift"), "{err}");
    for args in [
        &["validate"][..],
        &["apply", "-auto-approve"],
        &["import"],
        &["refresh", "-auto-approve"],
    ] {
        let out = berth(dir.path(), args);
        let text = format!("{}{}", cli::stderr(&out), cli::stdout(&out));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains("exa01adm02") && text.contains("no answer within 1 s"),
            "{args:?}: {text}"
        );
    }
    assert_eq!(nodes(dir.path()), before, "nothing changed on any host");
    drop(silent);
}

/// A file that is not UTF-8 (an es.xml saved as Latin-1 with a `é` in a comment, an HCL file
/// with a stray byte) is named with the line and column of the first byte that is not.
#[test]
fn a_file_that_is_not_utf8_is_located() {
    let dir = workdir(|d| {
        let mut es = std::fs::read(d.join("es.xml")).unwrap();
        let at = es.iter().position(|b| *b == b'\n').unwrap() + 1;
        es.splice(at..at, b"<!-- r\xe9seau -->\n".iter().copied());
        std::fs::write(d.join("es.xml"), es).unwrap();
    });
    let err = fails(dir.path());
    assert_contains(&err, "es.xml");
    assert_contains(&err, "not UTF-8: line 2, column 7 (byte 0xe9)");

    let dir = workdir(|d| std::fs::write(d.join("extra.hcl"), b"# ok\n  x = \"\xff\"\n").unwrap());
    let err = fails(dir.path());
    assert_contains(&err, "extra.hcl");
    assert_contains(&err, "not UTF-8: line 2, column 8 (byte 0xff)");
}
