//! One apply from start to end, without any terminal: the state lock, the state, the libvirt
//! connections (reading and acting through the same ones), resuming an unfinished plan, running
//! a plan and writing es.xml back. The CLI (`berth apply`) drives it and adds the prompt and
//! the progress display; tests drive it in-process against libvirt's test driver.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;

use crate::config::{Config, ConfigError};
use crate::inventory::load::{self as inventory_load, Inventory};
use crate::inventory::{HostObservation, LibvirtError, observe_connection};
use crate::plan::{self, Plan};
use crate::schedule::Step;
use crate::state::{
    Backend, CreatedDirs, InProgress, LockGuard, LockInfo, State, StateError, StateStore,
};

use super::error::ApplyError;
use super::events::Event;
use super::executor::{ApplyReport, ExecOptions, execute, plan_id};
use super::libvirt_runner::LibvirtRunner;
use super::runner::{StartRecord, StepContext, StepOutcome, StepRunner};
use super::writeback::{WriteBackTarget, WrittenBack, write_back};
use super::{freshness, preflight, resume, setup};
use crate::apply::hypervisor::MigrationProgress;

/// Opens the local state file at `path`, creating its directory (mode 0700) when missing; the
/// directories it created come back as a [`CreatedDirs`] (removed again when still empty).
pub fn open_store(path: &Path) -> Result<(StateStore, CreatedDirs), StateError> {
    StateStore::open_creating(path)
}

/// A runner shared behind a trait object (the executor wants a sized runner type).
struct Shared(Arc<dyn StepRunner>);

impl StepRunner for Shared {
    fn before_start(&self, step: &Step, ctx: &StepContext) -> Result<StartRecord, ApplyError> {
        self.0.before_start(step, ctx)
    }
    fn is_done(&self, step: &Step, ctx: &StepContext) -> Result<bool, ApplyError> {
        self.0.is_done(step, ctx)
    }
    fn run(
        &self,
        step: &Step,
        ctx: &StepContext,
        progress: &mut dyn FnMut(MigrationProgress),
    ) -> Result<StepOutcome, ApplyError> {
        self.0.run(step, ctx, progress)
    }
}

/// How one run of a plan ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: ApplyReport,
    /// Every step in the plan's scope is done: the plan is no longer in progress.
    pub finished: bool,
    /// The es.xml write-back: what was written (`Ok(None)`: nothing to change).
    pub write_back: Result<Option<WrittenBack>, ApplyError>,
}

/// What abandoning an unfinished plan did.
#[derive(Debug, Default)]
pub struct Abandoned {
    pub plan_id: String,
    /// Guests the plan shut down and did not start again.
    pub left_stopped: Vec<String>,
    /// Guests whose SR-IOV interfaces the plan took out and did not give back (they wait in
    /// berth's metadata element of the guest's definition).
    pub left_detached: Vec<String>,
    pub write_back: Option<WrittenBack>,
}

/// How an apply takes the state lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// `false` (`-lock=false`): no lock at all; two applies can then overwrite each other.
    pub lock: bool,
    /// How long to wait for a holder to let go (`-lock-timeout`; zero: refuse at once).
    pub timeout: std::time::Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            lock: true,
            timeout: std::time::Duration::ZERO,
        }
    }
}

pub struct Session {
    cfg: Config,
    store: Box<dyn Backend>,
    /// `None` with `-lock=false`.
    lock: Option<LockGuard>,
    /// What opening did before anything else (a recovery file replayed), for the user.
    notes: Vec<String>,
    state: State,
    libvirt: Arc<LibvirtRunner>,
    runner: Arc<dyn StepRunner>,
    /// Declared after `lock`, so dropped after it: the state directories this session
    /// created go again when the apply wrote nothing (refused before its first step).
    _created: CreatedDirs,
}

impl Session {
    /// Takes the state lock (operation `apply`), loads the state and prepares one libvirt
    /// connection per host (opened on first use). `runtime` runs the SSH side.
    pub fn open(cfg: Config, runtime: tokio::runtime::Handle) -> Result<Session, ApplyError> {
        Session::open_locking(cfg, runtime, LockOptions::default())
    }

