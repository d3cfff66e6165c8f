//! List scheduling on the duration model, simulated event by event.
//!
//! A step starts once its dependencies are done and the limits allow: a global slot, for a
//! MIGRATE_GUEST a slot out of its source and into its target, and for a step that makes a
//! budgeted guest unavailable a place in its budget. Among the steps that could start, the
//! one with the highest priority goes first (the longest remaining path, a migration counted as
//! long as its busier host's migration work still to start: see [`run`]), except that a
//! transfer on a link another transfer already uses only takes a slot left over once everything
//! else that could start has: two transfers sharing a link each run at half speed, holding two
//! slots for the throughput of one, while a transfer on an idle link would use its own. Time
//! then jumps to the next event: a fixed-cost step ending, or a transfer finishing at its
//! current rate. Live transfers share links: each gets
//! `min(cap, source link ÷ transfers out of the source, target link ÷ transfers into the target)`,
//! recomputed whenever a transfer starts or ends.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeSet;

use super::duration::{Concurrency, Work};

/// One step to schedule; dependencies by index.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub deps: Vec<usize>,
    pub work: Work,
    /// (source, target) host indices of a MIGRATE_GUEST, which counts against the per-host
    /// migration limits and, for a transfer, uses both hosts' links.
    pub migration: Option<(usize, usize)>,
}

/// A guest unavailable from the start of job `start` to the end of job `end`, counted against
/// budget `budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interval {
    pub start: usize,
    pub end: usize,
    pub budget: usize,
}

/// Everything one run needs.
pub(crate) struct Setup<'a> {
    pub jobs: &'a [Job],
    /// Link bandwidth per host index, MiB/s.
    pub bandwidth: &'a [f64],
    pub concurrency: Concurrency,
    /// Per job, its longest remaining path (its own duration included): the critical-path
    /// priority, higher first.
    pub priority: &'a [f64],
    /// Per job, its duration alone. With it, a MIGRATE_GUEST's priority also counts the
    /// migration work its hosts still have to start (see [`run`]); empty: critical path only.
    pub alone: &'a [f64],
    /// 0: the priorities as they are; otherwise the seed of a fixed perturbation of each
    /// migration's backlog term (±20 %) and, from [`MULTI_START_ORDERS`] on, of every job's
    /// whole priority (see [`wide_jitter`]), for trying other orders (see [`best_of`]).
    pub jitter: u64,
    pub intervals: &'a [Interval],
    /// Per budget, how many of its intervals may be open at once.
    pub capacity: &'a [u32],
    /// Per interval, the intervals of its budget that must start before it can end (so
    /// starting it commits a place for each of them too).
    pub needs: &'a [Vec<usize>],
}

/// When each job ran.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub start: Vec<f64>,
    pub finish: Vec<f64>,
    /// Per interval, the place of its budget it held (`0..capacity`).
    pub slot: Vec<usize>,
    pub makespan: f64,
}

/// Nothing can start and nothing runs: the intervals waiting for their budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stuck {
    pub waiting: Vec<usize>,
}

/// `f64` ordered by `total_cmp`, for the ready queue.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Priority(f64);

impl Eq for Priority {}

