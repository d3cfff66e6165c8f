//! Walks a plan's step graph: every step runs once all it depends on is done, within a
//! global bound on concurrent steps and per-host bounds on migrations in and out.
//!
//! Each transition is journaled in the state file before the executor goes on (running is
//! saved before the step acts), so an interrupted apply resumes: steps journaled as done are
//! skipped, and every other step first asks reality whether its effect is already there.
//!
//! The caller holds the state lock for the whole run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::error::ApplyError;
use super::events::Event;
use super::hypervisor::MigrationProgress;
use super::interrupt;
use super::runner::{StartRecord, StepContext, StepOutcome, StepRunner};
use crate::inventory::GuestState;
use crate::plan::Plan;
use crate::schedule::{Step, StepKind};
use crate::state::{Backend, GuestRecord, JournalEntry, State, StepStatus, write_recovery};

/// How to run a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// Steps running at once, over all hosts (at least 1).
    pub parallelism: usize,
    /// Migrations (MIGRATE_GUEST) into one host at once (at least 1).
    pub max_inbound_per_host: usize,
    /// Migrations out of one host at once (at least 1).
    pub max_outbound_per_host: usize,
    /// After a failure, let steps that do not depend on it finish.
    pub keep_going: bool,
    /// Only the steps of moves of these guests (`None` = all).
    pub targets: Option<BTreeSet<String>>,
    /// Only this one step (its dependencies must be done already).
    pub single_step: Option<String>,
    /// The id journal entries carry; `None` = [`plan_id`] of the plan. Two plans made from
    /// the same inputs within a second have the same content id, so an apply session gives
    /// each plan it starts an id of its own.
    pub journal_id: Option<String>,
    /// Rolling maintenance (`--stop-after-phase N`): the steps of later phases are held, not
    /// run; the plan stays unfinished and the next apply continues with phase N+1.
    pub stop_after_phase: Option<usize>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            parallelism: 4,
            max_inbound_per_host: 2,
            max_outbound_per_host: 2,
            keep_going: false,
            targets: None,
            single_step: None,
            journal_id: None,
            stop_after_phase: None,
        }
    }
}

/// How the run went, per step id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub plan_id: String,
    pub done: Vec<String>,
    /// Step id and error message.
    pub failed: Vec<(String, String)>,
    /// Steps not run, with the reason (journaled earlier, blocked by a failure, not selected).
    pub skipped: Vec<(String, String)>,
    /// Steps left untouched because the run stopped after a failure.
    pub not_run: Vec<String>,
    /// An interrupt (Ctrl-C, SIGTERM) stopped the apply from starting further steps.
    pub interrupted: bool,
    /// Steps of rolling-maintenance phases after `--stop-after-phase N`, left for the next
    /// apply (not a failure).
    pub held: Vec<String>,
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.not_run.is_empty() && !self.interrupted
    }
}

/// Identifies a plan: the first 16 hex digits of the sha256 of its JSON.
pub fn plan_id(plan: &Plan) -> String {
    let json = serde_json::to_vec(plan).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// Where a step is in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
    /// Filtered out by `targets` / `single_step`.
    Unselected,
    /// A later phase than `stop_after_phase`: left for the next apply.
    Held,
}

/// Messages from step tasks to the executor loop.
enum Msg {
    /// The step holds its permits; the loop journals it as running (with what it read before
    /// starting) and then acknowledges.
    Started(usize, StartRecord, oneshot::Sender<bool>),
    Progress(usize, MigrationProgress),
    /// The loop refused the start (stopping): the step goes back to pending.
    NotStarted(usize),
    Finished(usize, Result<StepOutcome, ApplyError>, u64),
}

/// The plan's steps as a graph, edge dependency → dependent.
struct StepGraph {
    graph: DiGraph<usize, ()>,
    nodes: Vec<NodeIndex>,
    /// Step indices in the order ready steps are started (and so queue for the limits): by
    /// predicted start when the plan carries a prediction, which is the order the planner's list
    /// scheduler chose (critical path first); plan order otherwise.
    order: Vec<usize>,
}

