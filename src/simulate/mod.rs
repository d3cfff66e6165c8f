//! `berth simulate`: replays a plan on the duration model within the concurrency limits and
//! measures the result against lower bounds no schedule can beat.
//!
//! The model and limits are the plan's own (what it was predicted with); options replace them
//! to ask "what if": more steps at once, faster links. The replay is the list scheduling the
//! planner uses (critical path first), so an unchanged plan replays to its own prediction.

use serde::Serialize;

use crate::plan::Plan;
use crate::schedule::{self, Concurrency, DurationModel, LowerBound, ScheduleError, StepKind};

/// Replacements for the plan's model and limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub parallelism: Option<u32>,
    pub max_inbound_per_host: Option<u32>,
    pub max_outbound_per_host: Option<u32>,
    /// Every host's link, MiB/s.
    pub link_bandwidth_mib_s: Option<f64>,
}

/// The plan's steps could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the plan cannot be replayed: {0}")]
    Plan(#[from] ScheduleError),
}

/// What the replay found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub moves: usize,
    pub steps: usize,
    /// MIGRATE_GUEST steps (live and offline).
    pub migrations: usize,
    /// Live migrations, the ones that move memory over the links.
    pub live_migrations: usize,
    /// When the last step ends, seconds.
    pub makespan_s: f64,
    pub lower_bound: LowerBound,
    /// `makespan_s / lower_bound.overall_s` (1 when both are 0): how far from the best any
    /// order could do, at most.
    pub ratio: f64,
    /// What the plan itself predicted, when it carries a prediction.
    pub predicted_makespan_s: Option<f64>,
    pub concurrency: Concurrency,
    pub link_bandwidth_mib_s: f64,
    /// Whether the model came from the plan (else berth's defaults).
    pub model_from_plan: bool,
    /// Hosts a migration leaves or reaches, by name.
    pub hosts: Vec<HostReport>,
    /// The plan has errors: apply would refuse it.
    pub plan_errors: usize,
}

/// One host's migration link during the replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostReport {
    pub host: String,
    /// Time with a migration out of or into the host running, seconds.
    pub busy_s: f64,
    pub sent_mib: f64,
    pub received_mib: f64,
    pub migrations_out: usize,
    pub migrations_in: usize,
}

/// Replays `plan` (see the module docs).
pub fn simulate(plan: &Plan, opts: &Options) -> Result<Report, SimulateError> {
    let (mut model, mut concurrency) = match &plan.timing {
        Some(t) => (t.model.clone(), t.concurrency),
        None => (DurationModel::default(), Concurrency::default()),
    };
    if let Some(bw) = opts.link_bandwidth_mib_s {
        model.link_bandwidth_mib_s = bw;
        model.host_link_bandwidth_mib_s.clear();
    }
    concurrency.parallelism = opts.parallelism.unwrap_or(concurrency.parallelism).max(1);
    concurrency.max_inbound_per_host = opts
        .max_inbound_per_host
        .unwrap_or(concurrency.max_inbound_per_host)
        .max(1);
    concurrency.max_outbound_per_host = opts
        .max_outbound_per_host
        .unwrap_or(concurrency.max_outbound_per_host)
        .max(1);

    let priority_seed = plan.timing.as_ref().map_or(0, |t| t.priority_seed);
    let replay = schedule::replay(&plan.steps, &plan.moves, &model, concurrency, priority_seed)?;
    let migrations: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::MigrateGuest)
        .collect();
    let live = migrations
        .iter()
        .filter(|s| {
            plan.moves
                .get(s.move_index)
                .is_some_and(|m| m.mode == crate::config::MigrationMode::Live)
        })
        .count();
    let overall = replay.lower_bound.overall_s;
    let ratio = if overall > 0.0 {
        replay.makespan_s / overall
    } else {
        1.0
    };
    Ok(Report {
        // A rolling maintenance's host services are not moves.
        moves: plan.guest_moves().count(),
        steps: plan.steps.len(),
        migrations: migrations.len(),
        live_migrations: live,
        makespan_s: replay.makespan_s,
        lower_bound: replay.lower_bound,
        ratio,
        predicted_makespan_s: plan.timing.as_ref().map(|t| t.makespan_s),
        concurrency,
        link_bandwidth_mib_s: model.link_bandwidth_mib_s,
        model_from_plan: plan.timing.is_some(),
        hosts: replay
            .hosts
            .into_iter()
            .map(|h| HostReport {
                host: h.host,
                busy_s: h.busy_s,
                sent_mib: h.sent_mib,
                received_mib: h.received_mib,
                migrations_out: h.migrations_out,
                migrations_in: h.migrations_in,
            })
            .collect(),
        plan_errors: plan.errors.len(),
    })
}

/// The report as JSON (the [`Report`] fields).
pub fn report_json(report: &Report) -> String {
    // A struct of numbers, strings and lists always serializes.
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}

