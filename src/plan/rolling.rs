//! Rolling maintenance: one plan that services hosts one after another, one phase per host.
//!
//! A phase is the maintenance planner run twice, with the host's command in between:
//!
//! 1. `maintenance = true` on the host, planned on the placement predicted after the earlier
//!    phases: guests that can move are moved, the others are stopped in place (one member of
//!    each RAC cluster at a time);
//! 2. HOST_COMMAND (the operator's patch or reboot command over SSH), then WAIT_HOST (libvirt
//!    answers, facts read again, the host still has what the plan counts on);
//! 3. `maintenance = false` on the host, planned on the placement after step 1 with the history
//!    step 1 would leave: the guests stopped in place start again, the moved ones come home.
//!
//! Each half is an ordinary plan (diff, capacity edges, budgets, timeline) of the existing
//! planner; this module only chains them. Every step of a phase starts after every step of the
//! phase before it ended, so each half's capacity and budget checks, made on the placement the
//! earlier halves leave, hold at every instant of the whole plan. A phase ends with its guests
//! back home, so the next phase starts from the placement the plan started from: no guest moves
//! in another host's phase, and a guest moved off its host moves exactly twice (off, back).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::config::{BackWhen, Config, ConfigError, HostIntent, MigrationMode, Spanned};
use crate::diff::{History, Move, MoveKind};
use crate::inventory::load::Inventory;
use crate::inventory::{GuestState, Topology};
use crate::schedule::{GuestDowntime, LowerBound, Step, StepKind, StepTiming, Timing};

use super::build::{Scope, build_scoped, es_xml_diff_of};
use super::model::{MaintenanceAction, Phase, Plan, PlanError};

