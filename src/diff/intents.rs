//! The rule, rebalance and disruption-budget blocks resolved against the topology, and the
//! contradictions between intents that no placement can satisfy (a pinned guest on a drained
//! host, an affinity group that is also anti-affine, …), each reported at its span.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, PlacementRule, RebalanceIntent, RuleKind, Span, Spanned};
use crate::inventory::Topology;

use super::capacity::HostRules;
use super::error::DiffError;
use super::resolve::{NameIndex, Resolution};
use super::ruleset::{DisruptionBudget, Group, GroupSource, RuleSet};
use super::suggest;

/// A rebalance block with its hosts resolved.
pub(crate) struct Rebalance<'c> {
    pub intent: &'c RebalanceIntent,
    /// es.xml host names, sorted; every host of the topology when the block lists none.
    pub hosts: Vec<String>,
}

/// Where each rule mentions a guest, for errors found after resolution.
#[derive(Default)]
pub(crate) struct RuleSpans<'c> {
    /// Guest → the element naming it in its pin rule.
    pub pins: BTreeMap<String, &'c Span>,
    /// (guest, host) → the host element of the ban rule.
    pub bans: BTreeMap<(String, String), &'c Span>,
    /// Affinity group index → the rule's name.
    pub affinity: Vec<&'c Span>,
}

/// Everything resolved.
pub(crate) struct Resolved<'c> {
    pub rules: RuleSet,
    pub spans: RuleSpans<'c>,
    pub rebalances: Vec<Rebalance<'c>>,
}

/// Resolves rules, rebalances and budgets; pushes an error for every unknown or ambiguous name
/// and every contradiction that does not depend on guest blocks (see [`check_fixed`]).
pub(crate) fn resolve<'c>(
    cfg: &'c Config,
    topo: &Topology,
    host_names: &NameIndex<'_>,
    guest_names: &NameIndex<'_>,
    hosts: &BTreeMap<String, HostRules>,
    errors: &mut Vec<DiffError>,
) -> Resolved<'c> {
    let mut resolver = Resolver {
        host_names,
        guest_names,
        errors,
    };
    let mut rules = RuleSet::default();
    let mut spans = RuleSpans::default();
    for rule in &cfg.rules {
        resolver.rule(rule, topo, hosts, &mut rules, &mut spans);
    }
    if cfg.defaults.rac_anti_affinity {
        for cluster in topo.clusters.values() {
            let mut members: Vec<String> = cluster
                .members
                .iter()
                .filter(|m| topo.guests.contains_key(*m))
                .cloned()
                .collect();
            members.sort_unstable();
            members.dedup();
            if members.len() > 1 {
                rules.anti_affinity.push(Group {
                    name: cluster.name.clone(),
                    source: GroupSource::RacCluster,
                    members,
                });
            }
        }
    }
    resolver.pins_against_bans(topo, &rules, &spans);
    resolver.affinity_against_anti_affinity(cfg, &rules, &spans);
    for budget in &cfg.disruption_budgets {
        if let Some(resolved) = resolver.budget(budget, topo) {
            rules.disruption_budgets.push(resolved);
        }
    }
    resolver.host_intents(cfg);
    let rebalances = resolver.rebalances(cfg, topo);
    Resolved {
        rules,
        spans,
        rebalances,
    }
}

/// A guest placed by the configuration: by its guest block (`guest { host = … }`) or because
/// a pin rule keeps it where it is.
pub(crate) struct Fixed<'c> {
    pub host: String,
    /// The guest block's host value; `None` for a pin rule.
    pub value: Option<&'c Span>,
}