impl StepGraph {
    fn build(plan: &Plan) -> Result<StepGraph, ApplyError> {
        let steps = &plan.steps;
        let mut graph = DiGraph::new();
        let nodes: Vec<_> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        let mut index = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            if index.insert(s.id.as_str(), i).is_some() {
                return Err(invalid(&s.id, "the plan has two steps with this id".into()));
            }
            if s.move_index >= plan.moves.len() {
                return Err(invalid(
                    &s.id,
                    format!(
                        "refers to move {}, but the plan has {}",
                        s.move_index,
                        plan.moves.len()
                    ),
                ));
            }
        }
        for (i, s) in steps.iter().enumerate() {
            for dep in &s.depends_on {
                let &d = index.get(dep.as_str()).ok_or_else(|| {
                    invalid(
                        &s.id,
                        format!("depends on `{dep}`, which is not in the plan"),
                    )
                })?;
                graph.add_edge(nodes[d], nodes[i], ());
            }
        }
        if let Err(cycle) = petgraph::algo::toposort(&graph, None) {
            let at = &steps[graph[cycle.node_id()]].id;
            return Err(invalid(
                at,
                "the step graph has a cycle through this step".into(),
            ));
        }
        let mut order: Vec<usize> = (0..steps.len()).collect();
        if let Some(timing) = &plan.timing {
            let start: HashMap<&str, f64> = timing
                .steps
                .iter()
                .map(|t| (t.step.as_str(), t.start_s))
                .collect();
            let at = |i: usize| {
                start
                    .get(steps[i].id.as_str())
                    .copied()
                    .unwrap_or(f64::INFINITY)
            };
            order.sort_by(|&a, &b| at(a).total_cmp(&at(b)).then(a.cmp(&b)));
        }
        Ok(StepGraph {
            graph,
            nodes,
            order,
        })
    }

    fn deps(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(self.nodes[i], Direction::Incoming)
            .map(|n| self.graph[n])
    }
}

fn invalid(step: &str, message: String) -> ApplyError {
    ApplyError::Unsupported {
        step: step.to_string(),
        message,
    }
}

/// Bounds on concurrency: one global semaphore, one per host and direction.
struct Limits {
    global: Arc<Semaphore>,
    outbound: HashMap<String, Arc<Semaphore>>,
    inbound: HashMap<String, Arc<Semaphore>>,
}

impl Limits {
    fn new(steps: &[Step], opts: &ExecOptions) -> Limits {
        let mut outbound = HashMap::new();
        let mut inbound = HashMap::new();
        for s in steps.iter().filter(|s| s.kind == StepKind::MigrateGuest) {
            outbound
                .entry(s.from.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(opts.max_outbound_per_host.max(1))));
            inbound
                .entry(s.to.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(opts.max_inbound_per_host.max(1))));
        }
        Limits {
            global: Arc::new(Semaphore::new(opts.parallelism.max(1))),
            outbound,
            inbound,
        }
    }

    /// The semaphores a step needs, in the one order every step takes them (host limits
    /// first, so that a step waiting for a busy host does not hold a global slot).
    fn for_step(&self, step: &Step) -> Vec<Arc<Semaphore>> {
        let mut needed = Vec::new();
        if step.kind == StepKind::MigrateGuest {
            needed.extend(self.outbound.get(&step.from).cloned());
            needed.extend(self.inbound.get(&step.to).cloned());
        }
        needed.push(self.global.clone());
        needed
    }
}

/// The mutable side of a run: statuses, the journal, the report, events.
struct Run<'a> {
    plan: &'a Plan,
    plan_id: String,
    store: &'a dyn Backend,
    state: &'a mut State,
    nodes: Vec<Node>,
    report: ApplyReport,
    on_event: &'a mut (dyn FnMut(Event) + Send),
    save_error: Option<ApplyError>,
}

