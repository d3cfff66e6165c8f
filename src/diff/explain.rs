//! Explanations of infeasible intents: when no host can take a guest (or an affinity group),
//! the smallest set of rules and capacities that together rule out every host, with the hosts
//! each of them rules out and the numbers, instead of a bare "no solution".
//!
//! Finding the smallest set is a set cover: each constraint covers the hosts it rules out.
//! Hosts with the same constraints are one case, so the search runs over distinct cases; it is
//! exact (combinations by increasing size, in the constraints' order) up to [`EXACT_LIMIT`]
//! distinct constraints and greedy beyond.

use std::collections::{BTreeMap, BTreeSet};

use super::fit::{Constraint, Violation, World, constraint_name};

/// Up to this many distinct constraints the smallest set is found exactly.
const EXACT_LIMIT: usize = 16;
/// How many hosts one constraint's part of an explanation names before counting the rest.
const HOSTS_PER_CONSTRAINT: usize = 6;

/// Why no host can take `subject` (`vm03 (64 GiB, 8 vCPUs) off drained exa01adm01`), given
/// every host considered with the violations that rule it out.
pub(crate) fn no_host(
    world: &World,
    subject: &str,
    per_host: &[(String, Vec<Violation>)],
) -> String {
    if per_host.is_empty() {
        return format!("no host can take {subject}: there is no other host");
    }
    let constraints: Vec<Constraint> = per_host
        .iter()
        .flat_map(|(_, violations)| violations.iter().map(|v| v.constraint.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index = |c: &Constraint| constraints.binary_search(c).unwrap_or(0);
    // Distinct cases: the set of constraint indices ruling a host out.
    let cases: BTreeSet<Vec<usize>> = per_host
        .iter()
        .map(|(_, violations)| {
            let mut case: Vec<usize> = violations.iter().map(|v| index(&v.constraint)).collect();
            case.sort_unstable();
            case.dedup();
            case
        })
        .collect();
    if cases.iter().any(Vec::is_empty) {
        // A host nothing rules out: the caller found no room for reasons this module does not
        // model; list what is known.
        let fits: Vec<&str> = per_host
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(h, _)| h.as_str())
            .collect();
        return format!(
            "no host can take {subject}: no rule rules out {}, yet it was not placed there",
            fits.join(", ")
        );
    }
    let cover = smallest_cover(constraints.len(), &cases);

    // Each host is shown under the first constraint of the cover that rules it out.
    let mut shown: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (host, violations) in per_host {
        let Some(&first) = cover
            .iter()
            .find(|&&c| violations.iter().any(|v| index(&v.constraint) == c))
        else {
            continue;
        };
        let violation = violations.iter().find(|v| index(&v.constraint) == first);
        shown
            .entry(first)
            .or_default()
            .push(host_entry(host, violation));
    }
    let names: Vec<String> = cover
        .iter()
        .map(|&c| headline(world, &constraints[c]))
        .collect();
    let parts: Vec<String> = cover
        .iter()
        .map(|&c| {
            let hosts = shown.remove(&c).unwrap_or_default();
            format!(
                "{} rules out {}",
                constraint_name(world, &constraints[c]),
                list(&hosts)
            )
        })
        .collect();
    format!(
        "no host can take {subject}; the smallest conflicting set is {}: {}",
        names.join(" + "),
        parts.join("; ")
    )
}

/// A constraint as the summary names it; an anti-affinity group says how many hosts it needs.
fn headline(world: &World, constraint: &Constraint) -> String {
    let name = constraint_name(world, constraint);
    match constraint {
        Constraint::AntiAffinity(group) => match world.rules.anti_affinity.get(*group) {
            Some(g) => format!(
                "{name} ({} members need {} hosts)",
                g.members.len(),
                g.members.len()
            ),
            None => name,
        },
        _ => name,
    }
}

/// `exa01adm05 (only 32 GiB free, 64 GiB needed)`; a bare name where the constraint says it all.
fn host_entry(host: &str, violation: Option<&Violation>) -> String {
    match violation {
        Some(v)
            if !matches!(
                v.constraint,
                Constraint::Refusal(_) | Constraint::Ban(_) | Constraint::Unreachable
            ) =>
        {
            format!("{host} ({})", v.detail)
        }
        _ => host.to_string(),
    }
}

fn list(hosts: &[String]) -> String {
    let mut text = hosts
        .iter()
        .take(HOSTS_PER_CONSTRAINT)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if hosts.len() > HOSTS_PER_CONSTRAINT {
        text.push_str(&format!(" and {} more", hosts.len() - HOSTS_PER_CONSTRAINT));
    }
    text
}

/// Indices of the fewest constraints that meet every case (each case is a non-empty sorted set
/// of constraint indices); among equally small sets, the first in the constraints' order.
fn smallest_cover(count: usize, cases: &BTreeSet<Vec<usize>>) -> Vec<usize> {
    let covers = |chosen: &[usize]| {
        cases
            .iter()
            .all(|case| case.iter().any(|c| chosen.contains(c)))
    };
    if count <= EXACT_LIMIT {
        for size in 1..=count {
            let mut combination: Vec<usize> = (0..size).collect();
            loop {
                if covers(&combination) {
                    return combination;
                }
                if !next_combination(&mut combination, count) {
                    break;
                }
            }
        }
    }
    // Greedy: the constraint meeting the most unmet cases, first in order on ties.
    let mut chosen: Vec<usize> = Vec::new();
    let mut unmet: Vec<&Vec<usize>> = cases.iter().collect();
    while !unmet.is_empty() {
        let best = (0..count).filter(|c| !chosen.contains(c)).max_by_key(|c| {
            (
                unmet.iter().filter(|case| case.contains(c)).count(),
                std::cmp::Reverse(*c),
            )
        });
        let Some(best) = best else { break };
        chosen.push(best);
        unmet.retain(|case| !case.contains(&best));
    }
    chosen.sort_unstable();
    chosen
}

/// Advances `combination` (strictly increasing indices below `n`) to the next one in
/// lexicographic order; false after the last.
fn next_combination(combination: &mut [usize], n: usize) -> bool {
    let k = combination.len();
    for i in (0..k).rev() {
        if combination[i] < n - k + i {
            combination[i] += 1;
            for j in i + 1..k {
                combination[j] = combination[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(sets: &[&[usize]]) -> BTreeSet<Vec<usize>> {
        sets.iter().map(|s| s.to_vec()).collect()
    }

    #[test]
    fn the_cover_is_the_smallest_and_the_first_in_order() {
        // Constraint 3 alone meets every case, although 0 and 1 come first.
        assert_eq!(
            smallest_cover(4, &cases(&[&[0, 3], &[1, 3], &[2, 3]])),
            vec![3]
        );
        // Two are needed; {0, 2} and {1, 2} both work, {0, 2} comes first.
        assert_eq!(smallest_cover(3, &cases(&[&[0, 1], &[2]])), vec![0, 2]);
        assert_eq!(smallest_cover(1, &cases(&[&[0]])), vec![0]);
    }

    #[test]
    fn many_constraints_fall_back_to_a_greedy_cover_that_meets_every_case() {
        let sets: Vec<Vec<usize>> = (0..20).map(|i| vec![i]).chain([vec![0, 19]]).collect();
        let all: BTreeSet<Vec<usize>> = sets.into_iter().collect();
        let cover = smallest_cover(20, &all);
        assert_eq!(cover, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn combinations_run_in_lexicographic_order() {
        let mut c = vec![0, 1];
        let mut seen = vec![c.clone()];
        while next_combination(&mut c, 4) {
            seen.push(c.clone());
        }
        assert_eq!(
            seen,
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
    }
}
