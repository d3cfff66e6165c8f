//! Capacity edges, pivots, waves and peaks.

use std::collections::{BTreeMap, HashMap};

use super::{limits, mv, step};
use crate::config::MigrationMode::{Live, Offline};
use crate::diff::fixtures::*;
use crate::inventory::{GuestState, Topology};
use crate::schedule::{HostLimit, Limits, ScheduleError, schedule};

/// Two 256 GiB hosts each running a 192 GiB guest, and optionally a third host of `third` GiB.
fn full_pair(third: Option<u64>) -> Topology {
    let mut hosts = vec![host("adm01", 256, 64), host("adm02", 256, 64)];
    hosts.extend(third.map(|gib| host("adm03", gib, 64)));
    topology(
        hosts,
        vec![
            guest("vm01", "adm01", 192, 8),
            guest("vm02", "adm02", 192, 8),
        ],
    )
}

#[test]
fn a_claim_that_fits_waits_for_nothing() {
    let topo = full_pair(Some(512));
    let s =
        schedule(&[mv("vm01", "adm01", "adm03", Offline)], &topo, &limits()).expect("schedules");
    assert_eq!(
        step(&s, "vm01:STARTUP_GUEST").depends_on,
        vec!["vm01:MIGRATE_GUEST"]
    );
}

#[test]
fn a_claim_that_does_not_fit_waits_for_the_release() {
    // vm03 (128 GiB) onto adm02, which only has 64 GiB until vm02 leaves for adm03.
    let mut topo = full_pair(Some(512));
    topo.guests
        .insert("vm03".into(), guest("vm03", "adm03", 128, 4));
    let moves = [
        mv("vm03", "adm03", "adm02", Offline),
        mv("vm02", "adm02", "adm03", Offline),
    ];
    let s = schedule(&moves, &topo, &limits()).expect("schedules");
    assert_eq!(
        step(&s, "vm03:STARTUP_GUEST").depends_on,
        vec!["vm03:MIGRATE_GUEST", "vm02:STOP_GUEST"]
    );
    assert_eq!(
        step(&s, "vm02:STARTUP_GUEST").depends_on,
        vec!["vm02:MIGRATE_GUEST"],
        "adm03 has room for vm02"
    );
}

#[test]
fn chained_claims_wait_for_growing_prefixes_of_releases() {
    // dst is full (4 × 64 GiB); a1, a2 leave it, b1, b2 arrive.
    let topo = topology(
        vec![host("dst", 256, 64), host("other", 1024, 64)],
        vec![
            guest("a1", "dst", 64, 1),
            guest("a2", "dst", 64, 1),
            guest("a3", "dst", 64, 1),
            guest("a4", "dst", 64, 1),
            guest("b1", "other", 64, 1),
            guest("b2", "other", 64, 1),
        ],
    );
    let moves = [
        mv("a1", "dst", "other", Offline),
        mv("a2", "dst", "other", Offline),
        mv("b1", "other", "dst", Offline),
        mv("b2", "other", "dst", Offline),
    ];
    let s = schedule(&moves, &topo, &limits()).expect("schedules");
    assert_eq!(
        step(&s, "b1:STARTUP_GUEST").depends_on,
        vec!["a1:STOP_GUEST", "b1:MIGRATE_GUEST"]
    );
    assert_eq!(
        step(&s, "b2:STARTUP_GUEST").depends_on,
        vec!["a1:STOP_GUEST", "a2:STOP_GUEST", "b2:MIGRATE_GUEST"]
    );
    assert_eq!(s.peaks["dst"], (256 * GIB, 4));
}

#[test]
fn vcpus_are_a_capacity_too() {
    // Plenty of memory, but dst has 16 CPUs and 12 vCPUs in use.
    let topo = topology(
        vec![host("src", 512, 64), host("dst", 512, 16)],
        vec![guest("big", "dst", 8, 12), guest("new", "src", 8, 8)],
    );
    let s = schedule(
        &[
            mv("new", "src", "dst", Offline),
            mv("big", "dst", "src", Offline),
        ],
        &topo,
        &limits(),
    )
    .expect("schedules");
    assert!(
        step(&s, "new:STARTUP_GUEST")
            .depends_on
            .contains(&"big:STOP_GUEST".to_string())
    );
    assert_eq!(s.peaks["dst"].1, 12);
}

