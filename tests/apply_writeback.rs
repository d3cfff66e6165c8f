//! es.xml write-back after a plan applied in parts: the guests moving into one host may reach
//! es.xml in another order than the plan's, and the final write must still be exactly the diff
//! the plan showed (and anything that is not a reordering must still be refused).

mod common;

use std::path::Path;

use berth::apply::writeback::{WriteBackTarget, write_back};
use berth::config;
use berth::plan::{self, unified_diff};
use common::drain_lab::*;

fn inventory(dir: &Path) -> (config::Config, berth::inventory::load::Inventory) {
    let cfg = config::load_dir(dir).unwrap();
    let inv = plan::build::load_inventory(&cfg).unwrap();
    (cfg, inv)
}

#[test]
fn a_plan_written_back_in_parts_and_out_of_order_ends_with_exactly_the_reviewed_diff() {
    let lab = drain_lab();
    let es_xml = lab.path().join("es.xml");
    let original = std::fs::read_to_string(&es_xml).unwrap();
    let (cfg, inv) = inventory(lab.path());
    let plan = plan::build::build(&cfg, &inv, berth::state::history::history(&cfg)).unwrap();
    assert!(plan.is_ok(), "{:?}", plan.errors);
    // The two guests that land on exa01adm02, in plan order; the part written first is the
    // one the plan lists last, so es.xml gets their references in the other order.
    let into_adm02: Vec<_> = plan
        .moves
        .iter()
        .filter(|m| m.to == ADM02)
        .cloned()
        .collect();
    assert_eq!(into_adm02.len(), 2, "{:?}", plan.moves);
    let target = WriteBackTarget {
        es_xml: &es_xml,
        out: None,
        earlier_backup: None,
    };
    let first = write_back(&target, &inv, &plan, &into_adm02[1..], false)
        .unwrap()
        .expect("the first part changes es.xml");
    let backup = first
        .backup
        .expect("the first write of a plan backs es.xml up");

    let (_, inv) = inventory(lab.path());
    let later = WriteBackTarget {
        earlier_backup: Some(&backup),
        ..target.clone()
    };
    let mut in_apply_order = vec![into_adm02[1].clone(), into_adm02[0].clone()];
    in_apply_order.extend(plan.moves.iter().filter(|m| m.to != ADM02).cloned());
    write_back(&later, &inv, &plan, &in_apply_order, true)
        .expect("a reordering of the reviewed lines is written as reviewed");
    let now = std::fs::read_to_string(&es_xml).unwrap();
    assert_eq!(
        unified_diff(&plan.es_xml_path, &original, &now),
        plan.es_xml_diff
    );

    // Anything else than a reordering is still refused: es.xml back to the first part, plus a
    // hand edit elsewhere in the file.
    let edited =
        std::fs::read_to_string(&backup)
            .unwrap()
            .replacen("<version>", "<version>edited-", 1);
    std::fs::write(&es_xml, &edited).unwrap();
    let (_, inv) = inventory(lab.path());
    let err = write_back(&later, &inv, &plan, &in_apply_order, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("differs from the diff the plan showed"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&es_xml).unwrap(), edited);
}
