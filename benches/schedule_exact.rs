//! Issue 13's quality bench, Rust side: random small scheduling problems, berth's schedule of
//! each, and the problem exported as JSON for an exact solver (`benches/exact/solve.py`, CP-SAT).
//!
//! `benches/exact/run.sh` runs both. This binary alone:
//! `cargo bench --bench schedule_exact -- OUT_DIR [COUNT] [FIRST_SEED]` (or `cargo test
//! --bench schedule_exact -- OUT_DIR …`, a debug build, fast enough for these sizes).
//!
//! Each instance (seeded, so the same seed always gives the same file): 3–12 hosts of
//! 256–512 GiB, some near full, up to ~60 guests; a drain of one or two hosts, swaps between
//! hosts (cycles berth breaks with pivots) or a rebalance from the fullest hosts to the
//! emptiest; live, offline or mixed moves; with or without a per-migration bandwidth cap and a
//! dirty rate; random global and per-host limits; half with a disruption budget.
//!
//! The JSON holds what berth's timeline models and nothing else: per step its kind, move,
//! dependencies (within the move and berth's cross-move capacity edges, but not the budget
//! chains or the holds, which berth derives from its own run), and its work (a fixed time, or
//! MiB sent at the rate the transfer gets alone plus a fixed tail); the global and per-host
//! limits; every
//! link's bandwidth and the per-migration cap; memory and vCPU capacity, usage now and each
//! move's claim and release step; the budgets as intervals; and berth's own start and
//! duration per step, its makespan, lower bound, `priority_seed` and how many holds it has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[path = "support/builders.rs"]
mod builders;

use berth::config::MigrationMode;
use berth::diff::Move;
use berth::inventory::{Guest, GuestState, Topology};
use berth::schedule::{
    BudgetSpec, Concurrency, DurationModel, Limits, Schedule, StepKind, Work, schedule,
};
use builders::{Rng, guest, host, move_of, topology};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: berth::alloc::Allocator = berth::alloc::Allocator {};

fn main() {
    berth::alloc::configure();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let out = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "target/schedule-exact".into()),
    );
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let first_seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    std::fs::create_dir_all(&out).expect("create the output directory");
    let mut written = 0;
    let mut seed = first_seed;
    while written < count {
        if let Some(instance) = instance(seed) {
            let path = out.join(format!("instance-{seed:04}.json"));
            write(&path, &instance);
            written += 1;
        }
        seed += 1;
    }
    println!(
        "{written} instances (seeds {first_seed}..{}) in {}",
        seed - 1,
        out.display()
    );
}

fn write(path: &Path, value: &Value) {
    let text = serde_json::to_string_pretty(value).expect("serialises");
    std::fs::write(path, text).expect("write the instance");
}

/// The kinds of instance, drawn per seed.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Drain,
    Swap,
    Rebalance,
}

