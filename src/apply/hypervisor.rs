//! Acting on libvirt (through the `virt` crate only): stop, start, define, undefine and move
//! guests between hosts.
//!
//! Every call names the guest and host in its error and keeps libvirt's own message, because
//! that message ("Cannot get interface MTU on 'br-st': No such device") is what tells an
//! operator what to fix.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use virt::connect::Connect;
use virt::domain::{Domain, DomainState, MigrateParameters};
use virt::error::ErrorNumber;
use virt::sys;

use super::error::{ApplyError, Stall};
use super::stall::StallWatch;
use crate::config::{LiveOptions, LiveTransport};
use crate::inventory::libvirt::connect;
use crate::inventory::libvirt::parse_domain_devices;
use crate::inventory::{GuestState, passed_through_pci};

/// How often state changes and migration progress are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often live-migration progress is reported.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// With post-copy enabled, switch to post-copy once this many pre-copy passes have run.
const POSTCOPY_AFTER_ITERATION: u64 = 2;

const MIB: f64 = 1024.0 * 1024.0;

/// Progress of a live migration, from libvirt's job statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MigrationProgress {
    /// Share of guest memory transferred, 0–100 (from total and remaining memory).
    pub percent: Option<f64>,
    /// Current memory transfer rate, MiB/s.
    pub mib_per_s: Option<f64>,
    pub mem_total_mib: Option<u64>,
    pub mem_processed_mib: Option<u64>,
    pub mem_remaining_mib: Option<u64>,
    /// Pre-copy pass number.
    pub iteration: Option<u64>,
    pub elapsed_ms: Option<u64>,
    /// Memory transferred so far in bytes (re-sent pages included): the counter a stall is
    /// told by.
    #[serde(skip)]
    pub mem_processed_bytes: Option<u64>,
}

impl MigrationProgress {
    fn from_job(stats: &virt::domain::JobStats) -> MigrationProgress {
        let to_mib = |bytes: u64| bytes / (1024 * 1024);
        // processed counts re-sent dirty pages and can pass 100 %: derive the share from what
        // is left instead, falling back to processed/total when libvirt gives no remainder.
        let percent = match (stats.mem_total, stats.mem_remaining, stats.mem_processed) {
            (Some(total), Some(rem), _) if total > 0 => {
                Some(100.0 * total.saturating_sub(rem) as f64 / total as f64)
            }
            (Some(total), None, Some(done)) if total > 0 => {
                Some((100.0 * done as f64 / total as f64).min(100.0))
            }
            _ => None,
        };
        MigrationProgress {
            percent,
            mib_per_s: stats.mem_bps.map(|b| b as f64 / MIB),
            mem_total_mib: stats.mem_total.map(to_mib),
            mem_processed_mib: stats.mem_processed.map(to_mib),
            mem_remaining_mib: stats.mem_remaining.map(to_mib),
            iteration: stats.mem_iteration,
            elapsed_ms: stats.time_elapsed,
            mem_processed_bytes: stats.mem_processed,
        }
    }
}

/// One host's libvirt connection.
pub struct Hypervisor {
    host: String,
    uri: String,
    conn: Connect,
    migration_uri: Option<String>,
    peer_uri: Option<String>,
}

impl std::fmt::Debug for Hypervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hypervisor")
            .field("host", &self.host)
            .field("uri", &self.uri)
            .finish()
    }
}

impl Hypervisor {
    /// Opens `uri` for the host named `host` (the name used in plans and messages), within
    /// the default connect timeout ([`connect::DEFAULT_CONNECT_TIMEOUT`]; apply passes the
    /// configured one to [`Hypervisor::connect_within`]).
    pub fn connect(host: &str, uri: &str) -> Result<Self, ApplyError> {
        Hypervisor::connect_within(host, uri, connect::DEFAULT_CONNECT_TIMEOUT)
    }

    /// [`Hypervisor::connect`], giving up after `timeout` (`inventory.connect_timeout_s`; see
    /// [`connect`] for why the open runs on a thread of its own).
    pub fn connect_within(host: &str, uri: &str, timeout: Duration) -> Result<Self, ApplyError> {
        let conn = connect::open(uri, false, timeout).map_err(|message| ApplyError::Connect {
            host: host.to_string(),
            uri: uri.to_string(),
            message,
        })?;
        Ok(Hypervisor {
            host: host.to_string(),
            uri: uri.to_string(),
            conn,
            migration_uri: None,
            peer_uri: None,
        })
    }

    /// Sets the address live migrations INTO this host send their data to (libvirt's
    /// migration URI, e.g. `tcp://10.77.0.12`), for hosts whose libvirt would otherwise
    /// advertise an address the source cannot reach.
    pub fn with_migration_uri(mut self, uri: impl Into<String>) -> Self {
        self.migration_uri = Some(uri.into());
        self
    }

