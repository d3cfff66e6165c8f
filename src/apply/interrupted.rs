//! A live migration whose berth died (kill -9, crash) while libvirt migrated: how it ended, and
//! how to leave the guest running on exactly one host.
//!
//! berth drives live migrations from the client side (libvirt's migration protocol v3: begin,
//! prepare on the target, perform on the source, finish on the target, confirm on the source).
//! When the client's connections drop, each libvirtd cleans up on its own: a migration still
//! copying memory is cancelled (the guest keeps running on the source) and the target's
//! half-received guest is removed. One window is left open: after the target has *finished*
//! (its guest runs there, persistent) and before the source has *confirmed*, the source keeps
//! its copy paused ("paused (migrating)"), because it cannot know whether the target started.
//! That guest is then defined on two hosts. [`settle_live`] closes that window as libvirt's
//! confirm step would have; it also resumes a source copy libvirt left paused with no copy on
//! the target. Anything else it cannot decide safely is refused with what it found.

use std::time::{Duration, Instant};

use super::error::ApplyError;
use super::hypervisor::{DomainStatus, Hypervisor};
use crate::inventory::GuestState;

/// How often the hosts are looked at again while libvirt is still cleaning up.
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

/// Leaves `guest`, whose live migration from `src` to `dst` berth stopped following, on exactly
/// one host and running as it was. Waits up to `wait` for libvirt to finish cleaning up (a
/// migration job still active on the source, a half-received guest still paused on the target).
pub fn settle_live(
    src: &Hypervisor,
    dst: &Hypervisor,
    guest: &str,
    wait: Duration,
) -> Result<LiveSettlement, ApplyError> {
    let deadline = Instant::now() + wait;
    let (on_src, on_dst) = loop {
        let on_src = src.domain_status(guest)?;
        let on_dst = dst.domain_status(guest)?;
        if !still_settling(on_src.as_ref(), on_dst.as_ref()) || Instant::now() >= deadline {
            break (on_src, on_dst);
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    match (on_src, on_dst) {
        (Some(s), None)
            if s.state == GuestState::Paused && s.paused_by_migration && !s.job_active =>
        {
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
        _ => Ok(LiveSettlement::Untouched),
    }
}

/// libvirt is still cleaning up: the source runs a migration job, or the target holds a copy
/// that is neither running nor gone.
fn still_settling(on_src: Option<&DomainStatus>, on_dst: Option<&DomainStatus>) -> bool {
    on_src.is_some_and(|s| s.job_active)
        || (on_src.is_some() && on_dst.is_some_and(|d| d.state != GuestState::Running))
}

/// The target finished a pre-copy migration and the source only waits for the confirmation:
/// the target runs the guest (not in post-copy, where the source still holds memory) and the
/// source's copy is paused by the migration, with no job left.
fn target_took_over(on_src: &DomainStatus, on_dst: &DomainStatus) -> bool {
    on_dst.state == GuestState::Running
        && !on_dst.post_copy
        && on_src.state == GuestState::Paused
        && on_src.paused_by_migration
        && !on_src.post_copy
        && !on_src.job_active
}

fn describe(s: &DomainStatus) -> String {
    let mut text = s.state.to_string();
    if s.paused_by_migration {
        text.push_str(" by the migration");
    }
    if s.post_copy {
        text.push_str(", in post-copy");
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
            paused_by_migration: false,
            post_copy: false,
            persistent: true,
            uuid: "u".into(),
            job_active: false,
        }
    }

    fn paused_by_migration() -> DomainStatus {
        DomainStatus {
            paused_by_migration: true,
            ..status(GuestState::Paused)
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
    fn settling_waits_for_the_source_job_and_a_half_received_target() {
        let running = status(GuestState::Running);
        assert!(still_settling(
            Some(&DomainStatus {
                job_active: true,
                ..running.clone()
            }),
            None
        ));
        assert!(still_settling(
            Some(&running),
            Some(&status(GuestState::Paused))
        ));
        assert!(!still_settling(
            Some(&paused_by_migration()),
            Some(&running)
        ));
        assert!(!still_settling(Some(&running), None));
        assert!(!still_settling(None, Some(&running)));
        assert_eq!(
            describe(&DomainStatus {
                job_active: true,
                ..paused_by_migration()
            }),
            "paused by the migration, a job still active"
        );
    }
}
