//! What each host may hold while the plan runs.

use std::collections::BTreeMap;

use crate::diff::Desired;
use crate::inventory::Host;

use super::budget::BudgetSpec;
use super::duration::{Concurrency, DurationModel};

/// Capacity the scheduler keeps every host within, at every instant of any execution order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// By host name. A host missing here is limited by its physical memory and logical CPUs.
    pub hosts: BTreeMap<String, HostLimit>,
    /// Whether a live swap cycle may be broken by routing one guest through a third host.
    pub allow_pivot: bool,
    /// Disruption budgets the schedule keeps under every execution order.
    pub budgets: Vec<BudgetSpec>,
    /// How long steps take, for ordering them and predicting the plan's duration.
    pub durations: DurationModel,
    /// How many steps apply runs at once.
    pub concurrency: Concurrency,
}

/// The limits of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimit {
    /// Memory guests may use, MiB (physical minus reserved).
    pub memory_mib: u64,
    /// vCPUs guests may use (cpus × overcommit).
    pub vcpus: u32,
    /// Guests the host may hold (for choosing pivot hosts).
    pub max_guests: Option<u32>,
    /// False for drained and disabled hosts: never used as a pivot.
    pub accepts_guests: bool,
}

impl Limits {
    /// The limits the configuration sets (host blocks over defaults), as resolved by diff.
    pub fn from_desired(desired: &Desired, allow_pivot: bool) -> Self {
        let hosts = desired
            .hosts
            .iter()
            .map(|(name, rules)| {
                let limit = HostLimit {
                    memory_mib: rules.memory_capacity_mib,
                    vcpus: rules.vcpu_limit,
                    max_guests: rules.max_guests,
                    accepts_guests: rules.accepts_guests(),
                };
                (name.clone(), limit)
            })
            .collect();
        // `rule "disruption_budget"` blocks, as diff resolved them to guest names.
        let budgets = desired
            .rules
            .disruption_budgets
            .iter()
            .map(|b| BudgetSpec {
                name: b.name.clone(),
                members: b.members.clone(),
                max_unavailable: b.max_unavailable,
            })
            .collect();
        Limits {
            hosts,
            allow_pivot,
            budgets,
            ..Limits::default()
        }
    }

    /// The limit of `host`, falling back to its physical size.
    pub fn of(&self, host: &Host) -> HostLimit {
        self.hosts.get(&host.name).copied().unwrap_or(HostLimit {
            memory_mib: host.memory_mib.saturating_sub(host.unmanaged_memory_mib),
            vcpus: host.cpus.saturating_sub(host.unmanaged_vcpus),
            max_guests: None,
            accepts_guests: true,
        })
    }
}