impl PartialOrd for Priority {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Priority {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Ends at this time.
    Fixed(f64),
    /// MiB still to send.
    Transfer(f64),
}

#[derive(Debug)]
struct Active {
    job: usize,
    phase: Phase,
    rate: f64,
}

/// A transfer counts as done below this many MiB (float noise).
const DONE_MIB: f64 = 1e-6;

/// Runs the jobs (which must form a DAG) and returns when each started and finished.
///
/// Priority: the longest remaining path, where a MIGRATE_GUEST counts as long as the migration
/// work not yet started on the busier of its two hosts (a link's transfers take their
/// durations one after the other however they overlap; fixed-cost migrations share the host's
/// slots), ties by the plain remaining path, then by index. Plain critical-path order starts
/// the longest transfers first wherever they are, and leaves hosts with several moves queued
/// to the end, their transfers then running one after another while other slots stand idle;
/// counting the backlog still to start moves a slot to the host with the most left, so every
/// busy host ends near the same time. The backlog falls as a host's migrations start, so the
/// waiting migrations of both its hosts are re-ranked then.
pub(crate) fn run(s: &Setup<'_>) -> Result<Run, Stuck> {
    let n = s.jobs.len();
    let mut waiting: Vec<usize> = s.jobs.iter().map(|j| j.deps.len()).collect();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, job) in s.jobs.iter().enumerate() {
        for &d in &job.deps {
            successors[d].push(i);
        }
    }
    let mut starts_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut ends_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, interval) in s.intervals.iter().enumerate() {
        starts_of[interval.start].push(k);
        ends_of[interval.end].push(k);
    }
    let hosts = s.bandwidth.len();
    let mut backlog = Backlog::new(s, hosts);
    let mut ready = Ready::new(n, hosts);
    for j in (0..n).filter(|&j| waiting[j] == 0) {
        ready.insert(s, &backlog, j);
    }

    let (mut out_slots, mut in_slots) = (vec![0u32; hosts], vec![0u32; hosts]);
    let (mut out_transfers, mut in_transfers) = (vec![0u32; hosts], vec![0u32; hosts]);
    let mut open = vec![0u32; s.capacity.len()];
    let mut free_places: Vec<Vec<usize>> = s
        .capacity
        .iter()
        .map(|&c| (0..c as usize).rev().collect())
        .collect();
    let mut interval_started = vec![false; s.intervals.len()];
    let mut slot = vec![0usize; s.intervals.len()];

    let mut start = vec![0.0; n];
    let mut finish = vec![0.0; n];
    let mut active: Vec<Active> = Vec::new();
    let mut now = 0.0_f64;
    let mut done = 0;
    let parallelism = s.concurrency.parallelism.max(1) as usize;
    let (max_out, max_in) = (
        s.concurrency.max_outbound_per_host.max(1),
        s.concurrency.max_inbound_per_host.max(1),
    );

    while done < n {
        // Start what may start, best first; transfers onto busy links only in the second pass.
        let mut chosen = Vec::new();
        for share_links in [false, true] {
            for &(_, _, j) in &ready.queue {
                if active.len() + chosen.len() >= parallelism {
                    break;
                }
                if chosen.contains(&j) {
                    continue;
                }
                if let Some((from, to)) = s.jobs[j].migration
                    && (out_slots[from] >= max_out || in_slots[to] >= max_in)
                {
                    continue;
                }
                let transfer = matches!(s.jobs[j].work, Work::Transfer { .. });
                if let (true, false, Some((from, to))) =
                    (transfer, share_links, s.jobs[j].migration)
                    && (out_transfers[from] > 0 || in_transfers[to] > 0)
                {
                    continue;
                }
                let fits = starts_of[j].iter().all(|&k| {
                    let pending = s.needs[k]
                        .iter()
                        .filter(|&&other| !interval_started[other])
                        .count() as u32;
                    open[s.intervals[k].budget] + 1 + pending <= s.capacity[s.intervals[k].budget]
                });
                if !fits {
                    continue;
                }
                if let Some((from, to)) = s.jobs[j].migration {
                    out_slots[from] += 1;
                    in_slots[to] += 1;
                    // Counted from now: the link is busy for the rest of this round too.
                    if transfer {
                        out_transfers[from] += 1;
                        in_transfers[to] += 1;
                    }
                }
                for &k in &starts_of[j] {
                    let b = s.intervals[k].budget;
                    open[b] += 1;
                    interval_started[k] = true;
                    // A free place exists: `open` stayed within the capacity.
                    slot[k] = free_places[b].pop().unwrap_or_default();
                }
                chosen.push(j);
            }
        }
        for &j in &chosen {
            ready.remove(s, j);
            backlog.started(s, j);
        }
        // The backlog of the chosen migrations' hosts fell: re-rank their waiting migrations.
        for &j in &chosen {
            if let Some((from, to)) = s.jobs[j].migration {
                for k in ready.on_hosts(from, to) {
                    ready.remove(s, k);
                    ready.insert(s, &backlog, k);
                }
            }
        }
        for j in chosen {
            start[j] = now;
            let phase = match s.jobs[j].work {
                Work::Fixed(seconds) => Phase::Fixed(now + seconds),
                Work::Transfer { mib, .. } => Phase::Transfer(mib),
            };
            active.push(Active {
                job: j,
                phase,
                rate: 0.0,
            });
        }
        if active.is_empty() {
            let waiting = ready
                .queue
                .iter()
                .flat_map(|&(_, _, j)| starts_of[j].iter().copied())
                .collect();
            return Err(Stuck { waiting });
        }

        // Rates of the transfers, then the next event.
        let mut next = f64::INFINITY;
        for a in &mut active {
            match a.phase {
                Phase::Fixed(end) => next = next.min(end),
                Phase::Transfer(remaining) => {
                    a.rate = transfer_rate(s, a.job, &out_transfers, &in_transfers);
                    next = next.min(now + remaining / a.rate);
                }
            }
        }
        let elapsed = next - now;
        now = next;

        // Advance every transfer; collect what ended.
        let mut index = 0;
        while index < active.len() {
            let a = &mut active[index];
            let ended = match &mut a.phase {
                Phase::Fixed(end) => *end <= now,
                Phase::Transfer(remaining) => {
                    *remaining -= a.rate * elapsed;
                    if *remaining <= DONE_MIB {
                        let j = a.job;
                        if let Some((from, to)) = s.jobs[j].migration {
                            out_transfers[from] -= 1;
                            in_transfers[to] -= 1;
                        }
                        let tail = match s.jobs[j].work {
                            Work::Transfer { tail_s, .. } => tail_s,
                            Work::Fixed(_) => 0.0,
                        };
                        a.phase = Phase::Fixed(now + tail);
                        tail <= 0.0
                    } else {
                        false
                    }
                }
            };
            if !ended {
                index += 1;
                continue;
            }
            let j = active.swap_remove(index).job;
            finish[j] = now;
            done += 1;
            if let Some((from, to)) = s.jobs[j].migration {
                out_slots[from] -= 1;
                in_slots[to] -= 1;
            }
            for &k in &ends_of[j] {
                let b = s.intervals[k].budget;
                open[b] -= 1;
                free_places[b].push(slot[k]);
            }
            for &next_job in &successors[j] {
                waiting[next_job] -= 1;
                if waiting[next_job] == 0 {
                    ready.insert(s, &backlog, next_job);
                }
            }
        }
    }
    let makespan = finish.iter().copied().fold(0.0, f64::max);
    Ok(Run {
        start,
        finish,
        slot,
        makespan,
    })
}

