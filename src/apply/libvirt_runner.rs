//! The [`StepRunner`] that acts on real hosts: libvirt through [`Hypervisor`], host-side
//! commands (bridges, volumes) over SSH through [`RemoteHost`].
//!
//! Connections are opened on first use and kept for the run, one per host.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::definition::detach_hostdev_interfaces;
use super::error::ApplyError;
use super::hypervisor::{Hypervisor, MigrationProgress, migrate_live, move_offline};
use super::interfaces;
use super::runner::{StartRecord, StepContext, StepOutcome, StepRunner};
use crate::config::{BackWhen, LiveOptions, MigrationMode};
use crate::inventory::GuestState;
use crate::remote::{OnceOutcome, RemoteError, RemoteHost, SshTarget, new_once_marker};
use crate::schedule::{Step, StepKind};

/// How to reach one host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostAccess {
    /// libvirt URI.
    pub uri: String,
    /// Where live migrations into this host send their data (e.g. `tcp://10.77.0.12`).
    pub migration_uri: Option<String>,
    /// The libvirt URI by which a source host reaches this host in a peer-to-peer live
    /// migration; `None`: `uri`.
    pub peer_uri: Option<String>,
    /// SSH access for host-side steps (bridges, volumes); `None` makes those steps fail.
    pub ssh: Option<SshTarget>,
}

/// How the runner carries out steps.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSettings {
    pub live: LiveOptions,
    /// How long opening a host's libvirt connection may take before the host is reported
    /// unreachable (`inventory.connect_timeout_s`).
    pub connect_timeout: Duration,
    /// How long a graceful shutdown may take.
    pub shutdown_timeout: Duration,
    /// Power the guest off when the graceful shutdown times out.
    pub force_stop_after_timeout: bool,
    pub start_timeout: Duration,
    /// A live migration whose memory counters do not move for this long is aborted (the
    /// guest stays on its source).
    pub stall_timeout: Duration,
    /// Host-side command for DETACH_VOLUMES / ATTACH_VOLUMES, one template per argument:
    /// `{action}` (attach|detach), `{volume}`, `{guest}`, `{host}`.
    pub volume_command: Option<Vec<String>>,
    /// Host-side check whether a volume is already attached (attach) or detached (detach),
    /// same placeholders: exit 0 = yes, 1 = no, anything else = the check failed.
    pub volume_check_command: Option<Vec<String>>,
    /// Per host (es.xml name): the SR-IOV virtual functions ATTACH_INTERFACES may hand out,
    /// in the order it hands them out.
    pub sriov_vfs: BTreeMap<String, Vec<String>>,
    /// Rolling maintenance: how long WAIT_HOST waits for a host to come back.
    pub back_timeout: Duration,
    /// Rolling maintenance: WAIT_HOST also reads the host's facts over SSH
    /// (`inventory.ssh.gather_facts`).
    pub host_facts: bool,
    /// Rolling maintenance: whether WAIT_HOST also needs a new boot id
    /// (`rolling_maintenance.back_when`).
    pub back_when: BackWhen,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            live: LiveOptions::default(),
            connect_timeout: crate::inventory::libvirt::connect::DEFAULT_CONNECT_TIMEOUT,
            shutdown_timeout: Duration::from_secs(300),
            force_stop_after_timeout: false,
            start_timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(60),
            volume_command: None,
            volume_check_command: None,
            sriov_vfs: BTreeMap::new(),
            back_timeout: Duration::from_secs(1800),
            host_facts: false,
            back_when: BackWhen::Rebooted,
        }
    }
}

pub struct LibvirtRunner {
    hosts: BTreeMap<String, HostAccess>,
    settings: RunnerSettings,
    runtime: tokio::runtime::Handle,
    hypervisors: PerHost<Hypervisor>,
    remotes: PerHost<RemoteHost>,
    /// Held while ATTACH_INTERFACES picks free VFs and defines: two guests attached at once
    /// would otherwise see the same VFs free.
    attaching: Mutex<()>,
}

/// One connection per host, opened on first use. Opening one host's connection waits for
/// nobody else's (SSH handshakes to several hosts overlap), and one host never gets two (with
/// the test driver two connections would even be two different hosts).
struct PerHost<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
}

/// One host's connection, once opened; its own lock is held while it opens.
type Slot<T> = Arc<Mutex<Option<Arc<T>>>>;

impl<T> Default for PerHost<T> {
    fn default() -> Self {
        PerHost {
            slots: Mutex::default(),
        }
    }
}

