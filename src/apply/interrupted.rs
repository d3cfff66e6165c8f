//! A live migration whose berth died (kill -9, crash) while libvirt migrated: how it ended, and
//! how to leave the guest running on exactly one host.
//!
//! libvirt keeps going after its client is gone, in ways that depend on the mode and phase:
//! - peer-to-peer (berth's default): the source libvirtd drives the whole migration itself;
//!   it finishes (or fails) it with or without berth. The source's job stays active until then.
//! - client-managed: each libvirtd cleans up once the client's connection drops. A migration
//!   still copying memory is cancelled (the guest keeps running on the source) and the target's
//!   half-received copy is destroyed. After the source has paused the guest and sent the last
//!   pages, the source cannot know whether the target started it: it keeps its copy
//!   "paused (migration)" with no job, while the target may run the guest, or may have been
//!   destroyed (the guest then runs nowhere).
//!
//! While libvirt cleans up, the target holds a transient copy that is `shutdown`,
//! `paused (starting up)` or `paused (migration)` ([`DomainStatus::is_leftover`]): it is neither
//! a running guest nor a second definition. [`settle_live`] follows the source's job until
//! libvirt ends it (aborting it if it stalls), waits (bounded) for such a copy to disappear,
//! and then acts on the outcome as libvirt's confirm step would have: it discards a paused
//! source copy whose target runs the guest, and resumes a paused source copy with no copy on
//! the target. Anything it cannot decide safely is refused with what it found.

use std::time::{Duration, Instant};

use super::error::{ApplyError, Stall};
use super::hypervisor::{DomainStatus, Hypervisor, MigrationProgress};
use super::stall::StallWatch;
use crate::inventory::GuestState;

/// How often the hosts are looked at again while libvirt is still migrating or cleaning up.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What [`settle_live`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSettlement {
    /// Nothing to do: the guest is on one host (the migration was cancelled, or it completed),
    /// or on neither (the executor reports that).
    Untouched,
    /// The migration was cancelled but the source's copy stayed paused; it runs again.
    ResumedOnSource,
    /// The target had finished (guest running there); the source's paused copy is gone.
    SourceCopyDiscarded,
}

/// How long [`settle_live`] waits for libvirt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleLimits {
    /// A migration job still running on the source is followed until it ends, unless its memory
    /// counters stand still this long: it is then aborted (the guest stays on the source).
    pub stall_timeout: Duration,
    /// How long a leftover copy on the target may take to disappear.
    pub leftover_wait: Duration,
}

