//! One streaming pass over es.xml: collects the raw text of the elements berth needs, with
//! their byte offsets, and checks the XML itself (well-formed, not truncated, root, not Xen).
//!
//! Elements are matched by LOCAL name and by their path from the root, because OEDA writes the
//! same file with and without `xmlns="model"` and reuses names (`machine`, `network`,
//! `cluster`) at several depths. Anything not on a known path is skipped, not rejected.
//! Meaning (roles, references, sizes) is resolved afterwards in `parse`.

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, BytesText, Event};

use super::blocks::Blocks;
use super::error::{EsXmlError, EsXmlErrorKind, Location, machine_element};
use super::layout::GuestRefSpan;
use super::position::LineCounter;

mod split;

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
        matches!(
            self,
            Leaf::NetworkType | Leaf::Master | Leaf::VlanId | Leaf::InterfaceName
        )
    }

    fn is_volume_field(self) -> bool {
        matches!(
            self,
            Leaf::EdvVolumeName | Leaf::EdvDevicePath | Leaf::EdvVolumeType
        )
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

/// A leaf element whose text is being collected. Plain text is sliced from the input when the
/// element closes; only entities, CDATA or nested markup switch to collecting into a buffer.
struct Capture {
    leaf: Leaf,
    depth: usize,
    /// Where the leaf's start tag begins.
    offset: usize,
    /// Just after the start tag: where the content begins.
    content_start: usize,
    buffered: bool,
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

fn skip_whitespace(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    let mut at = offset;
    while at < bytes.len() && matches!(bytes[at], b' ' | b'\t' | b'\r' | b'\n') {
        at += 1;
    }
    at
}

/// XML 1.0 end-of-line handling for text sliced straight from the input.
fn normalize_eols(raw: &str) -> Cow<'_, str> {
    if raw.contains('\r') {
        Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(raw)
    }
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
    doc: RawDocument<'a>,
    machine: Option<RawMachine<'a>>,
    /// A guest reference written as `<machine id="…"></machine>`, until its end tag.
    pending_ref: Option<GuestRefSpan>,
    network: Option<RawNetwork<'a>>,
    cluster: Option<RawCluster<'a>>,
    volume: Option<RawVolume<'a>>,
    /// End tags (offsets of their `<`) that closed an element opened before the scanned range,
    /// i.e. one of the `context` the scanner started in; checked against the real start tags
    /// when the halves of a split scan are joined.
    unmatched_ends: Vec<usize>,
}

/// Stands in `Scanner::starts` for an element opened before the scanned range.
const OPENED_BEFORE: usize = usize::MAX;

impl<'a> Scanner<'a> {
    /// A scanner for a range of `text` that starts inside the elements `context` (outermost
    /// first; empty at the start of the file).
    fn new(source_name: &'a str, text: &'a str, context: &[Tag]) -> Self {
        let mut tags = Vec::with_capacity(16);
        tags.extend_from_slice(context);
        let mut starts = Vec::with_capacity(16);
        starts.resize(context.len(), OPENED_BEFORE);
        Scanner {
            source_name,
            text,
            tags,
            starts,
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
            unmatched_ends: Vec::new(),
        }
    }

    /// Reads the events of `text[range]`. Returns where the last event ends when it was an end
    /// tag (`None` otherwise), which tells a split scan whether its first half stopped cleanly
    /// between two elements. With `allow_unmatched_ends`, an end tag that closes an element of
    /// the starting context is recorded in `unmatched_ends` instead of being an error;
    /// quick-xml still checks that every other end tag matches its start tag.
    fn run(
        &mut self,
        range: Range<usize>,
        allow_unmatched_ends: bool,
    ) -> Result<Option<usize>, EsXmlError> {
        let slice = &self.text[range.clone()];
        // quick-xml skips a byte order mark without counting it; read after it and add its
        // length back, so that every offset indexes `text` itself.
        let body = if range.start == 0 {
            slice.strip_prefix('\u{feff}').unwrap_or(slice)
        } else {
            slice
        };
        let base = range.start + slice.len() - body.len();
        let position = |reader: &Reader<&[u8]>| base + reader.buffer_position() as usize;
        let mut reader = Reader::from_str(body);
        reader.config_mut().allow_unmatched_ends = allow_unmatched_ends;
        // Skipping whitespace-only text halves the number of events. It must be off while a
        // leaf's text is buffered, or the space in `A &amp; B` after the entity would be lost.
        let mut trimming = true;
        reader.config_mut().trim_text_start = trimming;
        let mut last_end_tag = None;
        loop {
            let before = position(&reader);
            let event = reader.read_event().map_err(|e| {
                let at = base + reader.error_position() as usize;
                self.error_at(at, "", EsXmlErrorKind::Malformed(e.to_string()))
            })?;
            let end = position(&reader);
            // With trimming, whitespace before markup is consumed with it: find the `<` or `&`.
            let start = skip_whitespace(self.text, before);
            let mut ended_element = false;
            match event {
                Event::Start(e) => self.open(&e, start, end)?,
                Event::Empty(e) => {
                    self.open(&e, start, end)?;
                    self.close(start, end, true)?;
                }
                Event::End(_) => {
                    self.close(start, end, false)?;
                    ended_element = true;
                }
                Event::Text(t) => self.push_text(&t),
                Event::CData(t) => self.push_unescaped(&t.xml10_content(), start),
                Event::GeneralRef(r) => self.push_reference(&r, start)?,
                // A comment inside a leaf is not part of its text: stop slicing the raw input.
                Event::Comment(_) | Event::PI(_) => self.buffer_capture(start),
                Event::Eof => return Ok(last_end_tag),
                _ => {}
            }
            last_end_tag = ended_element.then_some(end);
            let want_trimming = !self.capture.as_ref().is_some_and(|c| c.buffered);
            if want_trimming != trimming {
                trimming = want_trimming;
                reader.config_mut().trim_text_start = trimming;
            }
        }
    }

    fn error_at(
        &self,
        offset: usize,
        element: impl Into<String>,
        kind: EsXmlErrorKind,
    ) -> EsXmlError {
        EsXmlError::new(
            self.source_name,
            Some(Location::of(self.text, offset)),
            element,
            kind,
        )
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

    fn open(&mut self, e: &BytesStart<'_>, start: usize, end: usize) -> Result<(), EsXmlError> {
        self.buffer_capture(start);
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
                self.machine = Some(RawMachine {
                    id,
                    offset: start,
                    line,
                    start_tag: start..end,
                    ..RawMachine::default()
                });
            }
            Action::GuestRef => {
                let guest_id = self.required_id(e, start, "machine")?;
                self.set_last_child(start);
                self.pending_ref = Some(GuestRefSpan {
                    guest_id: guest_id.into_owned(),
                    span: start..end,
                });
            }
            Action::MachineChild => self.set_last_child(start),
            Action::MachineRef(kind) => {
                let name = match kind {
                    RefKind::Network => "network",
                    RefKind::Cluster => "cluster",
                    RefKind::Volume => "edvVolume",
                };
                let id_ref = IdRef {
                    id: self.required_id(e, start, name)?,
                    offset: start,
                };
                if let Some(m) = self.machine.as_mut() {
                    match kind {
                        RefKind::Network => push_small(&mut m.network_refs, id_ref),
                        RefKind::Cluster => push_small(&mut m.cluster_refs, id_ref),
                        RefKind::Volume => push_small(&mut m.volume_refs, id_ref),
                    }
                }
            }
            Action::BeginNetwork => {
                let id = self.required_id(e, start, "network")?;
                self.network = Some(RawNetwork {
                    id,
                    offset: start,
                    ..RawNetwork::default()
                });
            }
            Action::BeginCluster => {
                let id = self.required_id(e, start, "cluster")?;
                self.cluster = Some(RawCluster {
                    id,
                    offset: start,
                    ..RawCluster::default()
                });
            }
            Action::VipMember => {
                let id_ref = IdRef {
                    id: self.required_id(e, start, "machine")?,
                    offset: start,
                };
                if let Some(c) = self.cluster.as_mut() {
                    push_small(&mut c.vip_members, id_ref);
                }
            }
            Action::BeginVolume => {
                let id = self.required_id(e, start, "edvVolume")?;
                self.volume = Some(RawVolume {
                    id,
                    offset: start,
                    ..RawVolume::default()
                });
            }
            Action::Capture(leaf) => {
                if leaf.is_machine_field() {
                    self.set_last_child(start);
                }
                self.capture = Some(Capture {
                    leaf,
                    depth: self.tags.len(),
                    offset: start,
                    content_start: end,
                    buffered: false,
                });
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
            let hint = if found == "domain" {
                " (it looks like a libvirt domain XML)".to_string()
            } else {
                String::new()
            };
            return Err(self.error_at(
                start,
                format!("<{found}>"),
                EsXmlErrorKind::WrongRoot { found, hint },
            ));
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

    fn attribute(
        &self,
        e: &BytesStart<'_>,
        start: usize,
        name: &str,
    ) -> Result<Option<Cow<'a, str>>, EsXmlError> {
        let element = || format!("<{}>", e.local_name().as_ref());
        let attr = e.try_get_attribute(name).map_err(|err| {
            self.error_at(start, element(), EsXmlErrorKind::Malformed(err.to_string()))
        })?;
        match attr {
            None => Ok(None),
            Some(a) => a
                .normalized_value(XmlVersion::Implicit1_0)
                .map(|v| Some(self.in_text(v)))
                .map_err(|err| {
                    self.error_at(start, element(), EsXmlErrorKind::Malformed(err.to_string()))
                }),
        }
    }

    /// `value` as a borrow of the input when it is one (attribute values without entity
    /// references are): ids then cost no allocation until the resolver keeps them, and most
    /// (references to networks, clusters, volumes) it only looks up.
    fn in_text(&self, value: Cow<'_, str>) -> Cow<'a, str> {
        if let Cow::Borrowed(v) = &value {
            let start = (v.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
            let in_text = start
                .checked_add(v.len())
                .and_then(|end| self.text.get(start..end))
                .filter(|slice| std::ptr::eq(slice.as_ptr(), v.as_ptr()));
            if let Some(slice) = in_text {
                return Cow::Borrowed(slice);
            }
        }
        Cow::Owned(value.into_owned())
    }

    fn required_id(
        &self,
        e: &BytesStart<'_>,
        start: usize,
        element: &str,
    ) -> Result<Cow<'a, str>, EsXmlError> {
        match self.attribute(e, start, "id")? {
            Some(id) if !id.trim().is_empty() => Ok(id),
            _ => Err(self.error_at(
                start,
                self.describe_open(element),
                EsXmlErrorKind::MissingAttribute("id"),
            )),
        }
    }

    /// `<machine>` or, inside a machine, `<machine id="…"> <network>`.
    fn describe_open(&self, element: &str) -> String {
        match &self.machine {
            Some(m) => format!("{} <{element}>", machine_element(&m.id)),
            None => format!("<{element}>"),
        }
    }

    /// Switches the current capture (if any) to buffering, with the plain text read so far up
    /// to `upto`. Called before anything that cannot be sliced from the input.
    fn buffer_capture(&mut self, upto: usize) {
        if let Some(capture) = self.capture.as_mut().filter(|c| !c.buffered) {
            capture.buffered = true;
            self.buf.clear();
            self.buf
                .push_str(&normalize_eols(&self.text[capture.content_start..upto]));
        }
    }

    /// Text is only needed while a capture is buffered (plain text is sliced from the input
    /// when its element closes), so it is not even normalized otherwise.
    fn push_text(&mut self, text: &BytesText<'_>) {
        if self.capture.as_ref().is_some_and(|c| c.buffered) {
            self.buf.push_str(&text.xml10_content());
        }
    }

    fn push_unescaped(&mut self, text: &str, start: usize) {
        if self.capture.is_some() {
            self.buffer_capture(start);
            self.buf.push_str(text);
        }
    }

    fn push_reference(&mut self, r: &BytesRef<'_>, start: usize) -> Result<(), EsXmlError> {
        if self.capture.is_none() {
            return Ok(());
        }
        self.buffer_capture(start);
        let resolved = match r.resolve_char_ref() {
            Ok(Some(c)) => Some(c),
            Ok(None) => {
                quick_xml::escape::resolve_predefined_entity(r).and_then(|s| s.chars().next())
            }
            Err(_) => None,
        };
        match resolved {
            Some(c) => {
                self.buf.push(c);
                Ok(())
            }
            None => Err(self.error_at(
                start,
                "",
                EsXmlErrorKind::Malformed(format!("unknown or invalid reference `&{};`", &**r)),
            )),
        }
    }

    fn close(&mut self, start: usize, end: usize, self_closing: bool) -> Result<(), EsXmlError> {
        let depth = self.tags.len();
        if let Some(capture) = self.capture.take_if(|c| c.depth == depth) {
            let value = if capture.buffered {
                Cow::Owned(self.buf.trim().to_string())
            } else if self_closing {
                Cow::Borrowed("")
            } else {
                normalize_eols(self.text[capture.content_start..start].trim())
            };
            self.store(
                capture.leaf,
                TextField {
                    value,
                    offset: capture.offset,
                },
            )?;
        }
        let tag = self.tags.pop().unwrap_or(Tag::Other);
        if matches!(self.starts.pop(), Some(OPENED_BEFORE) | None) {
            self.unmatched_ends.push(start);
        }
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
                    push_small(&mut m.child_refs, r);
                }
            }
            ([Root, Networks], Network) => push_some(&mut self.doc.networks, self.network.take()),
            ([Root, Software, Clusters], Cluster) => {
                push_some(&mut self.doc.clusters, self.cluster.take())
            }
            ([Root, Storage, EdvVolumes], EdvVolume) => {
                push_some(&mut self.doc.volumes, self.volume.take())
            }
            _ => {}
        }
        Ok(())
    }

    /// Files the collected text of a leaf into the element being read.
    fn store(&mut self, leaf: Leaf, field: TextField<'a>) -> Result<(), EsXmlError> {
        if leaf == Leaf::OsType {
            self.refuse_xen(&field)?;
        }
        let slot = match leaf {
            Leaf::CustomerName => Some(&mut self.doc.customer_name),
            l if l.is_machine_field() => self.machine.as_mut().map(|m| machine_slot(m, l)),
            l if l.is_network_field() => self.network.as_mut().map(|n| network_slot(n, l)),
            l if l.is_volume_field() => self.volume.as_mut().map(|v| volume_slot(v, l)),
            _ => self.cluster.as_mut().map(|c| &mut c.name),
        };
        let Some(slot) = slot else { return Ok(()) };
        if let Some(first) = slot {
            let first_line = Location::of(self.text, first.offset).line;
            let kind = EsXmlErrorKind::DuplicateElement {
                name: leaf.name(),
                first_line,
            };
            return Err(self.error_at(field.offset, self.owner_of(leaf), kind));
        }
        *slot = Some(field);
        Ok(())
    }

    /// The element that holds `leaf`, for messages (built only when there is an error).
    fn owner_of(&self, leaf: Leaf) -> String {
        let (element, id) = match leaf {
            Leaf::CustomerName => return String::new(),
            l if l.is_machine_field() => ("machine", self.machine.as_ref().map(|m| &*m.id)),
            l if l.is_network_field() => ("network", self.network.as_ref().map(|n| &*n.id)),
            l if l.is_volume_field() => ("edvVolume", self.volume.as_ref().map(|v| &*v.id)),
            _ => ("cluster", self.cluster.as_ref().map(|c| &*c.id)),
        };
        id.map(|id| format!("<{element} id=\"{id}\">"))
            .unwrap_or_default()
    }

    /// Xen files are refused at the first Xen machine, before any other check, so the operator
    /// sees the real reason rather than a consequence of it.
    fn refuse_xen(&self, os_type: &TextField<'_>) -> Result<(), EsXmlError> {
        let xen = ["LinuxDom0", "LinuxGuest"]
            .iter()
            .any(|x| os_type.value.eq_ignore_ascii_case(x));
        if !xen {
            return Ok(());
        }
        let element = self
            .machine
            .as_ref()
            .map(|m| machine_element(&m.id))
            .unwrap_or_default();
        Err(self.error_at(
            os_type.offset,
            element,
            EsXmlErrorKind::Xen {
                os_type: os_type.value.to_string(),
            },
        ))
    }

    fn finish(self) -> Result<RawDocument<'a>, EsXmlError> {
        if let Some(&open_offset) = self.starts.last() {
            let open = element_name_at(self.text, open_offset).to_string();
            let open_line = Location::of(self.text, open_offset).line;
            return Err(self.error_at(
                self.text.len(),
                "",
                EsXmlErrorKind::Truncated { open, open_line },
            ));
        }
        if !self.root_closed {
            return Err(self.error_at(self.text.len(), "", EsXmlErrorKind::NoRoot));
        }
        Ok(self.doc)
    }
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