/// Plans the rolling maintenance of `hosts` (resolved, in order). `history` is what earlier
/// applies did (for the plan from which the phases start).
pub(super) fn build(
    cfg: &Config,
    inv: &Inventory,
    history: Result<History, PlanError>,
    hosts: &[String],
    scope: &Scope,
) -> Result<Plan, ConfigError> {
    let mut base = cfg.clone();
    let rolling = base.rolling.take();
    let command = rolling
        .as_ref()
        .and_then(|r| r.host_command.as_ref())
        .map(|c| c.value.clone())
        .unwrap_or_default();
    let expected_s = rolling.as_ref().map_or(0, |r| r.host_command_expected_s) as f64;
    let back_timeout_s = rolling.as_ref().map_or(0, |r| r.back_timeout_s);
    let back_when = rolling.as_ref().map(|r| r.back_when).unwrap_or_default();
    let run = rolling
        .as_ref()
        .and_then(|r| r.run.as_ref())
        .map(|r| r.value.clone());
    let span = rolling.map(|r| r.span).unwrap_or_default();

    // The phases start from a settled placement: what the configuration asks besides the
    // rolling maintenance is applied first, so that each phase can end where it began.
    let mut plan = build_scoped(&base, inv, history, &Scope::default())?;
    plan.intents = cfg.command_line.clone();
    if !plan.is_ok() {
        return Ok(plan);
    }
    if plan.has_changes() {
        let guests: Vec<&str> = plan.moves.iter().map(|m| m.guest.as_str()).collect();
        plan.errors.push(PlanError {
            code: "rolling_start".into(),
            message: format!(
                "a rolling maintenance starts from a settled placement, and the configuration first asks for {} move{} ({}); \
                 apply those without the rolling maintenance first, then plan it",
                guests.len(),
                if guests.len() == 1 { "" } else { "s" },
                guests.join(", ")
            ),
            guest: None,
            host: None,
        });
        return Ok(plan);
    }
    if !scope.is_everything() {
        plan.errors.push(PlanError {
            code: "scope".into(),
            message: "a rolling maintenance services every guest of each host: -target and -exclude cannot limit it".into(),
            guest: None,
            host: None,
        });
        return Ok(plan);
    }

    let mut chain = Chain::default();
    let mut topo = inv.topology.clone();
    let pools = vf_pools(&base, &topo);
    let mut peaks: BTreeMap<String, u64> = BTreeMap::new();
    for (k, host) in hosts.iter().enumerate() {
        let number = k + 1;
        let phase_start = chain.offset_s;
        let first_step = chain.steps.len();

        // 1. Maintenance, on the placement the earlier phases leave.
        let entering = build_scoped(
            &with_maintenance(&base, host, true, &span),
            &with_topology(inv, &topo),
            Ok(History::default()),
            &Scope::default(),
        )?;
        if let Some(errors) = phase_errors(number, host, "maintenance", &entering) {
            plan.errors.extend(errors);
            break;
        }
        let (during, history) = after_entering(&topo, host, &entering.moves, &pools);

        // 2. The host command and the wait for the host.
        let mut entering = entering;
        for m in &mut entering.moves {
            m.reason = format!("rolling maintenance, phase {number}: {}", m.reason);
        }
        chain.add(&entering);
        let Some(h) = topo.hosts.get(host) else { break };
        chain.add_host_steps(number, h, &command, expected_s, back_timeout_s, back_when);

        // 3. End of maintenance, on the placement step 1 leaves, with its history.
        let leaving = build_scoped(
            &with_maintenance(&base, host, false, &span),
            &with_topology(inv, &during),
            Ok(history),
            &Scope::default(),
        )?;
        if let Some(errors) = phase_errors(number, host, "end of maintenance", &leaving) {
            plan.errors.extend(errors);
            break;
        }
        let mut leaving = leaving;
        for m in leaving.moves.iter_mut().filter(|m| m.kind.is_migrate()) {
            m.reason = format!(
                "rolling maintenance, phase {number}: back home to {host} once it is serviced"
            );
        }
        chain.add(&leaving);
        topo = after(&during, &leaving.moves, &pools);

        for summary in entering.hosts.iter().chain(&leaving.hosts) {
            let peak = peaks.entry(summary.name.clone()).or_default();
            *peak = (*peak).max(summary.memory_peak_mib);
        }
        let steps: Vec<String> = chain.steps[first_step..]
            .iter()
            .map(|s| s.id.clone())
            .collect();
        let guests = phase_guests(&chain, &steps, &entering, &leaving);
        let moves = entering
            .moves
            .iter()
            .chain(&leaving.moves)
            .filter(|m| m.kind.is_migrate())
            .count();
        let timed = chain.timed;
        plan.phases.push(Phase {
            number,
            host: host.clone(),
            host_command: command.clone(),
            back_when,
            run: run.clone(),
            steps,
            guests,
            moves,
            start_s: timed.then_some(phase_start),
            duration_s: timed.then_some(chain.offset_s - phase_start),
        });
    }

    for summary in &mut plan.hosts {
        if let Some(peak) = peaks.get(&summary.name) {
            summary.memory_peak_mib = summary.memory_peak_mib.max(*peak);
        }
    }
    plan.es_xml_diff = es_xml_diff_of(cfg, inv, &chain.moves).unwrap_or_else(|e| {
        plan.errors.push(PlanError {
            code: "es_xml".into(),
            message: e.to_string(),
            guest: None,
            host: None,
        });
        String::new()
    });
    plan.timing = chain.timing(expected_s);
    plan.moves = chain.moves;
    plan.steps = chain.steps;
    plan.waves = chain.waves;
    plan.skipped_steps = chain.skipped;
    Ok(plan)
}

/// `cfg` with `maintenance = on` for `host` (in its host block, or a new one).
fn with_maintenance(cfg: &Config, host: &str, on: bool, span: &crate::config::Span) -> Config {
    let mut cfg = cfg.clone();
    let short = |n: &str| n.split('.').next().unwrap_or(n).to_string();
    let existing = cfg
        .hosts
        .values_mut()
        .find(|i| i.name.value == host || i.name.value == short(host));
    match existing {
        Some(intent) => intent.maintenance = Some(on),
        None => {
            let mut intent = HostIntent::unset(Spanned {
                value: host.to_string(),
                span: span.clone(),
            });
            intent.maintenance = Some(on);
            cfg.hosts.insert(host.to_string(), intent);
        }
    }
    cfg
}

fn with_topology(inv: &Inventory, topo: &Topology) -> Inventory {
    Inventory {
        topology: topo.clone(),
        ..inv.clone()
    }
}

/// The placement after the maintenance half of a phase, and the history its end needs: which
/// guests were moved off the host and which were stopped in place there.
fn after_entering(
    topo: &Topology,
    host: &str,
    moves: &[Move],
    pools: &BTreeMap<String, Vec<String>>,
) -> (Topology, History) {
    let mut history = History::default();
    for m in moves {
        match m.kind {
            MoveKind::Migrate if m.from == host => {
                history
                    .departed
                    .insert(m.guest.clone(), vec![host.to_string()]);
            }
            MoveKind::StopInPlace => {
                history
                    .stopped_in_place
                    .insert(m.guest.clone(), host.to_string());
            }
            _ => {}
        }
    }
    (after(topo, moves, pools), history)
}

