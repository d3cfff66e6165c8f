//! The README's promise, through the real binary on scratch copies of the examples: every
//! input `berth apply` refuses exits 1 and leaves the directory exactly as it was (every file,
//! byte for byte, and no new file or directory: not even an empty `state/`). And `validate`
//! says "Success!" only where apply's static checks pass (issue 10, second pass).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/fs.rs"]
mod fs;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use cli::{berth, example};
use fs::copy_dir;

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Every file (with its bytes) and directory under `dir`.
fn tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.insert(name, None);
                walk(root, &path, out);
            } else if entry.file_type().unwrap().is_file() {
                out.insert(name, Some(std::fs::read(&path).unwrap()));
            } else {
                // A FIFO would block a read; a link is compared by where it points.
                let target = std::fs::read_link(&path).unwrap_or_default();
                out.insert(
                    name,
                    Some(format!("(not a file: {})", target.display()).into_bytes()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A scratch copy of `examples/plans/NAME`.
fn scratch(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example(name), dir.path());
    dir
}

/// Runs `berth ARGS` in `dir`, expects exit 1 with `expected` in its output and the
/// directory unchanged; returns the output.
fn refused(dir: &Path, args: &[&str], expected: &str) -> String {
    let before = tree(dir);
    let out = berth(dir, args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
    assert!(all.contains(expected), "{args:?}: {all}");
    let after = tree(dir);
    let changed: Vec<_> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(changed.is_empty(), "{args:?} changed {changed:?}: {all}");
    all
}

#[test]
fn an_apply_refused_by_preflight_leaves_no_state_directory() {
    // swap: volume steps without `volume_command`, SSH to hosts that do not resolve.
    let lab = scratch("swap");
    assert!(!lab.path().join("state").exists());
    refused(
        lab.path(),
        &["apply", "-auto-approve"],
        "preflight found 3 problems",
    );
    // The state directory given at a deeper, missing path: none of it is left behind.
    std::fs::write(
        lab.path().join("state.hcl"),
        "state {\n  path = \"var/berth/state.json\"\n}\n",
    )
    .unwrap();
    refused(
        lab.path(),
        &["apply", "-auto-approve"],
        "preflight found 3 problems",
    );
}

#[test]
fn an_unknown_target_and_a_plan_with_errors_change_nothing() {
    let lab = scratch("swap");
    refused(
        lab.path(),
        &["apply", "-target", "no-such-guest", "-auto-approve"],
        "-target no-such-guest: no such guest",
    );
    let drift = scratch("drift");
    refused(
        drift.path(),
        &["apply", "-auto-approve"],
        "the plan has errors (listed before it); nothing was applied",
    );
}

#[test]
fn a_held_lock_is_refused_naming_its_holder_and_stays() {
    let lab = scratch("quickstart");
    std::fs::create_dir(lab.path().join("state")).unwrap();
    let holder = r#"{"id":"4f1d2c3b-0000-4000-8000-000000000001","owner":"ops@bastion","pid":4242,
        "host":"bastion","operation":"apply","created":"2026-01-01T00:00:00Z"}"#;
    let lock = lab.path().join("state/berth.state.json.lock");
    std::fs::write(&lock, holder).unwrap();
    // Held for real: the local lock is an OS file lock, and a lock file nobody holds is a
    // dead berth's, which the next one takes over.
    let held = std::fs::File::open(&lock).unwrap();
    held.try_lock().unwrap();
    let all = refused(lab.path(), &["apply", "-auto-approve"], "ops@bastion");
    drop(held);
    assert!(
        all.contains("4f1d2c3b-0000-4000-8000-000000000001"),
        "{all}"
    );
}

#[test]
fn host_names_on_the_command_line_must_be_hosts_of_the_topology() {
    let lab = scratch("quickstart");
    for host in [
        "exa01adm02/system?command=/tmp/evil.sh&no_verify=1#",
        "-oProxyCommand=touch${IFS}/tmp/x",
        "adm02 evil",
    ] {
        let flag = format!("--drain={host}");
        refused(lab.path(), &["plan", &flag], "is not in the topology");
        refused(
            lab.path(),
            &["apply", &flag, "-auto-approve"],
            "is not in the topology",
        );
    }
}

#[test]
fn validate_fails_where_apply_would_refuse_the_plan() {
    // Every host drained: the configuration is well-formed, but the plan has errors, which
    // apply refuses before anything else. validate used to say "Success!" here.
    let lab = scratch("quickstart");
    let hcl = lab.path().join("main.hcl");
    let text_before = std::fs::read_to_string(&hcl).unwrap();
    let drained = text_before
        .replace(
            "host \"exa01adm02\" {\n",
            "host \"exa01adm02\" {\n  drain = true\n",
        )
        .replace(
            "host \"exa01adm03\" {\n",
            "host \"exa01adm03\" {\n  drain = true\n",
        );
    assert_eq!(drained.matches("drain = true").count(), 3, "{drained}");
    std::fs::write(&hcl, drained).unwrap();
    let v = refused(
        lab.path(),
        &["validate"],
        "apply would refuse: the plan has an error (no_target)",
    );
    assert!(!v.contains("Success!"), "{v}");
    refused(
        lab.path(),
        &["apply", "-auto-approve"],
        "the plan has errors (listed before it); nothing was applied",
    );
    // As written, the example validates and applies.
    std::fs::write(&hcl, text_before).unwrap();
    let ok = berth(lab.path(), &["validate"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("Success!"), "{}", text(&ok));
}

#[test]
fn a_bridge_name_berth_would_not_create_is_refused_by_preflight_and_validate() {
    // A guest's definition names a bridge that is no plain interface name: CREATE_BRIDGES
    // would fail mid-apply. Preflight and validate name it first.
    let lab = scratch("drain-host");
    let node = lab.path().join("nodes/exa01adm01.example.com.xml");
    let text = std::fs::read_to_string(&node).unwrap();
    let hostile = text.replacen("bridge='vmbondeth0.110'", "bridge='-x$(id)'", 1);
    assert_ne!(hostile, text);
    std::fs::write(&node, hostile).unwrap();
    let expected = "CREATE_BRIDGES would create a bridge berth refuses on exa01adm03.example.com: \
                    invalid bridge name `-x$(id)`";
    refused(lab.path(), &["apply", "-auto-approve"], expected);
    let v = refused(lab.path(), &["validate"], expected);
    assert!(!v.contains("Success!"), "{v}");
}

#[test]
fn a_tampered_saved_plan_changes_nothing_not_even_a_state_directory() {
    let lab = scratch("quickstart");
    let out = berth(lab.path(), &["plan", "-out", "reviewed.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = lab.path().join("reviewed.plan");
    let json = std::fs::read_to_string(&file).unwrap();
    // One move's target changed by hand (the seal no longer matches).
    let tampered = json.replacen(
        "\"to\": \"exa01adm03.example.com\"",
        "\"to\": \"exa01adm02.example.com\"",
        1,
    );
    assert_ne!(tampered, json, "{json}");
    std::fs::write(&file, tampered).unwrap();
    refused(lab.path(), &["apply", "reviewed.plan"], "reviewed.plan");
    assert!(!lab.path().join("state").exists());
}

#[test]
fn reading_the_state_creates_no_state_directory() {
    let lab = scratch("quickstart");
    let before = tree(lab.path());
    let out = berth(lab.path(), &["state", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No state yet"), "{}", text(&out));
    assert_eq!(tree(lab.path()), before, "state list changed the directory");
    refused(
        lab.path(),
        &["force-unlock", "4f1d2c3b-0000-4000-8000-000000000001"],
        "berth.state.json.lock",
    );
}

#[test]
fn a_plan_file_that_is_not_a_regular_file_is_refused_at_once() {
    // /dev/zero used to be read until memory ran out.
    let lab = scratch("quickstart");
    refused(lab.path(), &["show", "/dev/zero"], "not a regular file");
    refused(
        lab.path(),
        &["apply", "/dev/zero"],
        "cannot read plan file /dev/zero: not a regular file",
    );
}

/// `-out` naming something that is not a file (a FIFO here; `/dev/null` or `/dev/stdout` for
/// root, whose device node berth would replace with a regular file): refused, exit 1, the
/// thing left as it was, no temporary file beside it. A symbolic link there is replaced as a
/// link (the file it points to is never written).
#[test]
fn an_out_path_that_is_not_a_regular_file_is_refused_and_left_alone() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("quickstart");
    let d = dir.path();
    let fifo = d.join("p.berth");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    refused(d, &["plan", "-out=p.berth"], "not a regular file");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    std::fs::remove_file(&fifo).unwrap();
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, &fifo).unwrap();
    let out = berth(d, &["plan", "-out=p.berth"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_file()
    );
}
