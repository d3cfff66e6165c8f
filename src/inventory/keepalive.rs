//! libvirt keepalive on every connection berth opens.
//!
//! Without keepalive, a libvirt call over a connection whose peer has gone (host down, link
//! cut) waits for TCP to give up, which can take many minutes: berth hung silently at 7 %
//! when a source host's link went down mid-migration. With keepalive, libvirt pings the peer
//! every [`INTERVAL_S`] seconds and closes the connection after [`COUNT`] unanswered pings,
//! so every call on it fails with libvirt's "connection closed due to keepalive timeout".
//! Keepalive needs libvirt's event loop to run: [`keep_alive`] starts libvirt's default
//! implementation once, on a thread of its own, before the first connection uses it.

use std::sync::Once;

use virt::connect::Connect;
use virt::error::ErrorNumber;

/// Seconds between keepalive pings on an idle connection.
pub const INTERVAL_S: i32 = 5;
/// Unanswered pings after which libvirt closes the connection (about 20 s of silence).
pub const COUNT: u32 = 3;

/// Registers libvirt's default event loop and runs it on a background thread, once per
/// process. Must happen before a connection is opened for keepalive to work on it.
pub fn start_event_loop() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = virt::event::event_register_default_impl() {
            tracing::warn!(
                error = e.message(),
                "libvirt event loop unavailable; no keepalive"
            );
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("libvirt-events".into())
            .spawn(|| {
                loop {
                    if let Err(e) = virt::event::event_run_default_impl() {
                        tracing::warn!(error = e.message(), "libvirt event loop failed");
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the libvirt event loop thread");
        }
    });
}

/// Turns keepalive on for `conn`. Drivers without keepalive (the in-process test driver) are
/// left as they are; any other refusal is libvirt's error.
pub fn keep_alive(conn: &Connect) -> Result<(), virt::error::Error> {
    match conn.set_keep_alive(INTERVAL_S, COUNT) {
        Err(e) if e.code().is(ErrorNumber::NoSupport) => Ok(()),
        other => other,
    }
}
