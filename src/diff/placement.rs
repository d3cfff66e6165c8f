//! Automatic target choice for guests leaving a drained host.
//!
//! Candidates are hosts that accept guests (not drained, not disabled), answer, pass the host
//! rules of [`super::rules::host_blockers`], and have room for the guest's memory and vCPUs and
//! under `max_guests` counting every move decided so far, with no member of one of the guest's
//! RAC clusters (anti-affinity). Among them the least loaded wins: most free memory after the
//! move, then fewest guests, then name. Guests are placed biggest first, so the result does not
//! depend on map order and big guests are not left without room by small ones.
//!
//! Speed: hosts are grouped in classes of equal (architecture, CPU model, image version), the only
//! properties the host rules look at; each class keeps its hosts ranked in a `BTreeSet`. A guest
//! checks the rules once per class, then walks the compatible classes' rankings from the top,
//! skipping only hosts blocked by vCPUs, `max_guests` or anti-affinity. A drain of thousands of
//! guests over thousands of hosts therefore costs about `moves × classes × log(hosts)`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::MigrationMode;
use crate::inventory::{Guest, Host, ImageVersion, Topology};

use super::capacity::{HostRules, Ledger, Load, sriov_interfaces};
use super::model::MoveProblem;
use super::rules::{effective_mode, host_blockers};
use super::units::{mib, mib_signed, vcpus};

/// A guest that needs a target, and the mode it will move in.
pub(crate) struct Request<'t> {
    pub guest: &'t Guest,
    pub mode: MigrationMode,
}

pub(crate) enum Outcome {
    Chosen { host: String, reason: String },
    Unplaced(MoveProblem),
}

/// How many other hosts a reason names besides the winner.
const OTHERS_IN_REASON: usize = 3;
/// How many hosts an explanation of "no target" names before summarising the rest.
const HOSTS_IN_EXPLANATION: usize = 8;

/// Places every request, biggest guest first, updating `ledger` with each decision.
pub(crate) fn place<'t>(
    topo: &'t Topology,
    rules: &BTreeMap<String, HostRules>,
    ledger: &mut Ledger<'t>,
    mut requests: Vec<Request<'t>>,
) -> Vec<(Request<'t>, Outcome)> {
    requests.sort_by(|a, b| {
        let key = |g: &Guest| (Reverse(g.memory_held_mib()), Reverse(g.vcpus_held()), Reverse(g.memory_mib), g.name.clone());
        key(a.guest).cmp(&key(b.guest))
    });
    let mut candidates = Candidates::new(topo, rules, ledger);
    requests
        .into_iter()
        .map(|request| {
            let outcome = candidates.place(&request, topo, rules, ledger);
            (request, outcome)
        })
        .collect()
}

/// Rank of a host: most free memory first, then fewest guests, then name (hosts are indexed in
/// name order, so the index breaks ties by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    free_memory: Reverse<i64>,
    guests: u32,
    host: usize,
}

impl Rank {
    fn free_memory(&self) -> i64 {
        self.free_memory.0
    }
}

/// Hosts that share every property the host rules read.
struct Class {
    /// A host of the class, to evaluate the rules once for all of them.
    representative: usize,
    ranking: BTreeSet<Rank>,
}

struct Candidates<'t> {
    hosts: Vec<&'t Host>,
    class_of: Vec<usize>,
    classes: Vec<Class>,
}

type ClassKey<'t> = (Option<&'t str>, Option<&'t str>, Option<&'t ImageVersion>);

impl<'t> Candidates<'t> {
    fn new(topo: &'t Topology, rules: &BTreeMap<String, HostRules>, ledger: &Ledger<'t>) -> Self {
        let hosts: Vec<&Host> = topo
            .hosts
            .values()
            .filter(|h| h.reachable && rules.get(&h.name).is_some_and(HostRules::accepts_guests))
            .collect();
        let mut class_index: HashMap<ClassKey, usize> = HashMap::new();
        let mut classes: Vec<Class> = Vec::new();
        let mut class_of = Vec::with_capacity(hosts.len());
        for (i, host) in hosts.iter().enumerate() {
            let key = (host.arch.as_deref(), host.cpu_model.as_deref(), host.image_version.as_ref());
            let class = *class_index.entry(key).or_insert_with(|| {
                classes.push(Class { representative: i, ranking: BTreeSet::new() });
                classes.len() - 1
            });
            class_of.push(class);
        }
        let mut candidates = Candidates { hosts, class_of, classes };
        for i in 0..candidates.hosts.len() {
            let rank = candidates.rank(i, rules, ledger);
            candidates.classes[candidates.class_of[i]].ranking.insert(rank);
        }
        candidates
    }

