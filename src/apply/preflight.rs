//! Preflight: before the first step touches a guest, check everything the steps will need, and
//! report every problem at once. A plan that cannot finish must not start: a guest stopped
//! and then stranded by a missing SSH route or an unconfigured volume command is the failure
//! this prevents.
//!
//! Two kinds of checks:
//! - **static** ([`static_problems`]), from the configuration and the file system only, no
//!   connection: `inventory.volume_command` for volume steps, the names of the bridges
//!   CREATE_BRIDGES would create (they come from libvirt definitions), the directory es.xml is written
//!   back to (exists, is a directory, accepts a new file), the state file's directory (or the
//!   nearest existing parent it will be created in). `berth validate` runs these.
//! - **connections** ([`super::LibvirtRunner::preflight`]): libvirt on every host a step acts on
//!   through libvirt, SSH to every host with a host-side step, `ip` there for CREATE_BRIDGES, the
//!   programs of `volume_command` and `volume_check_command` there for volume steps. Only
//!   `berth apply` runs these (they reach the hosts).
//!
//! The lock is taken before any of this and is not one of the listed problems: the checks read
//! the state it guards (an unfinished plan decides which steps are left), and a held lock
//! means another berth is changing hosts and state right now, so any other problem found
//! would be about a picture that is moving. A held lock is refused on its own, first, naming
//! its holder and `berth force-unlock`; like every refusal it changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::{Config, MigrationMode};
use crate::plan::Plan;
use crate::schedule::{Step, StepKind};

/// Per host, the steps (ids) that need each kind of access to it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Hosts a step acts on through libvirt.
    pub libvirt: BTreeMap<String, Vec<String>>,
    /// Hosts with CREATE_BRIDGES (SSH and `ip`).
    pub bridges: BTreeMap<String, Vec<String>>,
    /// Hosts with DETACH_VOLUMES / ATTACH_VOLUMES (SSH and the volume command).
    pub volumes: BTreeMap<String, Vec<String>>,
    /// Hosts with HOST_COMMAND (SSH and the command's program), with that program.
    pub host_commands: BTreeMap<String, (String, Vec<String>)>,
}

impl Needs {
    /// What `steps` (of `plan`) need.
    pub fn of(plan: &Plan, steps: &[&Step]) -> Needs {
        let mut needs = Needs::default();
        let add = |map: &mut BTreeMap<String, Vec<String>>, host: &str, step: &Step| {
            map.entry(host.to_string())
                .or_default()
                .push(step.id.clone());
        };
        for step in steps {
            let (from, to) = (step.from.as_str(), step.to.as_str());
            match step.kind {
                StepKind::StopGuest | StepKind::DetachInterfaces => {
                    add(&mut needs.libvirt, from, step)
                }
                StepKind::AttachInterfaces | StepKind::StartupGuest => {
                    add(&mut needs.libvirt, to, step)
                }
                StepKind::MigrateGuest => {
                    // offline_force defines on the target from the recorded definition: the
                    // source may be gone.
                    let force = plan
                        .moves
                        .get(step.move_index)
                        .is_some_and(|m| m.mode == MigrationMode::OfflineForce);
                    if !force {
                        add(&mut needs.libvirt, from, step);
                    }
                    add(&mut needs.libvirt, to, step);
                }
                StepKind::CreateBridges => add(&mut needs.bridges, to, step),
                StepKind::DetachVolumes => add(&mut needs.volumes, from, step),
                StepKind::AttachVolumes => add(&mut needs.volumes, to, step),
                StepKind::HostCommand => {
                    let program = step.items.first().cloned().unwrap_or_default();
                    needs
                        .host_commands
                        .entry(to.to_string())
                        .or_insert_with(|| (program, Vec::new()))
                        .1
                        .push(step.id.clone());
                }
                StepKind::WaitHost => add(&mut needs.libvirt, to, step),
            }
        }
        needs
    }
}

/// `vm01:STOP_GUEST, vm02:STOP_GUEST` (at most 4, then `and n more`).
pub(crate) fn step_list(ids: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

/// Whether a new file can be created in `dir`: by creating (and at once removing) an unnamed
/// temporary file there, which is what the write-back itself will do.
fn accepts_files(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Err(e) => return Err(format!("{}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", dir.display())),
        Ok(_) => {}
    }
    tempfile::tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("{} is not writable: {e}", dir.display()))
}