impl Run<'_> {
    fn step(&self, i: usize) -> &Step {
        &self.plan.steps[i]
    }

    fn entry(&self, i: usize, status: StepStatus) -> JournalEntry {
        let s = self.step(i);
        JournalEntry {
            plan_id: self.plan_id.clone(),
            step_id: s.id.clone(),
            kind: s.kind,
            guest: s.guest.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
            status,
            started_at: None,
            finished_at: None,
            error: None,
            boot_id: None,
            once_marker: None,
        }
    }

    /// Saves the state; the first failure is kept and stops the run.
    fn save(&mut self) -> bool {
        if self.save_error.is_some() {
            return false;
        }
        match self.store.save(self.state) {
            Ok(()) => true,
            Err(e) => {
                self.save_error = Some(e.into());
                false
            }
        }
    }

    fn skip(&mut self, i: usize, reason: String, journal: bool) {
        self.nodes[i] = Node::Skipped;
        if journal {
            let mut e = self.entry(i, StepStatus::Skipped);
            e.error = Some(reason.clone());
            self.state.upsert(e);
            self.save();
        }
        let s = self.step(i);
        let event = Event::Skip {
            step: s.id.clone(),
            guest: s.guest.clone(),
            reason: reason.clone(),
        };
        self.report.skipped.push((s.id.clone(), reason));
        (self.on_event)(event);
    }

    fn started(&mut self, i: usize, record: StartRecord) -> bool {
        let mut e = self.entry(i, StepStatus::Running);
        e.started_at = Some(Utc::now());
        record.journal_in(&mut e);
        self.state.upsert(e);
        if !self.save() {
            return false;
        }
        let s = self.step(i);
        let event = Event::Start {
            step: s.id.clone(),
            kind: s.kind,
            guest: s.guest.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
        };
        (self.on_event)(event);
        true
    }

    fn finished(&mut self, i: usize, result: Result<StepOutcome, ApplyError>, elapsed_ms: u64) {
        let (step_id, guest) = (self.step(i).id.clone(), self.step(i).guest.clone());
        let (started_at, start) = self
            .state
            .entry(&self.plan_id, &step_id)
            .map_or((None, StartRecord::default()), |e| {
                (e.started_at, StartRecord::journaled(e))
            });
        match result {
            Ok(outcome) => {
                self.nodes[i] = Node::Done;
                let mut e = self.entry(i, StepStatus::Done);
                (e.started_at, e.finished_at) = (started_at, Some(Utc::now()));
                start.journal_in(&mut e);
                self.state.upsert(e);
                self.record_topology(i, &outcome);
                self.save();
                self.report.done.push(step_id.clone());
                (self.on_event)(Event::Done {
                    step: step_id,
                    guest,
                    note: outcome.note,
                    elapsed_ms,
                });
            }
            Err(error) => {
                self.nodes[i] = Node::Failed;
                let message = error.to_string();
                let mut e = self.entry(i, StepStatus::Failed);
                (e.started_at, e.finished_at, e.error) =
                    (started_at, Some(Utc::now()), Some(message.clone()));
                start.journal_in(&mut e);
                self.state.upsert(e);
                self.save();
                self.report.failed.push((step_id.clone(), message.clone()));
                (self.on_event)(Event::Error {
                    step: step_id,
                    guest,
                    message,
                });
            }
        }
    }

    /// Keeps the state's topology in step with what the step changed.
    fn record_topology(&mut self, i: usize, outcome: &StepOutcome) {
        record_topology(self.state, &self.plan.steps[i], outcome);
    }
}

/// Records in `state.topology` where `step` (just done) left its guest, and what it learned
/// about the guest's definition and its detached SR-IOV interfaces.
pub(crate) fn record_topology(state: &mut State, s: &Step, outcome: &StepOutcome) {
    let placed = match s.kind {
        StepKind::StopGuest => Some((s.from.clone(), Some(GuestState::ShutOff))),
        StepKind::DetachInterfaces => Some((s.from.clone(), None)),
        StepKind::MigrateGuest => Some((s.to.clone(), outcome.guest_state)),
        StepKind::AttachInterfaces => Some((s.to.clone(), None)),
        StepKind::StartupGuest => Some((s.to.clone(), Some(GuestState::Running))),
        StepKind::CreateBridges
        | StepKind::DetachVolumes
        | StepKind::AttachVolumes
        | StepKind::HostCommand
        | StepKind::WaitHost => None,
    };
    let Some((host, known_state)) = placed else {
        return;
    };
    let previous = state.topology.get(&s.guest);
    let record = GuestRecord {
        host,
        state: known_state
            .or(previous.map(|p| p.state))
            .unwrap_or(GuestState::Unknown),
        last_definition_xml: outcome
            .definition_xml
            .clone()
            .or_else(|| previous.and_then(|p| p.last_definition_xml.clone())),
        detached_interfaces: outcome
            .detached_interfaces
            .clone()
            .or_else(|| previous.map(|p| p.detached_interfaces.clone()))
            .unwrap_or_default(),
    };
    state.topology.insert(s.guest.clone(), record);
}