    fn rank(&self, host: usize, rules: &BTreeMap<String, HostRules>, ledger: &Ledger) -> Rank {
        let name = &self.hosts[host].name;
        let load = ledger.load(name);
        let capacity = rules.get(name).map_or(0, |r| r.memory_capacity_mib);
        Rank { free_memory: Reverse(capacity as i64 - load.memory_mib as i64), guests: load.guests, host }
    }

    fn place(&mut self, request: &Request<'t>, topo: &'t Topology, rules: &BTreeMap<String, HostRules>, ledger: &mut Ledger<'t>) -> Outcome {
        let guest = request.guest;
        let (mode, _) = effective_mode(guest, request.mode);
        let source = topo.hosts.get(&guest.host);
        let need = Need::of(guest, mode);
        let compatible: Vec<usize> = (0..self.classes.len())
            .filter(|&c| host_blockers(guest, source, self.hosts[self.classes[c].representative], mode).is_empty())
            .collect();

        let mut passed_over = Vec::new();
        let Some(winner) = self.best(&compatible, need, guest, rules, ledger, None, &mut passed_over) else {
            return Outcome::Unplaced(explain_unplaced(guest, need, mode, topo, rules, ledger));
        };
        let runner_up = self.best(&compatible, need, guest, rules, ledger, Some(winner.host), &mut Vec::new());
        let incompatible: Vec<(usize, String)> = (0..self.classes.len())
            .filter(|c| !compatible.contains(c))
            .filter_map(|c| {
                let top = self.classes[c].ranking.first()?;
                let blockers = host_blockers(guest, source, self.hosts[top.host], mode);
                Some((top.host, blockers.first()?.message.clone()))
            })
            .collect();
        let reason = self.reason(guest, need, winner, passed_over, runner_up, incompatible);

        let class = self.class_of[winner.host];
        let target = self.hosts[winner.host];
        self.classes[class].ranking.remove(&winner);
        ledger.apply(guest, &guest.host, &target.name);
        let rank = self.rank(winner.host, rules, ledger);
        self.classes[class].ranking.insert(rank);
        Outcome::Chosen { host: target.name.clone(), reason }
    }

    /// The best-ranked host of the compatible classes that passes the load rules, leaving out
    /// `excluded`. Better-ranked hosts that fail are appended to `passed_over` with the reason.
    #[allow(clippy::too_many_arguments)]
    fn best(
        &self,
        compatible: &[usize],
        need: Need,
        guest: &Guest,
        rules: &BTreeMap<String, HostRules>,
        ledger: &Ledger,
        excluded: Option<usize>,
        passed_over: &mut Vec<(Rank, String)>,
    ) -> Option<Rank> {
        let mut best: Option<Rank> = None;
        for &class in compatible {
            for rank in &self.classes[class].ranking {
                if best.is_some_and(|b| *rank > b) || rank.free_memory() < need.memory as i64 {
                    break;
                }
                if Some(rank.host) == excluded {
                    continue;
                }
                let host = self.hosts[rank.host];
                match load_blocker(guest, need, host, rules.get(&host.name), ledger) {
                    Some(why) => passed_over.push((*rank, why)),
                    None => {
                        best = Some(*rank);
                        break;
                    }
                }
            }
        }
        if let Some(best) = best {
            passed_over.retain(|(rank, _)| *rank < best);
        }
        passed_over.sort();
        best
    }

    fn reason(
        &self,
        guest: &Guest,
        need: Need,
        winner: Rank,
        passed_over: Vec<(Rank, String)>,
        runner_up: Option<Rank>,
        incompatible: Vec<(usize, String)>,
    ) -> String {
        let name = |rank: &Rank| self.hosts[rank.host].name.as_str();
        let after = |rank: &Rank| rank.free_memory() - need.memory as i64;
        let mut reason = format!(
            "drain {}: {} has the most free memory after the move ({})",
            guest.host,
            name(&winner),
            mib_signed(after(&winner))
        );
        let mut others: Vec<String> = passed_over.iter().map(|(rank, why)| format!("{}: {why}", name(rank))).collect();
        if let Some(second) = runner_up {
            let why = if second.free_memory() < winner.free_memory() {
                format!("less free memory after the move ({})", mib_signed(after(&second)))
            } else if second.guests > winner.guests {
                format!("as much free memory, but more guests ({} against {})", second.guests, winner.guests)
            } else {
                "as much free memory and as many guests, later in name order".to_string()
            };
            others.push(format!("{}: {why}", name(&second)));
        }
        others.extend(incompatible.into_iter().map(|(host, why)| format!("{}: {why}", self.hosts[host].name)));
        for other in others.into_iter().take(OTHERS_IN_REASON) {
            reason.push_str("; ");
            reason.push_str(&other);
        }
        reason
    }
}