    /// [`Session::open`] with the lock taken as `lock` says.
    pub fn open_locking(
        cfg: Config,
        runtime: tokio::runtime::Handle,
        lock: LockOptions,
    ) -> Result<Session, ApplyError> {
        let (es, _, _) = inventory_load::read_es_xml(&plan::build::inventory_spec(&cfg))?;
        let libvirt = LibvirtRunner::new(
            setup::host_access(&cfg, &es),
            setup::runner_settings(&cfg, &es),
            runtime,
        );
        Session::open_with_lock(cfg, Arc::new(libvirt), lock)
    }

    /// [`Session::open`] with given connections (tests reuse one process's test-driver hosts).
    pub fn open_with(cfg: Config, libvirt: Arc<LibvirtRunner>) -> Result<Session, ApplyError> {
        Session::open_with_lock(cfg, libvirt, LockOptions::default())
    }

    /// [`Session::open_with`] with the lock taken as `lock` says. Under the lock, a recovery
    /// file an earlier apply left (it lost the state backend) is replayed first.
    pub fn open_with_lock(
        cfg: Config,
        libvirt: Arc<LibvirtRunner>,
        lock: LockOptions,
    ) -> Result<Session, ApplyError> {
        let (store, created) = crate::state::open(&cfg.state)?;
        let lock = if lock.lock {
            Some(store.lock("apply", lock.timeout)?)
        } else {
            None
        };
        let notes: Vec<String> = crate::state::replay_recovery(&*store)?
            .into_iter()
            .collect();
        let state = store.load()?.unwrap_or_default();
        let runner: Arc<dyn StepRunner> = libvirt.clone();
        Ok(Session {
            cfg,
            store,
            lock,
            notes,
            state,
            libvirt,
            runner,
            _created: created,
        })
    }

    /// Acts through `runner` instead of the libvirt runner (reading still goes through the
    /// libvirt connections).
    pub fn set_runner(&mut self, runner: Arc<dyn StepRunner>) {
        self.runner = runner;
    }

