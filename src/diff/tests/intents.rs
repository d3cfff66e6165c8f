//! Intents over several guests: rebalance (and its no-thrash property), return home, and the
//! contradictions between intents.

use std::collections::BTreeMap;

use crate::config::{BalanceOn, RuleKind};
use crate::diff::fixtures::*;
use crate::diff::{Desired, History, Origin, RebalanceStop, desired, desired_with, moves};
use crate::inventory::Topology;

fn reason(d: &Desired, guest: &str) -> String {
    match &d.guests[guest].origin {
        Origin::Chosen { reason } => reason.clone(),
        other => panic!("{guest} was not placed automatically: {other:?}"),
    }
}

/// The topology after every desired move.
fn after(topo: &Topology, d: &Desired) -> Topology {
    let mut next = topo.clone();
    for (name, want) in &d.guests {
        if let Some(guest) = next.guests.get_mut(name) {
            guest.host = want.host.clone();
        }
    }
    next
}

/// a holds four 64 GiB guests (50 %), b one (12.5 %), c none.
fn skewed() -> Topology {
    topology(
        vec![host("a", 512, 96), host("b", 512, 96), host("c", 512, 96)],
        vec![
            guest("a1", "a", 64, 4),
            guest("a2", "a", 64, 4),
            guest("a3", "a", 64, 4),
            guest("a4", "a", 64, 4),
            guest("b1", "b", 64, 4),
        ],
    )
}

#[test]
fn rebalance_evens_out_memory_and_a_second_rebalance_proposes_nothing() {
    let topo = skewed();
    let b = ConfigBuilder::new().rebalance("rack", &[], |_| {});
    let d = desired(&b.config, &topo).expect("valid");
    let (mvs, problems) = moves(&b.config, &topo, &d);
    assert!(problems.is_empty(), "{problems:#?}");
    // 5 guests of 64 GiB over 3 hosts: 2/2/1 is as even as it gets, two moves away.
    let moved: Vec<(&str, &str, &str)> = mvs
        .iter()
        .map(|m| (m.guest.as_str(), m.from.as_str(), m.to.as_str()))
        .collect();
    assert_eq!(moved, [("a1", "a", "c"), ("a2", "a", "b")]);
    assert_eq!(
        mvs[0].reason,
        "rebalance \"rack\" (memory spread 50.0% → 12.5%, threshold 10.0%, 2 moves; no further move evens the hosts out): \
         a1 (64 GiB) from a (memory 50.0% → 37.5%) to c (0.0% → 12.5%), the move that evens the hosts out most; runner-up: a2 to c"
    );
    let second = desired(&b.config, &after(&topo, &d)).expect("valid");
    assert!(
        second.guests.values().all(|g| g.origin == Origin::Stays),
        "{:#?}",
        second.guests
    );
}

#[test]
fn rebalance_stops_inside_the_threshold() {
    let topo = skewed();
    let b = ConfigBuilder::new().rebalance("rack", &[], |r| r.threshold = 0.3);
    let d = desired(&b.config, &topo).expect("valid");
    let (mvs, _) = moves(&b.config, &topo, &d);
    // One move brings the spread from 50 % to 25 %, inside 30 %.
    assert_eq!(mvs.len(), 1);
    assert!(
        mvs[0].reason.starts_with(
            "rebalance \"rack\" (memory spread 50.0% → 25.0%, threshold 30.0%, 1 move):"
        ),
        "{}",
        mvs[0].reason
    );
    let second = desired(&b.config, &after(&topo, &d)).expect("valid");
    assert!(second.guests.values().all(|g| g.origin == Origin::Stays));
}

#[test]
fn rebalance_keeps_to_its_budget_and_the_next_plan_continues_without_undoing() {
    let topo = skewed();
    let b = ConfigBuilder::new().rebalance("rack", &[], |r| r.max_moves = Some(1));
    let d = desired(&b.config, &topo).expect("valid");
    let (mvs, _) = moves(&b.config, &topo, &d);
    assert_eq!(mvs.len(), 1);
    assert!(
        mvs[0]
            .reason
            .contains("1 move; stopped by the budget (max_moves = 1))"),
        "{}",
        mvs[0].reason
    );
    let next = after(&topo, &d);
    let d2 = desired(&b.config, &next).expect("valid");
    let (mvs2, _) = moves(&b.config, &next, &d2);
    assert_eq!(mvs2.len(), 1);
    assert_ne!(
        (mvs2[0].guest.as_str(), mvs2[0].to.as_str()),
        (mvs[0].guest.as_str(), mvs[0].from.as_str()),
        "moved back"
    );
    let d3 = desired(&b.config, &after(&next, &d2)).expect("valid");
    assert!(d3.guests.values().all(|g| g.origin == Origin::Stays));

    let by_memory =
        ConfigBuilder::new().rebalance("rack", &[], |r| r.max_moved_mib = Some(100 * GIB));
    let (mvs, _) = moves(
        &by_memory.config,
        &topo,
        &desired(&by_memory.config, &topo).expect("valid"),
    );
    assert_eq!(mvs.len(), 1, "a second 64 GiB move would pass 100 GiB");
}

