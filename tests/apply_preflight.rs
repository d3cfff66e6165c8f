//! Preflight's connection checks (`LibvirtRunner::preflight`) against libvirt's test driver and
//! a private sshd: every problem is named with its host and the steps that need it, and what
//! is there passes.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use std::collections::BTreeMap;

use berth::apply::preflight::Needs;
use berth::apply::{HostAccess, LibvirtRunner, RunnerSettings};
use berth::config::BackWhen;
use sshd::Sshd;

fn needs(entries: &[(&str, &str, &str)]) -> Needs {
    let mut needs = Needs::default();
    for (kind, host, step) in entries {
        let map = match *kind {
            "libvirt" => &mut needs.libvirt,
            "bridges" => &mut needs.bridges,
            _ => &mut needs.volumes,
        };
        map.entry(host.to_string())
            .or_default()
            .push(step.to_string());
    }
    needs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_missing_connection_and_program_is_reported_at_once() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let ssh = Some(sshd.target(sshd.known_hosts()));
    let hosts = BTreeMap::from([
        // Reachable over libvirt and SSH (the private sshd runs on this machine, which has `ip`).
        (
            "adm02".to_string(),
            HostAccess {
                uri: "test:///default".into(),
                migration_uri: None,
                peer_uri: None,
                ssh: ssh.clone(),
            },
        ),
        // libvirt's test driver cannot open a node file that is not there.
        (
            "adm01".to_string(),
            HostAccess {
                uri: format!("test://{}", dir.path().join("absent.xml").display()),
                migration_uri: None,
                peer_uri: None,
                ssh: None,
            },
        ),
    ]);
    let settings = RunnerSettings {
        volume_command: Some(
            ["/opt/site/bin/edv-volume", "{action}", "{volume}"]
                .map(String::from)
                .to_vec(),
        ),
        // Present on every host: passes.
        volume_check_command: Some(["sh", "-c", "exit 1"].map(String::from).to_vec()),
        ..RunnerSettings::default()
    };
    let runner = LibvirtRunner::new(hosts, settings, tokio::runtime::Handle::current());
    let needs = needs(&[
        ("libvirt", "adm01", "vm01:STOP_GUEST"),
        ("libvirt", "adm02", "vm01:STARTUP_GUEST"),
        ("bridges", "adm02", "vm01:CREATE_BRIDGES"),
        ("volumes", "adm02", "vm01:ATTACH_VOLUMES"),
        ("volumes", "adm01", "vm01:DETACH_VOLUMES"),
    ]);
    let problems = tokio::task::spawn_blocking(move || runner.preflight(&needs))
        .await
        .unwrap();
    assert_eq!(problems.len(), 3, "{problems:#?}\n{}", sshd.log());
    assert!(
        problems[0].starts_with("no libvirt connection to adm01, which vm01:STOP_GUEST need"),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with("no SSH to adm01, which vm01:DETACH_VOLUMES need"),
        "{problems:#?}"
    );
    assert_eq!(
        problems[2],
        "`/opt/site/bin/edv-volume` (`inventory.volume_command`) is not found on adm02, which vm01:ATTACH_VOLUMES need"
    );
}

/// Preflight's problems for a rolling maintenance's HOST_COMMAND on host `adm01`, reached
/// over `sshd`, with `back_when`.
async fn host_command_preflight(sshd: &Sshd, back_when: BackWhen) -> Vec<String> {
    let hosts = BTreeMap::from([(
        "adm01".to_string(),
        HostAccess {
            uri: "test:///default".into(),
            migration_uri: None,
            peer_uri: None,
            ssh: Some(sshd.target(sshd.known_hosts())),
        },
    )]);
    let mut needs = Needs::default();
    needs.host_commands.insert(
        "adm01".into(),
        ("true".into(), vec!["adm01:HOST_COMMAND".into()]),
    );
    let runner = LibvirtRunner::new(
        hosts,
        RunnerSettings {
            back_when,
            ..RunnerSettings::default()
        },
        tokio::runtime::Handle::current(),
    );
    tokio::task::spawn_blocking(move || runner.preflight(&needs))
        .await
        .unwrap()
}

/// With `back_when = "rebooted"`, a host whose boot id cannot be read is a preflight problem
/// (WAIT_HOST could never see it rebooted), named with its steps and the way out; a readable
/// one, or `back_when = "answers"`, passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_boot_id_is_a_problem_only_when_a_reboot_is_awaited() {
    let sshd = Sshd::start_with_boot_id();
    let check = |back_when| host_command_preflight(&sshd, back_when);
    assert_eq!(check(BackWhen::Rebooted).await, Vec::<String>::new());
    // An empty boot id is no boot id.
    std::fs::write(sshd.boot_id_file(), "").unwrap();
    let problems = check(BackWhen::Rebooted).await;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "cannot read the boot id of adm01 (/proc/sys/kernel/random/boot_id), which adm01:HOST_COMMAND need"
        ) && problems[0].contains("set `back_when = \"answers\"`"),
        "{problems:#?}"
    );
    assert_eq!(check(BackWhen::Answers).await, Vec::<String>::new());
}

/// A host command starts through a guard that makes a start marker in the host's `/dev/shm`
/// first: where that is read-only, preflight says so (in either `back_when` mode) before
/// anything moves, instead of the guard refusing the command once the host's guests are off.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_without_a_writable_dev_shm_is_a_problem_before_anything_moves() {
    let sshd = Sshd::start_with_boot_id();
    let check = |back_when| host_command_preflight(&sshd, back_when);
    assert_eq!(check(BackWhen::Rebooted).await, Vec::<String>::new());
    sshd.make_shm_read_only();
    for back_when in [BackWhen::Rebooted, BackWhen::Answers] {
        let problems = check(back_when).await;
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].starts_with(
                "cannot start the host command on adm01, which adm01:HOST_COMMAND need: /dev/shm is not a directory it may write"
            ),
            "{problems:#?}"
        );
    }
}
