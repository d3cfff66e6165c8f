//! The top-level lists other than machines: id indexes of the networks, clusters and EDV
//! volumes (refusing duplicate ids), and the conversion of networks and volumes. Separate
//! because these lists are checked on the other thread, independently of the machines.

use std::collections::hash_map::Entry;

use crate::inventory::esxml::blocks::Blocks;
use crate::inventory::esxml::error::{EsXmlError, EsXmlErrorKind};
use crate::inventory::esxml::model::{EsNetwork, EsVolume};
use crate::inventory::esxml::scan::{RawCluster, RawNetwork, RawVolume, TextField};
use crate::inventory::fast_hash::{FastMap as IdMap, map_with_capacity as id_map};

use super::Resolver;
use super::values::{Owner, text};

/// [`Resolver::index_lists`]: id → position in each list.
pub(super) struct ListIndexes<'r> {
    pub(super) networks: IdMap<&'r str, usize>,
    pub(super) clusters: IdMap<&'r str, usize>,
    pub(super) volumes: IdMap<&'r str, usize>,
}

impl Resolver<'_> {
    /// Id indexes of the networks, clusters and EDV volumes, and the clusters' names.
    pub(super) fn index_lists<'r>(
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
    pub(super) fn index<'r, T>(
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

    pub(super) fn network(&self, n: &RawNetwork) -> Result<EsNetwork, EsXmlError> {
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
}

fn element_of(what: &str) -> &str {
    match what {
        "EDV volume" => "edvVolume",
        other => other,
    }
}

impl Resolver<'_> {
    /// An EDV volume, its device path checked ([`crate::names::check_device_path`]): given as
    /// `edvDevicePath`, or where Exascale puts it, `/dev/exc/<name>`. It becomes an argument
    /// of `volume_command` on the hosts.
    pub(super) fn volume(&self, v: &RawVolume) -> Result<EsVolume, EsXmlError> {
        let owner = Owner {
            element: "edvVolume",
            id: &v.id,
        };
        let checked = match (
            TextField::non_empty(&v.device_path),
            TextField::non_empty(&v.name),
        ) {
            (Some(path), _) => Some(("edvDevicePath", path, path.value.to_string())),
            (None, Some(name)) => Some(("name", name, format!("/dev/exc/{}", name.value))),
            (None, None) => None,
        };
        if let Some((field, at, path)) = checked
            && crate::names::check_device_path(&path).is_err()
        {
            return Err(self.error(
                at.offset,
                owner.describe(),
                EsXmlErrorKind::BadValue {
                    field,
                    text: at.value.to_string(),
                    expected: if field == "name" {
                        "a volume name that makes a device path /dev/exc/<name>: ASCII letters, digits and `._+:@,-`"
                    } else {
                        crate::names::DEVICE_PATH_RULE
                    },
                },
            ));
        }
        Ok(EsVolume {
            id: v.id.to_string(),
            name: text(&v.name),
            device_path: text(&v.device_path),
            volume_type: text(&v.volume_type),
        })
    }
}
