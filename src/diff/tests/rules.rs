//! Each placement rule on its own: what it makes the placement do, and the contradictions and
//! infeasible cases it explains.

use crate::config::{MigrationMode, RuleKind};
use crate::diff::fixtures::*;
use crate::diff::{Desired, DiffError, Origin, desired, moves};
use crate::inventory::{Interface, InterfaceKind, Topology};

fn reason(d: &Desired, guest: &str) -> String {
    match &d.guests[guest].origin {
        Origin::Chosen { reason } => reason.clone(),
        other => panic!("{guest} was not placed automatically: {other:?}"),
    }
}

fn errors(b: &ConfigBuilder, topo: &Topology) -> Vec<DiffError> {
    desired(&b.config, topo).expect_err("the config should be rejected")
}

fn three_hosts() -> Topology {
    topology(
        vec![host("a", 512, 96), host("b", 512, 96), host("c", 256, 96)],
        vec![guest("x", "a", 64, 8), guest("y", "b", 64, 8)],
    )
}

#[test]
fn anti_affinity_keeps_a_drained_guest_off_its_peers_host() {
    let topo = three_hosts();
    // Without the rule x goes to b, which has the most room.
    assert_eq!(
        desired(&ConfigBuilder::new().drain("a").config, &topo)
            .expect("valid")
            .guests["x"]
            .host,
        "b"
    );
    let b = ConfigBuilder::new()
        .drain("a")
        .rule(RuleKind::AntiAffinity, "apart", &["x", "y"], &[]);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["x"].host, "c");
    assert!(
        reason(&d, "x").contains("b: anti-affinity apart (y is there)"),
        "{}",
        reason(&d, "x")
    );
}

#[test]
fn anti_affinity_members_sharing_a_host_are_separated_biggest_stays() {
    let topo = topology(
        vec![host("a", 512, 96), host("b", 512, 96)],
        vec![guest("small", "a", 32, 4), guest("big", "a", 128, 8)],
    );
    let b = ConfigBuilder::new().rule(RuleKind::AntiAffinity, "apart", &["small", "big"], &[]);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["big"].origin, Origin::Stays);
    assert_eq!(d.guests["small"].host, "b");
    assert!(
        reason(&d, "small").starts_with(
            "anti-affinity apart: big stays on a: b is the only host that can take it"
        ),
        "{}",
        reason(&d, "small")
    );
}

#[test]
fn the_rac_default_can_be_switched_off() {
    let mut topo = three_hosts();
    add_cluster(&mut topo, "cl01", &["x", "y"]);
    let d = desired(&ConfigBuilder::new().drain("a").config, &topo).expect("valid");
    assert_eq!(d.guests["x"].host, "c");
    let mut b = ConfigBuilder::new().drain("a");
    b.config.defaults.rac_anti_affinity = false;
    assert_eq!(
        desired(&b.config, &topo).expect("valid").guests["x"].host,
        "b"
    );
}

#[test]
fn an_affinity_group_leaves_a_drained_host_together() {
    let topo = topology(
        vec![host("a", 512, 96), host("b", 512, 96), host("c", 512, 96)],
        vec![
            guest("p", "a", 64, 4),
            guest("q", "a", 64, 4),
            guest("r", "b", 200, 4),
        ],
    );
    let b = ConfigBuilder::new()
        .drain("a")
        .rule(RuleKind::Affinity, "app", &["p", "q"], &[]);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(
        (d.guests["p"].host.as_str(), d.guests["q"].host.as_str()),
        ("c", "c")
    );
    assert_eq!(
        reason(&d, "q"),
        "drain a; affinity rule \"app\" keeps p, q together: c moves the least memory (128 GiB); \
         runner-up b: as much to move, less free memory after (184 GiB)"
    );
}

#[test]
fn a_split_affinity_group_comes_together_where_the_least_memory_moves() {
    let topo = topology(
        vec![host("a", 512, 96), host("b", 512, 96), host("c", 512, 96)],
        vec![guest("p", "a", 64, 4), guest("q", "b", 32, 4)],
    );
    let b = ConfigBuilder::new().rule(RuleKind::Affinity, "app", &["p", "q"], &[]);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["p"].origin, Origin::Stays);
    assert_eq!(d.guests["q"].host, "a");
    assert_eq!(
        reason(&d, "q"),
        "affinity rule \"app\": members on 2 hosts; affinity rule \"app\" keeps p, q together: a moves the least memory (32 GiB); \
         runner-up b: would move 64 GiB"
    );
}

