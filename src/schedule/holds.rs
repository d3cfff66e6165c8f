//! Holds: ordering edges that keep a slot free for a step that is not ready yet.
//!
//! A list schedule starts whatever is ready whenever a slot is free, so it never leaves a slot
//! idle on purpose. Sometimes the best schedule does: a drained host with one outbound slot
//! should keep it for an offline move's 5 s definition step that becomes ready at 90 s rather
//! than start a 62 s transfer at 85 s. A *hold* says so in the graph itself: an edge
//! `held → blocker` (the blocker starts once the held step has ended). The list scheduler then
//! waits because the blocker is not ready, and so does every other reader of the graph: the
//! executor dispatches by the same edges, `berth simulate` replays them, and the DOT and JSON
//! views show them (`timing.holds`). What was reviewed is what runs.
//!
//! [`improve`] searches for holds on small plans after the priority orders (see
//! `timeline::best_of`): in the best run so far it looks at the steps that waited after they
//! were ready, latest-ending chains first, and tries to put each before the steps that held
//! the slots it waited for (the host slot kept free for it, every step of that host slot from
//! the first such one on, every step that took a busy global slot after it was ready, or one
//! of them alone), re-running the list schedule with the new edges; a try is kept only when
//! the plan gets strictly shorter, and then its edges that do not matter are dropped again.
//! The number of tries is a count, not a clock ([`HOLD_JOB_RUNS`]), so a plan always gets the
//! same holds.
//!
//! Safety: a hold only adds edges, so every execution order the graph allows afterwards was
//! allowed before, and capacity safety and budget chains hold as they did. A hold never closes
//! a cycle: it is only added from a step to steps that are not its ancestors (checked on the
//! whole graph, earlier holds included).

use super::timeline::{self, Job, Run, Setup};

/// The hold search's work budget, in jobs scheduled: a plan of `n` jobs gets
/// `HOLD_JOB_RUNS / n` tries (at most [`HOLD_MAX_TRIES`]), none when that is fewer than
/// [`HOLD_MIN_TRIES`].
pub(crate) const HOLD_JOB_RUNS: usize = 20_000;

/// At most this many tries.
pub(crate) const HOLD_MAX_TRIES: usize = 256;

/// Fewer tries than this are not worth it: the plan is too large for holds to matter.
pub(crate) const HOLD_MIN_TRIES: usize = 8;

/// How many tries the search has on `jobs` jobs.
pub(crate) fn tries(jobs: usize) -> usize {
    let tries = HOLD_JOB_RUNS / jobs.max(1);
    if tries < HOLD_MIN_TRIES {
        0
    } else {
        tries.min(HOLD_MAX_TRIES)
    }
}

/// Float noise in seconds.
const EPS: f64 = 1e-9;

/// Per ready-but-waiting step, at most this many single-blocker tries per round.
const SINGLE_TRIES_PER_STEP: usize = 4;

/// What the search found: the edges `(held, blocker)` (the blocker waits for the held step to
/// end), in the order they were found, and the run with them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Holds {
    pub edges: Vec<(usize, usize)>,
    pub run: Run,
}

/// Searches for holds that shorten `best` (the run of `setup`, whose `jitter` is the chosen
/// priority order and whose `priority` was derived from its jobs by `remaining_path` on
/// `setup.alone`). Returns `best` unchanged with no edges when none helps.
pub(crate) fn improve(setup: &Setup<'_>, best: Run) -> Holds {
    let mut holds = Holds {
        edges: Vec::new(),
        run: best,
    };
    let mut left = tries(setup.jobs.len());
    if left == 0 || setup.alone.is_empty() {
        return holds;
    }
    let mut jobs: Vec<Job> = setup.jobs.to_vec();
    'rounds: while left > 0 {
        for candidate in candidates(setup, &jobs, &holds.run, left) {
            if left == 0 {
                break 'rounds;
            }
            left -= 1;
            let Some((trial, run)) = try_edges(setup, &jobs, &candidate) else {
                continue;
            };
            if run.makespan < holds.run.makespan - EPS {
                let (kept, trial, run) = prune(setup, &jobs, candidate, trial, run, &mut left);
                jobs = trial;
                holds.edges.extend(kept);
                holds.run = run;
                continue 'rounds;
            }
        }
        break;
    }
    holds
}

