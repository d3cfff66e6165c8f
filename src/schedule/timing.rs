//! The step graph on the duration model: jobs for the timeline, the critical-path priority,
//! lower bounds on any schedule, and the predicted [`Timing`] a plan carries. [`replay`] does
//! the same for a plan's steps (the simulator).

use std::collections::HashMap;

use crate::diff::Move;

use super::duration::{Concurrency, DurationModel, Work};
use super::error::ScheduleError;
use super::model::{GuestDowntime, LowerBound, Step, StepKind, StepTiming, Timing, WaveTiming};
use super::packing;
use super::timeline::{self, Job, Run, Setup};

/// What the timeline needs to know of one step.
pub(crate) struct Shape {
    pub kind: StepKind,
    pub move_index: usize,
    pub items: usize,
    pub deps: Vec<usize>,
}

/// Steps as timeline jobs, with their durations alone and the hosts they use.
pub(crate) struct Graph {
    pub jobs: Vec<Job>,
    /// Per job, its duration with nothing else running.
    pub alone: Vec<f64>,
    pub hosts: Vec<String>,
    /// Per host index, link bandwidth, MiB/s.
    pub bandwidth: Vec<f64>,
}

impl Graph {
    pub fn new(
        shapes: impl IntoIterator<Item = Shape>,
        moves: &[Move],
        model: &DurationModel,
    ) -> Graph {
        let mut graph = Graph {
            jobs: Vec::new(),
            alone: Vec::new(),
            hosts: Vec::new(),
            bandwidth: Vec::new(),
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut host = |name: &str, graph: &mut Graph| -> usize {
            if let Some(&i) = index.get(name) {
                return i;
            }
            graph.hosts.push(name.to_string());
            graph.bandwidth.push(model.link_bandwidth(name));
            index.insert(name.to_string(), graph.hosts.len() - 1);
            graph.hosts.len() - 1
        };
        for shape in shapes {
            let mv = &moves[shape.move_index];
            let work = model.work(shape.kind, mv, shape.items);
            let migration = (shape.kind == StepKind::MigrateGuest)
                .then(|| (host(&mv.from, &mut graph), host(&mv.to, &mut graph)));
            graph
                .alone
                .push(model.alone_seconds(work, &mv.from, &mv.to));
            graph.jobs.push(Job {
                deps: shape.deps,
                work,
                migration,
            });
        }
        graph
    }

    /// The longest remaining path of each job: list-scheduling priority.
    pub fn priority(&self) -> Vec<f64> {
        timeline::remaining_path(&self.jobs, &self.alone)
    }

    /// Runs the jobs without budgets (their edges are in the graph already), in the priority
    /// order `priority_seed` names (see `timeline::best_of`).
    pub fn run(&self, concurrency: Concurrency, priority_seed: u64) -> Run {
        let priority = self.priority();
        let setup = Setup {
            jobs: &self.jobs,
            bandwidth: &self.bandwidth,
            concurrency,
            priority: &priority,
            alone: &self.alone,
            jitter: priority_seed,
            intervals: &[],
            capacity: &[],
            needs: &[],
        };
        // Without budgets nothing waits on anything but running steps: a DAG always finishes.
        timeline::run(&setup).unwrap_or_else(|_| unreachable_run(self.jobs.len()))
    }

    /// Per job: the longest path before it starts (`head`) and after it ends (`tail`), every
    /// job at its duration alone. No schedule starts a job before its head or ends the whole
    /// graph less than its tail after the job.
    pub fn heads_and_tails(&self) -> (Vec<f64>, Vec<f64>) {
        let order = timeline::topological_order(&self.jobs);
        let mut head = vec![0.0; self.jobs.len()];
        for &j in &order {
            head[j] = self.jobs[j]
                .deps
                .iter()
                .map(|&d| head[d] + self.alone[d])
                .fold(0.0, f64::max);
        }
        let tail = self
            .priority()
            .iter()
            .zip(&self.alone)
            .map(|(path, alone)| path - alone)
            .collect();
        (head, tail)
    }

    /// Lower bounds on any schedule of these jobs under `concurrency` (see [`LowerBound`]);
    /// `budget_s` comes from the budgets, which the jobs do not know.
    ///
    /// A resource (a host's outbound slots, its inbound slots, its link) that jobs must use for
    /// `work` in all, at most `rate` at once, cannot start before the earliest head of those
    /// jobs nor finish later than the makespan minus their smallest tail, so the makespan is at
    /// least `min head + work / rate + min tail`.
    pub fn lower_bound(&self, concurrency: Concurrency, budget_s: f64) -> LowerBound {
        let critical_path_s = self.priority().into_iter().fold(0.0, f64::max);
        let (head, tail) = self.heads_and_tails();
        let item = |j: usize| packing::Item {
            duration: self.alone[j],
            head: head[j],
            tail: tail[j],
        };
        let all: Vec<packing::Item> = (0..self.jobs.len()).map(item).collect();
        let parallelism_s = (self.alone.iter().sum::<f64>()
            / f64::from(concurrency.parallelism.max(1)))
        .max(packing::bound(&all, concurrency.parallelism));
        let hosts = self.hosts.len();
        let mut slots_out = vec![Resource::default(); hosts];
        let mut slots_in = vec![Resource::default(); hosts];
        let mut link_out = vec![Resource::default(); hosts];
        let mut link_in = vec![Resource::default(); hosts];
        let mut items_out: Vec<Vec<packing::Item>> = vec![Vec::new(); hosts];
        let mut items_in: Vec<Vec<packing::Item>> = vec![Vec::new(); hosts];
        let mut cap = f64::INFINITY;
        for (j, job) in self.jobs.iter().enumerate() {
            let Some((from, to)) = job.migration else {
                continue;
            };
            slots_out[from].add(self.alone[j], head[j], tail[j]);
            slots_in[to].add(self.alone[j], head[j], tail[j]);
            items_out[from].push(item(j));
            items_in[to].push(item(j));
            if let Work::Transfer {
                mib,
                cap_mib_s,
                tail_s,
            } = job.work
            {
                // The transfer ends `tail_s` before the job does.
                link_out[from].add(mib, head[j], tail[j] + tail_s);
                link_in[to].add(mib, head[j], tail[j] + tail_s);
                cap = cap.min(cap_mib_s);
            }
        }
        let (max_out, max_in) = (
            f64::from(concurrency.max_outbound_per_host.max(1)),
            f64::from(concurrency.max_inbound_per_host.max(1)),
        );
        let mut link_s = 0.0;
        let mut link_host = None;
        let mut host_migrations_s: f64 = 0.0;
        for h in 0..hosts {
            let seconds = link_out[h]
                .bound(self.bandwidth[h].min(cap * max_out))
                .max(link_in[h].bound(self.bandwidth[h].min(cap * max_in)));
            if seconds > link_s {
                link_s = seconds;
                link_host = Some(self.hosts[h].clone());
            }
            host_migrations_s = host_migrations_s
                .max(slots_out[h].bound(max_out))
                .max(slots_in[h].bound(max_in))
                .max(packing::bound(
                    &items_out[h],
                    concurrency.max_outbound_per_host,
                ))
                .max(packing::bound(
                    &items_in[h],
                    concurrency.max_inbound_per_host,
                ));
        }
        let overall_s = [
            critical_path_s,
            link_s,
            parallelism_s,
            host_migrations_s,
            budget_s,
        ]
        .into_iter()
        .fold(0.0, f64::max);
        LowerBound {
            overall_s,
            critical_path_s,
            link_s,
            link_host,
            parallelism_s,
            host_migrations_s,
            budget_s,
        }
    }
}

/// Work some jobs must do on one resource, and the earliest head and smallest tail among them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resource {
    work: f64,
    head: f64,
    tail: f64,
}

