//! Is a saved plan still true? A plan is applied only while what it was made from still holds:
//! the same es.xml and configuration, every guest on the host and in the state the plan saw,
//! and the same room on every host; and only if planning again now, with the intents the file
//! records, gives the very moves and steps it holds (so a hand-edited target, a plan whose
//! errors were emptied, a dropped or added step are refused). Each difference is named, so the
//! operator knows why the plan was refused.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::plan::{Fingerprints, HostSummary, Plan};

/// First 12 hex digits of a sha256, for messages.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// `host/state` as fingerprinted, split at the first `/` (host names hold none).
fn split(placement: &str) -> (&str, &str) {
    placement.split_once('/').unwrap_or((placement, ""))
}

/// The names that occur more than once, with how often, in name order.
fn repeated<'a>(names: impl Iterator<Item = &'a str>) -> impl Iterator<Item = (&'a str, usize)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    counts.into_iter().filter(|(_, n)| *n > 1)
}

/// What differs between the fingerprints a plan was made with and those of now.
pub fn fingerprint_changes(then: &Fingerprints, now: &Fingerprints) -> Vec<String> {
    let mut changes = Vec::new();
    if then.es_xml_sha256 != now.es_xml_sha256 {
        changes.push(format!(
            "es.xml changed since the plan was made (sha256 {}…→{}…)",
            short(&then.es_xml_sha256),
            short(&now.es_xml_sha256)
        ));
    }
    if then.config_sha256 != now.config_sha256 {
        changes.push(format!(
            "the configuration (*.hcl) changed since the plan was made (sha256 {}…→{}…)",
            short(&then.config_sha256),
            short(&now.config_sha256)
        ));
    }
    let names: BTreeSet<&String> = then.guests.keys().chain(now.guests.keys()).collect();
    for guest in names {
        match (
            then.guests.get(guest).map(|p| split(p)),
            now.guests.get(guest).map(|p| split(p)),
        ) {
            (Some((h1, _)), Some((h2, _))) if h1 != h2 => changes.push(format!(
                "guest {guest} is now on {h2}, the plan saw it on {h1}"
            )),
            (Some((_, s1)), Some((h, s2))) if s1 != s2 => changes.push(format!(
                "guest {guest} is now {s2} on {h}, the plan saw it {s1}"
            )),
            (Some((h1, _)), None) => changes.push(format!(
                "guest {guest} is no longer found, the plan saw it on {h1}"
            )),
            (None, Some((h2, _))) => changes.push(format!(
                "guest {guest} is new on {h2}, the plan did not know it"
            )),
            _ => {}
        }
    }
    changes
}

