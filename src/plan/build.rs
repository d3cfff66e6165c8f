//! Builds a [`Plan`] from a loaded configuration and inventory: diff, then schedule, then the
//! per-host summaries, the es.xml write-back diff and the fingerprints a later apply checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::MigrationMode;
use crate::config::{Config, ConfigError, DriftSource};
use crate::diff::{self, Move, MoveKind};
use crate::inventory::esxml::{self, GuestMove};
use crate::inventory::facts;
use crate::inventory::load::{Inventory, InventorySpec};
use crate::inventory::reconcile::{DriftKind, DriftPolicy};
use crate::inventory::{Drift, Guest, Topology};
use crate::remote::SshTarget;
use crate::schedule::{self, Concurrency, DurationModel, HostLimit, Limits, Schedule};

use super::model::{
    FORMAT_VERSION, Fingerprints, HostSummary, MaintenanceAction, MaintenanceGuest, Plan, PlanError,
};

/// How to read the inventory for this configuration: es.xml path, URI per host, drift policy.
pub fn inventory_spec(cfg: &Config) -> InventorySpec {
    InventorySpec {
        es_xml_path: cfg.inventory.es_xml.value.clone(),
        uri_template: cfg.inventory.libvirt_uri.value.clone(),
        uri_overrides: cfg
            .hosts
            .iter()
            .filter_map(|(name, h)| {
                h.libvirt_uri
                    .as_ref()
                    .map(|u| (name.clone(), u.value.clone()))
            })
            .collect(),
        policy: match cfg.inventory.drift_source.as_ref().map(|s| s.value) {
            None => DriftPolicy::StopOnDrift,
            Some(DriftSource::Libvirt) => DriftPolicy::PreferLibvirt,
            Some(DriftSource::EsXml) => DriftPolicy::PreferEsXml,
        },
        parallelism: cfg.defaults.parallelism.max(1) as usize,
        ssh: crate::inventory::UriSsh {
            keyfile: cfg.inventory.ssh.identity_file.clone(),
            known_hosts: cfg.inventory.ssh.known_hosts_file.clone(),
            no_verify: !cfg.inventory.ssh.strict_host_key_checking,
        },
        // Validation checked the value; an unreadable one cannot get here.
        domain_naming: cfg
            .inventory
            .domain_name
            .as_ref()
            .and_then(|d| crate::inventory::DomainNaming::parse(&d.value).ok())
            .unwrap_or_default(),
        connect_timeout: std::time::Duration::from_secs(cfg.inventory.connect_timeout_s),
    }
}

/// How to reach `host` over SSH, from the `inventory { ssh { … } }` settings.
pub fn ssh_target(cfg: &Config, host: &str) -> SshTarget {
    let ssh = &cfg.inventory.ssh;
    SshTarget {
        port: ssh.port,
        identity_file: ssh.identity_file.clone(),
        known_hosts_file: ssh.known_hosts_file.clone(),
        strict_host_key_checking: ssh.strict_host_key_checking,
        options: ssh.options.clone(),
        allow_command_options: ssh.allow_command_options.clone(),
        ..SshTarget::new(host, ssh.user.clone())
    }
}

/// Reads the inventory the configuration names: es.xml, libvirt on every host and, when
/// `gather_facts` is on, each reachable host's bridges and image version over SSH.
pub fn load_inventory(cfg: &Config) -> Result<Inventory, InventoryLoadError> {
    let mut inv = crate::inventory::load::load(&inventory_spec(cfg))?;
    gather_facts(cfg, &mut inv)?;
    Ok(inv)
}

/// When the configuration asks for it (`gather_facts = true`), records each reachable host's
/// bridges and image version, read over SSH, in the inventory's topology.
pub fn gather_facts(cfg: &Config, inv: &mut Inventory) -> Result<(), facts::FactsError> {
    if cfg.inventory.ssh.gather_facts {
        let targets: Vec<(String, SshTarget)> = inv
            .topology
            .hosts
            .values()
            .filter(|h| h.reachable)
            .map(|h| (h.name.clone(), ssh_target(cfg, &h.name)))
            .collect();
        facts::record(
            &mut inv.topology,
            facts::gather(&targets, cfg.defaults.parallelism as usize),
        )?;
    }
    Ok(())
}

