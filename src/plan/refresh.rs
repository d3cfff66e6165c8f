//! `berth refresh`: es.xml rewritten to match libvirt (Terraform's refresh-only, for es.xml).
//! Each guest moves under the host whose libvirt runs it, and its `guestMemory` and
//! `guestCores` take libvirt's figures. Byte-preserving: only those references and values
//! change; the result is re-parsed and checked before anyone writes it.

use crate::inventory::esxml::{self, GuestMove};
use crate::inventory::load::Inventory;
use crate::inventory::reconcile::DriftKind;
use crate::inventory::{Drift, GuestState};

/// What a refresh changes, for the diff shown and the state journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// The es.xml text after the refresh (equal to the current one when nothing changes).
    pub text: String,
    /// One line per change: `vm01: host adm01 → adm02`, `vm02: memory 64 GiB → 96 GiB`.
    pub changes: Vec<String>,
}

/// Why es.xml cannot be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Refreshing from a host berth cannot read would drop what it runs.
    #[error(
        "cannot refresh es.xml while libvirt on {} does not answer: what it runs is unknown ({})",
        hosts.join(", "),
        details.join("; ")
    )]
    Unreachable {
        hosts: Vec<String>,
        details: Vec<String>,
    },
    #[error(transparent)]
    EsXml(#[from] esxml::EsXmlError),
    /// The rewritten file does not say what libvirt does (a bug; nothing is written).
    #[error("the refreshed es.xml does not match libvirt ({0}); nothing written")]
    Mismatch(String),
}

/// es.xml as libvirt has it. `inv` must be read with the topology following libvirt (any
/// policy but `es_xml`). Guests libvirt does not define anywhere, or defines on more than one
/// host, are left as es.xml has them (their drift says so).
pub fn refresh(inv: &Inventory, es_xml_name: &str) -> Result<Refresh, RefreshError> {
    let unreachable: Vec<&Drift> = inv
        .drift
        .iter()
        .filter(|d| d.kind == DriftKind::HostUnreachable)
        .collect();
    if !unreachable.is_empty() {
        return Err(RefreshError::Unreachable {
            hosts: unreachable.iter().filter_map(|d| d.host.clone()).collect(),
            details: unreachable.iter().map(|d| d.libvirt.clone()).collect(),
        });
    }
    let duplicated = |guest: &str| {
        inv.drift
            .iter()
            .any(|d| d.kind == DriftKind::DuplicateDomain && d.guest.as_deref() == Some(guest))
    };
    let topo = &inv.topology;
    let host_id = |name: &str| topo.hosts.get(name).map(|h| h.machine_id.clone());
    let mut changes = Vec::new();
    let mut moves = Vec::new();
    let mut sizes: Vec<(&str, Option<u64>, Option<u32>)> = Vec::new();
    for es_guest in &inv.es.guests {
        let Some(g) = topo.guests.get(&es_guest.name) else {
            continue;
        };
        if g.state == GuestState::Unknown || duplicated(&g.name) {
            continue;
        }
        if let Some(to) = host_id(&g.host)
            && to != es_guest.host_id
        {
            let from_name = inv
                .es
                .hosts
                .iter()
                .find(|h| h.id == es_guest.host_id)
                .map_or(es_guest.host_id.as_str(), |h| h.name.as_str());
            changes.push(format!("{}: host {from_name} → {}", g.name, g.host));
            moves.push(GuestMove {
                guest_id: es_guest.id.clone(),
                from_host_id: es_guest.host_id.clone(),
                to_host_id: to,
            });
        }
        let memory = es_guest.memory_mib.filter(|m| *m != g.memory_mib).map(|m| {
            changes.push(format!(
                "{}: memory {} → {}",
                g.name,
                crate::diff::units::mib(m),
                crate::diff::units::mib(g.memory_mib)
            ));
            g.memory_mib
        });
        let vcpus = es_guest.vcpus.filter(|v| *v != g.vcpus).map(|v| {
            changes.push(format!("{}: vCPUs {v} → {}", g.name, g.vcpus));
            g.vcpus
        });
        if memory.is_some() || vcpus.is_some() {
            sizes.push((es_guest.id.as_str(), memory, vcpus));
        }
    }
    let mut text = if moves.is_empty() {
        inv.es_xml_text.to_string()
    } else {
        match &inv.es_layout {
            Some(layout) => {
                esxml::move_guests_parsed(es_xml_name, &inv.es_xml_text, &inv.es, layout, &moves)?
            }
            None => esxml::move_guests(&inv.es_xml_text, &moves)?,
        }
    };
    for (id, memory, vcpus) in &sizes {
        if let Some(mib) = memory {
            text = set_value(&text, id, "guestMemory", |old| memory_text(old, *mib))?;
        }
        if let Some(v) = vcpus {
            text = set_value(&text, id, "guestCores", |_| v.to_string())?;
        }
    }
    check(inv, es_xml_name, &text, &moves, &sizes)?;
    Ok(Refresh { text, changes })
}