/// What differs in the room the hosts offer (capacity for guests and what is in use), and in
/// what the plan shows will follow from its moves (use after, the peak, guests before and
/// after, logical CPUs): figures the reviewer read that are not what berth works out now (a
/// resealed, edited file) make the plan stale too.
pub fn host_changes(then: &[HostSummary], now: &[HostSummary]) -> Vec<String> {
    let mut changes: Vec<String> = repeated(then.iter().map(|h| h.name.as_str()))
        .map(|(name, n)| format!("host {name} is in the saved plan {n} times"))
        .collect();
    for before in then {
        let Some(after) = now.iter().find(|h| h.name == before.name) else {
            changes.push(format!(
                "host {} is no longer in the inventory",
                before.name
            ));
            continue;
        };
        let h = &before.name;
        // Each host figure of the plan: one it counted on (the host as it was) or one it
        // shows (what the moves leave), as saved and as planned now.
        enum Figure {
            Counted,
            Shown,
        }
        use Figure::{Counted, Shown};
        let figures: [(Figure, &str, u64, u64, &str); 10] = [
            (
                Counted,
                "memory for guests",
                before.memory_mib,
                after.memory_mib,
                " MiB",
            ),
            (
                Counted,
                "memory in use",
                before.memory_used_mib_before,
                after.memory_used_mib_before,
                " MiB",
            ),
            (
                Counted,
                "vCPUs allowed",
                before.vcpu_limit.into(),
                after.vcpu_limit.into(),
                "",
            ),
            (
                Counted,
                "vCPUs in use",
                before.vcpus_used_before.into(),
                after.vcpus_used_before.into(),
                "",
            ),
            (
                Counted,
                "logical CPUs",
                before.cpus.into(),
                after.cpus.into(),
                "",
            ),
            (
                Counted,
                "guests",
                before.guests_before as u64,
                after.guests_before as u64,
                "",
            ),
            (
                Shown,
                "memory in use after it",
                before.memory_used_mib_after,
                after.memory_used_mib_after,
                " MiB",
            ),
            (
                Shown,
                "memory at its peak",
                before.memory_peak_mib,
                after.memory_peak_mib,
                " MiB",
            ),
            (
                Shown,
                "vCPUs in use after it",
                before.vcpus_used_after.into(),
                after.vcpus_used_after.into(),
                "",
            ),
            (
                Shown,
                "guests after it",
                before.guests_after as u64,
                after.guests_after as u64,
                "",
            ),
        ];
        for (figure, what, old, new, unit) in figures {
            if old != new {
                changes.push(match figure {
                    Counted => {
                        format!("host {h} now has {new}{unit} {what}, the plan counted {old}{unit}")
                    }
                    Shown => format!(
                        "host {h}: the plan shows {old}{unit} {what}, planned now it is {new}{unit}"
                    ),
                });
            }
        }
    }
    for after in now
        .iter()
        .filter(|a| !then.iter().any(|b| b.name == a.name))
    {
        changes.push(format!(
            "host {} is new in the inventory, the plan did not know it",
            after.name
        ));
    }
    changes
}

/// Everything that makes `saved` stale, given a plan made now from the current inputs and the
/// intents `saved` records.
pub fn stale_reasons(saved: &Plan, now: &Plan) -> Vec<String> {
    let mut reasons = fingerprint_changes(&saved.fingerprints, &now.fingerprints);
    reasons.extend(host_changes(&saved.hosts, &now.hosts));
    reasons.extend(plan_differences(saved, now));
    reasons
}

/// A JSON value for a message: compact, cut at 120 characters.
fn shown(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "absent".to_string();
    };
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// Every member of two JSON objects that differs, as `` `field` saved X, now Y ``.
fn field_differences<T: Serialize>(saved: &T, now: &T) -> Vec<String> {
    let object = |v: &T| match serde_json::to_value(v) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (object(saved), object(now));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("`{k}` saved {}, now {}", shown(a.get(k)), shown(b.get(k))))
        .collect()
}

