//! Converting runs of machines into [`EsHost`]s and [`EsGuest`]s (with the layout of each
//! host), once their roles and parents are known. Separate because it is the part that runs
//! on two threads, one run of machines each, and must report errors in one thread's order.

use crate::inventory::esxml::blocks::Blocks;
use crate::inventory::esxml::error::{EsXmlError, EsXmlErrorKind, machine_element};
use crate::inventory::esxml::layout::{EsLayout, HostLayout};
use crate::inventory::esxml::model::{EsGuest, EsHost, EsOtherMachine};
use crate::inventory::esxml::scan::{IdRef, RawCluster, RawMachine, TextField, push_small};
use crate::inventory::fast_hash::FastMap as IdMap;

use super::lists::ListIndexes;
use super::values::Owner;
use super::{Resolver, Role, host_name};

/// What converting machines needs from the checks before it.
pub(super) struct MachineContext<'c> {
    pub(super) roles: &'c [Role],
    /// `(guest, cluster)` pairs from the clusters' VIP lists, sorted.
    pub(super) vip_members: &'c [(usize, usize)],
    pub(super) clusters: &'c Blocks<RawCluster<'c>>,
    pub(super) indexes: &'c ListIndexes<'c>,
}

/// How a run of machines failed: the memberships of every run are checked before any
/// machine is converted, so errors of the first kind come first.
pub(super) enum RunError {
    Membership(EsXmlError),
    Conversion(EsXmlError),
}

/// [`Resolver::build_machines`]: the machines' part of the
/// [`EsSystem`](crate::inventory::esxml::EsSystem) and the layout.
pub(super) struct BuiltMachines {
    pub(super) hosts: Vec<EsHost>,
    pub(super) guests: Vec<EsGuest>,
    pub(super) others: Vec<EsOtherMachine>,
    /// Per cluster, its guests' ids in file order.
    pub(super) members: Vec<Vec<String>>,
    pub(super) layout: EsLayout,
}

impl BuiltMachines {
    /// Adds the machines that follow these in the file.
    pub(super) fn append(&mut self, next: BuiltMachines) {
        self.hosts.extend(next.hosts);
        self.guests.extend(next.guests);
        self.others.extend(next.others);
        for (mine, theirs) in self.members.iter_mut().zip(next.members) {
            mine.extend(theirs);
        }
        self.layout.hosts.extend(next.layout.hosts);
    }
}