/// `path` can be replaced by a new file (crate::atomic_file): absent, a regular file or a
/// link, not a directory, device, FIFO or socket.
fn replaceable(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() && !m.file_type().is_symlink() => Err(format!(
            "{} is not a regular file (a directory, device, FIFO or socket), which berth does not replace",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// The directory a file path lives in; `.` for a bare file name.
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The checks that need no connection: see the module documentation.
pub fn static_problems(cfg: &Config, plan: &Plan, steps: &[&Step]) -> Vec<String> {
    let mut problems = Vec::new();
    let volume_steps: Vec<String> = steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::DetachVolumes | StepKind::AttachVolumes))
        .map(|s| s.id.clone())
        .collect();
    if !volume_steps.is_empty() && cfg.inventory.volume_command.is_none() {
        problems.push(format!(
            "the volume steps ({}) run `inventory.volume_command` on the hosts, and none is configured: \
             set `volume_command` (and, best, `volume_check_command`) in the inventory block (docs/apply.md, Volumes)",
            step_list(&volume_steps)
        ));
    }
    // Bridge names come from the guests' libvirt definitions: one berth would not create
    // (not a plain interface name, see `remote::validate_ifname`) fails its CREATE_BRIDGES,
    // after other moves may have started. Refuse it here.
    for step in steps.iter().filter(|s| s.kind == StepKind::CreateBridges) {
        for bridge in &step.items {
            if let Err(e) = crate::remote::validate_ifname(bridge) {
                problems.push(format!(
                    "{} would create a bridge berth refuses on {}: {e}; create it on the host by hand, \
                     or rename it in the guest's definition",
                    step.id, step.to
                ));
            }
        }
    }
    if !plan.moves.is_empty() {
        let (what, target) = match &cfg.inventory.es_xml_out {
            Some(out) => ("inventory.es_xml_out", out.as_path()),
            None => (
                "es.xml (written back in place, with a backup)",
                cfg.inventory.es_xml.value.as_path(),
            ),
        };
        if let Err(e) = accepts_files(&parent(target)).and_then(|()| replaceable(target)) {
            problems.push(format!(
                "es.xml cannot be written back to {} ({what}): {e}",
                target.display()
            ));
        }
    }
    // The state file's directory, or the nearest parent that exists (apply creates the rest).
    let mut dir = parent(&cfg.state.path);
    while !dir.exists() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p.to_path_buf(),
            _ => {
                dir = PathBuf::from(".");
                break;
            }
        }
    }
    if let Err(e) = accepts_files(&dir).and_then(|()| replaceable(&cfg.state.path)) {
        problems.push(format!(
            "the state file {} cannot be written: {e}",
            cfg.state.path.display()
        ));
    }
    problems
}

/// The steps a run will carry out: those of the guests in `scope` (all when `None`), minus
/// the steps `done` already.
pub fn steps_to_run<'a>(
    plan: &'a Plan,
    scope: &BTreeSet<String>,
    single_step: Option<&str>,
    done: &BTreeSet<String>,
) -> Vec<&'a Step> {
    plan.steps
        .iter()
        .filter(|s| scope.contains(&s.guest))
        .filter(|s| single_step.is_none_or(|id| id == s.id))
        .filter(|s| !done.contains(&s.id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::sample_plan;

    fn config(text: &str, dir: &Path) -> Config {
        crate::config::parse_str("main.hcl", text, dir).unwrap()
    }

    #[test]
    fn volume_steps_without_a_volume_command_and_unwritable_places_are_all_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = sample_plan();
        let mut step = plan.steps[0].clone();
        step.kind = StepKind::AttachVolumes;
        step.id = format!("{}:ATTACH_VOLUMES", step.guest);
        plan.steps.push(step);
        let cfg = config(
            r#"
inventory {
  es_xml     = "es.xml"
  es_xml_out = "missing/es.xml"
}
state { path = "no/such/state.json" }
"#,
            dir.path(),
        );
        let steps: Vec<&Step> = plan.steps.iter().collect();
        let problems = static_problems(&cfg, &plan, &steps);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].contains("ATTACH_VOLUMES") && problems[0].contains("volume_command"),
            "{problems:#?}"
        );
        assert!(
            problems[1].contains("missing/es.xml") && problems[1].contains("es_xml_out"),
            "{problems:#?}"
        );
        // The state's directory is created by apply: a missing one under a writable parent
        // is fine.
        std::fs::create_dir(dir.path().join("missing")).unwrap();
        let cfg = config(
            r#"
inventory {
  es_xml         = "es.xml"
  es_xml_out     = "missing/es.xml"
  volume_command = ["/bin/true", "{action}", "--", "{volume}"]
}
"#,
            dir.path(),
        );
        assert_eq!(static_problems(&cfg, &plan, &steps), Vec::<String>::new());

        // What berth would have to replace by a file, found before the first step rather than
        // by the write-back after the last one.
        std::fs::create_dir(dir.path().join("missing/es.xml")).unwrap();
        std::fs::create_dir_all(dir.path().join("state/berth.state.json")).unwrap();
        let problems = static_problems(&cfg, &plan, &steps);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].contains("missing/es.xml is not a regular file"),
            "{problems:#?}"
        );
        assert!(
            problems[1].contains("berth.state.json is not a regular file"),
            "{problems:#?}"
        );
    }

    #[test]
    fn needs_put_each_step_on_its_host() {
        let plan = sample_plan();
        let steps: Vec<&Step> = plan.steps.iter().collect();
        let needs = Needs::of(&plan, &steps);
        for s in &plan.steps {
            let host = match s.kind {
                StepKind::StopGuest | StepKind::DetachInterfaces | StepKind::DetachVolumes => {
                    &s.from
                }
                _ => &s.to,
            };
            let map = match s.kind {
                StepKind::CreateBridges => &needs.bridges,
                StepKind::DetachVolumes | StepKind::AttachVolumes => &needs.volumes,
                _ => &needs.libvirt,
            };
            assert!(map[host].contains(&s.id), "{} on {host}: {needs:#?}", s.id);
        }
    }
}