impl Default for Resource {
    fn default() -> Self {
        Resource {
            work: 0.0,
            head: f64::INFINITY,
            tail: f64::INFINITY,
        }
    }
}

impl Resource {
    pub fn add(&mut self, work: f64, head: f64, tail: f64) {
        self.work += work;
        self.head = self.head.min(head);
        self.tail = self.tail.min(tail);
    }

    /// `min head + work / rate + min tail`; 0 when no job uses the resource.
    pub fn bound(&self, rate: f64) -> f64 {
        if self.work <= 0.0 {
            0.0
        } else {
            self.head + self.work / rate + self.tail
        }
    }
}

/// A run of no steps, for the case that cannot happen.
fn unreachable_run(n: usize) -> Run {
    Run {
        start: vec![0.0; n],
        finish: vec![0.0; n],
        slot: Vec::new(),
        makespan: 0.0,
    }
}

/// Milliseconds are plenty, and keep plan files short.
fn ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// The plan's timing from a run: per step (by id), per wave (waves by step index).
pub(crate) fn timing(
    ids: &[&str],
    waves: &[Vec<usize>],
    run: &Run,
    lower_bound: LowerBound,
    model: &DurationModel,
    concurrency: Concurrency,
    priority_seed: u64,
) -> Timing {
    let steps = ids
        .iter()
        .enumerate()
        .map(|(i, id)| StepTiming {
            step: id.to_string(),
            start_s: ms(run.start[i]),
            duration_s: ms(run.finish[i] - run.start[i]),
        })
        .collect();
    let waves = waves
        .iter()
        .map(|wave| WaveTiming {
            start_s: ms(wave
                .iter()
                .map(|&i| run.start[i])
                .fold(f64::INFINITY, f64::min)
                .min(run.makespan)),
            finish_s: ms(wave.iter().map(|&i| run.finish[i]).fold(0.0, f64::max)),
        })
        .collect();
    Timing {
        steps,
        waves,
        makespan_s: ms(run.makespan),
        lower_bound: round_bound(lower_bound),
        model: model.clone(),
        concurrency,
        priority_seed,
        holds: Vec::new(),
        downtime: downtime(ids, run),
    }
}