impl Resolver<'_> {
    /// Hosts, guests, cluster members and layout of a run of machines that starts at machine
    /// `first`; `parent_ids` are the run's own (see
    /// [`MachineLinks`](super::links::MachineLinks)).
    pub(super) fn build_machines(
        &self,
        machines: Blocks<RawMachine>,
        first: usize,
        mut parent_ids: Vec<String>,
        cx: &MachineContext,
    ) -> Result<BuiltMachines, RunError> {
        let guest_clusters = self
            .memberships(
                &machines,
                first,
                cx.roles,
                &cx.indexes.clusters,
                cx.vip_members,
            )
            .map_err(RunError::Membership)?;
        self.convert_machines(
            machines,
            first,
            parent_ids.as_mut_slice(),
            &guest_clusters,
            cx,
        )
        .map_err(RunError::Conversion)
    }

    /// [`Resolver::build_machines`] once the run's cluster memberships are known.
    fn convert_machines(
        &self,
        machines: Blocks<RawMachine>,
        first: usize,
        parent_ids: &mut [String],
        guest_clusters: &[Vec<usize>],
        cx: &MachineContext,
    ) -> Result<BuiltMachines, EsXmlError> {
        let roles = &cx.roles[first..first + machines.len()];
        // Room for this run and every run after it: `append` then moves the later runs in
        // without growing the lists, which would copy a million guests into fresh memory
        // (reserved room that is never written is never touched).
        let count = |role| cx.roles[first..].iter().filter(|r| **r == role).count();
        let hosts = count(Role::Host);
        let mut built = BuiltMachines {
            hosts: Vec::with_capacity(hosts),
            guests: Vec::with_capacity(count(Role::Guest)),
            others: Vec::new(),
            members: vec![Vec::new(); cx.clusters.len()],
            layout: EsLayout {
                hosts: std::collections::HashMap::with_capacity(hosts),
            },
        };
        for (i, machine) in machines.into_iter().enumerate() {
            match roles[i] {
                Role::Host => {
                    let (host, host_layout) = self.host(machine)?;
                    built.layout.hosts.insert(host.id.clone(), host_layout);
                    built.hosts.push(host);
                }
                Role::Guest => {
                    let networks = &cx.indexes.networks;
                    self.check_references(&machine, networks, &cx.indexes.volumes)?;
                    let clusters = &guest_clusters[i];
                    let cluster_ids = clusters
                        .iter()
                        .map(|&c| cx.clusters[c].id.to_string())
                        .collect();
                    for &c in clusters {
                        push_small(&mut built.members[c], machine.id.to_string());
                    }
                    let host_id = std::mem::take(&mut parent_ids[i]);
                    built
                        .guests
                        .push(self.guest(machine, host_id, cluster_ids)?);
                }
                Role::Other => built.others.push(other_machine(&machine)),
            }
        }
        Ok(built)
    }

    pub(super) fn unknown(&self, guest: &RawMachine, r: &IdRef, what: &'static str) -> EsXmlError {
        let kind = EsXmlErrorKind::UnknownReference {
            what,
            id: r.id.to_string(),
        };
        self.error(r.offset, machine_element(&guest.id), kind)
    }

    fn check_references(
        &self,
        guest: &RawMachine,
        networks: &IdMap<&str, usize>,
        volumes: &IdMap<&str, usize>,
    ) -> Result<(), EsXmlError> {
        for r in &guest.network_refs {
            if !networks.contains_key(&*r.id) {
                return Err(self.unknown(guest, r, "network"));
            }
        }
        for r in &guest.volume_refs {
            if !volumes.contains_key(&*r.id) {
                return Err(self.unknown(guest, r, "EDV volume"));
            }
        }
        Ok(())
    }

    fn host(&self, m: RawMachine) -> Result<(EsHost, HostLayout), EsXmlError> {
        let owner = Owner {
            element: "machine",
            id: &m.id,
        };
        let host = EsHost {
            physical_memory_mib: self.size(&m.physical_memory, "physicalMemorySize", owner)?,
            image_version: self.image_version(&m.image_version, owner)?,
            guest_ids: m.child_refs.iter().map(|r| r.guest_id.clone()).collect(),
            name: host_name(&m),
            line: m.line,
            id: m.id.into_owned(),
        };
        let layout = HostLayout {
            start_tag: m.start_tag,
            end_tag: m.end_tag,
            last_child_start: m.last_child_start,
            guest_refs: m.child_refs,
        };
        Ok((host, layout))
    }

    fn guest(
        &self,
        m: RawMachine,
        host_id: String,
        cluster_ids: Vec<String>,
    ) -> Result<EsGuest, EsXmlError> {
        let owner = Owner {
            element: "machine",
            id: &m.id,
        };
        Ok(EsGuest {
            name: host_name(&m),
            host_id,
            vcpus: self.vcpus(&m.guest_cores, owner)?,
            memory_mib: self.size(&m.guest_memory, "guestMemory", owner)?,
            image_version: self.image_version(&m.image_version, owner)?,
            cluster_ids,
            network_ids: m
                .network_refs
                .into_iter()
                .map(|r| r.id.into_owned())
                .collect(),
            volume_ids: m
                .volume_refs
                .into_iter()
                .map(|r| r.id.into_owned())
                .collect(),
            line: m.line,
            id: m.id.into_owned(),
        })
    }
}

/// What a machine that is neither KVM host nor guest is, in words.
fn other_machine(m: &RawMachine) -> EsOtherMachine {
    let field = |f: &Option<TextField>| {
        TextField::non_empty(f)
            .map(|f| f.value.to_string())
            .unwrap_or_default()
    };
    let machine_type = field(&m.machine_type);
    let os_type = field(&m.os_type);
    let kind = if machine_type.eq_ignore_ascii_case("storage") {
        "storage cell".to_string()
    } else if os_type.eq_ignore_ascii_case("LinuxPhysical") {
        "bare-metal database server".to_string()
    } else if os_type.is_empty() {
        "machine without an osType".to_string()
    } else {
        format!("machine of osType {os_type}")
    };
    EsOtherMachine {
        name: host_name(m),
        kind,
    }
}