/// Why the inventory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryLoadError {
    #[error(transparent)]
    Inventory(#[from] crate::inventory::load::InventoryError),
    #[error(transparent)]
    Facts(#[from] facts::FactsError),
}

/// Plans. Configuration mistakes found while diffing (unknown names, contradictory intents)
/// come back as located [`ConfigError`]s; everything the plan can explain (drift, failed
/// prerequisites, infeasible capacity) is in [`Plan::errors`].
///
/// `history` is what earlier applies did, for `return_home` (`state::history::history` reads it;
/// an error there becomes a plan error).
pub fn build(
    cfg: &Config,
    inv: &Inventory,
    history: Result<diff::History, PlanError>,
) -> Result<Plan, ConfigError> {
    build_scoped(cfg, inv, history, &Scope::default())
}

/// Which guests a plan may move (`berth plan -target G -exclude G`): the moves of other guests
/// are left out before scheduling, so the plan's steps, host figures and es.xml diff describe
/// only what it will do, and its capacity checks hold for those moves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only these guests (full name or first DNS label); empty: every guest.
    pub targets: Vec<String>,
    /// Never these guests.
    pub excludes: Vec<String>,
}

impl Scope {
    pub fn is_everything(&self) -> bool {
        self.targets.is_empty() && self.excludes.is_empty()
    }

