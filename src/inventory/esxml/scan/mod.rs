//! One streaming pass over es.xml: collects the raw text of the elements berth needs, with
//! their byte offsets, and checks the XML itself (well-formed, not truncated, root, not Xen).
//!
//! Elements are matched by LOCAL name and by their path from the root, because OEDA writes the
//! same file with and without `xmlns="model"` and reuses names (`machine`, `network`,
//! `cluster`) at several depths. Anything not on a known path is skipped, not rejected.
//! Meaning (roles, references, sizes) is resolved afterwards in `parse`.
//!
//! This file holds the raw types the scan fills and its entry points; the scanner's state
//! machine, its tables, and the reading of attributes and leaf text live in submodules.

use std::borrow::Cow;
use std::ops::Range;

use super::blocks::Blocks;
use super::error::EsXmlError;
use super::layout::GuestRefSpan;

mod attributes;
mod capture;
mod scanner;
mod split;
mod tags;

use scanner::Scanner;
use tags::Tag;

/// The text of one leaf element, trimmed, and where its start tag begins. Borrowed from the
/// input unless it had to be unescaped, which saves an allocation per element on big files.
#[derive(Debug, Clone)]
pub(super) struct TextField<'a> {
    pub value: Cow<'a, str>,
    pub offset: usize,
}

impl<'a> TextField<'a> {
    /// The value, or `None` when the element is empty (es.xml writes `<vlanId />` for "none").
    pub fn non_empty<'f>(field: &'f Option<TextField<'a>>) -> Option<&'f TextField<'a>> {
        field.as_ref().filter(|f| !f.value.is_empty())
    }
}

/// An `id` reference (`<network id="…"/>`) and where it begins.
#[derive(Debug, Clone)]
pub(super) struct IdRef<'a> {
    pub id: Cow<'a, str>,
    pub offset: usize,
}

#[derive(Debug, Default)]
pub(super) struct RawMachine<'a> {
    pub id: Cow<'a, str>,
    pub offset: usize,
    pub line: usize,
    pub host_name: Option<TextField<'a>>,
    pub machine_type: Option<TextField<'a>>,
    pub os_type: Option<TextField<'a>>,
    pub physical_memory: Option<TextField<'a>>,
    pub guest_cores: Option<TextField<'a>>,
    pub guest_memory: Option<TextField<'a>>,
    pub image_version: Option<TextField<'a>>,
    /// Child `<machine id=…/>` elements: the guests, when this machine is a KVM host.
    pub child_refs: Vec<GuestRefSpan>,
    pub network_refs: Vec<IdRef<'a>>,
    pub cluster_refs: Vec<IdRef<'a>>,
    pub volume_refs: Vec<IdRef<'a>>,
    pub start_tag: Range<usize>,
    pub end_tag: Option<Range<usize>>,
    pub last_child_start: Option<usize>,
}

#[derive(Debug, Default)]
pub(super) struct RawNetwork<'a> {
    pub id: Cow<'a, str>,
    pub offset: usize,
    pub network_type: Option<TextField<'a>>,
    pub master: Option<TextField<'a>>,
    pub vlan_id: Option<TextField<'a>>,
    pub interface_name: Option<TextField<'a>>,
}

#[derive(Debug, Default)]
pub(super) struct RawCluster<'a> {
    pub id: Cow<'a, str>,
    pub offset: usize,
    pub name: Option<TextField<'a>>,
    /// `clusterVips/clusterVip/machines/machine@id`.
    pub vip_members: Vec<IdRef<'a>>,
}

#[derive(Debug, Default)]
pub(super) struct RawVolume<'a> {
    pub id: Cow<'a, str>,
    pub offset: usize,
    pub name: Option<TextField<'a>>,
    pub device_path: Option<TextField<'a>>,
    pub volume_type: Option<TextField<'a>>,
}

#[derive(Debug, Default)]
pub(super) struct RawDocument<'a> {
    pub root_offset: usize,
    pub oeda_version: Option<Cow<'a, str>>,
    pub customer_name: Option<TextField<'a>>,
    pub machines: Blocks<RawMachine<'a>>,
    pub networks: Blocks<RawNetwork<'a>>,
    pub clusters: Blocks<RawCluster<'a>>,
    pub volumes: Blocks<RawVolume<'a>>,
}

/// Scans `text` (named `source_name` in errors) into a [`RawDocument`]. A large file is
/// scanned in two halves on two threads (see [`split`]); the result, and every error, is
/// the one the sequential scan gives.
pub(super) fn scan<'a>(source_name: &'a str, text: &'a str) -> Result<RawDocument<'a>, EsXmlError> {
    scan_with(source_name, text, Split::Auto)
}

/// Whether to scan in two halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Split {
    /// In one pass (for tests: the reference a split scan is compared with).
    #[cfg(test)]
    Never,
    /// In two halves when the file is large enough for a second thread to pay off.
    Auto,
    /// In two halves, split near this byte offset whatever the size (for tests).
    #[cfg(test)]
    Near(usize),
}

/// [`scan`] with an explicit splitting policy.
pub(super) fn scan_with<'a>(
    source_name: &'a str,
    text: &'a str,
    policy: Split,
) -> Result<RawDocument<'a>, EsXmlError> {
    let target = match policy {
        #[cfg(test)]
        Split::Never => None,
        Split::Auto => split::auto_target(text),
        #[cfg(test)]
        Split::Near(offset) => Some(offset),
    };
    if let Some(doc) = target.and_then(|t| split::scan_in_two(source_name, text, t)) {
        return Ok(doc);
    }
    let mut scanner = Scanner::new(source_name, text, &[]);
    scanner.run(0..text.len(), false)?;
    scanner.finish()
}

/// Pushes with capacities 1, 2, 4, … rather than `Vec`'s first step to 4: a guest has one or
/// two references of each kind (and one or two clusters, a cluster two guests), and on 100,000
/// guests the unused slots came to tens of megabytes of memory touched for nothing.
pub(super) fn push_small<T>(list: &mut Vec<T>, item: T) {
    if list.len() == list.capacity() {
        list.reserve_exact(list.len().max(1));
    }
    list.push(item);
}
