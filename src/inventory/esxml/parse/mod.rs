//! es.xml text → [`EsSystem`]: scan once, then resolve roles and references and check them.
//!
//! Every check names the file, line and element: an operator with a hand-edited or half-copied
//! es.xml must be able to go straight to the line that is wrong.
//!
//! This file holds the entry points and the order of the checks ([`Resolver::resolve`]); each
//! kind of check and conversion lives in a submodule of its own.

use std::borrow::Cow;

use super::error::{EsXmlError, EsXmlErrorKind, Location};
use super::layout::EsLayout;
use super::model::{EsCluster, EsSystem};
use super::scan::{RawDocument, RawMachine, TextField, scan};
#[cfg(test)]
use super::scan::{Split, scan_with};

mod clusters;
mod links;
mod lists;
mod machines;
mod values;

use links::{Linking, MachineLinks};
use machines::{BuiltMachines, MachineContext, RunError};
use values::text;

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
        let (links, (host_names, indexes)) = crate::parallel::both(
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
        let (head, tail_side) = crate::parallel::both(
            || self.build_machines(head, 0, parent_ids, &cx),
            || -> Result<_, RunError> {
                let tail = self.build_machines(tail, tail_first, tail_parent_ids, &cx)?;
                let mut converted = Vec::with_capacity(networks.len());
                for n in networks.iter() {
                    converted.push(self.network(n).map_err(RunError::Conversion)?);
                }
                let mut converted_volumes = Vec::with_capacity(volumes.len());
                for v in volumes.iter() {
                    converted_volumes.push(self.volume(v).map_err(RunError::Conversion)?);
                }
                Ok((tail, converted, converted_volumes))
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
            others,
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
            others,
        };
        Ok((system, layout))
    }
}

fn host_name(m: &RawMachine) -> String {
    TextField::non_empty(&m.host_name).map_or_else(|| m.id.to_string(), |f| f.value.to_string())
}

fn os_type_text(m: &RawMachine) -> String {
    TextField::non_empty(&m.os_type).map_or_else(|| "(none)".to_string(), |f| f.value.to_string())
}

#[cfg(test)]
mod tests;
