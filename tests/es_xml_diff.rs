//! The plan's es.xml diff, made from the rewrite's edits, is the diff of the file apply writes.

use std::path::Path;

use berth::{config, inventory, plan};

fn check(example: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/plans")
        .join(example);
    let cfg = config::load_dir(&dir).unwrap_or_else(|e| panic!("{example}: {e}"));
    let inv = inventory::load(&plan::build::inventory_spec(&cfg))
        .unwrap_or_else(|e| panic!("{example}: {e}"));
    assert!(
        inv.es_layout.is_some(),
        "load keeps the layout of its parse"
    );
    let p = plan::build::build(&cfg, &inv, Ok(Default::default()))
        .unwrap_or_else(|e| panic!("{example}: {e}"));
    assert!(p.is_ok(), "{example}: {:?}", p.errors);
    let after = plan::build::esxml_after(&inv, &p.moves).expect("checked rewrite");
    let expected = plan::unified_diff(
        &cfg.inventory.es_xml.value.display().to_string(),
        &inv.es_xml_text,
        &after,
    );
    assert!(!expected.is_empty(), "{example} moves guests between hosts");
    assert_eq!(p.es_xml_diff, expected, "{example}");

    // Without the layout (an inventory assembled from a parsed es.xml alone) the plan parses
    // again and shows the same diff.
    let mut without = inv.clone();
    without.es_layout = None;
    assert_eq!(
        plan::build::build(&cfg, &without, Ok(Default::default()))
            .expect("plans")
            .es_xml_diff,
        expected,
        "{example}"
    );
}

#[test]
fn drain_host_diff_is_the_diff_of_the_checked_rewrite() {
    check("drain-host");
}

#[test]
fn swap_diff_is_the_diff_of_the_checked_rewrite() {
    check("swap");
}
