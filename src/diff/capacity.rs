//! What a host may hold, and a running account of what it holds as moves are decided.

use std::collections::HashMap;

use crate::config::{Defaults, HostIntent};
use crate::inventory::{Guest, Host, Topology};

/// The rules of one host after applying its `host` block (if any) over the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRules {
    /// `drain = true`: its guests get targets chosen automatically, nothing moves onto it.
    pub drain: bool,
    /// `disabled = true`: nothing moves onto it.
    pub disabled: bool,
    pub max_guests: Option<u32>,
    /// Memory guests may use: physical memory minus the host's reserve and minus what domains
    /// outside es.xml hold, MiB.
    pub memory_capacity_mib: u64,
    /// vCPUs guests may use: `cpus × vcpu_overcommit`, rounded down.
    pub vcpu_limit: u32,
    /// The host's `sriov_vfs` pool against what its domains use now; `None` when the host has
    /// no pool configured (then no guest with SR-IOV interfaces may move onto it).
    pub sriov: Option<SriovPool>,
}

/// SR-IOV virtual functions of one host's configured pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SriovPool {
    /// VFs listed in `sriov_vfs`.
    pub configured: u32,
    /// Of those, VFs a domain defined on the host passes through now.
    pub in_use: u32,
}

impl SriovPool {
    /// VFs of the pool no domain uses now. VFs of guests that leave the host during the plan
    /// are not counted: nothing orders their release before another guest's arrival.
    pub fn free(&self) -> u32 {
        self.configured.saturating_sub(self.in_use)
    }

    /// Why the host cannot give `wanted` more VFs when `arriving` are already promised to
    /// other guests moving in (`None`: it can).
    pub fn shortfall(&self, arriving: u32, wanted: u32) -> Option<String> {
        let free = self.free();
        (wanted > free.saturating_sub(arriving)).then(|| {
            let vfs = |n: u32| if n == 1 { "1 free VF".to_string() } else { format!("{n} free VFs") };
            let promised = if arriving > 0 {
                format!(", and other guests moving in need {arriving} of them")
            } else {
                String::new()
            };
            format!("its `sriov_vfs` pool has {} of {} ({} in use){promised}", vfs(free), self.configured, self.in_use)
        })
    }
}

impl HostRules {
    pub fn new(host: &Host, intent: Option<&HostIntent>, defaults: &Defaults) -> Self {
        let reserved = intent.and_then(|i| i.memory_reserved_mib).unwrap_or(defaults.memory_reserved_mib);
        HostRules {
            drain: intent.is_some_and(|i| i.drain),
            disabled: intent.is_some_and(|i| i.disabled),
            max_guests: intent.and_then(|i| i.max_guests.as_ref()).map(|m| m.value),
            memory_capacity_mib: host.memory_mib.saturating_sub(reserved).saturating_sub(host.unmanaged_memory_mib),
            vcpu_limit: vcpu_limit(host.cpus, defaults.vcpu_overcommit).saturating_sub(host.unmanaged_vcpus),
            sriov: intent.and_then(|i| i.sriov_vfs.as_ref()).map(|pool| SriovPool {
                configured: pool.value.len() as u32,
                in_use: pool.value.iter().filter(|vf| host.vfs_in_use.contains(*vf)).count() as u32,
            }),
        }
    }

    /// Whether guests may be moved onto the host at all.
    pub fn accepts_guests(&self) -> bool {
        !self.drain && !self.disabled
    }

    /// Why the host takes no guests, when it does not (`drained`, `disabled`).
    pub fn refusal(&self) -> Option<&'static str> {
        if self.drain {
            Some("drained")
        } else if self.disabled {
            Some("disabled")
        } else {
            None
        }
    }
}

/// How many SR-IOV VFs `guest` takes on a new host: one per host-specific interface.
pub fn sriov_interfaces(guest: &Guest) -> u32 {
    guest.host_specific_interfaces().count() as u32
}

/// `cpus × overcommit`, rounded down; a ratio that is not a positive number counts as 1.
pub fn vcpu_limit(cpus: u32, overcommit: f64) -> u32 {
    let ratio = if overcommit.is_finite() && overcommit > 0.0 { overcommit } else { 1.0 };
    (f64::from(cpus) * ratio).floor().min(f64::from(u32::MAX)) as u32
}

/// What a host holds: memory and vCPUs of its guests that hold resources, and its guest count
/// (every domain, running or not, counts towards `max_guests`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub memory_mib: u64,
    pub vcpus: u64,
    pub guests: u32,
    /// SR-IOV VFs the guests moving in need (what guests moving out give back is not counted,
    /// see [`SriovPool::free`]).
    pub sriov_vfs_arriving: u32,
}

