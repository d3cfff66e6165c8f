//! Every prerequisite code, each from a topology that fails exactly that rule.

use crate::config::MigrationMode;
use crate::diff::fixtures::*;
use crate::diff::{DesiredGuest, MoveProblem, Origin, desired, moves};
use crate::inventory::{Disk, GuestState, HostDev, Interface, InterfaceKind, Topology};

/// vm01 (64 GiB, 8 vCPUs) on src, moving to dst with mode `mode`; `edit` breaks one rule.
fn problems_of(mode: MigrationMode, edit: impl FnOnce(&mut Topology)) -> Vec<MoveProblem> {
    let mut topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8), guest("vm02", "dst", 64, 8)],
    );
    edit(&mut topo);
    let b = ConfigBuilder::new().guest("vm01", Some("dst"), Some(mode));
    let d = desired(&b.config, &topo).expect("valid config");
    let (mvs, problems) = moves(&b.config, &topo, &d);
    assert_eq!(mvs.len(), 1, "{mvs:#?}");
    assert_eq!(mvs[0].mode, mode);
    problems
}

fn codes(problems: &[MoveProblem]) -> Vec<&str> {
    problems.iter().map(|p| p.code.as_str()).collect()
}

fn single(problems: Vec<MoveProblem>, code: &str) -> MoveProblem {
    assert_eq!(codes(&problems), vec![code], "{problems:#?}");
    let problem = problems.into_iter().next().expect("one problem");
    assert_eq!(
        (
            problem.guest.as_str(),
            problem.from.as_str(),
            problem.to.as_str()
        ),
        ("vm01", "src", "dst")
    );
    assert!(
        problem
            .message
            .starts_with("cannot move vm01 from src to dst: "),
        "{}",
        problem.message
    );
    problem
}

#[test]
fn a_clean_move_has_no_problem_and_says_why() {
    let topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8), guest("vm02", "dst", 8, 1)],
    );
    let b = ConfigBuilder::new()
        .guest("vm01", Some("dst"), None)
        .guest("vm02", Some("dst"), None);
    let d = desired(&b.config, &topo).expect("valid");
    let (mvs, problems) = moves(&b.config, &topo, &d);
    assert!(problems.is_empty(), "{problems:#?}");
    // vm02 is already in place: no move.
    assert_eq!(mvs.len(), 1);
    assert_eq!(mvs[0].reason, "config pins vm01 to dst");
    assert_eq!(
        (mvs[0].memory_mib, mvs[0].vcpus, mvs[0].pivot, mvs[0].mode),
        (64 * GIB, 8, false, MigrationMode::Offline)
    );
}

#[test]
fn name_taken() {
    let p = single(
        problems_of(MigrationMode::Offline, |t| {
            t.hosts
                .get_mut("dst")
                .expect("host")
                .domains
                .insert("vm01".into());
        }),
        "name_taken",
    );
    assert!(
        p.message
            .ends_with("a domain named vm01 is already defined on dst"),
        "{}",
        p.message
    );
}

#[test]
fn image_version_of_target_older_than_source() {
    let p = single(
        problems_of(MigrationMode::Offline, |t| {
            t.hosts.get_mut("dst").expect("host").image_version =
                Some("23.1.2".parse().expect("version"));
        }),
        "image_version",
    );
    assert!(
        p.message
            .ends_with("dst image 23.1.2 is older than src's 24.1.0"),
        "{}",
        p.message
    );
}

#[test]
fn image_version_of_target_older_than_the_guest() {
    let p = single(
        problems_of(MigrationMode::Offline, |t| {
            t.hosts.get_mut("src").expect("host").image_version = None;
            t.guests.get_mut("vm01").expect("guest").image_version =
                Some("25.1".parse().expect("version"));
        }),
        "image_version",
    );
    assert!(
        p.message.contains("older than vm01's own image 25.1"),
        "{}",
        p.message
    );
}

#[test]
fn memory_after_every_move() {
    let p = single(
        problems_of(MigrationMode::Offline, |t| {
            t.guests.get_mut("vm02").expect("guest").memory_mib = 480 * GIB;
        }),
        "memory",
    );
    assert!(p.message.ends_with("with every planned move done dst would hold 544 GiB of memory, more than its 512 GiB usable (vm01 brings 64 GiB)"), "{}", p.message);
}