/// `jobs` with `edges` added, run; `None` when an edge would close a cycle or the run is
/// stuck (a budget).
fn try_edges(setup: &Setup<'_>, jobs: &[Job], edges: &[(usize, usize)]) -> Option<(Vec<Job>, Run)> {
    let mut trial = jobs.to_vec();
    for &(held, blocker) in edges {
        if !trial[blocker].deps.contains(&held) {
            trial[blocker].deps.push(held);
        }
    }
    if timeline::topological_order(&trial).len() != trial.len() {
        return None;
    }
    let priority = timeline::remaining_path(&trial, setup.alone);
    let run = timeline::run(&Setup {
        jobs: &trial,
        priority: &priority,
        ..*setup
    })
    .ok()?;
    Some((trial, run))
}

/// Drops the edges of an accepted try that the shorter run does not need (one by one, each
/// kept out when the makespan stays), so the plan carries as few holds as it can.
fn prune(
    setup: &Setup<'_>,
    jobs: &[Job],
    mut edges: Vec<(usize, usize)>,
    mut trial: Vec<Job>,
    mut run: Run,
    left: &mut usize,
) -> (Vec<(usize, usize)>, Vec<Job>, Run) {
    if edges.len() < 2 {
        return (edges, trial, run);
    }
    let mut i = 0;
    while i < edges.len() && *left > 0 {
        *left -= 1;
        let without: Vec<(usize, usize)> = edges
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != i)
            .map(|(_, &e)| e)
            .collect();
        match try_edges(setup, jobs, &without) {
            Some((t, r)) if r.makespan <= run.makespan + EPS => {
                edges = without;
                trial = t;
                run = r;
            }
            _ => i += 1,
        }
    }
    (edges, trial, run)
}

/// The tries for one round, best first, at most `limit` of them: for each step that waited
/// after it was ready (latest `start + what must follow` first), the host slot kept for it
/// ([`fill`]), every step sharing its host slot from the first that blocked it on, then each
/// blocker alone (the latest-starting first).
fn candidates(
    setup: &Setup<'_>,
    jobs: &[Job],
    run: &Run,
    limit: usize,
) -> Vec<Vec<(usize, usize)>> {
    let n = jobs.len();
    let tail = timeline::remaining_path(jobs, setup.alone);
    let ready = |j: usize| {
        jobs[j]
            .deps
            .iter()
            .map(|&d| run.finish[d])
            .fold(0.0, f64::max)
    };
    let mut waited: Vec<usize> = (0..n).filter(|&j| run.start[j] > ready(j) + EPS).collect();
    let score = |j: usize| run.start[j] + tail[j];
    waited.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
    let parallelism = setup.concurrency.parallelism.max(1) as usize;
    let mut out = Vec::new();
    for j in waited {
        if out.len() >= limit {
            break;
        }
        let at = ready(j);
        let running_at = (0..n)
            .filter(|&k| run.start[k] <= at + EPS && run.finish[k] > at + EPS)
            .count();
        let saturated = running_at >= parallelism;
        let ancestors = ancestors(jobs, j);
        let same_slot = |k: usize| match (jobs[j].migration, jobs[k].migration) {
            (Some((from_j, to_j)), Some((from_k, to_k))) => from_j == from_k || to_j == to_k,
            _ => false,
        };
        let mut blockers: Vec<usize> = (0..n)
            .filter(|&k| k != j && !ancestors[k])
            .filter(|&k| run.start[k] < run.start[j] - EPS && run.finish[k] > at + EPS)
            .filter(|&k| same_slot(k) || saturated)
            .collect();
        if blockers.is_empty() {
            continue;
        }
        if let Some(fill) = fill(setup, jobs, run, j, at, &ancestors) {
            out.push(fill);
        }
        blockers.sort_by(|&a, &b| run.start[b].total_cmp(&run.start[a]).then(a.cmp(&b)));
        // Every step of the same host slot from the first blocker on: the slot is kept free.
        let first = blockers
            .iter()
            .map(|&k| run.start[k])
            .fold(f64::INFINITY, f64::min);
        let group: Vec<(usize, usize)> = (0..n)
            .filter(|&k| k != j && !ancestors[k] && same_slot(k))
            .filter(|&k| run.start[k] >= first - EPS && !jobs[k].deps.contains(&j))
            .map(|k| (j, k))
            .collect();
        if !group.is_empty() {
            out.push(group);
        }
        // A saturated global limit: the steps that took the slots after it was ready wait.
        if saturated {
            let late: Vec<(usize, usize)> = blockers
                .iter()
                .filter(|&&k| run.start[k] >= at - EPS && !jobs[k].deps.contains(&j))
                .map(|&k| (j, k))
                .collect();
            if !late.is_empty() && !out.contains(&late) {
                out.push(late);
            }
        }
        for &k in blockers.iter().take(SINGLE_TRIES_PER_STEP) {
            if !out.iter().any(|c: &Vec<(usize, usize)>| c == &[(j, k)]) {
                out.push(vec![(j, k)]);
            }
        }
    }
    out
}

