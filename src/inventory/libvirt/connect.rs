//! Opening a libvirt connection within a bounded time (`inventory.connect_timeout_s`).
//!
//! `virConnectOpen` has no deadline of its own. In libvirt 9.0 (src/rpc/virnetsocket.c):
//! `qemu+ssh` runs `ssh [-p] [-l] [-i keyfile] -T -e none [-o BatchMode=yes]
//! [-o StrictHostKeyChecking=no] -- host command` (`virNetSocketNewConnectSSH`): no URI
//! parameter reaches ssh's `ConnectTimeout`, short of replacing the ssh binary or naming a
//! command, which a configured URI may not do ([`crate::names::RESERVED_URI_PARAMS`]), and
//! ssh's own default is the kernel's TCP connect timeout (about two minutes). `qemu+tcp` and
//! `qemu+libssh2` connect with a blocking `connect()` (`virNetSocketNewConnectTCP`), and every
//! transport then waits for the answer to the RPC handshake with no deadline at all: a host
//! that accepts and never answers hangs the open for good. Keepalive
//! ([`crate::inventory::keepalive`]) only starts once the connection is open.
//!
//! So the open runs on a thread of its own, and berth stops waiting for it after the timeout:
//! the host is then reported unreachable, by name, like any host whose libvirt cannot be read.
//! libvirt's calls cannot be cancelled, so the thread is left to finish on its own: when the
//! open ends (fails, or succeeds late), the connection is dropped, which closes it, and nothing
//! has used it. A process that exits does not wait for such a thread.

use std::sync::mpsc;
use std::time::Duration;

use virt::connect::Connect;

use super::diagnostics::{message as libvirt_message, route_errors_to_tracing};

/// The default of `inventory.connect_timeout_s`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens `uri` (read-only or not) with keepalive on, giving up after `timeout`. The error is a
/// one-line message; the caller adds the host and URI. Transports berth cannot drive are
/// refused first ([`super::check_transport`]).
pub fn open(uri: &str, read_only: bool, timeout: Duration) -> Result<Connect, String> {
    route_errors_to_tracing();
    super::check_transport(uri)?;
    crate::inventory::keepalive::start_event_loop();
    let (sender, receiver) = mpsc::sync_channel(1);
    let owned = uri.to_string();
    std::thread::Builder::new()
        .name("libvirt-open".into())
        .spawn(move || {
            route_errors_to_tracing();
            let opened = if read_only {
                Connect::open_read_only(Some(&owned))
            } else {
                Connect::open(Some(&owned))
            };
            let result = opened.map_err(|e| libvirt_message(&e)).and_then(|conn| {
                crate::inventory::keepalive::keep_alive(&conn)
                    .map(|()| conn)
                    .map_err(|e| libvirt_message(&e))
            });
            // Nobody waits any more after a timeout: the connection is dropped (closed) here.
            let _ = sender.send(result);
        })
        .map_err(|e| format!("cannot start a thread to connect: {e}"))?;
    match receiver.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "no answer within {} s (`inventory.connect_timeout_s`): the host is down, a firewall \
             drops the packets, or its libvirtd hangs",
            timeout.as_secs_f64()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(
            "the connection attempt ended without a result (libvirt's bindings panicked)".into(),
        ),
    }
}
