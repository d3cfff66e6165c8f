//! What es.xml says, resolved: KVM hosts, their guests, clusters, networks and EDV volumes.

use serde::{Deserialize, Serialize};

use crate::inventory::version::ImageVersion;

/// A parsed, reference-checked es.xml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsSystem {
    /// Root `@oedaversion`, when present.
    pub oeda_version: Option<String>,
    pub customer_name: Option<String>,
    pub hosts: Vec<EsHost>,
    pub guests: Vec<EsGuest>,
    pub clusters: Vec<EsCluster>,
    pub networks: Vec<EsNetwork>,
    pub volumes: Vec<EsVolume>,
    /// The machines that are neither KVM hosts nor their guests (storage cells, bare-metal
    /// servers, Xen domains), so that a host block or `-drain` naming one can say what it is.
    #[serde(default)]
    pub others: Vec<EsOtherMachine>,
}

/// A machine berth does not place guests on or move: `<hostName>` and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EsOtherMachine {
    pub name: String,
    /// `storage cell`, `bare-metal database server`, or `machine (osType X)`.
    pub kind: String,
}

#[cfg(test)]
impl EsSystem {
    /// An es.xml holding only these KVM hosts (ids `<name>_id`), for unit tests.
    pub fn with_hosts(names: &[&str]) -> EsSystem {
        EsSystem {
            oeda_version: None,
            customer_name: None,
            hosts: names
                .iter()
                .map(|n| EsHost {
                    id: format!("{n}_id"),
                    name: (*n).into(),
                    physical_memory_mib: None,
                    image_version: None,
                    guest_ids: vec![],
                    line: 1,
                })
                .collect(),
            guests: vec![],
            clusters: vec![],
            networks: vec![],
            volumes: vec![],
            others: vec![],
        }
    }
}

/// A KVM host (`machineType` compute, `osType` LinuxKVM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsHost {
    pub id: String,
    /// `<hostName>`.
    pub name: String,
    /// `<physicalMemorySize>` in MiB, when present.
    pub physical_memory_mib: Option<u64>,
    /// `<ImageVersion>` / `<version>` of the host image, when it parses as a version.
    pub image_version: Option<ImageVersion>,
    /// Machine ids of the guests under this host (`<machine id=…/>` children), in file order.
    pub guest_ids: Vec<String>,
    /// 1-based line of the host's `<machine>` start tag, for messages.
    pub line: usize,
}

/// A KVM guest (`osType` LinuxKVMGuest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsGuest {
    pub id: String,
    /// `<hostName>`: also the libvirt domain name.
    pub name: String,
    /// Machine id of the one host that lists this guest.
    pub host_id: String,
    /// `<guestCores>` (vCPUs).
    pub vcpus: Option<u32>,
    /// `<guestMemory>` in MiB.
    pub memory_mib: Option<u64>,
    pub image_version: Option<ImageVersion>,
    /// Ids of `software/clusters/cluster` the guest belongs to.
    pub cluster_ids: Vec<String>,
    /// Ids of the guest's networks.
    pub network_ids: Vec<String>,
    /// Ids of the guest's EDV volumes.
    pub volume_ids: Vec<String>,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsCluster {
    pub id: String,
    pub name: String,
    /// Guest machine ids (from the guests' `software/clusters` and the cluster's `clusterVips`).
    pub member_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsNetwork {
    pub id: String,
    /// `admin`, `client`, `backup`, `private`, `Ilom`.
    pub network_type: String,
    pub master: Option<String>,
    pub vlan_id: Option<u32>,
    pub interface_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsVolume {
    pub id: String,
    pub name: Option<String>,
    /// `/dev/exc/<name>`.
    pub device_path: Option<String>,
    pub volume_type: Option<String>,
}