/// Migration work not yet started per host, outbound and inbound, in seconds of the resource
/// that limits it: a link for transfers, a migration slot for fixed-cost migrations.
struct Backlog {
    /// Per job, what it adds to its source's and its target's backlog (0 for other jobs).
    share: Vec<(f64, f64)>,
    outbound: Vec<f64>,
    inbound: Vec<f64>,
}

impl Backlog {
    fn new(s: &Setup<'_>, hosts: usize) -> Backlog {
        let (max_out, max_in) = (
            f64::from(s.concurrency.max_outbound_per_host.max(1)),
            f64::from(s.concurrency.max_inbound_per_host.max(1)),
        );
        let mut backlog = Backlog {
            share: vec![(0.0, 0.0); s.jobs.len()],
            outbound: vec![0.0; hosts],
            inbound: vec![0.0; hosts],
        };
        for (j, job) in s.jobs.iter().enumerate() {
            let (Some((from, to)), Some(&alone)) = (job.migration, s.alone.get(j)) else {
                continue;
            };
            let share = if matches!(job.work, Work::Transfer { .. }) {
                (alone, alone)
            } else {
                (alone / max_out, alone / max_in)
            };
            backlog.share[j] = share;
            backlog.outbound[from] += share.0;
            backlog.inbound[to] += share.1;
        }
        backlog
    }