/// One seeded instance, or `None` when the draw cannot be planned (no room for a drained
/// guest, a budget no order can keep): the caller draws the next seed.
fn instance(seed: u64) -> Option<Value> {
    let mut rng = Rng::new(seed);
    let hosts = rng.range(3, 12) as usize;
    let max_guests = 60usize;
    let per_host = (max_guests / hosts).clamp(2, 10) as u64;
    let names: Vec<String> = (0..hosts).map(|h| format!("h{h:02}")).collect();
    let host_gib: Vec<u64> = (0..hosts).map(|_| rng.pick(&[256, 384, 512])).collect();
    let host_cpus: Vec<u32> = (0..hosts).map(|_| rng.pick(&[96, 192])).collect();
    let sizes = [8u64, 16, 32, 64];
    let mut guests: Vec<Guest> = Vec::new();
    for h in 0..hosts {
        // Fill to 40–95 % of memory ("near full" for the upper end).
        let fill = host_gib[h] * rng.range(40, 95) / 100;
        let (mut used, mut cpus) = (0, 0);
        for n in 0..per_host {
            let size = rng.pick(&sizes);
            let vcpus = rng.pick(&[2u32, 4, 8, 16]);
            if used + size > fill || cpus + vcpus > host_cpus[h] {
                continue;
            }
            used += size;
            cpus += vcpus;
            guests.push(guest(
                &format!("{}vm{n:02}", names[h]),
                &names[h],
                size,
                vcpus,
                GuestState::Running,
            ));
        }
    }
    let kind = rng.pick(&[Kind::Drain, Kind::Swap, Kind::Rebalance]);
    let mode_rule = rng.pick(&["live", "offline", "mixed"]);
    let topo = topology(
        (0..hosts)
            .map(|h| host(&names[h], host_gib[h], host_cpus[h]))
            .collect(),
        guests.clone(),
    );
    let mut moves: Vec<Move> = Vec::new();
    let mut free: Vec<(i64, i64)> = (0..hosts)
        .map(|h| {
            let (m, c) = guests
                .iter()
                .filter(|g| g.host == names[h])
                .fold((0, 0), |(m, c), g| (m + g.memory_mib, c + g.vcpus));
            (
                (host_gib[h] * 1024) as i64 - m as i64,
                i64::from(host_cpus[h]) - i64::from(c),
            )
        })
        .collect();
    let index = |name: &str| names.iter().position(|n| n == name).unwrap_or_default();
    let push =
        |g: &Guest, to: usize, rng: &mut Rng, free: &mut Vec<(i64, i64)>, moves: &mut Vec<Move>| {
            let mode = match mode_rule {
                "live" => MigrationMode::Live,
                "offline" => MigrationMode::Offline,
                _ => rng.pick(&[MigrationMode::Live, MigrationMode::Offline]),
            };
            let from = index(&g.host);
            free[from].0 += g.memory_mib as i64;
            free[from].1 += i64::from(g.vcpus);
            free[to].0 -= g.memory_mib as i64;
            free[to].1 -= i64::from(g.vcpus);
            moves.push(move_of(g, &names[to], mode));
        };
    match kind {
        Kind::Drain => {
            let drained: Vec<usize> = if hosts >= 6 && rng.chance(50) {
                vec![0, hosts / 2]
            } else {
                vec![0]
            };
            for g in guests.iter().filter(|g| drained.contains(&index(&g.host))) {
                // The host with the most memory left that fits it (not drained).
                let to = (0..hosts)
                    .filter(|h| !drained.contains(h))
                    .filter(|&h| {
                        free[h].0 >= g.memory_mib as i64 && free[h].1 >= i64::from(g.vcpus)
                    })
                    .max_by_key(|&h| (free[h].0, std::cmp::Reverse(h)))?;
                push(g, to, &mut rng, &mut free, &mut moves);
            }
        }
        Kind::Swap => {
            // Pairs of hosts exchange up to three guests each way (room permitting at the
            // end; berth orders the moves or pivots through a third host).
            for _ in 0..rng.range(1, (hosts as u64 / 2).max(1)) {
                let a = rng.range(0, hosts as u64 - 1) as usize;
                let b = (a + 1 + rng.range(0, hosts as u64 - 2) as usize) % hosts;
                let take = rng.range(1, 3) as usize;
                let from_a: Vec<Guest> = guests
                    .iter()
                    .filter(|g| index(&g.host) == a && !moves.iter().any(|m| m.guest == g.name))
                    .take(take)
                    .cloned()
                    .collect();
                let from_b: Vec<Guest> = guests
                    .iter()
                    .filter(|g| index(&g.host) == b && !moves.iter().any(|m| m.guest == g.name))
                    .take(take)
                    .cloned()
                    .collect();
                for g in &from_a {
                    push(g, b, &mut rng, &mut free, &mut moves);
                }
                for g in &from_b {
                    push(g, a, &mut rng, &mut free, &mut moves);
                }
            }
            if free.iter().any(|&(m, c)| m < 0 || c < 0) {
                return None;
            }
        }
        Kind::Rebalance => {
            // Biggest guest that fits from the fullest host to the emptiest, until within
            // 10 points of memory.
            let mut moved: Vec<String> = Vec::new();
            loop {
                let load = |h: usize, free: &[(i64, i64)]| {
                    1.0 - free[h].0 as f64 / (host_gib[h] * 1024) as f64
                };
                let full = (0..hosts).max_by(|&x, &y| load(x, &free).total_cmp(&load(y, &free)))?;
                let empty =
                    (0..hosts).min_by(|&x, &y| load(x, &free).total_cmp(&load(y, &free)))?;
                if load(full, &free) - load(empty, &free) <= 0.10 {
                    break;
                }
                let candidate = guests
                    .iter()
                    .filter(|g| {
                        index(&g.host) == full
                            && !moved.contains(&g.name)
                            && free[empty].0 >= g.memory_mib as i64
                            && free[empty].1 >= i64::from(g.vcpus)
                    })
                    .max_by_key(|g| (g.memory_mib, std::cmp::Reverse(g.name.clone())))
                    .cloned();
                let Some(g) = candidate else { break };
                moved.push(g.name.clone());
                push(&g, empty, &mut rng, &mut free, &mut moves);
            }
        }
    }
    if moves.is_empty() {
        return None;
    }
    let cap = rng.pick(&[0u64, 0, 400, 600]);
    let dirty = rng.pick(&[0u64, 150]);
    let concurrency = Concurrency {
        parallelism: rng.pick(&[2, 3, 4, 6, 8]),
        max_inbound_per_host: rng.pick(&[1, 2]),
        max_outbound_per_host: rng.pick(&[1, 2]),
    };
    let budgets = if rng.chance(50) {
        let mut members: Vec<String> = moves.iter().map(|m| m.guest.clone()).collect();
        members.dedup();
        let size = rng.range(2, 6).min(members.len() as u64) as usize;
        let start = rng.range(0, (members.len() - size) as u64) as usize;
        vec![BudgetSpec {
            name: "bench".into(),
            members: members[start..start + size].to_vec(),
            max_unavailable: rng.pick(&[1, 1, 2]),
        }]
    } else {
        Vec::new()
    };
    let limits = Limits {
        allow_pivot: true,
        durations: DurationModel {
            live_cap_mib_s: cap as f64,
            dirty_rate_mib_s: dirty as f64,
            ..DurationModel::default()
        },
        concurrency,
        budgets: budgets.clone(),
        ..Limits::default()
    };
    let berth = schedule(&moves, &topo, &limits).ok()?;
    // The same problem without budgets: the graph before berth adds its budget chains (pivots
    // and capacity edges do not depend on budgets).
    let free_graph = schedule(
        &moves,
        &topo,
        &Limits {
            budgets: Vec::new(),
            ..limits.clone()
        },
    )
    .ok()?;
    let ids = |s: &Schedule| s.steps.iter().map(|st| st.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&berth),
        ids(&free_graph),
        "seed {seed}: budgets changed the steps"
    );
    Some(export(
        seed,
        kind,
        mode_rule,
        &topo,
        &limits,
        &berth,
        &free_graph,
    ))
}