/// Most items a fill is chosen among exactly (2^n subsets); beyond, largest first.
const FILL_EXACT_ITEMS: usize = 12;

/// Keeps the host slot `held` waited for (its outbound one if a migration out of the same
/// host blocked it, else its inbound one) for it from when it is ready: of the migrations
/// sharing that slot and not bound to come after `held` already, the ones whose durations
/// alone best fill the slot's time before `ready` (from the first of them to start in `run`,
/// times the slot's limit) go first, every other one waits for `held`. `None` when `held` is
/// no migration or nothing shares its slot.
fn fill(
    setup: &Setup<'_>,
    jobs: &[Job],
    run: &Run,
    held: usize,
    ready: f64,
    ancestors: &[bool],
) -> Option<Vec<(usize, usize)>> {
    let (from, to) = jobs[held].migration?;
    let descendants = descendants(jobs, held);
    let sharing = |outbound: bool| -> Vec<usize> {
        (0..jobs.len())
            .filter(|&k| k != held && !ancestors[k] && !descendants[k])
            .filter(|&k| match jobs[k].migration {
                Some((f, t)) => (outbound && f == from) || (!outbound && t == to),
                None => false,
            })
            .collect()
    };
    let blocked_out = sharing(true)
        .iter()
        .any(|&k| run.start[k] < run.start[held] && run.finish[k] > ready);
    let (pool, limit) = if blocked_out {
        (sharing(true), setup.concurrency.max_outbound_per_host)
    } else {
        (sharing(false), setup.concurrency.max_inbound_per_host)
    };
    if pool.is_empty() {
        return None;
    }
    let first = pool
        .iter()
        .map(|&k| run.start[k])
        .fold(f64::INFINITY, f64::min);
    let window = (ready - first).max(0.0) * f64::from(limit.max(1));
    let before = best_fill(&pool, setup.alone, window);
    let edges: Vec<(usize, usize)> = pool
        .iter()
        .filter(|k| !before.contains(k))
        .map(|&k| (held, k))
        .collect();
    (!edges.is_empty()).then_some(edges)
}

