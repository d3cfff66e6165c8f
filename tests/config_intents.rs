//! The intent and rule blocks of the HCL language (`rebalance`, `rule "KIND" "NAME"`, the
//! host intents `evacuate` / `return_home`): what they build, and located errors when wrong.

use std::path::Path;

use berth::config::{BalanceOn, Config, MigrationMode, RuleKind, parse_str, render};

const INVENTORY: &str = "inventory {\n  es_xml = \"es.xml\"\n}\n";

fn parse(body: &str) -> Result<Config, String> {
    parse_str(
        "main.hcl",
        &format!("{INVENTORY}{body}"),
        Path::new("/etc/berth"),
    )
    .map_err(|e| render(&e, false))
}

fn parse_ok(body: &str) -> Config {
    parse(body).unwrap_or_else(|e| panic!("expected a valid configuration, got:\n{e}"))
}

fn parse_err(body: &str) -> String {
    match parse(body) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(rendered) => rendered,
    }
}

fn assert_contains(rendered: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            rendered.contains(needle),
            "missing {needle:?} in:\n{rendered}"
        );
    }
}

#[test]
fn rules_of_every_kind_build_with_their_guests_and_hosts() {
    let cfg = parse_ok(
        r#"
rule "anti_affinity" "exa01cl01" {
  guests = ["vm01", "vm02"]
}
rule "affinity" "app" {
  guests = ["a", "b"]
}
rule "pin" "db" {
  guests = ["x"]
}
rule "ban" "old-hosts" {
  guests = ["x", "y"]
  hosts  = ["exa01adm04"]
}
rule "disruption_budget" "exa01cl01" {
  cluster         = "exa01cl01"
  max_unavailable = 1
}
rule "disruption_budget" "apps" {
  guests          = ["a", "b", "c"]
  max_unavailable = 2
}
"#,
    );
    let kinds: Vec<(RuleKind, &str)> = cfg
        .rules
        .iter()
        .map(|r| (r.kind, r.name.value.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (RuleKind::AntiAffinity, "exa01cl01"),
            (RuleKind::Affinity, "app"),
            (RuleKind::Pin, "db"),
            (RuleKind::Ban, "old-hosts")
        ]
    );
    let ban = &cfg.rules[3];
    let guests: Vec<&str> = ban.guests.iter().map(|g| g.value.as_str()).collect();
    assert_eq!(guests, ["x", "y"]);
    assert_eq!(ban.hosts[0].value, "exa01adm04");
    // Each list element keeps its own place: line 15 is `guests = ["x", "y"]`, "y" at column 18.
    assert_eq!(
        cfg.line_col(&ban.guests[1].span),
        ("main.hcl".into(), 15, 18)
    );

    assert_eq!(cfg.disruption_budgets.len(), 2);
    let cluster = &cfg.disruption_budgets[0];
    assert_eq!(
        cluster.cluster.as_ref().map(|c| c.value.as_str()),
        Some("exa01cl01")
    );
    assert_eq!(cluster.max_unavailable.value, 1);
    assert!(cluster.guests.is_empty());
    assert_eq!(cfg.disruption_budgets[1].guests.len(), 3);
}

#[test]
fn rebalance_and_host_intents_build_with_defaults() {
    let cfg = parse_ok(
        r#"
host "exa01adm04" {
  evacuate = true
}
host "exa01adm01" {
  return_home     = true
  vcpu_overcommit = 2
}
defaults {
  max_guests        = 12
  rac_anti_affinity = false
}
rebalance "rack1" {
  hosts     = ["exa01adm01", "exa01adm02"]
  on        = "both"
  threshold = 0.2
  max_moves = 4
  max_moved = "256GiB"
  mode      = "live"
}
rebalance "all" {}
"#,
    );
    assert!(cfg.hosts["exa01adm04"].evacuate && !cfg.hosts["exa01adm04"].drain);
    assert!(cfg.hosts["exa01adm01"].return_home);
    assert_eq!(cfg.hosts["exa01adm01"].vcpu_overcommit, Some(2.0));
    assert_eq!(cfg.defaults.max_guests, Some(12));
    assert!(!cfg.defaults.rac_anti_affinity);
    let rack1 = &cfg.rebalances[0];
    assert_eq!(rack1.on, BalanceOn::Both);
    assert_eq!(rack1.threshold, 0.2);
    assert_eq!(
        (rack1.max_moves, rack1.max_moved_mib),
        (Some(4), Some(256 * 1024))
    );
    assert_eq!(
        rack1.mode.as_ref().map(|m| m.value),
        Some(MigrationMode::Live)
    );
    assert_eq!(rack1.hosts.as_ref().map(Vec::len), Some(2));
    let all = &cfg.rebalances[1];
    assert_eq!(
        (all.on, all.threshold, all.hosts.clone(), all.max_moves),
        (BalanceOn::Memory, 0.10, None, None)
    );
    // The RAC default is on unless switched off.
    assert!(parse_ok("").defaults.rac_anti_affinity);
}

