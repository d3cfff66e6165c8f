//! Desired placement: the configuration's blocks resolved against the topology, and a host for
//! every guest.
//!
//! Decisions are taken in this order, each on the load the earlier ones leave:
//! 1. guests the configuration places (`guest { host = … }`); pinned guests stay;
//! 2. `return_home`: guests earlier plans moved off a host go back to it (from the history);
//! 3. guests that must move without a host given get one chosen ([`placement`](super)):
//!    affinity groups that must come together, then single guests biggest first: guests of
//!    drained and evacuated hosts, guests on a host a ban forbids, and surplus members of an
//!    anti-affinity group sharing a host;
//! 4. every `rebalance` evens out its hosts.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, HostIntent, MigrationMode, Span};
use crate::inventory::fast_hash::FastSet;
use crate::inventory::{Guest, Topology};

use super::blocks::{Pin, resolve_guest_blocks, resolve_host_blocks};
use super::capacity::{HostRules, Ledger};
use super::error::DiffError;
use super::fit::{World, all_violations, describe};
use super::intents::{self, Fixed};
use super::model::{MoveProblem, RebalanceOutcome};
use super::placement::{Outcome, Placer, Request};
use super::rebalance::rebalance;
use super::resolve::NameIndex;
use super::ruleset::RuleSet;

/// Where every guest should be.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Every guest of the topology, by its es.xml name.
    pub guests: BTreeMap<String, DesiredGuest>,
    /// Every host of the topology with its rules (host block over defaults).
    pub hosts: BTreeMap<String, HostRules>,
    /// Guests that must move but that no host can take (code `no_target`), and guests that
    /// cannot return home (code `return_home`); they keep their current host in
    /// [`Desired::guests`].
    pub unplaced: Vec<MoveProblem>,
    /// The placement rules, resolved (the scheduler reads the disruption budgets here).
    pub rules: RuleSet,
    /// How each `rebalance` ended, in configuration order (one that has fewer than two hosts
    /// taking guests has nothing to even out and is not listed).
    pub rebalances: Vec<RebalanceOutcome>,
}

/// Where one guest should be, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredGuest {
    pub host: String,
    /// The mode its move uses: what its guest block asks (or `offline_force` off an evacuated
    /// host, or its rebalance's mode); `None` = the default mode.
    pub mode: Option<MigrationMode>,
    pub origin: Origin,
}

/// Why a guest's desired host is what it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Nothing asks it to move.
    Stays,
    /// `guest { host = … }`; the span of the value.
    Pinned { span: Span },
    /// berth chose this host (drain, evacuation, rule repair, return home, rebalance); the
    /// reason says what asked for the move and why this host won over the others.
    Chosen { reason: String },
    /// It must move but no host can take it (see [`Desired::unplaced`]).
    Unplaced,
    /// Its host is in maintenance and no host can take it: it is stopped where it is and stays
    /// defined there; the reason says why it could not move.
    StopInPlace { reason: String },
    /// Its host's maintenance ends and berth stopped it there for that maintenance (state
    /// journal): it is started where it is.
    StartInPlace { reason: String },
}

/// What earlier plans did, as far as intents need it (gathered by the caller from the state
/// file; the diff reads no files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Guest → the hosts berth moved it off and it has not come back to since, oldest first.
    pub departed: BTreeMap<String, Vec<String>>,
    /// Guest → the host berth stopped it in place on for maintenance, when berth has not
    /// started or moved it since.
    pub stopped_in_place: BTreeMap<String, String>,
    /// Hosts rolling maintenances serviced, oldest first.
    pub serviced: Vec<super::Serviced>,
}

/// [`desired_with`] without history: `return_home` has nothing to bring back.
pub fn desired(cfg: &Config, topo: &Topology) -> Result<Desired, Vec<DiffError>> {
    desired_with(cfg, topo, &History::default())
}

/// Resolves every block and decides the desired host of every guest.
///
/// A label may be the full es.xml name or its first DNS label when that is unambiguous.
/// Errors (unknown or ambiguous names, a block given twice, contradictory intents such as a
/// guest pinned to a drained host or an affinity that is also an anti-affinity) are all
/// collected, each at the span of the offending label or value. Guests that must move but fit
/// nowhere are not errors: they are in [`Desired::unplaced`], explained.
pub fn desired_with(
    cfg: &Config,
    topo: &Topology,
    history: &History,
) -> Result<Desired, Vec<DiffError>> {
    desired_and_ledger(cfg, topo, history, false).map(|(desired, _)| desired)
}

