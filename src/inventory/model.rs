//! The reconciled topology: the one picture of hosts and guests every later stage works from.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::version::ImageVersion;

/// A KVM host after reconciling es.xml with libvirt (and SSH facts when available).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// es.xml `<hostName>`; the name HCL, URIs and plans use.
    pub name: String,
    /// es.xml `machine@id`, needed to rewrite the parent link.
    pub machine_id: String,
    /// Physical memory in MiB (libvirt node info; es.xml `physicalMemorySize` when libvirt is not read).
    pub memory_mib: u64,
    /// Logical CPUs (libvirt node info).
    pub cpus: u32,
    /// CPU architecture / model string from libvirt node info (e.g. `x86_64`).
    pub arch: Option<String>,
    /// Host CPU model from libvirt capabilities, compared for live migration.
    pub cpu_model: Option<String>,
    /// Exadata image version of the host, when known (es.xml or `imageinfo` over SSH).
    pub image_version: Option<ImageVersion>,
    /// Linux bridges known to exist on the host. `None` when unknown (no SSH facts):
    /// then the bridges of the host's own domains are a lower bound.
    pub bridges: Option<BTreeSet<String>>,
    /// Bridges used by the host's domains (always known from libvirt).
    pub bridges_in_use: BTreeSet<String>,
    /// Memory held by running domains that es.xml does not list (reported as drift): berth
    /// never moves them, but they take room, so capacity for guests shrinks by this much.
    #[serde(default)]
    pub unmanaged_memory_mib: u64,
    /// vCPUs held by those domains.
    #[serde(default)]
    pub unmanaged_vcpus: u32,
    /// Whether libvirt on the host answered.
    pub reachable: bool,
    /// Names of every libvirt domain defined on the host, including ones es.xml does not list
    /// or places elsewhere. A move onto a host that already defines a domain of the guest's
    /// name would clash (prerequisite `name_taken`). Empty when libvirt was not read.
    #[serde(default)]
    pub domains: BTreeSet<String>,
    /// Host PCI addresses (`0000:3b:02.1`) passed through to any domain defined on the host,
    /// es.xml's or not: the sources of `<interface type='hostdev'>` and of PCI `<hostdev>`s.
    /// SR-IOV virtual functions among them are not free for a guest moving in. Empty when
    /// libvirt was not read.
    #[serde(default)]
    pub vfs_in_use: BTreeSet<String>,
}

/// A guest (libvirt domain) after reconciliation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guest {
    /// es.xml `<hostName>`, which is also the libvirt domain name.
    pub name: String,
    /// es.xml `machine@id`.
    pub machine_id: String,
    /// Its libvirt domain's name when `inventory { domain_name }` names it otherwise than
    /// `name`; `None`: the domain is called `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The host the guest is on now.
    pub host: String,
    /// With `drift_source = "es_xml"`, the host es.xml puts the guest on when libvirt runs it
    /// on another (`host`): es.xml wins, so the plan moves it back there. `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub es_host: Option<String>,
    pub state: GuestState,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub image_version: Option<ImageVersion>,
    /// Names of the RAC clusters this guest belongs to (es.xml).
    pub clusters: Vec<String>,
    pub interfaces: Vec<Interface>,
    pub disks: Vec<Disk>,
    /// Exascale EDV volume device paths (`/dev/exc/...`) attached to the guest.
    pub volumes: Vec<String>,
    /// PCI (or other) host devices passed through that are not network interfaces.
    pub hostdevs: Vec<HostDev>,
}

impl Guest {
    /// The name of the guest's libvirt domain.
    pub fn domain_name(&self) -> &str {
        self.domain.as_deref().unwrap_or(&self.name)
    }

    /// Bridges the guest needs on whichever host it runs on.
    pub fn bridges(&self) -> BTreeSet<String> {
        self.interfaces
            .iter()
            .filter(|i| i.kind == InterfaceKind::Bridge)
            .map(|i| i.source.clone())
            .collect()
    }

