//! The scheduler's capacity invariant, checked exhaustively on small random plans.
//!
//! For each schedule, every execution the step graph allows is examined: each step is a start
//! event and an end event (`start < end`; a dependency's end before the dependant's start), and
//! steps that are not ordered may interleave or overlap arbitrarily. Host usage depends only on
//! the claim and release events (derived here, independently of the scheduler, from the moves'
//! modes and the guests' states), so the check walks every linearization of those events that
//! is consistent with the order the graph induces on them (reachability through all steps),
//! memoising visited states. The states visited are exactly the prefixes of every linearization
//! of the whole event graph, so no execution is missed, and in each the usage of every host
//! must stay within `max(limit, usage at the start)`.
//!
//! Disruption budgets are walked the same way: a member's move makes it unavailable from the
//! start of its STOP_GUEST (live: MIGRATE_GUEST; offline_force from a dead host: its first
//! step) to the end of its STARTUP_GUEST (live: MIGRATE_GUEST), and in every execution the
//! members unavailable, plus those already down, stay within the budget. The predicted timing
//! must respect dependencies, the concurrency limits and the budgets, and never beat its lower
//! bound; nor may a replay of the plan.

use std::collections::{HashMap, HashSet};

#[path = "../benches/support/builders.rs"]
mod builders;

use berth::config::MigrationMode;
use berth::diff::Move;
use berth::inventory::{GuestState, Host, Topology};
use berth::schedule::{
    BudgetSpec, Concurrency, Limits, Schedule, ScheduleError, StepKind, replay, schedule,
};
use builders::{GIB, Rng, guest, host, mv, topology};

/// (memory MiB, vCPUs) as signed numbers.
type Usage = (i64, i64);

/// One capacity-relevant event: `sign` = +1 for a claim on `host`, −1 for a release.
#[derive(Debug, Clone)]
struct Event {
    host: String,
    usage: Usage,
    sign: i64,
    /// Index into the event graph: 2 × step (start) or 2 × step + 1 (end).
    at: usize,
}

/// Claims and releases as the model defines them, from the schedule's moves and steps.
fn capacity_events(s: &Schedule, topo: &Topology) -> Vec<Event> {
    let index: HashMap<(usize, StepKind), usize> = s
        .steps
        .iter()
        .enumerate()
        .map(|(i, st)| ((st.move_index, st.kind), i))
        .collect();
    let mut events = Vec::new();
    for (m, mv) in s.moves.iter().enumerate() {
        let g = &topo.guests[&mv.guest];
        if !g.state.holds_resources() {
            continue;
        }
        let usage = (g.memory_mib as i64, i64::from(g.vcpus));
        let step = |kind| {
            *index
                .get(&(m, kind))
                .unwrap_or_else(|| panic!("{} lacks {kind} in move {m}", mv.guest))
        };
        let (claim, release) = match mv.mode {
            MigrationMode::Live => (
                2 * step(StepKind::MigrateGuest),
                Some(2 * step(StepKind::MigrateGuest) + 1),
            ),
            MigrationMode::Offline | MigrationMode::OfflineForce => {
                let source_alive = topo.hosts[&mv.from].reachable;
                let release = (mv.mode == MigrationMode::Offline || source_alive)
                    .then(|| 2 * step(StepKind::StopGuest) + 1);
                (2 * step(StepKind::StartupGuest), release)
            }
        };
        events.push(Event {
            host: mv.to.clone(),
            usage,
            sign: 1,
            at: claim,
        });
        if let Some(at) = release {
            events.push(Event {
                host: mv.from.clone(),
                usage,
                sign: -1,
                at,
            });
        }
    }
    events
}