#[test]
fn an_affinity_group_too_big_for_any_host_is_explained() {
    let topo = topology(
        vec![host("a", 1024, 96), host("b", 512, 96), host("c", 512, 96)],
        vec![guest("p", "a", 300, 4), guest("q", "a", 300, 4)],
    );
    let b = ConfigBuilder::new()
        .drain("a")
        .rule(RuleKind::Affinity, "app", &["p", "q"], &[]);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["p"].origin, Origin::Unplaced);
    assert_eq!(d.unplaced.len(), 1, "{:#?}", d.unplaced);
    assert_eq!(
        d.unplaced[0].message,
        "no host can take affinity group \"app\" (p, q: 600 GiB, 8 vCPUs together); the smallest conflicting set is memory: \
         memory rules out b (only 512 GiB free, 600 GiB needed), c (only 512 GiB free, 600 GiB needed)"
    );
}

#[test]
fn affinity_and_anti_affinity_on_the_same_guests_contradict() {
    let b = ConfigBuilder::new()
        .rule(RuleKind::AntiAffinity, "apart", &["x", "y"], &[])
        .rule(RuleKind::Affinity, "together", &["x", "y"], &[]);
    let errs = errors(&b, &three_hosts());
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        errs[0].message,
        "affinity rule \"together\" puts x and y on one host, but anti-affinity apart keeps them apart"
    );
    assert_eq!(errs[0].span.as_ref(), Some(&b.config.rules[1].name.span));
}

#[test]
fn a_pinned_guest_never_moves_and_cannot_sit_on_a_drained_host() {
    let b = ConfigBuilder::new()
        .drain("a")
        .rule(RuleKind::Pin, "db", &["x"], &[]);
    let errs = errors(&b, &three_hosts());
    assert_eq!(
        errs[0].message,
        "pin rule \"db\": guest x never moves, but its host a is drained"
    );
    assert_eq!(
        errs[0].span.as_ref(),
        Some(&b.config.rules[0].guests[0].span)
    );

    let b = ConfigBuilder::new()
        .guest("x", Some("c"), None)
        .rule(RuleKind::Pin, "db", &["x"], &[]);
    let errs = errors(&b, &three_hosts());
    assert_eq!(
        errs[0].message,
        "guest x is pinned by pin rule \"db\" (it never moves), but its guest block moves it from a to c"
    );
}

#[test]
fn a_ban_moves_the_guest_off_and_keeps_targets_away() {
    let topo = three_hosts();
    let b = ConfigBuilder::new().rule(RuleKind::Ban, "old", &["x"], &["a", "b"]);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["x"].host, "c");
    assert!(
        reason(&d, "x")
            .starts_with("ban rule \"old\" keeps x off a: c is the only host that can take it"),
        "{}",
        reason(&d, "x")
    );
    let (mvs, problems) = moves(&b.config, &topo, &d);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(mvs.len(), 1);

    // A guest block onto a banned host contradicts the ban.
    let b =
        ConfigBuilder::new()
            .guest("y", Some("a"), None)
            .rule(RuleKind::Ban, "old", &["y"], &["a"]);
    let errs = errors(&b, &topo);
    assert_eq!(
        errs[0].message,
        "guest y is placed on a, which ban rule \"old\" forbids"
    );
}

#[test]
fn max_guests_from_the_defaults_and_vcpu_overcommit_per_host() {
    let topo = topology(
        vec![
            host("a", 512, 96),
            host("b", 1024, 8),
            host("c", 512, 96),
            host("d", 256, 96),
        ],
        vec![guest("x", "a", 64, 12), guest("c1", "c", 8, 1)],
    );
    let mut b = ConfigBuilder::new().drain("a");
    b.config.defaults.max_guests = Some(1);
    // b has the most memory but 8 vCPUs; c is at max_guests; d wins.
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["x"].host, "d");
    let why = reason(&d, "x");
    assert!(
        why.contains("b: only 8 vCPUs of 8 vCPUs free, 12 vCPUs needed"),
        "{why}"
    );
    assert!(why.contains("c: already at max_guests = 1"), "{why}");
    // Overcommitting b's CPUs twice makes room for 16 vCPUs.
    let b = b.host("b", |h| h.vcpu_overcommit = Some(2.0));
    assert_eq!(
        desired(&b.config, &topo).expect("valid").guests["x"].host,
        "b"
    );
}