/// The load of every host and the hosts of every RAC cluster's members, updated move by move.
pub(crate) struct Ledger<'t> {
    loads: HashMap<&'t str, Load>,
    /// Cluster id → host → members on it.
    members: HashMap<&'t str, HashMap<&'t str, Vec<&'t str>>>,
    /// Guest → (cluster id, cluster name) of the clusters it belongs to.
    clusters_of: HashMap<&'t str, Vec<(&'t str, &'t str)>>,
}

impl<'t> Ledger<'t> {
    /// The current state of `topo`, in one pass over guests and clusters.
    pub fn new(topo: &'t Topology) -> Self {
        let mut loads: HashMap<&str, Load> = topo.hosts.keys().map(|h| (h.as_str(), Load::default())).collect();
        for guest in topo.guests.values() {
            let load = loads.entry(guest.host.as_str()).or_default();
            load.memory_mib += guest.memory_held_mib();
            load.vcpus += u64::from(guest.vcpus_held());
            load.guests += 1;
        }
        let mut members: HashMap<&str, HashMap<&str, Vec<&str>>> = HashMap::new();
        let mut clusters_of: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
        for cluster in topo.clusters.values() {
            for member in &cluster.members {
                let Some(guest) = topo.guests.get(member) else { continue };
                members
                    .entry(cluster.id.as_str())
                    .or_default()
                    .entry(guest.host.as_str())
                    .or_default()
                    .push(guest.name.as_str());
                clusters_of.entry(guest.name.as_str()).or_default().push((cluster.id.as_str(), cluster.name.as_str()));
            }
        }
        Ledger { loads, members, clusters_of }
    }

    pub fn load(&self, host: &str) -> Load {
        self.loads.get(host).copied().unwrap_or_default()
    }

    /// Records `guest` leaving `from` for `to`.
    pub fn apply(&mut self, guest: &'t Guest, from: &'t str, to: &'t str) {
        let memory = guest.memory_held_mib();
        let vcpus = u64::from(guest.vcpus_held());
        let source = self.loads.entry(from).or_default();
        source.memory_mib = source.memory_mib.saturating_sub(memory);
        source.vcpus = source.vcpus.saturating_sub(vcpus);
        source.guests = source.guests.saturating_sub(1);
        let target = self.loads.entry(to).or_default();
        target.memory_mib += memory;
        target.vcpus += vcpus;
        target.guests += 1;
        target.sriov_vfs_arriving += sriov_interfaces(guest);
        for (cluster, _) in self.clusters_of.get(guest.name.as_str()).into_iter().flatten() {
            let hosts = self.members.entry(cluster).or_default();
            if let Some(there) = hosts.get_mut(from) {
                there.retain(|m| *m != guest.name);
            }
            hosts.entry(to).or_default().push(guest.name.as_str());
        }
    }

    /// The first other member of one of `guest`'s clusters on `host`: (cluster name, member).
    pub fn cluster_conflict(&self, guest: &str, host: &str) -> Option<(&'t str, &'t str)> {
        for (cluster, cluster_name) in self.clusters_of.get(guest).into_iter().flatten() {
            let there = self.members.get(cluster).and_then(|hosts| hosts.get(host));
            if let Some(member) = there.into_iter().flatten().find(|m| **m != guest) {
                return Some((cluster_name, member));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_limit_rounds_down_and_ignores_nonsense_ratios() {
        assert_eq!(vcpu_limit(96, 1.0), 96);
        assert_eq!(vcpu_limit(96, 1.5), 144);
        assert_eq!(vcpu_limit(3, 1.5), 4);
        assert_eq!(vcpu_limit(8, f64::NAN), 8);
        assert_eq!(vcpu_limit(8, -2.0), 8);
    }
}

#[cfg(test)]
mod unmanaged_tests {
    use super::*;
    use crate::diff::fixtures::host;

    #[test]
    fn domains_outside_es_xml_shrink_the_room_for_guests() {
        let mut h = host("adm01", 512, 96);
        let defaults = Defaults { memory_reserved_mib: 32 * 1024, ..Defaults::default() };
        let clean = HostRules::new(&h, None, &defaults);
        h.unmanaged_memory_mib = 16 * 1024;
        h.unmanaged_vcpus = 4;
        let busy = HostRules::new(&h, None, &defaults);
        assert_eq!(clean.memory_capacity_mib - busy.memory_capacity_mib, 16 * 1024);
        assert_eq!(clean.vcpu_limit - busy.vcpu_limit, 4);
    }
}
