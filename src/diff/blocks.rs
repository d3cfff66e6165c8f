//! The configuration's `host` and `guest` blocks resolved against the topology: labels to
//! es.xml names, each error at the span of the offending label or value.

use std::collections::BTreeMap;

use crate::config::{Config, GuestIntent, HostIntent, MigrationMode, Span, Spanned};
use crate::inventory::Topology;

use super::capacity::HostRules;
use super::error::DiffError;
use super::resolve::{NameIndex, Resolution};

/// What one guest block asks, resolved: the host it pins (with the value's span) and the mode.
pub(crate) struct Pin<'a> {
    pub host: Option<(&'a str, &'a Span)>,
    pub mode: Option<MigrationMode>,
}

/// Blocks in the order they are written (file, then offset), so errors read top to bottom and
/// "given twice" points at the later block.
fn in_file_order<'c, T>(
    blocks: impl Iterator<Item = &'c T>,
    span: impl Fn(&T) -> &Span,
) -> Vec<&'c T> {
    let mut blocks: Vec<&T> = blocks.collect();
    blocks.sort_by_key(|b| (span(b).file, span(b).range.start));
    blocks
}

pub(crate) fn resolve_host_blocks<'a>(
    cfg: &'a Config,
    topo: &Topology,
    host_names: &NameIndex<'a>,
    guest_names: &NameIndex<'a>,
    errors: &mut Vec<DiffError>,
) -> BTreeMap<&'a str, &'a HostIntent> {
    let mut resolved: BTreeMap<&str, &HostIntent> = BTreeMap::new();
    for intent in in_file_order(cfg.hosts.values(), |i: &HostIntent| &i.name.span) {
        if let Some(error) = not_a_kvm_host(topo, &intent.name) {
            errors.push(error);
            continue;
        }
        let Some(host) = resolve_label("host", &intent.name, host_names, guest_names, errors)
        else {
            continue;
        };
        if let Some(first) = resolved.get(host) {
            errors.push(given_twice("host", host, &first.name, &intent.name));
            continue;
        }
        resolved.insert(host, intent);
    }
    resolved
}

pub(crate) fn resolve_guest_blocks<'a>(
    cfg: &'a Config,
    topo: &'a Topology,
    guest_names: &NameIndex<'a>,
    host_names: &NameIndex<'a>,
    hosts: &BTreeMap<String, HostRules>,
    errors: &mut Vec<DiffError>,
) -> BTreeMap<&'a str, Pin<'a>> {
    let mut pins: BTreeMap<&str, Pin> = BTreeMap::new();
    let mut labels: BTreeMap<&str, &Spanned<String>> = BTreeMap::new();
    for intent in in_file_order(cfg.guests.values(), |i: &GuestIntent| &i.name.span) {
        let Some(guest) = resolve_label("guest", &intent.name, guest_names, host_names, errors)
        else {
            continue;
        };
        if let Some(first) = labels.get(guest) {
            errors.push(given_twice("guest", guest, first, &intent.name));
            continue;
        }
        labels.insert(guest, &intent.name);
        let host = match &intent.host {
            None => None,
            Some(value) => match resolve_host_value(guest, value, host_names, errors) {
                Some(host) => {
                    let current = topo.guests.get(guest).map(|g| g.host.as_str());
                    if let Some(error) = refused_pin(guest, host, current, value, hosts) {
                        errors.push(error);
                        continue;
                    }
                    Some((host, &value.span))
                }
                None => continue,
            },
        };
        pins.insert(
            guest,
            Pin {
                host,
                mode: intent.mode.as_ref().map(|m| m.value),
            },
        );
    }
    pins
}

/// A pin onto a drained host contradicts the drain; onto a disabled host it is refused unless
/// the guest is already there (disabled only forbids moving onto the host).
fn refused_pin(
    guest: &str,
    host: &str,
    current: Option<&str>,
    value: &Spanned<String>,
    hosts: &BTreeMap<String, HostRules>,
) -> Option<DiffError> {
    let rules = hosts.get(host)?;
    let (what, help) = if rules.empties() {
        let what = rules.refusal().unwrap_or("drained");
        let attribute = if rules.evacuate {
            "evacuate"
        } else if rules.maintenance {
            "maintenance"
        } else {
            "drain"
        };
        (
            what,
            format!(
                "host \"{host}\" is being emptied ({what}): pick another host, or remove `{attribute} = true` from it"
            ),
        )
    } else if rules.disabled && current != Some(host) {
        (
            "disabled",
            format!(
                "no guest may move onto a disabled host: pick another host, or remove `disabled = true` from host \"{host}\""
            ),
        )
    } else {
        return None;
    };
    Some(DiffError {
        span: Some(value.span.clone()),
        message: format!("guest {guest} is pinned to {host}, which is {what}"),
        label: format!("{what} host"),
        help: Some(help),
        guest: Some(guest.to_string()),
        host: Some(host.to_string()),
    })
}

