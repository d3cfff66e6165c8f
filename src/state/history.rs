//! What earlier applies did, read from the state file for the intents that need it
//! (`return_home`). The caller (CLI, apply) hands it to planning as plain data ([`History`]):
//! neither diff nor plan reads the state file.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::config::Config;
use crate::diff::History;
use crate::plan::PlanError;
use crate::schedule::StepKind;

use super::{JournalEntry, State, StateStore, StepStatus};

/// The history `cfg`'s intents need: empty unless a host has `return_home`, in which case the
/// state file must exist and be readable (otherwise nothing could be brought back, and the plan
/// says why instead of silently doing nothing).
///
/// A `rolling_maintenance` block with `hosts` reads the state too, for the hosts it already
/// serviced; without a state file nothing was serviced, which is no error.
pub fn history(cfg: &Config) -> Result<History, PlanError> {
    let wanted: Vec<&str> = cfg
        .hosts
        .values()
        .filter(|h| h.return_home || h.maintenance == Some(false))
        .map(|h| h.name.value.as_str())
        .collect();
    let rolling_hosts = cfg.rolling.as_ref().is_some_and(|r| !r.hosts.is_empty());
    if wanted.is_empty() && !rolling_hosts {
        return Ok(History::default());
    }
    let path = &cfg.state.path;
    let error = |message: String| PlanError {
        code: "return_home".into(),
        message,
        guest: None,
        host: wanted.first().map(|h| h.to_string()),
    };
    // No file (or not even its directory): nothing was ever applied here.
    let loaded = match &cfg.state.backend {
        crate::config::StateBackendConfig::Local if !path.exists() => Ok(None),
        crate::config::StateBackendConfig::Local => {
            StateStore::open(path).and_then(|store| store.load())
        }
        crate::config::StateBackendConfig::Postgres(_) => {
            super::open(&cfg.state).and_then(|(backend, _created)| backend.load())
        }
    };
    match loaded {
        Ok(Some(state)) => Ok(History {
            departed: departed(&state),
            stopped_in_place: stopped_in_place(&state),
            serviced: state.serviced.clone(),
        }),
        Ok(None) if wanted.is_empty() => Ok(History::default()),
        Ok(None) => Err(error(format!(
            "return_home (or the end of maintenance) on {} needs {} to know which guests berth moved off or stopped there, and there is none",
            wanted.join(", "),
            match &cfg.state.backend {
                crate::config::StateBackendConfig::Local =>
                    format!("the state file {}", path.display()),
                crate::config::StateBackendConfig::Postgres(pg) =>
                    format!("the state of PostgreSQL workspace `{}`", pg.workspace),
            }
        ))),
        Err(e) if wanted.is_empty() => Err(PlanError {
            code: "rolling_maintenance".into(),
            message: format!(
                "a rolling maintenance's `hosts` needs the state to know which of them were serviced already: {e}"
            ),
            guest: None,
            host: None,
        }),
        Err(e) => Err(error(format!("return_home on {}: {e}", wanted.join(", ")))),
    }
}

/// Guest → the host berth stopped it in place on for maintenance (a completed STOP_GUEST whose
/// source and target are the same host), when no later completed step started or moved it.
pub fn stopped_in_place(state: &State) -> BTreeMap<String, String> {
    let mut done: Vec<(usize, &JournalEntry)> = state
        .journal
        .iter()
        .filter(|e| e.status == StepStatus::Done)
        .enumerate()
        .collect();
    done.sort_by_key(|(index, e)| (e.finished_at, *index));
    let mut stopped: BTreeMap<String, String> = BTreeMap::new();
    for (_, e) in done {
        match e.kind {
            StepKind::StopGuest if e.from == e.to => {
                stopped.insert(e.guest.clone(), e.from.clone());
            }
            StepKind::StartupGuest | StepKind::MigrateGuest => {
                stopped.remove(&e.guest);
            }
            _ => {}
        }
    }
    stopped
}

