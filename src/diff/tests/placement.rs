//! Automatic targets for guests of drained hosts.

use crate::diff::fixtures::*;
use crate::diff::{Origin, desired, moves};
use crate::inventory::{GuestState, Topology};

/// adm01 is drained; adm02 has the most room but holds vm01's RAC peer; adm03 and adm04 are free.
fn rac_fleet() -> Topology {
    let mut topo = topology(
        vec![
            host("exa01adm01", 512, 96),
            host("exa01adm02", 1024, 96),
            host("exa01adm03", 512, 96),
            host("exa01adm04", 512, 96),
        ],
        vec![
            guest("vm01", "exa01adm01", 64, 8),
            guest("vm01b", "exa01adm02", 64, 8),
            guest("vm02", "exa01adm01", 128, 8),
            guest("vm03", "exa01adm04", 64, 8),
        ],
    );
    add_cluster(&mut topo, "exa01cl01", &["vm01", "vm01b"]);
    topo
}

fn reason(d: &crate::diff::Desired, guest: &str) -> String {
    match &d.guests[guest].origin {
        Origin::Chosen { reason } => reason.clone(),
        other => panic!("{guest} was not placed automatically: {other:?}"),
    }
}

#[test]
fn drain_honours_anti_affinity_and_explains_the_choice() {
    let topo = rac_fleet();
    let b = ConfigBuilder::new().drain("exa01adm01");
    let d = desired(&b.config, &topo).expect("valid");
    // vm02 (biggest) goes first to adm02 (most room), vm01 cannot follow its peer there.
    assert_eq!(d.guests["vm02"].host, "exa01adm02");
    assert_eq!(d.guests["vm01"].host, "exa01adm03");
    assert_eq!(
        reason(&d, "vm01"),
        "drain exa01adm01: exa01adm03 has the most free memory after the move (448 GiB); \
         runner-up exa01adm04: less free memory after the move (384 GiB); exa01adm02: RAC cluster exa01cl01 (vm01b is there)"
    );
    assert_eq!(d.guests["vm03"].origin, Origin::Stays);
}

#[test]
fn biggest_guests_are_placed_first_and_spread_by_free_memory() {
    let topo = topology(
        vec![host("a", 512, 96), host("b", 256, 96), host("c", 256, 96)],
        vec![
            guest("small", "a", 32, 2),
            guest("big", "a", 200, 2),
            guest("mid", "a", 100, 2),
        ],
    );
    let d = desired(&ConfigBuilder::new().drain("a").config, &topo).expect("valid");
    // big → b (tie on memory and guests with c, b first by name); mid → c; small → c (224 vs 156 free).
    assert_eq!(d.guests["big"].host, "b");
    assert_eq!(d.guests["mid"].host, "c");
    assert_eq!(d.guests["small"].host, "c");
    assert!(
        reason(&d, "big")
            .contains("c: as much free memory and as many guests, later in name order"),
        "{}",
        reason(&d, "big")
    );
}

#[test]
fn a_host_already_above_its_vcpu_limit_has_none_free_not_a_negative_count() {
    let topo = topology(
        vec![host("a", 512, 96), host("b", 1024, 96), host("c", 256, 96)],
        vec![guest("vm", "a", 64, 8), guest("busy", "b", 16, 256)],
    );
    let d = desired(&ConfigBuilder::new().drain("a").config, &topo).expect("valid");
    assert_eq!(d.guests["vm"].host, "c");
    let why = reason(&d, "vm");
    assert!(
        why.contains("b: none of 96 vCPUs free (256 in use), 8 vCPUs needed"),
        "{why}"
    );
    assert!(!why.contains("-1"), "{why}");
}

#[test]
fn placement_counts_vcpus_max_guests_and_shut_off_guests() {
    let mut topo = topology(
        vec![
            host("a", 512, 96),
            host("b", 512, 8),
            host("c", 256, 96),
            host("d", 512, 96),
        ],
        vec![
            guest("vm", "a", 64, 16),
            guest("off", "a", 300, 16),
            guest("d1", "d", 8, 1),
        ],
    );
    topo.guests.get_mut("off").expect("exists").state = GuestState::ShutOff;
    let b = ConfigBuilder::new().drain("a").host("d", |h| {
        h.max_guests = Some(crate::config::Spanned {
            value: 1,
            span: Default::default(),
        })
    });
    let d = desired(&b.config, &topo).expect("valid");
    // b has the most memory but only 8 vCPUs; d is at max_guests; c wins.
    assert_eq!(d.guests["vm"].host, "c");
    let why = reason(&d, "vm");
    assert!(why.contains("b: only 8 vCPUs of 8 vCPUs free"), "{why}");
    assert!(why.contains("d: already at max_guests = 1"), "{why}");
    // A shut-off guest holds no memory, so it fits where its size alone would not.
    assert_eq!(d.guests["off"].host, "b");
}