    /// Interfaces tied to one host's hardware (SR-IOV VFs): they must be detached before a move.
    pub fn host_specific_interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces
            .iter()
            .filter(|i| i.kind == InterfaceKind::Hostdev)
    }

    /// Memory the guest occupies on its host now (a shut-off guest holds none).
    pub fn memory_held_mib(&self) -> u64 {
        if self.state.holds_resources() {
            self.memory_mib
        } else {
            0
        }
    }

    /// vCPUs the guest occupies on its host now.
    pub fn vcpus_held(&self) -> u32 {
        if self.state.holds_resources() {
            self.vcpus
        } else {
            0
        }
    }
}

/// Run state of a guest as libvirt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuestState {
    Running,
    Paused,
    ShutOff,
    Crashed,
    /// libvirt did not answer, or the domain is not defined anywhere berth looked.
    Unknown,
}

impl GuestState {
    /// Running and paused guests hold their memory and vCPUs; a shut-off one holds nothing.
    /// Unknown is counted as holding, the safe side.
    pub fn holds_resources(self) -> bool {
        !matches!(self, GuestState::ShutOff | GuestState::Crashed)
    }
}

impl std::fmt::Display for GuestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestState::Running => "running",
            GuestState::Paused => "paused",
            GuestState::ShutOff => "shut off",
            GuestState::Crashed => "crashed",
            GuestState::Unknown => "unknown",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub kind: InterfaceKind,
    /// Bridge name, libvirt network name, or the host PCI address of a hostdev interface.
    pub source: String,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterfaceKind {
    Bridge,
    Network,
    /// SR-IOV virtual function passed through (`<interface type='hostdev'>`).
    Hostdev,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Target device (`vda`, `sda`).
    pub target: String,
    /// Bus (`virtio`, `sata`, `scsi`, ...). SATA disks block live migration.
    pub bus: String,
    /// Source path or volume, when the disk has one.
    pub source: Option<String>,
}

/// Host PCI addresses a domain's devices pass through: the sources of its hostdev interfaces
/// (SR-IOV virtual functions) and the addresses of its PCI host devices.
pub fn passed_through_pci<'a>(
    interfaces: &'a [Interface],
    hostdevs: &'a [HostDev],
) -> impl Iterator<Item = &'a str> + 'a {
    let vfs = interfaces
        .iter()
        .filter(|i| i.kind == InterfaceKind::Hostdev)
        .map(|i| i.source.as_str());
    vfs.chain(
        hostdevs
            .iter()
            .filter(|h| h.kind == "pci")
            .map(|h| h.address.as_str()),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDev {
    /// `pci`, `usb`, ...
    pub kind: String,
    /// Host address (e.g. `0000:3b:02.1`).
    pub address: String,
}

/// A RAC cluster from es.xml: the default anti-affinity group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub name: String,
    /// Guest names.
    pub members: Vec<String>,
}

/// The whole current picture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub hosts: BTreeMap<String, Host>,
    pub guests: BTreeMap<String, Guest>,
    pub clusters: BTreeMap<String, Cluster>,
    /// es.xml machines that are not KVM hosts or guests (storage cells, bare-metal servers),
    /// by name, with what each is: so that naming one where a KVM host is expected says so.
    #[serde(default)]
    pub other_machines: BTreeMap<String, String>,
}

impl Topology {
    /// Guests currently on `host`, in name order.
    pub fn guests_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Guest> + 'a {
        self.guests.values().filter(move |g| g.host == host)
    }

    /// Memory held on `host` by its guests now, in MiB.
    pub fn memory_used_mib(&self, host: &str) -> u64 {
        self.guests_on(host).map(Guest::memory_held_mib).sum()
    }

    /// vCPUs held on `host` by its guests now.
    pub fn vcpus_used(&self, host: &str) -> u32 {
        self.guests_on(host).map(Guest::vcpus_held).sum()
    }
}
