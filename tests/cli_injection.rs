//! Names and configuration are data, never syntax: the attacks of issue 10 through the real
//! binary. Each is refused at load with a located error, exit 1, and nothing runs (a script
//! the attack would run creates a marker file; the marker must not exist afterwards).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/fs.rs"]
mod fs_util;
use cli::{assert_contains, run as berth};
use fs_util::{copy_dir, example_copy, replace, repo};

/// A scratch copy of the drain-host example, and `evil.sh` beside it, which creates `pwned`.
fn workdir() -> tempfile::TempDir {
    let dir = example_copy("drain-host");
    let script = dir.path().join("evil.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch {}\n", dir.path().join("pwned").display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs `args`, asserts exit 1 and that `evil.sh` never ran; returns stderr + stdout.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = berth(dir, args);
    let text = format!("{}{}", cli::stderr(&out), cli::stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(!dir.join("pwned").exists(), "the attack ran: {text}");
    text
}

#[test]
fn an_es_xml_host_name_cannot_inject_a_libvirt_command() {
    let dir = workdir();
    let d = dir.path();
    replace(
        d,
        "main.hcl",
        "libvirt_uri = \"test:nodes/{host}.xml\"",
        "libvirt_uri = \"qemu+ssh://root@{host}/system\"",
    );
    replace(
        d,
        "es.xml",
        "<hostName>exa01adm02.example.com</hostName>",
        &format!(
            "<hostName>exa01adm02.example.com/system?command={}&amp;no_verify=1#</hostName>",
            d.join("evil.sh").display()
        ),
    );
    for args in [&["plan", "-out=p.berth"][..], &["validate"], &["apply"]] {
        let text = refused(d, args);
        assert!(text.contains("es.xml:29:"), "{args:?}: {text}");
        assert!(
            text.contains("<machine id=\"exa01adm02.example.com_id\">")
                && text.contains("is not a valid host name"),
            "{args:?}: {text}"
        );
        assert!(!d.join("p.berth").exists());
    }
}

#[test]
fn an_es_xml_guest_name_must_be_a_domain_name() {
    let dir = workdir();
    let d = dir.path();
    replace(
        d,
        "es.xml",
        "<hostName>exa01adm01vm02.example.com</hostName>",
        "<hostName>exa01adm01vm02;touch pwned</hostName>",
    );
    let text = refused(d, &["plan"]);
    assert_contains(&text, "es.xml:95:");
    assert_contains(&text, "is not a valid guest name");
}

#[test]
fn an_hcl_proxy_command_is_refused_before_anything_connects() {
    let dir = workdir();
    let d = dir.path();
    let evil = d.join("evil.sh").display().to_string();
    replace(
        d,
        "main.hcl",
        "libvirt_uri = \"test:nodes/{host}.xml\"",
        &format!(
            "libvirt_uri = \"test:nodes/{{host}}.xml\"\n  ssh {{\n    gather_facts = true\n    options = [\"ProxyCommand={evil}\"]\n  }}"
        ),
    );
    let text = refused(d, &["plan"]);
    assert_contains(&text, "main.hcl:13:");
    assert_contains(&text, "allow_command_options");
}

/// `peer_uri` (inventory and host) and a host's `migration_uri` follow the rule of
/// `libvirt_uri`: no parameter berth reserves (its SSH settings, `command=`, `netcat=`), each
/// refused at its own line, exit 1, before anything connects.
#[test]
fn peer_and_migration_uris_may_not_carry_reserved_parameters() {
    let evil_cases = [
        (
            "libvirt_uri = \"test:nodes/{host}.xml\"",
            "libvirt_uri = \"test:nodes/{host}.xml\"\n  peer_uri = \"qemu+ssh://{host}/system?command=EVIL\"",
            "main.hcl:11:",
            "`peer_uri` sets `command=`",
        ),
        (
            "  drain = true\n",
            "  drain = true\n  peer_uri = \"qemu+ssh://{host}/system?netcat=EVIL&no_verify=1\"\n",
            "main.hcl:20:",
            "`peer_uri` sets `netcat=`, `no_verify=`",
        ),
        (
            "  drain = true\n",
            "  drain = true\n  migration_uri = \"tcp://{short}-mig?KeyFile=/root/.ssh/id\"\n",
            "main.hcl:20:",
            "`migration_uri` sets `keyfile=`",
        ),
    ];
    for (from, to, place, message) in evil_cases {
        let dir = workdir();
        let d = dir.path();
        let evil = d.join("evil.sh").display().to_string();
        replace(d, "main.hcl", from, &to.replace("EVIL", &evil));
        for args in [&["plan", "-out=p.berth"][..], &["validate"]] {
            let text = refused(d, args);
            assert!(text.contains(place), "{args:?}: {text}");
            assert!(text.contains(message), "{args:?}: {text}");
            assert!(!d.join("p.berth").exists());
        }
    }
}

/// Every entry under `dir` (relative path, kind, mode) with the sha256 of each file.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let what = if meta.is_dir() {
                walk(root, &path, out);
                "dir".to_string()
            } else {
                hex::encode(Sha256::digest(std::fs::read(&path).unwrap()))
            };
            out.push((rel, format!("{what} {:o}", meta.mode())));
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `plan` writes nothing but its `-out` file: not the state directory, not a lock, for good
/// input and for input it refuses (es.xml refused after the configuration was read).
#[test]
fn plan_leaves_the_configuration_directory_byte_for_byte_unchanged() {
    // Good input, with and without an existing state directory (the lock comes and goes).
    for with_state_dir in [false, true] {
        let dir = workdir();
        let d = dir.path();
        if with_state_dir {
            std::fs::create_dir(d.join("state")).unwrap();
        }
        let before = snapshot(d);
        let out = berth(d, &["plan"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(snapshot(d), before, "state dir existed: {with_state_dir}");

        let out = berth(d, &["plan", "-out=p.berth"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let mut after = snapshot(d);
        after.retain(|(path, _)| path != "p.berth");
        assert_eq!(after, before, "only p.berth is new");
        assert!(d.join("p.berth").is_file());
    }

    // Refused input: a broken es.xml (read after the configuration), a plan with errors.
    let dir = workdir();
    let d = dir.path();
    replace(
        d,
        "es.xml",
        "<hostName>exa01adm02.example.com</hostName>",
        "<hostName>a b</hostName>",
    );
    let before = snapshot(d);
    refused(d, &["plan", "-out=p.berth"]);
    assert_eq!(snapshot(d), before);

    let dir = workdir();
    let d = dir.path();
    replace(
        d,
        "main.hcl",
        "drain = true",
        "drain = true\n  return_home = true",
    );
    let before = snapshot(d);
    let out = berth(d, &["plan", "-out=p.berth"]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(snapshot(d), before);
}

/// A relative `state.path` that leaves the configuration directory is refused at its place;
/// nothing is created there. An absolute one is an explicit choice and accepted.
#[test]
fn a_state_path_outside_the_configuration_directory_must_be_absolute() {
    let outer = tempfile::tempdir().unwrap();
    let d = outer.path().join("config");
    std::fs::create_dir(&d).unwrap();
    copy_dir(&repo().join("examples/plans/drain-host"), &d);
    let main = std::fs::read_to_string(d.join("main.hcl")).unwrap();
    std::fs::write(
        d.join("main.hcl"),
        format!("{main}\nstate {{\n  path = \"../elsewhere/berth.state.json\"\n}}\n"),
    )
    .unwrap();
    let text = refused(&d, &["plan"]);
    assert_contains(&text, "main.hcl:");
    assert_contains(&text, "leaves the configuration directory");
    assert!(!outer.path().join("elsewhere").exists());

    let absolute = outer.path().join("elsewhere/berth.state.json");
    std::fs::write(
        d.join("main.hcl"),
        format!(
            "{main}\nstate {{\n  path = \"{}\"\n}}\n",
            absolute.display()
        ),
    )
    .unwrap();
    let out = berth(&d, &["plan"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !outer.path().join("elsewhere").exists(),
        "plan created the state directory"
    );
}

/// An es.xml device path that is not a plain absolute path is refused where it is written.
#[test]
fn an_es_xml_device_path_is_checked_at_load() {
    let dir = workdir();
    let d = dir.path();
    replace(
        d,
        "es.xml",
        "<edvDevicePath>/dev/exc/exa01adm01vm01_sys</edvDevicePath>",
        "<edvDevicePath>/dev/exc/x;touch pwned</edvDevicePath>",
    );
    let text = refused(d, &["plan"]);
    assert_contains(&text, "es.xml:649:");
    assert_contains(&text, "<edvDevicePath>");
    assert_contains(&text, "an absolute path");
}

/// Bytes a terminal acts on: ESC (colours, cursor moves, OSC titles, OSC 52 clipboard
/// writes), BEL, a bare CR (overwrites the line) and the 8-bit CSI.
fn terminal_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| matches!(c, '\u{1b}' | '\u{7}' | '\r' | '\u{9b}'))
        .collect()
}

/// A name or file name that carries terminal escape sequences is refused with its place, and
/// the error shows the sequences as visible `\u{1b}` escapes instead of sending them to the
/// operator's terminal: through an HCL label (`\u001b` escapes in a string), an id in es.xml
/// (`&#x1b;` character references) and a `*.hcl` file name and content (raw bytes).
#[test]
fn terminal_escape_sequences_in_names_and_files_are_shown_not_sent() {
    let csi = "\u{9b}2J";
    for attack in ["hcl label", "es.xml id", "hcl file"] {
        let dir = workdir();
        let d = dir.path();
        match attack {
            "hcl label" => std::fs::write(
                d.join("evil.hcl"),
                "guest \"vm\\u001b]0;pwned\\u0007\\u001b[2J\\r\\u009b2J\" {\n  host = \"exa01adm02\"\n}\n",
            )
            .unwrap(),
            "es.xml id" => replace(
                d,
                "es.xml",
                "<machine id=\"exa01adm01vm01.example.com_id\" />",
                "<machine id=\"exa01adm01vm01&#x1b;]0;pwned&#x7;&#x1b;[2J&#xd;&#x9b;2J\" />",
            ),
            _ => std::fs::write(
                d.join("evil\u{1b}[2J\u{9b}2J.hcl"),
                format!("x\u{1b}]0;pwned\u{7} = 1\r{csi}\n"),
            )
            .unwrap(),
        }
        for args in [&["plan"][..], &["validate"]] {
            let text = refused(d, args);
            assert_eq!(terminal_controls(&text), [], "{attack} {args:?}: {text:?}");
            assert_contains(&text, "\\u{1b}");
        }
    }
}

/// A libvirt domain berth did not create may be named anything but `/`: a name with a line
/// break must not forge a line of berth's output (`Success! …` in a CI log). `validate` and
/// `plan` show it on one line, the break as `\u{a}`.
#[test]
fn a_libvirt_domain_name_cannot_forge_a_line_of_output() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/plans/quickstart"), dir.path());
    let d = dir.path();
    replace(
        d,
        "nodes/exa01adm02.example.com.xml",
        "  <domain type='kvm'>",
        "  <domain type='kvm'>\n    <name>extra\nSuccess! The configuration is valid.</name>\n    \
         <uuid>b3a70001-0000-4000-8000-0000000000ff</uuid>\n    <memory unit='KiB'>1048576</memory>\n    \
         <vcpu placement='static'>1</vcpu>\n    <os><type arch='x86_64' machine='pc-q35-3.1'>hvm</type></os>\n  \
         </domain>\n  <domain type='kvm'>",
    );
    for args in [&["validate"][..], &["plan", "-lock=false"]] {
        let text = refused(d, args);
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("Success!")),
            "{args:?}: {text}"
        );
        assert_contains(&text, "extra\\u{a}Success! The configuration is valid.");
    }
}