/// Each STOP_GUEST paired with the STARTUP_GUEST of the same move (step ids are
/// `<guest>:<KIND><#n>`): the guest is down from the one's start to the other's end.
fn downtime(ids: &[&str], run: &Run) -> Vec<GuestDowntime> {
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let stop = StepKind::StopGuest.as_str();
    ids.iter()
        .enumerate()
        .filter_map(|(i, id)| {
            let (guest, kind) = id.rsplit_once(':')?;
            let suffix = kind.strip_prefix(stop)?;
            let to_step = format!("{guest}:{}{suffix}", StepKind::StartupGuest.as_str());
            let &j = index.get(to_step.as_str())?;
            Some(GuestDowntime {
                guest: guest.to_string(),
                from_step: id.to_string(),
                to_step,
                downtime_s: ms(run.finish[j] - run.start[i]),
            })
        })
        .collect()
}

fn round_bound(b: LowerBound) -> LowerBound {
    LowerBound {
        overall_s: ms(b.overall_s),
        critical_path_s: ms(b.critical_path_s),
        link_s: ms(b.link_s),
        link_host: b.link_host,
        parallelism_s: ms(b.parallelism_s),
        host_migrations_s: ms(b.host_migrations_s),
        budget_s: ms(b.budget_s),
    }
}

/// A plan's steps replayed on the duration model.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// Per step, in the order given.
    pub start_s: Vec<f64>,
    pub finish_s: Vec<f64>,
    pub makespan_s: f64,
    pub lower_bound: LowerBound,
    /// Every host a migration leaves or reaches, by name.
    pub hosts: Vec<HostActivity>,
}

/// What one host's migration link did during a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct HostActivity {
    pub host: String,
    /// Time with at least one migration out of or into the host running, seconds.
    pub busy_s: f64,
    pub sent_mib: f64,
    pub received_mib: f64,
    pub migrations_out: usize,
    pub migrations_in: usize,
}

/// The [`Timing`] of a plan's `steps` (with its `moves` and `waves`, by step id) replayed on
/// `model` under `concurrency`: what `schedule` predicts, for a plan made without it.
pub fn predict(
    steps: &[Step],
    moves: &[Move],
    waves: &[Vec<String>],
    model: &DurationModel,
    concurrency: Concurrency,
) -> Result<Timing, ScheduleError> {
    let (graph, run) = replay_run(steps, moves, model, concurrency, 0)?;
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let waves: Vec<Vec<usize>> = waves
        .iter()
        .map(|w| {
            w.iter()
                .filter_map(|id| index.get(id.as_str()).copied())
                .collect()
        })
        .collect();
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    Ok(timing(
        &ids,
        &waves,
        &run,
        graph.lower_bound(concurrency, 0.0),
        model,
        concurrency,
        0,
    ))
}