/// Which steps this run may execute.
fn selection(plan: &Plan, opts: &ExecOptions) -> Result<Vec<bool>, ApplyError> {
    if let Some(id) = &opts.single_step
        && !plan.steps.iter().any(|s| &s.id == id)
    {
        return Err(invalid(id, "no step with this id in the plan".into()));
    }
    Ok(plan
        .steps
        .iter()
        .map(|s| {
            opts.targets.as_ref().is_none_or(|t| t.contains(&s.guest))
                && opts.single_step.as_ref().is_none_or(|id| id == &s.id)
        })
        .collect())
}

/// Runs `plan` with `runner`, journaling into `state` (saved to `store` after every
/// transition). Step failures are in the report; an `Err` means the run could not proceed
/// (invalid plan, state not writable).
pub async fn execute<R: StepRunner + 'static>(
    plan: &Plan,
    runner: Arc<R>,
    store: &dyn Backend,
    state: &mut State,
    opts: &ExecOptions,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<ApplyReport, ApplyError> {
    let began = Instant::now();
    let graph = StepGraph::build(plan)?;
    let selected = selection(plan, opts)?;
    let limits = Limits::new(&plan.steps, opts);
    let id = opts.journal_id.clone().unwrap_or_else(|| plan_id(plan));
    let mut run = Run {
        plan,
        plan_id: id.clone(),
        store,
        report: ApplyReport {
            plan_id: id,
            ..ApplyReport::default()
        },
        nodes: vec![Node::Pending; plan.steps.len()],
        state,
        on_event,
        save_error: None,
    };
    for (i, &chosen) in selected.iter().enumerate() {
        let journaled_done = run
            .state
            .entry(&run.plan_id, &plan.steps[i].id)
            .map(|e| e.status)
            == Some(StepStatus::Done);
        if journaled_done {
            run.nodes[i] = Node::Done;
            if chosen {
                run.skip(i, "done in an earlier run".into(), false);
                run.nodes[i] = Node::Done;
            }
        } else if !chosen {
            run.nodes[i] = Node::Unselected;
        } else if let Some(last) = opts.stop_after_phase
            && plan.phase_of(&plan.steps[i].id).is_some_and(|p| p > last)
        {
            run.nodes[i] = Node::Held;
        }
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut running = 0usize;
    let mut stop = false;
    loop {
        // An interrupt starts nothing new; running steps finish and are journaled.
        stop |= interrupt::stopping();
        if !stop && run.save_error.is_none() {
            running += schedule_ready(&mut run, &graph, &limits, &runner, &tx);
        }
        if running == 0 {
            break;
        }
        let Some(msg) = rx.recv().await else { break };
        match msg {
            Msg::Started(i, record, ack) => {
                stop |= interrupt::stopping();
                let ok = !stop && run.started(i, record);
                let _ = ack.send(ok);
            }
            Msg::Progress(i, progress) => {
                let s = run.step(i);
                let event = Event::Progress {
                    step: s.id.clone(),
                    guest: s.guest.clone(),
                    progress,
                };
                (run.on_event)(event);
            }
            Msg::NotStarted(i) => {
                running -= 1;
                run.nodes[i] = Node::Pending;
            }
            Msg::Finished(i, result, elapsed_ms) => {
                running -= 1;
                let failed = result.is_err();
                run.finished(i, result, elapsed_ms);
                stop |= failed && !opts.keep_going;
            }
        }
    }

    for i in 0..plan.steps.len() {
        match run.nodes[i] {
            Node::Pending | Node::Running => run.report.not_run.push(plan.steps[i].id.clone()),
            Node::Held => run.report.held.push(plan.steps[i].id.clone()),
            _ => {}
        }
    }
    if let Some(cause) = run.save_error.take() {
        // Nothing new started since the write failed, and every running step has settled: its
        // outcome is in `state`. Keep it where the next apply finds it.
        let kept = keep_after_failed_write(store, run.state, &cause);
        return Err(ApplyError::StateInterrupted {
            cause: Box::new(cause),
            kept,
            done: run.report.done.len(),
            not_run: run.report.not_run.len(),
        });
    }
    run.report.interrupted = interrupt::stopping();
    let r = &run.report;
    let summary = Event::Summary {
        plan_id: r.plan_id.clone(),
        done: r.done.len(),
        failed: r.failed.len(),
        skipped: r.skipped.len(),
        not_run: r.not_run.len(),
        elapsed_ms: began.elapsed().as_millis() as u64,
    };
    (run.on_event)(summary);
    Ok(run.report)
}

/// Where the outcome of a run whose state write failed went.
#[derive(Debug)]
pub enum Kept {
    /// A last write (the backend reconnected) journaled it.
    Journaled,
    /// Written to this recovery file, which the next apply replays.
    RecoveryFile(std::path::PathBuf),
    /// Neither worked.
    Lost(String),
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::Journaled => write!(
                f,
                "their outcome was journaled once the state backend answered again"
            ),
            Kept::RecoveryFile(path) => write!(
                f,
                "the state was written to the recovery file {}, which the next `berth apply` replays first",
                path.display()
            ),
            Kept::Lost(why) => write!(
                f,
                "the state could not be kept anywhere ({why}): check where the guests are before going on"
            ),
        }
    }
}