impl<T> PerHost<T> {
    fn get_or_open<E>(&self, host: &str, open: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(slots.entry(host.to_string()).or_default())
        };
        let mut cached = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(value) = cached.as_ref() {
            return Ok(Arc::clone(value));
        }
        let value = Arc::new(open()?);
        *cached = Some(Arc::clone(&value));
        Ok(value)
    }

    /// Puts `value` in `host`'s slot (a fresh connection after the host came back), or empties
    /// it (`None`: the next use opens one).
    fn replace(&self, host: &str, value: Option<T>) {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(slots.entry(host.to_string()).or_default())
        };
        let mut cached = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *cached = value.map(Arc::new);
    }
}

/// Fills a volume command template for one volume: an element that is exactly a placeholder
/// (`{action}`, `{volume}`, `{guest}`, `{host}`) becomes exactly that one argument; every other
/// element is passed as written (placeholders are never substituted inside a larger string;
/// the configuration refuses such templates, and puts the data placeholders after `--`).
pub fn volume_argv(
    template: &[String],
    action: &str,
    volume: &str,
    guest: &str,
    host: &str,
) -> Vec<String> {
    template
        .iter()
        .map(|arg| match arg.as_str() {
            "{action}" => action,
            "{volume}" => volume,
            "{guest}" => guest,
            "{host}" => host,
            other => other,
        })
        .map(str::to_string)
        .collect()
}

/// Refuses a volume step whose device paths are not [`crate::names::check_device_path`]
/// paths, before anything runs (the plan file they come from may have been edited).
fn check_volume_paths(step: &Step) -> Result<(), ApplyError> {
    for volume in &step.items {
        if let Err(why) = crate::names::check_device_path(volume) {
            return Err(ApplyError::Unsupported {
                step: step.id.clone(),
                message: format!(
                    "volume `{}` of guest `{}` is not a device path berth passes to a command: {why}; \
                     a device path is {}",
                    volume.escape_debug(),
                    step.guest,
                    crate::names::DEVICE_PATH_RULE
                ),
            });
        }
    }
    Ok(())
}

impl LibvirtRunner {
    /// `runtime` runs the SSH side (openssh needs tokio); steps call into it from blocking
    /// threads.
    pub fn new(
        hosts: BTreeMap<String, HostAccess>,
        settings: RunnerSettings,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        LibvirtRunner {
            hosts,
            settings,
            runtime,
            hypervisors: PerHost::default(),
            remotes: PerHost::default(),
            attaching: Mutex::default(),
        }
    }

    fn access(&self, host: &str, step: &Step) -> Result<&HostAccess, ApplyError> {
        self.hosts.get(host).ok_or_else(|| ApplyError::Unsupported {
            step: step.id.clone(),
            message: format!("host `{host}` has no libvirt URI configured"),
        })
    }

    pub fn settings(&self) -> &RunnerSettings {
        &self.settings
    }

    /// The (cached) libvirt connection to `host`. Blocking.
    pub fn hypervisor(&self, host: &str) -> Result<Arc<Hypervisor>, ApplyError> {
        self.hypervisors.get_or_open(host, || {
            let access = self.hosts.get(host).ok_or_else(|| ApplyError::Connect {
                host: host.to_string(),
                uri: String::new(),
                message: "no libvirt URI configured for this host".into(),
            })?;
            let mut h =
                Hypervisor::connect_within(host, &access.uri, self.settings.connect_timeout)?;
            if let Some(uri) = &access.migration_uri {
                h = h.with_migration_uri(uri.clone());
            }
            if let Some(uri) = &access.peer_uri {
                h = h.with_peer_uri(uri.clone());
            }
            Ok(h)
        })
    }