    pub fn libvirt(&self) -> Arc<LibvirtRunner> {
        Arc::clone(&self.libvirt)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Where the state lives.
    pub fn store(&self) -> &dyn Backend {
        &*self.store
    }

    /// The lock this session holds (`None` with `-lock=false`).
    pub fn lock_info(&self) -> Option<&LockInfo> {
        self.lock.as_ref().map(LockGuard::info)
    }

    /// What opening the session did that the user should know (a recovery file replayed).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The plan an earlier apply left unfinished.
    pub fn unfinished(&self) -> Option<&InProgress> {
        self.state.in_progress.as_ref()
    }

    /// The last journal entry of an earlier apply of `plan` (the same content: journal ids
    /// start with its [`plan_id`]), when there was one. A saved plan is applied once.
    pub fn applied_before(&self, plan: &Plan) -> Option<&crate::state::JournalEntry> {
        let prefix = format!("{}-", plan_id(plan));
        self.state
            .journal
            .iter()
            .rev()
            .find(|e| e.plan_id.starts_with(&prefix))
    }

    /// Reads es.xml and every host through this session's libvirt connections, and, when the
    /// configuration asks for them, the hosts' facts over SSH (what planning needs). Blocking.
    pub fn read_inventory(&self) -> Result<Inventory, ApplyError> {
        let mut inv = self.read_placement()?;
        plan::build::gather_facts(&self.cfg, &mut inv)?;
        Ok(inv)
    }

    /// es.xml and every host through this session's libvirt connections, without SSH facts:
    /// where the guests are, which is all that writing es.xml back needs (facts would cost an
    /// SSH handshake per host for nothing). Blocking.
    fn read_placement(&self) -> Result<Inventory, ApplyError> {
        let libvirt = &self.libvirt;
        let observe = |host: &str, uri: &str| -> Result<HostObservation, LibvirtError> {
            let h = libvirt.hypervisor(host).map_err(|e| LibvirtError {
                host: host.to_string(),
                uri: uri.to_string(),
                action: "connect".into(),
                message: e.to_string(),
            })?;
            observe_connection(host, h.uri(), h.connection())
        };
        Ok(inventory_load::load_with(
            &plan::build::inventory_spec(&self.cfg),
            &observe,
        )?)
    }

    /// A plan made now from the configuration and `inv`.
    pub fn make_plan(&self, inv: &Inventory) -> Result<Plan, ConfigError> {
        plan::build::build(&self.cfg, inv, crate::state::history::history(&self.cfg))
    }

    /// Why the saved plan may not be applied now (empty: it may). The reference is a plan made
    /// now from the same inputs and the intents the saved plan records: the room on every host,
    /// and the moves and steps, must be the same.
    pub fn stale_reasons(&self, saved: &Plan, inv: &Inventory) -> Vec<String> {
        let cfg = self.cfg.clone().with_command_line(&saved.intents);
        match plan::build::build(&cfg, inv, crate::state::history::history(&cfg)) {
            Ok(now) => freshness::stale_reasons(saved, &now),
            Err(e) => {
                let mut reasons = freshness::fingerprint_changes(
                    &saved.fingerprints,
                    &plan::build::fingerprints(&self.cfg, inv),
                );
                reasons.push(format!(
                    "the configuration with the plan's intents no longer plans: {}",
                    e.to_string().lines().next().unwrap_or_default()
                ));
                reasons
            }
        }
    }

    /// Preflight (see [`super::preflight`]): every problem that would stop `steps` of `plan`
    /// before they finish, static and through the connections (libvirt, SSH). Empty: go.
    /// Blocking.
    pub fn preflight(&self, plan: &Plan, steps: &[&Step]) -> Vec<String> {
        let mut problems = preflight::static_problems(&self.cfg, plan, steps);
        problems.extend(self.libvirt.preflight(&preflight::Needs::of(plan, steps)));
        problems
    }

    /// Finishes migrations an interrupted apply left half-way (guest defined on both hosts).
    /// Blocking.
    pub fn settle(&mut self) -> Result<Vec<String>, ApplyError> {
        let Some(u) = self.state.in_progress.clone() else {
            return Ok(Vec::new());
        };
        let notes = resume::settle(&mut self.state, &u, &self.libvirt)?;
        Ok(notes)
    }

    /// Why the unfinished plan cannot be continued against `inv` (empty: it can).
    pub fn resume_blockers(&self, inv: &Inventory) -> Vec<String> {
        match &self.state.in_progress {
            Some(u) => resume::blockers(&self.state, u, &self.cfg, inv),
            None => Vec::new(),
        }
    }

    /// Drops the unfinished plan: closes its running journal entries against reality, writes
    /// es.xml for its moves that were carried out, and forgets it. Blocking.
    pub fn abandon(&mut self) -> Result<Abandoned, ApplyError> {
        let Some(u) = self.state.in_progress.clone() else {
            return Ok(Abandoned::default());
        };
        let left_stopped = resume::close_running(&mut self.state, &u, &*self.runner)?;
        let left_detached = resume::left_detached(&self.state, &u);
        let inv = self.read_placement()?;
        let completed = resume::completed_moves(&self.state, &u.plan_id, &u.plan);
        let written = write_back(
            &self.write_back_target(&u),
            &inv,
            &u.plan,
            &completed,
            false,
        )?;
        self.state.in_progress = None;
        self.store.save(&mut self.state)?;
        Ok(Abandoned {
            plan_id: u.plan_id,
            left_stopped,
            left_detached,
            write_back: written,
        })
    }

    fn write_back_target<'a>(&'a self, u: &'a InProgress) -> WriteBackTarget<'a> {
        WriteBackTarget {
            es_xml: &self.cfg.inventory.es_xml.value,
            out: self.cfg.inventory.es_xml_out.as_deref(),
            earlier_backup: u.es_xml_backup.as_deref(),
        }
    }

    /// Makes `plan` (limited to the moves of `targets`) the plan in progress, saved before
    /// any step runs, under a journal id of its own (its content id and a random suffix).
    /// Keeps an unfinished plan with the same content as it is.
    pub fn begin(
        &mut self,
        plan: Plan,
        targets: Option<BTreeSet<String>>,
    ) -> Result<(), ApplyError> {
        let content = plan_id(&plan);
        if let Some(u) = &self.state.in_progress {
            if plan_id(&u.plan) == content {
                return Ok(());
            }
            return Err(ApplyError::Refused(format!(
                "plan {} is still in progress; finish it (`berth apply`) or drop it (`berth apply -replan`) first",
                u.plan_id
            )));
        }
        let id = format!(
            "{content}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.state.in_progress = Some(InProgress {
            plan_id: id,
            plan,
            targets,
            started_at: Utc::now(),
            es_xml_backup: None,
        });
        self.store.save(&mut self.state)?;
        Ok(())
    }

