//! The rules a target host must satisfy for one guest, shared by the automatic placement,
//! the per-move prerequisites and the scheduler's choice of a pivot host, so that all three
//! agree on what "this host can take that guest" means.

use crate::config::MigrationMode;
use crate::inventory::{Guest, Host};

/// Why a host cannot take a guest: a stable code (the [`super::MoveProblem`] code) and a phrase
/// about the target host, e.g. `image 23.1.0 is older than exa01adm01's 24.1.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub code: &'static str,
    pub message: String,
}

impl Blocker {
    fn new(code: &'static str, message: String) -> Self {
        Blocker { code, message }
    }
}

/// Rules that hold whatever else moves: the target answers, has the source's architecture, an
/// image version no older than the source host's nor the guest's own, and for live migration the
/// source's CPU model. Unknown values (`None`) never block.
pub fn host_blockers(
    guest: &Guest,
    source: Option<&Host>,
    target: &Host,
    mode: MigrationMode,
) -> Vec<Blocker> {
    let mut blockers = Vec::new();
    if !target.reachable {
        blockers.push(Blocker::new(
            "target_unreachable",
            format!("libvirt on {} does not answer", target.name),
        ));
    }
    if let Some(source) = source {
        if let (Some(from), Some(to)) = (&source.arch, &target.arch)
            && from != to
        {
            blockers.push(Blocker::new(
                "arch",
                format!("architecture {to} differs from {}'s {from}", source.name),
            ));
        }
        if let (Some(from), Some(to)) = (&source.image_version, &target.image_version)
            && to < from
        {
            blockers.push(Blocker::new(
                "image_version",
                format!("image {to} is older than {}'s {from}", source.name),
            ));
        }
        if mode == MigrationMode::Live
            && let (Some(from), Some(to)) = (&source.cpu_model, &target.cpu_model)
            && from != to
        {
            blockers.push(Blocker::new(
                "cpu_model",
                format!(
                    "CPU model {to} differs from {}'s {from} (live migration needs the same model)",
                    source.name
                ),
            ));
        }
    }
    if let (Some(own), Some(to)) = (&guest.image_version, &target.image_version)
        && to < own
        && !blockers.iter().any(|b| b.code == "image_version")
    {
        blockers.push(Blocker::new(
            "image_version",
            format!("image {to} is older than {}'s own image {own}", guest.name),
        ));
    }
    blockers
}

/// Guest properties that rule out live migration whatever the target: host-specific devices,
/// SATA disks and disks outside shared storage.
pub fn live_guest_blockers(guest: &Guest, shared_storage: &[String]) -> Vec<Blocker> {
    let mut blockers = Vec::new();
    let hostdev_interfaces: Vec<&str> = guest
        .host_specific_interfaces()
        .map(|i| i.source.as_str())
        .collect();
    let hostdevs: Vec<&str> = guest.hostdevs.iter().map(|d| d.address.as_str()).collect();
    if !hostdev_interfaces.is_empty() || !hostdevs.is_empty() {
        let all: Vec<&str> = hostdev_interfaces.into_iter().chain(hostdevs).collect();
        blockers.push(Blocker::new(
            "hostdev",
            format!(
                "{} has host devices passed through ({}), which cannot migrate live",
                guest.name,
                all.join(", ")
            ),
        ));
    }
    let sata: Vec<&str> = guest
        .disks
        .iter()
        .filter(|d| d.bus.eq_ignore_ascii_case("sata"))
        .map(|d| d.target.as_str())
        .collect();
    if !sata.is_empty() {
        blockers.push(Blocker::new(
            "sata",
            format!(
                "{} has SATA disks ({}), which cannot migrate live",
                guest.name,
                sata.join(", ")
            ),
        ));
    }
    let local: Vec<&str> = guest
        .disks
        .iter()
        .filter_map(|d| d.source.as_deref())
        .filter(|source| {
            !shared_storage
                .iter()
                .any(|prefix| under_prefix(source, prefix))
        })
        .collect();
    if !local.is_empty() {
        blockers.push(Blocker::new(
            "storage",
            format!(
                "{} has disks outside shared storage ({}; shared: {})",
                guest.name,
                local.join(", "),
                if shared_storage.is_empty() {
                    "none configured".to_string()
                } else {
                    shared_storage.join(", ")
                }
            ),
        ));
    }
    blockers
}

/// Whether `path` is `prefix` or lies below it, by whole path components
/// (`/EXAVMIMAGES/x` is under `/EXAVMIMAGES`, `/EXAVMIMAGES2/x` is not).
fn under_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return path.starts_with('/');
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The mode a move really uses. Live migration needs a running domain: a guest that is shut off
/// (or crashed) moves offline instead, and stays shut off; the note says so in the move's reason.
pub fn effective_mode(guest: &Guest, requested: MigrationMode) -> (MigrationMode, Option<String>) {
    if requested == MigrationMode::Live && !guest.state.holds_resources() {
        let note = format!(
            "{} is {}, so it moves offline and stays shut off (live needs a running guest)",
            guest.name, guest.state
        );
        (MigrationMode::Offline, Some(note))
    } else {
        (requested, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_components() {
        assert!(under_prefix(
            "/EXAVMIMAGES/GuestImages/vm01/System.img",
            "/EXAVMIMAGES"
        ));
        assert!(under_prefix("/EXAVMIMAGES/x", "/EXAVMIMAGES/"));
        assert!(under_prefix("/EXAVMIMAGES", "/EXAVMIMAGES"));
        assert!(!under_prefix("/EXAVMIMAGES2/x", "/EXAVMIMAGES"));
        assert!(!under_prefix(
            "/var/lib/libvirt/images/a.qcow2",
            "/EXAVMIMAGES"
        ));
    }
}
