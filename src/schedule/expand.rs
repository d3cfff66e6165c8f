//! One move → its MIGRATE GUEST steps, in per-move order, leaving out steps with nothing to do.
//!
//! - offline: CREATE_BRIDGES, STOP_GUEST, DETACH_INTERFACES, DETACH_VOLUMES, ATTACH_VOLUMES,
//!   MIGRATE_GUEST, ATTACH_INTERFACES, STARTUP_GUEST. The bridges come first: they are prepared
//!   on the target while the guest still runs, so they are not part of its downtime.
//! - live (the guest keeps running): CREATE_BRIDGES, ATTACH_VOLUMES (on the target, before),
//!   MIGRATE_GUEST, DETACH_VOLUMES (on the source, after).
//! - offline_force: as offline, minus the source-side steps (STOP_GUEST, DETACH_INTERFACES,
//!   DETACH_VOLUMES) when the source does not answer.
//!
//! - stop in place (maintenance): STOP_GUEST on its own host; start in place: STARTUP_GUEST.
//!
//! Each move also names the step that *claims* its guest's resources on the target and the step
//! that *releases* them on the source (see [`super::capacity`]).

use std::collections::{BTreeSet, HashMap};

use crate::config::{LiveTransport, MigrationMode};
use crate::diff::{Move, MoveKind};
use crate::inventory::{Guest, Host, Topology};

use super::error::ScheduleError;
use super::model::{SkippedStep, StepKind};

/// A step while the graph is built; dependencies by node index.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: String,
    pub kind: StepKind,
    pub move_index: usize,
    pub detail: String,
    pub items: Vec<String>,
    pub deps: Vec<usize>,
}

/// The steps of all moves, with per-move chain edges already in `Node::deps`.
pub(crate) struct Expansion {
    pub nodes: Vec<Node>,
    pub skipped: Vec<SkippedStep>,
    /// Per move: the step from whose start the guest holds resources on the target
    /// (`None` when the guest holds nothing).
    pub claim: Vec<Option<usize>>,
    /// Per move: the step at whose end the guest stops holding resources on the source
    /// (`None` when it holds nothing, or the source is dead under offline_force).
    pub release: Vec<Option<usize>>,
}

pub(crate) fn expand(moves: &[Move], topo: &Topology) -> Result<Expansion, ScheduleError> {
    let mut expansion = Expansion {
        nodes: Vec::with_capacity(moves.len() * 4),
        skipped: Vec::new(),
        claim: Vec::with_capacity(moves.len()),
        release: Vec::with_capacity(moves.len()),
    };
    // A guest's previous move's last step, and how many moves of the guest were seen.
    let mut previous: HashMap<&str, (Option<usize>, usize)> = HashMap::new();
    for (index, mv) in moves.iter().enumerate() {
        let guest = topo
            .guests
            .get(&mv.guest)
            .ok_or_else(|| ScheduleError::UnknownGuest {
                guest: mv.guest.clone(),
            })?;
        let host = |name: &str| {
            topo.hosts
                .get(name)
                .ok_or_else(|| ScheduleError::UnknownHost {
                    guest: mv.guest.clone(),
                    host: name.to_string(),
                })
        };
        let (source, target) = (host(&mv.from)?, host(&mv.to)?);
        let (last, count) = previous
            .get(mv.guest.as_str())
            .copied()
            .unwrap_or((None, 0));
        let suffix = if count == 0 {
            String::new()
        } else {
            format!("#{}", count + 1)
        };
        let ctx = MoveContext {
            index,
            mv,
            guest,
            source,
            target,
            suffix,
        };
        let first_node = expansion.nodes.len();
        let (claim, release) = ctx.expand_into(&mut expansion);
        // Chain: each step after the previous one of the same move; a guest's next move after
        // its previous move's last step.
        let mut before = last;
        for node in first_node..expansion.nodes.len() {
            if let Some(b) = before {
                expansion.nodes[node].deps.push(b);
            }
            before = Some(node);
        }
        expansion.claim.push(claim);
        expansion.release.push(release);
        previous.insert(mv.guest.as_str(), (before, count + 1));
    }
    Ok(expansion)
}

struct MoveContext<'a> {
    index: usize,
    mv: &'a Move,
    guest: &'a Guest,
    source: &'a Host,
    target: &'a Host,
    suffix: String,
}

