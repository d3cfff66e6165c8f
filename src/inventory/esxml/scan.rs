//! One streaming pass over es.xml: collects the raw text of the elements berth needs, with
//! their byte offsets, and checks the XML itself (well-formed, not truncated, root, not Xen).
//!
//! Elements are matched by LOCAL name and by their path from the root, because OEDA writes the
//! same file with and without `xmlns="model"` and reuses names (`machine`, `network`,
//! `cluster`) at several depths. Anything not on a known path is skipped, not rejected.
//! Meaning (roles, references, sizes) is resolved afterwards in `parse`.

use std::ops::Range;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use super::error::{machine_element, EsXmlError, EsXmlErrorKind, Location};
use super::layout::GuestRefSpan;
use super::position::LineCounter;

/// The text of one leaf element, trimmed, and where its start tag begins.
#[derive(Debug, Clone)]
pub(super) struct TextField {
    pub value: String,
    pub offset: usize,
}

impl TextField {
    /// The value, or `None` when the element is empty (es.xml writes `<vlanId />` for "none").
    pub fn non_empty(field: &Option<TextField>) -> Option<&TextField> {
        field.as_ref().filter(|f| !f.value.is_empty())
    }
}

/// An `id` reference (`<network id="…"/>`) and where it begins.
#[derive(Debug, Clone)]
pub(super) struct IdRef {
    pub id: String,
    pub offset: usize,
}

#[derive(Debug, Default)]
pub(super) struct RawMachine {
    pub id: String,
    pub offset: usize,
    pub line: usize,
    pub host_name: Option<TextField>,
    pub machine_type: Option<TextField>,
    pub os_type: Option<TextField>,
    pub physical_memory: Option<TextField>,
    pub guest_cores: Option<TextField>,
    pub guest_memory: Option<TextField>,
    pub image_version: Option<TextField>,
    /// Child `<machine id=…/>` elements: the guests, when this machine is a KVM host.
    pub child_refs: Vec<GuestRefSpan>,
    pub network_refs: Vec<IdRef>,
    pub cluster_refs: Vec<IdRef>,
    pub volume_refs: Vec<IdRef>,
    pub start_tag: Range<usize>,
    pub end_tag: Option<Range<usize>>,
    pub last_child_start: Option<usize>,
}

#[derive(Debug, Default)]
pub(super) struct RawNetwork {
    pub id: String,
    pub offset: usize,
    pub network_type: Option<TextField>,
    pub master: Option<TextField>,
    pub vlan_id: Option<TextField>,
    pub interface_name: Option<TextField>,
}

#[derive(Debug, Default)]
pub(super) struct RawCluster {
    pub id: String,
    pub offset: usize,
    pub name: Option<TextField>,
    /// `clusterVips/clusterVip/machines/machine@id`.
    pub vip_members: Vec<IdRef>,
}

#[derive(Debug, Default)]
pub(super) struct RawVolume {
    pub id: String,
    pub offset: usize,
    pub name: Option<TextField>,
    pub device_path: Option<TextField>,
    pub volume_type: Option<TextField>,
}

#[derive(Debug, Default)]
pub(super) struct RawDocument {
    pub root_offset: usize,
    pub oeda_version: Option<String>,
    pub customer_name: Option<TextField>,
    pub machines: Vec<RawMachine>,
    pub networks: Vec<RawNetwork>,
    pub clusters: Vec<RawCluster>,
    pub volumes: Vec<RawVolume>,
}

/// Leaf elements whose text berth reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
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
    fn name(self) -> &'static str {
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

    fn is_machine_field(self) -> bool {
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

    fn is_network_field(self) -> bool {
        matches!(self, Leaf::NetworkType | Leaf::Master | Leaf::VlanId | Leaf::InterfaceName)
    }

    fn is_volume_field(self) -> bool {
        matches!(self, Leaf::EdvVolumeName | Leaf::EdvDevicePath | Leaf::EdvVolumeType)
    }
}