    /// Runs the plan in progress with `opts` (its `targets` are set from the plan's scope
    /// when `opts` has none), then writes es.xml back for the moves carried out. The plan
    /// stays in progress until every step of its scope is done.
    pub async fn run(
        &mut self,
        opts: &ExecOptions,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<RunOutcome, ApplyError> {
        let u =
            self.state.in_progress.clone().ok_or_else(|| {
                ApplyError::Refused("no plan is in progress; nothing to run".into())
            })?;
        let mut opts = opts.clone();
        if opts.targets.is_none() {
            opts.targets = u.targets.clone();
        }
        opts.journal_id = Some(u.plan_id.clone());
        let runner = Arc::new(Shared(Arc::clone(&self.runner)));
        let report = execute(
            &u.plan,
            runner,
            &*self.store,
            &mut self.state,
            &opts,
            on_event,
        )
        .await?;
        record_serviced(&mut self.state, &u);
        let finished = resume::unfinished_steps(&self.state, &u).is_empty();
        let write_back = self.write_back_after_run(&u, finished);
        if finished && write_back.is_ok() {
            self.state.in_progress = None;
        } else if let (Some(current), Ok(Some(w))) = (self.state.in_progress.as_mut(), &write_back)
        {
            current.es_xml_backup = current.es_xml_backup.take().or(w.backup.clone());
        }
        self.store.save(&mut self.state)?;
        Ok(RunOutcome {
            report,
            finished,
            write_back,
        })
    }

    fn write_back_after_run(
        &self,
        u: &InProgress,
        finished: bool,
    ) -> Result<Option<WrittenBack>, ApplyError> {
        let completed = resume::completed_moves(&self.state, &u.plan_id, &u.plan);
        if completed.is_empty() {
            return Ok(None);
        }
        let inv = self.read_placement()?;
        let all_done = finished && completed.len() == u.plan.moves.len();
        write_back(
            &self.write_back_target(u),
            &inv,
            &u.plan,
            &completed,
            all_done,
        )
    }
}

/// Records each host whose rolling-maintenance phase of `u` is now done (every step), once:
/// the next plan of the same `rolling_maintenance` block does not service it again.
fn record_serviced(state: &mut State, u: &InProgress) {
    if u.plan.phases.is_empty() {
        return;
    }
    let statuses = super::executor::journal_statuses(state, &u.plan_id);
    for phase in &u.plan.phases {
        let done = phase
            .steps
            .iter()
            .all(|step| statuses.get(step) == Some(&crate::state::StepStatus::Done));
        let recorded = state
            .serviced
            .iter()
            .any(|s| s.plan_id == u.plan_id && s.host == phase.host);
        if done && !recorded {
            state.serviced.push(crate::diff::Serviced {
                host: phase.host.clone(),
                host_command: phase.host_command.clone(),
                run: phase.run.clone(),
                plan_id: u.plan_id.clone(),
                at: Utc::now(),
            });
        }
    }
}