#[test]
fn limits_from_config_take_precedence_over_physical_size() {
    let topo = full_pair(Some(512));
    let mut hosts = BTreeMap::new();
    hosts.insert(
        "adm03".to_string(),
        HostLimit {
            memory_mib: 100 * GIB,
            vcpus: 64,
            max_guests: None,
            accepts_guests: true,
        },
    );
    let limits = Limits {
        hosts,
        allow_pivot: false,
        ..Limits::default()
    };
    let err = schedule(&[mv("vm01", "adm01", "adm03", Offline)], &topo, &limits)
        .expect_err("192 GiB do not fit in 100");
    let ScheduleError::Infeasible {
        message,
        hosts,
        guests,
    } = err
    else {
        panic!("expected Infeasible")
    };
    assert_eq!(hosts, vec!["adm03"]);
    assert_eq!(guests, vec!["vm01"]);
    assert_eq!(
        message,
        "adm03 cannot hold every guest planned onto it: 100 GiB and 64 vCPUs usable, 0 MiB and 0 vCPUs in use now; \
         moves onto it (vm01) bring 192 GiB and 8 vCPUs, moves off it (none) free 0 MiB and 0 vCPUs, \
         which leaves 192 GiB and 8 vCPUs in use after the plan"
    );
}

#[test]
fn shut_off_guests_claim_nothing() {
    let mut topo = full_pair(None);
    topo.guests.get_mut("vm01").expect("guest").state = GuestState::ShutOff;
    let s = schedule(&[mv("vm01", "adm01", "adm02", Offline)], &topo, &limits())
        .expect("a shut-off guest fits anywhere");
    assert_eq!(s.steps.len(), 1);
    assert_eq!(s.peaks["adm02"], (192 * GIB, 8));
}

#[test]
fn a_live_swap_goes_through_the_pivot_with_the_most_room() {
    let mut topo = full_pair(Some(512));
    topo.hosts.insert("adm04".into(), host("adm04", 1024, 64));
    topo.hosts.insert("adm05".into(), host("adm05", 2048, 64));
    let limits = Limits {
        hosts: [(
            "adm05".to_string(),
            HostLimit {
                memory_mib: 2048 * GIB,
                vcpus: 64,
                max_guests: None,
                accepts_guests: false,
            },
        )]
        .into(),
        allow_pivot: true,
        ..Limits::default()
    };
    let s = schedule(
        &[
            mv("vm01", "adm01", "adm02", Live),
            mv("vm02", "adm02", "adm01", Live),
        ],
        &topo,
        &limits,
    )
    .expect("pivot");
    // adm05 is drained or disabled; adm04 has the most room.
    assert_eq!(s.moves.len(), 3);
    assert!(s.moves[0].pivot && !s.moves[1].pivot && !s.moves[2].pivot);
    assert_eq!(
        (s.moves[0].from.as_str(), s.moves[0].to.as_str()),
        ("adm01", "adm04")
    );
    assert_eq!(
        (s.moves[1].from.as_str(), s.moves[1].to.as_str()),
        ("adm04", "adm02")
    );
    assert!(
        s.moves[0]
            .reason
            .starts_with("pivot: vm01 stops over on adm04"),
        "{}",
        s.moves[0].reason
    );
    assert_eq!(step(&s, "vm01:MIGRATE_GUEST#2").move_index, 1);
    assert_eq!(
        step(&s, "vm02:MIGRATE_GUEST").depends_on,
        vec!["vm01:MIGRATE_GUEST"]
    );
    assert!(
        step(&s, "vm01:MIGRATE_GUEST#2")
            .depends_on
            .contains(&"vm02:MIGRATE_GUEST".to_string())
    );
}

#[test]
fn waves_only_depend_on_earlier_waves() {
    let topo = full_pair(Some(512));
    let s = schedule(
        &[
            mv("vm01", "adm01", "adm02", Offline),
            mv("vm02", "adm02", "adm01", Offline),
        ],
        &topo,
        &limits(),
    )
    .expect("swap");
    let wave_of: HashMap<&str, usize> = s
        .waves
        .iter()
        .enumerate()
        .flat_map(|(n, wave)| wave.iter().map(move |id| (id.as_str(), n)))
        .collect();
    assert_eq!(wave_of.len(), s.steps.len());
    for st in &s.steps {
        for dep in &st.depends_on {
            assert!(
                wave_of[dep.as_str()] < wave_of[st.id.as_str()],
                "{dep} → {}",
                st.id
            );
        }
    }
    assert_eq!(s.waves[0], vec!["vm01:STOP_GUEST", "vm02:STOP_GUEST"]);
    assert_eq!(s.peaks["adm01"], (192 * GIB, 8));
    let again = schedule(
        &[
            mv("vm01", "adm01", "adm02", Offline),
            mv("vm02", "adm02", "adm01", Offline),
        ],
        &topo,
        &limits(),
    )
    .expect("swap");
    assert_eq!(again, s);
}
