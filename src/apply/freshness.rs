//! Is a saved plan still true? A plan is applied only while what it was made from still holds:
//! the same es.xml and configuration, every guest on the host and in the state the plan saw,
//! and the same room on every host. Each difference is named, so the operator knows why the
//! plan was refused.

use std::collections::BTreeSet;

use crate::plan::{Fingerprints, HostSummary, Plan};

/// First 12 hex digits of a sha256, for messages.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// `host/state` as fingerprinted, split at the first `/` (host names hold none).
fn split(placement: &str) -> (&str, &str) {
    placement.split_once('/').unwrap_or((placement, ""))
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

/// What differs in the room the hosts offer: capacity for guests and what is in use.
pub fn host_changes(then: &[HostSummary], now: &[HostSummary]) -> Vec<String> {
    let mut changes = Vec::new();
    for before in then {
        let Some(after) = now.iter().find(|h| h.name == before.name) else {
            changes.push(format!(
                "host {} is no longer in the inventory",
                before.name
            ));
            continue;
        };
        let h = &before.name;
        let mut differs = |what: &str, old: u64, new: u64, unit: &str| {
            if old != new {
                changes.push(format!(
                    "host {h} now has {new}{unit} {what}, the plan counted {old}{unit}"
                ));
            }
        };
        differs(
            "memory for guests",
            before.memory_mib,
            after.memory_mib,
            " MiB",
        );
        differs(
            "memory in use",
            before.memory_used_mib_before,
            after.memory_used_mib_before,
            " MiB",
        );
        differs(
            "vCPUs allowed",
            before.vcpu_limit.into(),
            after.vcpu_limit.into(),
            "",
        );
        differs(
            "vCPUs in use",
            before.vcpus_used_before.into(),
            after.vcpus_used_before.into(),
            "",
        );
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

/// Everything that makes `saved` stale, given a plan made now from the current inputs.
pub fn stale_reasons(saved: &Plan, now: &Plan) -> Vec<String> {
    let mut reasons = fingerprint_changes(&saved.fingerprints, &now.fingerprints);
    reasons.extend(host_changes(&saved.hosts, &now.hosts));
    reasons
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
    }
}