#[test]
fn vcpus_after_every_move() {
    let p = single(
        problems_of(MigrationMode::Offline, |t| {
            t.guests.get_mut("vm02").expect("guest").vcpus = 90;
        }),
        "vcpus",
    );
    assert!(
        p.message
            .contains("would run 98 vCPUs, more than its limit of 96 vCPUs"),
        "{}",
        p.message
    );
}

#[test]
fn arch() {
    let p = single(
        problems_of(MigrationMode::Offline, |t| {
            t.hosts.get_mut("dst").expect("host").arch = Some("aarch64".into());
        }),
        "arch",
    );
    assert!(
        p.message
            .ends_with("dst architecture aarch64 differs from src's x86_64"),
        "{}",
        p.message
    );
}

#[test]
fn host_disabled_when_desired_says_so() {
    // desired() refuses such a pin; a Desired built by other means is still checked.
    let topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8)],
    );
    let b = ConfigBuilder::new().host("dst", |h| h.disabled = true);
    let mut d = desired(&b.config, &topo).expect("valid");
    d.guests.insert(
        "vm01".into(),
        DesiredGuest {
            host: "dst".into(),
            mode: None,
            origin: Origin::Stays,
        },
    );
    let (_, problems) = moves(&b.config, &topo, &d);
    let p = single(problems, "host_disabled");
    assert!(
        p.message
            .ends_with("dst is disabled: no guest may move onto it"),
        "{}",
        p.message
    );
}

#[test]
fn max_guests() {
    let topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8), guest("vm02", "dst", 8, 1)],
    );
    let b = ConfigBuilder::new()
        .host("dst", |h| {
            h.max_guests = Some(crate::config::Spanned {
                value: 1,
                span: Default::default(),
            })
        })
        .guest("vm01", Some("dst"), None);
    let d = desired(&b.config, &topo).expect("valid");
    let (_, problems) = moves(&b.config, &topo, &d);
    let p = single(problems, "max_guests");
    assert!(
        p.message
            .ends_with("dst would hold 2 guests, more than max_guests = 1"),
        "{}",
        p.message
    );
}

#[test]
fn anti_affinity_of_a_pinned_move() {
    let mut topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8), guest("vm02", "dst", 64, 8)],
    );
    add_cluster(&mut topo, "cl01", &["vm01", "vm02"]);
    let b = ConfigBuilder::new().guest("vm01", Some("dst"), None);
    let mut d = desired(&b.config, &topo).expect("valid config");
    // The placement makes room: vm02 swaps to src.
    assert_eq!(d.guests["vm02"].host, "src");
    assert!(
        matches!(&d.guests["vm02"].origin, Origin::Chosen { reason } if reason.starts_with("RAC cluster cl01: vm01 stays on dst"))
    );
    // The prerequisite is the safety net for a desired placement that breaks the rule anyway.
    d.guests.insert(
        "vm02".into(),
        DesiredGuest {
            host: "dst".into(),
            mode: None,
            origin: Origin::Stays,
        },
    );
    let (_, problems) = moves(&b.config, &topo, &d);
    let p = single(problems, "anti_affinity");
    assert!(
        p.message
            .ends_with("vm01 and vm02 of RAC cluster cl01 would both run on dst"),
        "{}",
        p.message
    );
}

#[test]
fn cpu_model_only_for_live() {
    let different = |t: &mut Topology| {
        t.hosts.get_mut("dst").expect("host").cpu_model = Some("Skylake-Server".into())
    };
    let p = single(problems_of(MigrationMode::Live, different), "cpu_model");
    assert!(
        p.message
            .contains("CPU model Skylake-Server differs from src's Icelake-Server"),
        "{}",
        p.message
    );
    assert!(problems_of(MigrationMode::Offline, different).is_empty());
}

