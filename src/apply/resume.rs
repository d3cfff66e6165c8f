//! Continuing an apply that did not finish (killed, crashed, or stopped by a failure).
//!
//! The state keeps the plan being applied ([`InProgress`]) until every step in its scope is
//! done. A later apply continues that plan rather than planning afresh, because a plan made
//! half-way through a move cannot see what the move still owes (a guest stopped by STOP_GUEST
//! looks like a guest that was always shut off, and would never be started again).
//!
//! Before continuing, reality is checked against what the journal says:
//! - [`settle`]: a MIGRATE_GUEST that was running when berth died may have left the guest
//!   defined on both hosts; it is finished first (the target's copy confirmed by UUID, then the
//!   source's undefined), so that a guest is never doubled.
//! - [`blockers`]: every guest must be where the journal allows (a moved guest on its source
//!   or target, any other guest where the plan saw it) and the configuration unchanged;
//!   otherwise the plan is not continued and each reason is named.
//!
//! Steps journaled `running` are re-checked by the executor (it asks reality before acting).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;

use crate::config::{Config, MigrationMode};
use crate::diff::Move;
use crate::inventory::DriftKind;
use crate::inventory::load::Inventory;
use crate::plan::Plan;
use crate::schedule::{Step, StepKind};
use crate::state::{InProgress, State, StepStatus};

use super::error::ApplyError;
use super::executor::record_topology;
use super::interrupted::{LiveSettlement, SettleLimits, settle_live};
use super::libvirt_runner::LibvirtRunner;
use super::runner::{StepContext, StepOutcome, StepRunner};

/// Whether `guest` is in the scope of an apply limited to `targets`.
pub fn in_scope(targets: &Option<BTreeSet<String>>, guest: &str) -> bool {
    targets.as_ref().is_none_or(|t| t.contains(guest))
}

fn status(state: &State, plan_id: &str, step: &Step) -> Option<StepStatus> {
    state.entry(plan_id, &step.id).map(|e| e.status)
}

/// Steps of the plan in its scope that are not journaled done.
pub fn unfinished_steps<'a>(state: &State, u: &'a InProgress) -> Vec<&'a Step> {
    u.plan
        .steps
        .iter()
        .filter(|s| {
            in_scope(&u.targets, &s.guest) && status(state, &u.plan_id, s) != Some(StepStatus::Done)
        })
        .collect()
}

/// The MIGRATE_GUEST step of move `index`.
fn migrate_step(plan: &Plan, index: usize) -> Option<&Step> {
    plan.steps
        .iter()
        .find(|s| s.move_index == index && s.kind == StepKind::MigrateGuest)
}

/// Moves (in plan order) whose MIGRATE_GUEST is journaled done: where es.xml must now place
/// their guests.
pub fn completed_moves(state: &State, plan_id: &str, plan: &Plan) -> Vec<Move> {
    plan.moves
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            migrate_step(plan, *i)
                .is_some_and(|s| status(state, plan_id, s) == Some(StepStatus::Done))
        })
        .map(|(_, m)| m.clone())
        .collect()
}

fn context(state: &State, plan: &Plan, step: &Step) -> Result<StepContext, ApplyError> {
    StepContext::for_step(state, plan, step).ok_or_else(|| ApplyError::Unsupported {
        step: step.id.clone(),
        message: format!(
            "refers to move {}, but the plan has {}",
            step.move_index,
            plan.moves.len()
        ),
    })
}

/// How long [`settle`] waits for a transient copy libvirt is tearing down after a live
/// migration whose client died to disappear (it takes well under a second once the
/// connections drop).
const LEFTOVER_WAIT: Duration = Duration::from_secs(60);

fn live_note(settled: LiveSettlement, step: &Step) -> Option<String> {
    let (guest, from, to) = (&step.guest, &step.from, &step.to);
    match settled {
        LiveSettlement::Untouched => None,
        LiveSettlement::ResumedOnSource => Some(format!(
            "{}: the interrupted live migration was cancelled by libvirt and left {guest} paused on {from}; resumed it there",
            step.id
        )),
        LiveSettlement::SourceCopyDiscarded => Some(format!(
            "{}: the interrupted live migration had finished on {to} ({guest} runs there) but left a paused copy on \
             {from}; removed that copy, as libvirt's confirmation would have",
            step.id
        )),
    }
}