/// Contradictions between the rules and the guests the configuration places itself: a guest
/// block moving a pinned guest or onto a banned host, and affinity members fixed on two hosts.
pub(crate) fn check_fixed(
    rules: &RuleSet,
    spans: &RuleSpans<'_>,
    fixed: &BTreeMap<String, Fixed<'_>>,
    topo: &Topology,
    errors: &mut Vec<DiffError>,
) {
    for (guest, place) in fixed {
        let Some(value) = place.value else { continue };
        if let Some(rule) = rules.pinned.get(guest) {
            let current = topo.guests.get(guest).map_or("", |g| g.host.as_str());
            if current != place.host {
                errors.push(DiffError {
                    span: Some(value.clone()),
                    message: format!("guest {guest} is pinned by pin rule \"{rule}\" (it never moves), but its guest block moves it from {current} to {}", place.host),
                    label: "pinned guest".into(),
                    help: Some(format!("remove `host` from the guest block, or {guest} from pin rule \"{rule}\"")),
                    guest: Some(guest.clone()),
                    host: Some(place.host.clone()),
                });
            }
        }
        if let Some(rule) = rules.ban(guest, &place.host) {
            let notes = spans.bans.get(&(guest.clone(), place.host.clone()));
            errors.push(DiffError {
                span: Some(value.clone()),
                message: format!(
                    "guest {guest} is placed on {}, which ban rule \"{rule}\" forbids",
                    place.host
                ),
                label: "banned host".into(),
                help: Some(match notes {
                    Some(_) => format!(
                        "pick another host, or remove {} from ban rule \"{rule}\"",
                        place.host
                    ),
                    None => "pick another host".to_string(),
                }),
                guest: Some(guest.clone()),
                host: Some(place.host.clone()),
            });
        }
    }
    for (index, group) in rules.affinity.iter().enumerate() {
        let hosts: BTreeSet<(&str, &str)> = group
            .members
            .iter()
            .filter_map(|m| fixed.get(m).map(|f| (f.host.as_str(), m.as_str())))
            .collect();
        let distinct: BTreeSet<&str> = hosts.iter().map(|(h, _)| *h).collect();
        if distinct.len() > 1 {
            let places: Vec<String> = hosts.iter().map(|(h, m)| format!("{m} on {h}")).collect();
            errors.push(DiffError {
                span: spans.affinity.get(index).map(|s| (*s).clone()),
                message: format!(
                    "affinity rule \"{}\" keeps its guests on one host, but pins and guest blocks place them on {} hosts: {}",
                    group.name,
                    distinct.len(),
                    places.join(", ")
                ),
                label: "members fixed on different hosts".into(),
                help: Some("place every member on the same host, or none of them".into()),
                guest: None,
                host: None,
            });
        }
    }
}

struct Resolver<'r, 'n> {
    host_names: &'r NameIndex<'n>,
    guest_names: &'r NameIndex<'n>,
    errors: &'r mut Vec<DiffError>,
}

impl Resolver<'_, '_> {
    /// Resolves one name of a rule's list; `what` is `guest` or `host`, `context` names the rule.
    fn name(&mut self, context: &str, what: &str, value: &Spanned<String>) -> Option<String> {
        let (names, others, other_kind) = if what == "guest" {
            (self.guest_names, self.host_names, "host")
        } else {
            (self.host_names, self.guest_names, "guest")
        };
        let label = value.value.as_str();
        let (message, short, help) = match names.resolve(label) {
            Resolution::Found(name) => return Some(name.to_string()),
            Resolution::Ambiguous(candidates) => (
                format!(
                    "{context}: {what} \"{label}\" is ambiguous, it is the short name of {}",
                    candidates.join(" and ")
                ),
                format!("ambiguous {what} name"),
                Some(format!("write the full name, e.g. \"{}\"", candidates[0])),
            ),
            Resolution::Unknown { suggestion } => {
                let help = if others.contains(label) {
                    Some(format!("\"{label}\" is a {other_kind}, not a {what}"))
                } else {
                    suggestion.map(|s| format!("did you mean \"{s}\"?"))
                };
                (
                    format!("{context}: {what} \"{label}\" is not in the topology"),
                    format!("unknown {what}"),
                    help,
                )
            }
        };
        let (guest, host) = if what == "guest" {
            (Some(label.to_string()), None)
        } else {
            (None, Some(label.to_string()))
        };
        self.errors.push(DiffError {
            span: Some(value.span.clone()),
            message,
            label: short,
            help,
            guest,
            host,
        });
        None
    }