    /// The (cached) SSH connection to `host`. Blocking; must not run on an async worker.
    /// Preflight: the problem, if `program` (configured as `setting`) is not on `host`, whose
    /// `steps` run it.
    fn missing_program(
        &self,
        remote: &RemoteHost,
        program: &str,
        setting: &str,
        host: &str,
        steps: &[String],
    ) -> Option<String> {
        let argv = ["command", "-v", program].map(String::from);
        match self.runtime.block_on(remote.check(&argv)) {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "`{program}` (`{setting}`) is not found on {host}, which {} need",
                super::preflight::step_list(steps)
            )),
            Err(e) => Some(format!(
                "cannot check for `{program}` (`{setting}`) on {host}, which {} need: {e}",
                super::preflight::step_list(steps)
            )),
        }
    }

    /// Runs one remote call to completion; a failure names what berth was doing and where.
    fn on_host<T>(
        &self,
        host: &str,
        action: impl FnOnce() -> String,
        call: impl std::future::Future<Output = Result<T, RemoteError>>,
    ) -> Result<T, ApplyError> {
        self.runtime
            .block_on(call)
            .map_err(|error| ApplyError::Remote {
                action: action(),
                host: host.to_string(),
                error: Box::new(error),
            })
    }

    fn remote(&self, host: &str, step: &Step) -> Result<Arc<RemoteHost>, ApplyError> {
        self.remotes.get_or_open(host, || {
            let target =
                self.access(host, step)?
                    .ssh
                    .as_ref()
                    .ok_or_else(|| ApplyError::Unsupported {
                        step: step.id.clone(),
                        message: format!(
                            "{} needs SSH access to host `{host}`, and none is configured",
                            step.kind
                        ),
                    })?;
            self.on_host(host, || "connecting".into(), RemoteHost::connect(target))
        })
    }

    /// The connection checks of preflight (see [`super::preflight`]): libvirt to every host in
    /// `needs.libvirt`; SSH to every host with host-side steps, `ip` where bridges are created,
    /// the programs of the volume commands where volumes are attached or detached. Every
    /// problem, each naming the host and the steps that need it. Blocking. Connections opened
    /// here are the ones the steps use.
    pub fn preflight(&self, needs: &super::preflight::Needs) -> Vec<String> {
        use super::preflight::step_list;
        let mut problems = Vec::new();
        for (host, steps) in &needs.libvirt {
            if let Err(e) = self.hypervisor(host) {
                problems.push(format!(
                    "no libvirt connection to {host}, which {} need: {e}",
                    step_list(steps)
                ));
            }
        }
        let mut ssh: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (host, steps) in needs.bridges.iter().chain(&needs.volumes) {
            ssh.entry(host).or_default().extend(steps.iter().cloned());
        }
        for (host, (_, steps)) in &needs.host_commands {
            ssh.entry(host).or_default().extend(steps.iter().cloned());
        }
        for (host, steps) in ssh {
            let probe = Step {
                id: steps[0].clone(),
                kind: StepKind::CreateBridges,
                guest: String::new(),
                from: String::new(),
                to: host.to_string(),
                move_index: 0,
                depends_on: Vec::new(),
                detail: String::new(),
                items: Vec::new(),
            };
            let remote = match self.remote(host, &probe) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!(
                        "no SSH to {host}, which {} need (host-side commands run over SSH, `inventory.ssh`): {e}",
                        step_list(&steps)
                    ));
                    continue;
                }
            };
            if let Some(steps) = needs.bridges.get(host)
                && let Err(e) = self.runtime.block_on(remote.bridges())
            {
                problems.push(format!(
                    "cannot list bridges with `ip` on {host}, which {} need (iproute2's `ip` creates them): {e}",
                    step_list(steps)
                ));
            }
            if let Some((program, steps)) = needs.host_commands.get(host) {
                problems.extend(self.missing_program(
                    &remote,
                    program,
                    "rolling_maintenance.host_command",
                    host,
                    steps,
                ));
                // Without its marker the guard refuses to start the command.
                let dir = crate::remote::ONCE_MARKER_DIR;
                let unready = match self.runtime.block_on(remote.once_guard_ready()) {
                    Ok(true) => None,
                    Ok(false) => Some(format!("{dir} is not a directory it may write")),
                    Err(e) => Some(format!("checking {dir}: {e}")),
                };
                if let Some(why) = unready {
                    problems.push(format!(
                        "cannot start the host command on {host}, which {} need: {why}; berth \
                         makes a start marker there before the command runs, so that an apply \
                         resumed after a kill never runs it twice",
                        step_list(steps),
                    ));
                }
                // Without a boot id WAIT_HOST could never see the host rebooted: say so now,
                // before any guest is moved off.
                if self.settings.back_when == BackWhen::Rebooted
                    && let Err(e) = self.runtime.block_on(remote.boot_id())
                {
                    problems.push(format!(
                        "cannot read the boot id of {host} ({}), which {} need to see the host rebooted \
                         (`rolling_maintenance.back_when = \"rebooted\"`): {e}; set `back_when = \"answers\"` \
                         if the host command does not reboot",
                        crate::remote::BOOT_ID_PATH,
                        step_list(steps)
                    ));
                }
            }
            if let Some(steps) = needs.volumes.get(host) {
                let commands = [
                    ("volume_command", &self.settings.volume_command),
                    ("volume_check_command", &self.settings.volume_check_command),
                ];
                for (name, command) in commands {
                    // The program is never a placeholder (the configuration refuses one), so
                    // it is known here, whatever characters it has.
                    let Some(program) = command.as_ref().and_then(|c| c.first()) else {
                        continue;
                    };
                    let setting = format!("inventory.{name}");
                    problems.extend(self.missing_program(&remote, program, &setting, host, steps));
                }
            }
        }
        problems
    }

    fn missing_bridges(&self, step: &Step) -> Result<BTreeSet<String>, ApplyError> {
        let remote = self.remote(&step.to, step)?;
        let present = self.on_host(&step.to, || "listing bridges".into(), remote.bridges())?;
        Ok(step
            .items
            .iter()
            .filter(|b| !present.contains(*b))
            .cloned()
            .collect())
    }

    fn create_bridges(&self, step: &Step) -> Result<StepOutcome, ApplyError> {
        let remote = self.remote(&step.to, step)?;
        let mut created = Vec::new();
        for bridge in &step.items {
            let fresh = self.on_host(
                &step.to,
                || format!("creating bridge `{bridge}`"),
                remote.create_bridge(bridge),
            )?;
            if fresh {
                created.push(bridge.as_str());
            }
        }
        let note = created
            .is_empty()
            .then(|| "all bridges existed".to_string());
        Ok(StepOutcome {
            note,
            ..StepOutcome::default()
        })
    }

    /// Whether `volume_check_command` says the step's effect on `volume` is there; `None`
    /// without a check command.
    fn volume_in_place(
        &self,
        remote: &RemoteHost,
        step: &Step,
        action: &str,
        volume: &str,
        host: &str,
    ) -> Result<Option<bool>, ApplyError> {
        let Some(template) = &self.settings.volume_check_command else {
            return Ok(None);
        };
        let argv = volume_argv(template, action, volume, &step.guest, host);
        let answer = self.on_host(
            host,
            || {
                format!(
                    "checking whether volume `{volume}` of guest `{}` is {action}ed",
                    step.guest
                )
            },
            remote.check(&argv),
        )?;
        Ok(Some(answer))
    }

    /// Every volume already attached (detached), by `volume_check_command`. Without one berth
    /// cannot know, and runs the step (`volume_command` must be safe to repeat).
    fn volumes_done(&self, step: &Step, action: &str, host: &str) -> Result<bool, ApplyError> {
        check_volume_paths(step)?;
        if self.settings.volume_check_command.is_none() {
            return Ok(false);
        }
        let remote = self.remote(host, step)?;
        for volume in &step.items {
            if self.volume_in_place(&remote, step, action, volume, host)? != Some(true) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn volumes(&self, step: &Step, action: &str, host: &str) -> Result<StepOutcome, ApplyError> {
        check_volume_paths(step)?;
        let template =
            self.settings
                .volume_command
                .as_ref()
                .ok_or_else(|| ApplyError::Unsupported {
                    step: step.id.clone(),
                    message: format!(
                        "{} needs `volume_command` in the inventory block",
                        step.kind
                    ),
                })?;
        let remote = self.remote(host, step)?;
        let mut already = Vec::new();
        for volume in &step.items {
            if self.volume_in_place(&remote, step, action, volume, host)? == Some(true) {
                already.push(volume.as_str());
                continue;
            }
            let argv = volume_argv(template, action, volume, &step.guest, host);
            self.on_host(
                host,
                || format!("{action} volume `{volume}` of guest `{}`", step.guest),
                remote.run_checked(&argv),
            )?;
            if self.volume_in_place(&remote, step, action, volume, host)? == Some(false) {
                return Err(ApplyError::Unsupported {
                    step: step.id.clone(),
                    message: format!(
                        "`volume_command` succeeded for volume `{volume}` on host `{host}`, but `volume_check_command` still says it is not {action}ed"
                    ),
                });
            }
        }
        let note =
            (!already.is_empty()).then(|| format!("already {action}ed: {}", already.join(", ")));
        Ok(StepOutcome {
            note,
            ..StepOutcome::default()
        })
    }

    /// HOST_COMMAND: the operator's command, one argument per element (quoted by openssh,
    /// never part of a shell script's text), on the host of the phase, through the guard of
    /// [`crate::remote::OnceOutcome`]: it starts at most once per journaled start marker, and
    /// never on a host that rebooted since its boot id was journaled. Exit 0 is success.
    fn host_command(&self, step: &Step, ctx: &StepContext) -> Result<StepOutcome, ApplyError> {
        let host = &step.to;
        if step.items.is_empty() {
            return Err(ApplyError::Unsupported {
                step: step.id.clone(),
                message: "the step has no command (`rolling_maintenance.host_command`)".into(),
            });
        }
        let Some(marker) = ctx.start.once_marker.as_deref() else {
            return Err(ApplyError::Unsupported {
                step: step.id.clone(),
                message: "no start marker was journaled for the host command".into(),
            });
        };
        let resumed = ctx.started_before;
        let remote = match self.remote(host, step) {
            Ok(remote) => remote,
            // The killed apply's command may be rebooting the host: berth cannot ask it, and
            // does not run the command; WAIT_HOST waits for the host.
            Err(error) if resumed => {
                return Ok(StepOutcome {
                    note: Some(format!(
                        "started by an earlier apply that was killed; {host} does not answer \
                         ({error}), so it is not run again; WAIT_HOST checks that the host is back"
                    )),
                    ..StepOutcome::default()
                });
            }
            Err(error) => return Err(error),
        };
        let ran = self.runtime.block_on(remote.run_once(
            marker,
            ctx.start.boot_id.as_deref(),
            &step.items,
        ));
        // A reboot ends the SSH connection; the next use opens a fresh one.
        self.remotes.replace(host, None);
        let note = match ran {
            Ok(OnceOutcome::Ran) => resumed.then(|| {
                "the earlier apply that was killed had journaled the command as started, but \
                 the host shows it never began: run now"
                    .to_string()
            }),
            Ok(OnceOutcome::StartedBefore) => Some(format!(
                "started by an earlier apply that was killed (its start marker `{marker}` is on \
                 the host): not run again; WAIT_HOST checks that the host is back"
            )),
            Ok(OnceOutcome::RebootedSince) => Some(format!(
                "{host} rebooted since the command was journaled as started (its boot id is no \
                 longer `{}`): not run again; WAIT_HOST checks that the host is back",
                ctx.start.boot_id.as_deref().unwrap_or_default()
            )),
            // The reboot the command started cut its connection: that is its end. A status
            // of the command's own (even one that a dying host makes up) is not.
            Err(error)
                if self.settings.back_when == BackWhen::Rebooted && error.is_connection_cut() =>
            {
                Some(format!(
                    "the SSH connection ended while the command ran ({error}): taken as the reboot, \
                     the command's end; WAIT_HOST waits for {host} to come back with a new boot id"
                ))
            }
            Err(error) => {
                return Err(ApplyError::Remote {
                    action: format!("the host command `{}`", step.items.join(" ")),
                    host: host.to_string(),
                    error: Box::new(error),
                });
            }
        };
        Ok(StepOutcome {
            note,
            ..StepOutcome::default()
        })
    }

    /// The host's boot id read over a fresh SSH connection (the one kept for the run may
    /// have died with the reboot), and that connection. Blocking.
    fn fresh_boot_id(&self, access: &HostAccess) -> Result<(String, RemoteHost), String> {
        let target = access
            .ssh
            .as_ref()
            .ok_or_else(|| "no SSH access configured to read its boot id".to_string())?;
        let remote = self
            .runtime
            .block_on(RemoteHost::connect(target))
            .map_err(|e| e.to_string())?;
        match self.runtime.block_on(remote.boot_id()) {
            Ok(id) => Ok((id, remote)),
            Err(e) => {
                let _ = self.runtime.block_on(remote.close());
                Err(format!("reading its boot id: {e}"))
            }
        }
    }

    /// WAIT_HOST: until `back_timeout`, opens a fresh libvirt connection to the host (the one
    /// kept for the run died with its libvirtd) and reads its node info, and with
    /// `gather_facts` its facts over SSH. With `back_when = "rebooted"` it first reads the
    /// host's boot id over a fresh SSH connection, and a host whose boot id is still the one
    /// journaled before the command ran has not rebooted yet (a command that returned before
    /// its reboot): it keeps polling. The host must still have the memory and CPUs the
    /// plan counted on (the move's figures); the fresh connections replace the old ones.
    fn wait_host(&self, step: &Step, ctx: &StepContext) -> Result<StepOutcome, ApplyError> {
        let host = step.to.as_str();
        let access = self.access(host, step)?.clone();
        let rebooted = self.settings.back_when == BackWhen::Rebooted;
        let before = match (&ctx.host_command_start.boot_id, rebooted) {
            (Some(id), true) => Some(id.clone()),
            (None, true) => {
                return Err(ApplyError::NoBootId {
                    host: host.to_string(),
                });
            }
            (_, false) => None,
        };
        let began = std::time::Instant::now();
        let deadline = began + self.settings.back_timeout;
        self.remotes.replace(host, None);
        // Whether the last attempt found the host up but with the same boot id.
        let mut same_boot = false;
        let mut new_boot = None;
        loop {
            let attempt = (|| -> Result<(Option<Hypervisor>, u64, u32), String> {
                same_boot = false;
                if let Some(before) = &before {
                    let (now, remote) = self.fresh_boot_id(&access)?;
                    if now == *before {
                        same_boot = true;
                        let _ = self.runtime.block_on(remote.close());
                        return Err(format!("its boot id is still `{now}`: not rebooted yet"));
                    }
                    self.remotes.replace(host, Some(remote));
                    new_boot = Some(now);
                }
                // The test driver has no daemon to restart, and a second connection to it
                // would be another host: it keeps the one it has.
                let test_driver = access.uri.starts_with("test:");
                let fresh = if test_driver {
                    None
                } else {
                    Some(
                        Hypervisor::connect_within(
                            host,
                            &access.uri,
                            self.settings.connect_timeout,
                        )
                        .map_err(|e| e.to_string())?,
                    )
                };
                let kept;
                let h = match &fresh {
                    Some(h) => h,
                    None => {
                        kept = self.hypervisor(host).map_err(|e| e.to_string())?;
                        &*kept
                    }
                };
                let node = h
                    .connection()
                    .node_info()
                    .map_err(|e| format!("reading node info: {e}"))?;
                if self.settings.host_facts {
                    let target = access
                        .ssh
                        .clone()
                        .ok_or_else(|| "no SSH access configured for its facts".to_string())?;
                    for result in crate::inventory::facts::gather(&[(host.to_string(), target)], 1)
                    {
                        result.map_err(|e| e.to_string())?;
                    }
                }
                Ok((fresh, node.memory / 1024, node.cpus))
            })();
            match attempt {
                Ok((fresh, memory_mib, cpus)) => {
                    if let Some(mut h) = fresh {
                        if let Some(uri) = &access.migration_uri {
                            h = h.with_migration_uri(uri.clone());
                        }
                        if let Some(uri) = &access.peer_uri {
                            h = h.with_peer_uri(uri.clone());
                        }
                        self.hypervisors.replace(host, Some(h));
                    }
                    let mut short = Vec::new();
                    if memory_mib < ctx.mv.memory_mib {
                        short.push(format!(
                            "{memory_mib} MiB memory (the plan counted {} MiB)",
                            ctx.mv.memory_mib
                        ));
                    }
                    if cpus < ctx.mv.vcpus {
                        short.push(format!("{cpus} CPUs (the plan counted {})", ctx.mv.vcpus));
                    }
                    if !short.is_empty() {
                        return Err(ApplyError::HostChanged {
                            host: host.to_string(),
                            what: short.join(" and "),
                        });
                    }
                    // The command's step is journaled as done: its start marker has served
                    // (a reboot removed it already). Left behind, it is an empty directory in
                    // a tmpfs until the next boot.
                    if let (Some(marker), Ok(remote)) =
                        (&ctx.host_command_start.once_marker, self.remote(host, step))
                    {
                        let _ = self.runtime.block_on(remote.forget_once_marker(marker));
                    }
                    let rebooted = match (&before, &new_boot) {
                        (Some(old), Some(new)) => format!("rebooted (boot id {old} → {new}), "),
                        _ => String::new(),
                    };
                    return Ok(StepOutcome {
                        note: Some(format!(
                            "back after {:.1} s: {rebooted}libvirt answers, {memory_mib} MiB, {cpus} CPUs{}",
                            began.elapsed().as_secs_f64(),
                            if self.settings.host_facts {
                                ", facts read"
                            } else {
                                ""
                            }
                        )),
                        ..StepOutcome::default()
                    });
                }
                Err(_) if same_boot && std::time::Instant::now() >= deadline => {
                    return Err(ApplyError::HostNotRebooted {
                        host: host.to_string(),
                        waited_s: self.settings.back_timeout.as_secs(),
                        boot_id: before.unwrap_or_default(),
                    });
                }
                Err(last) if std::time::Instant::now() >= deadline => {
                    return Err(ApplyError::HostNotBack {
                        host: host.to_string(),
                        waited_s: self.settings.back_timeout.as_secs(),
                        last,
                    });
                }
                // Polling a host that is rebooting: nothing here races berth's own work.
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }

    fn attach_interfaces(&self, step: &Step, ctx: &StepContext) -> Result<StepOutcome, ApplyError> {
        let dst = self.hypervisor(&step.to)?;
        let _one_at_a_time = self
            .attaching
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        interfaces::attach(
            &dst,
            step,
            ctx,
            self.settings.sriov_vfs.get(&step.to).map(Vec::as_slice),
        )
    }

    fn migrate(
        &self,
        step: &Step,
        ctx: &StepContext,
        progress: &mut dyn FnMut(MigrationProgress),
    ) -> Result<StepOutcome, ApplyError> {
        let dst = self.hypervisor(&step.to)?;
        if ctx.mv.mode == MigrationMode::OfflineForce {
            // The source is unreachable: define from the definition recorded earlier.
            let xml = ctx.last_definition_xml.as_deref().ok_or_else(|| ApplyError::Unsupported {
                step: step.id.clone(),
                message: format!(
                    "an offline_force move needs the definition of `{}` recorded in the state file by an earlier run, and there is none",
                    step.guest
                ),
            })?;
            // The state file is data: a definition in it that names another domain would
            // define (or redefine) that one on the target. It must be this guest's.
            let named = super::hypervisor::domain_name(xml);
            if named.as_deref() != Some(step.guest.as_str()) {
                return Err(ApplyError::Definition {
                    guest: step.guest.clone(),
                    host: step.to.clone(),
                    message: format!(
                        "the definition recorded in the state file names domain {}, not {}: refusing to define it \
                         (the state file was edited, or is not this guest's)",
                        named.map_or_else(|| "(none)".to_string(), |n| format!("`{n}`")),
                        step.guest
                    ),
                });
            }
            // Its SR-IOV interfaces carry VFs of the unreachable host, which may be another
            // guest's on the target: they wait in the metadata for ATTACH_INTERFACES.
            let (xml, detached) =
                detach_hostdev_interfaces(xml).map_err(|message| ApplyError::Definition {
                    guest: step.guest.clone(),
                    host: step.to.clone(),
                    message: format!("the definition recorded in the state file: {message}"),
                })?;
            // The state holds no secrets: a console password it removed gets a fresh random
            // one, so the console is never left open.
            let (xml, locked) = crate::state::secrets::lock_removed(&xml).ok_or_else(|| {
                ApplyError::Definition {
                    guest: step.guest.clone(),
                    host: step.to.clone(),
                    message: "the definition recorded in the state file is not well-formed XML"
                        .into(),
                }
            })?;
            dst.define(&xml)?;
            let mut notes = Vec::new();
            if !detached.is_empty() {
                notes.push(format!(
                    "{} SR-IOV interfaces of the recorded definition wait for VFs of {} (ATTACH_INTERFACES)",
                    detached.len(),
                    step.to
                ));
            }
            if locked > 0 {
                notes.push(format!(
                    "the state file keeps no passwords: {locked} console password(s) set to a random value; \
                     set yours with `virsh edit {}` on {}",
                    step.guest, step.to
                ));
            }
            let note = (!notes.is_empty()).then(|| notes.join("; "));
            return Ok(StepOutcome {
                guest_state: dst.domain_state(ctx.domain())?,
                note,
                detached_interfaces: (!detached.is_empty()).then_some(detached),
                ..StepOutcome::default()
            });
        }
        let src = self.hypervisor(&step.from)?;
        // With its secrets, so that the state knows a console had a password: the state store
        // replaces each by a marker before writing, and offline_force locks such consoles.
        let definition_xml = src.movable_xml(ctx.domain()).ok();
        match ctx.mv.mode {
            MigrationMode::Live => {
                // The plan says who drives the move; plans from before the choice existed
                // follow the configuration.
                let opts = LiveOptions {
                    transport: ctx.mv.transport.unwrap_or(self.settings.live.transport),
                    ..self.settings.live.clone()
                };
                migrate_live(
                    &src,
                    &dst,
                    ctx.domain(),
                    &opts,
                    self.settings.stall_timeout,
                    progress,
                )?
            }
            _ => move_offline(&src, &dst, ctx.domain())?,
        }
        Ok(StepOutcome {
            guest_state: dst.domain_state(ctx.domain())?,
            definition_xml,
            ..StepOutcome::default()
        })
    }
}

impl StepRunner for LibvirtRunner {
    /// HOST_COMMAND: a fresh start marker for the command's guard and the host's boot id,
    /// both journaled with the step's start, so that WAIT_HOST (in this apply or one resuming
    /// after a kill) can tell a host that rebooted from one that has not gone down yet, and a
    /// resumed apply can ask the host whether the command ever began. The boot id is required
    /// with `back_when = "rebooted"`; with `"answers"` it is read where it can be (the guard
    /// then also refuses to run the command again on a host that rebooted since).
    fn before_start(&self, step: &Step, _ctx: &StepContext) -> Result<StartRecord, ApplyError> {
        if step.kind != StepKind::HostCommand {
            return Ok(StartRecord::default());
        }
        let read = self.remote(&step.to, step).and_then(|remote| {
            self.on_host(
                &step.to,
                || "reading the boot id before the host command".into(),
                remote.boot_id(),
            )
        });
        let boot_id = match read {
            Ok(id) => Some(id),
            Err(e) if self.settings.back_when == BackWhen::Rebooted => return Err(e),
            Err(_) => None,
        };
        Ok(StartRecord {
            boot_id,
            once_marker: Some(new_once_marker()),
        })
    }

    fn is_done(&self, step: &Step, ctx: &StepContext) -> Result<bool, ApplyError> {
        match step.kind {
            // Shut off, or already gone from the source.
            StepKind::StopGuest => Ok(matches!(
                self.hypervisor(&step.from)?.domain_state(ctx.domain())?,
                None | Some(GuestState::ShutOff)
            )),
            StepKind::CreateBridges => {
                Ok(step.items.is_empty() || self.missing_bridges(step)?.is_empty())
            }
            StepKind::MigrateGuest => {
                if self
                    .hypervisor(&step.to)?
                    .domain_state(ctx.domain())?
                    .is_none()
                {
                    return Ok(false);
                }
                // With the source unreachable (offline_force), the target holding it is enough.
                Ok(ctx.mv.mode == MigrationMode::OfflineForce
                    || self
                        .hypervisor(&step.from)?
                        .domain_state(ctx.domain())?
                        .is_none())
            }
            StepKind::StartupGuest => {
                Ok(self.hypervisor(&step.to)?.domain_state(ctx.domain())?
                    == Some(GuestState::Running))
            }
            StepKind::DetachInterfaces => {
                interfaces::is_detached(&*self.hypervisor(&step.from)?, ctx.domain())
            }
            StepKind::AttachInterfaces => {
                interfaces::is_attached(&*self.hypervisor(&step.to)?, step, ctx)
            }
            StepKind::DetachVolumes => self.volumes_done(step, "detach", &step.from),
            StepKind::AttachVolumes => self.volumes_done(step, "attach", &step.to),
            // Started by an apply that was killed. Journaled with a start marker, the host
            // is asked whether the command began (see `host_command`); journaled by an older
            // berth without one, it may have done its work (a reboot leaves no trace to ask),
            // so it is never run a second time; WAIT_HOST checks the host.
            StepKind::HostCommand => Ok(ctx.started_before && ctx.start.once_marker.is_none()),
            StepKind::WaitHost => Ok(false),
        }
    }

    fn run(
        &self,
        step: &Step,
        ctx: &StepContext,
        progress: &mut dyn FnMut(MigrationProgress),
    ) -> Result<StepOutcome, ApplyError> {
        let s = &self.settings;
        match step.kind {
            StepKind::StopGuest => {
                let src = self.hypervisor(&step.from)?;
                src.shutdown(ctx.domain(), s.shutdown_timeout, s.force_stop_after_timeout)?;
                Ok(StepOutcome {
                    guest_state: Some(GuestState::ShutOff),
                    ..StepOutcome::default()
                })
            }
            StepKind::CreateBridges => self.create_bridges(step),
            StepKind::DetachVolumes => self.volumes(step, "detach", &step.from),
            StepKind::AttachVolumes => self.volumes(step, "attach", &step.to),
            StepKind::MigrateGuest => self.migrate(step, ctx, progress),
            StepKind::StartupGuest => {
                self.hypervisor(&step.to)?
                    .start(ctx.domain(), s.start_timeout)?;
                Ok(StepOutcome {
                    guest_state: Some(GuestState::Running),
                    ..StepOutcome::default()
                })
            }
            StepKind::DetachInterfaces => {
                interfaces::detach(&*self.hypervisor(&step.from)?, ctx.domain())
            }
            StepKind::AttachInterfaces => self.attach_interfaces(step, ctx),
            StepKind::HostCommand => self.host_command(step, ctx),
            StepKind::WaitHost => self.wait_host(step, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_templates_substitute_whole_elements_only() {
        let template = [
            "/opt/exa/edv",
            "{action}",
            "--volume={volume}",
            "--",
            "{volume}",
            "{guest}",
            "{host}",
        ]
        .map(String::from);
        let argv = volume_argv(&template, "attach", "/dev/exc/vol1", "{host}", "adm02");
        assert_eq!(
            argv,
            [
                "/opt/exa/edv",
                "attach",
                "--volume={volume}",
                "--",
                "/dev/exc/vol1",
                "{host}",
                "adm02"
            ]
        );
    }
}