fn resolve_host_value<'a>(
    guest: &str,
    value: &Spanned<String>,
    host_names: &NameIndex<'a>,
    errors: &mut Vec<DiffError>,
) -> Option<&'a str> {
    let label = value.value.as_str();
    let (message, short_label, help) = match host_names.resolve(label) {
        Resolution::Found(host) => return Some(host),
        Resolution::Ambiguous(names) => (
            format!(
                "guest {guest}: host \"{label}\" is ambiguous, it is the short name of {}",
                names.join(" and ")
            ),
            "ambiguous host name".to_string(),
            Some(format!("write the full name, e.g. \"{}\"", names[0])),
        ),
        Resolution::Unknown { suggestion } => (
            format!("guest {guest}: host \"{label}\" is not in the topology"),
            "unknown host".to_string(),
            suggestion.map(|s| format!("did you mean \"{s}\"?")),
        ),
    };
    errors.push(DiffError {
        span: Some(value.span.clone()),
        message,
        label: short_label,
        help,
        guest: Some(guest.to_string()),
        host: None,
    });
    None
}

/// A host block (or `-drain`, `-maintenance`…) naming an es.xml machine that is no KVM host,
/// such as a storage cell: say what it is rather than suggest a KVM host of similar name.
pub(crate) fn not_a_kvm_host(topo: &Topology, label: &Spanned<String>) -> Option<DiffError> {
    let text = label.value.as_str();
    let short = |n: &str| n.split('.').next().unwrap_or(n).to_string();
    if topo.hosts.contains_key(text) || topo.hosts.keys().any(|h| short(h) == text) {
        return None;
    }
    let (name, kind) = topo
        .other_machines
        .iter()
        .find(|(name, _)| name.as_str() == text || short(name) == text)?;
    Some(DiffError {
        span: Some(label.span.clone()),
        message: format!("host \"{text}\" is a {kind} in es.xml ({name}), not a KVM host"),
        label: format!("a {kind}"),
        help: Some(format!(
            "berth places guests on KVM hosts (osType LinuxKVM) only; those in es.xml are: {}",
            topo.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
        guest: None,
        host: Some(text.to_string()),
    })
}

/// Resolves a block label (`kind` is `guest` or `host`); `others` holds the names of the other
/// kind, to say so when a host name was written in a guest block or the reverse.
pub(crate) fn resolve_label<'a>(
    kind: &str,
    label: &Spanned<String>,
    names: &NameIndex<'a>,
    others: &NameIndex<'a>,
    errors: &mut Vec<DiffError>,
) -> Option<&'a str> {
    let text = label.value.as_str();
    let other_kind = if kind == "guest" { "host" } else { "guest" };
    let (message, short_label, help) = match names.resolve(text) {
        Resolution::Found(name) => return Some(name),
        Resolution::Ambiguous(candidates) => (
            format!(
                "{kind} \"{text}\" is ambiguous: it is the short name of {}",
                candidates.join(" and ")
            ),
            format!("ambiguous {kind} name"),
            Some(format!(
                "write the full name, e.g. {kind} \"{}\"",
                candidates[0]
            )),
        ),
        Resolution::Unknown { suggestion } => {
            // A name of the other kind written in the wrong block beats a typo suggestion.
            let help = if others.contains(text) {
                format!("\"{text}\" is a {other_kind}: use a `{other_kind} \"{text}\"` block")
            } else if let Some(s) = suggestion {
                format!("did you mean {kind} \"{s}\"?")
            } else {
                format!("{kind} names come from the es.xml inventory")
            };
            let help = Some(help);
            (
                format!("{kind} \"{text}\" is not in the topology"),
                format!("unknown {kind}"),
                help,
            )
        }
    };
    let (guest, host) = if kind == "guest" {
        (Some(text.to_string()), None)
    } else {
        (None, Some(text.to_string()))
    };
    errors.push(DiffError {
        span: Some(label.span.clone()),
        message,
        label: short_label,
        help,
        guest,
        host,
    });
    None
}

fn given_twice(
    kind: &str,
    name: &str,
    first: &Spanned<String>,
    second: &Spanned<String>,
) -> DiffError {
    let (guest, host) = if kind == "guest" {
        (Some(name.to_string()), None)
    } else {
        (None, Some(name.to_string()))
    };
    DiffError {
        span: Some(second.span.clone()),
        message: format!(
            "{kind} {name} is configured twice (as \"{}\" and \"{}\")",
            first.value, second.value
        ),
        label: format!("second block for {name}"),
        help: Some(format!("merge the two {kind} blocks into one")),
        guest,
        host,
    }
}
