//! A copy of examples/plans/drain-host that libvirt's test driver can apply end to end.
//!
//! The example's guests have EDV volumes (DETACH/ATTACH_VOLUMES, a host-side command over SSH)
//! and VLAN bridges missing on their targets (CREATE_BRIDGES, over SSH). Neither exists on the
//! test driver, so the copy drops the guests' EDV volume references and the two VLAN
//! interfaces. What is left is exactly what the test driver can do for real: STOP_GUEST,
//! DETACH_INTERFACES (the SR-IOV VFs leave the definition), MIGRATE_GUEST (define on the
//! target, undefine on the source), ATTACH_INTERFACES (VFs of the target's `sriov_vfs` pool)
//! and STARTUP_GUEST.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const ADM01: &str = "exa01adm01.example.com";
pub const ADM02: &str = "exa01adm02.example.com";
pub const ADM03: &str = "exa01adm03.example.com";
pub const VM01: &str = "exa01adm01vm01.example.com";
pub const VM02: &str = "exa01adm01vm02.example.com";
pub const VM03: &str = "exa01adm01vm03.example.com";
pub const HOSTS: [&str; 3] = [ADM01, ADM02, ADM03];
/// Where the drain sends each guest of exa01adm01, and the state it ends in.
pub const TARGETS: [(&str, &str, &str); 3] = [
    (VM01, ADM03, "running"),
    (VM02, ADM02, "running"),
    (VM03, ADM02, "shut off"),
];

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/plans/drain-host")
}

/// Removes every `open … close` element for which `drop` holds (text-level: the examples are
/// hand-written and regular).
pub fn strip_elements(text: &str, open: &str, close: &str, drop: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let Some(len) = rest[start..].find(close) else {
            break;
        };
        let end = start + len + close.len();
        let element = &rest[start..end];
        // Keep the indentation before the element only when the element stays.
        let line_start = rest[..start].rfind('\n').map_or(0, |i| i + 1);
        if drop(element) {
            out.push_str(&rest[..line_start]);
            rest = rest[end..].strip_prefix('\n').unwrap_or(&rest[end..]);
        } else {
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// The stripped copy, in a new temporary directory.
pub fn drain_lab() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = example();
    std::fs::copy(src.join("main.hcl"), dir.path().join("main.hcl")).unwrap();
    let es = std::fs::read_to_string(src.join("es.xml")).unwrap();
    std::fs::write(
        dir.path().join("es.xml"),
        strip_elements(&es, "<edvVolumes>", "</edvVolumes>", |_| true),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("nodes")).unwrap();
    for host in HOSTS {
        let name = format!("{host}.xml");
        let node = std::fs::read_to_string(src.join("nodes").join(&name)).unwrap();
        let node = strip_elements(&node, "<interface", "</interface>", |e| {
            e.contains("bridge='vmbondeth0.1")
        });
        std::fs::write(dir.path().join("nodes").join(name), node).unwrap();
    }
    dir
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The es.xml host of `guest` (its parent machine's name) in `dir/es.xml`.
pub fn es_host(dir: &Path, guest: &str) -> String {
    let text = std::fs::read_to_string(dir.join("es.xml")).unwrap();
    let es = berth::inventory::esxml::parse("es.xml", &text).unwrap();
    let g = es.guests.iter().find(|g| g.name == guest).unwrap();
    es.hosts
        .iter()
        .find(|h| h.id == g.host_id)
        .unwrap()
        .name
        .clone()
}