#[test]
fn a_rebalance_stopped_by_its_budget_says_so_and_how_far_it_remains_above_the_threshold() {
    let topo = skewed();
    let b = ConfigBuilder::new().rebalance("rack", &[], |r| r.max_moves = Some(1));
    let d = desired(&b.config, &topo).expect("valid");
    let [outcome] = d.rebalances.as_slice() else {
        panic!("{:#?}", d.rebalances)
    };
    assert_eq!(outcome.stop, RebalanceStop::Budget);
    assert_eq!(outcome.budget, ["max_moves = 1"]);
    assert_eq!(outcome.moves, 1);
    // a 37.5 %, b and c 12.5 %: the spread is 25 %, 15 points above the 10 % threshold.
    assert!(
        (outcome.spreads[0].after - 0.25).abs() < 1e-9,
        "{outcome:#?}"
    );
    assert!(
        (outcome.above_threshold - 0.15).abs() < 1e-9,
        "{outcome:#?}"
    );
    assert_eq!(
        outcome.message,
        "rebalance \"rack\" stopped at its budget (max_moves = 1) after 1 move: memory spread 50.0% → 25.0%, \
         still 15.0 points above the threshold of 10.0%; the next plan continues it"
    );

    // A budget too small for any qualifying move stops the rebalance before its first move:
    // the plan has no move, and still says the rebalance is not done.
    let tiny = ConfigBuilder::new().rebalance("rack", &[], |r| r.max_moved_mib = Some(GIB));
    let d = desired(&tiny.config, &topo).expect("valid");
    assert!(d.guests.values().all(|g| g.origin == Origin::Stays));
    assert_eq!(d.rebalances[0].stop, RebalanceStop::Budget);
    assert_eq!(
        d.rebalances[0].message,
        "rebalance \"rack\" stopped at its budget (max_moved = 1 GiB) after 0 moves: memory spread 50.0%, \
         still 40.0 points above the threshold of 10.0%; the next plan continues it"
    );
}

#[test]
fn a_completed_rebalance_says_it_is_done_and_proposes_nothing_next_time() {
    let topo = skewed();
    for (threshold, stop) in [
        (0.3, RebalanceStop::WithinThreshold),
        (0.1, RebalanceStop::NoGain),
    ] {
        let b = ConfigBuilder::new().rebalance("rack", &[], |r| r.threshold = threshold);
        let d = desired(&b.config, &topo).expect("valid");
        assert_eq!(d.rebalances[0].stop, stop, "{:#?}", d.rebalances);
        assert!(
            d.rebalances[0]
                .message
                .starts_with("rebalance \"rack\" completes with "),
            "{}",
            d.rebalances[0].message
        );
        // The next plan, on the result: no move, and the same verdict.
        let next = desired(&b.config, &after(&topo, &d)).expect("valid");
        assert!(next.guests.values().all(|g| g.origin == Origin::Stays));
        assert_eq!(next.rebalances[0].stop, stop);
        assert_eq!(next.rebalances[0].moves, 0);
        assert!(
            next.rebalances[0]
                .message
                .starts_with("rebalance \"rack\" has nothing to do: "),
            "{}",
            next.rebalances[0].message
        );
    }
    let b = ConfigBuilder::new().rebalance("rack", &[], |r| r.threshold = 0.3);
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(
        d.rebalances[0].message,
        "rebalance \"rack\" completes with 1 move: memory spread 50.0% → 25.0%, within the threshold of 30.0%"
    );
    let b = ConfigBuilder::new().rebalance("rack", &[], |_| {});
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(
        d.rebalances[0].message,
        "rebalance \"rack\" completes with 2 moves: memory spread 50.0% → 12.5%, 2.5 points above the threshold of 10.0%, \
         but no further move evens the hosts out (the next plan proposes nothing more)"
    );
}

#[test]
fn rebalance_respects_rules_pins_and_its_host_set() {
    let topo = skewed();
    // a1..a3 pinned, a4 banned from c: a4 goes to b, and b's own guest makes room on c.
    let b = ConfigBuilder::new()
        .rule(RuleKind::Pin, "db", &["a1", "a2", "a3"], &[])
        .rule(RuleKind::Ban, "no-c", &["a4"], &["c"])
        .rebalance("rack", &[], |_| {});
    let d = desired(&b.config, &topo).expect("valid");
    let (mvs, _) = moves(&b.config, &topo, &d);
    let moved: Vec<(&str, &str)> = mvs
        .iter()
        .map(|m| (m.guest.as_str(), m.to.as_str()))
        .collect();
    assert_eq!(moved, [("a4", "b"), ("b1", "c")]);
    // A rebalance of a and b only never uses c.
    let b = ConfigBuilder::new().rebalance("ab", &["a", "b"], |_| {});
    let d = desired(&b.config, &topo).expect("valid");
    assert!(d.guests.values().all(|g| g.host != "c"));
    assert_eq!(
        d.guests.values().filter(|g| g.host == "b").count(),
        2,
        "a: 3 guests, b: 2"
    );
}

