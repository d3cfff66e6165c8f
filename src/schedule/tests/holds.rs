//! Holds end to end: `schedule` keeps a slot free on purpose, the plan carries the hold as an
//! edge and in `timing.holds`, and a replay of the plan's steps gives the same timeline.

use super::{limits, mv, step};
use crate::config::MigrationMode::{Live, Offline};
use crate::diff::Move;
use crate::diff::fixtures::*;
use crate::inventory::GuestState;
use crate::schedule::{Concurrency, Limits, replay, schedule};

/// CP-SAT bench instance 3: a drain of h00 through one outbound slot, four live moves (32, 64,
/// 64 and 16 GiB) and an offline one whose 5 s definition move is ready after its 90 s
/// shutdown. Optimum 215 s (shutdown, definition move, 120 s boot); every list-schedule order
/// took 220.4 s.
#[test]
fn a_drain_keeps_its_outbound_slot_for_the_offline_definition_move() {
    let mut topo = topology(
        vec![
            host("h00", 512, 192),
            host("h01", 512, 192),
            host("h08", 512, 192),
        ],
        vec![
            guest("vm00", "h00", 32, 4),
            guest("vm01", "h00", 16, 4),
            guest("vm02", "h00", 64, 4),
            guest("vm03", "h00", 64, 4),
            guest("vm04", "h00", 16, 4),
        ],
    );
    for g in topo.guests.values_mut() {
        g.state = GuestState::Running;
    }
    // The duration model reads each move's size.
    let moves = [
        ("vm00", "h08", Live),
        ("vm01", "h01", Offline),
        ("vm02", "h08", Live),
        ("vm03", "h01", Live),
        ("vm04", "h08", Live),
    ]
    .map(|(g, to, mode)| Move {
        memory_mib: topo.guests[g].memory_mib,
        vcpus: topo.guests[g].vcpus,
        ..mv(g, "h00", to, mode)
    });
    let limits = Limits {
        concurrency: Concurrency {
            parallelism: 8,
            max_inbound_per_host: 2,
            max_outbound_per_host: 1,
        },
        ..limits()
    };
    let s = schedule(&moves, &topo, &limits).expect("schedules");
    let t = &s.timing;
    assert!((t.makespan_s - 215.0).abs() < 1e-6, "{t:#?}");
    assert!(!t.holds.is_empty(), "{t:#?}");
    let start = |id: &str| {
        t.steps
            .iter()
            .find(|st| st.step == id)
            .map(|st| st.start_s)
            .unwrap()
    };
    assert_eq!(start("vm01:MIGRATE_GUEST"), 90.0);
    for hold in &t.holds {
        assert_eq!(hold.waits_for, "vm01:MIGRATE_GUEST");
        assert!(
            step(&s, &hold.step).depends_on.contains(&hold.waits_for),
            "the hold is an edge of the graph: {hold:?}"
        );
        assert!(start(&hold.step) >= 95.0, "{hold:?}");
    }
    // The plan's own graph replays to the same timeline, step for step.
    let r = replay(&s.steps, &s.moves, &t.model, t.concurrency, t.priority_seed).unwrap();
    for (i, st) in t.steps.iter().enumerate() {
        assert!((r.start_s[i] - st.start_s).abs() < 1e-3, "{}", st.step);
    }
    assert!((r.makespan_s - t.makespan_s).abs() < 1e-3);
}
