//! Diagnostics through the real binary: libvirt's and libxml2's own messages go through the
//! log (never raw on stderr), `-v`/`RUST_LOG`/`--log-file` choose where and how much, libvirt
//! messages are one line, and a plan's errors come on stderr before the plan.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

#[path = "common/fs.rs"]
mod fs_util;

/// The drain-host example in a temp dir, with the node file of its first host removed (libvirt
/// then cannot read that host: a `host_unreachable` error in the plan).
fn missing_node_file() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plans/drain-host");
    fs_util::copy_dir(&example, dir.path());
    std::fs::remove_file(dir.path().join("nodes/exa01adm01.example.com.xml")).unwrap();
    dir
}

fn berth(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = assert_cmd::Command::cargo_bin("berth").unwrap();
    cmd.arg("-C").arg(dir).args(args).env("NO_COLOR", "1");
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn libxml2_and_libvirt_print_nothing_raw_and_errors_come_first_on_stderr() {
    let dir = missing_node_file();
    let out = berth(dir.path(), &["plan", "-lock=false"], &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // libxml2's "I/O warning : failed to load external entity" is not printed by itself.
    assert!(!stderr.contains("I/O warning"), "{stderr}");
    assert!(!stdout.contains("I/O warning"), "{stdout}");
    // The plan's error is the first thing on stderr, and not repeated at the end of stdout.
    assert!(
        stderr.starts_with("Error (apply refuses a plan with errors):\n  ✗ [host_unreachable]"),
        "{stderr}"
    );
    assert!(!stdout.contains("✗ [host_unreachable]"), "{stdout}");
    assert!(
        stdout.contains("1 error: apply refuses this plan."),
        "{stdout}"
    );
}

#[test]
fn vv_shows_libvirt_and_libxml2_messages_through_the_log() {
    let dir = missing_node_file();
    let out = berth(dir.path(), &["-vv", "plan", "-lock=false"], &[]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("DEBUG libxml2: I/O warning : failed to load external entity")
            && stderr.contains("exa01adm01.example.com.xml"),
        "{stderr}"
    );
    assert!(
        stderr.contains("DEBUG libvirt: XML error: failed to parse xml document"),
        "{stderr}"
    );
    // No line of stderr is libxml2's raw output.
    assert!(
        !stderr.lines().any(|l| l.starts_with("I/O warning")),
        "{stderr}"
    );
}

#[test]
fn rust_log_selects_targets_without_v() {
    let dir = missing_node_file();
    let out = berth(
        dir.path(),
        &["plan", "-lock=false"],
        &[("RUST_LOG", "libvirt=debug")],
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("DEBUG libvirt:"), "{stderr}");
    assert!(!stderr.contains("libxml2"), "{stderr}");
}

#[test]
fn log_file_gets_the_log_with_mode_0600_and_stderr_keeps_warnings_only() {
    let dir = missing_node_file();
    let log = dir.path().join("berth.log");
    let out = berth(
        dir.path(),
        &[
            "-vv",
            "--log-file",
            log.to_str().unwrap(),
            "plan",
            "-lock=false",
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("DEBUG"), "{stderr}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("DEBUG libvirt: XML error: failed to parse xml document"),
        "{logged}"
    );
    // Timestamps in the file (RFC 3339, as tracing writes them).
    assert!(
        logged
            .lines()
            .all(|l| l.len() > 20 && l.as_bytes()[4] == b'-'),
        "{logged}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // An unwritable log file is an error that names it, and nothing runs.
    let out = berth(
        dir.path(),
        &[
            "--log-file",
            "/nonexistent/dir/berth.log",
            "plan",
            "-lock=false",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot open the log file /nonexistent/dir/berth.log"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_libvirt_xml_error_is_one_line_without_escaped_newlines() {
    let dir = missing_node_file();
    std::fs::write(
        dir.path().join("nodes/exa01adm01.example.com.xml"),
        "<node>\n<cpu>\n</node>\n",
    )
    .unwrap();
    let out = berth(dir.path(), &["plan", "-lock=false"], &[]);
    // The unreadable host is a plan error: on stderr, in one line.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Opening and ending tag mismatch: cpu line 2 and node (near `</node>`)"),
        "{stderr}"
    );
    assert!(!stderr.contains("\\u{a}"), "{stderr}");
    assert!(!text(&out.stdout).contains("\\u{a}"));
}