#[test]
fn the_cheapest_move_wins_before_the_least_loaded_host() {
    let fleet = |edit: &dyn Fn(&mut Topology)| {
        let mut topo = topology(
            vec![host("a", 512, 96), host("b", 1024, 96), host("c", 512, 96)],
            vec![guest("x", "a", 64, 8)],
        );
        edit(&mut topo);
        let d = desired(&ConfigBuilder::new().drain("a").config, &topo).expect("valid");
        (d.guests["x"].host.clone(), reason(&d, "x"))
    };
    // Equal costs: the least loaded wins.
    assert_eq!(fleet(&|_| {}).0, "b");
    let (host, why) =
        fleet(&|t| t.hosts.get_mut("b").expect("b").cpu_model = Some("Skylake-Server".into()));
    assert_eq!(host, "c");
    assert_eq!(
        why,
        "drain a: c is the cheapest move (same CPU model as a, so it can move live); \
         runner-up b: CPU model Skylake-Server differs from a's Icelake-Server (no live migration)"
    );
    let (host, why) = fleet(&|t| {
        t.hosts.get_mut("b").expect("b").image_version = Some("25.1.0".parse().expect("version"))
    });
    assert_eq!(host, "c");
    assert!(why.ends_with("c is the cheapest move (same image as a); runner-up b: image 25.1.0 differs from a's 24.1.0"), "{why}");
    let (host, why) = fleet(&|t| {
        let bridge = Interface {
            kind: InterfaceKind::Bridge,
            source: "vmbondeth0.120".into(),
            mac: None,
        };
        t.guests.get_mut("x").expect("x").interfaces.push(bridge);
        t.hosts.get_mut("c").expect("c").bridges = Some(["vmbondeth0.120".to_string()].into());
    });
    assert_eq!(host, "c");
    assert!(why.ends_with("c is the cheapest move (no bridges to create); runner-up b: would need bridges vmbondeth0.120 created"), "{why}");
}

#[test]
fn evacuation_moves_offline_force_and_needs_a_dead_host() {
    let mut topo = three_hosts();
    topo.hosts.get_mut("a").expect("a").reachable = false;
    let b = ConfigBuilder::new()
        .evacuate("a")
        .guest("x", None, Some(MigrationMode::Live));
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["x"].mode, Some(MigrationMode::OfflineForce));
    assert!(
        reason(&d, "x")
            .starts_with("evacuate a (dead host, offline_force): b has the most free memory"),
        "{}",
        reason(&d, "x")
    );
    let (mvs, problems) = moves(&b.config, &topo, &d);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        (mvs[0].to.as_str(), mvs[0].mode),
        ("b", MigrationMode::OfflineForce)
    );

    // A guest block moving a guest off the dead host moves it offline_force too.
    let placed = ConfigBuilder::new()
        .evacuate("a")
        .guest("x", Some("c"), None);
    let d = desired(&placed.config, &topo).expect("valid");
    assert_eq!(d.guests["x"].mode, Some(MigrationMode::OfflineForce));
    assert!(moves(&placed.config, &topo, &d).1.is_empty());

    let alive = three_hosts();
    let errs = errors(&b, &alive);
    assert_eq!(
        errs[0].message,
        "host a is marked dead (`evacuate = true`), but libvirt on it answers"
    );
    assert_eq!(errs[0].span.as_ref(), Some(&b.config.hosts["a"].name.span));
}

#[test]
fn the_smallest_conflicting_set_names_rules_hosts_and_numbers() {
    let topo = topology(
        vec![
            host("h1", 512, 96),
            host("h2", 512, 96),
            host("h3", 512, 96),
            host("h4", 512, 96),
            host("h5", 32, 96),
        ],
        vec![
            guest("m1", "h1", 64, 8),
            guest("m2", "h2", 64, 8),
            guest("m3", "h3", 64, 8),
        ],
    );
    let b = ConfigBuilder::new()
        .drain("h1")
        .rule(RuleKind::AntiAffinity, "cl", &["m1", "m2", "m3"], &[])
        .rule(RuleKind::Ban, "old-hosts", &["m1"], &["h4"]);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.unplaced.len(), 1);
    assert_eq!(
        d.unplaced[0].message,
        "no host can take m1 (64 GiB, 8 vCPUs) off drained h1; the smallest conflicting set is \
         ban rule \"old-hosts\" + anti-affinity cl (3 members need 3 hosts) + memory: \
         ban rule \"old-hosts\" rules out h4; anti-affinity cl rules out h2 (m2 is there), h3 (m3 is there); \
         memory rules out h5 (only 32 GiB free, 64 GiB needed)"
    );
}

