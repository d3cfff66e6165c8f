//! `berth state list | show GUEST | pull | push FILE` and `berth force-unlock LOCK_ID`:
//! reading the state from its backend, moving it between the local file and the backend, and
//! removing a lock. Reading takes no lock (like `terraform state list`); pushing does.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::apply::resume;
use crate::config;
use crate::state::{Backend, JournalEntry, State, StateStore};

use super::args::{ForceUnlockArgs, StateCommand};
use super::error::CliError;
use super::exit;

fn store() -> Result<Box<dyn Backend>, CliError> {
    let cfg = config::load_dir(Path::new("."))?;
    // Reading creates nothing: a state directory made only to be read goes again at once.
    let (store, _created) = crate::state::open(&cfg.state)?;
    Ok(store)
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn status(e: &JournalEntry) -> String {
    format!("{:?}", e.status).to_lowercase()
}

/// The latest journal entry about `guest`: last finished (or started), later in the journal
/// on ties.
fn last_entry<'a>(state: &'a State, guest: &str) -> Option<&'a JournalEntry> {
    state
        .journal
        .iter()
        .enumerate()
        .filter(|(_, e)| e.guest == guest)
        .max_by_key(|(i, e)| (e.finished_at.or(e.started_at), *i))
        .map(|(_, e)| e)
}

fn guests(state: &State) -> BTreeSet<&str> {
    state
        .topology
        .keys()
        .map(String::as_str)
        .chain(state.journal.iter().map(|e| e.guest.as_str()))
        .collect()
}

/// `println!` of text that quotes the state (step errors are what hosts answered): control
/// characters shown, never sent to the terminal (crate::printable).
macro_rules! shown {
    ($($arg:tt)*) => {
        println!("{}", crate::printable::escape(&format!($($arg)*)))
    };
}

pub fn state(cmd: &StateCommand) -> Result<u8, CliError> {
    let store = store()?;
    match cmd {
        StateCommand::Push { file, lock } => return push(&*store, file, lock),
        StateCommand::Pull { out } => return pull(&*store, out.as_deref()),
        StateCommand::List | StateCommand::Show { .. } => {}
    }
    let Some(state) = store.load()? else {
        println!(
            "No state yet: berth has applied nothing here ({} holds none).",
            store.describe()
        );
        return Ok(exit::OK);
    };
    match cmd {
        StateCommand::Show { guest } => show(&state, guest)?,
        _ => list(&state),
    }
    if let Some(u) = &state.in_progress {
        println!(
            "\nUnfinished plan {} (started {}): {} step(s) not done; `berth apply` continues it.",
            u.plan_id,
            u.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            resume::unfinished_steps(&state, u).len()
        );
    }
    Ok(exit::OK)
}

fn list(state: &State) {
    let rows: Vec<[String; 4]> = guests(state)
        .into_iter()
        .map(|g| {
            let record = state.topology.get(g);
            let last = last_entry(state, g)
                .map_or_else(|| "-".into(), |e| format!("{} {}", e.step_id, status(e)));
            [
                g.to_string(),
                record.map_or_else(|| "-".into(), |r| r.host.clone()),
                record.map_or_else(|| "-".into(), |r| r.state.to_string()),
                last,
            ]
        })
        .collect();
    let header = ["GUEST", "HOST", "STATE", "LAST STEP"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|c| {
            rows.iter()
                .chain([&header])
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in [&header].into_iter().chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        shown!("{}", cells.join("  ").trim_end());
    }
}

fn show(state: &State, name: &str) -> Result<(), CliError> {
    let known = guests(state);
    let guest = if known.contains(name) {
        name
    } else {
        let by_short: Vec<&str> = known
            .iter()
            .copied()
            .filter(|g| g.split('.').next() == Some(name))
            .collect();
        match by_short.as_slice() {
            [one] => *one,
            _ => {
                let list: Vec<&str> = known.into_iter().collect();
                return Err(CliError::Refused(format!(
                    "the state records nothing about guest {name}; it knows: {}",
                    if list.is_empty() {
                        "no guest".to_string()
                    } else {
                        list.join(", ")
                    }
                )));
            }
        }
    };
    shown!("Guest {guest}");
    match state.topology.get(guest) {
        Some(r) => {
            shown!("  host:  {}", r.host);
            shown!("  state: {}", r.state);
            match &r.last_definition_xml {
                Some(xml) => shown!("  libvirt definition recorded: {} bytes", xml.len()),
                None => shown!("  libvirt definition recorded: none"),
            }
        }
        None => shown!("  (no topology record: no step that places it has finished)"),
    }
    shown!("Journal:");
    for e in state.journal.iter().filter(|e| e.guest == guest) {
        shown!(
            "  plan {}  {}  {}  {} → {}  started {}  finished {}",
            e.plan_id,
            e.step_id,
            status(e),
            e.from,
            e.to,
            time(e.started_at),
            time(e.finished_at)
        );
        if let Some(error) = &e.error {
            shown!("      {error}");
        }
    }
    Ok(())
}

pub fn force_unlock(args: &ForceUnlockArgs) -> Result<u8, CliError> {
    let store = store()?;
    let holder = store.force_unlock(&args.lock_id)?;
    println!(
        "Removed lock {} of {} ({holder}).",
        holder.id,
        store.describe()
    );
    Ok(exit::OK)
}

/// `berth state pull [-out FILE]`: the state as JSON on stdout, or into a local state file.
fn pull(store: &dyn Backend, out: Option<&Path>) -> Result<u8, CliError> {
    let Some(state) = store.load()? else {
        return Err(CliError::Refused(format!(
            "{} holds no state yet: nothing to pull",
            store.describe()
        )));
    };
    match out {
        Some(path) => {
            crate::state::store::write_state_file(path, &state)?;
            eprintln!(
                "Pulled {} (serial {}, lineage {}) into {}.",
                store.describe(),
                state.serial,
                state.lineage,
                path.display()
            );
        }
        None => super::commands::print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&state).unwrap_or_default()
        ))?,
    }
    Ok(exit::OK)
}

/// `berth state push FILE`: writes a local state file into the configured backend, under its
/// lock. Like `terraform state push`, refused when the backend holds another lineage or a
/// newer serial (someone applied since the file was taken).
fn push(store: &dyn Backend, file: &Path, lock: &super::args::LockArgs) -> Result<u8, CliError> {
    let mut state = StateStore::open(file)?.load()?.ok_or_else(|| {
        CliError::Refused(format!(
            "{} does not exist: nothing to push",
            file.display()
        ))
    })?;
    let _guard = if lock.lock {
        Some(store.lock("state push", lock.lock_timeout)?)
    } else {
        None
    };
    if let Some(current) = store.load()? {
        if current.lineage != state.lineage {
            return Err(CliError::Refused(format!(
                "{} holds another state (lineage {}, the file has {}); nothing was pushed",
                store.describe(),
                current.lineage,
                state.lineage
            )));
        }
        if current.serial > state.serial {
            return Err(CliError::Refused(format!(
                "{} is newer than {} (serial {} > {}): someone applied since; pull it first (`berth state pull`)",
                store.describe(),
                file.display(),
                current.serial,
                state.serial
            )));
        }
        state.serial = current.serial;
    }
    let from = state.serial;
    store.save(&mut state)?;
    println!(
        "Pushed {} into {} (lineage {}, serial {} → {}).",
        file.display(),
        store.describe(),
        state.lineage,
        from,
        state.serial
    );
    Ok(exit::OK)
}