#[test]
fn no_candidate_is_explained_by_the_smallest_conflicting_set() {
    let mut topo = rac_fleet();
    topo.hosts.get_mut("exa01adm04").expect("exists").reachable = false;
    topo.hosts
        .get_mut("exa01adm03")
        .expect("exists")
        .image_version = Some("23.1.0".parse().expect("valid"));
    topo.guests.get_mut("vm02").expect("exists").memory_mib = 2048 * GIB;
    let b = ConfigBuilder::new().drain("exa01adm01");
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["vm02"].origin, Origin::Unplaced);
    assert_eq!(d.guests["vm02"].host, "exa01adm01");
    let problem = d
        .unplaced
        .iter()
        .find(|p| p.guest == "vm02")
        .expect("vm02 is unplaced");
    assert_eq!(problem.code, "no_target");
    // Memory alone rules out every host: the unreachable host and the old image do not matter.
    assert_eq!(
        problem.message,
        "no host can take vm02 (2048 GiB, 8 vCPUs) off drained exa01adm01; the smallest conflicting set is memory: \
         memory rules out exa01adm02 (only 960 GiB free, 2048 GiB needed), exa01adm03 (only 512 GiB free, 2048 GiB needed), \
         exa01adm04 (only 448 GiB free, 2048 GiB needed)"
    );
    // With room on adm02, vm02 fits; vm01 then finds no host: its RAC peer, the old image and
    // the dead host each rule out one.
    topo.guests.get_mut("vm02").expect("exists").memory_mib = 128 * GIB;
    topo.hosts.get_mut("exa01adm02").expect("exists").memory_mib = 1024 * GIB;
    let d = desired(&b.config, &topo).expect("valid");
    let problem = d
        .unplaced
        .iter()
        .find(|p| p.guest == "vm01")
        .expect("vm01 is unplaced");
    assert_eq!(
        problem.message,
        "no host can take vm01 (64 GiB, 8 vCPUs) off drained exa01adm01; the smallest conflicting set is \
         RAC cluster exa01cl01 (2 members need 2 hosts) + reachability + image version: \
         RAC cluster exa01cl01 rules out exa01adm02 (vm01b is there); reachability rules out exa01adm04; \
         image version rules out exa01adm03 (image 23.1.0 is older than exa01adm01's 24.1.0)"
    );
    // moves() passes the problem on.
    let (_, problems) = moves(&b.config, &topo, &d);
    assert!(
        problems
            .iter()
            .any(|p| p.code == "no_target" && p.guest == "vm01")
    );
}

#[test]
fn pinned_moves_are_counted_before_automatic_ones() {
    let topo = topology(
        vec![host("a", 512, 96), host("b", 512, 96), host("c", 400, 96)],
        vec![guest("pinned", "c", 300, 4), guest("auto", "a", 64, 4)],
    );
    // Without the pin b would have the most room (512 against 100 GiB); the pin fills it first.
    let b = ConfigBuilder::new()
        .drain("a")
        .guest("pinned", Some("b"), None);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["auto"].host, "c");
}