/// After a failed write: one more try (the backend reconnects), else the recovery file.
fn keep_after_failed_write(store: &dyn Backend, state: &mut State, cause: &ApplyError) -> Kept {
    if store.save(state).is_ok() {
        return Kept::Journaled;
    }
    match write_recovery(store, state, store.lock_id().as_deref(), &cause.to_string()) {
        Ok(path) => Kept::RecoveryFile(path),
        Err(e) => Kept::Lost(e.to_string()),
    }
}

/// Marks blocked steps skipped and starts every step whose dependencies are all done.
/// Returns how many steps it started.
fn schedule_ready<R: StepRunner + 'static>(
    run: &mut Run<'_>,
    graph: &StepGraph,
    limits: &Limits,
    runner: &Arc<R>,
    tx: &mpsc::UnboundedSender<Msg>,
) -> usize {
    let mut started = 0;
    // Skipping one step can block another further down: repeat until nothing changes.
    let mut changed = true;
    while changed {
        changed = false;
        for &i in &graph.order {
            if run.nodes[i] != Node::Pending {
                continue;
            }
            let blocker = graph.deps(i).find(|&d| run.nodes[d] != Node::Done);
            match blocker.map(|d| (d, run.nodes[d])) {
                None => {
                    run.nodes[i] = Node::Running;
                    spawn_step(run, i, limits, runner, tx);
                    started += 1;
                }
                Some((d, Node::Failed | Node::Skipped)) => {
                    let reason = format!("depends on `{}`, which did not complete", run.step(d).id);
                    run.skip(i, reason, true);
                    changed = true;
                }
                Some((d, Node::Unselected)) => {
                    let reason = format!(
                        "depends on `{}`, which is not done and not selected",
                        run.step(d).id
                    );
                    run.skip(i, reason, true);
                    changed = true;
                }
                Some(_) => {}
            }
        }
    }
    started
}

