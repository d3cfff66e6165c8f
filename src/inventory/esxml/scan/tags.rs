//! The scanner's tables: the element names berth knows ([`Tag`], [`Leaf`]) and what an opening
//! tag means at each path from the root ([`Action`]). Separate so the es.xml paths berth reads
//! can be looked up in one place, apart from the mechanics of reading them.

use super::scanner::Scanner;

/// Leaf elements whose text berth reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leaf {
    CustomerName,
    HostName,
    MachineType,
    OsType,
    PhysicalMemorySize,
    GuestCores,
    GuestMemory,
    ImageVersion,
    NetworkType,
    Master,
    VlanId,
    InterfaceName,
    ClusterName,
    EdvVolumeName,
    EdvDevicePath,
    EdvVolumeType,
}

impl Leaf {
    pub(super) fn name(self) -> &'static str {
        match self {
            Leaf::CustomerName => "customerName",
            Leaf::HostName => "hostName",
            Leaf::MachineType => "machineType",
            Leaf::OsType => "osType",
            Leaf::PhysicalMemorySize => "physicalMemorySize",
            Leaf::GuestCores => "guestCores",
            Leaf::GuestMemory => "guestMemory",
            Leaf::ImageVersion => "ImageVersion",
            Leaf::NetworkType => "networkType",
            Leaf::Master => "master",
            Leaf::VlanId => "vlanId",
            Leaf::InterfaceName => "interfaceName",
            Leaf::ClusterName => "clusterName",
            Leaf::EdvVolumeName => "edvVolumeName",
            Leaf::EdvDevicePath => "edvDevicePath",
            Leaf::EdvVolumeType => "edvVolumeType",
        }
    }

    pub(super) fn is_machine_field(self) -> bool {
        matches!(
            self,
            Leaf::HostName
                | Leaf::MachineType
                | Leaf::OsType
                | Leaf::PhysicalMemorySize
                | Leaf::GuestCores
                | Leaf::GuestMemory
                | Leaf::ImageVersion
        )
    }

    pub(super) fn is_network_field(self) -> bool {
        matches!(
            self,
            Leaf::NetworkType | Leaf::Master | Leaf::VlanId | Leaf::InterfaceName
        )
    }

    pub(super) fn is_volume_field(self) -> bool {
        matches!(
            self,
            Leaf::EdvVolumeName | Leaf::EdvDevicePath | Leaf::EdvVolumeType
        )
    }
}

/// Element names that matter on some path; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    Root,
    Machines,
    Machine,
    Networks,
    Network,
    Software,
    Clusters,
    Cluster,
    ClusterVips,
    ClusterVip,
    Storage,
    EdvVolumes,
    EdvVolume,
    Leaf(Leaf),
    Other,
}

impl Tag {
    pub(super) fn of(local_name: &str) -> Tag {
        match local_name {
            "engineeredSystem" => Tag::Root,
            "machines" => Tag::Machines,
            "machine" => Tag::Machine,
            "networks" => Tag::Networks,
            "network" => Tag::Network,
            "software" => Tag::Software,
            "clusters" => Tag::Clusters,
            "cluster" => Tag::Cluster,
            "clusterVips" => Tag::ClusterVips,
            "clusterVip" => Tag::ClusterVip,
            "storage" => Tag::Storage,
            "edvVolumes" => Tag::EdvVolumes,
            "edvVolume" => Tag::EdvVolume,
            "customerName" => Tag::Leaf(Leaf::CustomerName),
            "hostName" => Tag::Leaf(Leaf::HostName),
            "machineType" => Tag::Leaf(Leaf::MachineType),
            "osType" => Tag::Leaf(Leaf::OsType),
            "physicalMemorySize" => Tag::Leaf(Leaf::PhysicalMemorySize),
            "guestCores" => Tag::Leaf(Leaf::GuestCores),
            "guestMemory" => Tag::Leaf(Leaf::GuestMemory),
            "ImageVersion" => Tag::Leaf(Leaf::ImageVersion),
            "networkType" => Tag::Leaf(Leaf::NetworkType),
            "master" => Tag::Leaf(Leaf::Master),
            "vlanId" => Tag::Leaf(Leaf::VlanId),
            "interfaceName" => Tag::Leaf(Leaf::InterfaceName),
            "clusterName" => Tag::Leaf(Leaf::ClusterName),
            "edvVolumeName" => Tag::Leaf(Leaf::EdvVolumeName),
            "edvDevicePath" => Tag::Leaf(Leaf::EdvDevicePath),
            "edvVolumeType" => Tag::Leaf(Leaf::EdvVolumeType),
            _ => Tag::Other,
        }
    }
}

/// What an opening tag at a given path means.
pub(super) enum Action {
    Nothing,
    Root,
    BeginMachine,
    GuestRef,
    MachineChild,
    MachineRef(RefKind),
    BeginNetwork,
    BeginCluster,
    VipMember,
    BeginVolume,
    Capture(Leaf),
}

#[derive(Clone, Copy)]
pub(super) enum RefKind {
    Network,
    Cluster,
    Volume,
}

impl<'a> Scanner<'a> {
    pub(super) fn action(&self, tag: Tag) -> Action {
        use Tag::*;
        match (self.tags.as_slice(), tag) {
            ([], _) => Action::Root,
            ([Root], Leaf(l @ self::Leaf::CustomerName)) => Action::Capture(l),
            ([Root, Machines], Machine) => Action::BeginMachine,
            ([Root, Machines, Machine], Machine) => Action::GuestRef,
            ([Root, Machines, Machine], Leaf(l)) if l.is_machine_field() => Action::Capture(l),
            ([Root, Machines, Machine], _) => Action::MachineChild,
            ([Root, Machines, Machine, Networks], Network) => Action::MachineRef(RefKind::Network),
            ([Root, Machines, Machine, Software, Clusters], Cluster) => {
                Action::MachineRef(RefKind::Cluster)
            }
            ([Root, Machines, Machine, EdvVolumes], EdvVolume) => {
                Action::MachineRef(RefKind::Volume)
            }
            ([Root, Networks], Network) => Action::BeginNetwork,
            ([Root, Networks, Network], Leaf(l)) if l.is_network_field() => Action::Capture(l),
            ([Root, Software, Clusters], Cluster) => Action::BeginCluster,
            ([Root, Software, Clusters, Cluster], Leaf(l @ self::Leaf::ClusterName)) => {
                Action::Capture(l)
            }
            (
                [
                    Root,
                    Software,
                    Clusters,
                    Cluster,
                    ClusterVips,
                    ClusterVip,
                    Machines,
                ],
                Machine,
            ) => Action::VipMember,
            ([Root, Storage, EdvVolumes], EdvVolume) => Action::BeginVolume,
            ([Root, Storage, EdvVolumes, EdvVolume], Leaf(l)) if l.is_volume_field() => {
                Action::Capture(l)
            }
            _ => Action::Nothing,
        }
    }
}