#[test]
fn rebalance_on_vcpus_balances_vcpus() {
    let topo = topology(
        vec![host("a", 512, 16), host("b", 512, 16)],
        vec![
            guest("big", "a", 8, 8),
            guest("small1", "a", 8, 4),
            guest("small2", "b", 200, 1),
        ],
    );
    let b = ConfigBuilder::new().rebalance("cpu", &[], |r| r.on = BalanceOn::Vcpus);
    let d = desired(&b.config, &topo).expect("valid");
    // a runs 12 of 16 vCPUs, b 1: moving small1 gives 8/5, moving big gives 4/9 — both even out;
    // small1 is the better one (spread 18.8 % against 31.2 %).
    assert_eq!(d.guests["small1"].host, "b");
    assert_eq!(d.guests["big"].host, "a");
    assert!(
        reason(&d, "small1").starts_with("rebalance \"cpu\" (vCPU spread 68.8% → 18.8%"),
        "{}",
        reason(&d, "small1")
    );
}

#[test]
fn two_rebalances_may_not_share_a_host() {
    let b = ConfigBuilder::new()
        .rebalance("one", &["a", "b"], |_| {})
        .rebalance("two", &["b", "c"], |_| {});
    let errs = desired(&b.config, &skewed()).expect_err("overlap");
    assert_eq!(
        errs[0].message,
        "rebalance \"two\" and rebalance \"one\" both include host b: each would undo the other's moves"
    );
    assert_eq!(
        errs[0].span.as_ref(),
        b.config.rebalances[1].hosts.as_ref().map(|h| &h[0].span)
    );
}

#[test]
fn a_drained_guest_may_be_rebalanced_in_the_same_plan() {
    let topo = topology(
        vec![host("d", 512, 96), host("a", 512, 96), host("b", 512, 96)],
        vec![guest("d1", "d", 64, 4), guest("a1", "a", 256, 4)],
    );
    let b = ConfigBuilder::new()
        .drain("d")
        .rebalance("ab", &["a", "b"], |_| {});
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["d1"].host, "b");
    let second = desired(&b.config, &after(&topo, &d)).expect("valid");
    assert!(second.guests.values().all(|g| g.origin == Origin::Stays));
}

fn history(pairs: &[(&str, &[&str])]) -> History {
    History {
        departed: pairs
            .iter()
            .map(|(g, hosts)| (g.to_string(), hosts.iter().map(|h| h.to_string()).collect()))
            .collect::<BTreeMap<_, _>>(),
        ..History::default()
    }
}

#[test]
fn return_home_brings_guests_back_to_their_oldest_home() {
    // x left a, then b; it is on c now.
    let topo = topology(
        vec![host("a", 512, 96), host("b", 512, 96), host("c", 512, 96)],
        vec![guest("x", "c", 64, 4), guest("y", "c", 64, 4)],
    );
    let b = ConfigBuilder::new()
        .host("a", |h| h.return_home = true)
        .host("b", |h| h.return_home = true);
    let d = desired_with(
        &b.config,
        &topo,
        &history(&[("x", &["a", "b"]), ("y", &["b"])]),
    )
    .expect("valid");
    assert_eq!(d.guests["x"].host, "a");
    assert_eq!(d.guests["y"].host, "b");
    assert_eq!(
        reason(&d, "x"),
        "return home: berth moved x off a earlier (state journal), and a has return_home = true"
    );
    // Without history (no state), nothing comes back.
    assert!(
        desired(&b.config, &topo)
            .expect("valid")
            .guests
            .values()
            .all(|g| g.origin == Origin::Stays)
    );
}

#[test]
fn return_home_that_does_not_fit_is_explained_and_the_guest_stays() {
    let topo = topology(
        vec![host("a", 64, 96), host("c", 512, 96)],
        vec![guest("x", "c", 64, 4), guest("filler", "a", 32, 4)],
    );
    let b = ConfigBuilder::new().host("a", |h| h.return_home = true);
    let d = desired_with(&b.config, &topo, &history(&[("x", &["a"])])).expect("valid");
    assert_eq!(d.guests["x"].host, "c");
    assert_eq!(d.unplaced.len(), 1);
    assert_eq!(
        (d.unplaced[0].code.as_str(), d.unplaced[0].to.as_str()),
        ("return_home", "a")
    );
    assert_eq!(
        d.unplaced[0].message,
        "cannot bring x back to a: only 32 GiB free, 64 GiB needed"
    );
}