fn spawn_step<R: StepRunner + 'static>(
    run: &Run<'_>,
    i: usize,
    limits: &Limits,
    runner: &Arc<R>,
    tx: &mpsc::UnboundedSender<Msg>,
) {
    let step = run.step(i).clone();
    let tx = tx.clone();
    // move_index was checked when the graph was built: there is a context.
    let Some(mut ctx) = StepContext::for_step(run.state, run.plan, &step) else {
        let _ = tx.send(Msg::Finished(
            i,
            Err(invalid(&step.id, "refers to a move the plan lacks".into())),
            0,
        ));
        return;
    };
    // This run journals the step as running only once it starts: a `running` entry now is an
    // earlier run's, killed while the step ran.
    let earlier = run.state.entry(&run.plan_id, &step.id);
    ctx.started_before = earlier.map(|e| e.status) == Some(StepStatus::Running);
    // A step an earlier apply started keeps what that apply journaled with its start.
    let kept = ctx
        .started_before
        .then(|| earlier.map(StartRecord::journaled).unwrap_or_default());
    if step.kind == StepKind::WaitHost {
        ctx.host_command_start = step
            .depends_on
            .iter()
            .filter_map(|d| run.state.entry(&run.plan_id, d))
            .find(|e| e.kind == StepKind::HostCommand)
            .map(StartRecord::journaled)
            .unwrap_or_default();
    }
    let semaphores = limits.for_step(&step);
    let runner = Arc::clone(runner);
    tokio::spawn(async move {
        let mut permits = Vec::new();
        for s in semaphores {
            // The semaphores are never closed, so acquiring only waits.
            if let Ok(p) = s.acquire_owned().await {
                permits.push(p);
            }
        }
        let record = match kept {
            Some(record) => Ok(record),
            None => {
                let (runner, s, c) = (Arc::clone(&runner), step.clone(), ctx.clone());
                tokio::task::spawn_blocking(move || {
                    runner.before_start(&s, &c).map_err(|e| e.in_step(&s.id))
                })
                .await
                .unwrap_or_else(|join| {
                    Err(invalid(
                        &step.id,
                        format!("the step's worker ended abnormally: {join}"),
                    ))
                })
            }
        };
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                drop(permits);
                let _ = tx.send(Msg::Finished(i, Err(e), 0));
                return;
            }
        };
        ctx.start = record.clone();
        let (ack_tx, ack_rx) = oneshot::channel();
        let _ = tx.send(Msg::Started(i, record, ack_tx));
        if !ack_rx.await.unwrap_or(false) {
            let _ = tx.send(Msg::NotStarted(i));
            return;
        }
        let began = Instant::now();
        let progress_tx = tx.clone();
        let id = step.id.clone();
        let result = tokio::task::spawn_blocking(move || {
            run_blocking(&*runner, &step, &ctx, &progress_tx, i)
        })
        .await
        .unwrap_or_else(|join| {
            Err(invalid(
                &id,
                format!("the step's worker ended abnormally: {join}"),
            ))
        });
        drop(permits);
        let _ = tx.send(Msg::Finished(i, result, began.elapsed().as_millis() as u64));
    });
}

/// The blocking part of a step: check reality, then act.
fn run_blocking(
    runner: &dyn StepRunner,
    step: &Step,
    ctx: &StepContext,
    tx: &mpsc::UnboundedSender<Msg>,
    i: usize,
) -> Result<StepOutcome, ApplyError> {
    let attempt = || {
        if runner.is_done(step, ctx)? {
            let note = if step.kind == StepKind::HostCommand {
                "started by an earlier apply that was killed while it ran: not run again (berth never runs a host command twice); WAIT_HOST checks that the host is back"
            } else {
                "already done"
            };
            return Ok(StepOutcome {
                note: Some(note.into()),
                ..StepOutcome::default()
            });
        }
        runner.run(step, ctx, &mut |p| {
            let _ = tx.send(Msg::Progress(i, p));
        })
    };
    attempt().map_err(|e| e.in_step(&step.id))
}

/// Step ids per status in the journal of one plan (for `berth state` and tests).
pub fn journal_statuses(state: &State, plan_id: &str) -> BTreeMap<String, StepStatus> {
    state
        .journal
        .iter()
        .filter(|e| e.plan_id == plan_id)
        .map(|e| (e.step_id.clone(), e.status))
        .collect()
}