/// Leaves `guest`, whose live migration from `src` to `dst` berth stopped following, on exactly
/// one host and running as it was. A migration job still active on the source is followed to
/// its end (`progress` hears about it); a leftover copy on the target is waited for, up to
/// `limits.leftover_wait`.
pub fn settle_live(
    src: &Hypervisor,
    dst: &Hypervisor,
    guest: &str,
    limits: SettleLimits,
    progress: &mut dyn FnMut(MigrationProgress),
) -> Result<LiveSettlement, ApplyError> {
    let mut stall = StallWatch::new(limits.stall_timeout, Instant::now());
    let mut leftover_since: Option<Instant> = None;
    let (on_src, on_dst) = loop {
        let on_src = src.domain_status(guest)?;
        let on_dst = dst.domain_status(guest)?;
        if on_src.as_ref().is_some_and(|s| s.job_active) {
            let report = src.migration_progress(guest)?;
            let counter = report.as_ref().and_then(|p| p.mem_processed_bytes);
            if let Some(p) = report {
                progress(p);
            }
            if let Some(waited) = stall.observe(counter, Instant::now()) {
                return Err(abort_stalled(src, dst, guest, counter, waited));
            }
            std::thread::sleep(POLL_INTERVAL);
            continue;
        }
        // A leftover on the target, or the source's copy of a completed migration that libvirt
        // is about to undefine.
        let cleaning_up = on_dst.as_ref().is_some_and(DomainStatus::is_leftover)
            || (on_dst.is_some() && on_src.as_ref().is_some_and(|s| s.migrated_away));
        if cleaning_up {
            let since = *leftover_since.get_or_insert_with(Instant::now);
            if since.elapsed() < limits.leftover_wait {
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        }
        break (on_src, on_dst);
    };
    match (on_src, on_dst) {
        (Some(s), None) if source_waits_for_confirmation(&s) => {
            src.resume(guest)?;
            Ok(LiveSettlement::ResumedOnSource)
        }
        (Some(s), Some(d)) => {
            if s.uuid != d.uuid {
                return Err(ApplyError::NameTaken {
                    guest: guest.to_string(),
                    host: dst.host().to_string(),
                    found: d.uuid,
                    expected: s.uuid,
                });
            }
            if !target_took_over(&s, &d) {
                return Err(ApplyError::Refused(format!(
                    "guest `{guest}` is defined on both host `{}` ({}) and host `{}` ({}) after an interrupted live \
                     migration, and berth cannot tell safely which copy is the guest; keep the one that runs the \
                     guest (`virsh domjobinfo`, `virsh domstate --reason` on both), destroy and undefine the other, \
                     then run `berth apply` again",
                    src.host(),
                    describe(&s),
                    dst.host(),
                    describe(&d),
                )));
            }
            if !d.persistent {
                // The target runs the guest but did not persist it: give it the definition.
                dst.define(&src.movable_xml(guest)?)?;
            }
            src.discard(guest)?;
            Ok(LiveSettlement::SourceCopyDiscarded)
        }
        (None, Some(d)) if d.is_leftover() => Err(ApplyError::Refused(format!(
            "guest `{guest}` is on no host but a copy libvirt did not clean up on host `{}` ({}) after an \
             interrupted live migration; look at it (`virsh domstate --reason`, `virsh domjobinfo`) before \
             running `berth apply` again",
            dst.host(),
            describe(&d),
        ))),
        _ => Ok(LiveSettlement::Untouched),
    }
}

/// Aborts a migration job that stopped moving on the source; the error says what stalled and
/// where the guest is afterwards.
fn abort_stalled(
    src: &Hypervisor,
    dst: &Hypervisor,
    guest: &str,
    counter: Option<u64>,
    waited: Duration,
) -> ApplyError {
    let outcome = match src.abort_job(guest) {
        Ok(()) => format!("; the guest stays on `{}`", src.host()),
        Err(e) => format!(", but aborting failed: {e}"),
    };
    ApplyError::Stalled(Box::new(Stall {
        guest: guest.to_string(),
        from: src.host().to_string(),
        to: dst.host().to_string(),
        what: super::hypervisor::stalled_what(counter),
        waited,
        outcome,
    }))
}

/// The source's copy is paused by a pre-copy migration that libvirt has ended without
/// confirming: it waits for a decision nobody will make.
fn source_waits_for_confirmation(on_src: &DomainStatus) -> bool {
    on_src.state == GuestState::Paused
        && on_src.paused_by_migration
        && !on_src.post_copy
        && !on_src.job_active
}

/// The target finished a pre-copy migration and the source only waits for the confirmation:
/// the target runs the guest (not in post-copy, where the source still holds memory) and the
/// source's copy is paused by the migration, with no job left, or shut off as migrated (the
/// migration completed, and libvirt did not undefine the source's copy).
fn target_took_over(on_src: &DomainStatus, on_dst: &DomainStatus) -> bool {
    on_dst.runs()
        && !on_dst.post_copy
        && (source_waits_for_confirmation(on_src)
            || (on_src.migrated_away && on_src.state == GuestState::ShutOff))
}

fn describe(s: &DomainStatus) -> String {
    let mut text = s.libvirt_state.clone();
    if !s.persistent {
        text.push_str(", transient");
    }
    if s.job_active {
        text.push_str(", a job still active");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: GuestState) -> DomainStatus {
        DomainStatus {
            state,
            libvirt_state: state.to_string(),
            in_transition: false,
            paused_by_migration: false,
            migrated_away: false,
            post_copy: false,
            persistent: true,
            uuid: "u".into(),
            job_active: false,
        }
    }

    fn paused_by_migration() -> DomainStatus {
        DomainStatus {
            paused_by_migration: true,
            libvirt_state: "paused (migration)".into(),
            ..status(GuestState::Paused)
        }
    }

    /// The target's incoming copy while libvirt destroys it: libvirt says `shutdown`, which
    /// berth's coarse state reads as running.
    fn torn_down_incoming() -> DomainStatus {
        DomainStatus {
            in_transition: true,
            persistent: false,
            libvirt_state: "shutdown (unknown)".into(),
            ..status(GuestState::Running)
        }
    }

    #[test]
    fn only_a_finished_target_with_a_confirmable_source_takes_over() {
        let running = status(GuestState::Running);
        assert!(target_took_over(&paused_by_migration(), &running));
        // The source still runs (cancelled migration) or was paused by someone else.
        assert!(!target_took_over(&running, &running));
        assert!(!target_took_over(&status(GuestState::Paused), &running));
        // The target did not start the guest.
        assert!(!target_took_over(
            &paused_by_migration(),
            &status(GuestState::Paused)
        ));
        // A copy being torn down is not a guest that took over, although it reads as running.
        assert!(!target_took_over(
            &paused_by_migration(),
            &torn_down_incoming()
        ));
        // Post-copy: memory is on both sides; neither copy may go.
        assert!(!target_took_over(
            &paused_by_migration(),
            &DomainStatus {
                post_copy: true,
                ..running.clone()
            }
        ));
        // libvirt has not finished with the source's job.
        assert!(!target_took_over(
            &DomainStatus {
                job_active: true,
                ..paused_by_migration()
            },
            &running
        ));
    }

    #[test]
    fn a_source_copy_shut_off_as_migrated_gives_way_to_a_running_target() {
        let migrated = DomainStatus {
            migrated_away: true,
            libvirt_state: "shutoff (migrated)".into(),
            ..status(GuestState::ShutOff)
        };
        assert!(target_took_over(&migrated, &status(GuestState::Running)));
        assert!(!target_took_over(&migrated, &torn_down_incoming()));
        // A source shut off for another reason is a guest someone stopped: not berth's to drop.
        assert!(!target_took_over(
            &status(GuestState::ShutOff),
            &status(GuestState::Running)
        ));
    }

    #[test]
    fn transient_copies_in_transition_are_leftovers_not_guests() {
        let leftover = torn_down_incoming();
        assert!(leftover.is_leftover());
        assert!(!leftover.runs());
        let starting = DomainStatus {
            in_transition: true,
            persistent: false,
            libvirt_state: "paused (starting up)".into(),
            ..status(GuestState::Paused)
        };
        assert!(starting.is_leftover());
        let incoming = DomainStatus {
            persistent: false,
            ..paused_by_migration()
        };
        assert!(incoming.is_leftover());
        // A persistent guest being shut down, or a source paused by the migration, is a guest.
        assert!(
            !DomainStatus {
                persistent: true,
                ..torn_down_incoming()
            }
            .is_leftover()
        );
        assert!(!paused_by_migration().is_leftover());
        // A transient guest that really runs is running.
        let transient_running = DomainStatus {
            persistent: false,
            ..status(GuestState::Running)
        };
        assert!(!transient_running.is_leftover());
        assert!(transient_running.runs());
        assert_eq!(
            describe(&DomainStatus {
                job_active: true,
                ..paused_by_migration()
            }),
            "paused (migration), a job still active"
        );
        assert_eq!(describe(&leftover), "shutdown (unknown), transient");
    }

    #[test]
    fn only_a_paused_source_with_no_job_waits_for_confirmation() {
        assert!(source_waits_for_confirmation(&paused_by_migration()));
        assert!(!source_waits_for_confirmation(&status(GuestState::Running)));
        assert!(!source_waits_for_confirmation(&status(GuestState::Paused)));
        assert!(!source_waits_for_confirmation(&DomainStatus {
            job_active: true,
            ..paused_by_migration()
        }));
        assert!(!source_waits_for_confirmation(&DomainStatus {
            post_copy: true,
            ..paused_by_migration()
        }));
    }
}
