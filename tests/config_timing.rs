//! The duration model's settings in the `defaults` block: read, defaulted, range-checked, and
//! carried into the model the scheduler predicts with.

use std::path::Path;

use berth::config::{Defaults, parse_str, render};
use berth::schedule::{Concurrency, DurationModel};

const INVENTORY: &str = "inventory {\n  es_xml = \"es.xml\"\n}\n";

#[test]
fn link_bandwidth_and_dirty_rate_reach_the_model() {
    let text = format!(
        "{INVENTORY}defaults {{\n  link_bandwidth_mib_s = 2200\n  dirty_rate_mib_s = 150\n  parallelism = 8\n  live {{\n    bandwidth_mib_s = 900\n  }}\n}}\n"
    );
    let cfg = parse_str("main.hcl", &text, Path::new("/etc/berth")).expect("valid");
    assert_eq!(
        (
            cfg.defaults.link_bandwidth_mib_s,
            cfg.defaults.dirty_rate_mib_s
        ),
        (2200, 150)
    );
    let model = DurationModel::from_defaults(&cfg.defaults);
    assert_eq!(
        (
            model.link_bandwidth("any"),
            model.dirty_rate_mib_s,
            model.cap()
        ),
        (2200.0, 150.0, 900.0)
    );
    assert_eq!(Concurrency::from_defaults(&cfg.defaults).parallelism, 8);
}

#[test]
fn absent_settings_take_their_defaults() {
    let cfg = parse_str("main.hcl", INVENTORY, Path::new("/etc/berth")).expect("valid");
    let base = Defaults::default();
    assert_eq!(
        (
            cfg.defaults.link_bandwidth_mib_s,
            cfg.defaults.dirty_rate_mib_s
        ),
        (base.link_bandwidth_mib_s, 0)
    );
    assert_eq!(base.link_bandwidth_mib_s, 1100);
}

#[test]
fn a_link_without_bandwidth_is_refused_where_it_is_written() {
    let text = format!("{INVENTORY}defaults {{\n  link_bandwidth_mib_s = 0\n}}\n");
    let err = parse_str("main.hcl", &text, Path::new("/etc/berth")).expect_err("0 MiB/s");
    let shown = render(&err, false);
    assert!(
        shown.contains("link_bandwidth_mib_s") && shown.contains("main.hcl:5"),
        "{shown}"
    );
}
