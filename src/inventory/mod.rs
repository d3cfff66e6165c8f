//! What is: the topology berth reads from es.xml, libvirt on every host and host facts over SSH.
//!
//! - [`esxml`] parses the OEDA Engineered System XML into an [`esxml::EsSystem`] and rewrites it.
//! - [`libvirt`] observes each host through the `virt` crate ([`observed::HostObservation`]).
//! - [`reconcile`] merges both into one [`Topology`] and reports [`Drift`] where they disagree.

pub mod esxml;
pub mod libvirt;
pub mod model;
pub mod observed;
pub mod reconcile;
pub mod size;
pub mod version;

pub use model::{Cluster, Disk, Guest, GuestState, Host, HostDev, Interface, InterfaceKind, Topology};
pub use reconcile::{Drift, DriftKind};
pub use version::ImageVersion;
