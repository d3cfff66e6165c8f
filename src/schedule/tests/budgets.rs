//! Disruption budgets: chains between members' moves, already-down members, refusals.

use crate::config::MigrationMode::{Live, Offline};
use crate::diff::fixtures::*;
use crate::inventory::GuestState;
use crate::schedule::{BudgetSpec, Limits, ScheduleError, schedule};

use super::{limits, mv, step};

/// Three members of cluster `rac` on adm01..adm03, 64 GiB each; adm04 is empty.
fn cluster() -> crate::inventory::Topology {
    let mut topo = topology(
        vec![
            host("adm01", 512, 64),
            host("adm02", 512, 64),
            host("adm03", 512, 64),
            host("adm04", 512, 64),
        ],
        vec![
            guest("vm1", "adm01", 64, 8),
            guest("vm2", "adm02", 64, 8),
            guest("vm3", "adm03", 64, 8),
        ],
    );
    add_cluster(&mut topo, "rac", &["vm1", "vm2", "vm3"]);
    topo
}

fn budgeted(topo: &crate::inventory::Topology, max: u32) -> Limits {
    let budget =
        BudgetSpec::for_cluster("rac-budget", topo, "rac", max).expect("cluster rac exists");
    Limits {
        budgets: vec![budget],
        ..limits()
    }
}

#[test]
fn a_budget_of_one_moves_members_one_after_another() {
    let topo = cluster();
    let moves = [
        mv("vm1", "adm01", "adm04", Offline),
        mv("vm2", "adm02", "adm04", Offline),
    ];
    let free = schedule(&moves, &topo, &limits()).unwrap();
    assert!(
        step(&free, "vm2:STOP_GUEST").depends_on.is_empty(),
        "without a budget both stop at once"
    );

    let s = schedule(&moves, &topo, &budgeted(&topo, 1)).unwrap();
    let (first, second) = if step(&s, "vm2:STOP_GUEST").depends_on.is_empty() {
        ("vm2", "vm1")
    } else {
        ("vm1", "vm2")
    };
    assert_eq!(
        step(&s, &format!("{second}:STOP_GUEST")).depends_on,
        vec![format!("{first}:STARTUP_GUEST")]
    );
    // The prediction keeps the budget too: the second stop starts when the first guest is up.
    let at = |id: &str| {
        s.timing
            .steps
            .iter()
            .find(|t| t.step == id)
            .map(|t| (t.start_s, t.start_s + t.duration_s))
            .unwrap()
    };
    assert!(at(&format!("{second}:STOP_GUEST")).0 >= at(&format!("{first}:STARTUP_GUEST")).1);
    assert!(s.timing.makespan_s > free.timing.makespan_s);
    assert!(s.timing.lower_bound.budget_s > 0.0);
}

#[test]
fn a_budget_of_two_lets_two_members_down_at_once_and_chains_the_third() {
    let topo = cluster();
    let moves = [
        mv("vm1", "adm01", "adm04", Offline),
        mv("vm2", "adm02", "adm04", Offline),
        mv("vm3", "adm03", "adm04", Offline),
    ];
    let s = schedule(&moves, &topo, &budgeted(&topo, 2)).unwrap();
    let waiting: Vec<&str> = ["vm1", "vm2", "vm3"]
        .into_iter()
        .filter(|g| !step(&s, &format!("{g}:STOP_GUEST")).depends_on.is_empty())
        .collect();
    assert_eq!(waiting.len(), 1, "exactly one member waits for a place");
}

#[test]
fn live_members_are_unavailable_only_while_migrating() {
    let topo = cluster();
    let moves = [
        mv("vm1", "adm01", "adm04", Live),
        mv("vm2", "adm02", "adm04", Live),
    ];
    let s = schedule(&moves, &topo, &budgeted(&topo, 1)).unwrap();
    let chained = [("vm1", "vm2"), ("vm2", "vm1")].into_iter().any(|(a, b)| {
        step(&s, &format!("{b}:MIGRATE_GUEST"))
            .depends_on
            .contains(&format!("{a}:MIGRATE_GUEST"))
    });
    assert!(chained, "one migration waits for the other");
}

#[test]
fn members_already_down_use_up_the_budget() {
    let mut topo = cluster();
    topo.guests.get_mut("vm3").unwrap().state = GuestState::ShutOff;
    let err = schedule(
        &[mv("vm1", "adm01", "adm04", Offline)],
        &topo,
        &budgeted(&topo, 1),
    )
    .unwrap_err();
    let ScheduleError::Infeasible {
        message, guests, ..
    } = err
    else {
        panic!("expected Infeasible")
    };
    assert_eq!(guests, vec!["vm1"]);
    assert!(
        message.contains("`rac-budget` allows 1") && message.contains("1 is already down (vm3)"),
        "{message}"
    );
    // A budget of 2 leaves room for one more.
    assert!(
        schedule(
            &[mv("vm1", "adm01", "adm04", Offline)],
            &topo,
            &budgeted(&topo, 2)
        )
        .is_ok()
    );
}

#[test]
fn members_that_must_be_down_together_beyond_the_budget_are_refused() {
    // adm01 and adm02 are full: vm1 and vm2 can only swap if both are stopped before either
    // starts again, which a budget of one forbids.
    let mut topo = topology(
        vec![host("adm01", 96, 64), host("adm02", 96, 64)],
        vec![guest("vm1", "adm01", 64, 8), guest("vm2", "adm02", 64, 8)],
    );
    add_cluster(&mut topo, "rac", &["vm1", "vm2"]);
    let swap = [
        mv("vm1", "adm01", "adm02", Offline),
        mv("vm2", "adm02", "adm01", Offline),
    ];
    let err = schedule(&swap, &topo, &budgeted(&topo, 1)).unwrap_err();
    let ScheduleError::Infeasible {
        message,
        hosts,
        guests,
    } = err
    else {
        panic!("expected Infeasible")
    };
    assert_eq!(guests, vec!["vm1", "vm2"]);
    assert_eq!(hosts, vec!["adm01", "adm02"]);
    assert!(
        message.contains("vm1 (adm01 → adm02), vm2 (adm02 → adm01)"),
        "{message}"
    );
    assert!(schedule(&swap, &topo, &budgeted(&topo, 2)).is_ok());
}

#[test]
fn a_budget_names_its_cluster_members() {
    let topo = cluster();
    let b = BudgetSpec::for_cluster("b", &topo, "rac", 1).unwrap();
    assert_eq!(b.members, vec!["vm1", "vm2", "vm3"]);
    assert!(BudgetSpec::for_cluster("b", &topo, "no-such-cluster", 1).is_none());
}