    /// Resolves a list, reporting a name given twice.
    fn names<'c>(
        &mut self,
        context: &str,
        what: &str,
        values: &'c [Spanned<String>],
    ) -> Vec<(String, &'c Span)> {
        let mut resolved: Vec<(String, &Span)> = Vec::new();
        for value in values {
            let Some(name) = self.name(context, what, value) else {
                continue;
            };
            if resolved.iter().any(|(n, _)| *n == name) {
                self.errors.push(DiffError {
                    span: Some(value.span.clone()),
                    message: format!("{context}: {what} {name} is listed twice"),
                    label: "listed twice".into(),
                    help: Some("remove one of the two".into()),
                    guest: (what == "guest").then(|| name.clone()),
                    host: (what == "host").then(|| name.clone()),
                });
                continue;
            }
            resolved.push((name, &value.span));
        }
        resolved
    }

    fn rule<'c>(
        &mut self,
        rule: &'c PlacementRule,
        topo: &Topology,
        hosts: &BTreeMap<String, HostRules>,
        rules: &mut RuleSet,
        spans: &mut RuleSpans<'c>,
    ) {
        let name = rule.name.value.clone();
        let kind = rule.kind.as_str().replace('_', "-");
        let context = format!("{kind} rule \"{name}\"");
        let guests = self.names(&context, "guest", &rule.guests);
        let members = || {
            let mut members: Vec<String> = guests.iter().map(|(g, _)| g.clone()).collect();
            members.sort_unstable();
            members
        };
        match rule.kind {
            RuleKind::AntiAffinity => {
                if guests.len() > 1 {
                    rules.anti_affinity.push(Group {
                        name,
                        source: GroupSource::Rule,
                        members: members(),
                    });
                }
            }
            RuleKind::Affinity => {
                for (guest, span) in &guests {
                    if let Some(other) = rules.affinity_of(guest) {
                        let other = rules.affinity[other].name.clone();
                        self.errors.push(DiffError {
                            span: Some((*span).clone()),
                            message: format!(
                                "{context}: guest {guest} is already in affinity rule \"{other}\""
                            ),
                            label: "in two affinity rules".into(),
                            help: Some(format!(
                                "merge affinity rules \"{other}\" and \"{name}\" into one"
                            )),
                            guest: Some(guest.clone()),
                            host: None,
                        });
                        return;
                    }
                }
                if guests.len() > 1 {
                    rules.affinity.push(Group {
                        name,
                        source: GroupSource::Rule,
                        members: members(),
                    });
                    spans.affinity.push(&rule.name.span);
                }
            }
            RuleKind::Pin => {
                for (guest, span) in guests {
                    let current = topo
                        .guests
                        .get(&guest)
                        .map(|g| g.host.clone())
                        .unwrap_or_default();
                    if let Some(refusal) = hosts
                        .get(&current)
                        .filter(|r| r.empties())
                        .and_then(HostRules::refusal)
                    {
                        self.errors.push(DiffError {
                            span: Some(span.clone()),
                            message: format!("{context}: guest {guest} never moves, but its host {current} is {refusal}"),
                            label: format!("pinned on a {refusal} host"),
                            help: Some(format!("remove {guest} from pin rule \"{name}\", or stop emptying {current}")),
                            guest: Some(guest.clone()),
                            host: Some(current),
                        });
                        continue;
                    }
                    rules.pinned.insert(guest.clone(), name.clone());
                    spans.pins.insert(guest, span);
                }
            }
            RuleKind::Ban => {
                let banned_hosts = self.names(&context, "host", &rule.hosts);
                for (guest, _) in &guests {
                    let entry = rules.banned.entry(guest.clone()).or_default();
                    for (host, span) in &banned_hosts {
                        entry.entry(host.clone()).or_insert_with(|| name.clone());
                        spans
                            .bans
                            .entry((guest.clone(), host.clone()))
                            .or_insert(span);
                    }
                }
            }
        }
    }

    /// A pinned guest on a host a ban forbids cannot satisfy both rules.
    fn pins_against_bans(&mut self, topo: &Topology, rules: &RuleSet, spans: &RuleSpans<'_>) {
        for (guest, pin) in &rules.pinned {
            let current = topo
                .guests
                .get(guest)
                .map(|g| g.host.as_str())
                .unwrap_or_default();
            let Some(ban) = rules.ban(guest, current) else {
                continue;
            };
            let span = spans
                .bans
                .get(&(guest.clone(), current.to_string()))
                .or_else(|| spans.pins.get(guest));
            self.errors.push(DiffError {
                span: span.map(|s| (*s).clone()),
                message: format!("guest {guest} is pinned by pin rule \"{pin}\" on {current}, which ban rule \"{ban}\" forbids"),
                label: "pinned guest on a banned host".into(),
                help: Some(format!("remove {guest} from one of the two rules")),
                guest: Some(guest.clone()),
                host: Some(current.to_string()),
            });
        }
    }

    /// Two guests that must share a host (affinity) and must not (anti-affinity) at once.
    fn affinity_against_anti_affinity(
        &mut self,
        cfg: &Config,
        rules: &RuleSet,
        spans: &RuleSpans<'_>,
    ) {
        for (index, group) in rules.affinity.iter().enumerate() {
            for anti in &rules.anti_affinity {
                let both: Vec<&str> = group
                    .members
                    .iter()
                    .filter(|m| anti.members.binary_search(m).is_ok())
                    .map(String::as_str)
                    .collect();
                if both.len() < 2 {
                    continue;
                }
                let help = match anti.source {
                    GroupSource::Rule => {
                        format!("remove {} from one of the two rules", both.join(" or "))
                    }
                    GroupSource::RacCluster => format!(
                        "RAC members never share a host; to allow it, set `rac_anti_affinity = false` in the defaults block{}",
                        if cfg.defaults.rac_anti_affinity {
                            ""
                        } else {
                            " (it is)"
                        }
                    ),
                };
                self.errors.push(DiffError {
                    span: spans.affinity.get(index).map(|s| (*s).clone()),
                    message: format!(
                        "affinity rule \"{}\" puts {} on one host, but {} keeps them apart",
                        group.name,
                        both.join(" and "),
                        anti.anti_affinity_label()
                    ),
                    label: "contradicts an anti-affinity".into(),
                    help: Some(help),
                    guest: None,
                    host: None,
                });
            }
        }
    }

    fn budget(
        &mut self,
        budget: &crate::config::DisruptionBudget,
        topo: &Topology,
    ) -> Option<DisruptionBudget> {
        let name = budget.name.value.clone();
        let context = format!("disruption budget \"{name}\"");
        let mut members: Vec<String> = match &budget.cluster {
            Some(cluster) => {
                let found = topo.clusters.values().find(|c| c.name == cluster.value);
                let Some(found) = found else {
                    let names: Vec<&str> =
                        topo.clusters.values().map(|c| c.name.as_str()).collect();
                    let help = match suggest::closest(&cluster.value, names.iter().copied()) {
                        Some(s) => format!("did you mean \"{s}\"?"),
                        None if names.is_empty() => "es.xml defines no clusters".to_string(),
                        None => format!("es.xml clusters: {}", names.join(", ")),
                    };
                    self.errors.push(DiffError {
                        span: Some(cluster.span.clone()),
                        message: format!(
                            "{context}: cluster \"{}\" is not in es.xml",
                            cluster.value
                        ),
                        label: "unknown cluster".into(),
                        help: Some(help),
                        guest: None,
                        host: None,
                    });
                    return None;
                };
                found
                    .members
                    .iter()
                    .filter(|m| topo.guests.contains_key(*m))
                    .cloned()
                    .collect()
            }
            None => self
                .names(&context, "guest", &budget.guests)
                .into_iter()
                .map(|(g, _)| g)
                .collect(),
        };
        members.sort_unstable();
        members.dedup();
        Some(DisruptionBudget {
            name,
            members,
            max_unavailable: budget.max_unavailable.value,
        })
    }

    /// `return_home` on a host being emptied asks for two opposite things.
    fn host_intents(&mut self, cfg: &Config) {
        for intent in cfg.hosts.values() {
            let entering = intent.maintenance == Some(true);
            if !(intent.return_home || intent.maintenance == Some(false))
                || !(intent.drain || intent.evacuate || entering)
            {
                continue;
            }
            let what = if intent.evacuate {
                "evacuate"
            } else if entering {
                "maintenance = true"
            } else {
                "drain"
            };
            self.errors.push(DiffError {
                span: Some(intent.name.span.clone()),
                message: format!("host {} has both `return_home` and `{what}`: guests cannot come back to a host being emptied", intent.name.value),
                label: format!("return_home and {what}"),
                help: Some(format!("keep one of the two for host \"{}\"", intent.name.value)),
                guest: None,
                host: Some(intent.name.value.clone()),
            });
        }
    }

    /// Resolves each rebalance's hosts; two rebalances may not share a host (each would undo
    /// the other's work).
    fn rebalances<'c>(&mut self, cfg: &'c Config, topo: &Topology) -> Vec<Rebalance<'c>> {
        let mut owner: BTreeMap<String, &str> = BTreeMap::new();
        let mut resolved = Vec::new();
        for intent in &cfg.rebalances {
            let context = format!("rebalance \"{}\"", intent.name.value);
            let hosts: Vec<(String, Option<&Span>)> = match &intent.hosts {
                Some(values) => self
                    .names(&context, "host", values)
                    .into_iter()
                    .map(|(h, s)| (h, Some(s)))
                    .collect(),
                None => topo.hosts.keys().map(|h| (h.clone(), None)).collect(),
            };
            let mut clash = false;
            for (host, span) in &hosts {
                if let Some(first) = owner.get(host) {
                    self.errors.push(DiffError {
                        span: Some(span.cloned().unwrap_or_else(|| intent.name.span.clone())),
                        message: format!("{context} and rebalance \"{first}\" both include host {host}: each would undo the other's moves"),
                        label: "host in two rebalances".into(),
                        help: Some("give each host to at most one rebalance".into()),
                        guest: None,
                        host: Some(host.clone()),
                    });
                    clash = true;
                    break;
                }
            }
            if clash {
                continue;
            }
            for (host, _) in &hosts {
                owner.insert(host.clone(), &intent.name.value);
            }
            let mut hosts: Vec<String> = hosts.into_iter().map(|(h, _)| h).collect();
            hosts.sort_unstable();
            resolved.push(Rebalance { intent, hosts });
        }
        resolved
    }
}
