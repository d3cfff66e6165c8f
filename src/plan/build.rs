//! Builds a [`Plan`] from a loaded configuration and inventory: diff, then schedule, then the
//! per-host summaries, the es.xml write-back diff and the fingerprints a later apply checks.

use std::collections::BTreeMap;

use crate::config::{Config, ConfigError, DriftSource};
use crate::diff::{self, Move};
use crate::inventory::esxml::{self, GuestMove};
use crate::inventory::facts;
use crate::remote::SshTarget;
use crate::inventory::load::{Inventory, InventorySpec};
use crate::inventory::reconcile::{DriftKind, DriftPolicy};
use crate::inventory::Drift;
use crate::inventory::Topology;
use crate::schedule::{self, Limits, Schedule};

use super::model::{Fingerprints, HostSummary, Plan, PlanError, FORMAT_VERSION};

/// How to read the inventory for this configuration: es.xml path, URI per host, drift policy.
pub fn inventory_spec(cfg: &Config) -> InventorySpec {
    InventorySpec {
        es_xml_path: cfg.inventory.es_xml.value.clone(),
        uri_template: cfg.inventory.libvirt_uri.value.clone(),
        uri_overrides: cfg
            .hosts
            .iter()
            .filter_map(|(name, h)| h.libvirt_uri.as_ref().map(|u| (name.clone(), u.value.clone())))
            .collect(),
        policy: match cfg.inventory.drift_source.as_ref().map(|s| s.value) {
            None => DriftPolicy::StopOnDrift,
            Some(DriftSource::Libvirt) => DriftPolicy::PreferLibvirt,
            Some(DriftSource::EsXml) => DriftPolicy::PreferEsXml,
        },
        parallelism: cfg.defaults.parallelism.max(1) as usize,
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
        facts::record(&mut inv.topology, facts::gather(&targets, cfg.defaults.parallelism as usize))?;
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
pub fn build(cfg: &Config, inv: &Inventory) -> Result<Plan, ConfigError> {
    let topo = &inv.topology;
    let mut plan = empty_plan(cfg, inv);

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
        return Ok(plan);
    }

    let history = super::history::history(cfg).unwrap_or_else(|error| {
        plan.errors.push(error);
        diff::History::default()
    });
    let desired = diff::desired_with(cfg, topo, &history).map_err(|errs| diff_errors(cfg, errs))?;
    let (moves, problems) = diff::moves(cfg, topo, &desired);
    plan.errors.extend(problems.into_iter().map(PlanError::from));

    let limits = Limits::from_desired(&desired, true);
    match schedule::schedule(&moves, topo, &limits) {
        Ok(s) => fill_from_schedule(&mut plan, cfg, inv, &limits, s),
        Err(e) => {
            plan.moves = moves;
            plan.errors.push(PlanError { code: "capacity".into(), message: e.to_string(), guest: None, host: None });
            plan.hosts = host_summaries(topo, &limits, &plan.moves, &BTreeMap::new());
        }
    }
    Ok(plan)
}

/// How many drift items stop the plan: none when `drift_source` says which side wins; else
/// all but the unreachable hosts the configuration declares dead (`evacuate = true`), which
/// are expected not to answer.
pub fn blocking_drift(cfg: &Config, drift: &[Drift]) -> usize {
    if cfg.inventory.drift_source.is_some() {
        return 0;
    }
    let short = |name: &str| name.split('.').next().unwrap_or(name).to_string();
    let dead: Vec<String> = cfg.hosts.values().filter(|h| h.evacuate).map(|h| short(&h.name.value)).collect();
    let expected = |d: &&Drift| d.kind == DriftKind::HostUnreachable && d.host.as_deref().is_some_and(|h| dead.contains(&short(h)));
    drift.iter().filter(|d| !expected(d)).count()
}

pub fn diff_errors(cfg: &Config, errs: Vec<diff::DiffError>) -> ConfigError {
    let errs: Vec<ConfigError> = errs
        .into_iter()
        .map(|e| match &e.span {
            Some(span) => cfg.error_at(span, e.message.clone(), e.label.clone(), e.help.clone()),
            None => ConfigError::Unlocated { message: e.message.clone(), help: e.help.clone() },
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
        hosts: host_summaries(&inv.topology, &Limits::default(), &[], &BTreeMap::new()),
        drift: inv.drift.clone(),
        errors: Vec::new(),
        fingerprints: fingerprints(cfg, inv),
        es_xml_diff: String::new(),
    }
}

fn fill_from_schedule(plan: &mut Plan, cfg: &Config, inv: &Inventory, limits: &Limits, s: Schedule) {
    plan.hosts = host_summaries(&inv.topology, limits, &s.moves, &s.peaks);
    plan.es_xml_diff = es_xml_diff(cfg, inv, &s.moves).unwrap_or_else(|e| {
        plan.errors.push(PlanError { code: "es_xml".into(), message: e.to_string(), guest: None, host: None });
        String::new()
    });
    plan.moves = s.moves;
    plan.steps = s.steps;
    plan.skipped_steps = s.skipped;
    plan.waves = s.waves;
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

/// The es.xml apply will write, as a unified diff against the current file.
fn es_xml_diff(cfg: &Config, inv: &Inventory, moves: &[Move]) -> Result<String, esxml::EsXmlError> {
    let after = esxml_after(inv, moves)?;
    Ok(super::unified_diff(&cfg.inventory.es_xml.value.display().to_string(), &inv.es_xml_text, &after))
}

/// es.xml with every moved guest's reference under its final host (pivot hops collapse).
pub fn esxml_after(inv: &Inventory, moves: &[Move]) -> Result<String, esxml::EsXmlError> {
    let topo = &inv.topology;
    let mut final_host: BTreeMap<&str, &str> = BTreeMap::new();
    for m in moves {
        final_host.insert(&m.guest, &m.to);
    }
    let machine_id = |host: &str| topo.hosts.get(host).map(|h| h.machine_id.clone()).unwrap_or_default();
    let es_parent: BTreeMap<&str, &str> = inv
        .es
        .guests
        .iter()
        .map(|g| (g.name.as_str(), g.host_id.as_str()))
        .collect();
    let guest_moves: Vec<GuestMove> = final_host
        .iter()
        .filter_map(|(guest, to)| {
            let g = topo.guests.get(*guest)?;
            let from_id = es_parent.get(*guest).map(|s| s.to_string()).unwrap_or_default();
            let to_id = machine_id(to);
            (from_id != to_id).then(|| GuestMove { guest_id: g.machine_id.clone(), from_host_id: from_id, to_host_id: to_id })
        })
        .collect();
    esxml::move_guests(&inv.es_xml_text, &guest_moves)
}

/// Before/after usage per host; peaks come from the schedule (worst instant the DAG allows).
pub fn host_summaries(
    topo: &Topology,
    limits: &Limits,
    moves: &[Move],
    peaks: &BTreeMap<String, (u64, u32)>,
) -> Vec<HostSummary> {
    // Where each guest ends up.
    let mut placement: BTreeMap<&str, &str> = topo.guests.values().map(|g| (g.name.as_str(), g.host.as_str())).collect();
    for m in moves {
        placement.insert(&m.guest, &m.to);
    }
    topo.hosts
        .values()
        .map(|h| {
            let after: Vec<_> = topo.guests.values().filter(|g| placement.get(g.name.as_str()) == Some(&h.name.as_str())).collect();
            let limit = limits.of(h);
            let (mem_cap, vcpu_limit) = (limit.memory_mib, limit.vcpus);
            let memory_used_mib_after = after.iter().map(|g| g.memory_held_mib()).sum();
            HostSummary {
                name: h.name.clone(),
                memory_mib: mem_cap,
                memory_used_mib_before: topo.memory_used_mib(&h.name),
                memory_used_mib_after,
                cpus: h.cpus,
                vcpu_limit,
                vcpus_used_before: topo.vcpus_used(&h.name),
                vcpus_used_after: after.iter().map(|g| g.vcpus_held()).sum(),
                guests_before: topo.guests_on(&h.name).count(),
                guests_after: after.len(),
                memory_peak_mib: peaks
                    .get(&h.name)
                    .map(|p| p.0)
                    .unwrap_or_else(|| topo.memory_used_mib(&h.name).max(memory_used_mib_after)),
            }
        })
        .collect()
}
