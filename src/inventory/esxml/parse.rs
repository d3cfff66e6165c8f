//! es.xml text → [`EsSystem`]: scan once, then resolve roles and references and check them.
//!
//! Every check names the file, line and element: an operator with a hand-edited or half-copied
//! es.xml must be able to go straight to the line that is wrong.

use std::borrow::Cow;
use std::collections::hash_map::Entry;

use crate::inventory::size::parse_size_mib;
use crate::inventory::version::ImageVersion;

use super::blocks::Blocks;
use super::error::{EsXmlError, EsXmlErrorKind, Location, machine_element};
use super::layout::{EsLayout, HostLayout};
use super::model::{EsCluster, EsGuest, EsHost, EsNetwork, EsSystem, EsVolume};
use super::scan::{
    IdRef, RawCluster, RawDocument, RawMachine, RawNetwork, RawVolume, TextField, push_small, scan,
};
#[cfg(test)]
use super::scan::{Split, scan_with};
use crate::inventory::fast_hash::{FastMap as IdMap, map_with_capacity as id_map};

/// Parses and checks an es.xml. `source_name` (usually the path) prefixes every error.
pub fn parse(source_name: &str, text: &str) -> Result<EsSystem, EsXmlError> {
    parse_with_layout(source_name, text).map(|(system, _)| system)
}

/// [`parse`], plus the byte ranges of every KVM host and guest reference, for rewriting.
pub fn parse_with_layout(
    source_name: &str,
    text: &str,
) -> Result<(EsSystem, EsLayout), EsXmlError> {
    let raw = scan(source_name, text)?;
    Resolver { source_name, text }.resolve(raw)
}

/// [`parse_with_layout`] with the scan split as `policy` says, for tests comparing a split
/// scan with a sequential one.
#[cfg(test)]
pub(super) fn parse_with_split(
    source_name: &str,
    text: &str,
    policy: Split,
) -> Result<(EsSystem, EsLayout), EsXmlError> {
    let raw = scan_with(source_name, text, policy)?;
    Resolver { source_name, text }.resolve(raw)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Host,
    Guest,
    Other,
}

const OS_KVM_HOST: &str = "LinuxKVM";
const OS_KVM_GUEST: &str = "LinuxKVMGuest";

/// Runs `a` here and `b` on a second thread; both run to the end.
fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let b = s.spawn(b);
        let a = a();
        // The closures return errors as values; a panic is a bug, passed on as is.
        let b = b
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (a, b)
    })
}

/// [`Resolver::link_machines`]: each machine's role, the id of the host listing each guest
/// (empty for other machines), and the clusters' VIP members (see [`Resolver::vip_members`]).
struct MachineLinks {
    roles: Vec<Role>,
    parent_ids: Vec<String>,
    vip_members: Result<Vec<(usize, usize)>, EsXmlError>,
}

/// Where [`Resolver::link_machines`] failed: the host names (checked on the other thread)
/// come between the two.
enum Linking {
    /// Duplicate ids, roles, no KVM host.
    Classifying(EsXmlError),
    /// Which host lists which guest.
    Parents(EsXmlError),
}

impl Linking {
    fn into_error(self) -> EsXmlError {
        match self {
            Linking::Classifying(e) | Linking::Parents(e) => e,
        }
    }
}

/// What converting machines needs from the checks before it.
struct MachineContext<'c> {
    roles: &'c [Role],
    /// `(guest, cluster)` pairs from the clusters' VIP lists, sorted.
    vip_members: &'c [(usize, usize)],
    clusters: &'c Blocks<RawCluster<'c>>,
    indexes: &'c ListIndexes<'c>,
}

/// How a run of machines failed: the memberships of every run are checked before any
/// machine is converted, so errors of the first kind come first.
enum RunError {
    Membership(EsXmlError),
    Conversion(EsXmlError),
}

/// [`Resolver::build_machines`]: the machines' part of the [`EsSystem`] and the layout.
struct BuiltMachines {
    hosts: Vec<EsHost>,
    guests: Vec<EsGuest>,
    /// Per cluster, its guests' ids in file order.
    members: Vec<Vec<String>>,
    layout: EsLayout,
}