/// The new `guestMemory` text for `mib`, in the file's own unit spelling when the amount is a
/// whole number of GiB (`45GB` → `96GB`, `1390Gb` → `1400Gb`), else in MiB (`98304M`).
fn memory_text(old: &str, mib: u64) -> String {
    let unit: String = old
        .trim()
        .chars()
        .skip_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if mib.is_multiple_of(1024) && unit.to_ascii_lowercase().starts_with('g') {
        format!("{}{unit}", mib / 1024)
    } else {
        format!("{mib}M")
    }
}

/// Replaces the text of `<element>` inside the definition of machine `id` (the `<machine
/// id="id">` element with content, not a host's empty reference to it).
fn set_value(
    text: &str,
    id: &str,
    element: &str,
    value: impl Fn(&str) -> String,
) -> Result<String, RefreshError> {
    let missing = || RefreshError::Mismatch(format!("no <{element}> in the definition of {id}"));
    let start = [
        format!("<machine id=\"{id}\">"),
        format!("<machine id='{id}'>"),
    ]
    .iter()
    .find_map(|tag| text.find(tag.as_str()))
    .ok_or_else(missing)?;
    let end = start + text[start..].find("</machine>").ok_or_else(missing)?;
    let open = format!("<{element}>");
    let from = start + text[start..end].find(&open).ok_or_else(missing)? + open.len();
    let to = from + text[from..end].find('<').ok_or_else(missing)?;
    Ok(format!(
        "{}{}{}",
        &text[..from],
        value(&text[from..to]),
        &text[to..]
    ))
}

/// Re-parses the refreshed text: every moved guest under its new host, every changed size as
/// libvirt has it.
fn check(
    inv: &Inventory,
    name: &str,
    text: &str,
    moves: &[GuestMove],
    sizes: &[(&str, Option<u64>, Option<u32>)],
) -> Result<(), RefreshError> {
    let parsed = esxml::parse(name, text)?;
    for m in moves {
        let g = parsed.guests.iter().find(|g| g.id == m.guest_id);
        if g.map(|g| g.host_id.as_str()) != Some(m.to_host_id.as_str()) {
            return Err(RefreshError::Mismatch(format!(
                "{} is not under {}",
                m.guest_id, m.to_host_id
            )));
        }
    }
    for (id, memory, vcpus) in sizes {
        let g = parsed.guests.iter().find(|g| g.id == *id);
        let want = inv.es.guests.iter().find(|g| g.id == *id);
        let (Some(g), Some(_)) = (g, want) else {
            return Err(RefreshError::Mismatch(format!("{id} is gone")));
        };
        if memory.is_some_and(|m| g.memory_mib != Some(m))
            || vcpus.is_some_and(|v| g.vcpus != Some(v))
        {
            return Err(RefreshError::Mismatch(format!(
                "{id}: memory {:?} MiB, vCPUs {:?}",
                g.memory_mib, g.vcpus
            )));
        }
    }
    Ok(())
}