/// Finishes MIGRATE_GUEST steps that were running when berth stopped: an offline move that
/// left its guest defined on both hosts is completed; a live one is settled by
/// [`settle_live`]. Returns what it did, one sentence each. Blocking.
pub fn settle(
    state: &mut State,
    u: &InProgress,
    libvirt: &LibvirtRunner,
) -> Result<Vec<String>, ApplyError> {
    let mut notes = Vec::new();
    let running: Vec<&Step> = u
        .plan
        .steps
        .iter()
        .filter(|s| {
            s.kind == StepKind::MigrateGuest
                && status(state, &u.plan_id, s) == Some(StepStatus::Running)
        })
        .collect();
    for step in running {
        let ctx = context(state, &u.plan, step)?;
        if ctx.mv.mode == MigrationMode::Live {
            // libvirt finishes (peer-to-peer) or cancels (client-managed) the migration on its
            // own, except for the one window it leaves to its client; settle_live follows it to
            // its end and closes that window; the executor then re-checks where the guest is.
            let (src, dst) = (
                libvirt.hypervisor(&step.from)?,
                libvirt.hypervisor(&step.to)?,
            );
            let limits = SettleLimits {
                stall_timeout: libvirt.settings().stall_timeout,
                leftover_wait: LEFTOVER_WAIT,
            };
            let settled = settle_live(&src, &dst, ctx.domain(), limits, &mut |_| {})
                .map_err(|e| e.in_step(&step.id))?;
            notes.extend(live_note(settled, step));
            continue;
        }
        let on_source = libvirt
            .hypervisor(&step.from)?
            .domain_state(ctx.domain())?
            .is_some();
        let on_target = libvirt
            .hypervisor(&step.to)?
            .domain_state(ctx.domain())?
            .is_some();
        if on_source && on_target {
            libvirt
                .run(step, &ctx, &mut |_| {})
                .map_err(|e| e.in_step(&step.id))?;
            notes.push(format!(
                "{}: the interrupted MIGRATE_GUEST had left {} defined on both {} and {}; finished it (undefined on {})",
                step.id, step.guest, step.from, step.to, step.from
            ));
        }
    }
    Ok(notes)
}

/// Ends the journal of an abandoned plan: steps still `running` are done if reality shows
/// their effect, failed otherwise. Returns the guests the plan stopped and did not start again.
pub fn close_running(
    state: &mut State,
    u: &InProgress,
    runner: &dyn StepRunner,
) -> Result<Vec<String>, ApplyError> {
    for step in &u.plan.steps {
        if status(state, &u.plan_id, step) != Some(StepStatus::Running) {
            continue;
        }
        let ctx = context(state, &u.plan, step)?;
        let done = runner
            .is_done(step, &ctx)
            .map_err(|e| e.in_step(&step.id))?;
        if let Some(entry) = state.entry_mut(&u.plan_id, &step.id) {
            entry.finished_at = Some(Utc::now());
            if done {
                entry.status = StepStatus::Done;
            } else {
                entry.status = StepStatus::Failed;
                entry.error =
                    Some("interrupted, and not done in reality; the plan was abandoned".into());
            }
        }
        if done {
            record_topology(state, step, &StepOutcome::default());
        }
    }
    let stopped: BTreeSet<String> = u
        .plan
        .steps
        .iter()
        .filter(|s| {
            s.kind == StepKind::StopGuest && status(state, &u.plan_id, s) == Some(StepStatus::Done)
        })
        .map(|s| s.guest.clone())
        .collect();
    let restarted = |guest: &String| {
        u.plan.steps.iter().any(|s| {
            s.kind == StepKind::StartupGuest
                && &s.guest == guest
                && status(state, &u.plan_id, s) == Some(StepStatus::Done)
        })
    };
    Ok(stopped.into_iter().filter(|g| !restarted(g)).collect())
}