impl BuiltMachines {
    /// Adds the machines that follow these in the file.
    fn append(&mut self, next: BuiltMachines) {
        self.hosts.extend(next.hosts);
        self.guests.extend(next.guests);
        for (mine, theirs) in self.members.iter_mut().zip(next.members) {
            mine.extend(theirs);
        }
        self.layout.hosts.extend(next.layout.hosts);
    }
}

/// [`Resolver::index_lists`]: id → position in each list.
struct ListIndexes<'r> {
    networks: IdMap<&'r str, usize>,
    clusters: IdMap<&'r str, usize>,
    volumes: IdMap<&'r str, usize>,
}

struct Resolver<'a> {
    source_name: &'a str,
    text: &'a str,
}

impl Resolver<'_> {
    fn error(&self, offset: usize, element: impl Into<String>, kind: EsXmlErrorKind) -> EsXmlError {
        EsXmlError::new(
            self.source_name,
            Some(Location::of(self.text, offset)),
            element,
            kind,
        )
    }

    fn line(&self, offset: usize) -> usize {
        Location::of(self.text, offset).line
    }

    /// Checks and converts the scanned document. The machines on one side and the other
    /// lists (networks, clusters, EDV volumes) on the other are independent until the guests'
    /// references are checked, so each phase runs them on two threads; errors are still
    /// reported in the order of the checks below (machines first), as one thread would.
    fn resolve(&self, raw: RawDocument) -> Result<(EsSystem, EsLayout), EsXmlError> {
        let RawDocument {
            root_offset,
            oeda_version,
            customer_name,
            machines,
            networks,
            clusters,
            volumes,
        } = raw;
        let (links, (host_names, indexes)) = both(
            || self.link_machines(&machines, &clusters, root_offset),
            || {
                // A machine whose role is in error makes `link_machines` fail first, so it
                // may count as neither host nor guest here.
                let roles = machines.map_to_vec(|m| self.role(m).unwrap_or(Role::Other));
                let host_names = self.check_host_names(&machines, &roles);
                (host_names, self.index_lists(&networks, &clusters, &volumes))
            },
        );
        // In the order of one thread: ids and roles, host names, parents, the other lists.
        let links = match links {
            Err(Linking::Classifying(e)) => return Err(e),
            links => links,
        };
        host_names?;
        let links = links.map_err(Linking::into_error)?;
        let indexes = indexes?;
        let MachineLinks {
            roles,
            mut parent_ids,
            vip_members,
        } = links;
        let vip_members = match vip_members {
            Ok(vip_members) => vip_members,
            Err(vip_error) => {
                // The guests' own cluster references are checked first.
                self.memberships(&machines, 0, &roles, &indexes.clusters, &[])?;
                return Err(vip_error);
            }
        };

        // The second thread also converts the networks and volumes, so it takes fewer machines.
        let head_len = machines.len() * 11 / 20;
        let (head, tail_first, tail) = machines.split_at_block(head_len);
        let tail_parent_ids = parent_ids.split_off(tail_first);
        let cx = MachineContext {
            roles: &roles,
            vip_members: &vip_members,
            clusters: &clusters,
            indexes: &indexes,
        };
        let (head, tail_side) = both(
            || self.build_machines(head, 0, parent_ids, &cx),
            || -> Result<_, RunError> {
                let tail = self.build_machines(tail, tail_first, tail_parent_ids, &cx)?;
                let mut converted = Vec::with_capacity(networks.len());
                for n in networks.iter() {
                    converted.push(self.network(n).map_err(RunError::Conversion)?);
                }
                Ok((tail, converted, volumes.map_to_vec(volume)))
            },
        );
        // The errors one thread would have met first: every guest's cluster references
        // (head, then tail) before any conversion.
        let (mut built, (tail, networks, volumes)) = match (head, tail_side) {
            (Err(RunError::Membership(e)), _) | (_, Err(RunError::Membership(e))) => {
                return Err(e);
            }
            (Err(RunError::Conversion(e)), _) | (_, Err(RunError::Conversion(e))) => {
                return Err(e);
            }
            (Ok(head), Ok(tail_side)) => (head, tail_side),
        };
        built.append(tail);
        let BuiltMachines {
            hosts,
            guests,
            members,
            layout,
        } = built;
        let clusters = clusters
            .into_iter()
            .zip(members)
            .map(|(c, member_ids)| EsCluster {
                name: text(&c.name).unwrap_or_default(),
                id: c.id.into_owned(),
                member_ids,
            })
            .collect();
        let system = EsSystem {
            oeda_version: oeda_version.map(Cow::into_owned),
            customer_name: customer_name
                .map(|c| c.value.into_owned())
                .filter(|c| !c.is_empty()),
            hosts,
            guests,
            clusters,
            networks,
            volumes,
        };
        Ok((system, layout))
    }

    /// Hosts, guests, cluster members and layout of a run of machines that starts at machine
    /// `first`; `parent_ids` are the run's own (see [`MachineLinks`]).
    fn build_machines(
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
        let count = |role| roles.iter().filter(|r| **r == role).count();
        let mut built = BuiltMachines {
            hosts: Vec::with_capacity(count(Role::Host)),
            guests: Vec::with_capacity(count(Role::Guest)),
            members: vec![Vec::new(); cx.clusters.len()],
            layout: EsLayout::default(),
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
                Role::Other => {}
            }
        }
        Ok(built)
    }

    /// The machines' own checks: ids unique, roles, at least one KVM host, and which host
    /// lists each guest (the host names are checked on the other thread meanwhile, see
    /// [`Resolver::resolve`]).
    fn link_machines(
        &self,
        machines: &Blocks<RawMachine>,
        clusters: &Blocks<RawCluster>,
        root_offset: usize,
    ) -> Result<MachineLinks, Linking> {
        let index = self
            .index(machines, "machine", |m| (&*m.id, m.offset))
            .map_err(Linking::Classifying)?;
        let mut roles = Vec::with_capacity(machines.len());
        for m in machines.iter() {
            roles.push(self.role(m).map_err(Linking::Classifying)?);
        }
        if !roles.contains(&Role::Host) {
            return Err(Linking::Classifying(self.error(
                root_offset,
                "<engineeredSystem>",
                EsXmlErrorKind::NoKvmHosts,
            )));
        }
        let parents = self
            .parents(machines, &roles, &index)
            .map_err(Linking::Parents)?;
        let parent_ids = parents
            .iter()
            .map(|p| p.map(|h| machines[h].id.to_string()).unwrap_or_default())
            .collect();
        let vip_members = self.vip_members(machines, &roles, &index, clusters);
        Ok(MachineLinks {
            roles,
            parent_ids,
            vip_members,
        })
    }

    /// Id indexes of the networks, clusters and EDV volumes, and the clusters' names.
    fn index_lists<'r>(
        &self,
        networks: &'r Blocks<RawNetwork>,
        clusters: &'r Blocks<RawCluster>,
        volumes: &'r Blocks<RawVolume>,
    ) -> Result<ListIndexes<'r>, EsXmlError> {
        let indexes = ListIndexes {
            networks: self.index(networks, "network", |n| (&*n.id, n.offset))?,
            clusters: self.index(clusters, "cluster", |c| (&*c.id, c.offset))?,
            volumes: self.index(volumes, "EDV volume", |v| (&*v.id, v.offset))?,
        };
        self.check_cluster_names(clusters)?;
        Ok(indexes)
    }

    /// Id → position, refusing a second definition of the same id.
    fn index<'r, T>(
        &self,
        items: &'r Blocks<T>,
        what: &'static str,
        key: impl Fn(&'r T) -> (&'r str, usize),
    ) -> Result<IdMap<&'r str, usize>, EsXmlError> {
        let mut index = id_map(items.len());
        for (i, item) in items.iter().enumerate() {
            let (id, offset) = key(item);
            match index.entry(id) {
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
                Entry::Occupied(first) => {
                    let first_line = self.line(key(&items[*first.get()]).1);
                    let element = format!("<{} id=\"{id}\">", element_of(what));
                    return Err(self.error(
                        offset,
                        element,
                        EsXmlErrorKind::DuplicateId { what, first_line },
                    ));
                }
            }
        }
        Ok(index)
    }

    fn role(&self, m: &RawMachine) -> Result<Role, EsXmlError> {
        let os_type = TextField::non_empty(&m.os_type).map_or("", |f| f.value.as_ref());
        let role = if os_type.eq_ignore_ascii_case(OS_KVM_HOST) {
            Role::Host
        } else if os_type.eq_ignore_ascii_case(OS_KVM_GUEST) {
            Role::Guest
        } else {
            return Ok(Role::Other);
        };
        match TextField::non_empty(&m.machine_type) {
            Some(t) if !t.value.eq_ignore_ascii_case("compute") => {
                let kind = EsXmlErrorKind::ConflictingMachineType {
                    machine_type: t.value.to_string(),
                    os_type: os_type.to_string(),
                };
                Err(self.error(t.offset, machine_element(&m.id), kind))
            }
            _ => Ok(role),
        }
    }

    /// Hosts and guests need a `hostName` (for guests it is the libvirt domain name), and no
    /// two may share one.
    fn check_host_names(
        &self,
        machines: &Blocks<RawMachine>,
        roles: &[Role],
    ) -> Result<(), EsXmlError> {
        let mut seen: IdMap<&str, &RawMachine> = id_map(machines.len());
        for (m, _) in machines
            .iter()
            .zip(roles)
            .filter(|(_, r)| **r != Role::Other)
        {
            let Some(name) = TextField::non_empty(&m.host_name) else {
                return Err(self.error(
                    m.offset,
                    machine_element(&m.id),
                    EsXmlErrorKind::MissingElement("hostName"),
                ));
            };
            if let Some(first) = seen.insert(name.value.as_ref(), m) {
                let kind = EsXmlErrorKind::DuplicateHostName {
                    name: name.value.to_string(),
                    first_id: first.id.to_string(),
                    first_line: first.line,
                };
                return Err(self.error(name.offset, machine_element(&m.id), kind));
            }
        }
        Ok(())
    }

    /// For each machine, the index of the host that lists it, with every listing checked: only hosts list,
    /// only guests are listed, each guest exactly once.
    fn parents(
        &self,
        machines: &Blocks<RawMachine>,
        roles: &[Role],
        index: &IdMap<&str, usize>,
    ) -> Result<Vec<Option<usize>>, EsXmlError> {
        let mut parents: Vec<Option<usize>> = vec![None; machines.len()];
        for (h, host) in machines
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.child_refs.is_empty())
        {
            if roles[h] != Role::Host {
                let kind = EsXmlErrorKind::NotAHost {
                    os_type: os_type_text(host),
                };
                return Err(self.error(
                    host.child_refs[0].span.start,
                    machine_element(&host.id),
                    kind,
                ));
            }
            for r in &host.child_refs {
                let element = || machine_element(&host.id);
                let Some(&g) = index.get(r.guest_id.as_str()) else {
                    let kind = EsXmlErrorKind::UnknownGuestReference {
                        id: r.guest_id.clone(),
                    };
                    return Err(self.error(r.span.start, element(), kind));
                };
                if roles[g] != Role::Guest {
                    let kind = EsXmlErrorKind::NotAGuest {
                        id: r.guest_id.clone(),
                        os_type: os_type_text(&machines[g]),
                    };
                    return Err(self.error(r.span.start, element(), kind));
                }
                match parents[g] {
                    None => parents[g] = Some(h),
                    Some(p) if p == h => {
                        let kind = EsXmlErrorKind::GuestListedTwice {
                            id: r.guest_id.clone(),
                        };
                        return Err(self.error(r.span.start, element(), kind));
                    }
                    Some(p) => {
                        let first = &machines[p];
                        let kind = EsXmlErrorKind::TwoParentHosts {
                            name: host_name(&machines[g]),
                            first: host_name(first),
                            first_line: first.line,
                            second: host_name(host),
                            second_line: host.line,
                        };
                        return Err(self.error(r.span.start, element(), kind));
                    }
                }
            }
        }
        for (g, guest) in machines.iter().enumerate() {
            if roles[g] == Role::Guest && parents[g].is_none() {
                let kind = EsXmlErrorKind::NoParentHost {
                    id: guest.id.to_string(),
                    name: host_name(guest),
                };
                return Err(self.error(guest.offset, machine_element(&guest.id), kind));
            }
        }
        Ok(parents)
    }

    /// For each machine of the run that starts at machine `first`, the clusters (indices, in
    /// file order) it belongs to. Membership is the union of the guest's own
    /// `software/clusters/cluster@id` and the clusters' VIP machine lists (`vip_members`, see
    /// [`Resolver::vip_members`]), because OEDA records it in both places and either may be
    /// the only one kept.
    fn memberships(
        &self,
        machines: &Blocks<RawMachine>,
        first: usize,
        roles: &[Role],
        cluster_index: &IdMap<&str, usize>,
        vip_members: &[(usize, usize)],
    ) -> Result<Vec<Vec<usize>>, EsXmlError> {
        let mut vips = vip_members[vip_members.partition_point(|&(g, _)| g < first)..]
            .iter()
            .peekable();
        let mut member_of = Vec::with_capacity(machines.len());
        for (i, machine) in machines.iter().enumerate() {
            let g = first + i;
            let mut clusters = Vec::new();
            if roles[g] == Role::Guest {
                for r in &machine.cluster_refs {
                    let &c = cluster_index
                        .get(&*r.id)
                        .ok_or_else(|| self.unknown(machine, r, "cluster"))?;
                    push_small(&mut clusters, c);
                }
            }
            while let Some(&(_, c)) = vips.next_if(|&&(vip, _)| vip == g) {
                push_small(&mut clusters, c);
            }
            clusters.sort_unstable();
            clusters.dedup();
            member_of.push(clusters);
        }
        Ok(member_of)
    }

    /// `(guest, cluster)` for every machine a cluster's VIPs list, sorted; the error is kept
    /// for its turn (after the guests' own cluster references are checked).
    fn vip_members(
        &self,
        machines: &Blocks<RawMachine>,
        roles: &[Role],
        machine_index: &IdMap<&str, usize>,
        clusters: &Blocks<RawCluster>,
    ) -> Result<Vec<(usize, usize)>, EsXmlError> {
        let mut pairs = Vec::new();
        for (c, cluster) in clusters.iter().enumerate() {
            for member in &cluster.vip_members {
                match machine_index.get(&*member.id) {
                    Some(&g) if roles[g] == Role::Guest => pairs.push((g, c)),
                    found => {
                        let found = match found {
                            Some(&m) => format!("has osType {}", os_type_text(&machines[m])),
                            None => "is no machine in the file".to_string(),
                        };
                        let kind = EsXmlErrorKind::VipNotAGuest {
                            id: member.id.to_string(),
                            found,
                        };
                        return Err(self.error(
                            member.offset,
                            format!("<cluster id=\"{}\">", cluster.id),
                            kind,
                        ));
                    }
                }
            }
        }
        pairs.sort_unstable();
        Ok(pairs)
    }

    fn check_cluster_names(&self, clusters: &Blocks<RawCluster>) -> Result<(), EsXmlError> {
        match clusters
            .iter()
            .find(|c| TextField::non_empty(&c.name).is_none())
        {
            Some(c) => Err(self.error(
                c.offset,
                format!("<cluster id=\"{}\">", c.id),
                EsXmlErrorKind::MissingElement("clusterName"),
            )),
            None => Ok(()),
        }
    }

    fn unknown(&self, guest: &RawMachine, r: &IdRef, what: &'static str) -> EsXmlError {
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

    fn network(&self, n: &RawNetwork) -> Result<EsNetwork, EsXmlError> {
        let owner = Owner {
            element: "network",
            id: &n.id,
        };
        let Some(network_type) = TextField::non_empty(&n.network_type) else {
            return Err(self.error(
                n.offset,
                owner.describe(),
                EsXmlErrorKind::MissingElement("networkType"),
            ));
        };
        Ok(EsNetwork {
            network_type: network_type.value.to_string(),
            vlan_id: self.vlan(&n.vlan_id, owner)?,
            master: text(&n.master),
            interface_name: text(&n.interface_name),
            id: n.id.to_string(),
        })
    }

    /// A size above zero, or `None` when the element is absent or empty.
    fn size(
        &self,
        field: &Option<TextField>,
        name: &'static str,
        owner: Owner<'_>,
    ) -> Result<Option<u64>, EsXmlError> {
        let Some(f) = TextField::non_empty(field) else {
            return Ok(None);
        };
        match parse_size_mib(&f.value) {
            Ok(0) => Err(self.bad_value(f, name, owner, "a size above zero")),
            Ok(mib) => Ok(Some(mib)),
            Err(source) => Err(self.error(
                f.offset,
                owner.describe(),
                EsXmlErrorKind::BadSize {
                    field: name,
                    source,
                },
            )),
        }
    }

    fn vcpus(
        &self,
        field: &Option<TextField>,
        owner: Owner<'_>,
    ) -> Result<Option<u32>, EsXmlError> {
        let Some(f) = TextField::non_empty(field) else {
            return Ok(None);
        };
        match f.value.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(self.bad_value(
                f,
                "guestCores",
                owner,
                "a whole number of vCPUs (1 or more)",
            )),
        }
    }

    /// `default` (OEDA's "whatever image the installer ships") and empty mean "not known".
    fn image_version(
        &self,
        field: &Option<TextField>,
        owner: Owner<'_>,
    ) -> Result<Option<ImageVersion>, EsXmlError> {
        let Some(f) = TextField::non_empty(field) else {
            return Ok(None);
        };
        if f.value.eq_ignore_ascii_case("default") {
            return Ok(None);
        }
        f.value.parse().map(Some).map_err(|_| {
            self.bad_value(
                f,
                "ImageVersion",
                owner,
                "an image version (dotted numbers such as 25.1.4.0.0.250614) or `default`",
            )
        })
    }

    /// VLAN 0 is 802.1Q's "no VLAN" (OEDA writes it on untagged admin networks), so it is `None`.
    fn vlan(&self, field: &Option<TextField>, owner: Owner<'_>) -> Result<Option<u32>, EsXmlError> {
        let Some(f) = TextField::non_empty(field) else {
            return Ok(None);
        };
        match f.value.parse::<u32>() {
            Ok(0) => Ok(None),
            Ok(v) if v <= 4094 => Ok(Some(v)),
            _ => Err(self.bad_value(f, "vlanId", owner, "a VLAN id (0 to 4094)")),
        }
    }

    fn bad_value(
        &self,
        f: &TextField,
        field: &'static str,
        owner: Owner<'_>,
        expected: &'static str,
    ) -> EsXmlError {
        self.error(
            f.offset,
            owner.describe(),
            EsXmlErrorKind::BadValue {
                field,
                text: f.value.to_string(),
                expected,
            },
        )
    }
}

/// The element a value belongs to, named only when an error needs it (formatting a name for
/// each of 300,000 elements up front would cost more than parsing them).
#[derive(Clone, Copy)]
struct Owner<'s> {
    element: &'static str,
    id: &'s str,
}

impl Owner<'_> {
    fn describe(self) -> String {
        format!("<{} id=\"{}\">", self.element, self.id)
    }
}

fn host_name(m: &RawMachine) -> String {
    TextField::non_empty(&m.host_name).map_or_else(|| m.id.to_string(), |f| f.value.to_string())
}

fn os_type_text(m: &RawMachine) -> String {
    TextField::non_empty(&m.os_type).map_or_else(|| "(none)".to_string(), |f| f.value.to_string())
}

fn text(field: &Option<TextField>) -> Option<String> {
    TextField::non_empty(field).map(|f| f.value.to_string())
}

fn element_of(what: &str) -> &str {
    match what {
        "EDV volume" => "edvVolume",
        other => other,
    }
}

fn volume(v: &RawVolume) -> EsVolume {
    EsVolume {
        id: v.id.to_string(),
        name: text(&v.name),
        device_path: text(&v.device_path),
        volume_type: text(&v.volume_type),
    }
}

#[cfg(test)]
mod tests;