/// [`desired_with`], and with `spare_ledger` the topology's current state as a [`Ledger`] of
/// the resolved rules, built beside the placement (for [`super::moves`]).
pub(super) fn desired_and_ledger<'t>(
    cfg: &Config,
    topo: &'t Topology,
    history: &History,
    spare_ledger: bool,
) -> Result<(Desired, Option<Ledger<'t>>), Vec<DiffError>> {
    let host_names = NameIndex::new(topo.hosts.keys().map(String::as_str));
    let guest_names = NameIndex::new(topo.guests.keys().map(String::as_str));
    let mut errors = Vec::new();

    let host_intents = resolve_host_blocks(cfg, topo, &host_names, &guest_names, &mut errors);
    let hosts: BTreeMap<String, HostRules> = topo
        .hosts
        .values()
        .map(|h| {
            (
                h.name.clone(),
                HostRules::new(h, host_intents.get(h.name.as_str()).copied(), &cfg.defaults),
            )
        })
        .collect();
    let pins = resolve_guest_blocks(cfg, topo, &guest_names, &host_names, &hosts, &mut errors);
    let resolved = intents::resolve(cfg, topo, &host_names, &guest_names, &hosts, &mut errors);
    evacuated_hosts_are_down(topo, &host_intents, &mut errors);
    let mut fixed: BTreeMap<String, Fixed> = BTreeMap::new();
    for (guest, pin) in &pins {
        if let Some((host, span)) = pin.host {
            fixed.insert(
                guest.to_string(),
                Fixed {
                    host: host.to_string(),
                    value: Some(span),
                },
            );
        }
    }
    for guest in resolved.rules.pinned.keys() {
        if let Some(current) = topo.guests.get(guest) {
            fixed.entry(guest.clone()).or_insert(Fixed {
                host: current.host.clone(),
                value: None,
            });
        }
    }
    intents::check_fixed(&resolved.rules, &resolved.spans, &fixed, topo, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }

    // The ledger `moves` checks the final placement on starts from the same state as the
    // planner's, and most guests stay: both made on the second core while the planner decides.
    let (placed, (spare, staying)) = crate::parallel::both(
        || {
            let world = World {
                topo,
                hosts: &hosts,
                rules: &resolved.rules,
            };
            let mut planner = Planner {
                world: &world,
                cfg,
                pins: &pins,
                ledger: Ledger::new(topo, &resolved.rules),
                leaving_hosts: hosts
                    .iter()
                    .filter(|(_, r)| r.evacuate || r.maintenance || r.drain)
                    .map(|(h, _)| h.as_str())
                    .collect(),
                decided: BTreeMap::new(),
                settled: BTreeSet::new(),
                unplaced: Vec::new(),
                rebalances: Vec::new(),
                errors: Vec::new(),
            };
            planner.configured();
            planner.es_xml_wins();
            planner.return_home(history);
            planner.start_in_place(history);
            let (groups, singles) = planner.requests();
            if !planner.errors.is_empty() {
                return Err(planner.errors);
            }
            planner.place(groups, singles);
            for spec in &resolved.rebalances {
                planner.rebalance(spec);
            }
            let Planner {
                decided,
                unplaced,
                rebalances,
                ..
            } = planner;
            Ok((decided, unplaced, rebalances))
        },
        || {
            let ledger = spare_ledger.then(|| Ledger::new(topo, &resolved.rules));
            (ledger, staying(topo, &pins))
        },
    );
    let (decided, unplaced, rebalances) = placed?;
    // `decided` and the topology's guests are both in name order: walked side by side rather
    // than a million guests each looked up in `decided` (names compared down a tree path).
    let mut decided = decided.into_iter().peekable();
    let guests = staying
        .into_iter()
        .zip(topo.guests.keys())
        .map(|((key, stays), name)| {
            // A decision for a name the topology does not have is dropped, as before.
            while decided.next_if(|(d, _)| d < name).is_some() {}
            let entry = decided
                .next_if(|(d, _)| d == name)
                .map_or(stays, |(_, entry)| entry);
            (key, entry)
        })
        .collect();
    Ok((
        Desired {
            guests,
            hosts,
            unplaced,
            rules: resolved.rules,
            rebalances,
        },
        spare,
    ))
}