    /// The full names `names` designate, or the plan errors for names that match no guest
    /// (or several).
    fn resolve(
        flag: &str,
        names: &[String],
        topo: &Topology,
    ) -> (BTreeSet<String>, Vec<PlanError>) {
        let mut found = BTreeSet::new();
        let mut errors = Vec::new();
        for name in names {
            if topo.guests.contains_key(name) {
                found.insert(name.clone());
                continue;
            }
            let short: Vec<&String> = topo
                .guests
                .keys()
                .filter(|g| g.split('.').next() == Some(name.as_str()))
                .collect();
            match short.as_slice() {
                [one] => {
                    found.insert((*one).clone());
                }
                [] => errors.push(PlanError {
                    code: "scope".into(),
                    message: format!(
                        "{flag} {name}: no such guest in es.xml{}",
                        diff::closest_name(name, topo.guests.keys().map(String::as_str))
                            .map(|g| format!(" (did you mean {g}?)"))
                            .unwrap_or_default()
                    ),
                    guest: None,
                    host: None,
                }),
                many => errors.push(PlanError {
                    code: "scope".into(),
                    message: format!(
                        "{flag} {name} is ambiguous: {}",
                        many.iter()
                            .map(|g| g.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    guest: None,
                    host: None,
                }),
            }
        }
        (found, errors)
    }
}

/// [`build`] limited to the guests of `scope`.
pub fn build_scoped(
    cfg: &Config,
    inv: &Inventory,
    history: Result<diff::History, PlanError>,
    scope: &Scope,
) -> Result<Plan, ConfigError> {
    let topo = &inv.topology;
    if cfg.rolling.is_some() {
        let mut hosts = diff::rolling_hosts(cfg, topo).map_err(|errs| diff_errors(cfg, errs))?;
        let serviced = match &history {
            Ok(history) => diff::already_serviced(cfg, topo, history),
            Err(_) => Vec::new(),
        };
        hosts.retain(|host| !serviced.iter().any(|s| s.host == *host));
        if !hosts.is_empty() {
            let mut plan = super::rolling::build(cfg, inv, history, &hosts, scope)?;
            plan.already_serviced = serviced;
            return Ok(plan);
        }
        if !serviced.is_empty() {
            // Every host of the block is serviced: the rest of the configuration is planned
            // as if the block were not there.
            let mut settled = cfg.clone();
            settled.rolling = None;
            let mut plan = build_scoped(&settled, inv, history, scope)?;
            plan.already_serviced = serviced;
            return Ok(plan);
        }
    }
    // The fingerprints (a line per guest: a million at 100,000 hosts) depend on the inputs
    // only: made on the second core while the diff and the schedule run on this one.
    let (plan, fingerprints) = crate::parallel::both(
        || plan_without_fingerprints(cfg, inv, history, scope),
        || fingerprints(cfg, inv),
    );
    plan.map(|plan| Plan {
        fingerprints,
        ..plan
    })
}

/// [`build_scoped`] past the rolling check, without the fingerprints.
fn plan_without_fingerprints(
    cfg: &Config,
    inv: &Inventory,
    history: Result<diff::History, PlanError>,
    scope: &Scope,
) -> Result<Plan, ConfigError> {
    let topo = &inv.topology;
    let mut plan = empty_plan(cfg, inv);

    // A host berth cannot read is not a disagreement between es.xml and libvirt: it is its
    // own error, whatever `drift_source` says (only an evacuated host is expected to be down).
    let unreachable = unreachable_hosts(cfg, &inv.drift);
    for d in &unreachable {
        plan.errors.push(PlanError {
            code: "host_unreachable".into(),
            message: format!(
                "{}. berth does not plan with a host it cannot see: start libvirtd or fix the host's `libvirt_uri`; \
                 if the host is down for good, set `evacuate = true` in its host block",
                d.message
            ),
            guest: None,
            host: d.host.clone(),
        });
    }
    let blocking = blocking_drift(cfg, &inv.drift);
    if blocking > 0 {
        plan.errors.push(PlanError {
            code: "drift".into(),
            message: format!(
                "es.xml and libvirt disagree ({} item{}); berth does not plan on a picture it cannot trust. \
                 Fix the drift, or set `drift_source = \"libvirt\"` (or \"es_xml\") in the inventory block to say which side wins.",
                blocking,
                if blocking == 1 { "" } else { "s" }
            ),
            guest: None,
            host: None,
        });
    }
    if !plan.errors.is_empty() {
        // Capacity as the configuration sets it (memory_reserved, vcpu_overcommit), so the
        // table marks only what is really over.
        plan.hosts = host_summaries(topo, &configured_limits(cfg, topo), &[], &BTreeMap::new());
        return Ok(plan);
    }

    let history = history.unwrap_or_else(|error| {
        plan.errors.push(error);
        diff::History::default()
    });
    let (desired, mut moves, problems) =
        diff::desired_and_moves(cfg, topo, &history).map_err(|errs| diff_errors(cfg, errs))?;
    if !scope.is_everything() {
        let (targets, mut errors) = Scope::resolve("-target", &scope.targets, topo);
        let (excludes, more) = Scope::resolve("-exclude", &scope.excludes, topo);
        errors.extend(more);
        moves.retain(|m| {
            (scope.targets.is_empty() || targets.contains(&m.guest)) && !excludes.contains(&m.guest)
        });
        plan.errors.extend(errors);
    }
    plan.rebalances = desired.rebalances.clone();
    plan.errors.extend(infeasible_drains(topo, &problems));
    plan.errors
        .extend(problems.into_iter().map(PlanError::from));

    let mut limits = Limits {
        durations: DurationModel::from_defaults(&cfg.defaults),
        concurrency: Concurrency::from_defaults(&cfg.defaults),
        ..Limits::from_desired(&desired, true)
    };
    maintenance_budgets(&desired, topo, &mut limits);
    match schedule::schedule(&moves, topo, &limits) {
        Ok(s) => {
            fill_from_schedule(&mut plan, cfg, inv, &limits, s);
            plan.maintenance = maintenance_report(&desired, &plan);
        }
        Err(e) => {
            plan.moves = moves;
            plan.errors.push(PlanError {
                code: "capacity".into(),
                message: e.to_string(),
                guest: None,
                host: None,
            });
            plan.hosts = host_summaries(topo, &limits, &plan.moves, &BTreeMap::new());
        }
    }
    Ok(plan)
}

/// Per guest of a host entering or leaving maintenance: what happens to it and its predicted
/// downtime (from the plan's timing).
fn maintenance_report(desired: &diff::Desired, plan: &Plan) -> Vec<MaintenanceGuest> {
    let rules = |host: &str| desired.hosts.get(host);
    let timing: HashMap<&str, (f64, f64)> = plan
        .timing
        .iter()
        .flat_map(|t| &t.steps)
        .map(|s| (s.step.as_str(), (s.start_s, s.start_s + s.duration_s)))
        .collect();
    let step_time = |index: usize, kind: schedule::StepKind| {
        plan.steps
            .iter()
            .find(|s| s.move_index == index && s.kind == kind)
            .and_then(|s| timing.get(s.id.as_str()).copied())
    };
    let mut report = Vec::new();
    for (index, m) in plan.moves.iter().enumerate() {
        let entering = rules(&m.from).is_some_and(|r| r.maintenance);
        let leaving_to = rules(&m.to).is_some_and(|r| r.end_maintenance);
        let (host, action) = match m.kind {
            MoveKind::StopInPlace => (&m.from, MaintenanceAction::StoppedInPlace),
            MoveKind::StartInPlace => (&m.to, MaintenanceAction::StartedInPlace),
            MoveKind::Migrate if entering => (&m.from, MaintenanceAction::Moved),
            MoveKind::Migrate if leaving_to => (&m.to, MaintenanceAction::ReturnedHome),
            MoveKind::Migrate | MoveKind::HostService => continue,
        };
        let stop = step_time(index, schedule::StepKind::StopGuest);
        let start = step_time(index, schedule::StepKind::StartupGuest);
        let downtime_s = match (m.kind, m.mode) {
            (MoveKind::StopInPlace, _) => None,
            (MoveKind::StartInPlace, _) => start.map(|(_, end)| end),
            (_, MigrationMode::Live) => plan.timing.as_ref().map(|_| 0.0),
            _ => match (stop, start) {
                (Some((begin, _)), Some((_, end))) => Some(end - begin),
                // A shut-off guest is not stopped or started: no downtime of its own.
                (None, None) => plan.timing.as_ref().map(|_| 0.0),
                _ => None,
            },
        };
        report.push(MaintenanceGuest {
            guest: m.guest.clone(),
            host: host.clone(),
            action,
            to: m.to.clone(),
            mode: m.mode,
            downtime_s,
        });
    }
    report
}

/// While a host is in maintenance (or leaves it), a RAC cluster keeps serving: each cluster
/// that no `disruption_budget` rule covers gets one of `max_unavailable = 1`, so no more than
/// one member is down or moving at once.
fn maintenance_budgets(desired: &diff::Desired, topo: &Topology, limits: &mut Limits) {
    if !desired
        .hosts
        .values()
        .any(|r| r.maintenance || r.end_maintenance)
    {
        return;
    }
    for cluster in topo.clusters.values() {
        let covered = limits
            .budgets
            .iter()
            .any(|b| cluster.members.iter().all(|m| b.members.contains(m)));
        if covered || cluster.members.len() < 2 {
            continue;
        }
        let name = format!("RAC cluster {} (maintenance default)", cluster.name);
        if let Some(spec) = schedule::BudgetSpec::for_cluster(&name, topo, &cluster.name, 1) {
            limits.budgets.push(spec);
        }
    }
}

/// One summary line per host whose drain cannot be met (its guests with no target are listed
/// one by one after it): how many are stuck, the reason most of them share, and the way out
/// an operator wants, `maintenance`, which stops in place what cannot move.
fn infeasible_drains(topo: &Topology, problems: &[diff::MoveProblem]) -> Vec<PlanError> {
    let mut stuck: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in problems.iter().filter(|p| p.code == "no_target") {
        if let Some(g) = topo.guests.get(&p.guest) {
            stuck
                .entry(g.host.as_str())
                .or_default()
                .push(g.name.as_str());
        }
    }
    stuck
        .into_iter()
        .map(|(host, guests)| {
            // A guest is held by anti-affinity when every other host runs a member of one of
            // its RAC clusters: the common two-host rack, one member per host.
            let held = |guest: &str| {
                let Some(g) = topo.guests.get(guest) else {
                    return false;
                };
                let others: Vec<&str> = topo
                    .hosts
                    .keys()
                    .map(String::as_str)
                    .filter(|h| *h != host)
                    .collect();
                !g.clusters.is_empty()
                    && others.iter().all(|other| {
                        g.clusters.iter().any(|c| {
                            topo.clusters.get(c).is_some_and(|c| {
                                c.members.iter().any(|m| {
                                    topo.guests.get(m).is_some_and(|m| m.host == *other)
                                })
                            })
                        })
                    })
            };
            let by_rac = guests.iter().filter(|g| held(g)).count();
            let on_host = topo.guests_on(host).count();
            let reason = if by_rac == guests.len() {
                "every other host already runs a member of each one's RAC cluster (anti-affinity)".to_string()
            } else if by_rac > 0 {
                format!(
                    "{by_rac} by RAC anti-affinity (every other host runs a member of their cluster), the others for the reasons below"
                )
            } else {
                "no other host has room for them under the rules (reasons below)".to_string()
            };
            let short = short_name(host);
            PlanError {
                code: "drain_infeasible".into(),
                message: format!(
                    "the drain of {host} cannot be met: {} of its {on_host} guests can go nowhere: {reason}. \
                     To service the host anyway, use maintenance (`maintenance = true` in host \"{short}\", or `-maintenance {short}`): \
                     guests that can move are moved, the others are stopped in place, one member of each RAC cluster at a time",
                    guests.len()
                ),
                guest: None,
                host: Some(host.to_string()),
            }
        })
        .collect()
}

/// How many drift items stop the plan: none when `drift_source` says which side wins; else
/// every disagreement between es.xml and libvirt. Unreachable hosts are not counted: they are
/// their own error ([`unreachable_hosts`]).
pub fn blocking_drift(cfg: &Config, drift: &[Drift]) -> usize {
    if cfg.inventory.drift_source.is_some() {
        return 0;
    }
    drift
        .iter()
        .filter(|d| d.kind != DriftKind::HostUnreachable)
        .count()
}

/// The hosts whose libvirt did not answer, but for those the configuration declares dead
/// (`evacuate = true`), which are expected not to.
pub fn unreachable_hosts<'d>(cfg: &Config, drift: &'d [Drift]) -> Vec<&'d Drift> {
    let dead: Vec<&str> = cfg
        .hosts
        .values()
        .filter(|h| h.evacuate)
        .map(|h| short_name(&h.name.value))
        .collect();
    drift
        .iter()
        .filter(|d| {
            d.kind == DriftKind::HostUnreachable
                && !d
                    .host
                    .as_deref()
                    .is_some_and(|h| dead.contains(&short_name(h)))
        })
        .collect()
}

