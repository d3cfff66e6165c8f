//! The [`StepRunner`] that acts on real hosts: libvirt through [`Hypervisor`], host-side
//! commands (bridges, volumes) over SSH through [`RemoteHost`].
//!
//! Connections are opened on first use and kept for the run, one per host.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::ApplyError;
use super::hypervisor::{Hypervisor, MigrationProgress, migrate_live, move_offline};
use super::runner::{StepContext, StepOutcome, StepRunner};
use crate::config::{LiveOptions, MigrationMode};
use crate::inventory::GuestState;
use crate::remote::{RemoteHost, SshTarget};
use crate::schedule::{Step, StepKind};

/// How to reach one host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostAccess {
    /// libvirt URI.
    pub uri: String,
    /// Where live migrations into this host send their data (e.g. `tcp://10.77.0.12`).
    pub migration_uri: Option<String>,
    /// SSH access for host-side steps (bridges, volumes); `None` makes those steps fail.
    pub ssh: Option<SshTarget>,
}

/// How the runner carries out steps.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSettings {
    pub live: LiveOptions,
    /// How long a graceful shutdown may take.
    pub shutdown_timeout: Duration,
    /// Power the guest off when the graceful shutdown times out.
    pub force_stop_after_timeout: bool,
    pub start_timeout: Duration,
    /// Host-side command for DETACH_VOLUMES / ATTACH_VOLUMES, one template per argument:
    /// `{action}` (attach|detach), `{volume}`, `{guest}`, `{host}`.
    pub volume_command: Option<Vec<String>>,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            live: LiveOptions::default(),
            shutdown_timeout: Duration::from_secs(300),
            force_stop_after_timeout: false,
            start_timeout: Duration::from_secs(120),
            volume_command: None,
        }
    }
}

pub struct LibvirtRunner {
    hosts: BTreeMap<String, HostAccess>,
    settings: RunnerSettings,
    runtime: tokio::runtime::Handle,
    hypervisors: PerHost<Hypervisor>,
    remotes: PerHost<RemoteHost>,
}

/// One connection per host, opened on first use. Opening one host's connection waits for
/// nobody else's (SSH handshakes to several hosts overlap), and one host never gets two (with
/// the test driver two connections would even be two different hosts).
struct PerHost<T> {
    slots: Mutex<HashMap<String, Arc<Mutex<Option<Arc<T>>>>>>,
}

impl<T> Default for PerHost<T> {
    fn default() -> Self {
        PerHost { slots: Mutex::default() }
    }
}

impl<T> PerHost<T> {
    fn get_or_open<E>(&self, host: &str, open: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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
}

/// Fills a volume command template for one volume.
fn volume_argv(template: &[String], action: &str, volume: &str, guest: &str, host: &str) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            arg.replace("{action}", action)
                .replace("{volume}", volume)
                .replace("{guest}", guest)
                .replace("{host}", host)
        })
        .collect()
}

impl LibvirtRunner {
    /// `runtime` runs the SSH side (openssh needs tokio); steps call into it from blocking
    /// threads.
    pub fn new(hosts: BTreeMap<String, HostAccess>, settings: RunnerSettings, runtime: tokio::runtime::Handle) -> Self {
        LibvirtRunner { hosts, settings, runtime, hypervisors: PerHost::default(), remotes: PerHost::default() }
    }

    fn access(&self, host: &str, step: &Step) -> Result<&HostAccess, ApplyError> {
        self.hosts.get(host).ok_or_else(|| ApplyError::Unsupported {
            step: step.id.clone(),
            message: format!("host `{host}` has no libvirt URI configured"),
        })
    }

    /// The (cached) libvirt connection to `host`. Blocking.
    pub fn hypervisor(&self, host: &str) -> Result<Arc<Hypervisor>, ApplyError> {
        self.hypervisors.get_or_open(host, || {
            let access = self.hosts.get(host).ok_or_else(|| ApplyError::Connect {
                host: host.to_string(),
                uri: String::new(),
                message: "no libvirt URI configured for this host".into(),
            })?;
            let h = Hypervisor::connect(host, &access.uri)?;
            Ok(match &access.migration_uri {
                Some(uri) => h.with_migration_uri(uri.clone()),
                None => h,
            })
        })
    }

    /// The (cached) SSH connection to `host`. Blocking; must not run on an async worker.
    fn remote(&self, host: &str, step: &Step) -> Result<Arc<RemoteHost>, ApplyError> {
        self.remotes.get_or_open(host, || {
            let target = self.access(host, step)?.ssh.as_ref().ok_or_else(|| ApplyError::Unsupported {
                step: step.id.clone(),
                message: format!("{} needs SSH access to host `{host}`, and none is configured", step.kind),
            })?;
            self.runtime.block_on(RemoteHost::connect(target)).map_err(|error| ApplyError::Remote {
                action: "connecting".into(),
                host: host.to_string(),
                error: Box::new(error),
            })
        })
    }

