//! A lower bound from indivisible work: `k·m + 1` jobs on a resource that runs `m` at once put
//! `k + 1` of them one after another.
//!
//! The energy bounds (`timing::Resource`: earliest head + work ÷ rate + least tail) treat work
//! as if it could be cut anywhere: seven 120 s boots on six slots count as 140 s. They cannot
//! be cut: any schedule of unit-demand jobs within a capacity of `m` can be laid out on `m`
//! lanes (an interval graph is coloured with as many colours as its largest clique), so of any
//! `k·m + 1` of them some lane holds `k + 1`, which run one after another. If all of them
//! start no earlier than `h` and are followed by at least `t`, the makespan is at least
//! `h + (the k + 1 shortest of them) + t`; taking the `k·m + 1` longest jobs whose head is at
//! least `h` and tail at least `t` gives the strongest such bound for `h`, `t` and `k`. The
//! seven boots after a 95 s head: 95 + 2 × 120 = 335 s, the proven optimum of CP-SAT bench
//! instance 2 (the energy bound said 251 s).
//!
//! The thresholds `h` and `t` tried are the jobs' own heads and tails (at most
//! [`THRESHOLDS`] of each, spread over their range), and only for resources of at most
//! [`MAX_ITEMS`] jobs: on large plans the energy bounds are already within a fraction of a
//! per cent of the schedule (docs/benchmarks.md), and this one costs a sort per threshold.

/// At most this many head thresholds, and as many tail thresholds, per resource.
pub(crate) const THRESHOLDS: usize = 12;

/// Resources with more jobs than this are left to the energy bounds.
pub(crate) const MAX_ITEMS: usize = 5_000;

/// One job on the resource: how long it holds a unit of it, the earliest it can start, and the
/// least time that must follow its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Item {
    pub duration: f64,
    pub head: f64,
    pub tail: f64,
}

/// The bound for `items` on a resource that runs `capacity` of them at once; 0 when there are
/// no more items than places (or too many to try, see [`MAX_ITEMS`]).
pub(crate) fn bound(items: &[Item], capacity: u32) -> f64 {
    let m = capacity.max(1) as usize;
    if items.len() <= m || items.len() > MAX_ITEMS {
        return 0.0;
    }
    let heads = thresholds(items.iter().map(|i| i.head));
    let tails = thresholds(items.iter().map(|i| i.tail));
    let mut best: f64 = 0.0;
    let mut durations: Vec<f64> = Vec::with_capacity(items.len());
    for &h in &heads {
        for &t in &tails {
            durations.clear();
            durations.extend(
                items
                    .iter()
                    .filter(|i| i.head >= h && i.tail >= t)
                    .map(|i| i.duration),
            );
            if durations.len() <= m {
                continue;
            }
            durations.sort_by(|a, b| b.total_cmp(a));
            // k·m + 1 longest: the k + 1 shortest of them are durations[k·(m−1) ..= k·m].
            let mut k = 1;
            while k * m < durations.len() {
                let lane: f64 = durations[k * (m - 1)..=k * m].iter().sum();
                best = best.max(h + lane + t);
                k += 1;
            }
        }
    }
    best
}

/// The distinct values, at most [`THRESHOLDS`] of them spread evenly over the sorted list
/// (the smallest always in: it leaves no job out).
fn thresholds(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut all: Vec<f64> = values.collect();
    all.sort_by(f64::total_cmp);
    all.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    if all.len() <= THRESHOLDS {
        return all;
    }
    (0..THRESHOLDS)
        .map(|i| all[i * (all.len() - 1) / (THRESHOLDS - 1)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(duration: f64, head: f64, tail: f64) -> Item {
        Item {
            duration,
            head,
            tail,
        }
    }

    #[test]
    fn one_more_job_than_places_puts_two_in_a_row() {
        // Seven 120 s boots after a 95 s head, six places: two in a row, 335 s.
        let boots = vec![item(120.0, 95.0, 0.0); 7];
        assert_eq!(bound(&boots, 6), 95.0 + 240.0);
        // Six fit side by side: nothing beyond one boot, which this bound leaves to others.
        assert_eq!(bound(&boots[..6], 6), 0.0);
        // Thirteen on six: three in a row.
        assert_eq!(bound(&vec![item(120.0, 95.0, 0.0); 13], 6), 95.0 + 360.0);
    }

    #[test]
    fn the_shortest_of_the_longest_count_and_thresholds_leave_early_jobs_out() {
        // Three intervals of 215 s on a budget of 2 (CP-SAT bench instance 46): 430 s.
        let intervals = vec![item(215.0, 0.0, 0.0); 3];
        assert_eq!(bound(&intervals, 2), 430.0);
        // Durations 100, 50, 10 on two places: 50 + 10 (the two shortest of the three).
        let mixed = [
            item(100.0, 0.0, 0.0),
            item(50.0, 0.0, 0.0),
            item(10.0, 0.0, 0.0),
        ];
        assert_eq!(bound(&mixed, 2), 60.0);
        // A later head on the two long ones: 40 + 100 + 50 beats 0 + 50 + 10.
        let late = [
            item(100.0, 40.0, 5.0),
            item(50.0, 40.0, 5.0),
            item(10.0, 0.0, 0.0),
        ];
        assert_eq!(bound(&late, 1), (40.0 + 150.0 + 5.0_f64).max(160.0));
    }

    #[test]
    fn the_bound_never_beats_a_schedule_that_exists() {
        // Random unit-demand jobs, no dependencies: a greedy lane schedule (longest first onto
        // the lane free first, each job no earlier than its head) is a schedule, so the bound
        // (with every tail 0) may never exceed its makespan.
        let mut state = 0x1234_5678_9abc_def1_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..500 {
            let m = 1 + next(4) as u32;
            let items: Vec<Item> = (0..1 + next(12))
                .map(|_| item(1.0 + next(50) as f64, next(30) as f64, 0.0))
                .collect();
            let mut order: Vec<&Item> = items.iter().collect();
            order.sort_by(|a, b| a.head.total_cmp(&b.head));
            let mut lanes = vec![0.0_f64; m as usize];
            for it in order {
                let lane = (0..lanes.len())
                    .min_by(|&a, &b| lanes[a].total_cmp(&lanes[b]))
                    .unwrap();
                lanes[lane] = lanes[lane].max(it.head) + it.duration;
            }
            let makespan = lanes.iter().copied().fold(0.0, f64::max);
            assert!(bound(&items, m) <= makespan + 1e-9, "{items:?} on {m}");
        }
    }
}