/// A fleet where each bridge is on a share of the hosts and most hosts have their own set of
/// bridges (one class each), with two CPU models, two images, bans and anti-affinity: the
/// shape for which placement walks the rankings of a guest's bridges instead of its classes.
fn bridged_fleet(seed: u64) -> (Topology, crate::config::Config) {
    use crate::config::RuleKind;
    use crate::inventory::{Interface, InterfaceKind};
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut below = |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let bridge = |b: u64| format!("vmbondeth0.{}", 100 + b);
    let mut hosts = Vec::new();
    for h in 0..60 {
        let mut host = host(&format!("adm{h:02}"), 256 + 64 * below(4), 64);
        if below(4) == 0 {
            host.cpu_model = Some("Sapphire Rapids".into());
        }
        if below(5) == 0 {
            host.image_version = Some("23.1.0".parse().expect("valid version"));
        }
        let mut bridges: std::collections::BTreeSet<String> =
            (0..1 + below(5)).map(|_| bridge(below(12))).collect();
        // The untagged network on most hosts but not all: a common bridge with its own ranking.
        if below(8) != 0 {
            bridges.insert("vmbondeth0".into());
        }
        host.bridges = Some(bridges);
        hosts.push(host);
    }
    let mut guests = Vec::new();
    for g in 0..240 {
        let home = format!("adm{:02}", below(60));
        let mut guest = guest(
            &format!("vm{g:03}"),
            &home,
            8 + 8 * below(4),
            2 + below(6) as u32,
        );
        let interfaces = 1 + below(3);
        guest.interfaces = (0..interfaces)
            .map(|_| Interface {
                kind: InterfaceKind::Bridge,
                source: if below(3) == 0 {
                    "vmbondeth0".into()
                } else {
                    bridge(below(12))
                },
                mac: None,
            })
            .collect();
        if below(10) == 0 {
            guest.state = GuestState::ShutOff;
        }
        guests.push(guest);
    }
    let topo = topology(hosts, guests);
    let mut b = ConfigBuilder::new();
    for h in (0..60).step_by(6) {
        b = b.drain(&format!("adm{h:02}"));
    }
    let pair = |a: u64, b: u64| [format!("vm{a:03}"), format!("vm{b:03}")];
    for r in 0..6 {
        let p = pair(below(240), below(240));
        if p[0] != p[1] {
            let names: Vec<&str> = p.iter().map(String::as_str).collect();
            b = b.rule(RuleKind::AntiAffinity, &format!("apart{r}"), &names, &[]);
        }
    }
    for r in 0..4 {
        let guest = format!("vm{:03}", below(240));
        let banned: std::collections::BTreeSet<String> =
            (0..8).map(|_| format!("adm{:02}", below(60))).collect();
        let banned: Vec<&str> = banned.iter().map(String::as_str).collect();
        b = b.rule(
            RuleKind::Ban,
            &format!("ban{r}"),
            &[guest.as_str()],
            &banned,
        );
    }
    (topo, b.config)
}

/// Placement walks the cost tiers of a guest's bridges through per-bridge rankings, for speed
/// only: on fleets where most hosts are classes of their own, it chooses the same hosts and
/// gives the same reasons and problems as listing the classes and walking them one by one.
#[test]
fn walking_bridge_rankings_chooses_and_explains_as_walking_classes() {
    use crate::diff::placement::EXHAUSTIVE_TIERS;
    let mut chosen_with_bridges = 0;
    for seed in 0..40 {
        let (topo, cfg) = bridged_fleet(seed);
        let with = |exhaustive: bool| {
            EXHAUSTIVE_TIERS.with(|o| o.set(exhaustive));
            let d = desired(&cfg, &topo);
            EXHAUSTIVE_TIERS.with(|o| o.set(false));
            d.expect("valid")
        };
        let by_classes = with(true);
        let by_bridges = with(false);
        assert_eq!(by_classes, by_bridges, "seed {seed}");
        chosen_with_bridges += by_bridges
            .guests
            .values()
            .filter(|g| {
                matches!(&g.origin, Origin::Chosen { reason }
                    if reason.contains("bridges") && reason.contains("created"))
            })
            .count();
    }
    // The bridges decided some choices (cheapest-move reasons), so the tiers were exercised.
    assert!(chosen_with_bridges > 0);
}

/// `desired_and_moves` (the ledger for the final-placement checks built on a second thread
/// while the placement runs) answers exactly as `desired` then `moves`: the same desired
/// placement, moves and problems (capacity and anti-affinity codes included).
#[test]
fn desired_and_moves_together_match_each_alone() {
    let mut moved = 0;
    for seed in 0..20 {
        let (topo, cfg) = bridged_fleet(seed);
        let alone = desired(&cfg, &topo).expect("valid");
        let (moves_alone, problems_alone) = moves(&cfg, &topo, &alone);
        let (together, moves_together, problems_together) =
            crate::diff::desired_and_moves(&cfg, &topo, &Default::default()).expect("valid");
        assert_eq!(together, alone, "seed {seed}");
        assert_eq!(moves_together, moves_alone, "seed {seed}");
        assert_eq!(problems_together, problems_alone, "seed {seed}");
        moved += moves_alone.len();
    }
    assert!(moved > 0);
}
