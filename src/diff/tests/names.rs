//! Name resolution errors: where they point and what they suggest.

use crate::diff::fixtures::*;
use crate::diff::{DiffError, Origin, desired};

fn fleet() -> crate::inventory::Topology {
    topology(
        vec![
            host("exa01adm01.example.com", 512, 96),
            host("exa01adm02.example.com", 512, 96),
            host("exa01adm03.example.com", 512, 96),
        ],
        vec![
            guest("exa01vm01.a.example.com", "exa01adm01.example.com", 64, 8),
            guest("exa01vm01.b.example.com", "exa01adm02.example.com", 64, 8),
            guest("exa01vm02.example.com", "exa01adm01.example.com", 64, 8),
        ],
    )
}

fn only_error(result: Result<crate::diff::Desired, Vec<DiffError>>) -> DiffError {
    let mut errors = result.expect_err("the config should be rejected");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

/// The one error of `b`'s configuration on [`fleet`], which must point at the label of the
/// guest block `label`.
#[track_caller]
fn error_at_guest_label(b: &ConfigBuilder, label: &str) -> DiffError {
    let error = only_error(desired(&b.config, &fleet()));
    assert_eq!(error.span.as_ref(), Some(&b.config.guests[label].name.span));
    error
}

#[test]
fn short_and_full_labels_resolve() {
    let b = ConfigBuilder::new()
        .guest("exa01vm02", Some("exa01adm02"), None)
        .guest(
            "exa01vm01.b.example.com",
            Some("exa01adm03.example.com"),
            None,
        );
    let d = desired(&b.config, &fleet()).expect("valid config");
    assert_eq!(
        d.guests["exa01vm02.example.com"].host,
        "exa01adm02.example.com"
    );
    assert_eq!(
        d.guests["exa01vm01.b.example.com"].host,
        "exa01adm03.example.com"
    );
    assert_eq!(d.guests["exa01vm01.a.example.com"].origin, Origin::Stays);
}

#[test]
fn unknown_guest_points_at_the_label_and_suggests() {
    let b = ConfigBuilder::new().guest("exa01vm03", Some("exa01adm02"), None);
    let error = error_at_guest_label(&b, "exa01vm03");
    assert_eq!(error.message, "guest \"exa01vm03\" is not in the topology");
    assert_eq!(
        error.help.as_deref(),
        Some("did you mean guest \"exa01vm02\"?")
    );
}

#[test]
fn ambiguous_short_name_lists_the_full_names() {
    let b = ConfigBuilder::new().guest("exa01vm01", Some("exa01adm02"), None);
    let error = error_at_guest_label(&b, "exa01vm01");
    assert!(
        error
            .message
            .contains("exa01vm01.a.example.com and exa01vm01.b.example.com"),
        "{}",
        error.message
    );
    assert_eq!(error.label, "ambiguous guest name");
}

#[test]
fn unknown_host_value_points_at_the_value() {
    let b = ConfigBuilder::new().guest("exa01vm02", Some("exa01adm04"), None);
    let error = only_error(desired(&b.config, &fleet()));
    let value = b.config.guests["exa01vm02"]
        .host
        .as_ref()
        .expect("host set");
    assert_eq!(error.span.as_ref(), Some(&value.span));
    assert_eq!(error.guest.as_deref(), Some("exa01vm02.example.com"));
    assert_eq!(error.help.as_deref(), Some("did you mean \"exa01adm01\"?"));
}

#[test]
fn host_name_in_a_guest_block_is_explained() {
    let b = ConfigBuilder::new().guest("exa01adm02", None, None);
    let error = only_error(desired(&b.config, &fleet()));
    assert!(
        error
            .help
            .as_deref()
            .is_some_and(|h| h.contains("is a host")),
        "{error:?}"
    );
}

#[test]
fn pin_onto_a_drained_host_is_an_error_at_the_value() {
    let b = ConfigBuilder::new()
        .drain("exa01adm02")
        .guest("exa01vm02", Some("exa01adm02"), None);
    let error = only_error(desired(&b.config, &fleet()));
    let value = b.config.guests["exa01vm02"]
        .host
        .as_ref()
        .expect("host set");
    assert_eq!(error.span.as_ref(), Some(&value.span));
    assert_eq!(
        error.message,
        "guest exa01vm02.example.com is pinned to exa01adm02.example.com, which is drained"
    );
    assert_eq!(error.label, "drained host");
}

#[test]
fn pin_onto_a_disabled_host_is_an_error_unless_already_there() {
    let onto = ConfigBuilder::new()
        .host("exa01adm02", |h| h.disabled = true)
        .guest("exa01vm02", Some("exa01adm02"), None);
    let error = only_error(desired(&onto.config, &fleet()));
    assert_eq!(error.label, "disabled host");

    let stay = ConfigBuilder::new()
        .host("exa01adm02", |h| h.disabled = true)
        .guest("exa01vm01.b.example.com", Some("exa01adm02"), None);
    assert!(desired(&stay.config, &fleet()).is_ok());
}

#[test]
fn the_same_guest_configured_twice_points_at_the_second_block() {
    let b = ConfigBuilder::new()
        .guest("exa01vm02", Some("exa01adm02"), None)
        .guest("exa01vm02.example.com", None, None);
    let error = error_at_guest_label(&b, "exa01vm02.example.com");
    assert!(
        error.message.contains("configured twice"),
        "{}",
        error.message
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let b = ConfigBuilder::new()
        .guest("nope1", None, None)
        .host("nope2", |_| {})
        .guest("exa01vm02", Some("nope3"), None);
    let errors = desired(&b.config, &fleet()).expect_err("three errors");
    assert_eq!(errors.len(), 3, "{errors:#?}");
}