#[test]
fn hostdev_interfaces_and_devices_block_live() {
    let p = single(
        problems_of(MigrationMode::Live, |t| {
            let g = t.guests.get_mut("vm01").expect("guest");
            g.interfaces.push(Interface {
                kind: InterfaceKind::Hostdev,
                source: "0000:3b:02.1".into(),
                mac: None,
            });
            g.hostdevs.push(HostDev {
                kind: "pci".into(),
                address: "0000:5e:00.0".into(),
            });
        }),
        "hostdev",
    );
    assert!(
        p.message.contains("(0000:3b:02.1, 0000:5e:00.0)"),
        "{}",
        p.message
    );
}

#[test]
fn sata_disks_block_live() {
    let p = single(
        problems_of(MigrationMode::Live, |t| {
            t.guests.get_mut("vm01").expect("guest").disks.push(Disk {
                target: "sda".into(),
                bus: "sata".into(),
                source: None,
            });
        }),
        "sata",
    );
    assert!(p.message.contains("SATA disks (sda)"), "{}", p.message);
}

#[test]
fn storage_outside_shared_prefixes_blocks_live() {
    let p = single(
        problems_of(MigrationMode::Live, |t| {
            let disks = &mut t.guests.get_mut("vm01").expect("guest").disks;
            disks.push(Disk {
                target: "vda".into(),
                bus: "virtio".into(),
                source: Some("/EXAVMIMAGES/GuestImages/vm01/System.img".into()),
            });
            disks.push(Disk {
                target: "vdb".into(),
                bus: "virtio".into(),
                source: Some("/var/lib/libvirt/images/scratch.qcow2".into()),
            });
        }),
        "storage",
    );
    assert!(p.message.contains("outside shared storage (/var/lib/libvirt/images/scratch.qcow2; shared: /EXAVMIMAGES, /dev/exc)"), "{}", p.message);
}

#[test]
fn source_unreachable_unless_offline_force() {
    let dead = |t: &mut Topology| t.hosts.get_mut("src").expect("host").reachable = false;
    let p = single(
        problems_of(MigrationMode::Offline, dead),
        "source_unreachable",
    );
    assert!(
        p.message.contains("use mode = \"offline_force\""),
        "{}",
        p.message
    );
    assert_eq!(
        codes(&problems_of(MigrationMode::Live, dead)),
        vec!["source_unreachable"]
    );
    assert!(problems_of(MigrationMode::OfflineForce, dead).is_empty());
}

#[test]
fn target_unreachable_for_every_mode() {
    for mode in [
        MigrationMode::Offline,
        MigrationMode::OfflineForce,
        MigrationMode::Live,
    ] {
        let p = single(
            problems_of(mode, |t| {
                t.hosts.get_mut("dst").expect("host").reachable = false
            }),
            "target_unreachable",
        );
        assert!(
            p.message.ends_with("libvirt on dst does not answer"),
            "{}",
            p.message
        );
    }
}

#[test]
fn live_for_a_shut_off_guest_moves_offline_and_says_so() {
    let mut topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8)],
    );
    topo.guests.get_mut("vm01").expect("guest").state = GuestState::ShutOff;
    let b = ConfigBuilder::new()
        .mode(MigrationMode::Live)
        .guest("vm01", Some("dst"), None);
    let d = desired(&b.config, &topo).expect("valid");
    let (mvs, problems) = moves(&b.config, &topo, &d);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(mvs[0].mode, MigrationMode::Offline);
    assert!(
        mvs[0]
            .reason
            .contains("vm01 is shut off, so it moves offline"),
        "{}",
        mvs[0].reason
    );
}

#[test]
fn guest_mode_overrides_the_default() {
    let topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![guest("vm01", "src", 64, 8)],
    );
    let b = ConfigBuilder::new().mode(MigrationMode::Live).guest(
        "vm01",
        Some("dst"),
        Some(MigrationMode::Offline),
    );
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(
        moves(&b.config, &topo, &d).0[0].mode,
        MigrationMode::Offline
    );
    let b = ConfigBuilder::new()
        .mode(MigrationMode::Live)
        .guest("vm01", Some("dst"), None);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(moves(&b.config, &topo, &d).0[0].mode, MigrationMode::Live);
}