#[test]
fn an_unknown_rule_kind_is_located_with_a_suggestion() {
    let rendered = parse_err("rule \"anti-affinity\" \"x\" {\n  guests = [\"a\", \"b\"]\n}\n");
    assert_contains(
        &rendered,
        &[
            "unknown kind \"anti-affinity\" of `rule` block",
            "main.hcl:4:6",
            "did you mean \"anti_affinity\"?",
            "valid kinds: anti_affinity, affinity, pin, ban, disruption_budget",
        ],
    );
}

#[test]
fn a_rule_needs_a_kind_and_a_name() {
    assert_contains(
        &parse_err("rule {\n  guests = [\"a\"]\n}\n"),
        &[
            "the `rule` block needs two labels: the kind and the rule name",
            "main.hcl:4:1",
        ],
    );
    assert_contains(
        &parse_err("rule \"pin\" {\n  guests = [\"a\"]\n}\n"),
        &[
            "the `rule \"pin\"` block needs a second label: the rule name",
            "main.hcl:4:6",
        ],
    );
    assert_contains(
        &parse_err("rule \"pin\" \"a\" \"b\" {\n  guests = [\"a\"]\n}\n"),
        &[
            "the `rule` block takes two labels (the kind and the rule name), found 3",
            "main.hcl:4:16",
        ],
    );
}

#[test]
fn attributes_are_checked_against_the_rule_kind() {
    // `hosts` belongs to `ban`, not to `pin`; a ban needs its hosts.
    let rendered = parse_err(
        "rule \"pin\" \"db\" {\n  guests = [\"x\"]\n  hosts = [\"h\"]\n}\nrule \"ban\" \"b\" {\n  guests = [\"x\"]\n}\n",
    );
    assert_contains(
        &rendered,
        &[
            "unknown attribute `hosts` in `rule \"pin\" \"db\"`",
            "main.hcl:6:3",
            "`rule \"ban\" \"b\"` is missing the required attribute `hosts`",
            "main.hcl:8:1",
        ],
    );
    // An anti-affinity of one guest says nothing.
    assert_contains(
        &parse_err("rule \"anti_affinity\" \"x\" {\n  guests = [\"a\"]\n}\n"),
        &["`guests` needs at least 2 element(s)", "main.hcl:5:12"],
    );
}

#[test]
fn a_disruption_budget_names_a_cluster_or_guests_not_both() {
    assert_contains(
        &parse_err("rule \"disruption_budget\" \"b\" {\n  max_unavailable = 1\n}\n"),
        &[
            "`rule \"disruption_budget\" \"b\"` needs one of `cluster` or `guests`",
            "main.hcl:4:1",
        ],
    );
    assert_contains(
        &parse_err(
            "rule \"disruption_budget\" \"b\" {\n  cluster = \"c\"\n  guests = [\"a\"]\n  max_unavailable = 1\n}\n",
        ),
        &[
            "`rule \"disruption_budget\" \"b\"` takes only one of `cluster` or `guests`",
            "main.hcl:6:12",
        ],
    );
    assert_contains(
        &parse_err(
            "rule \"disruption_budget\" \"b\" {\n  cluster = \"c\"\n  max_unavailable = 0\n}\n",
        ),
        &[
            "`max_unavailable` must be at least 1, found 0",
            "main.hcl:6:21",
        ],
    );
}

#[test]
fn the_same_kind_and_name_twice_is_an_error_but_kinds_may_share_a_name() {
    let rendered = parse_err(
        "rule \"pin\" \"a\" {\n  guests = [\"x\"]\n}\nrule \"pin\" \"a\" {\n  guests = [\"y\"]\n}\n",
    );
    assert_contains(
        &rendered,
        &[
            "`rule \"pin\" \"a\"` is defined twice (first at main.hcl:4:1)",
            "main.hcl:7:1",
        ],
    );
    let cfg = parse_ok(
        "rule \"anti_affinity\" \"cl\" {\n  guests = [\"x\", \"y\"]\n}\nrule \"disruption_budget\" \"cl\" {\n  cluster = \"cl\"\n  max_unavailable = 1\n}\n",
    );
    assert_eq!((cfg.rules.len(), cfg.disruption_budgets.len()), (1, 1));
}

#[test]
fn rebalance_values_are_range_checked() {
    let rendered = parse_err(
        "rebalance \"r\" {\n  threshold = 1.5\n  on = \"disk\"\n  max_moves = 0\n  hosts = [\"only-one\"]\n}\n",
    );
    assert_contains(
        &rendered,
        &[
            "`threshold` must be at most 1.0, found 1.5",
            "main.hcl:5:15",
            "invalid value \"disk\" for `on`",
            "valid values: \"memory\", \"vcpus\", \"both\"",
            "`max_moves` must be at least 1, found 0",
            "`hosts` needs at least 2 element(s)",
        ],
    );
    assert_contains(
        &parse_err("rebalance {\n}\n"),
        &["the `rebalance` block needs a label: the rebalance name"],
    );
}

#[test]
fn a_misplaced_rule_attribute_says_where_it_belongs() {
    assert_contains(
        &parse_err("host \"h\" {\n  max_unavailable = 1\n}\n"),
        &[
            "unknown attribute `max_unavailable` in `host \"h\"`",
            "belongs in the `rule \"disruption_budget\"` block",
        ],
    );
}