/// What differs between the saved plan and the plan made now: errors the plan has now (or
/// records), and every move, step and skipped step that is not the same, field by field.
pub fn plan_differences(saved: &Plan, now: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for e in &saved.errors {
        out.push(format!(
            "the saved plan records an error: {}: {}",
            e.code, e.message
        ));
    }
    for e in &now.errors {
        out.push(format!(
            "planned now, it has an error: {}: {}",
            e.code, e.message
        ));
    }
    if saved.es_xml_path != now.es_xml_path {
        out.push(format!(
            "es.xml path: saved {}, now {}",
            saved.es_xml_path, now.es_xml_path
        ));
    }

    // Moves, by guest and the guest's n-th move.
    fn keyed(plan: &Plan) -> BTreeMap<String, &crate::diff::Move> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut moves = BTreeMap::new();
        for mv in &plan.moves {
            let n = seen.entry(mv.guest.clone()).or_default();
            *n += 1;
            let key = match *n {
                1 => mv.guest.clone(),
                n => format!("{} (move {n})", mv.guest),
            };
            moves.insert(key, mv);
        }
        moves
    }
    let (then, current) = (keyed(saved), keyed(now));
    for key in then.keys().chain(current.keys()).collect::<BTreeSet<_>>() {
        match (then.get(key), current.get(key)) {
            (Some(a), Some(b)) => out.extend(
                field_differences(*a, *b)
                    .into_iter()
                    .map(|d| format!("move of guest {key}: {d}")),
            ),
            (Some(a), None) => out.push(format!(
                "move of guest {key} ({} → {}) is in the saved plan, and planned now there is none",
                a.from, a.to
            )),
            (None, Some(b)) => out.push(format!(
                "move of guest {key} ({} → {}) is planned now, and the saved plan has none",
                b.from, b.to
            )),
            (None, None) => {}
        }
    }
    if saved.moves.len() == now.moves.len()
        && then.len() == current.len()
        && saved
            .moves
            .iter()
            .zip(&now.moves)
            .any(|(a, b)| a.guest != b.guest)
    {
        out.push("the moves are in another order than planned now".into());
    }

    // Steps, by id; an id twice would be one step in the comparison and two in the file.
    out.extend(
        repeated(saved.steps.iter().map(|s| s.id.as_str()))
            .map(|(id, n)| format!("step {id} is in the saved plan {n} times")),
    );
    fn steps(plan: &Plan) -> BTreeMap<String, &crate::schedule::Step> {
        plan.steps.iter().map(|s| (s.id.clone(), s)).collect()
    }
    let (then, current) = (steps(saved), steps(now));
    for id in then.keys().chain(current.keys()).collect::<BTreeSet<_>>() {
        match (then.get(id), current.get(id)) {
            (Some(a), Some(b)) => out.extend(
                field_differences(*a, *b)
                    .into_iter()
                    .map(|d| format!("step {id}: {d}")),
            ),
            (Some(_), None) => out.push(format!(
                "step {id} is in the saved plan, and planned now there is no such step"
            )),
            (None, Some(_)) => out.push(format!(
                "step {id} is planned now, and the saved plan has no such step"
            )),
            (None, None) => {}
        }
    }
    if saved.skipped_steps != now.skipped_steps {
        out.push(format!(
            "the steps left out differ: saved {}, now {}",
            shown(serde_json::to_value(&saved.skipped_steps).ok().as_ref()),
            shown(serde_json::to_value(&now.skipped_steps).ok().as_ref())
        ));
    }
    if saved.es_xml_diff != now.es_xml_diff {
        out.push(
            "the change to es.xml (es_xml_diff) is not the one planned now from the same moves"
                .into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prints(es: &str, cfg: &str, guests: &[(&str, &str)]) -> Fingerprints {
        Fingerprints {
            es_xml_sha256: es.into(),
            config_sha256: cfg.into(),
            guests: guests
                .iter()
                .map(|(g, p)| (g.to_string(), p.to_string()))
                .collect(),
        }
    }

    #[test]
    fn names_every_changed_input() {
        let then = prints(
            "8ecbd0e70916aaaa",
            "c0ffee000000aaaa",
            &[
                ("vm01", "adm01/running"),
                ("vm02", "adm01/running"),
                ("vm03", "adm02/shut off"),
            ],
        );
        let now = prints(
            "1234567890abbbbb",
            "c0ffee000000aaaa",
            &[
                ("vm01", "adm02/running"),
                ("vm02", "adm01/shut off"),
                ("vm04", "adm03/running"),
            ],
        );
        assert_eq!(
            fingerprint_changes(&then, &now),
            [
                "es.xml changed since the plan was made (sha256 8ecbd0e70916…→1234567890ab…)",
                "guest vm01 is now on adm02, the plan saw it on adm01",
                "guest vm02 is now shut off on adm01, the plan saw it running",
                "guest vm03 is no longer found, the plan saw it on adm02",
                "guest vm04 is new on adm03, the plan did not know it",
            ]
        );
        assert!(fingerprint_changes(&then, &then).is_empty());
    }

    #[test]
    fn names_hosts_whose_room_changed() {
        let host = |name: &str, mem: u64, used: u64| HostSummary {
            name: name.into(),
            memory_mib: mem,
            memory_used_mib_before: used,
            memory_used_mib_after: 0,
            cpus: 8,
            vcpu_limit: 8,
            vcpus_used_before: 2,
            vcpus_used_after: 0,
            guests_before: 1,
            guests_after: 0,
            memory_peak_mib: 0,
        };
        let then = [host("adm01", 1000, 100), host("adm02", 1000, 0)];
        let now = [host("adm01", 900, 100), host("adm03", 1000, 0)];
        assert_eq!(
            host_changes(&then, &now),
            [
                "host adm01 now has 900 MiB memory for guests, the plan counted 1000 MiB",
                "host adm02 is no longer in the inventory",
                "host adm03 is new in the inventory, the plan did not know it",
            ]
        );
        assert!(host_changes(&then, &then).is_empty());
        // Found by the `plan_resealed` fuzz target: a host listed twice in an edited file.
        let twice = [then[0].clone(), then[0].clone(), then[1].clone()];
        assert_eq!(
            host_changes(&twice, &then),
            ["host adm01 is in the saved plan 2 times"]
        );
    }

    /// Found by the `plan_resealed` fuzz target: a plan file whose host figures were edited
    /// (and resealed) while its moves and steps were not got no stale reason, so apply would
    /// have run it with the reviewer shown other figures than berth works out.
    #[test]
    fn names_host_figures_the_plan_shows_that_are_not_what_it_plans_now() {
        let host = HostSummary {
            name: "adm01".into(),
            memory_mib: 1000,
            memory_used_mib_before: 100,
            memory_used_mib_after: 300,
            cpus: 8,
            vcpu_limit: 8,
            vcpus_used_before: 2,
            vcpus_used_after: 4,
            guests_before: 1,
            guests_after: 2,
            memory_peak_mib: 400,
        };
        let edited = HostSummary {
            memory_used_mib_after: 200,
            cpus: 16,
            vcpus_used_after: 3,
            guests_before: 2,
            guests_after: 1,
            memory_peak_mib: 300,
            ..host.clone()
        };
        assert_eq!(
            host_changes(&[edited], &[host]),
            [
                "host adm01 now has 8 logical CPUs, the plan counted 16",
                "host adm01 now has 1 guests, the plan counted 2",
                "host adm01: the plan shows 200 MiB memory in use after it, planned now it is 300 MiB",
                "host adm01: the plan shows 300 MiB memory at its peak, planned now it is 400 MiB",
                "host adm01: the plan shows 3 vCPUs in use after it, planned now it is 4",
                "host adm01: the plan shows 1 guests after it, planned now it is 2",
            ]
        );
    }

    #[test]
    fn names_every_move_step_and_error_that_differs_from_the_plan_made_now() {
        let mut now = crate::plan::sample::sample_plan();
        now.errors.clear();
        assert_eq!(plan_differences(&now, &now), Vec::<String>::new());

        // Found by the `plan_resealed` fuzz target: a step listed twice in an edited file.
        let mut twice = now.clone();
        twice.steps.push(now.steps[0].clone());
        assert_eq!(
            plan_differences(&twice, &now),
            [format!(
                "step {} is in the saved plan 2 times",
                now.steps[0].id
            )]
        );

        let mut saved = now.clone();
        let guest = saved.moves[0].guest.clone();
        saved.moves[0].to = "elsewhere".into();
        let dropped = saved.steps.pop().unwrap();
        saved.steps[0].depends_on.push("invented".into());
        let first = saved.steps[0].id.clone();
        let mut extra = now.clone();
        extra.errors.push(crate::plan::PlanError {
            code: "capacity".into(),
            message: "no room".into(),
            guest: None,
            host: None,
        });
        let reasons = plan_differences(&saved, &extra);
        let to_now = serde_json::to_string(&now.moves[0].to).unwrap();
        assert!(
            reasons.contains(&"planned now, it has an error: capacity: no room".to_string()),
            "{reasons:#?}"
        );
        assert!(
            reasons.contains(&format!(
                "move of guest {guest}: `to` saved \"elsewhere\", now {to_now}"
            )),
            "{reasons:#?}"
        );
        assert!(
            reasons.contains(&format!(
                "step {} is planned now, and the saved plan has no such step",
                dropped.id
            )),
            "{reasons:#?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with(&format!("step {first}: `depends_on` saved "))),
            "{reasons:#?}"
        );
    }
}