fn short_name(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Each host's capacity as the configuration sets it (its host block, matched by full or short
/// name, over the defaults), for plans that stop before diff resolves the blocks.
fn configured_limits(cfg: &Config, topo: &Topology) -> Limits {
    let hosts = topo
        .hosts
        .values()
        .map(|h| {
            let intent = cfg
                .hosts
                .values()
                .find(|i| i.name.value == h.name)
                .or_else(|| {
                    cfg.hosts
                        .values()
                        .find(|i| i.name.value == short_name(&h.name))
                });
            let rules = diff::HostRules::new(h, intent, &cfg.defaults);
            let limit = HostLimit {
                memory_mib: rules.memory_capacity_mib,
                vcpus: rules.vcpu_limit,
                max_guests: rules.max_guests,
                accepts_guests: rules.accepts_guests(),
            };
            (h.name.clone(), limit)
        })
        .collect();
    Limits {
        hosts,
        ..Limits::default()
    }
}

pub fn diff_errors(cfg: &Config, errs: Vec<diff::DiffError>) -> ConfigError {
    let errs: Vec<ConfigError> = errs
        .into_iter()
        .map(|e| match &e.span {
            Some(span) => cfg.error_at(span, e.message.clone(), e.label.clone(), e.help.clone()),
            None => ConfigError::Unlocated {
                message: e.message.clone(),
                help: e.help.clone(),
            },
        })
        .collect();
    ConfigError::many(errs)
}

fn empty_plan(cfg: &Config, inv: &Inventory) -> Plan {
    Plan {
        format_version: FORMAT_VERSION,
        berth_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        es_xml_path: cfg.inventory.es_xml.value.display().to_string(),
        moves: Vec::new(),
        steps: Vec::new(),
        skipped_steps: Vec::new(),
        waves: Vec::new(),
        // Filled by `build` once the limits are known.
        hosts: Vec::new(),
        // Unreachable hosts are errors of their own, not disagreements (see `build`).
        drift: inv
            .drift
            .iter()
            .filter(|d| d.kind != DriftKind::HostUnreachable)
            .cloned()
            .collect(),
        errors: Vec::new(),
        rebalances: Vec::new(),
        maintenance: Vec::new(),
        phases: Vec::new(),
        already_serviced: Vec::new(),
        // Filled by `build_scoped`, made beside the plan.
        fingerprints: Fingerprints::default(),
        intents: cfg.command_line.clone(),
        es_xml_diff: String::new(),
        timing: None,
    }
}

fn fill_from_schedule(
    plan: &mut Plan,
    cfg: &Config,
    inv: &Inventory,
    limits: &Limits,
    s: Schedule,
) {
    // The es.xml diff and the host summaries read the same moves: one on each core.
    let (hosts, es_diff) = crate::parallel::both(
        || host_summaries(&inv.topology, limits, &s.moves, &s.peaks),
        || es_xml_diff(cfg, inv, &s.moves),
    );
    plan.hosts = hosts;
    plan.es_xml_diff = es_diff.unwrap_or_else(|e| {
        plan.errors.push(PlanError {
            code: "es_xml".into(),
            message: e.to_string(),
            guest: None,
            host: None,
        });
        String::new()
    });
    plan.moves = s.moves;
    plan.steps = s.steps;
    plan.skipped_steps = s.skipped;
    plan.waves = s.waves;
    plan.timing = (!plan.steps.is_empty()).then_some(s.timing);
}

/// Inputs a saved plan depends on; apply compares them with what it finds.
pub fn fingerprints(cfg: &Config, inv: &Inventory) -> Fingerprints {
    Fingerprints {
        es_xml_sha256: inv.es_xml_sha256.clone(),
        config_sha256: cfg.sha256(),
        guests: inv
            .topology
            .guests
            .values()
            .map(|g| (g.name.clone(), format!("{}/{}", g.host, g.state)))
            .collect(),
    }
}

/// The es.xml apply will write, as a unified diff against the current file. Made from the
/// rewrite's edits (checked against the file, not re-parsed: apply's rewrite re-parses before it
/// writes), using the layout the inventory kept from its parse when there is one.
pub(super) fn es_xml_diff_of(
    cfg: &Config,
    inv: &Inventory,
    moves: &[Move],
) -> Result<String, esxml::EsXmlError> {
    es_xml_diff(cfg, inv, moves)
}

fn es_xml_diff(cfg: &Config, inv: &Inventory, moves: &[Move]) -> Result<String, esxml::EsXmlError> {
    let path = cfg.inventory.es_xml.value.display().to_string();
    let parsed;
    let layout = match &inv.es_layout {
        Some(layout) => layout,
        None => {
            parsed = esxml::parse_with_layout(&path, &inv.es_xml_text)?.1;
            &parsed
        }
    };
    let edits = esxml::guest_move_edits(
        &path,
        &inv.es_xml_text,
        &inv.es,
        layout,
        &guest_moves(inv, moves),
    )?;
    Ok(super::unified_diff_of_edits(
        &path,
        &inv.es_xml_text,
        edits.iter().map(|e| (e.range.clone(), e.text.as_str())),
    ))
}

/// es.xml with every moved guest's reference under its final host (pivot hops collapse),
/// re-parsed and checked.
pub fn esxml_after(inv: &Inventory, moves: &[Move]) -> Result<String, esxml::EsXmlError> {
    let guest_moves = guest_moves(inv, moves);
    match &inv.es_layout {
        Some(layout) => {
            esxml::move_guests_parsed("es.xml", &inv.es_xml_text, &inv.es, layout, &guest_moves)
        }
        None => esxml::move_guests(&inv.es_xml_text, &guest_moves),
    }
}

/// Each moved guest from its es.xml host to its final host, by machine ids; guests that end
/// where es.xml already has them are left out.
fn guest_moves(inv: &Inventory, moves: &[Move]) -> Vec<GuestMove> {
    let topo = &inv.topology;
    let mut final_host: BTreeMap<&str, &str> = BTreeMap::new();
    for m in moves {
        final_host.insert(&m.guest, &m.to);
    }
    let machine_id = |host: &str| {
        topo.hosts
            .get(host)
            .map(|h| h.machine_id.clone())
            .unwrap_or_default()
    };
    let es_parent: HashMap<&str, &str> = inv
        .es
        .guests
        .iter()
        .map(|g| (g.name.as_str(), g.host_id.as_str()))
        .collect();
    final_host
        .iter()
        .filter_map(|(guest, to)| {
            let g = topo.guests.get(*guest)?;
            let from_id = es_parent
                .get(*guest)
                .map(|s| s.to_string())
                .unwrap_or_default();
            let to_id = machine_id(to);
            (from_id != to_id).then(|| GuestMove {
                guest_id: g.machine_id.clone(),
                from_host_id: from_id,
                to_host_id: to_id,
            })
        })
        .collect()
}

/// Before/after usage per host; peaks come from the schedule (worst instant the DAG allows).
pub fn host_summaries(
    topo: &Topology,
    limits: &Limits,
    moves: &[Move],
    peaks: &BTreeMap<String, (u64, u32)>,
) -> Vec<HostSummary> {
    // Where each moved guest ends up (the last move wins).
    let moved: HashMap<&str, &str> = moves
        .iter()
        .map(|m| (m.guest.as_str(), m.to.as_str()))
        .collect();
    // Guests maintenance stops or starts where they are: they end holding nothing, or all.
    let in_place: HashMap<&str, MoveKind> = moves
        .iter()
        .filter(|m| !m.kind.is_migrate())
        .map(|m| (m.guest.as_str(), m.kind))
        .collect();
    // One pass over the guests, not one per host: 10,000 hosts × 100,000 guests must stay fast.
    let position: HashMap<&str, usize> = topo
        .hosts
        .keys()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut before = vec![Load::default(); topo.hosts.len()];
    let mut after = vec![Load::default(); topo.hosts.len()];
    for g in topo.guests.values() {
        if let Some(&i) = position.get(g.host.as_str()) {
            before[i].add(g);
        }
        let host = moved
            .get(g.name.as_str())
            .copied()
            .unwrap_or(g.host.as_str());
        if let Some(&i) = position.get(host) {
            match in_place.get(g.name.as_str()) {
                Some(MoveKind::StopInPlace) => after[i].guests += 1,
                Some(MoveKind::StartInPlace) => {
                    after[i].memory_mib += g.memory_mib;
                    after[i].vcpus += g.vcpus;
                    after[i].guests += 1;
                }
                _ => after[i].add(g),
            }
        }
    }
    topo.hosts
        .values()
        .enumerate()
        .map(|(i, h)| {
            let (now, then) = (before[i], after[i]);
            let limit = limits.of(h);
            HostSummary {
                name: h.name.clone(),
                memory_mib: limit.memory_mib,
                memory_used_mib_before: now.memory_mib,
                memory_used_mib_after: then.memory_mib,
                cpus: h.cpus,
                vcpu_limit: limit.vcpus,
                vcpus_used_before: now.vcpus,
                vcpus_used_after: then.vcpus,
                guests_before: now.guests,
                guests_after: then.guests,
                memory_peak_mib: peaks
                    .get(&h.name)
                    .map(|p| p.0)
                    .unwrap_or_else(|| now.memory_mib.max(then.memory_mib)),
            }
        })
        .collect()
}

/// What the guests on one host hold.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    memory_mib: u64,
    vcpus: u32,
    guests: usize,
}

impl Load {
    fn add(&mut self, g: &Guest) {
        self.memory_mib += g.memory_held_mib();
        self.vcpus += g.vcpus_held();
        self.guests += 1;
    }
}