/// Guest → the hosts berth moved it off (completed MIGRATE_GUEST steps) and it has not come
/// back to since, oldest first.
///
/// A move routed through a pivot host (a live swap cycle broken by a stop-over: A → pivot → B)
/// is journaled as two migrations of one plan. The guest only passed through the pivot: its
/// home is where it was before the move (A), so the pivot is neither a host it came to nor
/// one it departed, even when the plan stopped there and a later plan moved the guest on.
pub fn departed(state: &State) -> BTreeMap<String, Vec<String>> {
    let migrations = || {
        state
            .journal
            .iter()
            .filter(|e| e.kind == StepKind::MigrateGuest)
    };
    // (plan, guest, host) of every migration a plan has (whatever became of it): a migration
    // whose target another migration of the same guest and plan leaves from is a pivot hop.
    let leaves: HashSet<(&str, &str, &str)> = migrations()
        .map(|e| (e.plan_id.as_str(), e.guest.as_str(), e.from.as_str()))
        .collect();
    let is_pivot_hop =
        |e: &JournalEntry| leaves.contains(&(e.plan_id.as_str(), e.guest.as_str(), e.to.as_str()));
    let mut done: Vec<_> = migrations()
        .filter(|e| e.status == StepStatus::Done)
        .enumerate()
        .collect();
    // Journal order breaks ties between steps that finished at the same instant.
    done.sort_by_key(|(index, e)| (e.finished_at, *index));
    let mut departed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Guest → the pivot host a pivot hop left it on.
    let mut stopped_over: HashMap<&str, &str> = HashMap::new();
    for (_, entry) in done {
        let hosts = departed.entry(entry.guest.clone()).or_default();
        let leaves_pivot = stopped_over.remove(entry.guest.as_str()) == Some(entry.from.as_str());
        if !leaves_pivot && !hosts.contains(&entry.from) {
            hosts.push(entry.from.clone());
        }
        if is_pivot_hop(entry) {
            stopped_over.insert(&entry.guest, &entry.to);
        } else {
            hosts.retain(|h| *h != entry.to);
        }
    }
    departed.retain(|_, hosts| !hosts.is_empty());
    departed
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn step(
        plan: &str,
        guest: &str,
        from: &str,
        to: &str,
        kind: StepKind,
        status: StepStatus,
        minute: u32,
    ) -> JournalEntry {
        JournalEntry {
            plan_id: plan.into(),
            step_id: format!("{guest}:{kind}:{minute}"),
            kind,
            guest: guest.into(),
            from: from.into(),
            to: to.into(),
            status,
            started_at: None,
            finished_at: Some(
                Utc.with_ymd_and_hms(2025, 1, 1, 0, minute, 0)
                    .single()
                    .expect("valid time"),
            ),
            error: None,
            boot_id: None,
            once_marker: None,
        }
    }

    #[test]
    fn stopped_in_place_is_a_stop_on_its_own_host_not_undone_since() {
        use StepKind::{MigrateGuest, StartupGuest, StopGuest};
        use StepStatus::{Done, Failed};
        let mut state = State::new();
        state.journal = vec![
            // s: stopped in place on a, still down.
            step("p1", "s", "a", "a", StopGuest, Done, 1),
            // t: stopped in place, then started again at the end of maintenance.
            step("p1", "t", "a", "a", StopGuest, Done, 1),
            step("p2", "t", "a", "a", StartupGuest, Done, 5),
            // m: a STOP_GUEST of an offline move (another target) is no stop in place.
            step("p1", "m", "a", "b", StopGuest, Done, 1),
            step("p1", "m", "a", "b", MigrateGuest, Done, 2),
            // f: the stop failed: it runs.
            step("p1", "f", "a", "a", StopGuest, Failed, 1),
        ];
        let stopped = stopped_in_place(&state);
        assert_eq!(
            stopped,
            BTreeMap::from([("s".to_string(), "a".to_string())])
        );
    }

    #[test]
    fn departures_are_hosts_left_and_not_returned_to_oldest_first() {
        let mut state = State::new();
        state.journal = vec![
            // Written out of order: times decide.
            step(
                "p2",
                "x",
                "b",
                "c",
                StepKind::MigrateGuest,
                StepStatus::Done,
                2,
            ),
            step(
                "p1",
                "x",
                "a",
                "b",
                StepKind::MigrateGuest,
                StepStatus::Done,
                1,
            ),
            // Other steps and failed migrations do not count.
            step(
                "p3",
                "x",
                "c",
                "d",
                StepKind::StopGuest,
                StepStatus::Done,
                3,
            ),
            step(
                "p3",
                "x",
                "c",
                "d",
                StepKind::MigrateGuest,
                StepStatus::Failed,
                4,
            ),
            // y went away and came back.
            step(
                "p1",
                "y",
                "a",
                "b",
                StepKind::MigrateGuest,
                StepStatus::Done,
                1,
            ),
            step(
                "p4",
                "y",
                "b",
                "a",
                StepKind::MigrateGuest,
                StepStatus::Done,
                5,
            ),
        ];
        let departed = departed(&state);
        assert_eq!(
            departed.get("x"),
            Some(&vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(departed.get("y"), Some(&vec!["b".to_string()]));
    }

    /// A live swap broken through pivot host p: x goes a → p → b in one plan.
    fn pivoted(plan: &str, second: StepStatus) -> Vec<JournalEntry> {
        let mut hop = step(
            plan,
            "x",
            "a",
            "p",
            StepKind::MigrateGuest,
            StepStatus::Done,
            1,
        );
        hop.step_id = "x:MIGRATE_GUEST".into();
        let mut on = step(plan, "x", "p", "b", StepKind::MigrateGuest, second, 2);
        on.step_id = "x:MIGRATE_GUEST#2".into();
        vec![hop, on]
    }

    #[test]
    fn a_pivot_host_is_never_a_departure() {
        let mut state = State::new();
        state.journal = pivoted("p1", StepStatus::Done);
        assert_eq!(departed(&state).get("x"), Some(&vec!["a".to_string()]));

        // The plan stopped on the pivot (the onward migration failed), and a later plan moved
        // the guest on from there: still only a.
        state.journal = pivoted("p1", StepStatus::Failed);
        state.journal.push(step(
            "p2",
            "x",
            "p",
            "c",
            StepKind::MigrateGuest,
            StepStatus::Done,
            3,
        ));
        assert_eq!(departed(&state).get("x"), Some(&vec!["a".to_string()]));

        // Passing through a host it departed earlier is not coming back to it.
        state.journal = vec![step(
            "p0",
            "x",
            "p",
            "a",
            StepKind::MigrateGuest,
            StepStatus::Done,
            0,
        )];
        state.journal.extend(pivoted("p1", StepStatus::Done));
        assert_eq!(
            departed(&state).get("x"),
            Some(&vec!["p".to_string(), "a".to_string()])
        );
    }

    #[test]
    fn return_home_without_a_state_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "inventory {\n  es_xml = \"es.xml\"\n}\nhost \"a\" {\n  return_home = true\n}\n";
        let cfg = crate::config::parse_str("main.hcl", text, dir.path()).expect("valid");
        let error = history(&cfg).expect_err("no state file");
        assert_eq!(error.code, "return_home");
        assert!(
            error.message.contains("state/berth.state.json"),
            "{}",
            error.message
        );
        // Without return_home the state is not read at all.
        let plain = crate::config::parse_str(
            "main.hcl",
            "inventory {\n  es_xml = \"es.xml\"\n}\n",
            dir.path(),
        )
        .expect("valid");
        assert_eq!(history(&plain), Ok(History::default()));
    }

    #[test]
    fn return_home_reads_the_configured_state_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("elsewhere/berth.json");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut state = State::new();
        state.journal = vec![step(
            "p",
            "x",
            "a",
            "b",
            StepKind::MigrateGuest,
            StepStatus::Done,
            1,
        )];
        StateStore::open(&path)
            .expect("open")
            .save(&mut state)
            .expect("save");
        let text = "inventory {\n  es_xml = \"es.xml\"\n}\nstate {\n  path = \"elsewhere/berth.json\"\n}\nhost \"a\" {\n  return_home = true\n}\n";
        let cfg = crate::config::parse_str("main.hcl", text, dir.path()).expect("valid");
        let history = history(&cfg).expect("the configured state file is read");
        assert_eq!(history.departed.get("x"), Some(&vec!["a".to_string()]));
    }
}