fn export(
    seed: u64,
    kind: Kind,
    mode_rule: &str,
    topo: &Topology,
    limits: &Limits,
    berth: &Schedule,
    free_graph: &Schedule,
) -> Value {
    let model = &limits.durations;
    let position: BTreeMap<&str, usize> = berth
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let deps = |s: &berth::schedule::Step| -> Vec<usize> {
        s.depends_on.iter().map(|d| position[d.as_str()]).collect()
    };
    // The exact model's precedences: the graph without budgets, less the holds berth chose
    // for its own run of it (an order, like the budget chains, not a constraint of the problem).
    let free_deps = |s: &berth::schedule::Step| -> Vec<usize> {
        s.depends_on
            .iter()
            .filter(|d| {
                !free_graph
                    .timing
                    .holds
                    .iter()
                    .any(|h| h.step == s.id && &h.waits_for == *d)
            })
            .map(|d| position[d.as_str()])
            .collect()
    };
    let timing = &berth.timing;
    let steps: Vec<Value> = berth
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mv = &berth.moves[step.move_index];
            let work = model.work(step.kind, mv, step.items.len());
            let (fixed, transfer) = match work {
                Work::Fixed(s) => (json!(s), Value::Null),
                Work::Transfer {
                    mib,
                    cap_mib_s,
                    tail_s,
                } => {
                    let rate = cap_mib_s
                        .min(model.link_bandwidth(&mv.from))
                        .min(model.link_bandwidth(&mv.to));
                    (
                        Value::Null,
                        json!({ "mib": mib, "rate_mib_s": rate, "cap_mib_s": if cap_mib_s.is_finite() { json!(cap_mib_s) } else { Value::Null }, "tail_s": tail_s }),
                    )
                }
            };
            let t = &timing.steps[i];
            assert_eq!(t.step, step.id);
            json!({
                "id": step.id,
                "kind": step.kind.as_str(),
                "move": step.move_index,
                "migration": step.kind == StepKind::MigrateGuest,
                "deps": free_deps(&free_graph.steps[i]),
                "berth_deps": deps(step),
                "fixed_s": fixed,
                "transfer": transfer,
                "alone_s": model.alone_seconds(work, &mv.from, &mv.to),
                "berth_start_s": t.start_s,
                "berth_duration_s": t.duration_s,
            })
        })
        .collect();
    let step_of = |m: usize, kind: StepKind| {
        berth
            .steps
            .iter()
            .position(|s| s.move_index == m && s.kind == kind)
    };
    let moves: Vec<Value> = berth
        .moves
        .iter()
        .enumerate()
        .map(|(m, mv)| {
            let holds = topo
                .guests
                .get(&mv.guest)
                .is_some_and(|g| g.state == GuestState::Running);
            // capacity.rs: live holds both ends during MIGRATE_GUEST; offline claims at the
            // start of STARTUP_GUEST and releases at the end of STOP_GUEST.
            let (claim, release) = match mv.mode {
                MigrationMode::Live => (
                    step_of(m, StepKind::MigrateGuest),
                    step_of(m, StepKind::MigrateGuest),
                ),
                _ => (
                    step_of(m, StepKind::StartupGuest),
                    step_of(m, StepKind::StopGuest),
                ),
            };
            json!({
                "guest": mv.guest, "from": mv.from, "to": mv.to,
                "mode": match mv.mode { MigrationMode::Live => "live", _ => "offline" },
                "pivot": mv.pivot,
                "memory_mib": if holds { mv.memory_mib } else { 0 },
                "vcpus": if holds { mv.vcpus } else { 0 },
                "claim_step": claim, "release_step": release,
            })
        })
        .collect();
    let hosts: Vec<Value> = topo
        .hosts
        .values()
        .map(|h| {
            let limit = limits.of(h);
            let (memory, vcpus) = topo
                .guests
                .values()
                .filter(|g| g.host == h.name)
                .fold((0, 0), |(m, c), g| {
                    (m + g.memory_held_mib(), c + g.vcpus_held())
                });
            json!({
                "name": h.name,
                "memory_mib": limit.memory_mib, "vcpus": limit.vcpus,
                "used_memory_mib": memory, "used_vcpus": vcpus,
                "link_mib_s": model.link_bandwidth(&h.name),
            })
        })
        .collect();
    let budgets: Vec<Value> = limits
        .budgets
        .iter()
        .map(|b| {
            // budget.rs: live, the MIGRATE_GUEST; offline, STOP_GUEST's start to
            // STARTUP_GUEST's end. Every bench guest runs, so none is down already.
            let intervals: Vec<Value> = berth
                .moves
                .iter()
                .enumerate()
                .filter(|(_, mv)| b.members.contains(&mv.guest))
                .filter_map(|(m, mv)| match mv.mode {
                    MigrationMode::Live => {
                        step_of(m, StepKind::MigrateGuest).map(|s| json!([s, s]))
                    }
                    _ => Some(json!([
                        step_of(m, StepKind::StopGuest)?,
                        step_of(m, StepKind::StartupGuest)?
                    ])),
                })
                .collect();
            json!({ "name": b.name, "capacity": b.max_unavailable, "intervals": intervals })
        })
        .collect();
    json!({
        "seed": seed,
        "kind": format!("{kind:?}").to_lowercase(),
        "modes": mode_rule,
        "concurrency": {
            "parallelism": limits.concurrency.parallelism,
            "max_inbound_per_host": limits.concurrency.max_inbound_per_host,
            "max_outbound_per_host": limits.concurrency.max_outbound_per_host,
        },
        "link_sharing": "equal split: min(cap, source link / transfers out, target link / transfers in)",
        "hosts": hosts,
        "moves": moves,
        "steps": steps,
        "budgets": budgets,
        "berth": {
            "makespan_s": timing.makespan_s,
            "lower_bound_s": timing.lower_bound.overall_s,
            "priority_seed": timing.priority_seed,
            "holds": timing.holds.len(),
        },
    })
}
