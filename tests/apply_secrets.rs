//! Secrets survive moves and never reach files: a guest with a VNC console password keeps it
//! after an offline move on libvirt's test driver, while neither the plan file nor the state
//! file ever holds it; `offline_force` from the recorded definition locks the console with a
//! fresh random password instead of leaving it open.

mod common;

use std::path::Path;

use berth::apply::{ExecOptions, Session};
use berth::config;
use berth::state::secrets::REMOVED;
use common::drain_lab::*;

const SECRET: &str = "s3cret";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Gives every guest of exa01adm01 a VNC console with a password.
fn add_console_passwords(dir: &Path) {
    let node = dir.join("nodes").join(format!("{ADM01}.xml"));
    let text = std::fs::read_to_string(&node).unwrap();
    let with = text.replace(
        "    <devices>\n",
        &format!(
            "    <devices>\n      <graphics type='vnc' port='-1' autoport='yes' passwd='{SECRET}'/>\n"
        ),
    );
    assert_eq!(with.matches(SECRET).count(), 3);
    std::fs::write(node, with).unwrap();
}

fn holds_secret(path: &Path) -> bool {
    std::fs::read_to_string(path).unwrap().contains(SECRET)
}

#[test]
fn console_passwords_survive_an_offline_move_and_reach_no_file() {
    let lab = drain_lab();
    add_console_passwords(lab.path());
    let rt = runtime();
    let cfg = config::load_dir(lab.path()).unwrap();
    let state_file = cfg.state.path.clone();
    let mut session = Session::open(cfg, rt.handle().clone()).unwrap();
    let inv = session.read_inventory().unwrap();
    let plan = session.make_plan(&inv).unwrap();
    assert!(plan.is_ok(), "{:?}", plan.errors);
    let plan_file = lab.path().join("p.berth");
    berth::plan::file::save(&plan, &plan_file, None).unwrap();

    session.begin(plan.clone(), None).unwrap();
    let outcome = rt
        .block_on(session.run(&ExecOptions::default(), &mut |_| {}))
        .unwrap();
    assert!(outcome.report.succeeded(), "{:?}", outcome.report);

    let libvirt = session.libvirt();
    for (guest, target, _) in TARGETS {
        let xml = libvirt
            .hypervisor(target)
            .unwrap()
            .persistent_xml(guest)
            .unwrap()
            .unwrap();
        assert!(
            xml.contains(&format!("passwd='{SECRET}'")),
            "{guest} lost its console password on {target}:\n{xml}"
        );
    }

    assert!(
        !holds_secret(&plan_file),
        "the plan file holds the password"
    );
    assert!(
        !holds_secret(&state_file),
        "the state file holds the password"
    );
    let state = std::fs::read_to_string(&state_file).unwrap();
    assert!(
        state.contains("exa01adm01vm03") && state.contains("last_definition_xml"),
        "the state still records definitions: {state}"
    );
}

#[test]
fn a_recorded_definition_with_a_removed_password_is_locked_not_opened() {
    use berth::state::secrets::{lock_removed, strip_secrets};
    let xml = "<domain type='kvm'><name>vm</name><devices>\
               <graphics type='vnc' port='-1' passwd='s3cret'/></devices></domain>";
    let recorded = strip_secrets(xml).unwrap();
    assert!(!recorded.contains(SECRET) && recorded.contains(REMOVED));
    let (defined, locked) = lock_removed(&recorded).unwrap();
    assert_eq!(locked, 1);
    assert!(!defined.contains(REMOVED) && !defined.contains(SECRET));
    assert!(defined.contains("passwd=\""), "{defined}");
}
