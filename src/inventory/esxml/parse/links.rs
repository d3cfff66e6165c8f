//! Which machine is what: unique ids, roles (KVM host, KVM guest, other), host names, and
//! which host lists which guest. Separate from the conversion because these checks come
//! first, run on their own thread, and decide the roles that everything after them relies on.

use crate::inventory::esxml::blocks::Blocks;
use crate::inventory::esxml::error::{EsXmlError, EsXmlErrorKind, machine_element};
use crate::inventory::esxml::scan::{RawCluster, RawMachine, TextField};
use crate::inventory::fast_hash::{FastMap as IdMap, map_with_capacity as id_map};

use super::{Resolver, Role, host_name, os_type_text};

const OS_KVM_HOST: &str = "LinuxKVM";

const OS_KVM_GUEST: &str = "LinuxKVMGuest";

/// [`Resolver::link_machines`]: each machine's role, the id of the host listing each guest
/// (empty for other machines), and the clusters' VIP members (see [`Resolver::vip_members`]).
pub(super) struct MachineLinks {
    pub(super) roles: Vec<Role>,
    pub(super) parent_ids: Vec<String>,
    pub(super) vip_members: Result<Vec<(usize, usize)>, EsXmlError>,
}

/// Where [`Resolver::link_machines`] failed: the host names (checked on the other thread)
/// come between the two.
pub(super) enum Linking {
    /// Duplicate ids, roles, no KVM host.
    Classifying(EsXmlError),
    /// Which host lists which guest.
    Parents(EsXmlError),
}

impl Linking {
    pub(super) fn into_error(self) -> EsXmlError {
        match self {
            Linking::Classifying(e) | Linking::Parents(e) => e,
        }
    }
}

impl Resolver<'_> {
    /// The machines' own checks: ids unique, roles, at least one KVM host, and which host
    /// lists each guest (the host names are checked on the other thread meanwhile, see
    /// [`Resolver::resolve`]).
    pub(super) fn link_machines(
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

    pub(super) fn role(&self, m: &RawMachine) -> Result<Role, EsXmlError> {
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

    /// Hosts and guests need a `hostName` (for guests it is the libvirt domain name) that is a
    /// name and nothing else ([`crate::names`]: it goes into URIs and command lines), and no
    /// two may share one.
    pub(super) fn check_host_names(
        &self,
        machines: &Blocks<RawMachine>,
        roles: &[Role],
    ) -> Result<(), EsXmlError> {
        let mut seen: IdMap<&str, &RawMachine> = id_map(machines.len());
        for (m, role) in machines
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
            let (what, checked) = if *role == Role::Host {
                ("host", crate::names::check_host_name(&name.value))
            } else {
                ("guest", crate::names::check_guest_name(&name.value))
            };
            if let Err(why) = checked {
                let kind = EsXmlErrorKind::BadName {
                    name: name.value.to_string(),
                    what,
                    why,
                };
                return Err(self.error(name.offset, machine_element(&m.id), kind));
            }
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
}
