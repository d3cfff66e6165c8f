//! What is: the topology berth reads from es.xml, libvirt on every host and host facts over SSH.
//!
//! - [`esxml`] parses the OEDA Engineered System XML into an [`esxml::EsSystem`] and rewrites it.
//! - [`libvirt`] observes each host through the `virt` crate ([`observed::HostObservation`]).
//! - [`reconcile`] merges both into one [`Topology`] and reports [`Drift`] where they disagree.
//! - [`load`] does all of it for one es.xml file: parse, read every host, reconcile.

pub mod esxml;
pub mod facts;
pub(crate) mod fast_hash;
pub mod keepalive;
pub mod libvirt;
pub mod load;
pub mod model;
pub mod naming;
pub mod observed;
pub mod reconcile;
pub mod version;

pub use libvirt::{
    LibvirtError, UriSsh, expand_uri, observe_connection, observe_host, observe_hosts,
    with_ssh_params,
};
pub use load::{Inventory, InventoryError, InventorySpec, load};
pub use model::{
    Cluster, Disk, Guest, GuestState, Host, HostDev, Interface, InterfaceKind, Topology,
    passed_through_pci,
};
pub use naming::DomainNaming;
pub use observed::{DomainObservation, HostObservation};
pub use reconcile::{
    Drift, DriftKind, DriftPolicy, Reconciled, UnknownHost, apply_facts, reconcile,
    reconcile_named, reconcile_owned,
};
pub use version::ImageVersion;