#[test]
fn disruption_budgets_resolve_to_members_for_the_scheduler() {
    let mut topo = three_hosts();
    add_cluster(&mut topo, "cl01", &["x", "y"]);
    let b = ConfigBuilder::new().cluster_budget("cl01", "cl01", 1);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.rules.disruption_budgets.len(), 1);
    assert_eq!(d.rules.disruption_budgets[0].members, ["x", "y"]);
    assert_eq!(d.rules.disruption_budgets[0].max_unavailable, 1);

    let b = ConfigBuilder::new().cluster_budget("b", "cl02", 1);
    let errs = errors(&b, &topo);
    assert_eq!(
        errs[0].message,
        "disruption budget \"b\": cluster \"cl02\" is not in es.xml"
    );
    assert_eq!(errs[0].help.as_deref(), Some("did you mean \"cl01\"?"));
}

#[test]
fn rule_names_are_resolved_with_suggestions() {
    let b = ConfigBuilder::new().rule(RuleKind::Ban, "old", &["xx"], &["d"]);
    let errs = errors(&b, &three_hosts());
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "ban rule \"old\": guest \"xx\" is not in the topology",
            "ban rule \"old\": host \"d\" is not in the topology"
        ]
    );
    assert_eq!(errs[0].help.as_deref(), Some("did you mean \"x\"?"));
    assert_eq!(
        errs[0].span.as_ref(),
        Some(&b.config.rules[0].guests[0].span)
    );
}

/// p is pinned; m is p's RAC peer (default anti-affinity) and in affinity group "app" with n;
/// all three on a.
fn pinned_peer_of_an_affinity_member() -> Topology {
    let mut topo = topology(
        vec![host("a", 512, 96), host("b", 512, 96), host("c", 256, 96)],
        vec![
            guest("p", "a", 64, 4),
            guest("m", "a", 32, 4),
            guest("n", "a", 32, 4),
        ],
    );
    add_cluster(&mut topo, "cl01", &["p", "m"]);
    topo
}

#[test]
fn an_affinity_member_sharing_a_host_with_a_pinned_rac_peer_moves_with_its_group() {
    let topo = pinned_peer_of_an_affinity_member();
    let b = ConfigBuilder::new()
        .rule(RuleKind::Pin, "db", &["p"], &[])
        .rule(RuleKind::Affinity, "app", &["m", "n"], &[]);
    let d = desired(&b.config, &topo).expect("valid");
    assert!(d.unplaced.is_empty(), "{:#?}", d.unplaced);
    assert_eq!(d.guests["p"].origin, Origin::Stays);
    // The group leaves a together, for the host with the most room.
    assert_eq!(
        (d.guests["m"].host.as_str(), d.guests["n"].host.as_str()),
        ("b", "b")
    );
    for member in ["m", "n"] {
        assert_eq!(
            reason(&d, member),
            "RAC cluster cl01: p stays on a; affinity rule \"app\" keeps m, n together: b moves the least memory (64 GiB); \
             runner-up c: as much to move, less free memory after (192 GiB)"
        );
    }
    let (mvs, problems) = moves(&b.config, &topo, &d);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(mvs.len(), 2);
}

#[test]
fn an_affinity_group_held_on_the_host_of_a_pinned_rac_peer_is_explained() {
    let topo = pinned_peer_of_an_affinity_member();
    // n is pinned too: the group cannot leave a, and m cannot stay there with p.
    let b = ConfigBuilder::new()
        .rule(RuleKind::Pin, "db", &["p", "n"], &[])
        .rule(RuleKind::Affinity, "app", &["m", "n"], &[]);
    let d = desired(&b.config, &topo).expect("valid");
    assert!(d.guests.values().all(|g| g.host == "a"), "{:#?}", d.guests);
    assert_eq!(d.unplaced.len(), 1, "{:#?}", d.unplaced);
    assert_eq!(d.unplaced[0].code, "no_target");
    assert_eq!(
        d.unplaced[0].message,
        "no host can take affinity group \"app\" (m, n: 64 GiB, 8 vCPUs together); the smallest conflicting set is \
         RAC cluster cl01 (2 members need 2 hosts) + affinity rule \"app\": RAC cluster cl01 rules out a (p is there); \
         affinity rule \"app\" rules out b (n stays on a), c (n stays on a)"
    );
}
