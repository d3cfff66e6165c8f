//! `berth import`: HCL that pins today's placement, one `guest` block per guest, built as an
//! HCL body and formatted by hcl-rs. With it in the configuration a plan has no changes.

use std::io::Write as _;

use hcl::{Block, Body};

use crate::plan;

use super::args::ImportArgs;
use super::commands::print;
use super::error::CliError;
use super::exit;

pub fn import(args: &ImportArgs) -> Result<u8, CliError> {
    let cfg = super::commands::load_config()?;
    let inv = plan::build::load_inventory(&cfg)?;
    let unreachable = plan::build::unreachable_hosts(&cfg, &inv.drift);
    if !unreachable.is_empty() {
        let hosts: Vec<&str> = unreachable
            .iter()
            .filter_map(|d| d.host.as_deref())
            .collect();
        // Each host's own reason (refused, timed out, …) follows, one per line.
        let reasons: Vec<String> = unreachable
            .iter()
            .map(|d| format!("\n  {}", crate::printable::one_line(&d.message)))
            .collect();
        return Err(CliError::Refused(format!(
            "cannot import while libvirt on {} does not answer: where its guests run is unknown{}",
            hosts.join(", "),
            reasons.concat()
        )));
    }
    if plan::build::blocking_drift(&cfg, &inv.drift) > 0 {
        eprintln!(
            "Warning: es.xml and libvirt disagree; the blocks pin where libvirt runs each guest. \
             Run `berth refresh` so es.xml says the same, or plans stop on the drift."
        );
    }
    // Guests that already have a block are the configuration's: leave them to it.
    let configured: Vec<String> = cfg.guests.values().map(|g| g.name.value.clone()).collect();
    let short = |n: &str| n.split('.').next().unwrap_or(n).to_string();
    let mut body = Body::builder();
    let mut count = 0;
    for g in inv.topology.guests.values() {
        if configured
            .iter()
            .any(|c| *c == g.name || *c == short(&g.name))
        {
            continue;
        }
        body = body.add_block(
            Block::builder("guest")
                .add_label(g.name.as_str())
                .add_attribute(("host", g.host.as_str()))
                .build(),
        );
        count += 1;
    }
    let text = format!(
        "# Written by `berth import`: every guest where it runs today ({count} guests).\n\
         # A guest block with `host` pins the guest there: edit or remove a block to let berth move it.\n\n{}",
        hcl::format::to_string(&body.build())
            .map_err(|e| CliError::Refused(format!("cannot format the imported HCL: {e}")))?
    );
    match &args.out {
        None => print(&text)?,
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| CliError::Refused(format!("cannot create {}: {e}", path.display())))?;
            file.write_all(text.as_bytes())
                .map_err(|e| CliError::Refused(format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "Wrote {count} guest blocks to {}. `berth plan` now shows no changes.",
                path.display()
            );
        }
    }
    Ok(exit::OK)
}
