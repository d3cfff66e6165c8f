//! Ctrl-C (SIGINT) and SIGTERM during an apply, as an operator who may have a guest in flight
//! expects: the first starts no new step and lets the running ones finish or settle, so that
//! they are journaled and the lock is released; the second also aborts running live
//! migrations (libvirt leaves the guest on its source). Either way the apply exits 1 with its
//! summary, and the next `berth apply` continues the plan.
//!
//! A signal is process-wide, so the request is too: the CLI's signal handler raises it, the
//! executor and the live migration read it.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// Records one more interrupt; returns how many there have been.
pub fn request() -> u8 {
    LEVEL.fetch_add(1, Ordering::SeqCst).saturating_add(1)
}

/// No new step may start.
pub fn stopping() -> bool {
    LEVEL.load(Ordering::SeqCst) >= 1
}

/// Running live migrations are to be aborted as well.
pub fn aborting() -> bool {
    LEVEL.load(Ordering::SeqCst) >= 2
}
