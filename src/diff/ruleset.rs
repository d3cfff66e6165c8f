//! The placement rules of a configuration, resolved to es.xml names: what every placement
//! (automatic targets, repairs, rebalancing) and every move check must respect.

use std::collections::BTreeMap;

/// Where a group of guests comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSource {
    /// A `rule "anti_affinity"` or `rule "affinity"` block.
    Rule,
    /// A RAC cluster of es.xml (the default anti-affinity).
    RacCluster,
}

/// Guests that a rule relates to each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The rule's or the cluster's name.
    pub name: String,
    pub source: GroupSource,
    /// es.xml guest names, sorted.
    pub members: Vec<String>,
}

impl Group {
    /// How messages name an anti-affinity group: `anti-affinity NAME` or `RAC cluster NAME`.
    pub fn anti_affinity_label(&self) -> String {
        match self.source {
            GroupSource::Rule => format!("anti-affinity {}", self.name),
            GroupSource::RacCluster => format!("RAC cluster {}", self.name),
        }
    }
}

/// At most `max_unavailable` of `members` stopped or migrating at any instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisruptionBudget {
    /// The rule's name.
    pub name: String,
    /// es.xml guest names, sorted.
    pub members: Vec<String>,
    pub max_unavailable: u32,
}

/// Every placement rule, by es.xml name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    /// Members never share a host: `anti_affinity` rules in file order, then (unless
    /// `rac_anti_affinity = false`) every RAC cluster of two or more members.
    pub anti_affinity: Vec<Group>,
    /// Members always share one host. A guest is in at most one affinity group (overlapping
    /// rules are merged when resolved).
    pub affinity: Vec<Group>,
    /// Guests that never move → the pin rule's name.
    pub pinned: BTreeMap<String, String>,
    /// Guest → host it must not run on → the ban rule's name.
    pub banned: BTreeMap<String, BTreeMap<String, String>>,
    /// For the scheduler.
    pub disruption_budgets: Vec<DisruptionBudget>,
}

impl RuleSet {
    /// The ban rule that keeps `guest` off `host`, if one does.
    pub fn ban(&self, guest: &str, host: &str) -> Option<&str> {
        self.banned
            .get(guest)
            .and_then(|hosts| hosts.get(host))
            .map(String::as_str)
    }

    /// The affinity group of `guest` (index into [`RuleSet::affinity`]).
    pub fn affinity_of(&self, guest: &str) -> Option<usize> {
        self.affinity.iter().position(|group| {
            group
                .members
                .binary_search_by(|m| m.as_str().cmp(guest))
                .is_ok()
        })
    }
}