/// Element names that matter on some path; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
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
    fn of(local_name: &str) -> Tag {
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
enum Action {
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
enum RefKind {
    Network,
    Cluster,
    Volume,
}

/// A leaf element whose text is being collected.
struct Capture {
    leaf: Leaf,
    depth: usize,
    offset: usize,
}

/// Scans `text` (named `source_name` in errors) into a [`RawDocument`].
pub(super) fn scan(source_name: &str, text: &str) -> Result<RawDocument, EsXmlError> {
    let mut scanner = Scanner::new(source_name, text);
    let mut reader = Reader::from_str(text);
    loop {
        let start = position(&reader);
        let event = reader.read_event().map_err(|e| scanner.error_at(reader.error_position() as usize, "", EsXmlErrorKind::Malformed(e.to_string())))?;
        let end = position(&reader);
        match event {
            Event::Start(e) => scanner.open(&e, start, end)?,
            Event::Empty(e) => {
                scanner.open(&e, start, end)?;
                scanner.close(start, end, true)?;
            }
            Event::End(_) => scanner.close(start, end, false)?,
            Event::Text(t) if scanner.capture.is_some() => scanner.buf.push_str(&t.xml10_content()),
            Event::CData(t) if scanner.capture.is_some() => scanner.buf.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if scanner.capture.is_some() => scanner.push_reference(&r, start)?,
            Event::Eof => return scanner.finish(),
            _ => {}
        }
    }
}

fn position(reader: &Reader<&[u8]>) -> usize {
    // The input is an in-memory &str, so every offset fits in usize.
    reader.buffer_position() as usize
}

struct Scanner<'a> {
    source_name: &'a str,
    text: &'a str,
    tags: Vec<Tag>,
    starts: Vec<usize>,
    root_closed: bool,
    lines: LineCounter,
    capture: Option<Capture>,
    buf: String,
    doc: RawDocument,
    machine: Option<RawMachine>,
    /// A guest reference written as `<machine id="…"></machine>`, until its end tag.
    pending_ref: Option<GuestRefSpan>,
    network: Option<RawNetwork>,
    cluster: Option<RawCluster>,
    volume: Option<RawVolume>,
}

impl<'a> Scanner<'a> {
    fn new(source_name: &'a str, text: &'a str) -> Self {
        Scanner {
            source_name,
            text,
            tags: Vec::with_capacity(16),
            starts: Vec::with_capacity(16),
            root_closed: false,
            lines: LineCounter::new(),
            capture: None,
            buf: String::new(),
            doc: RawDocument::default(),
            machine: None,
            pending_ref: None,
            network: None,
            cluster: None,
            volume: None,
        }
    }

    fn error_at(&self, offset: usize, element: impl Into<String>, kind: EsXmlErrorKind) -> EsXmlError {
        EsXmlError::new(self.source_name, Some(Location::of(self.text, offset)), element, kind)
    }

    fn action(&self, tag: Tag) -> Action {
        use Tag::*;
        match (self.tags.as_slice(), tag) {
            ([], _) => Action::Root,
            ([Root], Leaf(l @ self::Leaf::CustomerName)) => Action::Capture(l),
            ([Root, Machines], Machine) => Action::BeginMachine,
            ([Root, Machines, Machine], Machine) => Action::GuestRef,
            ([Root, Machines, Machine], Leaf(l)) if l.is_machine_field() => Action::Capture(l),
            ([Root, Machines, Machine], _) => Action::MachineChild,
            ([Root, Machines, Machine, Networks], Network) => Action::MachineRef(RefKind::Network),
            ([Root, Machines, Machine, Software, Clusters], Cluster) => Action::MachineRef(RefKind::Cluster),
            ([Root, Machines, Machine, EdvVolumes], EdvVolume) => Action::MachineRef(RefKind::Volume),
            ([Root, Networks], Network) => Action::BeginNetwork,
            ([Root, Networks, Network], Leaf(l)) if l.is_network_field() => Action::Capture(l),
            ([Root, Software, Clusters], Cluster) => Action::BeginCluster,
            ([Root, Software, Clusters, Cluster], Leaf(l @ self::Leaf::ClusterName)) => Action::Capture(l),
            ([Root, Software, Clusters, Cluster, ClusterVips, ClusterVip, Machines], Machine) => Action::VipMember,
            ([Root, Storage, EdvVolumes], EdvVolume) => Action::BeginVolume,
            ([Root, Storage, EdvVolumes, EdvVolume], Leaf(l)) if l.is_volume_field() => Action::Capture(l),
            _ => Action::Nothing,
        }
    }

    fn open(&mut self, e: &BytesStart<'_>, start: usize, end: usize) -> Result<(), EsXmlError> {
        let tag = Tag::of(e.local_name().as_ref());
        let action = self.action(tag);
        self.tags.push(tag);
        self.starts.push(start);
        match action {
            Action::Nothing => {}
            Action::Root => self.open_root(e, tag, start)?,
            Action::BeginMachine => {
                let id = self.required_id(e, start, "machine")?;
                let line = self.lines.line_at(self.text, start);
                self.machine = Some(RawMachine { id, offset: start, line, start_tag: start..end, ..RawMachine::default() });
            }
            Action::GuestRef => {
                let guest_id = self.required_id(e, start, "machine")?;
                self.set_last_child(start);
                self.pending_ref = Some(GuestRefSpan { guest_id, span: start..end });
            }
            Action::MachineChild => self.set_last_child(start),
            Action::MachineRef(kind) => {
                let name = match kind {
                    RefKind::Network => "network",
                    RefKind::Cluster => "cluster",
                    RefKind::Volume => "edvVolume",
                };
                let id_ref = IdRef { id: self.required_id(e, start, name)?, offset: start };
                if let Some(m) = self.machine.as_mut() {
                    match kind {
                        RefKind::Network => m.network_refs.push(id_ref),
                        RefKind::Cluster => m.cluster_refs.push(id_ref),
                        RefKind::Volume => m.volume_refs.push(id_ref),
                    }
                }
            }
            Action::BeginNetwork => {
                let id = self.required_id(e, start, "network")?;
                self.network = Some(RawNetwork { id, offset: start, ..RawNetwork::default() });
            }
            Action::BeginCluster => {
                let id = self.required_id(e, start, "cluster")?;
                self.cluster = Some(RawCluster { id, offset: start, ..RawCluster::default() });
            }
            Action::VipMember => {
                let id_ref = IdRef { id: self.required_id(e, start, "machine")?, offset: start };
                if let Some(c) = self.cluster.as_mut() {
                    c.vip_members.push(id_ref);
                }
            }
            Action::BeginVolume => {
                let id = self.required_id(e, start, "edvVolume")?;
                self.volume = Some(RawVolume { id, offset: start, ..RawVolume::default() });
            }
            Action::Capture(leaf) => {
                if leaf.is_machine_field() {
                    self.set_last_child(start);
                }
                self.buf.clear();
                self.capture = Some(Capture { leaf, depth: self.tags.len(), offset: start });
            }
        }
        Ok(())
    }

    fn open_root(&mut self, e: &BytesStart<'_>, tag: Tag, start: usize) -> Result<(), EsXmlError> {
        if self.root_closed {
            return Err(self.error_at(start, "", EsXmlErrorKind::ContentAfterRoot));
        }
        if tag != Tag::Root {
            let found = e.local_name().as_ref().to_string();
            let hint = if found == "domain" { " (it looks like a libvirt domain XML)".to_string() } else { String::new() };
            return Err(self.error_at(start, format!("<{found}>"), EsXmlErrorKind::WrongRoot { found, hint }));
        }
        self.doc.root_offset = start;
        self.doc.oeda_version = self.attribute(e, start, "oedaversion")?;
        Ok(())
    }

    fn set_last_child(&mut self, start: usize) {
        if let Some(m) = self.machine.as_mut() {
            m.last_child_start = Some(start);
        }
    }

    fn attribute(&self, e: &BytesStart<'_>, start: usize, name: &str) -> Result<Option<String>, EsXmlError> {
        let element = || format!("<{}>", e.local_name().as_ref());
        let attr = e
            .try_get_attribute(name)
            .map_err(|err| self.error_at(start, element(), EsXmlErrorKind::Malformed(err.to_string())))?;
        match attr {
            None => Ok(None),
            Some(a) => a
                .normalized_value(XmlVersion::Implicit1_0)
                .map(|v| Some(v.into_owned()))
                .map_err(|err| self.error_at(start, element(), EsXmlErrorKind::Malformed(err.to_string()))),
        }
    }

    fn required_id(&self, e: &BytesStart<'_>, start: usize, element: &str) -> Result<String, EsXmlError> {
        match self.attribute(e, start, "id")? {
            Some(id) if !id.trim().is_empty() => Ok(id),
            _ => Err(self.error_at(start, self.describe_open(element), EsXmlErrorKind::MissingAttribute("id"))),
        }
    }

    /// `<machine>` or, inside a machine, `<machine id="…"> <network>`.
    fn describe_open(&self, element: &str) -> String {
        match &self.machine {
            Some(m) => format!("{} <{element}>", machine_element(&m.id)),
            None => format!("<{element}>"),
        }
    }

    fn push_reference(&mut self, r: &BytesRef<'_>, start: usize) -> Result<(), EsXmlError> {
        let resolved = match r.resolve_char_ref() {
            Ok(Some(c)) => Some(c),
            Ok(None) => quick_xml::escape::resolve_predefined_entity(r).and_then(|s| s.chars().next()),
            Err(_) => None,
        };
        match resolved {
            Some(c) => {
                self.buf.push(c);
                Ok(())
            }
            None => Err(self.error_at(start, "", EsXmlErrorKind::Malformed(format!("unknown or invalid reference `&{};`", &**r)))),
        }
    }

    fn close(&mut self, start: usize, end: usize, self_closing: bool) -> Result<(), EsXmlError> {
        let depth = self.tags.len();
        if let Some(capture) = self.capture.take_if(|c| c.depth == depth) {
            self.store(capture)?;
        }
        let tag = self.tags.pop().unwrap_or(Tag::Other);
        self.starts.pop();
        use Tag::*;
        match (self.tags.as_slice(), tag) {
            ([], Root) => self.root_closed = true,
            ([Root, Machines], Machine) => {
                if let Some(mut m) = self.machine.take() {
                    m.end_tag = (!self_closing).then_some(start..end);
                    self.doc.machines.push(m);
                }
            }
            ([Root, Machines, Machine], Machine) => {
                if let (Some(mut r), Some(m)) = (self.pending_ref.take(), self.machine.as_mut()) {
                    r.span.end = end;
                    m.child_refs.push(r);
                }
            }
            ([Root, Networks], Network) => self.doc.networks.extend(self.network.take()),
            ([Root, Software, Clusters], Cluster) => self.doc.clusters.extend(self.cluster.take()),
            ([Root, Storage, EdvVolumes], EdvVolume) => self.doc.volumes.extend(self.volume.take()),
            _ => {}
        }
        Ok(())
    }

    /// Files the collected text of a leaf into the element being read.
    fn store(&mut self, capture: Capture) -> Result<(), EsXmlError> {
        let field = TextField { value: self.buf.trim().to_string(), offset: capture.offset };
        let leaf = capture.leaf;
        if leaf == Leaf::OsType {
            self.refuse_xen(&field)?;
        }
        // The owner's description is only formatted for an error: 100,000 machines' fields
        // must not each pay for a string nobody reads.
        let text = self.text;
        let Some(slot) = self.slot(leaf) else { return Ok(()) };
        if let Some(first) = slot.as_ref() {
            let kind = EsXmlErrorKind::DuplicateElement { name: leaf.name(), first_line: Location::of(text, first.offset).line };
            return Err(self.error_at(field.offset, self.owner(leaf), kind));
        }
        *slot = Some(field);
        Ok(())
    }

    /// Where a leaf's text goes, or `None` when no element is open to take it.
    fn slot(&mut self, leaf: Leaf) -> Option<&mut Option<TextField>> {
        match leaf {
            Leaf::CustomerName => Some(&mut self.doc.customer_name),
            l if l.is_machine_field() => self.machine.as_mut().map(|m| machine_slot(m, l)),
            l if l.is_network_field() => self.network.as_mut().map(|n| network_slot(n, l)),
            l if l.is_volume_field() => self.volume.as_mut().map(|v| volume_slot(v, l)),
            _ => self.cluster.as_mut().map(|c| &mut c.name),
        }
    }

    /// The element that owns a leaf, as messages show it.
    fn owner(&self, leaf: Leaf) -> String {
        let owner = match leaf {
            Leaf::CustomerName => None,
            l if l.is_machine_field() => self.machine.as_ref().map(|m| machine_element(&m.id)),
            l if l.is_network_field() => self.network.as_ref().map(|n| format!("<network id=\"{}\">", n.id)),
            l if l.is_volume_field() => self.volume.as_ref().map(|v| format!("<edvVolume id=\"{}\">", v.id)),
            _ => self.cluster.as_ref().map(|c| format!("<cluster id=\"{}\">", c.id)),
        };
        owner.unwrap_or_default()
    }

    /// Xen files are refused at the first Xen machine, before any other check, so the operator
    /// sees the real reason rather than a consequence of it.
    fn refuse_xen(&self, os_type: &TextField) -> Result<(), EsXmlError> {
        let xen = ["LinuxDom0", "LinuxGuest"].iter().any(|x| os_type.value.eq_ignore_ascii_case(x));
        if !xen {
            return Ok(());
        }
        let element = self.machine.as_ref().map(|m| machine_element(&m.id)).unwrap_or_default();
        Err(self.error_at(os_type.offset, element, EsXmlErrorKind::Xen { os_type: os_type.value.clone() }))
    }

    fn finish(mut self) -> Result<RawDocument, EsXmlError> {
        if let Some(&open_offset) = self.starts.last() {
            let open = element_name_at(self.text, open_offset).to_string();
            let open_line = Location::of(self.text, open_offset).line;
            return Err(self.error_at(self.text.len(), "", EsXmlErrorKind::Truncated { open, open_line }));
        }
        if !self.root_closed {
            return Err(self.error_at(self.text.len(), "", EsXmlErrorKind::NoRoot));
        }
        self.doc.machines.shrink_to_fit();
        Ok(self.doc)
    }
}

fn machine_slot(m: &mut RawMachine, leaf: Leaf) -> &mut Option<TextField> {
    match leaf {
        Leaf::HostName => &mut m.host_name,
        Leaf::MachineType => &mut m.machine_type,
        Leaf::OsType => &mut m.os_type,
        Leaf::PhysicalMemorySize => &mut m.physical_memory,
        Leaf::GuestCores => &mut m.guest_cores,
        Leaf::GuestMemory => &mut m.guest_memory,
        _ => &mut m.image_version,
    }
}

fn network_slot(n: &mut RawNetwork, leaf: Leaf) -> &mut Option<TextField> {
    match leaf {
        Leaf::NetworkType => &mut n.network_type,
        Leaf::Master => &mut n.master,
        Leaf::VlanId => &mut n.vlan_id,
        _ => &mut n.interface_name,
    }
}

fn volume_slot(v: &mut RawVolume, leaf: Leaf) -> &mut Option<TextField> {
    match leaf {
        Leaf::EdvVolumeName => &mut v.name,
        Leaf::EdvDevicePath => &mut v.device_path,
        _ => &mut v.volume_type,
    }
}

/// The local name of the element whose `<` is at `offset` (`model:machine` → `machine`).
fn element_name_at(text: &str, offset: usize) -> &str {
    let rest = text.get(offset + 1..).unwrap_or("");
    let name_end = rest.find(|c: char| c.is_whitespace() || c == '/' || c == '>').unwrap_or(rest.len());
    let name = &rest[..name_end];
    name.rsplit(':').next().unwrap_or(name)
}