/// Runs `steps` (a plan's, with `moves`) on `model` under `concurrency` in the priority order
/// `priority_seed` names (the plan's `timing.priority_seed`), as the plan's prediction does;
/// dependencies between steps, including a disruption budget's chains, are the steps' own.
pub fn replay(
    steps: &[Step],
    moves: &[Move],
    model: &DurationModel,
    concurrency: Concurrency,
    priority_seed: u64,
) -> Result<Replay, ScheduleError> {
    let (graph, run) = replay_run(steps, moves, model, concurrency, priority_seed)?;
    let lower_bound = graph.lower_bound(concurrency, 0.0);
    let hosts = activity(&graph, &run);
    Ok(Replay {
        start_s: run.start,
        finish_s: run.finish,
        makespan_s: run.makespan,
        lower_bound,
        hosts,
    })
}

fn replay_run(
    steps: &[Step],
    moves: &[Move],
    model: &DurationModel,
    concurrency: Concurrency,
    priority_seed: u64,
) -> Result<(Graph, Run), ScheduleError> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut shapes = Vec::with_capacity(steps.len());
    for s in steps {
        if s.move_index >= moves.len() {
            return Err(ScheduleError::BadPlan {
                step: s.id.clone(),
                message: format!(
                    "refers to move {}, but there are {}",
                    s.move_index,
                    moves.len()
                ),
            });
        }
        let mut deps = Vec::with_capacity(s.depends_on.len());
        for d in &s.depends_on {
            let &i = index
                .get(d.as_str())
                .ok_or_else(|| ScheduleError::BadPlan {
                    step: s.id.clone(),
                    message: format!("depends on `{d}`, which is not in the plan"),
                })?;
            deps.push(i);
        }
        shapes.push(Shape {
            kind: s.kind,
            move_index: s.move_index,
            items: s.items.len(),
            deps,
        });
    }
    let graph = Graph::new(shapes, moves, model);
    if timeline::topological_order(&graph.jobs).len() != graph.jobs.len() {
        let step = steps.first().map(|s| s.id.clone()).unwrap_or_default();
        return Err(ScheduleError::BadPlan {
            step,
            message: "the step graph has a cycle".into(),
        });
    }
    let run = graph.run(concurrency, priority_seed);
    Ok((graph, run))
}

/// Per host: busy time (union of its migrations' spans), MiB and migrations each way.
fn activity(graph: &Graph, run: &Run) -> Vec<HostActivity> {
    let mut spans: Vec<Vec<(f64, f64)>> = vec![Vec::new(); graph.hosts.len()];
    let mut out: Vec<HostActivity> = graph
        .hosts
        .iter()
        .map(|h| HostActivity {
            host: h.clone(),
            busy_s: 0.0,
            sent_mib: 0.0,
            received_mib: 0.0,
            migrations_out: 0,
            migrations_in: 0,
        })
        .collect();
    for (j, job) in graph.jobs.iter().enumerate() {
        let Some((from, to)) = job.migration else {
            continue;
        };
        let mib = match job.work {
            Work::Transfer { mib, .. } => mib,
            Work::Fixed(_) => 0.0,
        };
        out[from].sent_mib += mib;
        out[from].migrations_out += 1;
        out[to].received_mib += mib;
        out[to].migrations_in += 1;
        spans[from].push((run.start[j], run.finish[j]));
        spans[to].push((run.start[j], run.finish[j]));
    }
    for (h, mut host_spans) in spans.into_iter().enumerate() {
        host_spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut busy, mut until) = (0.0, f64::NEG_INFINITY);
        for (start, finish) in host_spans {
            if finish > until {
                busy += finish - start.max(until);
                until = finish;
            }
        }
        out[h].busy_s = busy;
    }
    out.sort_by(|a, b| a.host.cmp(&b.host));
    out
}