/// The items of `pool` whose `duration`s sum highest without exceeding `window`: exactly for
/// a few items, largest first beyond.
fn best_fill(pool: &[usize], duration: &[f64], window: f64) -> Vec<usize> {
    if pool.len() <= FILL_EXACT_ITEMS {
        let mut best = (0.0, 0u32);
        for mask in 0u32..(1 << pool.len()) {
            let sum: f64 = (0..pool.len())
                .filter(|&i| mask & (1 << i) != 0)
                .map(|i| duration[pool[i]])
                .sum();
            if sum <= window + EPS && sum > best.0 + EPS {
                best = (sum, mask);
            }
        }
        return (0..pool.len())
            .filter(|&i| best.1 & (1 << i) != 0)
            .map(|i| pool[i])
            .collect();
    }
    let mut by_size = pool.to_vec();
    by_size.sort_by(|&a, &b| duration[b].total_cmp(&duration[a]).then(a.cmp(&b)));
    let mut sum = 0.0;
    by_size
        .into_iter()
        .filter(|&k| {
            let fits = sum + duration[k] <= window + EPS;
            if fits {
                sum += duration[k];
            }
            fits
        })
        .collect()
}

/// Per job, whether it depends on `job` through a chain of dependencies.
fn descendants(jobs: &[Job], job: usize) -> Vec<bool> {
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, j) in jobs.iter().enumerate() {
        for &d in &j.deps {
            successors[d].push(i);
        }
    }
    let mut seen = vec![false; jobs.len()];
    let mut stack = successors[job].clone();
    while let Some(s) = stack.pop() {
        if !seen[s] {
            seen[s] = true;
            stack.extend(successors[s].iter().copied());
        }
    }
    seen
}