/// Every guest of the topology, in name order, as it is when nothing asks it to move
/// ([`Origin::Stays`]): made on a second thread while the placement runs (two names copied
/// per guest, a million guests at 100,000 hosts), the decisions replace their guests' entries.
fn staying(topo: &Topology, pins: &BTreeMap<&str, Pin<'_>>) -> Vec<(String, DesiredGuest)> {
    topo.guests
        .values()
        .map(|guest| {
            let stays = DesiredGuest {
                host: guest.host.clone(),
                mode: pins.get(guest.name.as_str()).and_then(|p| p.mode),
                origin: Origin::Stays,
            };
            (guest.name.clone(), stays)
        })
        .collect()
}

/// `evacuate = true` defines the host's guests elsewhere without stopping them: with the host
/// alive they would run twice, so a host that answers cannot be evacuated.
fn evacuated_hosts_are_down(
    topo: &Topology,
    intents: &BTreeMap<&str, &HostIntent>,
    errors: &mut Vec<DiffError>,
) {
    for (name, intent) in intents {
        if intent.evacuate && topo.hosts.get(*name).is_some_and(|h| h.reachable) {
            errors.push(DiffError {
                span: Some(intent.name.span.clone()),
                message: format!("host {name} is marked dead (`evacuate = true`), but libvirt on it answers"),
                label: "host is alive".into(),
                help: Some(format!(
                    "evacuate defines its guests on other hosts from their last known definitions (offline_force) without stopping them, \
                     so they would run twice; use `drain = true` to move them off {name} with its help"
                )),
                guest: None,
                host: Some(name.to_string()),
            });
        }
    }
}

/// An affinity group that must come together (or move together): its members, the host one
/// of them is already placed on by the configuration, if any, and the hosts it must leave
/// (a member shares them with an anti-affinity peer that stays).
struct GroupRequest<'t> {
    group: usize,
    members: Vec<Request<'t>>,
    fixed: Option<&'t str>,
    avoid: Vec<&'t str>,
}

/// The decisions of one `desired` call, taken in order on one ledger.
struct Planner<'w, 'a, 't> {
    world: &'w World<'a, 't>,
    cfg: &'a Config,
    pins: &'a BTreeMap<&'t str, Pin<'t>>,
    ledger: Ledger<'t>,
    /// The hosts every guest must leave (drained, in maintenance or evacuated), so that the
    /// guests of the others, nearly all of a large fleet, are passed over with one hash lookup
    /// instead of a search of the hosts' tree by name.
    leaving_hosts: FastSet<&'a str>,
    /// Guests whose desired host is decided (not [`Origin::Stays`]).
    decided: BTreeMap<String, DesiredGuest>,
    /// Guests no later stage may move: placed by the configuration, pinned, returned home,
    /// unplaced, or in an affinity group.
    settled: BTreeSet<String>,
    unplaced: Vec<MoveProblem>,
    rebalances: Vec<RebalanceOutcome>,
    errors: Vec<DiffError>,
}