/// Guests whose SR-IOV interfaces the plan took out (DETACH_INTERFACES done) and did not give
/// back (ATTACH_INTERFACES of the same move not done): their definitions still record them in
/// berth's metadata, and no later plan gives them back on its own.
pub fn left_detached(state: &State, u: &InProgress) -> Vec<String> {
    let done = |kind: StepKind, index: usize| {
        u.plan.steps.iter().any(|s| {
            s.kind == kind
                && s.move_index == index
                && status(state, &u.plan_id, s) == Some(StepStatus::Done)
        })
    };
    let guests: BTreeSet<String> = (0..u.plan.moves.len())
        .filter(|&i| done(StepKind::DetachInterfaces, i) && !done(StepKind::AttachInterfaces, i))
        .map(|i| u.plan.moves[i].guest.clone())
        .collect();
    guests.into_iter().collect()
}

/// Hosts a guest of the plan may be on now, by the journal: the source of its first move, then
/// each target whose MIGRATE_GUEST is done; a MIGRATE_GUEST not done allows both its ends.
fn allowed_hosts(state: &State, u: &InProgress, guest: &str) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    for (i, m) in u
        .plan
        .moves
        .iter()
        .enumerate()
        .filter(|(_, m)| m.guest == guest)
    {
        let done = migrate_step(&u.plan, i)
            .is_some_and(|s| status(state, &u.plan_id, s) == Some(StepStatus::Done));
        allowed.clear();
        if done {
            allowed.insert(m.to.clone());
        } else {
            allowed.insert(m.from.clone());
            allowed.insert(m.to.clone());
            break;
        }
    }
    allowed
}

/// Why the unfinished plan cannot be continued against `inv` (empty: it can).
pub fn blockers(state: &State, u: &InProgress, cfg: &Config, inv: &Inventory) -> Vec<String> {
    let mut reasons = Vec::new();
    let then = &u.plan.fingerprints;
    let now = cfg.sha256();
    if then.config_sha256 != now {
        reasons.push(format!(
            "the configuration (*.hcl) changed since the unfinished plan was made (sha256 {}…→{}…)",
            then.config_sha256.get(..12).unwrap_or(&then.config_sha256),
            now.get(..12).unwrap_or(&now)
        ));
    }
    let moved: BTreeSet<&str> = u.plan.moves.iter().map(|m| m.guest.as_str()).collect();
    let topo = &inv.topology;
    for (guest, seen) in &then.guests {
        let (seen_host, seen_state) = seen.split_once('/').unwrap_or((seen, ""));
        let Some(g) = topo.guests.get(guest) else {
            reasons.push(format!(
                "guest {guest} is not found on any host berth can read (the plan saw it on {seen_host})"
            ));
            continue;
        };
        if !topo
            .hosts
            .get(&g.host)
            .is_some_and(|h| h.domains.contains(guest))
        {
            reasons.push(format!(
                "guest {guest} is defined on no host berth can read (es.xml puts it on {})",
                g.host
            ));
        } else if moved.contains(guest.as_str()) {
            let allowed = allowed_hosts(state, u, guest);
            if !allowed.contains(&g.host) {
                let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
                reasons.push(format!(
                    "guest {guest} is now on {}, the unfinished plan left it on {}",
                    g.host,
                    allowed.join(" or ")
                ));
            }
        } else if g.host != seen_host {
            reasons.push(format!(
                "guest {guest} is now on {}, the plan saw it on {seen_host}",
                g.host
            ));
        } else if g.state.holds_resources() && g.state.to_string() != seen_state {
            reasons.push(format!(
                "guest {guest} is now {} on {}, the plan saw it {seen_state}",
                g.state, g.host
            ));
        }
    }
    for g in topo
        .guests
        .values()
        .filter(|g| !then.guests.contains_key(&g.name))
    {
        reasons.push(format!(
            "guest {} is new on {}, the plan did not know it",
            g.name, g.host
        ));
    }
    // es.xml may lag behind the journal (berth stopped before writing it back): drift about a
    // guest of the plan is expected; any other drift is not.
    for d in &inv.drift {
        let explained =
            d.kind == DriftKind::WrongHost && d.guest.as_deref().is_some_and(|g| moved.contains(g));
        if !explained {
            reasons.push(format!("drift: {}", d.message));
        }
    }
    reasons
}

/// Guests of the plan's moves with the count of their unfinished steps, for messages.
pub fn unfinished_by_guest(state: &State, u: &InProgress) -> BTreeMap<String, usize> {
    let mut by_guest = BTreeMap::new();
    for s in unfinished_steps(state, u) {
        *by_guest.entry(s.guest.clone()).or_insert(0) += 1;
    }
    by_guest
}