/// Resources a guest takes on its target: what it holds now (nothing when shut off), and a
/// VF of the target's `sriov_vfs` pool per SR-IOV interface (a live move cannot take those
/// along at all, which the move's own `hostdev` problem says).
#[derive(Debug, Clone, Copy)]
struct Need {
    memory: u64,
    vcpus: u64,
    sriov_vfs: u32,
}

impl Need {
    fn of(guest: &Guest, mode: MigrationMode) -> Self {
        let sriov_vfs = if mode == MigrationMode::Live { 0 } else { sriov_interfaces(guest) };
        Need { memory: guest.memory_held_mib(), vcpus: u64::from(guest.vcpus_held()), sriov_vfs }
    }
}

/// The rules that depend on what is on the host: vCPUs, `max_guests`, anti-affinity (memory is
/// the ranking itself and checked by the caller).
fn load_blocker(guest: &Guest, need: Need, host: &Host, rules: Option<&HostRules>, ledger: &Ledger) -> Option<String> {
    let load = ledger.load(&host.name);
    let rules = rules?;
    if let Some(why) = vcpu_blocker(need, load, rules) {
        return Some(why);
    }
    if let Some(max) = rules.max_guests
        && load.guests >= max
    {
        return Some(format!("already at max_guests = {max}"));
    }
    if let Some(why) = sriov_blocker(need, load, rules) {
        return Some(why);
    }
    ledger
        .cluster_conflict(&guest.name, &host.name)
        .map(|(cluster, member)| format!("cluster {cluster} already there ({member})"))
}

fn sriov_blocker(need: Need, load: Load, rules: &HostRules) -> Option<String> {
    if need.sriov_vfs == 0 {
        return None;
    }
    match &rules.sriov {
        None => Some(format!("no `sriov_vfs` pool configured, needed for {} SR-IOV interfaces", need.sriov_vfs)),
        Some(pool) => pool.shortfall(load.sriov_vfs_arriving, need.sriov_vfs),
    }
}

fn vcpu_blocker(need: Need, load: Load, rules: &HostRules) -> Option<String> {
    let limit = u64::from(rules.vcpu_limit);
    (load.vcpus + need.vcpus > limit).then(|| {
        format!("only {} of {} free", vcpus(limit as i64 - load.vcpus as i64), vcpus(limit as i64))
    })
}

/// Every host's reason for refusing the guest, in name order (the first few, then a count).
fn explain_unplaced(
    guest: &Guest,
    need: Need,
    mode: MigrationMode,
    topo: &Topology,
    rules: &BTreeMap<String, HostRules>,
    ledger: &Ledger,
) -> MoveProblem {
    let source = topo.hosts.get(&guest.host);
    let mut reasons = Vec::new();
    let mut others = 0usize;
    for host in topo.hosts.values().filter(|h| h.name != guest.host) {
        if reasons.len() == HOSTS_IN_EXPLANATION {
            others += 1;
            continue;
        }
        let host_rules = rules.get(&host.name);
        let why = if let Some(refusal) = host_rules.and_then(HostRules::refusal) {
            refusal.to_string()
        } else if let Some(blocker) = host_blockers(guest, source, host, mode).into_iter().next() {
            blocker.message
        } else {
            let load = ledger.load(&host.name);
            let capacity = host_rules.map_or(0, |r| r.memory_capacity_mib);
            let free = capacity as i64 - load.memory_mib as i64;
            if free < need.memory as i64 {
                format!("only {} free after the planned moves", mib_signed(free))
            } else {
                load_blocker(guest, need, host, host_rules, ledger).unwrap_or_else(|| "no room".to_string())
            }
        };
        reasons.push(format!("{}: {why}", host.name));
    }
    let mut message = format!(
        "no host can take {} ({}, {}) off drained {}",
        guest.name,
        mib(need.memory),
        vcpus(need.vcpus as i64),
        guest.host
    );
    if reasons.is_empty() {
        message.push_str(": there is no other host");
    } else {
        message.push_str(": ");
        message.push_str(&reasons.join("; "));
        if others > 0 {
            message.push_str(&format!("; and {others} more hosts"));
        }
    }
    MoveProblem { code: "no_target".into(), guest: guest.name.clone(), from: guest.host.clone(), to: String::new(), message }
}