#[test]
fn return_home_and_drain_on_one_host_contradict() {
    let b = ConfigBuilder::new().host("a", |h| {
        h.return_home = true;
        h.drain = true;
    });
    let errs = desired(&b.config, &skewed()).expect_err("contradiction");
    assert_eq!(
        errs[0].message,
        "host a has both `return_home` and `drain`: guests cannot come back to a host being emptied"
    );
}

/// A rebalance over a large fleet: 2,000 hosts, 20,000 guests, the first 200 hosts twice as
/// full as the rest. Ignored by default (it builds a large topology); run with
/// `cargo test --release --lib diff::tests::intents::large -- --ignored --nocapture`.
#[test]
#[ignore = "large; run explicitly in release mode"]
fn large_rebalance_stays_fast() {
    let hosts = (0..2_000)
        .map(|i| host(&format!("h{i:05}"), 1024, 96))
        .collect();
    let guests = (0..20_000)
        .map(|i| {
            let h = if i < 4_000 {
                i / 20
            } else {
                200 + (i - 4_000) % 1_800
            };
            guest(&format!("g{i:06}"), &format!("h{h:05}"), 32, 4)
        })
        .collect();
    let topo = topology(hosts, guests);
    let b = ConfigBuilder::new().rebalance("all", &[], |r| r.max_moves = Some(500));
    let started = std::time::Instant::now();
    let d = desired(&b.config, &topo).expect("valid");
    let (mvs, _) = moves(&b.config, &topo, &d);
    eprintln!("{} moves in {:?}", mvs.len(), started.elapsed());
    assert_eq!(mvs.len(), 500);
}

#[test]
fn end_of_maintenance_starts_what_was_stopped_in_place_and_brings_back_what_moved() {
    // For a's maintenance, berth moved m to b and stopped s in place on a (state journal).
    let mut topo = topology(
        vec![host("a", 512, 96), host("b", 512, 96)],
        vec![
            guest("m", "b", 64, 4),
            guest("s", "a", 64, 4),
            guest("off", "a", 64, 4),
        ],
    );
    for name in ["s", "off"] {
        topo.guests.get_mut(name).expect("exists").state = crate::inventory::GuestState::ShutOff;
    }
    let mut history = history(&[("m", &["a"])]);
    history.stopped_in_place.insert("s".into(), "a".into());
    let ending = ConfigBuilder::new().host("a", |h| h.maintenance = Some(false));
    let d = desired_with(&ending.config, &topo, &history).expect("valid");
    assert_eq!(d.guests["m"].host, "a", "moved off a: comes back");
    assert!(
        matches!(&d.guests["s"].origin, Origin::StartInPlace { reason } if reason.contains("stopped s in place")),
        "{:?}",
        d.guests["s"]
    );
    // A guest that was off before (not stopped by berth) stays off.
    assert_eq!(d.guests["off"].origin, Origin::Stays);
    let (mvs, problems) = moves(&ending.config, &topo, &d);
    assert!(problems.is_empty(), "{problems:#?}");
    let kinds: Vec<(&str, crate::diff::MoveKind)> =
        mvs.iter().map(|m| (m.guest.as_str(), m.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("m", crate::diff::MoveKind::Migrate),
            ("s", crate::diff::MoveKind::StartInPlace)
        ]
    );
    // Without the end of maintenance nothing happens to either.
    let d = desired_with(&ConfigBuilder::new().config, &topo, &history).expect("valid");
    assert!(d.guests.values().all(|g| g.origin == Origin::Stays));
}

#[test]
fn maintenance_moves_what_fits_and_stops_in_place_what_does_not() {
    // a in maintenance; b has room for one guest only (m), the big one (x) fits nowhere.
    let topo = topology(
        vec![host("a", 512, 96), host("b", 128, 96)],
        vec![guest("m", "a", 64, 4), guest("x", "a", 256, 4)],
    );
    let b = ConfigBuilder::new().host("a", |h| h.maintenance = Some(true));
    let d = desired(&b.config, &topo).expect("valid");
    assert_eq!(d.guests["m"].host, "b");
    assert!(d.unplaced.is_empty(), "{:#?}", d.unplaced);
    assert!(
        matches!(&d.guests["x"].origin, Origin::StopInPlace { reason } if reason.starts_with("maintenance a, stopped in place: ")),
        "{:?}",
        d.guests["x"]
    );
    // The same as a drain fails with no_target instead.
    let drained = desired(&ConfigBuilder::new().drain("a").config, &topo).expect("valid");
    assert_eq!(drained.unplaced.len(), 1);
    assert_eq!(drained.unplaced[0].code, "no_target");
}
