//! Cluster membership: the union of each guest's own cluster references and the clusters'
//! VIP machine lists, and the clusters' names. Separate because membership is recorded in two
//! places of es.xml and merging them (in file order, across runs) is a concept of its own.

use crate::inventory::esxml::blocks::Blocks;
use crate::inventory::esxml::error::{EsXmlError, EsXmlErrorKind};
use crate::inventory::esxml::scan::{RawCluster, RawMachine, TextField, push_small};
use crate::inventory::fast_hash::FastMap as IdMap;

use super::{Resolver, Role, os_type_text};

impl Resolver<'_> {
    /// For each machine of the run that starts at machine `first`, the clusters (indices, in
    /// file order) it belongs to. Membership is the union of the guest's own
    /// `software/clusters/cluster@id` and the clusters' VIP machine lists (`vip_members`, see
    /// [`Resolver::vip_members`]), because OEDA records it in both places and either may be
    /// the only one kept.
    pub(super) fn memberships(
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
    pub(super) fn vip_members(
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

    pub(super) fn check_cluster_names(
        &self,
        clusters: &Blocks<RawCluster>,
    ) -> Result<(), EsXmlError> {
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
}