/// Per job, whether it is an ancestor of `job` (a chain of dependencies leads from it there).
fn ancestors(jobs: &[Job], job: usize) -> Vec<bool> {
    let mut seen = vec![false; jobs.len()];
    let mut stack: Vec<usize> = jobs[job].deps.clone();
    while let Some(d) = stack.pop() {
        if !seen[d] {
            seen[d] = true;
            stack.extend(jobs[d].deps.iter().copied());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::duration::{Concurrency, Work};
    use crate::schedule::timeline::{Interval, best_of};

    fn fixed(seconds: f64, deps: &[usize], migration: Option<(usize, usize)>) -> Job {
        Job {
            deps: deps.to_vec(),
            work: Work::Fixed(seconds),
            migration,
        }
    }

    fn transfer(seconds: f64, from: usize, to: usize) -> Job {
        Job {
            deps: Vec::new(),
            work: Work::Transfer {
                mib: seconds,
                cap_mib_s: f64::INFINITY,
                tail_s: 0.0,
            },
            migration: Some((from, to)),
        }
    }

    /// Exact instance 3 of the CP-SAT bench, in round numbers: host 0 is drained through its
    /// one outbound slot; four live transfers (33, 63, 63 and 18 s) and an offline move whose
    /// 5 s definition step is ready at 90 s, after its guest's shutdown, and is followed by a
    /// 120 s boot. The boot chain alone is 215 s, and the transfers fit around it (63 + 18
    /// before 90 s, 33 + 63 after 95 s), but only if the slot is free at 90 s: a list schedule
    /// starts a transfer whenever the slot is free.
    fn drain_with_one_outbound_slot() -> (Vec<Job>, Vec<f64>) {
        let jobs = vec![
            transfer(33.0, 0, 2),
            fixed(90.0, &[], None),
            fixed(5.0, &[1], Some((0, 1))),
            fixed(120.0, &[2], None),
            transfer(63.0, 0, 3),
            transfer(63.0, 0, 4),
            transfer(18.0, 0, 5),
        ];
        let alone = vec![33.0, 90.0, 5.0, 120.0, 63.0, 63.0, 18.0];
        (jobs, alone)
    }

    fn setup<'a>(jobs: &'a [Job], alone: &'a [f64], priority: &'a [f64]) -> Setup<'a> {
        Setup {
            jobs,
            bandwidth: &[1.0; 6],
            concurrency: Concurrency {
                parallelism: 8,
                max_inbound_per_host: 2,
                max_outbound_per_host: 1,
            },
            priority,
            alone,
            jitter: 0,
            intervals: &[],
            capacity: &[],
            needs: &[],
        }
    }

    #[test]
    fn a_hold_keeps_the_slot_for_a_step_not_ready_yet_and_replays_from_the_graph() {
        let (jobs, alone) = drain_with_one_outbound_slot();
        let priority = timeline::remaining_path(&jobs, &alone);
        let s = setup(&jobs, &alone, &priority);
        let (seed, list) = best_of(&s).unwrap();
        assert!(
            list.makespan > 215.0 + 1.0,
            "every priority order starts a transfer in the way: {list:?}"
        );
        let holds = improve(&Setup { jitter: seed, ..s }, list);
        assert!((holds.run.makespan - 215.0).abs() < 1e-9, "{holds:?}");
        assert!(!holds.edges.is_empty());
        // The definition step starts the moment it is ready, and the slot was idle before it.
        assert!((holds.run.start[2] - 90.0).abs() < 1e-9, "{holds:?}");
        // Every hold is from the definition step to a transfer out of the same host, and the
        // run keeps it.
        for &(held, blocker) in &holds.edges {
            assert_eq!(held, 2);
            assert_eq!(jobs[blocker].migration.map(|m| m.0), Some(0));
            assert!(holds.run.start[blocker] >= holds.run.finish[held] - 1e-9);
        }
        // The graph with the holds, scheduled afresh in the same order (what `simulate` and a
        // saved plan do), gives the same run.
        let mut with = jobs.clone();
        for &(held, blocker) in &holds.edges {
            with[blocker].deps.push(held);
        }
        let priority = timeline::remaining_path(&with, &alone);
        let again = timeline::run(&Setup {
            jobs: &with,
            priority: &priority,
            jitter: seed,
            ..setup(&with, &alone, &priority)
        })
        .unwrap();
        assert_eq!(again, holds.run);
    }

    #[test]
    fn no_hold_when_the_list_schedule_is_already_optimal_or_the_plan_is_large() {
        // Two independent chains with nothing shared: nothing waits, so nothing is held.
        let jobs = vec![
            fixed(10.0, &[], None),
            fixed(5.0, &[0], None),
            transfer(7.0, 0, 1),
        ];
        let alone = vec![10.0, 5.0, 7.0];
        let priority = timeline::remaining_path(&jobs, &alone);
        let s = setup(&jobs, &alone, &priority);
        let list = timeline::run(&s).unwrap();
        let holds = improve(&s, list.clone());
        assert!(holds.edges.is_empty());
        assert_eq!(holds.run, list);
        assert_eq!(tries(HOLD_JOB_RUNS / HOLD_MIN_TRIES + 1), 0);
        assert_eq!(tries(10), HOLD_MAX_TRIES);
    }

    #[test]
    fn holds_respect_a_budget_and_never_close_a_cycle() {
        // The drain above with the four transfers in a budget of one: the holds found still
        // keep it (the run is the list scheduler's, which enforces the budget).
        let (jobs, alone) = drain_with_one_outbound_slot();
        let priority = timeline::remaining_path(&jobs, &alone);
        let intervals: Vec<Interval> = [0, 4, 5, 6]
            .into_iter()
            .map(|j| Interval {
                start: j,
                end: j,
                budget: 0,
            })
            .collect();
        let needs = vec![Vec::new(); intervals.len()];
        let s = Setup {
            intervals: &intervals,
            capacity: &[1],
            needs: &needs,
            ..setup(&jobs, &alone, &priority)
        };
        let (seed, list) = best_of(&s).unwrap();
        let holds = improve(&Setup { jitter: seed, ..s }, list.clone());
        assert!(holds.run.makespan <= list.makespan + 1e-9);
        let mut with = jobs.clone();
        for &(held, blocker) in &holds.edges {
            with[blocker].deps.push(held);
        }
        assert_eq!(timeline::topological_order(&with).len(), with.len());
        let mut spans: Vec<(f64, f64)> = [0, 4, 5, 6]
            .iter()
            .map(|&j| (holds.run.start[j], holds.run.finish[j]))
            .collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0 + 1e-9));
    }
}
