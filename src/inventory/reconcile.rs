//! Merges what es.xml says with what libvirt shows into one [`Topology`], and reports drift.

use serde::{Deserialize, Serialize};

/// One disagreement between es.xml and libvirt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Drift {
    pub kind: DriftKind,
    /// The guest concerned, when there is one.
    pub guest: Option<String>,
    /// The host concerned, when there is one.
    pub host: Option<String>,
    /// What es.xml says (e.g. the host, `16384 MiB`).
    pub es_xml: String,
    /// What libvirt shows.
    pub libvirt: String,
    /// One sentence for humans.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// es.xml puts the guest on one host, libvirt shows it on another.
    WrongHost,
    /// In es.xml, defined on no host berth reads.
    MissingDomain,
    /// A domain libvirt shows that es.xml does not list.
    ExtraDomain,
    /// The domain is defined on more than one host.
    DuplicateDomain,
    MemoryMismatch,
    VcpuMismatch,
    /// libvirt on the host did not answer.
    HostUnreachable,
}
