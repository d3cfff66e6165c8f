//! What earlier applies did, read from the state file for the intents that need it
//! (`return_home`). The caller (CLI, apply) hands it to planning as plain data ([`History`]):
//! neither diff nor plan reads the state file.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::diff::History;
use crate::plan::PlanError;
use crate::schedule::StepKind;

use super::{State, StateStore, StepStatus};

/// The history `cfg`'s intents need: empty unless a host has `return_home`, in which case the
/// state file must exist and be readable (otherwise nothing could be brought back, and the plan
/// says why instead of silently doing nothing).
pub fn history(cfg: &Config) -> Result<History, PlanError> {
    let wanted: Vec<&str> = cfg
        .hosts
        .values()
        .filter(|h| h.return_home)
        .map(|h| h.name.value.as_str())
        .collect();
    if wanted.is_empty() {
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
    let loaded = if path.exists() {
        StateStore::open(path).and_then(|store| store.load())
    } else {
        Ok(None)
    };
    match loaded {
        Ok(Some(state)) => Ok(History {
            departed: departed(&state),
        }),
        Ok(None) => Err(error(format!(
            "return_home on {} needs the state file {} to know which guests berth moved off, and there is none",
            wanted.join(", "),
            path.display()
        ))),
        Err(e) => Err(error(format!("return_home on {}: {e}", wanted.join(", ")))),
    }
}

/// Guest → the hosts berth moved it off (completed MIGRATE_GUEST steps) and it has not come
/// back to since, oldest first.
pub fn departed(state: &State) -> BTreeMap<String, Vec<String>> {
    let mut done: Vec<_> = state
        .journal
        .iter()
        .filter(|e| e.kind == StepKind::MigrateGuest && e.status == StepStatus::Done)
        .enumerate()
        .collect();
    // Journal order breaks ties between steps that finished at the same instant.
    done.sort_by_key(|(index, e)| (e.finished_at, *index));
    let mut departed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, entry) in done {
        let hosts = departed.entry(entry.guest.clone()).or_default();
        hosts.retain(|h| *h != entry.to);
        if !hosts.contains(&entry.from) {
            hosts.push(entry.from.clone());
        }
    }
    departed.retain(|_, hosts| !hosts.is_empty());
    departed
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::state::JournalEntry;

    fn step(
        guest: &str,
        from: &str,
        to: &str,
        kind: StepKind,
        status: StepStatus,
        minute: u32,
    ) -> JournalEntry {
        JournalEntry {
            plan_id: "p".into(),
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
        }
    }

    #[test]
    fn departures_are_hosts_left_and_not_returned_to_oldest_first() {
        let mut state = State::new();
        state.journal = vec![
            // Written out of order: times decide.
            step("x", "b", "c", StepKind::MigrateGuest, StepStatus::Done, 2),
            step("x", "a", "b", StepKind::MigrateGuest, StepStatus::Done, 1),
            // Other steps and failed migrations do not count.
            step("x", "c", "d", StepKind::StopGuest, StepStatus::Done, 3),
            step("x", "c", "d", StepKind::MigrateGuest, StepStatus::Failed, 4),
            // y went away and came back.
            step("y", "a", "b", StepKind::MigrateGuest, StepStatus::Done, 1),
            step("y", "b", "a", StepKind::MigrateGuest, StepStatus::Done, 5),
        ];
        let departed = departed(&state);
        assert_eq!(
            departed.get("x"),
            Some(&vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(departed.get("y"), Some(&vec!["b".to_string()]));
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