    /// The job's remaining path `path`, or for a migration the backlog of its busier host
    /// followed by what must come after the job, when that is longer.
    fn priority(&self, s: &Setup<'_>, job: usize, path: f64) -> f64 {
        let priority = match (s.jobs[job].migration, s.alone.get(job)) {
            (Some((from, to)), Some(&alone)) => {
                let after = path - alone;
                let backlog = self.outbound[from].max(self.inbound[to]);
                path.max(backlog * jitter(s.jitter, job) + after)
            }
            _ => path,
        };
        priority * wide_jitter(s.jitter, job)
    }

    fn started(&mut self, s: &Setup<'_>, job: usize) {
        let Some((from, to)) = s.jobs[job].migration else {
            return;
        };
        let (out, into) = self.share[job];
        self.outbound[from] -= out;
        self.inbound[to] -= into;
    }
}

type ReadyKey = (Reverse<Priority>, Reverse<Priority>, usize);

/// The factor `seed` puts on `job`'s backlog term: 1 for seed 0, else a fixed value in
/// [0.8, 1.2) drawn from seed and job (splitmix64), so a seed always gives the same order.
fn jitter(seed: u64, job: usize) -> f64 {
    if seed == 0 {
        return 1.0;
    }
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(job as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    0.8 + 0.4 * unit
}

/// The factor `seed` puts on `job`'s whole priority: 1 below [`MULTI_START_ORDERS`] (those
/// seeds only perturb the backlog term, see [`jitter`]), else a fixed value in [0.5, 1.5)
/// drawn from seed and job. The improver's orders ([`improver_orders`]) use these seeds:
/// they reorder any steps, fixed-cost ones and budget chains included, not only migrations.
fn wide_jitter(seed: u64, job: usize) -> f64 {
    if seed < MULTI_START_ORDERS {
        return 1.0;
    }
    // A different stream from `jitter`'s for the same seed.
    2.5 * jitter(seed ^ 0xA5A5_5A5A_C3C3_3C3C, job) - 1.5
}

/// How many priority orders a schedule of at most [`MULTI_START_MAX_JOBS`] jobs tries: the
/// plain one (seed 0) and seeds 1.. of [`jitter`].
pub(crate) const MULTI_START_ORDERS: u64 = 8;

/// The improver's work budget, in jobs scheduled: a plan of `n` jobs tries
/// `IMPROVER_JOB_RUNS / n` more orders (at most [`IMPROVER_MAX_ORDERS`]), so small plans get
/// many and plans above `IMPROVER_JOB_RUNS / 8` jobs none. A count, not a clock: the same plan
/// gets the same schedule on any machine, however loaded.
pub(crate) const IMPROVER_JOB_RUNS: usize = 20_000;

/// At most this many improver orders.
pub(crate) const IMPROVER_MAX_ORDERS: u64 = 256;

/// How many orders beyond the first [`MULTI_START_ORDERS`] the improver tries on `jobs` jobs
/// (seeds `MULTI_START_ORDERS..MULTI_START_ORDERS + improver_orders(jobs)`).
pub(crate) fn improver_orders(jobs: usize) -> u64 {
    let orders = (IMPROVER_JOB_RUNS / jobs.max(1)) as u64;
    if orders < MULTI_START_ORDERS {
        0
    } else {
        orders.min(IMPROVER_MAX_ORDERS)
    }
}

/// Above this many jobs one order is run: a list schedule is ties and rounding at its end,
/// which matter when a few dozen steps share the last round; with tens of thousands of steps
/// they do not, and each run costs tens of milliseconds.
pub(crate) const MULTI_START_MAX_JOBS: usize = 5_000;

/// Runs `setup` under each order it is given to try (see [`MULTI_START_ORDERS`]) and keeps
/// the shortest schedule, ties to the lowest seed: (seed, run). List scheduling by priority
/// is a heuristic whose result on equal-sized steps turns on which of them is left for the
/// last round; trying a few fixed perturbations of the backlog term is cheap for plans of a
/// few thousand steps, and the plan records the seed so a replay gives the same schedule.
/// Small plans then also try the improver's orders ([`improver_orders`], a fixed count, so
/// the result never depends on the machine's speed). Fails as the plain order does when no
/// order can finish.
pub(crate) fn best_of(setup: &Setup<'_>) -> Result<(u64, Run), Stuck> {
    let orders = if setup.jobs.len() <= MULTI_START_MAX_JOBS && !setup.alone.is_empty() {
        MULTI_START_ORDERS + improver_orders(setup.jobs.len())
    } else {
        1
    };
    let plain = run(&Setup {
        jitter: 0,
        ..*setup
    })?;
    let mut best = (0, plain);
    for seed in 1..orders {
        if let Ok(candidate) = run(&Setup {
            jitter: seed,
            ..*setup
        }) && candidate.makespan < best.1.makespan - 1e-9
        {
            best = (seed, candidate);
        }
    }
    Ok(best)
}

/// The jobs that could start, best first, and where each is (to re-rank it).
struct Ready {
    queue: BTreeSet<ReadyKey>,
    /// Per job, the key it is queued under while ready.
    key: Vec<Option<ReadyKey>>,
    /// Per host, its ready migrations (either end).
    by_host: Vec<Vec<usize>>,
}

impl Ready {
    fn new(jobs: usize, hosts: usize) -> Ready {
        Ready {
            queue: BTreeSet::new(),
            key: vec![None; jobs],
            by_host: vec![Vec::new(); hosts],
        }
    }

    /// Queues `job` under its priority with the backlog as it is now.
    fn insert(&mut self, s: &Setup<'_>, backlog: &Backlog, job: usize) {
        let path = s.priority.get(job).copied().unwrap_or(0.0);
        let priority = backlog.priority(s, job, path);
        let key = (Reverse(Priority(priority)), Reverse(Priority(path)), job);
        self.queue.insert(key);
        self.key[job] = Some(key);
        if let Some((from, to)) = s.jobs[job].migration {
            self.by_host[from].push(job);
            if to != from {
                self.by_host[to].push(job);
            }
        }
    }

    fn remove(&mut self, s: &Setup<'_>, job: usize) {
        if let Some(key) = self.key[job].take() {
            self.queue.remove(&key);
        }
        if let Some((from, to)) = s.jobs[job].migration {
            for host in [from, to] {
                self.by_host[host].retain(|&k| k != job);
            }
        }
    }

    /// The ready migrations from or to either host.
    fn on_hosts(&self, from: usize, to: usize) -> Vec<usize> {
        let mut jobs: Vec<usize> = [from, to]
            .iter()
            .flat_map(|&h| self.by_host[h].iter().copied())
            .collect();
        jobs.sort_unstable();
        jobs.dedup();
        jobs
    }
}

fn transfer_rate(s: &Setup<'_>, job: usize, out_transfers: &[u32], in_transfers: &[u32]) -> f64 {
    let Work::Transfer { cap_mib_s, .. } = s.jobs[job].work else {
        return f64::INFINITY;
    };
    match s.jobs[job].migration {
        Some((from, to)) => cap_mib_s
            .min(s.bandwidth[from] / f64::from(out_transfers[from].max(1)))
            .min(s.bandwidth[to] / f64::from(in_transfers[to].max(1))),
        None => cap_mib_s,
    }
}

/// Longest path from each job to the end of the graph, the job's own duration included
/// (`duration` per job): the critical-path priority.
pub(crate) fn remaining_path(jobs: &[Job], duration: &[f64]) -> Vec<f64> {
    let order = topological_order(jobs);
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        for &d in &job.deps {
            successors[d].push(i);
        }
    }
    let mut tail = vec![0.0; jobs.len()];
    for &j in order.iter().rev() {
        let after = successors[j].iter().map(|&s| tail[s]).fold(0.0, f64::max);
        tail[j] = duration[j] + after;
    }
    tail
}