/// The report for a terminal.
pub fn report_text(r: &Report) -> String {
    let b = &r.lower_bound;
    let mut out = String::new();
    out.push_str(&format!(
        "Simulated {} steps of {} moves ({} migrations, {} live) with {} steps at once, {} migrations into and {} out of a host at once, links of {} MiB/s{}.\n\n",
        r.steps,
        r.moves,
        r.migrations,
        r.live_migrations,
        r.concurrency.parallelism,
        r.concurrency.max_inbound_per_host,
        r.concurrency.max_outbound_per_host,
        r.link_bandwidth_mib_s,
        if r.model_from_plan { "" } else { " (berth's default model: the plan carries none)" }
    ));
    out.push_str(&format!("  makespan          {}\n", seconds(r.makespan_s)));
    if let Some(p) = r.predicted_makespan_s {
        out.push_str(&format!("  plan predicted    {}\n", seconds(p)));
    }
    out.push_str(&format!(
        "  lower bound       {}   (makespan / bound = {:.3})\n",
        seconds(b.overall_s),
        r.ratio
    ));
    out.push_str(&format!(
        "    longest chain   {}\n",
        seconds(b.critical_path_s)
    ));
    let link_host = b
        .link_host
        .as_deref()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    out.push_str(&format!(
        "    busiest link    {}{link_host}\n",
        seconds(b.link_s)
    ));
    out.push_str(&format!(
        "    steps at once   {}\n",
        seconds(b.parallelism_s)
    ));
    out.push_str(&format!(
        "    host migrations {}\n",
        seconds(b.host_migrations_s)
    ));
    if b.budget_s > 0.0 {
        out.push_str(&format!("    budgets         {}\n", seconds(b.budget_s)));
    }
    if !r.hosts.is_empty() {
        out.push_str(
            "\n  HOST                              BUSY        SENT MiB  RECEIVED MiB  OUT  IN\n",
        );
        for h in &r.hosts {
            out.push_str(&format!(
                "  {:<32}  {:>10}  {:>8.0}  {:>12.0}  {:>3}  {:>2}\n",
                crate::render::clean(&h.host),
                seconds(h.busy_s),
                h.sent_mib,
                h.received_mib,
                h.migrations_out,
                h.migrations_in
            ));
        }
    }
    if r.plan_errors > 0 {
        out.push_str(&format!(
            "\nThe plan has {} error(s): apply would refuse it.\n",
            r.plan_errors
        ));
    }
    out
}

/// Seconds with one decimal, and the same as minutes when that reads better.
fn seconds(s: f64) -> String {
    // An empty plan's figures can come out as -0.0 (or a rounding hair below zero): never
    // print "-0.0 s" for "nothing to do".
    let s = if s.is_finite() && s > 0.0 { s } else { 0.0 };
    if s >= 120.0 {
        format!("{s:.1} s ({:.1} min)", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::sample_plan;

    #[test]
    fn an_unchanged_plan_replays_to_its_own_prediction() {
        let plan = sample_plan();
        let report = simulate(&plan, &Options::default()).unwrap();
        let predicted = plan.timing.as_ref().unwrap().makespan_s;
        assert!(
            (report.makespan_s - predicted).abs() < 1e-3,
            "{} vs {predicted}",
            report.makespan_s
        );
        assert!(report.makespan_s + 1e-9 >= report.lower_bound.overall_s);
        assert!(report.ratio >= 1.0 - 1e-9);
        assert_eq!(report.steps, plan.steps.len());
        assert!(report.model_from_plan);
    }

    #[test]
    fn one_step_at_a_time_is_the_sum_of_the_steps() {
        let plan = sample_plan();
        let serial = simulate(
            &plan,
            &Options {
                parallelism: Some(1),
                ..Options::default()
            },
        )
        .unwrap();
        let t = plan.timing.as_ref().unwrap();
        let sum: f64 = t.steps.iter().map(|s| s.duration_s).sum();
        // With one step at a time nothing shares a link: each step takes its time alone.
        assert!(
            (serial.makespan_s - sum).abs() < 1e-2,
            "{} vs {sum}",
            serial.makespan_s
        );
        assert!((serial.lower_bound.parallelism_s - serial.makespan_s).abs() < 1e-2);
        assert!((serial.ratio - 1.0).abs() < 1e-3);
    }

    #[test]
    fn zero_and_negative_zero_read_as_zero_seconds() {
        assert_eq!(seconds(-0.0), "0.0 s");
        assert_eq!(seconds(-1e-12), "0.0 s");
        assert_eq!(seconds(90.0), "90.0 s");
        assert_eq!(seconds(180.0), "180.0 s (3.0 min)");
    }

    #[test]
    fn text_and_json_show_makespan_bound_and_hosts() {
        let report = simulate(&sample_plan(), &Options::default()).unwrap();
        let text = report_text(&report);
        assert!(
            text.contains("makespan")
                && text.contains("lower bound")
                && text.contains("exa01adm01"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report_json(&report)).unwrap();
        assert_eq!(json["steps"], report.steps);
        assert!(json["lower_bound"]["overall_s"].as_f64().is_some());
        assert!(json["hosts"].as_array().is_some_and(|h| !h.is_empty()));
    }
}