impl MoveContext<'_> {
    /// Appends the move's steps; returns its (claim, release) steps.
    fn expand_into(&self, out: &mut Expansion) -> (Option<usize>, Option<usize>) {
        let holds = self.guest.state.holds_resources();
        let (g, from, to) = (&self.mv.guest, &self.mv.from, &self.mv.to);
        let hostdev: Vec<String> = self
            .guest
            .host_specific_interfaces()
            .map(|i| match &i.mac {
                Some(mac) => format!("{} ({mac})", i.source),
                None => i.source.clone(),
            })
            .collect();
        let volumes = &self.guest.volumes;
        match self.mv.kind {
            MoveKind::StopInPlace => {
                let stop = self.push(
                    out,
                    StepKind::StopGuest,
                    format!("shut down {g} on {from} and leave it defined there (maintenance)"),
                    Vec::new(),
                );
                return (None, holds.then_some(stop));
            }
            MoveKind::StartInPlace => {
                let start = self.push(
                    out,
                    StepKind::StartupGuest,
                    format!("start {g} on {to} again (end of maintenance)"),
                    Vec::new(),
                );
                return (Some(start), None);
            }
            // Rolling maintenance builds a host's steps itself (`plan::rolling`).
            MoveKind::HostService => return (None, None),
            MoveKind::Migrate => {}
        }
        let missing_bridges = self.missing_bridges();
        let mut claim = None;
        let mut release = None;

        if self.mv.mode == MigrationMode::Live {
            self.bridges_step(out, missing_bridges);
            self.items_step(
                out,
                StepKind::AttachVolumes,
                volumes,
                format!("attach Exascale volumes to {g} on {to}"),
            );
            let migrate = self.push(
                out,
                StepKind::MigrateGuest,
                format!(
                    "live-migrate {g} from {from} to {to}{} (it keeps running)",
                    match self.mv.transport {
                        Some(LiveTransport::PeerToPeer) => ", peer-to-peer",
                        Some(LiveTransport::Client) => ", client-managed",
                        None => "",
                    }
                ),
                Vec::new(),
            );
            self.items_step(
                out,
                StepKind::DetachVolumes,
                volumes,
                format!("detach Exascale volumes of {g} on {from}"),
            );
            if holds {
                (claim, release) = (Some(migrate), Some(migrate));
            }
            return (claim, release);
        }

        let source_gone = self.mv.mode == MigrationMode::OfflineForce && !self.source.reachable;
        let gone_reason = format!("{from} does not answer: offline_force leaves the source alone");
        // Prepared while the guest runs, before it is stopped.
        self.bridges_step(out, missing_bridges);
        if source_gone {
            self.skip(out, StepKind::StopGuest, gone_reason.clone());
        } else if !holds {
            self.skip(
                out,
                StepKind::StopGuest,
                format!("{g} is {}: nothing to stop", self.guest.state),
            );
        } else {
            release = Some(self.push(
                out,
                StepKind::StopGuest,
                format!("shut down {g} on {from}"),
                Vec::new(),
            ));
        }
        if source_gone {
            self.skip(out, StepKind::DetachInterfaces, gone_reason.clone());
            self.skip(out, StepKind::DetachVolumes, gone_reason);
        } else {
            self.items_step(
                out,
                StepKind::DetachInterfaces,
                &hostdev,
                format!("detach SR-IOV interfaces of {g} on {from}"),
            );
            self.items_step(
                out,
                StepKind::DetachVolumes,
                volumes,
                format!("detach Exascale volumes of {g} on {from}"),
            );
        }
        self.items_step(
            out,
            StepKind::AttachVolumes,
            volumes,
            format!("attach Exascale volumes to {g} on {to}"),
        );
        self.push(
            out,
            StepKind::MigrateGuest,
            format!("move the definition of {g} from {from} to {to}"),
            Vec::new(),
        );
        self.items_step(
            out,
            StepKind::AttachInterfaces,
            &hostdev,
            format!("attach SR-IOV interfaces to {g} on {to} with free VFs of its sriov_vfs pool"),
        );
        if holds {
            claim = Some(self.push(
                out,
                StepKind::StartupGuest,
                format!("start {g} on {to}"),
                Vec::new(),
            ));
        } else {
            self.skip(
                out,
                StepKind::StartupGuest,
                format!("{g} is {} and stays shut off on {to}", self.guest.state),
            );
        }
        (claim, release)
    }

    /// Bridges the guest needs that the target is not known to have. Without SSH facts the
    /// bridges the target's own domains use are all that is known.
    fn missing_bridges(&self) -> Vec<String> {
        let known: &BTreeSet<String> = self
            .target
            .bridges
            .as_ref()
            .unwrap_or(&self.target.bridges_in_use);
        self.guest
            .bridges()
            .into_iter()
            .filter(|b| !known.contains(b))
            .collect()
    }

    fn bridges_step(&self, out: &mut Expansion, missing: Vec<String>) {
        let (g, to) = (&self.mv.guest, &self.mv.to);
        if missing.is_empty() {
            let needed: Vec<String> = self.guest.bridges().into_iter().collect();
            let reason = if needed.is_empty() {
                format!("{g} uses no bridges")
            } else {
                format!(
                    "{to} already has every bridge {g} needs ({})",
                    needed.join(", ")
                )
            };
            self.skip(out, StepKind::CreateBridges, reason);
        } else {
            let detail = format!("create bridges {} on {to}", missing.join(", "));
            self.push(out, StepKind::CreateBridges, detail, missing);
        }
    }

    /// A step acting on a list (interfaces, volumes): skipped when the list is empty.
    fn items_step(&self, out: &mut Expansion, kind: StepKind, items: &[String], detail: String) {
        if items.is_empty() {
            let reason = match kind {
                StepKind::DetachInterfaces | StepKind::AttachInterfaces => {
                    format!("{} has no SR-IOV (hostdev) interfaces", self.mv.guest)
                }
                _ => format!("{} has no Exascale volumes", self.mv.guest),
            };
            self.skip(out, kind, reason);
        } else {
            let detail = format!("{detail}: {}", items.join(", "));
            self.push(out, kind, detail, items.to_vec());
        }
    }

    fn push(
        &self,
        out: &mut Expansion,
        kind: StepKind,
        detail: String,
        items: Vec<String>,
    ) -> usize {
        out.nodes.push(Node {
            id: format!("{}:{}{}", self.mv.guest, kind.as_str(), self.suffix),
            kind,
            move_index: self.index,
            detail,
            items,
            deps: Vec::new(),
        });
        out.nodes.len() - 1
    }

    fn skip(&self, out: &mut Expansion, kind: StepKind, reason: String) {
        out.skipped.push(SkippedStep {
            guest: self.mv.guest.clone(),
            kind,
            reason,
        });
    }
}