/// Each host's `sriov_vfs` pool (host blocks by full or short name).
fn vf_pools(cfg: &Config, topo: &Topology) -> BTreeMap<String, Vec<String>> {
    let short = |n: &str| n.split('.').next().unwrap_or(n).to_string();
    topo.hosts
        .keys()
        .filter_map(|h| {
            let intent = cfg
                .hosts
                .values()
                .find(|i| i.name.value == *h || i.name.value == short(h))?;
            Some((h.clone(), intent.sriov_vfs.as_ref()?.value.clone()))
        })
        .collect()
}

/// `topo` after `moves`: guests on their targets (their SR-IOV interfaces on the first free
/// VFs of the target's pool, as ATTACH_INTERFACES hands them out), stopped or started in place.
fn after(topo: &Topology, moves: &[Move], pools: &BTreeMap<String, Vec<String>>) -> Topology {
    let mut topo = topo.clone();
    for m in moves {
        let Some(g) = topo.guests.get_mut(&m.guest) else {
            continue;
        };
        match m.kind {
            MoveKind::Migrate => {
                let domain = g.domain_name().to_string();
                g.host = m.to.clone();
                if let Some(h) = topo.hosts.get_mut(&m.from) {
                    h.domains.remove(&domain);
                    for i in g.host_specific_interfaces() {
                        h.vfs_in_use.remove(&i.source);
                    }
                }
                if let Some(h) = topo.hosts.get_mut(&m.to) {
                    h.domains.insert(domain);
                    let mut free = pools
                        .get(&m.to)
                        .into_iter()
                        .flatten()
                        .filter(|vf| !h.vfs_in_use.contains(*vf))
                        .cloned()
                        .collect::<Vec<_>>()
                        .into_iter();
                    for i in g
                        .interfaces
                        .iter_mut()
                        .filter(|i| i.kind == crate::inventory::InterfaceKind::Hostdev)
                    {
                        if let Some(vf) = free.next() {
                            i.source = vf;
                        }
                        h.vfs_in_use.insert(i.source.clone());
                    }
                }
            }
            MoveKind::StopInPlace => g.state = GuestState::ShutOff,
            MoveKind::StartInPlace => g.state = GuestState::Running,
            MoveKind::HostService => {}
        }
    }
    topo
}

/// A half-phase plan's errors, said to be of that phase.
fn phase_errors(number: usize, host: &str, half: &str, plan: &Plan) -> Option<Vec<PlanError>> {
    (!plan.is_ok()).then(|| {
        plan.errors
            .iter()
            .map(|e| PlanError {
                message: format!("phase {number} ({half} of {host}): {}", e.message),
                ..e.clone()
            })
            .collect()
    })
}

/// Per guest of the phase's host: the maintenance half's entries and the end's, with the
/// downtime of a guest stopped in place predicted from its STOP_GUEST to its STARTUP_GUEST.
fn phase_guests(
    chain: &Chain,
    steps: &[String],
    entering: &Plan,
    leaving: &Plan,
) -> Vec<crate::plan::MaintenanceGuest> {
    let in_phase: HashSet<&str> = steps.iter().map(String::as_str).collect();
    let times: HashMap<&str, &StepTiming> = chain
        .timings
        .iter()
        .filter(|t| in_phase.contains(t.step.as_str()))
        .map(|t| (t.step.as_str(), t))
        .collect();
    let step_of = |guest: &str, kind: StepKind| {
        chain
            .steps
            .iter()
            .filter(|s| in_phase.contains(s.id.as_str()))
            .find(|s| s.guest == guest && s.kind == kind)
            .and_then(|s| times.get(s.id.as_str()).copied())
    };
    let mut guests: Vec<_> = entering
        .maintenance
        .iter()
        .chain(&leaving.maintenance)
        .cloned()
        .collect();
    for g in &mut guests {
        if matches!(
            g.action,
            MaintenanceAction::StoppedInPlace | MaintenanceAction::StartedInPlace
        ) {
            g.downtime_s = match (
                step_of(&g.guest, StepKind::StopGuest),
                step_of(&g.guest, StepKind::StartupGuest),
            ) {
                (Some(stop), Some(start)) => Some(start.start_s + start.duration_s - stop.start_s),
                _ => None,
            };
        }
    }
    guests
}

