//! DETACH_INTERFACES and ATTACH_INTERFACES for offline moves: a guest's SR-IOV interfaces
//! (`<interface type='hostdev'>`, virtual functions of one host's NICs) leave its definition on
//! the source before the move and come back on the target with virtual functions of the
//! target's `sriov_vfs` pool that no domain there uses, keeping MAC, driver, model and the
//! guest-side PCI address.
//!
//! Each step is one `define` of an edited definition (see [`super::definition`]), so each is
//! all or nothing, and each checks reality first: nothing left to take out is a detach done;
//! the recorded interfaces present (by MAC) and nothing recorded as detached is an attach done.

use std::collections::BTreeSet;

use crate::config::PciAddress;
use crate::inventory::GuestState;
use crate::schedule::Step;
use crate::state::DetachedInterface;

use super::definition::{
    attach_interfaces, detach_hostdev_interfaces, hostdev_interfaces, stashed_interfaces,
};
use super::error::ApplyError;
use super::hypervisor::Hypervisor;
use super::runner::{StepContext, StepOutcome};

fn definition_error(guest: &str, host: &Hypervisor) -> impl Fn(String) -> ApplyError {
    let (guest, host) = (guest.to_string(), host.host().to_string());
    move |message| ApplyError::Definition {
        guest: guest.clone(),
        host: host.clone(),
        message,
    }
}

