//! Which steps a move expands to, and why the others are left out.

use std::collections::BTreeSet;

use super::{ids, limits, mv, step};
use crate::config::MigrationMode;
use crate::diff::fixtures::*;
use crate::inventory::{GuestState, Interface, InterfaceKind, Topology};
use crate::schedule::{ScheduleError, StepKind, schedule};

/// vm01 running on src with a bridge dst lacks, one SR-IOV interface and one Exascale volume.
fn busy_guest() -> Topology {
    let mut topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8)],
    );
    let g = topo.guests.get_mut("vm01").expect("guest");
    g.interfaces.push(Interface {
        kind: InterfaceKind::Bridge,
        source: "vmbondeth0".into(),
        mac: None,
    });
    g.interfaces.push(Interface {
        kind: InterfaceKind::Hostdev,
        source: "0000:3b:02.1".into(),
        mac: Some("00:16:3e:00:00:01".into()),
    });
    g.volumes.push("/dev/exc/vm01_u01".into());
    topo
}

/// A shut-off vm01 without interfaces or volumes; dst knows the bridge it needs.
fn idle_guest() -> Topology {
    let mut topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8)],
    );
    let g = topo.guests.get_mut("vm01").expect("guest");
    g.state = GuestState::ShutOff;
    g.interfaces.push(Interface {
        kind: InterfaceKind::Bridge,
        source: "vmbondeth0".into(),
        mac: None,
    });
    topo.hosts.get_mut("dst").expect("host").bridges =
        Some(BTreeSet::from(["vmbondeth0".to_string()]));
    topo
}

fn skipped(s: &crate::schedule::Schedule) -> Vec<(StepKind, &str)> {
    s.skipped
        .iter()
        .map(|k| (k.kind, k.reason.as_str()))
        .collect()
}

#[test]
fn offline_has_all_eight_steps_in_a_chain() {
    let s = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Offline)],
        &busy_guest(),
        &limits(),
    )
    .expect("schedules");
    let kinds: Vec<StepKind> = s.steps.iter().map(|st| st.kind).collect();
    assert_eq!(kinds, StepKind::ALL.to_vec());
    assert!(s.skipped.is_empty(), "{:#?}", s.skipped);
    for pair in s.steps.windows(2) {
        assert_eq!(pair[1].depends_on, vec![pair[0].id.clone()]);
    }
    assert!(s.steps[0].depends_on.is_empty());
    assert_eq!(step(&s, "vm01:CREATE_BRIDGES").items, vec!["vmbondeth0"]);
    assert_eq!(
        step(&s, "vm01:CREATE_BRIDGES").detail,
        "create bridges vmbondeth0 on dst"
    );
    assert_eq!(
        step(&s, "vm01:DETACH_INTERFACES").items,
        vec!["0000:3b:02.1 (00:16:3e:00:00:01)"]
    );
    assert_eq!(
        step(&s, "vm01:DETACH_VOLUMES").detail,
        "detach Exascale volumes of vm01 on src: /dev/exc/vm01_u01"
    );
    assert_eq!(
        step(&s, "vm01:ATTACH_VOLUMES").items,
        vec!["/dev/exc/vm01_u01"]
    );
    assert_eq!(step(&s, "vm01:STOP_GUEST").detail, "shut down vm01 on src");
    assert_eq!(s.waves.len(), 8);
}

#[test]
fn a_shut_off_guest_with_nothing_attached_only_migrates() {
    let s = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Offline)],
        &idle_guest(),
        &limits(),
    )
    .expect("schedules");
    assert_eq!(ids(&s), vec!["vm01:MIGRATE_GUEST"]);
    assert_eq!(
        skipped(&s),
        vec![
            (
                StepKind::CreateBridges,
                "dst already has every bridge vm01 needs (vmbondeth0)"
            ),
            (StepKind::StopGuest, "vm01 is shut off: nothing to stop"),
            (
                StepKind::DetachInterfaces,
                "vm01 has no SR-IOV (hostdev) interfaces"
            ),
            (StepKind::DetachVolumes, "vm01 has no Exascale volumes"),
            (StepKind::AttachVolumes, "vm01 has no Exascale volumes"),
            (
                StepKind::AttachInterfaces,
                "vm01 has no SR-IOV (hostdev) interfaces"
            ),
            (
                StepKind::StartupGuest,
                "vm01 is shut off and stays shut off on dst"
            ),
        ]
    );
}

#[test]
fn without_ssh_facts_the_bridges_in_use_count() {
    let mut topo = idle_guest();
    let dst = topo.hosts.get_mut("dst").expect("host");
    dst.bridges = None;
    let s = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Offline)],
        &topo,
        &limits(),
    )
    .expect("schedules");
    assert!(
        ids(&s).contains(&"vm01:CREATE_BRIDGES"),
        "no bridge is known on dst"
    );

    topo.hosts
        .get_mut("dst")
        .expect("host")
        .bridges_in_use
        .insert("vmbondeth0".into());
    let s = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Offline)],
        &topo,
        &limits(),
    )
    .expect("schedules");
    assert!(
        !ids(&s).contains(&"vm01:CREATE_BRIDGES"),
        "a domain on dst uses the bridge"
    );
}