/// The whole plan's steps, as the half-phase plans and host steps are appended one after
/// another: ids made unique (a guest's n-th move's steps get `#n`), every first step of a part
/// made to wait for the last steps of the part before, predicted times shifted.
#[derive(Default)]
struct Chain {
    moves: Vec<Move>,
    steps: Vec<Step>,
    waves: Vec<Vec<String>>,
    skipped: Vec<crate::schedule::SkippedStep>,
    timings: Vec<StepTiming>,
    downtime: Vec<GuestDowntime>,
    /// The parts' holds (see `schedule::holds`), renamed like their steps.
    holds: Vec<crate::schedule::Hold>,
    lower_bound: LowerBound,
    /// Moves per guest so far.
    count: HashMap<String, usize>,
    /// The steps the next part waits for.
    barrier: Vec<String>,
    /// Where the next part starts on the predicted timeline, seconds.
    offset_s: f64,
    /// Whether every part so far had a prediction.
    timed: bool,
    model: Option<Timing>,
}

impl Chain {
    fn add(&mut self, part: &Plan) {
        if self.steps.is_empty() && self.moves.is_empty() {
            self.timed = true;
        }
        let base = self.moves.len();
        let mut ordinal = Vec::with_capacity(part.moves.len());
        for m in &part.moves {
            let n = self.count.entry(m.guest.clone()).or_default();
            *n += 1;
            ordinal.push(*n);
            self.moves.push(m.clone());
        }
        let rename: HashMap<&str, String> = part
            .steps
            .iter()
            .map(|s| {
                let n = ordinal.get(s.move_index).copied().unwrap_or(1);
                let suffix = if n > 1 {
                    format!("#{n}")
                } else {
                    String::new()
                };
                (
                    s.id.as_str(),
                    format!("{}:{}{suffix}", s.guest, s.kind.as_str()),
                )
            })
            .collect();
        let renamed = |id: &String| rename.get(id.as_str()).cloned().unwrap_or(id.clone());
        let mut has_dependents: HashSet<&str> = HashSet::new();
        for s in &part.steps {
            has_dependents.extend(s.depends_on.iter().map(String::as_str));
        }
        let mut sinks = Vec::new();
        for s in &part.steps {
            let mut step = s.clone();
            step.id = renamed(&s.id);
            step.move_index += base;
            step.depends_on = if s.depends_on.is_empty() {
                self.barrier.clone()
            } else {
                s.depends_on.iter().map(renamed).collect()
            };
            if !has_dependents.contains(s.id.as_str()) {
                sinks.push(step.id.clone());
            }
            self.steps.push(step);
        }
        self.waves.extend(
            part.waves
                .iter()
                .map(|w| w.iter().map(renamed).collect::<Vec<_>>()),
        );
        self.skipped.extend(part.skipped_steps.iter().cloned());
        match &part.timing {
            Some(t) => {
                for st in &t.steps {
                    self.timings.push(StepTiming {
                        step: renamed(&st.step),
                        start_s: st.start_s + self.offset_s,
                        duration_s: st.duration_s,
                    });
                }
                for d in &t.downtime {
                    self.downtime.push(GuestDowntime {
                        from_step: renamed(&d.from_step),
                        to_step: renamed(&d.to_step),
                        ..d.clone()
                    });
                }
                for h in &t.holds {
                    self.holds.push(crate::schedule::Hold {
                        step: renamed(&h.step),
                        waits_for: renamed(&h.waits_for),
                    });
                }
                let (lb, add) = (&mut self.lower_bound, &t.lower_bound);
                lb.overall_s += add.overall_s;
                lb.critical_path_s += add.critical_path_s;
                lb.link_s = lb.link_s.max(add.link_s);
                lb.parallelism_s += add.parallelism_s;
                lb.host_migrations_s += add.host_migrations_s;
                lb.budget_s += add.budget_s;
                self.offset_s += t.makespan_s;
                if self.model.is_none() {
                    self.model = Some(t.clone());
                }
            }
            None if !part.steps.is_empty() => self.timed = false,
            None => {}
        }
        if !sinks.is_empty() {
            self.barrier = sinks;
        }
    }