impl<'t> Planner<'_, '_, 't> {
    fn topo(&self) -> &'t Topology {
        self.world.topo
    }

    fn guest_mode(&self, guest: &str) -> Option<MigrationMode> {
        self.pins.get(guest).and_then(|p| p.mode)
    }

    /// Guest blocks with a host, and pinned guests.
    fn configured(&mut self) {
        let topo = self.topo();
        for guest in topo.guests.values() {
            let pin = self.pins.get(guest.name.as_str());
            if let Some((host, span)) = pin.and_then(|p| p.host) {
                // Off a dead host only `offline_force` works, unless the guest block insists.
                let evacuated = self
                    .world
                    .hosts
                    .get(&guest.host)
                    .is_some_and(|r| r.evacuate)
                    && host != guest.host;
                let mode = self
                    .guest_mode(&guest.name)
                    .or(evacuated.then_some(MigrationMode::OfflineForce));
                self.ledger.apply(guest, host);
                self.decided.insert(
                    guest.name.clone(),
                    DesiredGuest {
                        host: host.to_string(),
                        mode,
                        origin: Origin::Pinned { span: span.clone() },
                    },
                );
                self.settled.insert(guest.name.clone());
            }
        }
        self.settled.extend(self.world.rules.pinned.keys().cloned());
        for group in &self.world.rules.affinity {
            self.settled.extend(group.members.iter().cloned());
        }
    }

    /// Guests whose oldest departed host has `return_home` go back to it when every rule
    /// allows; otherwise they stay, explained (code `return_home`). Biggest first.
    fn return_home(&mut self, history: &History) {
        let topo = self.topo();
        let mut homecomers: Vec<(&'t Guest, &'t str)> = Vec::new();
        for (guest, departed) in &history.departed {
            let Some(guest) = topo.guests.get(guest) else {
                continue;
            };
            let home = departed
                .iter()
                .find(|h| self.world.hosts.get(*h).is_some_and(|r| r.return_home));
            let Some((home, _)) = home.and_then(|h| topo.hosts.get_key_value(h)) else {
                continue;
            };
            // Placed by the configuration, pinned, or in an affinity group: it stays with them.
            if self.settled.contains(&guest.name) {
                continue;
            }
            if self.ledger.host_of(&guest.name) != Some(home.as_str()) {
                homecomers.push((guest, home.as_str()));
            }
        }
        homecomers.sort_by_key(|(g, _)| (std::cmp::Reverse(g.memory_held_mib()), g.name.clone()));
        for (guest, home) in homecomers {
            let mode = self
                .guest_mode(&guest.name)
                .unwrap_or(self.cfg.defaults.mode.value);
            let (mode, _) = super::rules::effective_mode(guest, mode);
            let host = &topo.hosts[home];
            let violations = all_violations(self.world, &self.ledger, guest, mode, host);
            if violations.is_empty() {
                self.ledger.apply(guest, home);
                let reason = format!(
                    "return home: berth moved {} off {home} earlier (state journal), and {home} has return_home = true",
                    guest.name
                );
                self.decided.insert(
                    guest.name.clone(),
                    DesiredGuest {
                        host: home.to_string(),
                        mode: self.guest_mode(&guest.name),
                        origin: Origin::Chosen { reason },
                    },
                );
                self.settled.insert(guest.name.clone());
            } else {
                let why: Vec<String> = violations.iter().map(|v| describe(self.world, v)).collect();
                self.unplaced.push(MoveProblem {
                    code: "return_home".into(),
                    guest: guest.name.clone(),
                    from: guest.host.clone(),
                    to: home.to_string(),
                    message: format!(
                        "cannot bring {} back to {home}: {}",
                        guest.name,
                        why.join("; ")
                    ),
                });
            }
        }
    }

    /// With `drift_source = "es_xml"`, a guest libvirt runs on another host than es.xml says
    /// goes back to es.xml's host (es.xml wins), checked against every rule and capacity;
    /// when it cannot, the plan says why (code `es_xml`) instead of reporting no changes.
    fn es_xml_wins(&mut self) {
        let topo = self.topo();
        let mut strays: Vec<(&'t Guest, &'t str)> = topo
            .guests
            .values()
            .filter(|g| !self.settled.contains(&g.name))
            .filter_map(|g| {
                // Nearly every guest is where es.xml has it: compared before the host is
                // looked up (a search of the hosts' tree by name, a million times).
                let es_host = g.es_host.as_deref().filter(|h| *h != g.host)?;
                let (home, _) = topo.hosts.get_key_value(es_host)?;
                Some((g, home.as_str()))
            })
            .collect();
        strays.sort_by_key(|(g, _)| (std::cmp::Reverse(g.memory_held_mib()), g.name.clone()));
        for (guest, home) in strays {
            let mode = self
                .guest_mode(&guest.name)
                .unwrap_or(self.cfg.defaults.mode.value);
            let (mode, _) = super::rules::effective_mode(guest, mode);
            let violations =
                all_violations(self.world, &self.ledger, guest, mode, &topo.hosts[home]);
            self.settled.insert(guest.name.clone());
            if violations.is_empty() {
                self.ledger.apply(guest, home);
                self.decided.insert(
                    guest.name.clone(),
                    DesiredGuest {
                        host: home.to_string(),
                        mode: self.guest_mode(&guest.name),
                        origin: Origin::Chosen {
                            reason: format!(
                                "drift_source = \"es_xml\": es.xml puts {} on {home}, libvirt runs it on {}",
                                guest.name, guest.host
                            ),
                        },
                    },
                );
            } else {
                let why: Vec<String> = violations.iter().map(|v| describe(self.world, v)).collect();
                self.unplaced.push(MoveProblem {
                    code: "es_xml".into(),
                    guest: guest.name.clone(),
                    from: guest.host.clone(),
                    to: home.to_string(),
                    message: format!(
                        "drift_source = \"es_xml\": es.xml puts {} on {home}, libvirt runs it on {}, and it cannot go back: {}. \
                         To keep it where it runs, use `drift_source = \"libvirt\"` or `berth refresh`",
                        guest.name,
                        guest.host,
                        why.join("; ")
                    ),
                });
            }
        }
    }

    /// Guests berth stopped in place for the maintenance of a host whose maintenance now ends
    /// (`maintenance = false`) are started where they are, if they are still shut off there.
    fn start_in_place(&mut self, history: &History) {
        let topo = self.topo();
        for (name, host) in &history.stopped_in_place {
            let Some(guest) = topo.guests.get(name) else {
                continue;
            };
            let ends = self
                .world
                .hosts
                .get(host)
                .is_some_and(|r| r.end_maintenance);
            if !ends
                || guest.host != *host
                || guest.state.holds_resources()
                || self.settled.contains(name)
            {
                continue;
            }
            self.decided.insert(
                name.clone(),
                DesiredGuest {
                    host: host.clone(),
                    mode: None,
                    origin: Origin::StartInPlace {
                        reason: format!(
                            "end of maintenance on {host}: berth stopped {name} in place there (state journal)"
                        ),
                    },
                },
            );
            self.settled.insert(name.clone());
        }
    }

    /// Whether `guest` is on a host in maintenance: then, when no host can take it, it is
    /// stopped in place instead of failing the plan.
    fn in_maintenance(&self, guest: &Guest) -> bool {
        self.ledger
            .host_of(&guest.name)
            .and_then(|h| self.world.hosts.get(h))
            .is_some_and(|r| r.maintenance)
    }

    /// The entry of a guest of a host in maintenance that no host can take.
    fn stop_in_place(guest: &Guest, why: &str) -> DesiredGuest {
        DesiredGuest {
            host: guest.host.clone(),
            mode: None,
            origin: Origin::StopInPlace {
                reason: format!("maintenance {}, stopped in place: {why}", guest.host),
            },
        }
    }

    /// Why an unsettled guest must leave the host it is on: (reason start, where it leaves,
    /// forced mode).
    fn must_leave(&self, guest: &Guest) -> Option<(String, String, Option<MigrationMode>)> {
        let host = self.ledger.host_of(&guest.name)?;
        let banned = |rule: &str| {
            (
                format!("ban rule \"{rule}\" keeps {} off {host}", guest.name),
                format!("off {host}, which ban rule \"{rule}\" forbids"),
                None,
            )
        };
        if !self.leaving_hosts.contains(host) {
            // Only a ban can send it away (from a host of the topology, as below).
            let rule = self.world.rules.ban(&guest.name, host)?;
            self.world.hosts.get(host)?;
            return Some(banned(rule));
        }
        let rules = self.world.hosts.get(host)?;
        if rules.evacuate {
            return Some((
                format!("evacuate {host} (dead host, offline_force)"),
                format!("off evacuated {host}"),
                Some(MigrationMode::OfflineForce),
            ));
        }
        if rules.maintenance {
            return Some((
                format!("maintenance {host}"),
                format!("off {host} (in maintenance)"),
                None,
            ));
        }
        if rules.drain {
            return Some((format!("drain {host}"), format!("off drained {host}"), None));
        }
        self.world.rules.ban(&guest.name, host).map(banned)
    }

    fn request(
        &self,
        guest: &'t Guest,
        why: String,
        leaving: String,
        forced: Option<MigrationMode>,
    ) -> Request<'t> {
        let mode = forced
            .or(self.guest_mode(&guest.name))
            .unwrap_or(self.cfg.defaults.mode.value);
        Request {
            guest,
            mode,
            why,
            leaving,
        }
    }

    fn group_members(&self, group: usize) -> Vec<&'t Guest> {
        let topo = self.topo();
        self.world.rules.affinity[group]
            .members
            .iter()
            .filter_map(|m| topo.guests.get(m))
            .collect()
    }

    /// The request to place affinity group `group` as one unit, every member asked for `why`.
    fn group_request(&self, group: usize, why: &str) -> GroupRequest<'t> {
        let members = self.group_members(group);
        let fixed = members.iter().find(|m| {
            self.decided.contains_key(&m.name) || self.world.rules.pinned.contains_key(&m.name)
        });
        let fixed = fixed.and_then(|m| self.ledger.host_of(&m.name));
        let requests = members
            .iter()
            .map(|m| {
                let forced = self.must_leave(m).and_then(|(_, _, f)| f);
                self.request(m, why.to_string(), String::new(), forced)
            })
            .collect();
        GroupRequest {
            group,
            members: requests,
            fixed,
            avoid: Vec::new(),
        }
    }

    /// Affinity groups that must come together, and single guests that must move.
    fn requests(&mut self) -> (Vec<GroupRequest<'t>>, BTreeMap<String, Request<'t>>) {
        let topo = self.topo();
        let mut groups = Vec::new();
        for (index, group) in self.world.rules.affinity.iter().enumerate() {
            let members = self.group_members(index);
            let places: BTreeSet<&str> = members
                .iter()
                .filter_map(|m| self.ledger.host_of(&m.name))
                .collect();
            let leaving = members.iter().find_map(|m| {
                self.must_leave(m)
                    .filter(|_| !self.decided.contains_key(&m.name))
            });
            if places.len() <= 1 && leaving.is_none() {
                continue;
            }
            let why = leaving.map_or_else(
                || {
                    format!(
                        "affinity rule \"{}\": members on {} hosts",
                        group.name,
                        places.len()
                    )
                },
                |(why, _, _)| why,
            );
            groups.push(self.group_request(index, &why));
        }

        let mut singles: BTreeMap<String, Request<'t>> = BTreeMap::new();
        for guest in topo.guests.values() {
            if self.settled.contains(&guest.name) {
                continue;
            }
            if let Some((why, leaving, forced)) = self.must_leave(guest) {
                singles.insert(
                    guest.name.clone(),
                    self.request(guest, why, leaving, forced),
                );
            }
        }
        self.anti_affinity_repairs(&mut groups, &mut singles);
        (groups, singles)
    }

    /// Members of an anti-affinity group sharing a host: one stays (one the configuration
    /// placed there, else one that may not move, else the biggest), the others get targets.
    /// A member that is in an affinity group cannot move alone: its whole group must leave the
    /// host (and is explained when it cannot, e.g. because another member is pinned there).
    fn anti_affinity_repairs(
        &mut self,
        groups: &mut Vec<GroupRequest<'t>>,
        singles: &mut BTreeMap<String, Request<'t>>,
    ) {
        let topo = self.topo();
        for (index, group) in self.world.rules.anti_affinity.iter().enumerate() {
            for (host, members) in self.ledger.crowded(index) {
                let staying: Vec<&'t Guest> = members
                    .iter()
                    .filter(|m| !singles.contains_key(**m))
                    .filter_map(|m| topo.guests.get(*m))
                    .collect();
                if staying.len() < 2 {
                    continue;
                }
                let placed: Vec<&&Guest> = staying
                    .iter()
                    .filter(|g| {
                        self.decided.contains_key(&g.name)
                            || self.world.rules.pinned.contains_key(&g.name)
                    })
                    .collect();
                if placed.len() > 1 {
                    let names: Vec<&str> = placed.iter().map(|g| g.name.as_str()).collect();
                    let span = placed.iter().find_map(|g| {
                        match self.decided.get(&g.name).map(|d| &d.origin) {
                            Some(Origin::Pinned { span }) => Some(span.clone()),
                            _ => None,
                        }
                    });
                    self.errors.push(DiffError {
                        span,
                        message: format!("{} keeps {} apart, but the configuration places them all on {host}", group.anti_affinity_label(), names.join(" and ")),
                        label: "anti-affinity members on one host".into(),
                        help: Some(match group.source {
                            super::ruleset::GroupSource::Rule => format!("place them on different hosts, or drop anti-affinity rule \"{}\"", group.name),
                            super::ruleset::GroupSource::RacCluster => "place them on different hosts, or set `rac_anti_affinity = false` in the defaults block".into(),
                        }),
                        guest: names.first().map(|n| n.to_string()),
                        host: Some(host.to_string()),
                    });
                    continue;
                }
                let keep = placed.first().map(|g| **g).unwrap_or_else(|| {
                    let mut by_preference = staying.clone();
                    by_preference.sort_by_key(|g| {
                        (
                            !self.settled.contains(&g.name),
                            std::cmp::Reverse(g.memory_mib),
                            g.name.clone(),
                        )
                    });
                    by_preference[0]
                });
                for guest in staying {
                    if guest.name == keep.name {
                        continue;
                    }
                    let label = group.anti_affinity_label();
                    let why = format!("{label}: {} stays on {host}", keep.name);
                    if let Some(affinity) = self.moves_only_with_its_group(&guest.name) {
                        self.group_leaves(groups, affinity, host, &why);
                        continue;
                    }
                    if self.settled.contains(&guest.name) {
                        continue;
                    }
                    let leaving = format!("away from {} on {host} ({label})", keep.name);
                    singles.insert(guest.name.clone(), self.request(guest, why, leaving, None));
                }
            }
        }
    }

    /// The affinity group of `guest` when that group is what keeps it from moving on its own
    /// (the guest is neither pinned nor placed by the configuration).
    fn moves_only_with_its_group(&self, guest: &str) -> Option<usize> {
        if self.decided.contains_key(guest) || self.world.rules.pinned.contains_key(guest) {
            return None;
        }
        self.world
            .rules
            .affinity
            .iter()
            .position(|g| g.members.iter().any(|m| m == guest))
    }

    /// Affinity group `group` must leave `host` (`why`): a request to place it elsewhere, or
    /// one more host for its existing request to avoid.
    fn group_leaves(
        &self,
        groups: &mut Vec<GroupRequest<'t>>,
        group: usize,
        host: &'t str,
        why: &str,
    ) {
        let index = match groups.iter().position(|g| g.group == group) {
            Some(index) => index,
            None => {
                groups.push(self.group_request(group, why));
                groups.len() - 1
            }
        };
        if !groups[index].avoid.contains(&host) {
            groups[index].avoid.push(host);
        }
    }

    /// The mode a placed guest's entry records: `offline_force` off an evacuated host, else
    /// what its guest block asks (`None` = the default).
    fn desired_mode(&self, request: &Request) -> Option<MigrationMode> {
        let asked = self.guest_mode(&request.guest.name);
        if request.mode == MigrationMode::OfflineForce {
            Some(MigrationMode::OfflineForce)
        } else {
            asked
        }
    }

    /// Places the groups (biggest first), then the single guests (biggest first).
    fn place(&mut self, mut groups: Vec<GroupRequest<'t>>, singles: BTreeMap<String, Request<'t>>) {
        let mut placer = Placer::new(self.world, &self.ledger);
        let size = |g: &GroupRequest| {
            g.members
                .iter()
                .map(|m| m.guest.memory_held_mib())
                .sum::<u64>()
        };
        groups.sort_by_key(|g| (std::cmp::Reverse(size(g)), g.group));
        for group in groups {
            let before: Vec<Option<&str>> = group
                .members
                .iter()
                .map(|m| self.ledger.host_of(&m.guest.name))
                .collect();
            match placer.place_group(
                self.world,
                &mut self.ledger,
                group.group,
                &group.members,
                group.fixed,
                &group.avoid,
            ) {
                Ok((host, reason)) => {
                    for (member, was) in group.members.iter().zip(before) {
                        if was != Some(host.as_str()) {
                            let mode = self.desired_mode(member);
                            let entry = DesiredGuest {
                                host: host.clone(),
                                mode,
                                origin: Origin::Chosen {
                                    reason: format!("{}; {reason}", member.why),
                                },
                            };
                            self.decided.insert(member.guest.name.clone(), entry);
                        }
                    }
                }
                Err(message)
                    if group.members.iter().any(|m| self.in_maintenance(m.guest))
                        && group.members.iter().all(|m| {
                            self.must_leave(m.guest).is_none() || self.in_maintenance(m.guest)
                        }) =>
                {
                    for member in &group.members {
                        if self.must_leave(member.guest).is_some() {
                            self.decided.insert(
                                member.guest.name.clone(),
                                Self::stop_in_place(member.guest, &message),
                            );
                            self.settled.insert(member.guest.name.clone());
                        }
                    }
                }
                Err(message) => {
                    let first = group
                        .members
                        .iter()
                        .find(|m| self.must_leave(m.guest).is_some())
                        .or(group.members.first());
                    if let Some(first) = first {
                        self.unplaced.push(MoveProblem {
                            code: "no_target".into(),
                            guest: first.guest.name.clone(),
                            from: first.guest.host.clone(),
                            to: String::new(),
                            message,
                        });
                    }
                    for member in &group.members {
                        if self.must_leave(member.guest).is_some() {
                            self.decided.insert(
                                member.guest.name.clone(),
                                DesiredGuest {
                                    host: member.guest.host.clone(),
                                    mode: None,
                                    origin: Origin::Unplaced,
                                },
                            );
                        }
                    }
                }
            }
        }
        let mut singles: Vec<Request<'t>> = singles.into_values().collect();
        // Biggest first, then by name (borrowed: no name copied per comparison).
        singles.sort_by(|a, b| {
            let key = |g: &'t Guest| {
                (
                    std::cmp::Reverse(g.memory_held_mib()),
                    std::cmp::Reverse(g.vcpus_held()),
                    std::cmp::Reverse(g.memory_mib),
                    g.name.as_str(),
                )
            };
            key(a.guest).cmp(&key(b.guest))
        });
        for request in singles {
            let guest = request.guest;
            let mode = self.desired_mode(&request);
            let entry = match placer.place(self.world, &mut self.ledger, &request) {
                Outcome::Chosen { host, reason } => DesiredGuest {
                    host,
                    mode,
                    origin: Origin::Chosen { reason },
                },
                Outcome::Unplaced(problem) if self.in_maintenance(guest) => {
                    self.settled.insert(guest.name.clone());
                    Self::stop_in_place(guest, &problem.message)
                }
                Outcome::Unplaced(problem) => {
                    self.unplaced.push(problem);
                    self.settled.insert(guest.name.clone());
                    DesiredGuest {
                        host: guest.host.clone(),
                        mode,
                        origin: Origin::Unplaced,
                    }
                }
            };
            self.decided.insert(guest.name.clone(), entry);
        }
    }

    /// Evens out one rebalance's hosts; a guest already chosen a host this plan may be moved
    /// again (its reason then tells both), settled guests are left alone.
    fn rebalance(&mut self, spec: &intents::Rebalance) {
        let default_mode = spec
            .intent
            .mode
            .as_ref()
            .map_or(self.cfg.defaults.mode.value, |m| m.value);
        let decided = &self.decided;
        let pins = self.pins;
        let mode_of = |guest: &Guest| {
            decided
                .get(&guest.name)
                .and_then(|d| d.mode)
                .or(pins.get(guest.name.as_str()).and_then(|p| p.mode))
                .unwrap_or(default_mode)
        };
        let settled = &self.settled;
        let movable = |guest: &Guest| !settled.contains(&guest.name);
        // A guest moved twice keeps the last decision: its final host and why.
        let (decisions, outcome) =
            rebalance(self.world, &mut self.ledger, spec, &mode_of, &movable);
        self.rebalances.extend(outcome);
        let decisions: BTreeMap<String, _> = decisions
            .into_iter()
            .map(|d| (d.guest.name.clone(), d))
            .collect();
        for (name, decision) in decisions {
            let previous = self.decided.remove(&name);
            let reason = match previous.as_ref().map(|p| &p.origin) {
                Some(Origin::Chosen { reason }) => format!("{reason}; then {}", decision.reason),
                _ => decision.reason,
            };
            let mode = previous
                .and_then(|p| p.mode)
                .or(self.guest_mode(&name))
                .or(spec.intent.mode.as_ref().map(|m| m.value));
            let host = self
                .ledger
                .host_of(&name)
                .unwrap_or(decision.to)
                .to_string();
            if host == decision.guest.host {
                // Moved back where it started: no move at all.
                continue;
            }
            self.decided.insert(
                name,
                DesiredGuest {
                    host,
                    mode,
                    origin: Origin::Chosen { reason },
                },
            );
        }
    }
}