fn push_some<T>(list: &mut Blocks<T>, item: Option<T>) {
    if let Some(item) = item {
        list.push(item);
    }
}

fn machine_slot<'r, 'a>(m: &'r mut RawMachine<'a>, leaf: Leaf) -> &'r mut Option<TextField<'a>> {
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

fn network_slot<'r, 'a>(n: &'r mut RawNetwork<'a>, leaf: Leaf) -> &'r mut Option<TextField<'a>> {
    match leaf {
        Leaf::NetworkType => &mut n.network_type,
        Leaf::Master => &mut n.master,
        Leaf::VlanId => &mut n.vlan_id,
        _ => &mut n.interface_name,
    }
}

fn volume_slot<'r, 'a>(v: &'r mut RawVolume<'a>, leaf: Leaf) -> &'r mut Option<TextField<'a>> {
    match leaf {
        Leaf::EdvVolumeName => &mut v.name,
        Leaf::EdvDevicePath => &mut v.device_path,
        _ => &mut v.volume_type,
    }
}

/// The local name of the element whose `<` is at `offset` (`model:machine` → `machine`).
fn element_name_at(text: &str, offset: usize) -> &str {
    let rest = text.get(offset + 1..).unwrap_or("");
    let name_end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    let name = &rest[..name_end];
    name.rsplit(':').next().unwrap_or(name)
}