#[test]
fn live_keeps_the_guest_running_and_moves_volumes_around_the_migration() {
    let mut topo = busy_guest();
    topo.guests
        .get_mut("vm01")
        .expect("guest")
        .interfaces
        .retain(|i| i.kind != InterfaceKind::Hostdev);
    // The step says who drives the migration, as the move does.
    for (transport, said) in [
        (crate::config::LiveTransport::PeerToPeer, ", peer-to-peer"),
        (crate::config::LiveTransport::Client, ", client-managed"),
    ] {
        let mut m = mv("vm01", "src", "dst", MigrationMode::Live);
        m.transport = Some(transport);
        assert_eq!(m.mode_label(), format!("live ({transport})"));
        let s = schedule(&[m], &topo, &limits()).expect("schedules");
        assert_eq!(
            step(&s, "vm01:MIGRATE_GUEST").detail,
            format!("live-migrate vm01 from src to dst{said} (it keeps running)")
        );
    }
    let s = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Live)],
        &topo,
        &limits(),
    )
    .expect("schedules");
    assert_eq!(
        ids(&s),
        vec![
            "vm01:CREATE_BRIDGES",
            "vm01:ATTACH_VOLUMES",
            "vm01:MIGRATE_GUEST",
            "vm01:DETACH_VOLUMES"
        ]
    );
    assert_eq!(
        step(&s, "vm01:MIGRATE_GUEST").detail,
        "live-migrate vm01 from src to dst (it keeps running)"
    );
    assert!(
        s.skipped.is_empty(),
        "live has no stop or start to skip: {:#?}",
        s.skipped
    );
}

#[test]
fn offline_force_leaves_a_dead_source_alone() {
    let mut topo = busy_guest();
    topo.hosts.get_mut("src").expect("host").reachable = false;
    topo.guests.get_mut("vm01").expect("guest").state = GuestState::Unknown;
    let s = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::OfflineForce)],
        &topo,
        &limits(),
    )
    .expect("schedules");
    assert_eq!(
        ids(&s),
        vec![
            "vm01:CREATE_BRIDGES",
            "vm01:ATTACH_VOLUMES",
            "vm01:MIGRATE_GUEST",
            "vm01:ATTACH_INTERFACES",
            "vm01:STARTUP_GUEST"
        ]
    );
    let gone = "src does not answer: offline_force leaves the source alone";
    assert_eq!(
        skipped(&s),
        vec![
            (StepKind::StopGuest, gone),
            (StepKind::DetachInterfaces, gone),
            (StepKind::DetachVolumes, gone)
        ]
    );
}

#[test]
fn offline_force_with_a_live_source_is_offline() {
    let offline = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Offline)],
        &busy_guest(),
        &limits(),
    )
    .expect("schedules");
    let forced = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::OfflineForce)],
        &busy_guest(),
        &limits(),
    )
    .expect("schedules");
    assert_eq!(ids(&offline), ids(&forced));
}

#[test]
fn unknown_names_are_errors() {
    let topo = busy_guest();
    let err = schedule(
        &[mv("vm09", "src", "dst", MigrationMode::Offline)],
        &topo,
        &limits(),
    )
    .expect_err("unknown guest");
    assert_eq!(
        err,
        ScheduleError::UnknownGuest {
            guest: "vm09".into()
        }
    );
    let err = schedule(
        &[mv("vm01", "src", "nowhere", MigrationMode::Offline)],
        &topo,
        &limits(),
    )
    .expect_err("unknown host");
    assert_eq!(
        err,
        ScheduleError::UnknownHost {
            guest: "vm01".into(),
            host: "nowhere".into()
        }
    );
}

#[test]
fn bridges_are_created_while_the_guest_runs_and_are_not_part_of_its_downtime() {
    let s = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Offline)],
        &busy_guest(),
        &limits(),
    )
    .expect("schedules");
    assert_eq!(
        step(&s, "vm01:CREATE_BRIDGES").depends_on,
        Vec::<String>::new()
    );
    assert_eq!(
        step(&s, "vm01:STOP_GUEST").depends_on,
        vec!["vm01:CREATE_BRIDGES".to_string()]
    );
    let at = |id: &str| {
        let t = s.timing.steps.iter().find(|t| t.step == id).expect(id);
        (t.start_s, t.start_s + t.duration_s)
    };
    let (bridges_start, bridges_end) = at("vm01:CREATE_BRIDGES");
    let (stop_start, _) = at("vm01:STOP_GUEST");
    let (_, startup_end) = at("vm01:STARTUP_GUEST");
    assert!(bridges_end <= stop_start, "bridges before the stop");
    assert!(bridges_end > bridges_start, "the bridges take time");
    let [down] = s.timing.downtime.as_slice() else {
        panic!("one downtime: {:?}", s.timing.downtime)
    };
    assert_eq!(down.guest, "vm01");
    assert_eq!(
        (down.from_step.as_str(), down.to_step.as_str()),
        ("vm01:STOP_GUEST", "vm01:STARTUP_GUEST")
    );
    assert!(
        (down.downtime_s - (startup_end - stop_start)).abs() < 0.002,
        "{down:?}"
    );
}

#[test]
fn live_moves_and_shut_off_guests_have_no_predicted_downtime() {
    let live = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Live)],
        &busy_guest(),
        &limits(),
    )
    .expect("schedules");
    assert!(
        live.timing.downtime.is_empty(),
        "{:?}",
        live.timing.downtime
    );
    let idle = schedule(
        &[mv("vm01", "src", "dst", MigrationMode::Offline)],
        &idle_guest(),
        &limits(),
    )
    .expect("schedules");
    assert!(
        idle.timing.downtime.is_empty(),
        "{:?}",
        idle.timing.downtime
    );
}