/// Kahn's order of an acyclic graph (jobs on a cycle are left out).
pub(crate) fn topological_order(jobs: &[Job]) -> Vec<usize> {
    let mut waiting: Vec<usize> = jobs.iter().map(|j| j.deps.len()).collect();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        for &d in &job.deps {
            successors[d].push(i);
        }
    }
    let mut order: Vec<usize> = (0..jobs.len()).filter(|&j| waiting[j] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        let j = order[next];
        next += 1;
        for &s in &successors[j] {
            waiting[s] -= 1;
            if waiting[s] == 0 {
                order.push(s);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(seconds: f64, deps: &[usize]) -> Job {
        Job {
            deps: deps.to_vec(),
            work: Work::Fixed(seconds),
            migration: None,
        }
    }

    fn transfer(mib: f64, from: usize, to: usize) -> Job {
        Job {
            deps: Vec::new(),
            work: Work::Transfer {
                mib,
                cap_mib_s: f64::INFINITY,
                tail_s: 0.0,
            },
            migration: Some((from, to)),
        }
    }

    fn setup<'a>(
        jobs: &'a [Job],
        bandwidth: &'a [f64],
        priority: &'a [f64],
        parallelism: u32,
    ) -> Setup<'a> {
        Setup {
            jobs,
            bandwidth,
            concurrency: Concurrency {
                parallelism,
                max_inbound_per_host: 2,
                max_outbound_per_host: 2,
            },
            priority,
            alone: &[],
            jitter: 0,
            intervals: &[],
            capacity: &[],
            needs: &[],
        }
    }

    #[test]
    fn dependencies_and_the_global_limit_order_fixed_steps() {
        let jobs = [
            fixed(10.0, &[]),
            fixed(5.0, &[0]),
            fixed(7.0, &[]),
            fixed(1.0, &[]),
        ];
        let priority = remaining_path(&jobs, &[10.0, 5.0, 7.0, 1.0]);
        assert_eq!(priority, vec![15.0, 5.0, 7.0, 1.0]);
        let run = run(&setup(&jobs, &[], &priority, 2)).unwrap();
        // 0 and 2 first (longest paths), 3 when 2 ends, 1 when 0 ends.
        assert_eq!(run.start, vec![0.0, 10.0, 0.0, 7.0]);
        assert_eq!(run.finish, vec![10.0, 15.0, 7.0, 8.0]);
        assert_eq!(run.makespan, 15.0);
    }

    #[test]
    fn transfers_on_one_link_share_it() {
        // Two transfers out of host 0 (1000 MiB/s) to hosts 1 and 2: each gets half.
        let jobs = [transfer(1000.0, 0, 1), transfer(3000.0, 0, 2)];
        let bandwidth = [1000.0, 1000.0, 1000.0];
        let run = run(&setup(&jobs, &bandwidth, &[0.0, 0.0], 4)).unwrap();
        // Both at 500 MiB/s until the first ends at 2 s; the second then has 2000 MiB left
        // at the full 1000 MiB/s: 4 s in all, exactly the link's bytes over its bandwidth.
        assert!(
            (run.finish[0] - 2.0).abs() < 1e-9 && (run.finish[1] - 4.0).abs() < 1e-9,
            "{run:?}"
        );
    }

    #[test]
    fn per_host_migration_limits_hold_transfers_back() {
        let jobs = [
            transfer(1000.0, 0, 1),
            transfer(1000.0, 0, 2),
            transfer(1000.0, 0, 3),
        ];
        let bandwidth = [3000.0, 1000.0, 1000.0, 1000.0];
        let mut s = setup(&jobs, &bandwidth, &[3.0, 2.0, 1.0], 8);
        s.concurrency.max_outbound_per_host = 2;
        let run = run(&s).unwrap();
        assert_eq!(run.start[..2], [0.0, 0.0]);
        assert!(
            (run.start[2] - 1.0).abs() < 1e-9,
            "the third waits for an outbound slot: {run:?}"
        );
    }

    #[test]
    fn a_budget_of_one_serialises_its_intervals_and_hands_its_place_on() {
        let jobs = [fixed(10.0, &[]), fixed(10.0, &[]), fixed(10.0, &[])];
        let intervals = [
            Interval {
                start: 0,
                end: 0,
                budget: 0,
            },
            Interval {
                start: 1,
                end: 1,
                budget: 0,
            },
            Interval {
                start: 2,
                end: 2,
                budget: 1,
            },
        ];
        let s = Setup {
            intervals: &intervals,
            capacity: &[1, 1],
            needs: &[vec![], vec![], vec![]],
            ..setup(&jobs, &[], &[3.0, 2.0, 1.0], 4)
        };
        let run = run(&s).unwrap();
        assert_eq!(run.start, vec![0.0, 10.0, 0.0]);
        assert_eq!(run.slot, vec![0, 0, 0]);
    }

    #[test]
    fn intervals_that_need_each_other_beyond_the_budget_are_stuck() {
        // Interval 0 (job 0 → job 2) cannot end before interval 1 starts (job 1 → job 2),
        // and the other way round: both must be open together, which a budget of 1 forbids.
        let jobs = [
            fixed(1.0, &[]),
            fixed(1.0, &[]),
            fixed(1.0, &[0, 1]),
            fixed(1.0, &[0, 1]),
        ];
        let intervals = [
            Interval {
                start: 0,
                end: 2,
                budget: 0,
            },
            Interval {
                start: 1,
                end: 3,
                budget: 0,
            },
        ];
        let needs = [vec![1], vec![0]];
        let s = Setup {
            intervals: &intervals,
            capacity: &[1],
            needs: &needs,
            ..setup(&jobs, &[], &[0.0; 4], 4)
        };
        assert_eq!(
            run(&s),
            Err(Stuck {
                waiting: vec![0, 1]
            })
        );
        let roomy = Setup {
            capacity: &[2],
            ..s
        };
        assert!(run(&roomy).is_ok());
    }

    #[test]
    fn a_free_slot_goes_to_a_transfer_on_an_idle_link_first() {
        // Host 0 has two transfers to send, host 3 one; two slots. Sharing host 0's link would
        // run both of its transfers at half speed in both slots while host 3's link idles.
        let jobs = [
            transfer(1000.0, 0, 1),
            transfer(1000.0, 0, 2),
            transfer(1000.0, 3, 4),
        ];
        let bandwidth = [1000.0; 5];
        let run = run(&setup(&jobs, &bandwidth, &[3.0, 2.0, 1.0], 2)).unwrap();
        assert_eq!((run.start[0], run.start[2]), (0.0, 0.0), "{run:?}");
        assert!((run.start[1] - 1.0).abs() < 1e-9, "{run:?}");
        assert!((run.makespan - 2.0).abs() < 1e-9, "{run:?}");
        // With a third slot left over, the second transfer shares host 0's link after all.
        let roomy = run_with(&jobs, &bandwidth, 3);
        assert_eq!(roomy.start, vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_host_with_more_migration_work_left_gets_the_slots_first() {
        // Host 0 sends three 10 s transfers (to hosts 1–3); hosts 4 and 5 one 12 s transfer
        // each (to 6 and 7); two slots. By critical path alone the 12 s transfers go first and
        // host 0's three then run one after another: 12 + 30 = 42 s. Counting host 0's backlog
        // (30 s) keeps its link busy from the start: 30 s, the link's own work.
        let mut jobs: Vec<Job> = (1..=3).map(|to| transfer(100.0, 0, to)).collect();
        jobs.push(transfer(120.0, 4, 6));
        jobs.push(transfer(120.0, 5, 7));
        let bandwidth = [10.0; 8];
        let alone = [10.0, 10.0, 10.0, 12.0, 12.0];
        let path = remaining_path(&jobs, &alone);
        let critical_path_only = run(&setup(&jobs, &bandwidth, &path, 2)).unwrap();
        assert!(
            (critical_path_only.makespan - 42.0).abs() < 1e-9,
            "{critical_path_only:?}"
        );
        let with_backlog = run(&Setup {
            alone: &alone,
            ..setup(&jobs, &bandwidth, &path, 2)
        })
        .unwrap();
        assert!(
            (with_backlog.makespan - 30.0).abs() < 1e-9,
            "{with_backlog:?}"
        );
        // Host 0's transfers never overlap (its link would only be shared, not faster).
        let mut host0: Vec<(f64, f64)> = (0..3)
            .map(|j| (with_backlog.start[j], with_backlog.finish[j]))
            .collect();
        host0.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            host0.windows(2).all(|w| w[0].1 <= w[1].0 + 1e-9),
            "{host0:?}"
        );
    }

    /// xorshift: `next(n)` is uniform in `0..n`, the same sequence from the same state.
    fn generator(mut state: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        }
    }

    /// 40 random job sets from `draw`, each on `hosts` hosts of 1 MiB/s and `parallelism`
    /// slots: the best of `best_of`'s orders is never worse than the best of the first
    /// `baseline` seeds' runs, and its seed replays it. Returns how many sets it improved.
    fn improvements(
        mut draw: impl FnMut() -> Vec<Job>,
        hosts: usize,
        parallelism: u32,
        baseline: u64,
    ) -> usize {
        let mut improved = 0;
        for _ in 0..40 {
            let jobs = draw();
            let alone: Vec<f64> = jobs
                .iter()
                .map(|j| match j.work {
                    Work::Transfer { mib, .. } => mib,
                    Work::Fixed(s) => s,
                })
                .collect();
            let path = remaining_path(&jobs, &alone);
            let bandwidth = vec![1.0; hosts];
            let s = Setup {
                alone: &alone,
                ..setup(&jobs, &bandwidth, &path, parallelism)
            };
            let first = (0..baseline)
                .map(|seed| run(&Setup { jitter: seed, ..s }).unwrap().makespan)
                .fold(f64::INFINITY, f64::min);
            let (seed, best) = best_of(&s).unwrap();
            assert!(best.makespan <= first + 1e-9);
            assert_eq!(
                run(&Setup { jitter: seed, ..s }).unwrap(),
                best,
                "seed {seed} gives another schedule"
            );
            improved += usize::from(best.makespan < first - 1e-9);
        }
        improved
    }

    #[test]
    fn the_best_of_several_orders_is_never_worse_and_its_seed_replays_it() {
        // Random sets of independent transfers (sizes 60–130 s at 1 MiB/s) between 12 hosts,
        // 5 slots: the plain order and the best of the perturbed ones.
        let mut next = generator(0x2545_f491_4f6c_dd1d);
        let draw = || {
            (0..30)
                .map(|_| {
                    let from = next(6) as usize;
                    transfer(60.0 + next(71) as f64, from, 6 + next(6) as usize)
                })
                .collect()
        };
        let improved = improvements(draw, 12, 5, 1);
        assert!(improved > 0, "no random set was improved by another order");
    }

    #[test]
    fn the_improver_orders_beat_the_first_ones_somewhere_and_their_seeds_replay() {
        // Random chains (a fixed step, a transfer, a fixed step) between 8 hosts, 3 slots: the
        // improver's wide orders (seeds from MULTI_START_ORDERS on) also reorder fixed-cost
        // steps, which the backlog perturbations of the first orders never touch.
        assert!(improver_orders(24) >= MULTI_START_ORDERS);
        let mut next = generator(0x9e37_79b9_7f4a_7c15);
        let draw = || {
            let mut jobs: Vec<Job> = Vec::new();
            for _ in 0..8 {
                let base = jobs.len();
                jobs.push(fixed(5.0 + next(100) as f64, &[]));
                let from = next(4) as usize;
                let mut t = transfer(20.0 + next(80) as f64, from, 4 + next(4) as usize);
                t.deps = vec![base];
                jobs.push(t);
                jobs.push(fixed(5.0 + next(100) as f64, &[base + 1]));
            }
            jobs
        };
        let improved = improvements(draw, 8, 3, MULTI_START_ORDERS);
        assert!(improved > 0, "the improver never beat the first orders");
    }

    #[test]
    fn large_plans_get_no_improver_orders() {
        assert_eq!(improver_orders(MULTI_START_MAX_JOBS), 0);
        assert_eq!(improver_orders(100_000), 0);
        assert_eq!(improver_orders(10), IMPROVER_MAX_ORDERS);
    }

    fn run_with(jobs: &[Job], bandwidth: &[f64], parallelism: u32) -> Run {
        run(&setup(jobs, bandwidth, &[3.0, 2.0, 1.0], parallelism)).unwrap()
    }
}