    /// Sets the libvirt URI by which OTHER hosts reach this one in a peer-to-peer live
    /// migration (the source's libvirtd connects to it), when it differs from the URI berth
    /// uses (e.g. `qemu+ssh://adm02.example.com/system` while berth uses an SSH tunnel).
    pub fn with_peer_uri(mut self, uri: impl Into<String>) -> Self {
        self.peer_uri = Some(uri.into());
        self
    }

    /// The libvirt URI a source host uses to reach this host in a peer-to-peer migration.
    pub fn peer_uri(&self) -> &str {
        self.peer_uri.as_deref().unwrap_or(&self.uri)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn migration_uri(&self) -> Option<&str> {
        self.migration_uri.as_deref()
    }

    /// The open connection, for reading the host through it (see
    /// `inventory::libvirt::observe_connection`).
    pub fn connection(&self) -> &Connect {
        &self.conn
    }

    fn libvirt_error(
        &self,
        action: &'static str,
        guest: &str,
        e: virt::error::Error,
    ) -> ApplyError {
        ApplyError::Libvirt {
            action,
            guest: guest.to_string(),
            host: self.host.clone(),
            message: crate::inventory::libvirt::libvirt_message(&e),
        }
    }

    /// The domain, or `None` when the host does not define it.
    fn lookup(&self, guest: &str) -> Result<Option<Domain>, ApplyError> {
        match self.conn.lookup_domain_by_name(guest) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.code().is(ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(self.libvirt_error("look up", guest, e)),
        }
    }

    fn require(&self, action: &'static str, guest: &str) -> Result<Domain, ApplyError> {
        self.lookup(guest)?.ok_or_else(|| ApplyError::Libvirt {
            action,
            guest: guest.to_string(),
            host: self.host.clone(),
            message: "the domain is not defined on this host".into(),
        })
    }

    fn state_of(&self, guest: &str, dom: &Domain) -> Result<GuestState, ApplyError> {
        let (state, _reason) = dom
            .state()
            .map_err(|e| self.libvirt_error("read state of", guest, e))?;
        Ok(guest_state(state))
    }

    /// The guest's state here; `None` when this host does not define it.
    pub fn domain_state(&self, guest: &str) -> Result<Option<GuestState>, ApplyError> {
        match self.lookup(guest)? {
            Some(dom) => self.state_of(guest, &dom).map(Some),
            None => Ok(None),
        }
    }

    fn uuid_of(&self, guest: &str, dom: &Domain) -> Result<String, ApplyError> {
        dom.uuid_string()
            .map_err(|e| self.libvirt_error("read UUID of", guest, e))
    }

    /// Polls until the guest reaches `want` or `timeout` passes; returns the last state seen.
    fn wait_for(
        &self,
        guest: &str,
        dom: &Domain,
        want: GuestState,
        timeout: Duration,
    ) -> Result<(bool, GuestState), ApplyError> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state_of(guest, dom)?;
            if state == want {
                return Ok((true, state));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok((false, state));
            }
            std::thread::sleep(POLL_INTERVAL.min(deadline - now));
        }
    }

    /// Shuts the guest down gracefully and waits until it is shut off. After `timeout` it
    /// fails, or, only when `force_after_timeout`, destroys (powers off) the guest.
    /// A guest that is already shut off is left alone.
    pub fn shutdown(
        &self,
        guest: &str,
        timeout: Duration,
        force_after_timeout: bool,
    ) -> Result<(), ApplyError> {
        let dom = self.require("shut down", guest)?;
        if matches!(self.state_of(guest, &dom)?, GuestState::ShutOff) {
            return Ok(());
        }
        dom.shutdown()
            .map_err(|e| self.libvirt_error("shut down", guest, e))?;
        let (done, state) = self.wait_for(guest, &dom, GuestState::ShutOff, timeout)?;
        if done {
            return Ok(());
        }
        if !force_after_timeout {
            return Err(ApplyError::Timeout {
                action: "shut down",
                guest: guest.to_string(),
                host: self.host.clone(),
                state,
                waited: timeout,
            });
        }
        tracing::warn!(guest, host = %self.host, "graceful shutdown timed out; destroying");
        dom.destroy()
            .map_err(|e| self.libvirt_error("destroy", guest, e))
    }

    /// Starts the guest and waits until it runs. A running guest is left alone.
    pub fn start(&self, guest: &str, timeout: Duration) -> Result<(), ApplyError> {
        let dom = self.require("start", guest)?;
        match self.state_of(guest, &dom)? {
            GuestState::Running => return Ok(()),
            GuestState::Paused => {
                return Err(ApplyError::WrongState {
                    guest: guest.to_string(),
                    host: self.host.clone(),
                    state: GuestState::Paused,
                    why: "a paused guest is resumed, not started; resume it first".into(),
                });
            }
            _ => {}
        }
        dom.create()
            .map_err(|e| self.libvirt_error("start", guest, e))?;
        let (done, state) = self.wait_for(guest, &dom, GuestState::Running, timeout)?;
        if done {
            Ok(())
        } else {
            Err(ApplyError::Timeout {
                action: "start",
                guest: guest.to_string(),
                host: self.host.clone(),
                state,
                waited: timeout,
            })
        }
    }

    /// The persistent definition in the form another host can define, without secrets
    /// (`VIR_DOMAIN_XML_MIGRATABLE | VIR_DOMAIN_XML_INACTIVE`).
    pub fn migratable_xml(&self, guest: &str) -> Result<String, ApplyError> {
        let dom = self.require("read definition of", guest)?;
        dom.xml_desc(sys::VIR_DOMAIN_XML_MIGRATABLE | sys::VIR_DOMAIN_XML_INACTIVE)
            .map_err(|e| self.libvirt_error("read definition of", guest, e))
    }

    /// The persistent definition in the form another host can define, with its secrets (a
    /// console password): `VIR_DOMAIN_XML_SECURE` too, for MIGRATE_GUEST's `define` on the
    /// target, and for the state's record (which the state store writes with every secret
    /// replaced by a marker, so that `offline_force` knows which consoles to lock).
    pub fn movable_xml(&self, guest: &str) -> Result<String, ApplyError> {
        let dom = self.require("read definition of", guest)?;
        dom.xml_desc(
            sys::VIR_DOMAIN_XML_MIGRATABLE
                | sys::VIR_DOMAIN_XML_INACTIVE
                | sys::VIR_DOMAIN_XML_SECURE,
        )
        .map_err(|e| self.libvirt_error("read definition of", guest, e))
    }

    /// The persistent definition to redefine on this same host, `None` when the host does not
    /// define the guest. `VIR_DOMAIN_XML_SECURE` keeps secrets (a VNC password) that a
    /// redefinition from the plain XML would drop.
    pub fn persistent_xml(&self, guest: &str) -> Result<Option<String>, ApplyError> {
        let Some(dom) = self.lookup(guest)? else {
            return Ok(None);
        };
        dom.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE | sys::VIR_DOMAIN_XML_SECURE)
            .map(Some)
            .map_err(|e| self.libvirt_error("read definition of", guest, e))
    }

    /// Host PCI addresses passed through by the domains defined here other than `except`
    /// (SR-IOV interfaces and PCI host devices), in their persistent definitions and, for
    /// running domains, their live ones.
    pub fn pci_in_use(&self, except: &str) -> Result<BTreeSet<String>, ApplyError> {
        let fail = |action: &'static str, guest: &str, e: virt::error::Error| {
            self.libvirt_error(action, guest, e)
        };
        let domains = self
            .conn
            .list_all_domains(0)
            .map_err(|e| fail("list domains beside", except, e))?;
        let mut used = BTreeSet::new();
        for dom in &domains {
            let name = dom
                .name()
                .map_err(|e| fail("list domains beside", except, e))?;
            if name == except {
                continue;
            }
            let mut flags = vec![sys::VIR_DOMAIN_XML_INACTIVE];
            if dom
                .is_active()
                .map_err(|e| fail("read state of", &name, e))?
            {
                flags.push(0);
            }
            for flag in flags {
                let xml = dom
                    .xml_desc(flag)
                    .map_err(|e| fail("read definition of", &name, e))?;
                let devices = parse_domain_devices(&xml).map_err(|e| ApplyError::Definition {
                    guest: name.clone(),
                    host: self.host.clone(),
                    message: e.to_string(),
                })?;
                used.extend(
                    passed_through_pci(&devices.interfaces, &devices.hostdevs).map(str::to_string),
                );
            }
        }
        Ok(used)
    }

    /// Defines (or redefines) a persistent domain from `xml`.
    pub fn define(&self, xml: &str) -> Result<(), ApplyError> {
        self.conn.define_domain_xml(xml).map(drop).map_err(|e| {
            let guest = domain_name(xml).unwrap_or_else(|| "(name not readable from XML)".into());
            self.libvirt_error("define", &guest, e)
        })
    }

    /// Removes the guest's persistent definition, keeping NVRAM files (they hold guest data).
    /// Drivers that do not know the keep-NVRAM flag (the test driver) get a plain undefine.
    pub fn undefine(&self, guest: &str) -> Result<(), ApplyError> {
        let dom = self.require("undefine", guest)?;
        match dom.undefine_flags(sys::VIR_DOMAIN_UNDEFINE_KEEP_NVRAM) {
            Err(e) if e.code().is(ErrorNumber::InvalidArg) => dom.undefine(),
            other => other,
        }
        .map_err(|e| self.libvirt_error("undefine", guest, e))
    }
}

