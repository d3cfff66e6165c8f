//! SR-IOV virtual functions: a guest's hostdev interfaces need free VFs of the target's
//! `sriov_vfs` pool, in prerequisites (code `sriov_vfs`) and in automatic placement.

use crate::config::{HostIntent, MigrationMode, Spanned};
use crate::diff::fixtures::*;
use crate::diff::{MoveProblem, desired, moves};
use crate::inventory::{Guest, Interface, InterfaceKind, Topology};

fn with_vfs(mut g: Guest, sources: &[&str]) -> Guest {
    g.interfaces
        .extend(sources.iter().enumerate().map(|(i, s)| Interface {
            kind: InterfaceKind::Hostdev,
            source: s.to_string(),
            mac: Some(format!("52:54:00:00:00:{i:02x}")),
        }));
    g
}

fn pool(vfs: &[&str]) -> impl FnOnce(&mut HostIntent) {
    let value: Vec<String> = vfs.iter().map(|v| v.to_string()).collect();
    move |h| {
        h.sriov_vfs = Some(Spanned {
            value,
            span: Default::default(),
        })
    }
}

/// src holds vm01 and vm02 (two VFs each); dst uses `dst_in_use`.
fn fleet(dst_in_use: &[&str]) -> Topology {
    let mut topo = topology(
        vec![host("src", 512, 96), host("dst", 512, 96)],
        vec![
            with_vfs(
                guest("vm01", "src", 64, 8),
                &["0000:3b:02.0", "0000:5e:02.0"],
            ),
            with_vfs(
                guest("vm02", "src", 64, 8),
                &["0000:3b:02.1", "0000:5e:02.1"],
            ),
        ],
    );
    topo.hosts.get_mut("dst").unwrap().vfs_in_use =
        dst_in_use.iter().map(|v| v.to_string()).collect();
    topo
}

const DST_POOL: [&str; 4] = [
    "0000:3b:02.0",
    "0000:5e:02.0",
    "0000:3b:02.1",
    "0000:5e:02.1",
];

fn problems(topo: &Topology, b: ConfigBuilder) -> Vec<MoveProblem> {
    let d = desired(&b.config, topo).expect("valid config");
    moves(&b.config, topo, &d).1
}

#[test]
fn a_pool_with_enough_free_vfs_is_no_problem() {
    // The VF in use outside the pool does not count against it.
    let topo = fleet(&["0000:3b:02.0", "0000:af:00.2"]);
    let b = ConfigBuilder::new()
        .host("dst", pool(&DST_POOL))
        .guest("vm01", Some("dst"), None);
    assert_eq!(problems(&topo, b), vec![]);
}

#[test]
fn no_pool_on_the_target_says_what_to_configure() {
    let topo = fleet(&[]);
    let p = problems(&topo, ConfigBuilder::new().guest("vm01", Some("dst"), None));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(
        (p[0].code.as_str(), p[0].guest.as_str(), p[0].to.as_str()),
        ("sriov_vfs", "vm01", "dst")
    );
    assert_eq!(
        p[0].message,
        "cannot move vm01 from src to dst: vm01 has 2 SR-IOV interfaces, which get virtual functions of the \
         target's pool, and dst has no `sriov_vfs` pool configured; list its free VFs in \
         `host \"dst\" { sriov_vfs = [\"0000:3b:02.0\", …] }`"
    );
    // A guest without SR-IOV interfaces needs no pool.
    let mut plain = fleet(&[]);
    plain.guests.get_mut("vm01").unwrap().interfaces.clear();
    assert_eq!(
        problems(
            &plain,
            ConfigBuilder::new().guest("vm01", Some("dst"), None)
        ),
        vec![]
    );
}

#[test]
fn vfs_in_use_on_the_target_leave_too_few() {
    let topo = fleet(&["0000:3b:02.0", "0000:5e:02.0", "0000:3b:02.1"]);
    let b = ConfigBuilder::new()
        .host("dst", pool(&DST_POOL))
        .guest("vm01", Some("dst"), None);
    let p = problems(&topo, b);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].code, "sriov_vfs");
    assert!(
        p[0].message.ends_with(
            "vm01 needs 2 SR-IOV VFs on dst, and its `sriov_vfs` pool has 1 free VF of 4 (3 in use)"
        ),
        "{}",
        p[0].message
    );
}

#[test]
fn guests_moving_onto_one_host_share_its_pool() {
    let topo = fleet(&["0000:3b:02.0"]);
    let b = ConfigBuilder::new()
        .host("dst", pool(&DST_POOL))
        .guest("vm01", Some("dst"), None)
        .guest("vm02", Some("dst"), None);
    let p = problems(&topo, b);
    // 3 free, 4 wanted: either could be the one left without, so both moves are flagged.
    assert_eq!(
        p.iter()
            .map(|p| (p.code.as_str(), p.guest.as_str()))
            .collect::<Vec<_>>(),
        [("sriov_vfs", "vm01"), ("sriov_vfs", "vm02")]
    );
    assert!(
        p[0].message.ends_with(
            "vm01 needs 2 SR-IOV VFs on dst, and its `sriov_vfs` pool has 3 free VFs of 4 (1 in use), and other guests moving in need 2 of them"
        ),
        "{}",
        p[0].message
    );
}

#[test]
fn a_live_move_reports_the_passthrough_not_the_pool() {
    let topo = fleet(&[]);
    let p = problems(
        &topo,
        ConfigBuilder::new().guest("vm01", Some("dst"), Some(MigrationMode::Live)),
    );
    assert_eq!(
        p.iter().map(|p| p.code.as_str()).collect::<Vec<_>>(),
        ["hostdev"]
    );
}

#[test]
fn a_drain_skips_hosts_whose_pool_is_short_and_explains_it() {
    // big has the most memory but all of its pool in use; small has free VFs.
    let mut topo = topology(
        vec![
            host("a", 512, 96),
            host("big", 1024, 96),
            host("small", 512, 96),
            host("bare", 2048, 96),
        ],
        vec![with_vfs(
            guest("vm01", "a", 64, 8),
            &["0000:3b:02.0", "0000:5e:02.0"],
        )],
    );
    topo.hosts.get_mut("big").unwrap().vfs_in_use =
        DST_POOL[..3].iter().map(|v| v.to_string()).collect();
    let b = ConfigBuilder::new()
        .drain("a")
        .host("big", pool(&DST_POOL))
        .host("small", pool(&DST_POOL));
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["vm01"].host, "small");
    let crate::diff::Origin::Chosen { reason } = &d.guests["vm01"].origin else {
        panic!("not chosen")
    };
    assert!(
        reason.contains("bare: no `sriov_vfs` pool configured, needed for 2 SR-IOV interfaces"),
        "{reason}"
    );
    assert!(
        reason.contains("big: its `sriov_vfs` pool has 1 free VF of 4 (3 in use)"),
        "{reason}"
    );
    assert_eq!(moves(&b.config, &topo, &d).1, vec![]);

    // Without any pool with room, the guest has no target, and every host says why.
    let b = ConfigBuilder::new().drain("a").host("big", pool(&DST_POOL));
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.unplaced.len(), 1);
    let message = &d.unplaced[0].message;
    // The explanation names the pool as the conflicting constraint, and each host's shortfall.
    assert!(
        message.contains("smallest conflicting set is SR-IOV VFs"),
        "{message}"
    );
    assert!(
        message.contains("small (no `sriov_vfs` pool configured"),
        "{message}"
    );
    assert!(
        message.contains("big (its `sriov_vfs` pool has 1 free VF of 4"),
        "{message}"
    );
}