    /// HOST_COMMAND and WAIT_HOST of one phase, after everything before them.
    fn add_host_steps(
        &mut self,
        number: usize,
        host: &crate::inventory::Host,
        command: &[String],
        expected_s: f64,
        back_timeout_s: u64,
        back_when: BackWhen,
    ) {
        if self.steps.is_empty() && self.moves.is_empty() {
            self.timed = true;
        }
        let index = self.moves.len();
        self.moves.push(Move {
            guest: String::new(),
            from: host.name.clone(),
            to: host.name.clone(),
            mode: MigrationMode::Offline,
            reason: format!(
                "rolling maintenance, phase {number}: service host {}",
                host.name
            ),
            memory_mib: host.memory_mib,
            vcpus: host.cpus,
            pivot: false,
            kind: MoveKind::HostService,
            domain: None,
            transport: None,
        });
        let command_id = format!("{}:{}", host.name, StepKind::HostCommand.as_str());
        let wait_id = format!("{}:{}", host.name, StepKind::WaitHost.as_str());
        let shown = command.join(" ");
        self.steps.push(Step {
            id: command_id.clone(),
            kind: StepKind::HostCommand,
            guest: String::new(),
            from: host.name.clone(),
            to: host.name.clone(),
            move_index: index,
            depends_on: self.barrier.clone(),
            detail: match back_when {
                BackWhen::Rebooted => format!(
                    "read the boot id of {0}, then run `{shown}` on {0} over SSH (a connection the reboot cuts is the command's end; \
                     never twice: if berth dies while it runs, the next apply does not run it again and waits for the host)",
                    host.name
                ),
                BackWhen::Answers => format!(
                    "run `{shown}` on {} over SSH (never twice: if berth dies while it runs, the next apply does not run it again and waits for the host)",
                    host.name
                ),
            },
            items: command.to_vec(),
        });
        self.steps.push(Step {
            id: wait_id.clone(),
            kind: StepKind::WaitHost,
            guest: String::new(),
            from: host.name.clone(),
            to: host.name.clone(),
            move_index: index,
            depends_on: vec![command_id.clone()],
            detail: match back_when {
                BackWhen::Rebooted => format!(
                    "wait up to {back_timeout_s} s until {} has rebooted and is back (its boot id differs from the one read before the command, \
                     libvirt answers, facts read again) with at least {} MiB memory and {} CPUs",
                    host.name, host.memory_mib, host.cpus
                ),
                BackWhen::Answers => format!(
                    "wait up to {back_timeout_s} s until {} is back (libvirt answers, facts read again; no reboot awaited) with at least {} MiB memory and {} CPUs",
                    host.name, host.memory_mib, host.cpus
                ),
            },
            items: Vec::new(),
        });
        let wait_s = crate::schedule::DurationModel::default().ssh_round_trip_s;
        self.timings.push(StepTiming {
            step: command_id.clone(),
            start_s: self.offset_s,
            duration_s: expected_s,
        });
        self.timings.push(StepTiming {
            step: wait_id.clone(),
            start_s: self.offset_s + expected_s,
            duration_s: wait_s,
        });
        self.offset_s += expected_s + wait_s;
        // The host steps run alone: every bound grows by them.
        self.lower_bound.overall_s += expected_s + wait_s;
        self.lower_bound.critical_path_s += expected_s + wait_s;
        self.waves.push(vec![command_id]);
        self.waves.push(vec![wait_id.clone()]);
        self.barrier = vec![wait_id];
    }

    /// The whole plan's prediction: the parts' timelines one after another.
    fn timing(&self, expected_s: f64) -> Option<Timing> {
        if !self.timed || self.steps.is_empty() {
            return None;
        }
        let template = self.model.clone()?;
        let start: HashMap<&str, (f64, f64)> = self
            .timings
            .iter()
            .map(|t| (t.step.as_str(), (t.start_s, t.start_s + t.duration_s)))
            .collect();
        // Timing lists every step in plan order.
        let steps: Vec<StepTiming> = self
            .steps
            .iter()
            .filter_map(|s| self.timings.iter().find(|t| t.step == s.id).cloned())
            .collect();
        let waves = self
            .waves
            .iter()
            .map(|w| {
                let times: Vec<(f64, f64)> = w
                    .iter()
                    .filter_map(|id| start.get(id.as_str()).copied())
                    .collect();
                crate::schedule::WaveTiming {
                    start_s: times.iter().map(|t| t.0).fold(f64::INFINITY, f64::min),
                    finish_s: times.iter().map(|t| t.1).fold(0.0, f64::max),
                }
            })
            .collect();
        let mut model = template.model.clone();
        model.host_command_s = expected_s;
        let lower_bound = self.lower_bound.clone();
        Some(Timing {
            steps,
            waves,
            makespan_s: self.offset_s,
            lower_bound,
            model,
            concurrency: template.concurrency,
            priority_seed: 0,
            holds: self.holds.clone(),
            downtime: self.downtime.clone(),
        })
    }
}