fn guest_state(state: virt::domain::DomainStateEnum) -> GuestState {
    match state.known() {
        Some(DomainState::Running | DomainState::Blocked) => GuestState::Running,
        Some(DomainState::Paused | DomainState::PMSuspended) => GuestState::Paused,
        // "shutdown" is libvirt's "being shut down": still running until it reaches shutoff.
        Some(DomainState::Shutdown) => GuestState::Running,
        Some(DomainState::Shutoff) => GuestState::ShutOff,
        Some(DomainState::Crashed) => GuestState::Crashed,
        Some(DomainState::NoState) | None => GuestState::Unknown,
    }
}

/// What one host holds of a guest, as much as it takes to tell how a migration that berth
/// stopped following (killed) ended on that host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainStatus {
    /// berth's reading of the state (libvirt's `shutdown`, "being shut down", reads as running).
    pub state: GuestState,
    /// libvirt's own state and reason, as `virsh domstate --reason` words them
    /// (`paused (migration)`, `shutdown (unknown)`), for messages.
    pub libvirt_state: String,
    /// libvirt's raw state is `shutdown` or `paused (starting up)`: the domain is being torn
    /// down or built, not running a guest.
    pub in_transition: bool,
    /// Paused by a pre-copy migration that was not confirmed or cancelled.
    pub paused_by_migration: bool,
    /// `shutoff (migrated)`: the source's copy after a migration that completed, which libvirt
    /// undefines moments later (`VIR_MIGRATE_UNDEFINE_SOURCE`).
    pub migrated_away: bool,
    /// Running or paused in post-copy: its memory is split between two hosts.
    pub post_copy: bool,
    pub persistent: bool,
    pub uuid: String,
    /// A libvirt job (a migration, on the source) is still active on it.
    pub job_active: bool,
}

