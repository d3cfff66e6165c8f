//! Desired placement: the configuration's guest and host blocks resolved against the topology,
//! and a host for every guest.

use std::collections::BTreeMap;

use crate::config::{Config, GuestIntent, HostIntent, MigrationMode, Span, Spanned};
use crate::inventory::Topology;

use super::capacity::{HostRules, Ledger};
use super::error::DiffError;
use super::model::MoveProblem;
use super::placement::{self, Outcome, Request};
use super::resolve::{NameIndex, Resolution};

/// Where every guest should be.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Every guest of the topology, by its es.xml name.
    pub guests: BTreeMap<String, DesiredGuest>,
    /// Every host of the topology with its rules (host block over defaults).
    pub hosts: BTreeMap<String, HostRules>,
    /// Guests that must leave a drained host but that no host can take (code `no_target`);
    /// they keep their current host in [`Desired::guests`].
    pub unplaced: Vec<MoveProblem>,
}

/// Where one guest should be, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredGuest {
    pub host: String,
    /// The mode its guest block asks for; `None` = the default mode.
    pub mode: Option<MigrationMode>,
    pub origin: Origin,
}

/// Why a guest's desired host is what it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Nothing asks it to move.
    Stays,
    /// `guest { host = … }`; the span of the value.
    Pinned { span: Span },
    /// Its host is drained and berth chose this target; why it won over the others.
    Chosen { reason: String },
    /// Its host is drained but no host can take it (see [`Desired::unplaced`]).
    Unplaced,
}

/// Resolves the guest and host blocks and decides the desired host of every guest.
///
/// A label may be the full es.xml name or its first DNS label when that is unambiguous.
/// Errors (unknown or ambiguous names, a block given twice, a guest pinned to a drained or
/// disabled host) are all collected, each at the span of the offending label or value.
pub fn desired(cfg: &Config, topo: &Topology) -> Result<Desired, Vec<DiffError>> {
    let host_names = NameIndex::new(topo.hosts.keys().map(String::as_str));
    let guest_names = NameIndex::new(topo.guests.keys().map(String::as_str));
    let mut errors = Vec::new();

    let host_intents = resolve_host_blocks(cfg, &host_names, &guest_names, &mut errors);
    let hosts: BTreeMap<String, HostRules> = topo
        .hosts
        .values()
        .map(|h| (h.name.clone(), HostRules::new(h, host_intents.get(h.name.as_str()).copied(), &cfg.defaults)))
        .collect();
    let pins = resolve_guest_blocks(cfg, topo, &guest_names, &host_names, &hosts, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut ledger = Ledger::new(topo);
    let mut guests = BTreeMap::new();
    let mut requests = Vec::new();
    for guest in topo.guests.values() {
        let pin = pins.get(guest.name.as_str());
        let mode = pin.and_then(|p| p.mode);
        let entry = match pin.and_then(|p| p.host) {
            Some((host, span)) => {
                if host != guest.host {
                    ledger.apply(guest, &guest.host, host);
                }
                DesiredGuest { host: host.to_string(), mode, origin: Origin::Pinned { span: span.clone() } }
            }
            None if hosts.get(&guest.host).is_some_and(|r| r.drain) => {
                requests.push(Request { guest, mode: mode.unwrap_or(cfg.defaults.mode.value) });
                continue;
            }
            None => DesiredGuest { host: guest.host.clone(), mode, origin: Origin::Stays },
        };
        guests.insert(guest.name.clone(), entry);
    }

    let mut unplaced = Vec::new();
    for (request, outcome) in placement::place(topo, &hosts, &mut ledger, requests) {
        let guest = request.guest;
        let mode = pins.get(guest.name.as_str()).and_then(|p| p.mode);
        let entry = match outcome {
            Outcome::Chosen { host, reason } => DesiredGuest { host, mode, origin: Origin::Chosen { reason } },
            Outcome::Unplaced(problem) => {
                unplaced.push(problem);
                DesiredGuest { host: guest.host.clone(), mode, origin: Origin::Unplaced }
            }
        };
        guests.insert(guest.name.clone(), entry);
    }
    Ok(Desired { guests, hosts, unplaced })
}

/// What one guest block asks, resolved: the host it pins (with the value's span) and the mode.
struct Pin<'a> {
    host: Option<(&'a str, &'a Span)>,
    mode: Option<MigrationMode>,
}

/// Blocks in the order they are written (file, then offset), so errors read top to bottom and
/// "given twice" points at the later block.
fn in_file_order<'c, T>(blocks: impl Iterator<Item = &'c T>, span: impl Fn(&T) -> &Span) -> Vec<&'c T> {
    let mut blocks: Vec<&T> = blocks.collect();
    blocks.sort_by_key(|b| (span(b).file, span(b).range.start));
    blocks
}

fn resolve_host_blocks<'a>(
    cfg: &'a Config,
    host_names: &NameIndex<'a>,
    guest_names: &NameIndex<'a>,
    errors: &mut Vec<DiffError>,
) -> BTreeMap<&'a str, &'a HostIntent> {
    let mut resolved: BTreeMap<&str, &HostIntent> = BTreeMap::new();
    for intent in in_file_order(cfg.hosts.values(), |i: &HostIntent| &i.name.span) {
        let Some(host) = resolve_label("host", &intent.name, host_names, guest_names, errors) else { continue };
        if let Some(first) = resolved.get(host) {
            errors.push(given_twice("host", host, &first.name, &intent.name));
            continue;
        }
        resolved.insert(host, intent);
    }
    resolved
}

fn resolve_guest_blocks<'a>(
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
        let Some(guest) = resolve_label("guest", &intent.name, guest_names, host_names, errors) else { continue };
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
        pins.insert(guest, Pin { host, mode: intent.mode.as_ref().map(|m| m.value) });
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
    let (what, help) = if rules.drain {
        ("drained", format!("a drained host is being emptied: pick another host, or remove `drain = true` from host \"{host}\""))
    } else if rules.disabled && current != Some(host) {
        ("disabled", format!("no guest may move onto a disabled host: pick another host, or remove `disabled = true` from host \"{host}\""))
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
            format!("guest {guest}: host \"{label}\" is ambiguous, it is the short name of {}", names.join(" and ")),
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

/// Resolves a block label (`kind` is `guest` or `host`); `others` holds the names of the other
/// kind, to say so when a host name was written in a guest block or the reverse.
fn resolve_label<'a>(
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
            format!("{kind} \"{text}\" is ambiguous: it is the short name of {}", candidates.join(" and ")),
            format!("ambiguous {kind} name"),
            Some(format!("write the full name, e.g. {kind} \"{}\"", candidates[0])),
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
            (format!("{kind} \"{text}\" is not in the topology"), format!("unknown {kind}"), help)
        }
    };
    let (guest, host) = if kind == "guest" { (Some(text.to_string()), None) } else { (None, Some(text.to_string())) };
    errors.push(DiffError { span: Some(label.span.clone()), message, label: short_label, help, guest, host });
    None
}

fn given_twice(kind: &str, name: &str, first: &Spanned<String>, second: &Spanned<String>) -> DiffError {
    let (guest, host) = if kind == "guest" { (Some(name.to_string()), None) } else { (None, Some(name.to_string())) };
    DiffError {
        span: Some(second.span.clone()),
        message: format!("{kind} {name} is configured twice (as \"{}\" and \"{}\")", first.value, second.value),
        label: format!("second block for {name}"),
        help: Some(format!("merge the two {kind} blocks into one")),
        guest,
        host,
    }
}