/// `before[i]` = bitmask of the events that must happen before event `i`.
fn precedence(s: &Schedule, events: &[Event]) -> Vec<u64> {
    let id_index: HashMap<&str, usize> = s
        .steps
        .iter()
        .enumerate()
        .map(|(i, st)| (st.id.as_str(), i))
        .collect();
    // Event graph successors: start(s) → end(s); end(d) → start(s) for each dependency d of s.
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); 2 * s.steps.len()];
    for (i, st) in s.steps.iter().enumerate() {
        next[2 * i].push(2 * i + 1);
        for dep in &st.depends_on {
            let d = *id_index
                .get(dep.as_str())
                .unwrap_or_else(|| panic!("{} depends on unknown {dep}", st.id));
            next[2 * d + 1].push(2 * i);
        }
    }
    let mut before = vec![0u64; events.len()];
    for (a, ea) in events.iter().enumerate() {
        let mut seen = vec![false; next.len()];
        let mut stack = vec![ea.at];
        while let Some(e) = stack.pop() {
            for &n in &next[e] {
                if !seen[n] {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
        for (b, eb) in events.iter().enumerate() {
            if seen[eb.at] {
                assert_ne!(a, b, "event graph has a cycle");
                before[b] |= 1 << a;
            }
        }
    }
    before
}

/// Walks every linearization of the capacity events; returns the highest usage seen per host.
/// Panics when a host goes over `max(limit, start)`.
fn check_every_order(s: &Schedule, topo: &Topology, limits: &Limits) -> HashMap<String, Usage> {
    let events = capacity_events(s, topo);
    let mut start: HashMap<String, Usage> =
        topo.hosts.keys().map(|h| (h.clone(), (0, 0))).collect();
    for g in topo.guests.values() {
        let u = start.get_mut(&g.host).expect("guest on a known host");
        u.0 += g.memory_held_mib() as i64;
        u.1 += i64::from(g.vcpus_held());
    }
    let bound: HashMap<String, Usage> = topo
        .hosts
        .values()
        .map(|h| {
            let l = limits.of(h);
            let now = start[&h.name];
            (
                h.name.clone(),
                (
                    (l.memory_mib as i64).max(now.0),
                    i64::from(l.vcpus).max(now.1),
                ),
            )
        })
        .collect();
    walk_every_order(s, &events, start, &bound)
}

/// Walks every linearization of `events` (keyed by resource: a host, or a budget); returns the
/// highest usage seen per resource. Panics when one goes over its bound.
fn walk_every_order(
    s: &Schedule,
    events: &[Event],
    start: HashMap<String, Usage>,
    bound: &HashMap<String, Usage>,
) -> HashMap<String, Usage> {
    assert!(
        events.len() <= 24,
        "case too big for the exhaustive walk: {} events",
        events.len()
    );
    let before = precedence(s, events);
    let mut highest = start.clone();
    let mut visited: HashSet<u64> = HashSet::new();
    let mut stack = vec![0u64];
    while let Some(done) = stack.pop() {
        if !visited.insert(done) {
            continue;
        }
        let mut usage = start.clone();
        for (i, e) in events.iter().enumerate() {
            if done & (1 << i) != 0 {
                let u = usage.get_mut(&e.host).expect("known host");
                u.0 += e.sign * e.usage.0;
                u.1 += e.sign * e.usage.1;
            }
        }
        for (h, u) in &usage {
            let b = bound[h];
            assert!(
                u.0 <= b.0 && u.1 <= b.1,
                "{h} reaches {u:?} > {b:?} after events {done:#b} of {events:#?}\n{s:#?}"
            );
            let top = highest.get_mut(h).expect("known host");
            *top = (top.0.max(u.0), top.1.max(u.1));
        }
        for (i, required) in before.iter().enumerate() {
            if done & (1 << i) == 0 && required & !done == 0 {
                stack.push(done | (1 << i));
            }
        }
    }
    highest
}

/// Structure every schedule must have, whatever the capacities.
fn check_structure(s: &Schedule, input: &[Move]) {
    let ids: HashSet<&str> = s.steps.iter().map(|st| st.id.as_str()).collect();
    assert_eq!(ids.len(), s.steps.len(), "step ids are unique");
    let wave_of: HashMap<&str, usize> = s
        .waves
        .iter()
        .enumerate()
        .flat_map(|(n, w)| w.iter().map(move |id| (id.as_str(), n)))
        .collect();
    assert_eq!(
        wave_of.len(),
        s.steps.len(),
        "every step is in exactly one wave"
    );
    for st in &s.steps {
        for dep in &st.depends_on {
            assert!(
                wave_of[dep.as_str()] < wave_of[st.id.as_str()],
                "{dep} must come before {}",
                st.id
            );
        }
    }
    // Each input move is still there, possibly preceded by one pivot hop of the same guest.
    let mut journeys: HashMap<&str, Vec<&Move>> = HashMap::new();
    for m in &s.moves {
        journeys.entry(m.guest.as_str()).or_default().push(m);
    }
    for m in input {
        let hops = &journeys[m.guest.as_str()];
        assert_eq!(hops.first().map(|h| h.from.as_str()), Some(m.from.as_str()));
        assert_eq!(hops.last().map(|h| h.to.as_str()), Some(m.to.as_str()));
        for pair in hops.windows(2) {
            assert!(
                pair[0].pivot && pair[0].mode == MigrationMode::Live,
                "only live pivot hops are added"
            );
            assert_eq!(pair[0].to, pair[1].from);
        }
    }
}

fn check(s: &Schedule, input: &[Move], topo: &Topology, limits: &Limits) {
    check_structure(s, input);
    let highest = check_every_order(s, topo, limits);
    for (h, top) in highest {
        let (memory, vcpus) = s.peaks[&h];
        assert!(
            top.0 <= memory as i64 && top.1 <= i64::from(vcpus),
            "{h}: reached {top:?}, reported peak {:?}",
            s.peaks[&h]
        );
    }
    check_budgets_in_every_order(s, topo, &limits.budgets);
    check_timing(s, topo, limits);
}

/// Members already down (they hold nothing) count against a budget for the whole plan.
fn down(topo: &Topology, budget: &BudgetSpec) -> i64 {
    budget
        .members
        .iter()
        .filter(|m| {
            topo.guests
                .get(*m)
                .is_some_and(|g| !g.state.holds_resources())
        })
        .count() as i64
}

/// Each budgeted member's move as (unavailable from, unavailable until) step indices, by the
/// model in the module docs, with the budget it counts against.
fn unavailability(
    s: &Schedule,
    topo: &Topology,
    budgets: &[BudgetSpec],
) -> Vec<(usize, usize, usize)> {
    let index: HashMap<(usize, StepKind), usize> = s
        .steps
        .iter()
        .enumerate()
        .map(|(i, st)| ((st.move_index, st.kind), i))
        .collect();
    let mut spans = Vec::new();
    for (m, mv) in s.moves.iter().enumerate() {
        if !topo.guests[&mv.guest].state.holds_resources() {
            continue;
        }
        let first = s
            .steps
            .iter()
            .position(|st| st.move_index == m)
            .expect("a move has steps");
        let (from, until) = match mv.mode {
            MigrationMode::Live => (
                index[&(m, StepKind::MigrateGuest)],
                index[&(m, StepKind::MigrateGuest)],
            ),
            _ => (
                index
                    .get(&(m, StepKind::StopGuest))
                    .copied()
                    .unwrap_or(first),
                index[&(m, StepKind::StartupGuest)],
            ),
        };
        for (b, budget) in budgets.iter().enumerate() {
            if budget.members.contains(&mv.guest) {
                spans.push((from, until, b));
            }
        }
    }
    spans
}

/// A member becoming unavailable (+1 on its budget) and available again (−1).
fn budget_events(s: &Schedule, topo: &Topology, budgets: &[BudgetSpec]) -> Vec<Event> {
    let mut events = Vec::new();
    for (from, until, b) in unavailability(s, topo, budgets) {
        events.push(Event {
            host: key_of(&budgets[b]),
            usage: (1, 0),
            sign: 1,
            at: 2 * from,
        });
        events.push(Event {
            host: key_of(&budgets[b]),
            usage: (1, 0),
            sign: -1,
            at: 2 * until + 1,
        });
    }
    events
}

fn key_of(b: &BudgetSpec) -> String {
    format!("budget {}", b.name)
}

fn check_budgets_in_every_order(s: &Schedule, topo: &Topology, budgets: &[BudgetSpec]) {
    let start: HashMap<String, Usage> = budgets
        .iter()
        .map(|b| (key_of(b), (down(topo, b), 0)))
        .collect();
    let bound: HashMap<String, Usage> = budgets
        .iter()
        .map(|b| {
            (
                key_of(b),
                (i64::from(b.max_unavailable).max(down(topo, b)), 0),
            )
        })
        .collect();
    walk_every_order(s, &budget_events(s, topo, budgets), start, &bound);
}

/// The prediction is a schedule: dependencies, limits and budgets hold at every instant, and
/// no lower bound is beaten; a replay of the plan's steps agrees.
fn check_timing(s: &Schedule, topo: &Topology, limits: &Limits) {
    const EPS: f64 = 1e-6;
    let t = &s.timing;
    assert_eq!(t.steps.len(), s.steps.len());
    let at: HashMap<&str, (f64, f64)> = t
        .steps
        .iter()
        .map(|x| (x.step.as_str(), (x.start_s, x.start_s + x.duration_s)))
        .collect();
    for st in &s.steps {
        let (start, _) = at[st.id.as_str()];
        for dep in &st.depends_on {
            assert!(
                at[dep.as_str()].1 <= start + EPS,
                "{} starts at {start} before {dep} ends at {}",
                st.id,
                at[dep.as_str()].1
            );
        }
    }
    let finish = t
        .steps
        .iter()
        .map(|x| x.start_s + x.duration_s)
        .fold(0.0, f64::max);
    assert!(
        (finish - t.makespan_s).abs() < 1e-2,
        "makespan {} but the last step ends at {finish}",
        t.makespan_s
    );
    assert!(
        t.makespan_s + EPS >= t.lower_bound.overall_s,
        "makespan {} beats its lower bound {:?}",
        t.makespan_s,
        t.lower_bound
    );
    let c = limits.concurrency;
    let spans = unavailability(s, topo, &limits.budgets);
    for probe in t.steps.iter().map(|x| x.start_s) {
        let running: Vec<&berth::schedule::Step> = s
            .steps
            .iter()
            .filter(|st| {
                let (a, b) = at[st.id.as_str()];
                a <= probe + EPS && probe + EPS < b
            })
            .collect();
        assert!(
            running.len() <= c.parallelism as usize,
            "{} steps at {probe}s, limit {}",
            running.len(),
            c.parallelism
        );
        let migrations = running
            .iter()
            .filter(|st| st.kind == StepKind::MigrateGuest);
        let mut out: HashMap<&str, u32> = HashMap::new();
        let mut inn: HashMap<&str, u32> = HashMap::new();
        for st in migrations {
            *out.entry(st.from.as_str()).or_default() += 1;
            *inn.entry(st.to.as_str()).or_default() += 1;
        }
        assert!(
            out.values().all(|&n| n <= c.max_outbound_per_host),
            "outbound {out:?} at {probe}s"
        );
        assert!(
            inn.values().all(|&n| n <= c.max_inbound_per_host),
            "inbound {inn:?} at {probe}s"
        );
        for (b, budget) in limits.budgets.iter().enumerate() {
            let open = spans
                .iter()
                .filter(|(from, until, bb)| {
                    *bb == b
                        && at[s.steps[*from].id.as_str()].0 <= probe + EPS
                        && probe + EPS < at[s.steps[*until].id.as_str()].1
                })
                .count() as i64;
            assert!(
                open + down(topo, budget)
                    <= i64::from(budget.max_unavailable).max(down(topo, budget)),
                "budget {} has {open} open at {probe}s",
                budget.name
            );
        }
    }
    let replayed = replay(&s.steps, &s.moves, &t.model, t.concurrency, t.priority_seed)
        .expect("the plan replays");
    // Replayed in the order the plan records, the steps keep the predicted makespan. (With a
    // disruption budget the replay keeps the budget through the chain edges the plan carries,
    // not through the budget's places, and may end elsewhere.)
    if limits.budgets.is_empty() {
        assert!(
            (replayed.makespan_s - t.makespan_s).abs() < 1e-2,
            "replay {} against predicted {} (priority order {})",
            replayed.makespan_s,
            t.makespan_s,
            t.priority_seed
        );
    }
    assert!(
        replayed.makespan_s + EPS >= replayed.lower_bound.overall_s,
        "replay {} beats {:?}",
        replayed.makespan_s,
        replayed.lower_bound
    );
}

/// 2–4 hosts, 2–6 guests, random states, sizes, desired hosts and modes; `extra` draws the
/// concurrency limits and budgets (a stream of its own, so the placement cases stay the same).
fn random_case(rng: &mut Rng, extra: &mut Rng) -> (Topology, Vec<Move>, Limits) {
    let host_count = 2 + rng.below(3) as usize;
    let mut hosts: Vec<Host> = (0..host_count)
        .map(|i| {
            host(
                &format!("h{i}"),
                rng.pick(&[128, 256, 384, 512]),
                rng.pick(&[8, 16, 32]),
            )
        })
        .collect();
    if rng.below(6) == 0 {
        hosts[0].reachable = false;
    }
    let guest_count = 2 + rng.below(5) as usize;
    let mut guests = Vec::new();
    let mut moves = Vec::new();
    for i in 0..guest_count {
        let name = format!("g{i}");
        let on = &hosts[rng.below(host_count as u64) as usize];
        let state = if !on.reachable {
            GuestState::Unknown
        } else {
            rng.pick(&[
                GuestState::Running,
                GuestState::Running,
                GuestState::Paused,
                GuestState::ShutOff,
            ])
        };
        guests.push(guest(
            &name,
            &on.name,
            rng.pick(&[32, 64, 96, 128]),
            rng.pick(&[2, 4, 8]),
            state,
        ));
        // Now and then swap with the previous guest, the shape that makes live moves wait on
        // each other; otherwise any host.
        let previous = guests.len().checked_sub(2).map(|p| guests[p].host.clone());
        let swap = previous
            .as_ref()
            .filter(|p| **p != on.name && rng.below(3) == 0);
        let to = match swap {
            Some(p) => hosts.iter().find(|h| h.name == *p).expect("known host"),
            None => &hosts[rng.below(host_count as u64) as usize],
        };
        if to.name == on.name || !to.reachable {
            continue;
        }
        if swap.is_some()
            && on.reachable
            && state.holds_resources()
            && guests[guests.len() - 2].state.holds_resources()
        {
            let back = guests[guests.len() - 2].name.clone();
            moves.retain(|m: &Move| m.guest != back);
            moves.push(mv(&back, &to.name, &on.name, MigrationMode::Live));
            moves.push(mv(&name, &on.name, &to.name, MigrationMode::Live));
            continue;
        }
        let mode = if !on.reachable {
            MigrationMode::OfflineForce
        } else if !state.holds_resources() {
            MigrationMode::Offline
        } else {
            rng.pick(&[
                MigrationMode::Offline,
                MigrationMode::Live,
                MigrationMode::Live,
                MigrationMode::OfflineForce,
            ])
        };
        moves.push(mv(&name, &on.name, &to.name, mode));
    }
    let allow_pivot = rng.below(4) != 0;
    let concurrency = Concurrency {
        parallelism: 1 + extra.below(4) as u32,
        max_inbound_per_host: 1 + extra.below(2) as u32,
        max_outbound_per_host: 1 + extra.below(2) as u32,
    };
    // Half the cases put some guests under a disruption budget of 1 or 2.
    let mut budgets = Vec::new();
    if extra.below(2) == 0 {
        let members: Vec<String> = guests
            .iter()
            .filter(|_| extra.below(3) != 0)
            .map(|g| g.name.clone())
            .collect();
        if members.len() >= 2 {
            budgets.push(BudgetSpec {
                name: "rac".into(),
                members,
                max_unavailable: 1 + extra.below(2) as u32,
            });
        }
    }
    let limits = Limits {
        allow_pivot,
        budgets,
        concurrency,
        ..Limits::default()
    };
    (topology(hosts, guests), moves, limits)
}

#[test]
fn no_execution_order_ever_overcommits_a_host() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut extra = Rng(0x0b0d_9e75_a11c_e5e1);
    let (mut scheduled, mut infeasible, mut pivoted, mut budgeted) = (0, 0, 0, 0);
    // Schedules whose best priority order was not the plain one (see `timeline::best_of`).
    let mut reordered = 0;
    // Schedules that keep a slot free on purpose (`timing.holds`, see `schedule::holds`).
    let mut held = 0;
    for case in 0..2000 {
        let (topo, moves, limits) = random_case(&mut rng, &mut extra);
        match schedule(&moves, &topo, &limits) {
            Ok(s) => {
                check(&s, &moves, &topo, &limits);
                scheduled += 1;
                reordered += usize::from(s.timing.priority_seed != 0);
                held += usize::from(!s.timing.holds.is_empty());
                pivoted += usize::from(s.moves.iter().any(|m| m.pivot));
                // A budget that had to serialise: more budgeted moves than places.
                budgeted += usize::from(limits.budgets.iter().any(|b| {
                    let moving = unavailability(&s, &topo, std::slice::from_ref(b)).len() as i64;
                    moving + down(&topo, b) > i64::from(b.max_unavailable)
                }));
            }
            Err(ScheduleError::Infeasible {
                message,
                hosts,
                guests,
            }) => {
                assert!(
                    !hosts.is_empty() && !guests.is_empty(),
                    "case {case}: {message}"
                );
                for h in &hosts {
                    assert!(
                        message.contains(h.as_str()),
                        "case {case}: {message} does not name {h}"
                    );
                }
                infeasible += 1;
            }
            Err(other) => panic!("case {case}: {other}"),
        }
    }
    eprintln!(
        "scheduled {scheduled}, infeasible {infeasible}, pivoted {pivoted}, budget-bound {budgeted}, reordered {reordered}, held {held}"
    );
    assert!(
        reordered >= 2,
        "only {reordered} cases took another priority order"
    );
    // Holds are edges of the graph: every check above (all execution orders, the prediction
    // against dependencies and limits, the replay) covers them, where there are some.
    assert!(held >= 2, "only {held} cases kept a slot free on purpose");
    // The generator must exercise both outcomes, and pivots, for the check to mean something.
    assert!(
        scheduled >= 1000,
        "only {scheduled} of 2000 cases scheduled"
    );
    assert!(infeasible >= 50, "only {infeasible} infeasible cases");
    assert!(pivoted >= 20, "only {pivoted} cases used a pivot");
    assert!(
        budgeted >= 100,
        "only {budgeted} cases had a budget to keep"
    );
}

/// Two hosts of 256 GiB each running a 192 GiB guest; a third host of `third` GiB if any.
fn full_pair(third: Option<u64>) -> Topology {
    let mut hosts = vec![host("exa01adm01", 256, 64), host("exa01adm02", 256, 64)];
    hosts.extend(third.map(|gib| host("exa01adm03", gib, 64)));
    topology(
        hosts,
        vec![
            guest("vm01", "exa01adm01", 192, 8, GuestState::Running),
            guest("vm02", "exa01adm02", 192, 8, GuestState::Running),
        ],
    )
}

fn swap(mode: MigrationMode) -> Vec<Move> {
    vec![
        mv("vm01", "exa01adm01", "exa01adm02", mode),
        mv("vm02", "exa01adm02", "exa01adm01", mode),
    ]
}

fn pivots_allowed() -> Limits {
    Limits {
        allow_pivot: true,
        ..Limits::default()
    }
}

#[test]
fn offline_swap_stops_both_guests_before_starting_either() {
    let topo = full_pair(None);
    let s = schedule(&swap(MigrationMode::Offline), &topo, &pivots_allowed())
        .expect("an offline swap needs no pivot");
    assert!(s.moves.iter().all(|m| !m.pivot));
    check(&s, &swap(MigrationMode::Offline), &topo, &pivots_allowed());
    let events = capacity_events(&s, &topo);
    let before = precedence(&s, &events);
    for (i, claim) in events.iter().enumerate().filter(|(_, e)| e.sign > 0) {
        for (j, _) in events.iter().enumerate().filter(|(_, e)| e.sign < 0) {
            assert!(
                before[i] & (1 << j) != 0,
                "a STARTUP_GUEST on {} may start before both STOP_GUEST ended",
                claim.host
            );
        }
    }
}

#[test]
fn live_swap_goes_through_a_pivot_host_with_room() {
    let topo = full_pair(Some(512));
    let s = schedule(&swap(MigrationMode::Live), &topo, &pivots_allowed())
        .expect("pivot through exa01adm03");
    let pivots: Vec<&Move> = s.moves.iter().filter(|m| m.pivot).collect();
    assert_eq!(pivots.len(), 1);
    assert_eq!(
        (pivots[0].guest.as_str(), pivots[0].to.as_str()),
        ("vm01", "exa01adm03")
    );
    assert!(
        pivots[0].reason.contains("exa01adm03"),
        "{}",
        pivots[0].reason
    );
    check(&s, &swap(MigrationMode::Live), &topo, &pivots_allowed());
    assert_eq!(s.peaks["exa01adm03"], (192 * GIB, 8));
}

#[test]
fn live_swap_without_a_pivot_host_is_infeasible_with_numbers() {
    let topo = full_pair(Some(256));
    let mut topo = topo;
    topo.guests.insert(
        "vm03".into(),
        guest("vm03", "exa01adm03", 192, 8, GuestState::Running),
    );
    let err = schedule(&swap(MigrationMode::Live), &topo, &pivots_allowed())
        .expect_err("no host has room");
    let ScheduleError::Infeasible {
        message,
        hosts,
        guests,
    } = err
    else {
        panic!("expected Infeasible, got {err:?}")
    };
    assert_eq!(hosts, vec!["exa01adm01", "exa01adm02"]);
    assert_eq!(guests, vec!["vm01", "vm02"]);
    assert!(message.contains("exa01adm02 needs 192 GiB free for vm01 but has 64 GiB; moves off it (vm02, 192 GiB) wait for room on exa01adm01"), "{message}");
    assert!(message.contains("exa01adm01 needs 192 GiB free for vm02 but has 64 GiB; moves off it (vm01, 192 GiB) wait for room on exa01adm02"), "{message}");
    assert!(message.contains("No pivot host can hold vm01 (192 GiB and 8 vCPUs) meanwhile: exa01adm03: only 64 GiB and 56 vCPUs free"), "{message}");
}

#[test]
fn live_swap_with_pivots_forbidden_says_so() {
    let topo = full_pair(Some(512));
    let limits = Limits {
        allow_pivot: false,
        ..Limits::default()
    };
    let err = schedule(&swap(MigrationMode::Live), &topo, &limits).expect_err("pivots are off");
    assert!(
        err.to_string()
            .ends_with("Pivot moves through a third host are not allowed."),
        "{err}"
    );
}

#[test]
fn an_impossible_plan_names_the_host_and_the_numbers() {
    // Both guests onto exa01adm03 (256 GiB): 384 GiB cannot fit whatever the order.
    let topo = full_pair(Some(256));
    let moves = vec![
        mv("vm01", "exa01adm01", "exa01adm03", MigrationMode::Offline),
        mv("vm02", "exa01adm02", "exa01adm03", MigrationMode::Offline),
    ];
    let err = schedule(&moves, &topo, &pivots_allowed()).expect_err("over capacity");
    let ScheduleError::Infeasible { message, hosts, .. } = err else {
        panic!("expected Infeasible")
    };
    assert_eq!(hosts, vec!["exa01adm03"]);
    assert!(
        message.starts_with(
            "exa01adm03 cannot hold every guest planned onto it: 256 GiB and 64 vCPUs usable"
        ),
        "{message}"
    );
    assert!(
        message.contains("moves onto it (vm01, vm02) bring 384 GiB and 16 vCPUs"),
        "{message}"
    );
}

/// Whether some execution of `s` (its graph, in which steps do not overlap: one linearization
/// of the step graph) keeps `budgets`: a search over the states of the event walk.
fn some_order_keeps_budgets(s: &Schedule, topo: &Topology, budgets: &[BudgetSpec]) -> bool {
    let events = budget_events(s, topo, budgets);
    if events.len() > 24 {
        return true;
    }
    let before = precedence(s, &events);
    let all = if events.is_empty() {
        0
    } else {
        (1u64 << events.len()) - 1
    };
    let mut visited: HashSet<u64> = HashSet::new();
    let mut stack = vec![0u64];
    while let Some(done) = stack.pop() {
        if done == all {
            return true;
        }
        if !visited.insert(done) {
            continue;
        }
        let mut open = vec![0i64; budgets.len()];
        for (i, e) in events.iter().enumerate() {
            if done & (1 << i) != 0 {
                let b = budgets
                    .iter()
                    .position(|x| key_of(x) == e.host)
                    .unwrap_or(0);
                open[b] += e.sign;
            }
        }
        for (i, required) in before.iter().enumerate() {
            if done & (1 << i) == 0 && required & !done == 0 {
                let b = budgets
                    .iter()
                    .position(|x| key_of(x) == events[i].host)
                    .unwrap_or(0);
                let after = open[b] + events[i].sign + down(topo, &budgets[b]);
                if after <= i64::from(budgets[b].max_unavailable) {
                    stack.push(done | (1 << i));
                }
            }
        }
    }
    false
}

/// When the scheduler finds no way to keep a budget, there is none: no execution order of the
/// same moves (with the budget left out of the schedule) keeps it either.
#[test]
fn a_budget_declared_infeasible_is_infeasible() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let mut extra = Rng(0x0b0d_9e75_a11c_e5e1);
    let (mut refused, mut confirmed) = (0, 0);
    for case in 0..2000 {
        let (topo, moves, limits) = random_case(&mut rng, &mut extra);
        let Err(ScheduleError::Infeasible { message, .. }) = schedule(&moves, &topo, &limits)
        else {
            continue;
        };
        if !message.contains("disruption budget") {
            continue;
        }
        refused += 1;
        let unbudgeted = Limits {
            budgets: Vec::new(),
            ..limits.clone()
        };
        let Ok(s) = schedule(&moves, &topo, &unbudgeted) else {
            continue;
        };
        assert!(
            !some_order_keeps_budgets(&s, &topo, &limits.budgets),
            "case {case}: refused ({message}) but an order keeps the budget"
        );
        confirmed += 1;
    }
    eprintln!("budget refusals {refused}, confirmed by search {confirmed}");
    assert!(confirmed >= 20, "only {confirmed} refusals were checked");
}