impl DomainStatus {
    /// A migration's half-built or half-destroyed incoming copy: transient, and `shutdown`,
    /// `paused (starting up)` or `paused (migration)`. It is neither a running guest nor a
    /// second definition; libvirt removes it once it has cleaned up (or finishes it into a
    /// persistent, running guest).
    pub fn is_leftover(&self) -> bool {
        !self.persistent && (self.in_transition || self.paused_by_migration)
    }

    /// Runs the guest's vCPUs now: running by libvirt's raw state (not `shutdown`, not a
    /// leftover).
    pub fn runs(&self) -> bool {
        self.state == GuestState::Running && !self.in_transition && !self.is_leftover()
    }
}

impl Hypervisor {
    /// The guest's [`DomainStatus`] here; `None` when this host does not define it (also when
    /// it vanishes while being read, as a half-received guest does when libvirt cleans up).
    pub fn domain_status(&self, guest: &str) -> Result<Option<DomainStatus>, ApplyError> {
        use virt::domain::{
            DomainPausedReason, DomainRunningReason, DomainShutoffReason, DomainStateReason,
        };
        use virt::enumutil::Enum;
        let Some(dom) = self.lookup(guest)? else {
            return Ok(None);
        };
        let read = || -> Result<DomainStatus, virt::error::Error> {
            let (state, reason) = dom.state()?;
            let (paused_by_migration, post_copy) = match reason {
                Enum::Known(DomainStateReason::Paused(Enum::Known(r))) => (
                    r == DomainPausedReason::Migration,
                    matches!(
                        r,
                        DomainPausedReason::PostCopy | DomainPausedReason::PostCopyFailed
                    ),
                ),
                Enum::Known(DomainStateReason::Running(Enum::Known(
                    DomainRunningReason::PostCopy,
                ))) => (false, true),
                _ => (false, false),
            };
            let in_transition = matches!(state.known(), Some(DomainState::Shutdown))
                || matches!(
                    reason,
                    Enum::Known(DomainStateReason::Paused(Enum::Known(
                        DomainPausedReason::StartingUp
                    )))
                );
            let migrated_away = matches!(
                reason,
                Enum::Known(DomainStateReason::Shutoff(Enum::Known(
                    DomainShutoffReason::Migrated
                )))
            );
            let libvirt_state = match &reason {
                Enum::Known(r) => format!("{state} ({r})"),
                Enum::Unknown(raw) => format!("{state} (reason {raw})"),
            };
            let persistent = dom.is_persistent()?;
            let uuid = dom.uuid_string()?;
            // Job statistics are best effort: a domain that cannot report them runs no job
            // berth could wait for.
            let job_active =
                job_stats(&dom).is_ok_and(|j| j.r#type != sys::VIR_DOMAIN_JOB_NONE as i32);
            let state = guest_state(state);
            Ok(DomainStatus {
                state,
                libvirt_state,
                in_transition,
                paused_by_migration,
                migrated_away,
                post_copy,
                persistent,
                uuid,
                job_active,
            })
        };
        match read() {
            Ok(status) => Ok(Some(status)),
            Err(e) if e.code().is(ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(self.libvirt_error("read the status of", guest, e)),
        }
    }

    /// Progress of the migration job running on this host's copy of `guest`; `None` when no
    /// job runs (or the host does not define the guest) or it has not started copying memory.
    pub fn migration_progress(&self, guest: &str) -> Result<Option<MigrationProgress>, ApplyError> {
        let Some(dom) = self.lookup(guest)? else {
            return Ok(None);
        };
        match job_stats(&dom) {
            Ok(stats) => Ok(copying(&stats).then(|| MigrationProgress::from_job(&stats))),
            Err(e) if e.code().is(ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(self.libvirt_error("read the migration job of", guest, e)),
        }
    }

    /// Aborts the job (a migration) running on this host's copy of `guest`
    /// (`virDomainAbortJob`): libvirt cancels the migration and the guest keeps running here.
    pub fn abort_job(&self, guest: &str) -> Result<(), ApplyError> {
        let dom = self.require("abort the migration of", guest)?;
        abort_job(&dom).map_err(|e| self.libvirt_error("abort the migration of", guest, e))
    }

    /// Resumes a paused guest.
    pub fn resume(&self, guest: &str) -> Result<(), ApplyError> {
        let dom = self.require("resume", guest)?;
        dom.resume()
            .map_err(|e| self.libvirt_error("resume", guest, e))
    }

    /// Powers off (if active) and undefines this host's copy of the guest: only for a copy
    /// another host has taken over.
    pub fn discard(&self, guest: &str) -> Result<(), ApplyError> {
        let dom = self.require("discard", guest)?;
        if dom
            .is_active()
            .map_err(|e| self.libvirt_error("read state of", guest, e))?
        {
            dom.destroy()
                .map_err(|e| self.libvirt_error("power off", guest, e))?;
        }
        if self.lookup(guest)?.is_some() {
            self.undefine(guest)
        } else {
            Ok(())
        }
    }
}

/// The `<name>` of a domain XML document (first-level child of the root), for messages.
pub(crate) fn domain_name(xml: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                if depth == 2 && e.name().into_inner() == "name" {
                    let text = reader.read_text(e.name()).ok()?;
                    return Some(text.trim().to_string());
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Moves a shut-off guest's definition from `src` to `dst`.
///
/// Order is what keeps the guest safe: define on the target, confirm the target holds it,
/// and only then undefine on the source. Re-running after any partial failure finishes the
/// move: a guest already on the target and gone from the source is done; a guest on both
/// is finished by undefining the source, but only when the target's definition is the same
/// domain (same UUID).
pub fn move_offline(src: &Hypervisor, dst: &Hypervisor, guest: &str) -> Result<(), ApplyError> {
    let on_src = src.lookup(guest)?;
    let on_dst = dst.lookup(guest)?;
    let src_dom = match (on_src, &on_dst) {
        (None, Some(_)) => return Ok(()),
        (None, None) => {
            return Err(ApplyError::GuestMissing {
                guest: guest.to_string(),
                from: src.host.clone(),
                to: dst.host.clone(),
            });
        }
        (Some(d), _) => d,
    };
    let state = src.state_of(guest, &src_dom)?;
    if state != GuestState::ShutOff {
        return Err(ApplyError::WrongState {
            guest: guest.to_string(),
            host: src.host.clone(),
            state,
            why: "an offline move needs the guest shut off first".into(),
        });
    }
    let src_uuid = src.uuid_of(guest, &src_dom)?;
    if on_dst.is_none() {
        let xml = src.movable_xml(guest)?;
        dst.define(&xml)?;
    }
    // Confirm through a fresh lookup that the target now holds this very domain.
    let confirmed = dst.lookup(guest)?.ok_or_else(|| ApplyError::Libvirt {
        action: "confirm definition of",
        guest: guest.to_string(),
        host: dst.host.clone(),
        message: "the domain is not visible after defining it; the source is left untouched".into(),
    })?;
    let dst_uuid = dst.uuid_of(guest, &confirmed)?;
    if dst_uuid != src_uuid {
        return Err(ApplyError::NameTaken {
            guest: guest.to_string(),
            host: dst.host.clone(),
            found: dst_uuid,
            expected: src_uuid,
        });
    }
    src.undefine(guest)
}

/// libvirt flags for a live migration with `opts`.
fn live_flags(opts: &LiveOptions) -> u32 {
    let mut flags =
        sys::VIR_MIGRATE_LIVE | sys::VIR_MIGRATE_PERSIST_DEST | sys::VIR_MIGRATE_UNDEFINE_SOURCE;
    if opts.auto_converge {
        flags |= sys::VIR_MIGRATE_AUTO_CONVERGE;
    }
    if opts.post_copy {
        flags |= sys::VIR_MIGRATE_POSTCOPY;
    }
    if opts.parallel_connections > 1 {
        flags |= sys::VIR_MIGRATE_PARALLEL;
    }
    if opts.tls {
        flags |= sys::VIR_MIGRATE_TLS;
    }
    if opts.transport == LiveTransport::PeerToPeer {
        flags |= sys::VIR_MIGRATE_PEER2PEER;
    }
    if opts.compressed {
        flags |= sys::VIR_MIGRATE_COMPRESSED;
    }
    flags
}

/// libvirt migration parameters for a move into `dst` with `opts`.
fn live_parameters(dst: &Hypervisor, opts: &LiveOptions) -> MigrateParameters {
    MigrateParameters {
        uri: dst.migration_uri.clone(),
        bandwidth: (opts.bandwidth_mib_s > 0).then_some(opts.bandwidth_mib_s),
        parallel_connections: (opts.parallel_connections > 1)
            .then(|| i32::try_from(opts.parallel_connections).unwrap_or(i32::MAX)),
        ..MigrateParameters::default()
    }
}

/// Live-migrates `guest` from `src` to `dst`, persisting it on the target and undefining it
/// on the source.
///
/// Peer-to-peer (`opts.transport`, the default): the source's libvirtd drives the migration to
/// `dst.peer_uri()` (`virDomainMigrateToURI3` with `VIR_MIGRATE_PEER2PEER`), so it finishes or
/// fails cleanly even if berth dies. Client-managed: berth drives both libvirtds
/// (`virDomainMigrate3` against the destination connection).
///
/// While libvirt migrates on a worker thread, this thread polls the source's job statistics and
/// calls `progress` about every half second. With `post_copy`, the switch to post-copy is
/// requested after the second pre-copy pass. When the job's memory counter does not move for
/// `stall_timeout`, the job is aborted (`virDomainAbortJob`) and the error says what stalled.
/// On failure libvirt leaves the guest running on the source, and the error carries libvirt's
/// reason.
pub fn migrate_live(
    src: &Hypervisor,
    dst: &Hypervisor,
    guest: &str,
    opts: &LiveOptions,
    stall_timeout: Duration,
    progress: &mut dyn FnMut(MigrationProgress),
) -> Result<(), ApplyError> {
    const ACTION: &str = "live-migrate";
    let dom = src.require(ACTION, guest)?;
    let state = src.state_of(guest, &dom)?;
    if !matches!(state, GuestState::Running | GuestState::Paused) {
        return Err(ApplyError::WrongState {
            guest: guest.to_string(),
            host: src.host.clone(),
            state,
            why: "live migration needs a running guest".into(),
        });
    }
    if let Some(ms) = opts.max_downtime_ms {
        dom.migrate_set_max_downtime(ms, 0)
            .map_err(|e| src.libvirt_error("set max downtime for", guest, e))?;
    }
    let params = live_parameters(dst, opts);
    let flags = live_flags(opts);
    let peer_uri = dst.peer_uri().to_string();
    let mut postcopy_requested = false;
    let mut stall = StallWatch::new(stall_timeout, Instant::now());
    let mut counter: Option<u64> = None;
    // Set once a second interrupt (Ctrl-C) asked libvirt to abort the migration.
    let mut abort_asked = false;
    // Set once the job was aborted for a stall: the counter then, how long it stood still, and
    // when berth asked libvirt to abort.
    let mut stalled: Option<(Option<u64>, Duration, Instant)> = None;

    // The migration call and the statistics polls run on threads of their own and report here:
    // a host that stops answering blocks them, never this loop, so a stall is always noticed
    // and named. A thread blocked on a dead host ends when libvirt's keepalive closes the
    // connection; nobody waits for it.
    let (tx, rx) = mpsc::channel();
    spawn_migration(
        &dom,
        dst,
        opts.transport,
        peer_uri,
        params,
        flags,
        tx.clone(),
    );
    spawn_stats_poller(&dom, tx);
    let outcome = loop {
        match rx.recv_timeout(PROGRESS_INTERVAL) {
            Ok(Report::Done(result)) => break result,
            Ok(Report::Stats(stats)) => {
                let Some(stats) = stats.filter(|s| copying(s)) else {
                    continue;
                };
                let report = MigrationProgress::from_job(&stats);
                counter = report.mem_processed_bytes.or(counter);
                if opts.post_copy
                    && !postcopy_requested
                    && report.iteration.unwrap_or(0) >= POSTCOPY_AFTER_ITERATION
                {
                    postcopy_requested = true;
                    start_post_copy(&dom);
                }
                progress(report);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err("the migration thread ended without a result".to_string());
            }
        }
        if !abort_asked && super::interrupt::aborting() {
            tracing::warn!(guest, "second interrupt: aborting the live migration");
            spawn_abort(&dom, guest);
            abort_asked = true;
        }
        let now = Instant::now();
        match stalled {
            None => {
                if let Some(waited) = stall.observe(counter, now) {
                    tracing::warn!(guest, from = %src.host, to = %dst.host, ?waited, "live migration stalled; aborting it");
                    spawn_abort(&dom, guest);
                    stalled = Some((counter, waited, now));
                }
            }
            // libvirt normally ends the migration call right after the abort; a source that
            // does not answer at all is given up on.
            Some((_, _, asked)) if now.duration_since(asked) >= ABORT_GRACE => {
                break Err(format!(
                    "host `{}` did not answer for {ABORT_GRACE:?} after berth asked it to abort; its libvirtd cancels \
                     the migration when it loses the target, and the next `berth apply` checks where the guest is",
                    src.host
                ));
            }
            Some(_) => {}
        }
    };
    match (outcome, stalled) {
        (Ok(()), _) => Ok(()),
        (Err(message), Some((counter, waited, _))) => Err(ApplyError::Stalled(Box::new(Stall {
            guest: guest.to_string(),
            from: src.host.clone(),
            to: dst.host.clone(),
            what: stalled_what(counter),
            waited,
            outcome: format!(" ({message})"),
        }))),
        (Err(message), None) => Err(ApplyError::Migration {
            guest: guest.to_string(),
            from: src.host.clone(),
            to: dst.host.clone(),
            message: if abort_asked {
                format!("aborted on the second interrupt (Ctrl-C); libvirt: {message}")
            } else {
                message
            },
        }),
    }
}

/// How long berth waits for libvirt to end a migration it asked to abort.
const ABORT_GRACE: Duration = Duration::from_secs(10);

/// What the threads of [`migrate_live`] report.
enum Report {
    /// The migration call returned (libvirt's message on failure).
    Done(Result<(), String>),
    /// One poll of the source's job statistics (`None`: the poll failed).
    Stats(Option<Box<virt::domain::JobStats>>),
}

/// Runs the migration call on a thread of its own; its result is sent on `tx`.
fn spawn_migration(
    dom: &Domain,
    dst: &Hypervisor,
    transport: LiveTransport,
    peer_uri: String,
    params: MigrateParameters,
    flags: u32,
    tx: mpsc::Sender<Report>,
) {
    let dom = dom.clone();
    let dconn = dst.conn.clone();
    std::thread::spawn(move || {
        let result = match transport {
            LiveTransport::PeerToPeer => dom.migrate_to_uri3(Some(&peer_uri), params, flags),
            LiveTransport::Client => dom.migrate3(&dconn, params, flags).map(drop),
        }
        .map_err(|e| e.message().to_string());
        // Nobody listens any more when berth gave up on an unanswering host.
        let _ = tx.send(Report::Done(result));
    });
}

/// Polls the source's job statistics every [`PROGRESS_INTERVAL`] on a thread of its own,
/// until nobody listens.
fn spawn_stats_poller(dom: &Domain, tx: mpsc::Sender<Report>) {
    let dom = dom.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(PROGRESS_INTERVAL);
            if tx
                .send(Report::Stats(job_stats(&dom).ok().map(Box::new)))
                .is_err()
            {
                return;
            }
        }
    });
}

/// Asks libvirt to abort the migration job of `dom`, on a thread of its own (the source may
/// not answer).
fn spawn_abort(dom: &Domain, guest: &str) {
    let dom = dom.clone();
    let guest = guest.to_string();
    std::thread::spawn(move || {
        if let Err(e) = abort_job(&dom) {
            tracing::warn!(
                guest,
                error = e.message(),
                "aborting the stalled migration failed"
            );
        }
    });
}

/// What a stalled migration did not move, for [`Stall::what`].
pub(crate) fn stalled_what(counter: Option<u64>) -> String {
    match counter {
        Some(bytes) => format!(
            "its memory transfer (at {:.1} MiB sent)",
            bytes as f64 / MIB
        ),
        None => {
            "its memory transfer (nothing sent yet, or no statistics from the source)".to_string()
        }
    }
}

/// libvirt's job statistics of `dom` (`virDomainGetJobStats`), called directly: with no job
/// active libvirt returns no parameters (a null array), which the virt crate's
/// `Domain::job_stats` turns into a `Vec` from a null pointer (a panic in debug builds), and it
/// frees libvirt's array with Rust's allocator.
fn job_stats(dom: &Domain) -> Result<virt::domain::JobStats, virt::error::Error> {
    let mut kind: std::os::raw::c_int = 0;
    let mut params: sys::virTypedParameterPtr = std::ptr::null_mut();
    let mut nparams: std::os::raw::c_int = 0;
    // SAFETY: the domain pointer stays valid while `dom` is borrowed; libvirt only writes the
    // three out-parameters.
    let rc =
        unsafe { sys::virDomainGetJobStats(dom.as_ptr(), &mut kind, &mut params, &mut nparams, 0) };
    if rc < 0 {
        return Err(virt::error::Error::last_error());
    }
    let count = usize::try_from(nparams).unwrap_or(0);
    let copied = if params.is_null() || count == 0 {
        Vec::new()
    } else {
        // SAFETY: libvirt returned `count` initialised parameters at `params`. They are copied
        // bitwise and read (numbers, and strings copied out) before libvirt's own free below.
        unsafe { std::slice::from_raw_parts(params, count) }.to_vec()
    };
    let stats = virt::domain::JobStats::from((kind, copied));
    if !params.is_null() {
        // SAFETY: `params`/`nparams` are exactly what virDomainGetJobStats allocated.
        unsafe { sys::virTypedParamsFree(params, nparams) };
    }
    Ok(stats)
}

/// Whether `stats` describe a job that has started copying memory (before that, libvirt gives
/// no totals).
fn copying(stats: &virt::domain::JobStats) -> bool {
    stats.r#type != sys::VIR_DOMAIN_JOB_NONE as i32 && stats.mem_total.unwrap_or(0) > 0
}

/// `virDomainAbortJob`, which the virt crate does not wrap.
fn abort_job(dom: &Domain) -> Result<(), virt::error::Error> {
    // SAFETY: the domain pointer stays valid while `dom` is borrowed; the call only reads it.
    let rc = unsafe { sys::virDomainAbortJob(dom.as_ptr()) };
    if rc < 0 {
        return Err(virt::error::Error::last_error());
    }
    Ok(())
}

/// Asks libvirt to switch a running migration to post-copy. Failure is logged, not fatal:
/// the migration then simply continues in pre-copy.
fn start_post_copy(dom: &Domain) {
    // SAFETY: the pointer stays valid while `dom` is borrowed; the call only reads it.
    let rc = unsafe { sys::virDomainMigrateStartPostCopy(dom.as_ptr(), 0) };
    if rc < 0 {
        let e = virt::error::Error::last_error();
        tracing::warn!(
            error = %crate::inventory::libvirt::libvirt_message(&e),
            "switching to post-copy failed; staying in pre-copy"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_name_reads_the_first_level_name_only() {
        let xml =
            "<domain type='kvm'><devices><name>inner</name></devices><name> vm01 </name></domain>";
        assert_eq!(domain_name(xml).as_deref(), Some("vm01"));
        assert_eq!(domain_name("<domain><memory>1</memory></domain>"), None);
        assert_eq!(domain_name("not xml <"), None);
    }

    #[test]
    fn live_flags_follow_options() {
        let base = sys::VIR_MIGRATE_LIVE
            | sys::VIR_MIGRATE_PERSIST_DEST
            | sys::VIR_MIGRATE_UNDEFINE_SOURCE;
        // Peer-to-peer by default; client-managed on request.
        assert_eq!(
            live_flags(&LiveOptions::default()),
            base | sys::VIR_MIGRATE_PEER2PEER
        );
        let client = LiveOptions {
            transport: LiveTransport::Client,
            ..LiveOptions::default()
        };
        assert_eq!(live_flags(&client), base);
        let all = LiveOptions {
            transport: LiveTransport::Client,
            stall_timeout_s: Some(30),
            bandwidth_mib_s: 100,
            parallel_connections: 4,
            auto_converge: true,
            post_copy: true,
            max_downtime_ms: Some(300),
            tls: true,
            compressed: true,
        };
        assert_eq!(
            live_flags(&all),
            base | sys::VIR_MIGRATE_AUTO_CONVERGE
                | sys::VIR_MIGRATE_POSTCOPY
                | sys::VIR_MIGRATE_PARALLEL
                | sys::VIR_MIGRATE_TLS
                | sys::VIR_MIGRATE_COMPRESSED
        );
        // One connection is not "parallel".
        let one = LiveOptions {
            parallel_connections: 1,
            ..LiveOptions::default()
        };
        assert_eq!(live_flags(&one) & sys::VIR_MIGRATE_PARALLEL, 0);
    }

    #[test]
    fn progress_uses_remaining_memory_and_converts_units() {
        let stats = virt::domain::JobStats {
            r#type: 2,
            mem_total: Some(1024 * 1024 * 1024),
            mem_remaining: Some(256 * 1024 * 1024),
            mem_processed: Some(2048 * 1024 * 1024),
            mem_bps: Some(512 * 1024 * 1024),
            mem_iteration: Some(3),
            time_elapsed: Some(1500),
            ..Default::default()
        };
        let p = MigrationProgress::from_job(&stats);
        assert_eq!(p.percent, Some(75.0));
        assert_eq!(p.mib_per_s, Some(512.0));
        assert_eq!(
            (p.mem_total_mib, p.mem_remaining_mib, p.mem_processed_mib),
            (Some(1024), Some(256), Some(2048))
        );
        assert_eq!((p.iteration, p.elapsed_ms), (Some(3), Some(1500)));

        let no_remaining = virt::domain::JobStats {
            mem_total: Some(100),
            mem_processed: Some(250),
            ..Default::default()
        };
        assert_eq!(
            MigrationProgress::from_job(&no_remaining).percent,
            Some(100.0)
        );
        assert_eq!(
            MigrationProgress::from_job(&virt::domain::JobStats::default()).percent,
            None
        );
    }
}
