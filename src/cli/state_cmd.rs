//! `berth state list | show GUEST` and `berth force-unlock LOCK_ID`: reading the state file
//! and removing a lock left behind. Reading takes no lock (like `terraform state list`).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::apply::{open_store, resume};
use crate::config;
use crate::state::{JournalEntry, State, StateStore};

use super::args::{ForceUnlockArgs, StateCommand};
use super::error::CliError;
use super::exit;

fn store() -> Result<StateStore, CliError> {
    let cfg = config::load_dir(Path::new("."))?;
    // Reading creates nothing: a state directory made only to be read goes again at once.
    let (store, _created) = open_store(&cfg.state.path)?;
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

pub fn state(cmd: &StateCommand) -> Result<u8, CliError> {
    let store = store()?;
    let Some(state) = store.load()? else {
        println!(
            "No state yet: berth has applied nothing here ({} does not exist).",
            store.path().display()
        );
        return Ok(exit::OK);
    };
    match cmd {
        StateCommand::List => list(&state),
        StateCommand::Show { guest } => show(&state, guest)?,
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
        println!("{}", cells.join("  ").trim_end());
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
    println!("Guest {guest}");
    match state.topology.get(guest) {
        Some(r) => {
            println!("  host:  {}", r.host);
            println!("  state: {}", r.state);
            match &r.last_definition_xml {
                Some(xml) => println!("  libvirt definition recorded: {} bytes", xml.len()),
                None => println!("  libvirt definition recorded: none"),
            }
        }
        None => println!("  (no topology record: no step that places it has finished)"),
    }
    println!("Journal:");
    for e in state.journal.iter().filter(|e| e.guest == guest) {
        println!(
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
            println!("      {error}");
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
        store.lock_path().display()
    );
    Ok(exit::OK)
}
