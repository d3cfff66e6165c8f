//! `berth refresh`: es.xml rewritten to match libvirt, shown as a diff, confirmed, backed up
//! and recorded in the state file.

use crate::apply;
use crate::inventory::reconcile::DriftPolicy;
use crate::plan;
use crate::plan::build::InventoryLoadError;
use crate::state::RefreshRecord;

use super::args::RefreshArgs;
use super::commands::print;
use super::error::CliError;
use super::exit;

pub fn refresh(args: &RefreshArgs) -> Result<u8, CliError> {
    let cfg = super::commands::load_config()?;
    let (store, _created) = apply::open_store(&cfg.state.path)?;
    let _lock = store.lock("refresh")?;
    if let Some(u) = store.load()?.and_then(|s| s.in_progress) {
        return Err(CliError::Refused(format!(
            "plan {} of an earlier apply is unfinished: finish it (`berth apply`) or drop it (`berth apply -replan`) \
             before refreshing es.xml, or the two would disagree about where its guests are",
            u.plan_id
        )));
    }
    // The topology follows libvirt whatever `drift_source` says: that is what es.xml becomes.
    let mut spec = plan::build::inventory_spec(&cfg);
    spec.policy = DriftPolicy::PreferLibvirt;
    let inv = crate::inventory::load::load(&spec).map_err(InventoryLoadError::from)?;
    let name = cfg.inventory.es_xml.value.display().to_string();
    let refreshed =
        plan::refresh::refresh(&inv, &name).map_err(|e| CliError::Refused(e.to_string()))?;
    if refreshed.text == inv.es_xml_text {
        print("es.xml matches libvirt: nothing to refresh.\n")?;
        return Ok(exit::OK);
    }
    let mut shown = format!("es.xml changes ({name}):\n");
    shown.push_str(&plan::unified_diff(
        &name,
        &inv.es_xml_text,
        &refreshed.text,
    ));
    shown.push_str(&format!(
        "\nRefresh: {} change(s):\n",
        refreshed.changes.len()
    ));
    for change in &refreshed.changes {
        shown.push_str(&format!("  ~ {}\n", crate::render::clean(change)));
    }
    print(&shown)?;
    if !args.auto_approve && !confirm()? {
        eprintln!("Refresh cancelled: es.xml is unchanged.");
        return Ok(exit::ERROR);
    }
    let written = apply::writeback::write_es_xml(
        &cfg.inventory.es_xml.value,
        cfg.inventory.es_xml_out.as_deref(),
        &inv.es_xml_text,
        &refreshed.text,
    )?;
    let mut state = store.load_or_new()?;
    state.refreshes.push(RefreshRecord {
        at: chrono::Utc::now(),
        es_xml: written.path.display().to_string(),
        backup: written.backup.as_ref().map(|b| b.display().to_string()),
        sha256_before: inv.es_xml_sha256.clone(),
        sha256_after: crate::inventory::load::sha256_hex(refreshed.text.as_bytes()),
        changes: refreshed.changes.clone(),
    });
    store.save(&mut state)?;
    let backup = written
        .backup
        .as_ref()
        .map(|b| format!(" (backup: {})", b.display()))
        .unwrap_or_default();
    eprintln!(
        "Refresh complete! Wrote {}{backup}; recorded in {}.",
        written.path.display(),
        store.path().display()
    );
    Ok(exit::OK)
}

/// Asks before es.xml is written.
fn confirm() -> Result<bool, CliError> {
    super::confirm::ask_yes(
        "Do you want to write these changes to es.xml?",
        "Run `berth refresh -auto-approve` to write es.xml without asking.",
    )
}