fn describe(interfaces: &[DetachedInterface]) -> String {
    let one =
        |i: &DetachedInterface| format!("{} ({})", i.mac.as_deref().unwrap_or("no MAC"), i.source);
    interfaces.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// Whether the source definition has no SR-IOV interface left (or no longer defines the guest).
pub fn is_detached(src: &Hypervisor, guest: &str) -> Result<bool, ApplyError> {
    match src.persistent_xml(guest)? {
        None => Ok(true),
        Some(xml) => Ok(hostdev_interfaces(&xml)
            .map_err(definition_error(guest, src))?
            .is_empty()),
    }
}

/// Takes the SR-IOV interfaces out of the shut-off guest's definition on `src`, recording them
/// in the definition's metadata; the outcome carries them for the state file.
pub fn detach(src: &Hypervisor, guest: &str) -> Result<StepOutcome, ApplyError> {
    let Some(xml) = src.persistent_xml(guest)? else {
        let note = format!("{guest} is no longer defined on {}", src.host());
        return Ok(StepOutcome {
            note: Some(note),
            ..StepOutcome::default()
        });
    };
    let state = src.domain_state(guest)?.unwrap_or(GuestState::Unknown);
    if state != GuestState::ShutOff {
        return Err(ApplyError::WrongState {
            guest: guest.to_string(),
            host: src.host().to_string(),
            state,
            why: "its SR-IOV interfaces leave the definition only while it is shut off (STOP_GUEST comes first)".into(),
        });
    }
    let taken = hostdev_interfaces(&xml).map_err(definition_error(guest, src))?;
    let (edited, recorded) =
        detach_hostdev_interfaces(&xml).map_err(definition_error(guest, src))?;
    if edited != xml {
        src.define(&edited)?;
    }
    Ok(StepOutcome {
        note: Some(format!(
            "took out {}; recorded in the definition's metadata and the state file",
            describe(&taken)
        )),
        guest_state: Some(GuestState::ShutOff),
        detached_interfaces: Some(recorded),
        ..StepOutcome::default()
    })
}

/// The `needed` first VFs of `pool` (in its order) that are not in `in_use`; `Err(free)` with
/// how many are free when that is fewer.
pub fn choose_vfs(
    pool: &[String],
    in_use: &BTreeSet<String>,
    needed: usize,
) -> Result<Vec<PciAddress>, usize> {
    let free: Vec<&String> = pool.iter().filter(|vf| !in_use.contains(*vf)).collect();
    if free.len() < needed {
        return Err(free.len());
    }
    // The pool was checked when the configuration was read; an unreadable entry is not free.
    let chosen: Vec<PciAddress> = free
        .iter()
        .filter_map(|vf| PciAddress::parse(vf).ok())
        .take(needed)
        .collect();
    if chosen.len() < needed {
        Err(chosen.len())
    } else {
        Ok(chosen)
    }
}

/// What ATTACH_INTERFACES gives back: what the target definition's metadata records, or else
/// what the state file does.
fn to_attach(
    xml: &str,
    ctx: &StepContext,
    guest: &str,
    dst: &Hypervisor,
) -> Result<Vec<DetachedInterface>, ApplyError> {
    let stashed = stashed_interfaces(xml).map_err(definition_error(guest, dst))?;
    Ok(if stashed.is_empty() {
        ctx.detached_interfaces.clone()
    } else {
        stashed
    })
}

/// Whether the target definition has the guest's SR-IOV interfaces back: nothing recorded as
/// detached in it, and every interface the state file recorded present by MAC (without such a
/// record: as many SR-IOV interfaces as the step names).
pub fn is_attached(dst: &Hypervisor, step: &Step, ctx: &StepContext) -> Result<bool, ApplyError> {
    let guest = &ctx.domain().to_string();
    let Some(xml) = dst.persistent_xml(guest)? else {
        return Ok(false);
    };
    if !stashed_interfaces(&xml)
        .map_err(definition_error(guest, dst))?
        .is_empty()
    {
        return Ok(false);
    }
    let present = hostdev_interfaces(&xml).map_err(definition_error(guest, dst))?;
    let expected = &ctx.detached_interfaces;
    let by_mac = expected
        .iter()
        .filter(|e| e.mac.is_some())
        .all(|e| present.iter().any(|p| p.mac == e.mac));
    Ok(by_mac && present.len() >= expected.len().max(step.items.len()))
}

/// Gives the guest's SR-IOV interfaces back on `dst` with free VFs of `pool`, in order: the
/// first interface taken out gets the first free VF, and so on. The caller serialises attaches
/// to one host, so that two guests never get the same VF.
pub fn attach(
    dst: &Hypervisor,
    step: &Step,
    ctx: &StepContext,
    pool: Option<&[String]>,
) -> Result<StepOutcome, ApplyError> {
    let guest = &ctx.domain().to_string();
    let xml = dst
        .persistent_xml(guest)?
        .ok_or_else(|| ApplyError::Libvirt {
            action: "give SR-IOV interfaces back to",
            guest: guest.clone(),
            host: dst.host().to_string(),
            message: "the domain is not defined on this host".into(),
        })?;
    let wanted = to_attach(&xml, ctx, guest, dst)?;
    if wanted.is_empty() {
        return Err(ApplyError::Unsupported {
            step: step.id.clone(),
            message: format!(
                "nothing records the SR-IOV interfaces taken out of {guest} ({}): neither its definition on {} nor the state file",
                step.items.join(", "),
                dst.host()
            ),
        });
    }
    let pool = pool.ok_or_else(|| ApplyError::Unsupported {
        step: step.id.clone(),
        message: format!(
            "host `{}` has no `sriov_vfs` pool in the configuration, and {guest} needs {} of its SR-IOV VFs",
            dst.host(),
            wanted.len()
        ),
    })?;
    let mut in_use = dst.pci_in_use(guest)?;
    // SR-IOV interfaces of the guest's own definition that stay keep their VFs.
    let present = hostdev_interfaces(&xml).map_err(definition_error(guest, dst))?;
    let replaced = |p: &DetachedInterface| p.mac.is_some() && wanted.iter().any(|w| w.mac == p.mac);
    in_use.extend(
        present
            .iter()
            .filter(|p| !replaced(p))
            .map(|p| p.source.clone()),
    );
    let vfs = choose_vfs(pool, &in_use, wanted.len()).map_err(|free| ApplyError::NoFreeVfs {
        guest: guest.clone(),
        host: dst.host().to_string(),
        needed: wanted.len(),
        free,
        configured: pool.len(),
    })?;
    let pairs: Vec<(DetachedInterface, PciAddress)> = wanted.into_iter().zip(vfs).collect();
    let edited = attach_interfaces(&xml, &pairs).map_err(definition_error(guest, dst))?;
    dst.define(&edited)?;
    let given: Vec<String> = pairs
        .iter()
        .map(|(i, vf)| format!("{} → {vf}", i.mac.as_deref().unwrap_or("no MAC")))
        .collect();
    Ok(StepOutcome {
        note: Some(format!("gave back {}", given.join(", "))),
        definition_xml: Some(dst.movable_xml(guest)?),
        detached_interfaces: Some(Vec::new()),
        ..StepOutcome::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vfs_are_taken_in_pool_order_skipping_those_in_use() {
        let pool: Vec<String> = [
            "0000:3b:02.0",
            "0000:5e:02.0",
            "0000:3b:02.1",
            "0000:5e:02.1",
        ]
        .map(String::from)
        .to_vec();
        let chosen = choose_vfs(&pool, &set(&["0000:3b:02.0", "0000:af:00.2"]), 2).unwrap();
        assert_eq!(
            chosen.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["0000:5e:02.0", "0000:3b:02.1"]
        );
        assert_eq!(
            choose_vfs(
                &pool,
                &set(&["0000:3b:02.0", "0000:5e:02.0", "0000:3b:02.1"]),
                2
            ),
            Err(1)
        );
        assert_eq!(choose_vfs(&pool, &BTreeSet::new(), 0), Ok(vec![]));
    }
}
