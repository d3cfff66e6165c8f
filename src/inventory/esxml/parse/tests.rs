//! The resolver's error order and cluster memberships across its two runs of machines.

use super::*;
use crate::inventory::esxml::{SynthSpec, synthesize};

/// 6 hosts with 2 guests each: 18 machines, so (with the unit tests' 8-item blocks) the
/// resolver converts them in two runs; every cluster has one guest on each of two hosts.
fn synthetic() -> String {
    synthesize(&SynthSpec::new(6, 2, 3))
}

/// `text` with the first (or last) occurrence of `from` replaced by `to`, and where it is.
fn replace_one(text: &str, from: &str, to: &str, last: bool) -> (String, usize) {
    let at = if last {
        text.rfind(from)
    } else {
        text.find(from)
    }
    .unwrap();
    (
        format!("{}{to}{}", &text[..at], &text[at + from.len()..]),
        at,
    )
}

fn error_of(text: &str) -> EsXmlError {
    parse("es.xml", text).unwrap_err()
}

#[test]
fn cluster_members_come_from_guests_and_vips_across_both_runs() {
    let expected: Vec<(String, Vec<String>)> = {
        let (es, _) = parse_with_layout("es.xml", &synthetic()).unwrap();
        es.clusters
            .into_iter()
            .map(|c| (c.id, c.member_ids))
            .collect()
    };
    assert_eq!(expected.len(), 6);
    for (id, members) in &expected {
        assert_eq!(members.len(), 2, "{id}: {members:?}");
    }
    // Guests that name no cluster themselves still belong through the VIP lists.
    let vip_only: String = synthetic()
        .lines()
        .filter(|l| !l.trim_start().starts_with("<cluster id=") || l.contains("\">"))
        .collect::<Vec<_>>()
        .join("\n");
    let (es, _) = parse_with_layout("es.xml", &vip_only).unwrap();
    let found: Vec<(String, Vec<String>)> = es
        .clusters
        .into_iter()
        .map(|c| (c.id, c.member_ids))
        .collect();
    assert_eq!(found, expected);
    assert!(es.guests.iter().all(|g| g.cluster_ids.len() == 1));
}

#[test]
fn a_cluster_reference_error_comes_before_a_value_error_in_an_earlier_guest() {
    let (text, _) = replace_one(&synthetic(), "<guestMemory>", "<guestMemory>x", false);
    // The last guest's own reference (the cluster definitions follow `</machines>`).
    let machines_end = text.find("</machines>").unwrap();
    let last_ref = text[..machines_end].rfind("<cluster id=\"syncl").unwrap();
    let text = format!(
        "{}<cluster id=\"nosuch{}",
        &text[..last_ref],
        &text[last_ref + "<cluster id=\"syncl".len()..]
    );
    let err = error_of(&text);
    assert!(
        matches!(&err.kind, EsXmlErrorKind::UnknownReference { what: "cluster", id } if id.starts_with("nosuch")),
        "{err}"
    );
    assert_eq!(err.location, Some(Location::of(&text, last_ref)));
}

#[test]
fn a_vip_error_comes_after_cluster_references_and_before_value_errors() {
    let host = "<machine id=\"synadm00000_id\" />";
    let (vip_is_host, vip_at) = replace_one(
        &synthetic(),
        "<machine id=\"synadm00005vm001_id\" />",
        host,
        true,
    );
    let err = error_of(&vip_is_host);
    assert!(
        matches!(err.kind, EsXmlErrorKind::VipNotAGuest { .. }),
        "{err}"
    );
    assert_eq!(err.location, Some(Location::of(&vip_is_host, vip_at)));

    let (with_value_error, _) = replace_one(&vip_is_host, "<guestMemory>", "<guestMemory>x", false);
    assert_eq!(error_of(&with_value_error).kind, err.kind);

    let (with_ref_error, _) = replace_one(
        &vip_is_host,
        "<cluster id=\"syncl",
        "<cluster id=\"nosuch",
        false,
    );
    let err = error_of(&with_ref_error);
    assert!(
        matches!(
            err.kind,
            EsXmlErrorKind::UnknownReference {
                what: "cluster",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn guests_are_checked_before_networks_and_the_first_guest_before_the_last() {
    let (text, first_memory) = replace_one(&synthetic(), "<guestMemory>", "<guestMemory>x", false);
    let (text, _) = replace_one(&text, "<guestMemory>", "<guestMemory>x", true);
    let (text, _) = replace_one(&text, "<vlanId>", "<vlanId>x", true);
    let err = error_of(&text);
    assert_eq!(
        err.location,
        Some(Location::of(&text, first_memory)),
        "{err}"
    );

    let (only_last, _) = replace_one(&synthetic(), "<guestMemory>", "<guestMemory>x", true);
    let (only_last, _) = replace_one(&only_last, "<vlanId>", "<vlanId>x", false);
    assert!(matches!(
        error_of(&only_last).kind,
        EsXmlErrorKind::BadSize {
            field: "guestMemory",
            ..
        }
    ));
    let (only_network, _) = replace_one(&synthetic(), "<vlanId>", "<vlanId>x", true);
    assert!(matches!(
        error_of(&only_network).kind,
        EsXmlErrorKind::BadValue {
            field: "vlanId",
            ..
        }
    ));
}

#[test]
fn host_names_are_checked_after_roles_and_before_parents() {
    let text = synthetic();
    let (text, _) = replace_one(
        &text,
        "<hostName>synadm00005vm001.example.com",
        "<hostName>synadm00000vm000.example.com",
        true,
    );
    let (text, _) = replace_one(
        &text,
        "<machine id=\"synadm00000vm000_id\" />",
        "<machine id=\"nosuch_id\" />",
        false,
    );
    let err = error_of(&text);
    assert!(
        matches!(err.kind, EsXmlErrorKind::DuplicateHostName { .. }),
        "{err}"
    );

    let (text, _) = replace_one(
        &text,
        "compute</machineType>",
        "storage</machineType>",
        true,
    );
    let err = error_of(&text);
    assert!(
        matches!(err.kind, EsXmlErrorKind::ConflictingMachineType { .. }),
        "{err}"
    );
}