    fn missing_bridges(&self, step: &Step) -> Result<BTreeSet<String>, ApplyError> {
        let remote = self.remote(&step.to, step)?;
        let present = self.runtime.block_on(remote.bridges()).map_err(|error| ApplyError::Remote {
            action: "listing bridges".into(),
            host: step.to.clone(),
            error: Box::new(error),
        })?;
        Ok(step.items.iter().filter(|b| !present.contains(*b)).cloned().collect())
    }

    fn create_bridges(&self, step: &Step) -> Result<StepOutcome, ApplyError> {
        let remote = self.remote(&step.to, step)?;
        let mut created = Vec::new();
        for bridge in &step.items {
            let fresh = self.runtime.block_on(remote.create_bridge(bridge)).map_err(|error| ApplyError::Remote {
                action: format!("creating bridge `{bridge}`"),
                host: step.to.clone(),
                error: Box::new(error),
            })?;
            if fresh {
                created.push(bridge.as_str());
            }
        }
        let note = created.is_empty().then(|| "all bridges existed".to_string());
        Ok(StepOutcome { note, ..StepOutcome::default() })
    }

    fn volumes(&self, step: &Step, action: &str, host: &str) -> Result<StepOutcome, ApplyError> {
        let template = self.settings.volume_command.as_ref().ok_or_else(|| ApplyError::Unsupported {
            step: step.id.clone(),
            message: format!("{} needs `volume_command` in the inventory block", step.kind),
        })?;
        let remote = self.remote(host, step)?;
        for volume in &step.items {
            let argv = volume_argv(template, action, volume, &step.guest, host);
            self.runtime.block_on(remote.run_checked(&argv)).map_err(|error| ApplyError::Remote {
                action: format!("{action} volume `{volume}` of guest `{}`", step.guest),
                host: host.to_string(),
                error: Box::new(error),
            })?;
        }
        Ok(StepOutcome::default())
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
            dst.define(xml)?;
            return Ok(StepOutcome { guest_state: dst.domain_state(&step.guest)?, ..StepOutcome::default() });
        }
        let src = self.hypervisor(&step.from)?;
        let definition_xml = src.migratable_xml(&step.guest).ok();
        match ctx.mv.mode {
            MigrationMode::Live => migrate_live(&src, &dst, &step.guest, &self.settings.live, progress)?,
            _ => move_offline(&src, &dst, &step.guest)?,
        }
        Ok(StepOutcome { guest_state: dst.domain_state(&step.guest)?, definition_xml, note: None })
    }
}

impl StepRunner for LibvirtRunner {
    fn is_done(&self, step: &Step, ctx: &StepContext) -> Result<bool, ApplyError> {
        match step.kind {
            // Shut off, or already gone from the source.
            StepKind::StopGuest => {
                Ok(matches!(self.hypervisor(&step.from)?.domain_state(&step.guest)?, None | Some(GuestState::ShutOff)))
            }
            StepKind::CreateBridges => Ok(step.items.is_empty() || self.missing_bridges(step)?.is_empty()),
            StepKind::MigrateGuest => {
                if self.hypervisor(&step.to)?.domain_state(&step.guest)?.is_none() {
                    return Ok(false);
                }
                // With the source unreachable (offline_force), the target holding it is enough.
                Ok(ctx.mv.mode == MigrationMode::OfflineForce
                    || self.hypervisor(&step.from)?.domain_state(&step.guest)?.is_none())
            }
            StepKind::StartupGuest => {
                Ok(self.hypervisor(&step.to)?.domain_state(&step.guest)? == Some(GuestState::Running))
            }
            StepKind::DetachInterfaces
            | StepKind::AttachInterfaces
            | StepKind::DetachVolumes
            | StepKind::AttachVolumes => Ok(false),
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
                src.shutdown(&step.guest, s.shutdown_timeout, s.force_stop_after_timeout)?;
                Ok(StepOutcome { guest_state: Some(GuestState::ShutOff), ..StepOutcome::default() })
            }
            StepKind::CreateBridges => self.create_bridges(step),
            StepKind::DetachVolumes => self.volumes(step, "detach", &step.from),
            StepKind::AttachVolumes => self.volumes(step, "attach", &step.to),
            StepKind::MigrateGuest => self.migrate(step, ctx, progress),
            StepKind::StartupGuest => {
                self.hypervisor(&step.to)?.start(&step.guest, s.start_timeout)?;
                Ok(StepOutcome { guest_state: Some(GuestState::Running), ..StepOutcome::default() })
            }
            StepKind::DetachInterfaces | StepKind::AttachInterfaces => Err(ApplyError::Unsupported {
                step: step.id.clone(),
                message: format!(
                    "{} (SR-IOV interfaces {}) is not implemented by berth yet; run it with OEDACLI",
                    step.kind,
                    step.items.join(", ")
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_templates_substitute_per_argument() {
        let template =
            ["/opt/exa/edv", "{action}", "--volume={volume}", "--guest", "{guest}", "{host}"].map(String::from);
        let argv = volume_argv(&template, "attach", "/dev/exc/vol 1", "vm01", "adm02");
        assert_eq!(argv, ["/opt/exa/edv", "attach", "--volume=/dev/exc/vol 1", "--guest", "vm01", "adm02"]);
    }
}
