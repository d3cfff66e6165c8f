//! What libvirt says about one host: the raw observation before reconciliation with es.xml.

use serde::{Deserialize, Serialize};

use super::model::{Disk, GuestState, HostDev, Interface};

/// One host as read through libvirt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostObservation {
    /// The host name (es.xml `<hostName>`) this observation is for.
    pub host: String,
    /// The libvirt URI that was opened.
    pub uri: String,
    /// Physical memory in MiB (node info).
    pub memory_mib: u64,
    /// Logical CPUs (node info).
    pub cpus: u32,
    /// Node info model, e.g. `x86_64`.
    pub arch: String,
    /// Host CPU model from the capabilities XML, when the driver reports one.
    pub cpu_model: Option<String>,
    /// Every domain defined or running on the host.
    pub domains: Vec<DomainObservation>,
}

/// One libvirt domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainObservation {
    pub name: String,
    pub uuid: Option<String>,
    pub state: GuestState,
    pub persistent: bool,
    pub vcpus: u32,
    /// Maximum memory in MiB.
    pub memory_mib: u64,
    pub interfaces: Vec<Interface>,
    pub disks: Vec<Disk>,
    pub hostdevs: Vec<HostDev>,
}
